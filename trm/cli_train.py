"""``trm run`` and ``trm eval``: training and evaluation commands (logic in trm/train.py and trm/evaluate.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from trm.errors import UserError

OVERRIDES_HELP = "key=value overrides (dotted paths, values parsed as YAML), e.g. optim.lr=3e-4 train.epochs=10"


@click.command("run", context_settings={"ignore_unknown_options": False})
@click.argument("recipe", required=False, type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option("--resume", "resume", type=click.Path(file_okay=False), help="Continue this run directory from its latest checkpoint.")
@click.option("--run-dir", "run_dir", type=click.Path(file_okay=False), help="Run directory (default: run.dir/<recipe>-<time>).")
@click.option("--no-progress", is_flag=True, help="No progress bars (logs still go to metrics.jsonl).")
def run(recipe: str | None, overrides: tuple[str, ...], resume: str | None, run_dir: str | None, no_progress: bool) -> None:
    """Train RECIPE (with OVERRIDES), evaluating every eval.every epochs and at the end.

    RECIPE is a recipe file, or the name of a shipped recipe (`trm recipes` lists them: `trm run quickstart`).
    Relative data.store paths are under the data root (TRM_DATA_ROOT or `trm --data-root DIR`, default ./data);
    recipe.yaml records the absolute store path, so `trm eval RUN` works from any directory.

    \b
    The run directory receives recipe.yaml (fully resolved), metrics.jsonl, curves.png,
    eval/ artefacts, checkpoints/ and history.jsonl; trm.lock while it runs (one writer
    at a time). Many GPUs: accelerate launch -m trm run RECIPE.
    With --resume RUN_DIR, RECIPE is not given: the run's own recipe.yaml is used
    (OVERRIDES still apply, e.g. train.epochs=100 to extend it, and are recorded in the
    run; model.*, backbone.*, halting.*, task.* and data.store cannot change). A failed
    evaluation keeps its checkpoint: --resume runs it again.

    OVERRIDES: key=value overrides (dotted paths, values parsed as YAML), e.g. optim.lr=3e-4 train.epochs=10.
    """
    from trm.launch import run_training

    if resume and recipe and "=" in recipe:  # `trm run --resume DIR key=value`: the first override lands in RECIPE
        overrides, recipe = (recipe, *overrides), None
    if resume and recipe:
        raise UserError("give either RECIPE or --resume RUN_DIR, not both")
    run_training(recipe, overrides, resume=resume, run_dir=run_dir, show_progress=not no_progress)


def _depths(value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        depths = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated step counts such as 1,2,4,8,16 (got {value!r})") from None
    if not depths or min(depths) < 1:
        raise click.BadParameter(f"expected step counts >= 1 (got {value!r})")
    return depths


def halting_options(command):
    """--halting, --max-steps and --halt-threshold, as trm eval and trm solve take them (docs/cli.md)."""
    options = [
        click.option("--halting", type=click.Choice(["adaptive", "fixed"]), default=None,
                     help="adaptive: each example stops when the halting rule says so (at --max-steps at the latest); "
                          "fixed: every example takes --max-steps steps. Default: the recipe's eval.halting."),
        click.option("--max-steps", type=click.IntRange(min=1), default=None,
                     help="The depth cap (adaptive) or the depth (fixed); may exceed training's (test-time depth). "
                          "Default: eval.max_steps, else the halting strategy's max_steps."),
        click.option("--halt-threshold", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True),
                     default=None, help="Adaptive only: stop when the halting confidence sigmoid(logit) exceeds this "
                                        "(default: the recipe's eval.halt_threshold, else the strategy's rule, 0.5)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.command("eval")
@click.argument("target", type=click.Path())
@click.argument("overrides", nargs=-1)
@click.option("--split", default=None, help="Split of the store to evaluate (default: the recipe's eval.split).")
@halting_options
@click.option("--depth-curve", "depth_curve", default=None, metavar="N,N,...",
              help="Evaluate at each of these fixed depths and adaptively (capped at the largest); writes "
                   "depth_curve.json/.csv/.png (in the run's eval/ folder, or --out-dir).")
@click.option("--metric", default=None, help="With --depth-curve: the metric to plot (default: the first exact-accuracy one).")
@click.option("--out-dir", "out_dir", type=click.Path(file_okay=False), default=None, help="With --depth-curve: folder for its files.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate a fixed random subset of this many examples.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Global evaluation batch (default: the recipe's).")
@click.option("--raw", is_flag=True, help="Use the live weights instead of the EMA weights.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="JSON file for the results (default: in the run directory).")
@click.option("--allow-other-store", is_flag=True, help="Evaluate on a store whose fingerprint differs from training's.")
@click.option("--puzzle-ids", type=click.Choice(["blank", "shuffled"]), default=None,
              help="Evaluate a second time with every puzzle identifier replaced by the blank id or by another "
                   "training puzzle's id, and report the drop (how much the score owes to memorised puzzle "
                   "embeddings).")
@click.option("--trajectories", type=click.IntRange(min=0), default=0,
              help="Draw the per-step answers of this many test examples (right and wrong ones) as PNGs under "
                   "the run's eval/ folder.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def eval_command(target: str, overrides: tuple[str, ...], split: str | None, halting: str | None,
                 max_steps: int | None, halt_threshold: float | None, depth_curve: str | None, metric: str | None,
                 out_dir: str | None, limit: int | None, batch_size: int | None, raw: bool, out: str | None,
                 allow_other_store: bool, puzzle_ids: str | None, trajectories: int, no_progress: bool) -> None:
    """Evaluate TARGET (a run directory or one of its checkpoints) and print a table; writes JSON.

    OVERRIDES change the run's saved recipe, e.g. data.store=other.zarr or eval.evaluators=[exact_match].
    The table ends with eval/puzzles_per_s, eval/mean_steps, eval/p90_steps and eval/max_steps (steps used).
    """
    from trm.evaluation_run import depth_curve as run_depth_curve, evaluate_checkpoint
    from trm.evaluate import format_table

    started = time.perf_counter()
    depths = _depths(depth_curve)
    if depths is not None:
        if halting is not None or max_steps is not None or out is not None:
            raise UserError("--depth-curve sets the depths itself: drop --halting, --max-steps and --out "
                            "(use --out-dir for its files)")
        if puzzle_ids is not None or trajectories:
            raise UserError("--puzzle-ids and --trajectories belong to a single evaluation, not --depth-curve")
        curve = run_depth_curve(Path(target), overrides, depths, split=split, limit=limit, batch_size=batch_size,
                                use_ema=not raw, allow_other_store=allow_other_store, show_progress=not no_progress,
                                out_dir=Path(out_dir) if out_dir else None, metric=metric,
                                halt_threshold=halt_threshold)
        if curve is None:
            return
        rows, table, picture = curve
        click.echo(format_depth_curve(rows))
        click.echo(f"table: {table} (and .csv)")
        click.echo(f"picture: {picture}" if picture else "picture: not drawn (matplotlib is not installed)")
        click.echo(f"({time.perf_counter() - started:.1f} s)")
        return
    if metric is not None or out_dir is not None:
        raise UserError("--metric and --out-dir belong to --depth-curve")
    result = evaluate_checkpoint(Path(target), overrides, split=split, max_steps=max_steps, limit=limit,
                                 batch_size=batch_size, use_ema=not raw, allow_other_store=allow_other_store,
                                 show_progress=not no_progress, out=Path(out) if out else None, halting=halting,
                                 halt_threshold=halt_threshold, puzzle_ids=puzzle_ids, trajectories=trajectories)
    if result is None:
        return
    metrics, written, artefacts = result
    replaced = json.loads(written.read_text()).get("puzzle_ids")
    if replaced is not None:
        from trm.integrity import format_comparison

        click.echo(format_comparison(metrics, replaced["metrics"], f"{replaced['mode']} ids"))
    else:
        click.echo(format_table(metrics))
    click.echo(f"results: {written} ({time.perf_counter() - started:.1f} s)")
    for path in artefacts:  # e.g. ARC's submission.json, Maze's failure renderings
        click.echo(f"written: {path}")


def format_depth_curve(rows: list[dict]) -> str:
    """The depth curve as a terminal table."""
    metric = rows[0]["metric"]
    lines = [f"{'halting':<9} {'depth':>5} {metric:>28} {'mean steps':>10} {'p90':>5} {'puzzles/s':>10}"]
    for row in rows:
        lines.append(f"{row['halting']:<9} {row['depth']:>5} {row['value']:>28.4f} {row['mean_steps']:>10.2f} "
                     f"{row['p90_steps']:>5.0f} {row['puzzles_per_s']:>10.1f}")
    return "\n".join(lines)

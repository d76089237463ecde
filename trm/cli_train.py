"""``trm run`` and ``trm eval``: training and evaluation commands (logic in trm/train.py and trm/evaluate.py)."""

from __future__ import annotations

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

    \b
    The run directory receives recipe.yaml (fully resolved), metrics.jsonl, curves.png,
    eval/ artefacts and checkpoints/. Many GPUs: accelerate launch -m trm run RECIPE.
    With --resume RUN_DIR, RECIPE is not given: the run's own recipe.yaml is used
    (OVERRIDES still apply, e.g. train.epochs=100 to extend it).

    OVERRIDES: key=value overrides (dotted paths, values parsed as YAML), e.g. optim.lr=3e-4 train.epochs=10.
    """
    from trm.launch import run_training

    if resume and recipe and "=" in recipe:  # `trm run --resume DIR key=value`: the first override lands in RECIPE
        overrides, recipe = (recipe, *overrides), None
    if resume and recipe:
        raise UserError("give either RECIPE or --resume RUN_DIR, not both")
    run_training(recipe, overrides, resume=resume, run_dir=run_dir, show_progress=not no_progress)


@click.command("eval")
@click.argument("target", type=click.Path())
@click.argument("overrides", nargs=-1)
@click.option("--split", default=None, help="Split of the store to evaluate (default: the recipe's eval.split).")
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Supervision steps per example; may exceed training's (test-time depth).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate a fixed random subset of this many examples.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Global evaluation batch (default: the recipe's).")
@click.option("--raw", is_flag=True, help="Use the live weights instead of the EMA weights.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="JSON file for the results (default: in the run directory).")
@click.option("--allow-other-store", is_flag=True, help="Evaluate on a store whose fingerprint differs from training's.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def eval_command(target: str, overrides: tuple[str, ...], split: str | None, max_steps: int | None, limit: int | None,
                 batch_size: int | None, raw: bool, out: str | None, allow_other_store: bool, no_progress: bool) -> None:
    """Evaluate TARGET (a run directory or one of its checkpoints) and print a table; writes JSON.

    OVERRIDES change the run's saved recipe, e.g. data.store=other.zarr or eval.evaluators=[exact_match].
    """
    from trm.evaluation_run import evaluate_checkpoint
    from trm.evaluate import format_table

    started = time.perf_counter()
    result = evaluate_checkpoint(Path(target), overrides, split=split, max_steps=max_steps, limit=limit,
                                 batch_size=batch_size, use_ema=not raw, allow_other_store=allow_other_store,
                                 show_progress=not no_progress, out=Path(out) if out else None)
    if result is None:
        return
    metrics, written, artefacts = result
    click.echo(format_table(metrics))
    click.echo(f"results: {written} ({time.perf_counter() - started:.1f} s)")
    for path in artefacts:  # e.g. ARC's submission.json, Maze's failure renderings
        click.echo(f"written: {path}")

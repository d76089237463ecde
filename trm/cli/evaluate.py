"""``trm eval``: load a run's checkpoint (EMA weights by default) and evaluate it on a store split, or at several
depths (``--depth-curve``); ``halting_options`` are shared with ``trm solve``. The command makes the one Accelerator
(trm/distributed.py) and passes it in."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import click

from trm.checkpoint import find_checkpoint
from trm.distributed import make_accelerator
from trm.config import load_recipe
from trm.errors import UserError
from trm.eval_guard import evaluation_guard, guard_evaluators, part
from trm.evaluate import build_evaluators, describe_stop_rule, eval_settings, evaluate
from trm.plugins import get_host, registry
from trm.recipe import Recipe
from trm.types import TaskSpec

if TYPE_CHECKING:
    from accelerate import Accelerator


def get_task(recipe: Recipe) -> TaskSpec:
    return registry("tasks").get(recipe.task.name)


def run_dir_of(checkpoint: Path) -> Path:
    """The run directory a checkpoint belongs to (``RUN/checkpoints/step_N`` -> ``RUN``)."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint


def check_eval_options(*, max_steps: int | None, limit: int | None, batch_size: int | None,
                       out: Path | None) -> None:
    """Refuse bad ``trm eval`` options before any loading: counts below 1, an --out in a missing directory."""
    for option, value in (("--max-steps", max_steps), ("--limit", limit), ("--batch-size", batch_size)):
        if value is not None and value < 1:  # 0 used to fall back to the recipe's value, negatives ran 0 steps
            raise UserError(f"{option}: must be >= 1 (got {value})")
    if out is not None and not out.parent.is_dir():  # found only after the whole evaluation otherwise
        raise UserError(f"--out {out}: no such directory {out.parent}")


@attrs.frozen
class LoadedEvaluation:
    """Everything one evaluation of a checkpoint needs, loaded once (a depth curve evaluates it many times)."""

    checkpoint: Path
    run_dir: Path
    recipe: Recipe
    store: Any
    model: Any  # the loaded module (its attributes, parameters)
    step_model: Any  # what evaluation calls: ``model``, compiled as the run's train.compile says (as in training)
    parts: dict
    accelerator: Any
    use_ema: bool

    @property
    def step(self) -> int:
        return int(self.parts["state"]["step"])

    def evaluate(self, *, halting: str, max_steps: int | None, halt_threshold: float | None, artefacts: Path | None,
                 show_progress: bool, model: Any = None) -> tuple[dict[str, float], list[tuple[str, Any]]]:
        """One pass; ``model`` stands in for the loaded one (``--puzzle-ids`` passes it seen through other ids)."""
        recipe, info = self.recipe, self.store.info
        with self.guard():
            with part("building the evaluators"):
                evaluators = guard_evaluators(build_evaluators(recipe, self.store, artefacts))
            batch = recipe.eval.batch_size if recipe.eval.batch_size is not None else recipe.train.global_batch_size
            metrics = evaluate(model if model is not None else self.step_model, self.store.split(recipe.eval.split),
                               evaluators, accelerator=self.accelerator, global_batch_size=batch,
                               max_steps=max_steps, halting=halting, halt_threshold=halt_threshold,
                               limit=recipe.eval.limit, seed=recipe.train.seed, ignore_label_id=info.ignore_label_id,
                               pad_id=info.pad_id, show_progress=show_progress)
        return metrics, evaluators

    def guard(self, after: str = "the run directory is unchanged") -> Any:
        """Failures inside as one line (trm/eval_guard.py)."""
        return evaluation_guard(f"evaluation of {self.checkpoint}", after)


def load_evaluation(target: Path, overrides: tuple[str, ...], *, accelerator: Accelerator, split: str | None,
                    limit: int | None, batch_size: int | None, use_ema: bool,
                    allow_other_store: bool) -> LoadedEvaluation:
    """Read TARGET's recipe (with overrides and options), open its store and load the checkpoint's model."""
    from trm.build import compiled_for, load_trained_model, open_recipe_store  # torch's compiler: not for --help

    checkpoint = find_checkpoint(target)
    run_dir = run_dir_of(checkpoint)
    saved = run_dir / "recipe.yaml"
    if not saved.exists():
        raise UserError(f"{run_dir}: no recipe.yaml beside the checkpoint; evaluate a run directory written by trm run")
    recipe = load_recipe(saved, overrides)
    if split is not None or limit is not None or batch_size is not None:
        recipe = attrs.evolve(recipe, eval=attrs.evolve(
            recipe.eval,
            split=split if split is not None else recipe.eval.split,
            limit=limit if limit is not None else recipe.eval.limit,
            batch_size=batch_size if batch_size is not None else recipe.eval.batch_size,
        ))
    store = open_recipe_store(recipe, build=False)
    info = store.info
    if not store.has_split(recipe.eval.split):  # said before the model is loaded, with the splits there are
        have = ", ".join(sorted(info.splits)) or "none"
        raise UserError(f"{recipe.data.store}: has no '{recipe.eval.split}' split (it has: {have})")
    model, parts = load_trained_model(checkpoint, recipe, info.dims, accelerator.device, use_ema=use_ema)
    trained_on = parts["state"]["fingerprint"]
    if trained_on != info.fingerprint and not allow_other_store:
        raise UserError(
            f"{checkpoint}: trained on a dataset with fingerprint {trained_on}, but {recipe.data.store} has "
            f"{info.fingerprint}; pass --allow-other-store to evaluate on it anyway"
        )
    if use_ema and parts["ema"] is None and accelerator.is_main_process:
        why = ("the run trained without EMA (train.ema: null)" if recipe.train.ema is None
               else "it is missing (the run's recipe has train.ema, so the checkpoint is incomplete)")
        print(f"note: {checkpoint / 'ema.safetensors'}: {why}; evaluating the live weights", flush=True)
    step_model = compiled_for(model, recipe.train.compile, accelerator.device)
    return LoadedEvaluation(checkpoint, run_dir, recipe, store, model, step_model, parts, accelerator, use_ema)


def _write_json(out: Path, report: dict) -> None:
    temporary = out.with_name(f".{out.name}.partial-{os.getpid()}")
    temporary.write_text(json.dumps(report, indent=2))
    os.replace(temporary, out)


def evaluate_checkpoint(target: Path, overrides: tuple[str, ...], *, accelerator: Accelerator, split: str | None,
                        max_steps: int | None, limit: int | None, batch_size: int | None, use_ema: bool,
                        allow_other_store: bool, show_progress: bool, out: Path | None, halting: str | None = None,
                        halt_threshold: float | None = None, puzzle_ids: str | None = None,
                        trajectories: int = 0) -> tuple[dict[str, float], Path, list[Path]] | None:
    """``trm eval``: evaluate TARGET once; (metrics, results JSON, artefacts) on the main process.

    ``puzzle_ids`` (blank/shuffled) adds a second pass with replaced puzzle identifiers, reported under
    ``puzzle_ids`` with the drop (trm/integrity.py); ``trajectories`` draws that many test examples' steps under
    the artefacts (trm/solve.py). The counts and --out are checked by the caller (check_eval_options), before the
    accelerator starts."""
    if trajectories < 0:
        raise UserError(f"--trajectories: must be >= 0 (got {trajectories})")
    loaded = load_evaluation(target, overrides, accelerator=accelerator, split=split, limit=limit,
                             batch_size=batch_size, use_ema=use_ema, allow_other_store=allow_other_store)
    mapping = None
    if puzzle_ids is not None:  # built before the first pass, so a mode the store cannot take fails at once
        from trm.integrity import identifier_mapping

        store = loaded.store
        train_ids = store.split("train").puzzle_identifiers if store.has_split("train") else []
        mapping = identifier_mapping(puzzle_ids, store.info.num_puzzle_identifiers, train_ids, loaded.recipe.train.seed)
    recipe, parts = loaded.recipe, loaded.parts
    halting, max_steps, halt_threshold = eval_settings(recipe.eval, halting, max_steps, halt_threshold)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    artefacts = loaded.run_dir / "eval" / f"trm-eval-step_{loaded.step}-{stamp}"
    metrics, evaluators = loaded.evaluate(halting=halting, max_steps=max_steps, halt_threshold=halt_threshold,
                                          artefacts=artefacts, show_progress=show_progress)
    replaced = other = None
    if mapping is not None:
        from trm.integrity import ReplacedIdentifiers, metric_drop

        changed, other = loaded.evaluate(halting=halting, max_steps=max_steps, halt_threshold=halt_threshold,
                                         artefacts=artefacts / f"puzzle-ids-{puzzle_ids}", show_progress=show_progress,
                                         model=ReplacedIdentifiers(loaded.step_model, mapping))
        replaced = {"mode": puzzle_ids, "metrics": changed, "drop": metric_drop(metrics, changed)}
    if not loaded.accelerator.is_main_process:
        return None
    written: list[Path] = []
    with loaded.guard():
        for _, evaluator in evaluators:
            written += [Path(path) for path in evaluator.write(artefacts) or []]
        for _, evaluator in other or []:
            written += [Path(path) for path in evaluator.write(artefacts / f"puzzle-ids-{puzzle_ids}") or []]
    cap = max_steps if max_steps is not None else loaded.model.halting.max_steps
    if trajectories:
        from trm.solve import eval_trajectories, store_context

        written += eval_trajectories(loaded.model, loaded.store.split(recipe.eval.split), get_task(recipe),
                                     store_context(recipe, loaded.store.info), trajectories,
                                     artefacts / "trajectories", max_steps=cap, halting=halting,
                                     halt_threshold=halt_threshold, seed=recipe.train.seed,
                                     ignore_label_id=loaded.store.info.ignore_label_id)
    report = {"checkpoint": str(loaded.checkpoint), "step": loaded.step, "split": recipe.eval.split,
              "halting": halting, "step_cap": cap, "halt_threshold": halt_threshold,
              "puzzles_per_s": metrics["eval/puzzles_per_s"], "mean_steps": metrics["eval/mean_steps"],
              "p90_steps": metrics["eval/p90_steps"], "max_steps": metrics["eval/max_steps"],
              "limit": recipe.eval.limit, "weights": "ema" if use_ema and parts["ema"] is not None else "live",
              "store": str(recipe.data.store), "processes": loaded.accelerator.num_processes, "metrics": metrics,
              "artefacts": [str(path) for path in written]}
    if replaced is not None:
        report["puzzle_ids"] = replaced
    out = out or loaded.run_dir / f"eval-step_{loaded.step}-{recipe.eval.split}-{stamp}.json"
    _write_json(out, report)
    with loaded.guard(f"the results are written to {out}"), part("hook trm_after_eval"):
        get_host().pm.hook.trm_after_eval(recipe=recipe, run_dir=loaded.run_dir, step=loaded.step, metrics=metrics)
    return metrics, out, written


def describe_evaluation(report: dict[str, Any]) -> str:
    """The line ``trm eval`` prints before its table: what was evaluated, on what, with which stop rule."""
    weights = "EMA weights" if report["weights"] == "ema" else "live weights"
    examples = int(report["metrics"].get("eval/examples", 0))
    rule = describe_stop_rule(report["halting"], report["step_cap"], report["halt_threshold"])
    return (f"checkpoint {report['checkpoint']} ({weights}), split '{report['split']}', "
            f"{examples} example{'s' if examples != 1 else ''}: {rule}")


def headline_metric(metrics: dict[str, float], wanted: str | None = None) -> str:
    """The metric a depth curve plots: ``wanted``, else the first exact-accuracy metric, else the first one."""
    names = [key for key in metrics if not key.startswith("eval/")]
    if wanted is not None:
        matches = [key for key in names if key == wanted or key.endswith("/" + wanted)]
        if not matches:
            raise UserError(f"--metric {wanted}: no such metric; the evaluators report {', '.join(names)}")
        return matches[0]
    exact = [key for key in names if "exact" in key]
    return (exact or names or ["eval/mean_steps"])[0]


def depth_curve(target: Path, overrides: tuple[str, ...], depths: list[int], *, accelerator: Accelerator,
                split: str | None, limit: int | None, batch_size: int | None, use_ema: bool, allow_other_store: bool,
                show_progress: bool, out_dir: Path | None, metric: str | None = None,
                halt_threshold: float | None = None) -> tuple[list[dict[str, Any]], Path, Path | None] | None:
    """Evaluate at each fixed depth and adaptively (capped at the deepest); write a table (JSON + CSV) and a PNG.

    Returns (rows, table path, picture path or None without matplotlib) on the main process. The counts are
    checked by the caller (check_eval_options), before the accelerator starts.
    """
    if not depths or any(depth < 1 for depth in depths):
        raise UserError(f"--depth-curve: give supervision-step counts >= 1 separated by commas (got {depths})")
    loaded = load_evaluation(target, overrides, accelerator=accelerator, split=split, limit=limit,
                             batch_size=batch_size, use_ema=use_ema, allow_other_store=allow_other_store)
    *_, halt_threshold = eval_settings(loaded.recipe.eval, "adaptive", None, halt_threshold)  # its adaptive point
    rows: list[dict[str, Any]] = []
    runs = [("fixed", depth) for depth in sorted(set(depths))] + [("adaptive", max(depths))]
    chosen = None
    for mode, depth in runs:
        if loaded.accelerator.is_main_process:
            print(f"depth curve: {mode} {'cap ' if mode == 'adaptive' else ''}{depth} ...", flush=True)
        metrics, _ = loaded.evaluate(halting=mode, max_steps=depth, halt_threshold=halt_threshold, artefacts=None,
                                     show_progress=show_progress)
        chosen = chosen or headline_metric(metrics, metric)
        rows.append({"halting": mode, "depth": depth, "metric": chosen, "value": metrics[chosen],
                     "mean_steps": metrics["eval/mean_steps"], "p90_steps": metrics["eval/p90_steps"],
                     "puzzles_per_s": metrics["eval/puzzles_per_s"], "examples": metrics["eval/examples"]})
    if not loaded.accelerator.is_main_process:
        return None
    out_dir = out_dir or loaded.run_dir / "eval" / f"depth-curve-step_{loaded.step}"
    out_dir.mkdir(parents=True, exist_ok=True)
    table = out_dir / "depth_curve.json"
    _write_json(table, {"checkpoint": str(loaded.checkpoint), "step": loaded.step, "split": loaded.recipe.eval.split,
                        "limit": loaded.recipe.eval.limit, "rows": rows})
    with open(out_dir / "depth_curve.csv", "w") as handle:
        handle.write("halting,depth,metric,value,mean_steps,p90_steps,puzzles_per_s,examples\n")
        for row in rows:
            handle.write(",".join(str(row[key]) for key in ("halting", "depth", "metric", "value", "mean_steps",
                                                             "p90_steps", "puzzles_per_s", "examples")) + "\n")
    picture = plot_depth_curve(rows, out_dir / "depth_curve.png")
    return rows, table, picture


def plot_depth_curve(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """Metric and puzzles/s against supervision steps: fixed depths as a line, the adaptive point marked."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    figure = depth_curve_figure(plt, rows)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def depth_curve_figure(plt: Any, rows: list[dict[str, Any]]) -> Any:
    """The depth curve's figure (two axes); its x ticks are the evaluated depths, as plain integers."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    fixed = [row for row in rows if row["halting"] == "fixed"]
    adaptive = [row for row in rows if row["halting"] == "adaptive"]
    depths = sorted({row["depth"] for row in rows})
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    metric = rows[0]["metric"]
    left.plot([r["depth"] for r in fixed], [r["value"] for r in fixed], "o-", label="fixed depth")
    left.plot([r["mean_steps"] for r in adaptive], [r["value"] for r in adaptive], "r*", markersize=14,
              label=f"adaptive (cap {adaptive[0]['depth']}), at its mean steps" if adaptive else "adaptive")
    left.set(xscale="log", xlabel="supervision steps", ylabel=metric, title=f"{metric} against depth")
    right.plot([r["depth"] for r in fixed], [r["puzzles_per_s"] for r in fixed], "o-", label="fixed depth")
    right.plot([r["mean_steps"] for r in adaptive], [r["puzzles_per_s"] for r in adaptive], "r*", markersize=14,
               label="adaptive")
    right.set(xscale="log", yscale="log", xlabel="supervision steps", ylabel="puzzles / s", title="throughput")
    for axes in (left, right):
        # the depths themselves as ticks (1, 2, 4, ...), not the log axis's 10^0, 2x10^0, ...
        axes.xaxis.set_major_locator(FixedLocator(depths))
        axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axes.xaxis.set_minor_locator(NullLocator())
        axes.xaxis.set_minor_formatter(NullFormatter())
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    return figure


def _depths(value: str | None) -> list[int] | None:
    if value is None:
        return None
    depths = []
    for part in (part.strip() for part in value.split(",")):
        if not part:
            continue
        try:
            depths.append(int(part))
        except ValueError:
            raise click.BadParameter(f"expected comma-separated step counts such as 1,2,4,8,16 (got {value!r}: "
                                     f"{part!r} is not a whole number)", param_hint="--depth-curve") from None
    if not depths or min(depths) < 1:
        raise click.BadParameter(f"expected step counts >= 1 (got {value!r})", param_hint="--depth-curve")
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


def check_halting_options(halting: str | None, halt_threshold: float | None) -> None:
    """A threshold given with ``--halting fixed`` would be silently unused: one line instead."""
    if halting == "fixed" and halt_threshold is not None:
        raise UserError(f"--halt-threshold {halt_threshold}: it applies to --halting adaptive only; drop one of them")


@click.command("eval")
@click.argument("target", type=click.Path())
@click.argument("overrides", nargs=-1)
@click.option("--split", default=None, help="Split of the store to evaluate (default: the recipe's eval.split).")
@halting_options
@click.option("--depth-curve", "depth_list", default=None, metavar="N,N,...",
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
                 max_steps: int | None, halt_threshold: float | None, depth_list: str | None, metric: str | None,
                 out_dir: str | None, limit: int | None, batch_size: int | None, raw: bool, out: str | None,
                 allow_other_store: bool, puzzle_ids: str | None, trajectories: int, no_progress: bool) -> None:
    """Evaluate TARGET (a run directory or one of its checkpoints) and print a table; writes JSON.

    OVERRIDES change the run's saved recipe, e.g. data.store=other.zarr or eval.evaluators=[exact_match].
    The table ends with eval/puzzles_per_s, eval/mean_steps, eval/p90_steps and eval/max_steps (steps used).
    """
    from trm.evaluate import format_table

    started = time.perf_counter()
    check_halting_options(halting, halt_threshold)
    depths = _depths(depth_list)
    if depths is not None:
        if halting is not None or max_steps is not None or out is not None:
            raise UserError("--depth-curve sets the depths itself: drop --halting, --max-steps and --out "
                            "(use --out-dir for its files)")
        if puzzle_ids is not None or trajectories:
            raise UserError("--puzzle-ids and --trajectories belong to a single evaluation, not --depth-curve")
        check_eval_options(max_steps=None, limit=limit, batch_size=batch_size, out=None)
        find_checkpoint(Path(target))  # a wrong TARGET and bad counts are said at once, before the accelerator
        curve = depth_curve(Path(target), overrides, depths, accelerator=make_accelerator(), split=split,
                            limit=limit, batch_size=batch_size, use_ema=not raw,
                            allow_other_store=allow_other_store, show_progress=not no_progress,
                            out_dir=Path(out_dir) if out_dir else None, metric=metric, halt_threshold=halt_threshold)
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
    check_eval_options(max_steps=max_steps, limit=limit, batch_size=batch_size, out=Path(out) if out else None)
    find_checkpoint(Path(target))
    result = evaluate_checkpoint(Path(target), overrides, accelerator=make_accelerator(), split=split,
                                 max_steps=max_steps, limit=limit, batch_size=batch_size, use_ema=not raw,
                                 allow_other_store=allow_other_store, show_progress=not no_progress,
                                 out=Path(out) if out else None, halting=halting,
                                 halt_threshold=halt_threshold, puzzle_ids=puzzle_ids, trajectories=trajectories)
    if result is None:
        return
    metrics, written, artefacts = result
    report = json.loads(written.read_text())
    click.echo(describe_evaluation(report))
    replaced = report.get("puzzle_ids")
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

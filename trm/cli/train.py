"""``trm run``: starting a run in a new run directory, or resuming one, around :class:`trm.train.Trainer`.

The checks that can fail on a user's mistake come first (no such directory, no checkpoint yet, a store that is not
there, a resume override that would change the model), so that a failed start leaves nothing behind; Ctrl-C is
reported with the way to continue. A start makes the command's one Accelerator (trm/distributed.py), has
trm/build.py build the run's parts with it, and hands both to the Trainer. The main process holds the run
directory's lock (trm/run_lock.py) for the whole run, and records each start and resume in ``history.jsonl``
(trm/run_history.py).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from trm import distributed
from trm.checkpoint import find_checkpoint
from trm.config import dump_recipe, load_recipe
from trm.errors import UserError
from trm.eval_guard import EvaluationFailed
from trm.logs import chosen_trackers
from trm.recipe import Recipe
from trm.run_history import append_history, check_resume_overrides, check_store_options
from trm.run_lock import RunLock

if TYPE_CHECKING:
    from trm.train import Trainer

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
    if resume and recipe and "=" in recipe:  # `trm run --resume DIR key=value`: the first override lands in RECIPE
        overrides, recipe = (recipe, *overrides), None
    if resume and recipe:
        raise UserError("give either RECIPE or --resume RUN_DIR, not both")
    run_training(recipe, overrides, resume=resume, run_dir=run_dir, show_progress=not no_progress)


def new_run_dir(recipe_path: Path, recipe: Recipe) -> Path:
    name = recipe.run.name or f"{_recipe_label(recipe_path)}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    return Path(recipe.run.dir) / name


def _recipe_label(recipe_path: Path) -> str:
    """The run directory's name before its time: the recipe's file name, prefixed with the plugin that ships it
    (every plugin's CPU recipe is a cpu.yaml: takuzu-cpu-<time>, not cpu-<time>)."""
    from trm.recipe_catalog import BUILTIN, recipe_dirs

    resolved = recipe_path.resolve()
    for origin, folder in recipe_dirs():
        if origin != BUILTIN and resolved.parent == folder.resolve() and not recipe_path.stem.startswith(origin):
            return f"{origin}-{recipe_path.stem}"
    return recipe_path.stem


def run_training(recipe_path: str | None, overrides: tuple[str, ...], *, resume: str | None = None,
                 run_dir: str | None = None, show_progress: bool = True) -> dict[str, float]:
    """``trm run``: a new run from a recipe, or ``resume`` a run directory from its latest checkpoint."""
    started = time.perf_counter()  # metrics' wall_s counts from here: loading, building and compiling included
    from trm.build import build_run  # torch's compiler comes with it: imported when a run starts, not for --help
    from trm.train import Trainer

    if resume:
        return _resume(Path(resume), overrides, show_progress=show_progress)
    if recipe_path is None:
        raise UserError("trm run needs a RECIPE, or --resume RUN_DIR")
    from trm.recipe_catalog import resolve_recipe

    recipe_path = str(resolve_recipe(recipe_path))  # a path, or a shipped recipe's name (`trm recipes`)
    recipe = load_recipe(recipe_path, overrides)  # data.store comes back absolute: recipe.yaml records it so
    directory = Path(run_dir) if run_dir else new_run_dir(Path(recipe_path), recipe)
    # The main process's name, for every process: their clocks may straddle a second.
    directory = distributed.broadcast_from_main(directory)
    check_run_dir(directory)
    if (directory / "checkpoints").exists():
        raise UserError(f"{directory}: already holds a run; continue it with `trm run --resume {directory}`")
    # The store is opened (or built) and the model made before the run directory exists: a mistake found there
    # leaves no empty run directory behind.
    accelerator = distributed.make_accelerator(log_with=chosen_trackers(), project_dir=directory)
    parts = build_run(recipe, accelerator, build_store=True, show_progress=show_progress)
    differences = check_store_options(recipe, parts.store.info) if accelerator.is_main_process else {}
    trainer = Trainer(recipe, directory, parts, accelerator, show_progress=show_progress, started=started)
    created = not directory.exists()
    lock = RunLock(directory)
    if trainer.is_main:
        directory.mkdir(parents=True, exist_ok=True)
        lock.acquire()  # refused: the directory is another start's (even if it appeared just now), so it stays
    try:
        if trainer.is_main:
            if (directory / "checkpoints").exists():  # another start got here first (seen under the lock)
                raise UserError(f"{directory}: already holds a run; continue it with `trm run --resume {directory}`")
            if (directory / "metrics.jsonl").exists():  # a run that stopped before its first checkpoint
                print(f"note: {directory} held a run that stopped before its first checkpoint; starting afresh",
                      flush=True)
                (directory / "metrics.jsonl").unlink()
            _write_atomic(directory / "recipe.yaml", dump_recipe(recipe))
            extra = {"store_task_options_differ": differences} if differences else {}
            append_history(directory, "start", step=0, overrides=overrides, **extra)
        return _run(trainer, created=created)
    finally:
        lock.release()


def check_run_dir(directory: Path) -> None:
    """A new run goes into an absent or empty directory, or one a trm run wrote (its recipe.yaml); never into a
    directory of other files, which the run would mix its files into (and a restart would clean up)."""
    if directory.exists() and not directory.is_dir():
        raise UserError(f"{directory}: exists and is not a directory; choose a new --run-dir")
    if not directory.is_dir() or (directory / "recipe.yaml").is_file():
        return
    entries = sorted(entry.name for entry in directory.iterdir())
    if entries:
        shown = ", ".join(entries[:4]) + (f" and {len(entries) - 4} more" if len(entries) > 4 else "")
        raise UserError(f"{directory}: exists, is not empty and is not a trm run directory (it holds {shown}); "
                        "choose a new --run-dir")


def _resume(directory: Path, overrides: tuple[str, ...], *, show_progress: bool) -> dict[str, float]:
    started = time.perf_counter()  # metrics' wall_s of the resumed part count from here
    from trm.build import build_run
    from trm.train import Trainer

    saved = directory / "recipe.yaml"
    if not directory.is_dir():
        raise UserError(f"{directory}: no such run directory")
    if not saved.exists():
        raise UserError(f"{directory}: not a run directory (no recipe.yaml)")
    if not (directory / "checkpoints").is_dir():
        raise UserError(f"{directory}: the run stopped before its first checkpoint, so there is nothing to resume; "
                        f"start it again with `trm run {saved} --run-dir {directory}`")
    lock = RunLock(directory)
    if distributed.is_main():
        lock.acquire()
    try:
        recipe = load_recipe(saved, overrides)
        if overrides:  # the model and the data are the checkpoint's: refused before anything is built
            check_resume_overrides(directory, load_recipe(saved), recipe, overrides)
        store = Path(recipe.data.store)
        if not store.exists():
            raise UserError(f"{store}: dataset store not found; a resumed run never builds its store "
                            "(data.build_if_missing is for new runs: a store built now could differ from the one "
                            "the run trained on), so put it back at that path")
        accelerator = distributed.make_accelerator(log_with=chosen_trackers(), project_dir=directory)
        parts = build_run(recipe, accelerator, build_store=False, show_progress=show_progress)
        trainer = Trainer(recipe, directory, parts, accelerator, show_progress=show_progress, started=started)
        trainer.resume()
        # A complete run is left as it is: recording overrides that trained nothing would make recipe.yaml disagree
        # with the checkpoint (e.g. train.epochs=20 on a run already at 26 epochs).
        idle = trainer.has_nothing_left
        if trainer.is_main and not idle:
            if overrides:  # what training from now on uses, for `trm eval` and the next resume
                _write_atomic(directory / "recipe.yaml", dump_recipe(recipe))
            append_history(directory, "resume", step=trainer.step, overrides=overrides)
        result = _run(trainer)
        if trainer.is_main and idle and overrides:
            print(f"{directory}: recipe.yaml and history.jsonl left unchanged (nothing was trained with "
                  f"{' '.join(overrides)})", flush=True)
        return result
    finally:
        lock.release()


def _remove_if_created(directory: Path, created: bool) -> None:
    """Remove a run directory this start created, when nothing was trained in it (a start that fails)."""
    if created and not (directory / "checkpoints").exists():
        shutil.rmtree(directory, ignore_errors=True)


def _run(trainer: Trainer, *, created: bool = False) -> dict[str, float]:
    try:
        return trainer.run()
    except Exception as exc:
        if trainer.is_main and trainer.step == 0 and not trainer.resumed:  # failed before training: leave nothing
            _remove_if_created(trainer.run_dir, created)
        elif trainer.is_main and not isinstance(exc, EvaluationFailed):  # that one says what is kept itself
            # A plugin (or a user error found late, in an evaluator say) ended the run: say what is kept. The CLI
            # then prints the error itself in one line.
            kept = _last_checkpoint(trainer.run_dir, "its last checkpoint is {}; once the cause is fixed, continue with "
                                    f"`trm run --resume {trainer.run_dir}` or evaluate it with `trm eval {trainer.run_dir}`")
            print(f"trm: the run {trainer.run_dir} stopped at step {trainer.step}: {kept}", file=sys.stderr, flush=True)
        raise
    except KeyboardInterrupt:
        if trainer.is_main:
            last = _last_checkpoint(trainer.run_dir,
                                    f"the last checkpoint is {{}}; continue with `trm run --resume {trainer.run_dir}`")
            print(f"\ninterrupted at step {trainer.step}: {last}", file=sys.stderr, flush=True)
        raise SystemExit(130) from None


def _write_atomic(path: Path, text: str) -> None:
    if not distributed.is_main():
        return
    temporary = path.with_name(f".{path.name}.partial-{os.getpid()}")
    temporary.write_text(text)
    os.replace(temporary, path)


def _last_checkpoint(run_dir: Path, sentence: str) -> str:
    """``sentence`` with the latest checkpoint's name in its ``{}``, or that none was written yet."""
    try:
        return sentence.format(find_checkpoint(run_dir).name)
    except UserError:
        return "no checkpoint was written yet"

"""``trm run``: starting a run in a new run directory, or resuming one, around :class:`trm.train.Trainer`.

The checks that can fail on a user's mistake come first (no such directory, no checkpoint yet, a store that is not
there), so that a failed start leaves nothing behind; Ctrl-C is reported with the way to continue.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from trm.checkpoint import find_checkpoint
from trm.config import dump_recipe, load_recipe
from trm.errors import UserError
from trm.train import Trainer, cpu_processes


def new_run_dir(recipe_path: Path, recipe: Any) -> Path:
    name = recipe.run.name or f"{recipe_path.stem}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    return Path(recipe.run.dir) / name


def run_training(recipe_path: str | None, overrides: tuple[str, ...], *, resume: str | None = None,
                 run_dir: str | None = None, show_progress: bool = True) -> dict[str, float]:
    """``trm run``: a new run from a recipe, or ``resume`` a run directory from its latest checkpoint."""
    if resume:
        directory = Path(resume)
        saved = directory / "recipe.yaml"
        if not directory.is_dir():
            raise UserError(f"{directory}: no such run directory")
        if not saved.exists():
            raise UserError(f"{directory}: not a run directory (no recipe.yaml)")
        if not (directory / "checkpoints").is_dir():
            raise UserError(f"{directory}: the run stopped before its first checkpoint, so there is nothing to resume; "
                            f"start it again with `trm run {saved} --run-dir {directory}`")
        recipe = load_recipe(saved, overrides)
        return _run(Trainer(recipe, directory, resume=True, show_progress=show_progress))
    if recipe_path is None:
        raise UserError("trm run needs a RECIPE, or --resume RUN_DIR")
    from trm.recipe_catalog import resolve_recipe

    recipe_path = str(resolve_recipe(recipe_path))  # a path, or a shipped recipe's name (`trm recipes`)
    recipe = load_recipe(recipe_path, overrides)  # data.store comes back absolute: recipe.yaml records it so
    directory = Path(run_dir) if run_dir else new_run_dir(Path(recipe_path), recipe)
    directory = _agree_on_directory(directory)
    check_run_dir(directory)
    if (directory / "checkpoints").exists():
        raise UserError(f"{directory}: already holds a run; continue it with `trm run --resume {directory}`")
    # The store is opened (or built) and the model made before the run directory exists: a mistake found there
    # leaves no empty run directory behind.
    trainer = Trainer(recipe, directory, show_progress=show_progress)
    if trainer.is_main and (directory / "metrics.jsonl").exists():  # a run that stopped before its first checkpoint
        print(f"note: {directory} held a run that stopped before its first checkpoint; starting afresh", flush=True)
        (directory / "metrics.jsonl").unlink()
    directory.mkdir(parents=True, exist_ok=True)
    _write_atomic(directory / "recipe.yaml", dump_recipe(recipe))
    return _run(trainer)


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


def _run(trainer: Trainer) -> dict[str, float]:
    try:
        return trainer.run()
    except Exception:
        # A plugin (or a user error found late, in an evaluator say) ended the run: say what is kept. The CLI
        # then prints the error itself in one line.
        if trainer.is_main:
            try:
                kept = f"its last checkpoint is {find_checkpoint(trainer.run_dir).name}; once the cause is fixed, " \
                       f"continue with `trm run --resume {trainer.run_dir}` or evaluate it with `trm eval {trainer.run_dir}`"
            except UserError:
                kept = "no checkpoint was written yet"
            print(f"trm: the run {trainer.run_dir} stopped at step {trainer.step}: {kept}", file=sys.stderr, flush=True)
        raise
    except KeyboardInterrupt:
        if trainer.is_main:
            try:
                last = f"the last checkpoint is {find_checkpoint(trainer.run_dir).name}; continue with " \
                       f"`trm run --resume {trainer.run_dir}`"
            except UserError:
                last = "no checkpoint was written yet"
            print(f"\ninterrupted at step {trainer.step}: {last}", file=sys.stderr, flush=True)
        raise SystemExit(130) from None


def _agree_on_directory(directory: Path) -> Path:
    """The main process's run directory name, for every process (their clocks may straddle a second)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import PartialState
        from accelerate.utils import broadcast_object_list

        PartialState(cpu=cpu_processes())
        holder = [str(directory)]
        broadcast_object_list(holder, from_process=0)
        return Path(holder[0])
    return directory


def _write_atomic(path: Path, text: str) -> None:
    if int(os.environ.get("RANK", "0")) != 0:
        return
    temporary = path.with_name(f".{path.name}.partial-{os.getpid()}")
    temporary.write_text(text)
    os.replace(temporary, path)

"""What a run directory records about its own life, and the checks that keep a run one training of one model.

``RUN/history.jsonl`` gets one JSON line per start and per resume: time, step, the command-line overrides, trm's
version, host and PID, and any accepted difference between the store's task options and the recipe's. A resume
with overrides also rewrites ``RUN/recipe.yaml``, so that ``trm eval`` and later resumes see what training used.

A resume may change how training continues (``train.*``, ``optim.*``, ``eval.*``, ``run.*``) but not what is trained:
:func:`check_resume_overrides` refuses, before anything is loaded, any override that changes ``model.*``,
``backbone.*``, ``halting.*``, ``task.*`` or ``data.store``, whatever the tensor shapes would say.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from trm import __version__
from trm.errors import UserError
from trm.fetch import is_fetch_source
from trm.plugins import registry
from trm.recipe import Recipe
from trm.store import StoreInfo
from trm.structuring import recipe_to_dict, structure_options

HISTORY_NAME = "history.jsonl"
FROZEN_SECTIONS = ("model", "backbone", "halting", "task")
FROZEN_KEYS = ("data.store",)


def append_history(run_dir: Path, event: str, *, step: int, overrides: Sequence[str] = (), **extra: Any) -> None:
    """One line in ``RUN/history.jsonl`` (``event`` is "start" or "resume")."""
    record = {"event": event, "time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "step": step,
              "overrides": list(overrides), "trm_version": __version__, "host": socket.gethostname(),
              "pid": os.getpid(), **extra}
    with (Path(run_dir) / HISTORY_NAME).open("a") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / HISTORY_NAME
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def _frozen_parts(recipe: Recipe) -> dict[str, Any]:
    plain = recipe_to_dict(recipe)
    parts = {section: plain.get(section) for section in FROZEN_SECTIONS}
    parts["data.store"] = plain["data"]["store"]
    return parts


def check_resume_overrides(run_dir: Path, saved: Any, resumed: Any, overrides: Sequence[str]) -> None:
    """Refuse overrides that change the model or the data of a resumed run (``saved`` vs ``resumed`` recipe)."""
    before, after = _frozen_parts(saved), _frozen_parts(resumed)
    changed = [key for key in before if before[key] != after[key]]
    if not changed:
        return
    culprits = [item for item in overrides
                if any(item.partition("=")[0].strip() == key or item.partition("=")[0].strip().startswith(key + ".")
                       for key in changed)] or list(overrides)
    keys = ", ".join(f"{key}.*" if key in FROZEN_SECTIONS else key for key in changed)
    raise UserError(f"--resume {run_dir}: {' '.join(culprits)}: a resumed run cannot change {keys} (the checkpoint "
                    "holds a model trained on the run's store with the run's recipe); start a new run for that")


def _option_differences(recorded: dict[str, Any], wanted: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    differ = {}
    for key in sorted(set(recorded) | set(wanted)):
        left, right = recorded.get(key), wanted.get(key)
        if left == right:
            continue
        if isinstance(left, str) and isinstance(right, str) and (_same_path(left, right) or _fetched(right)):
            continue
        differ[key] = (left, right)
    return differ


def _fetched(value: str) -> bool:
    """A ``fetch:NAME`` source: pinned by name and checksums, recorded in the store as the fetched directory."""
    return bool(is_fetch_source(value))


def _same_path(left: str, right: str) -> bool:
    try:
        return os.path.exists(left) and os.path.exists(right) and os.path.samefile(left, right)
    except OSError:
        return False


def store_option_differences(recipe: Recipe, store_info: StoreInfo) -> dict[str, tuple[Any, Any]]:
    """{option: (store's value, recipe's value)} for the task options the store was built with and the recipe's."""
    wanted = recipe_to_dict(recipe.task.options)
    recorded = dict(store_info.task_options or {})
    try:  # fill the defaults of options added to the task since the store was built
        options_class = registry("tasks").get(recipe.task.name).options_class
        recorded = recipe_to_dict(structure_options(options_class, recorded))
    except Exception:  # noqa: BLE001 - options renamed since: compare as recorded
        pass
    if not isinstance(wanted, dict):
        return {}
    return _option_differences(recorded, wanted)


def check_store_options(recipe: Recipe, store_info: StoreInfo) -> dict[str, tuple[Any, Any]]:
    """Refuse a store built with other task options than the recipe's, unless ``data.match_task_options`` is false.

    Returns the accepted differences (empty when the options match) for the run's history.
    """
    differ = store_option_differences(recipe, store_info)
    if not differ:
        return {}
    listed = ", ".join(f"{key}: store {left!r}, recipe {right!r}" for key, (left, right) in differ.items())
    if recipe.data.match_task_options:
        raise UserError(f"{recipe.data.store}: built with other task options than the recipe's ({listed}); rebuild "
                        f"it with `trm augment {recipe.task.name} --out {recipe.data.store} --overwrite ...`, point "
                        "data.store elsewhere, or set data.match_task_options: false to train on it anyway")
    print(f"note: {recipe.data.store}: built with other task options than the recipe's ({listed}); training on it "
          "anyway (data.match_task_options: false), recorded in the run's history.jsonl", flush=True)
    return differ

"""Reading ARC tasks in the Kaggle format: ``<prefix>_<subset>_challenges.json`` and ``_solutions.json``.

REFERENCE.md 1.3 ("Raw JSON"). A challenges file maps task id -> ``{"train": [{"input", "output"}...],
"test": [{"input"}...]}``; a solutions file maps task id -> one output grid per test input. A hidden (competition)
subset may have no solutions file; its test outputs are then unknown (``None`` here, the dummy grid ``[[0]]`` in
the store, as the reference). Every grid is checked: rectangular, 1..30 on each side, colours 0..9.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from trm.errors import UserError

MAX_SIDE = 30
DUMMY_OUTPUT = np.zeros((1, 1), dtype=np.uint8)  # the reference's stand-in for an unknown test output


@attrs.frozen
class ArcTask:
    """One ARC task: demonstration pairs and test pairs (``output`` is None when the solution is unknown)."""

    task_id: str
    subset: str
    train: tuple[tuple[np.ndarray, np.ndarray], ...]
    test: tuple[tuple[np.ndarray, np.ndarray | None], ...]

    @property
    def has_solutions(self) -> bool:
        return all(output is not None for _, output in self.test)

    def to_json(self) -> dict[str, Any]:
        """The raw task as JSON (test outputs included where known, else null)."""
        return {
            "subset": self.subset,
            "train": [{"input": i.tolist(), "output": o.tolist()} for i, o in self.train],
            "test": [{"input": i.tolist(), "output": None if o is None else o.tolist()} for i, o in self.test],
        }

    @classmethod
    def from_json(cls, task_id: str, raw: dict[str, Any]) -> "ArcTask":
        where = f"task {task_id}"
        return cls(
            task_id, raw.get("subset", ""),
            tuple((to_grid(p["input"], where), to_grid(p["output"], where)) for p in raw.get("train", [])),
            tuple((to_grid(p["input"], where), None if p.get("output") is None else to_grid(p["output"], where))
                  for p in raw["test"]),
        )


def to_grid(value: Any, where: str) -> np.ndarray:
    """A JSON grid (list of rows of ints 0..9) as a uint8 array; UserError naming ``where`` if malformed."""
    try:
        grid = np.array(value, dtype=np.int64)
    except (ValueError, TypeError):
        raise UserError(f"{where}: a grid must be a rectangular list of rows of integers, got {str(value)[:60]}")
    if grid.ndim != 2 or not (1 <= grid.shape[0] <= MAX_SIDE and 1 <= grid.shape[1] <= MAX_SIDE):
        raise UserError(f"{where}: a grid must be 1..{MAX_SIDE} x 1..{MAX_SIDE}, got shape {grid.shape}")
    if grid.min() < 0 or grid.max() > 9:
        raise UserError(f"{where}: grid colours must be 0..9, got {grid.min()}..{grid.max()}")
    return grid.astype(np.uint8)


def subset_paths(directory: Path, subset: str, prefix: str = "arc-agi") -> tuple[Path, Path]:
    """(challenges file, solutions file) of one subset."""
    return (Path(directory) / f"{prefix}_{subset}_challenges.json",
            Path(directory) / f"{prefix}_{subset}_solutions.json")


def known_subsets(directory: Path, prefix: str = "arc-agi") -> list[str]:
    """Subsets whose challenges file is in ``directory`` (``<prefix>_<subset>_challenges.json``), sorted."""
    if not Path(directory).is_dir():
        return []
    head, tail = f"{prefix}_", "_challenges.json"
    return sorted(p.name[len(head):-len(tail)] for p in Path(directory).glob(f"{head}*{tail}"))


def check_subsets(directory: Path, subsets: list[str], prefix: str = "arc-agi") -> None:
    """:class:`UserError` naming the first subset without a challenges file, with a did-you-mean and the subsets
    that exist: a typo is the likeliest cause, and it would otherwise surface as a confusing later check."""
    from trm.plugins import did_you_mean

    known = known_subsets(directory, prefix)
    for subset in subsets:
        if subset not in known:
            raise UserError(f"arc: unknown subset '{subset}'{did_you_mean(subset, known)}: no "
                            f"{subset_paths(directory, subset, prefix)[0].name} in {directory} "
                            f"(known subsets: {', '.join(known) or 'none'})")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as error:
        raise UserError(f"{path}: not valid JSON ({error})")
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object keyed by task id")
    return data


def load_subset(directory: Path, subset: str, *, prefix: str = "arc-agi", solutions_required: bool = True,
                ) -> dict[str, ArcTask]:
    """Every task of one subset, keyed by task id in file order, with test outputs filled from the solutions file.

    ``solutions_required=False`` (a hidden competition subset) tolerates a missing solutions file or task.
    """
    challenges_path, solutions_path = subset_paths(directory, subset, prefix)
    if not challenges_path.is_file():
        available = sorted(p.name for p in Path(directory).glob(f"{prefix}_*_challenges.json")) if \
            Path(directory).is_dir() else []
        raise UserError(f"{challenges_path}: no such file (subset '{subset}'; found: {', '.join(available) or 'none'})")
    challenges = _read_json(challenges_path)
    solutions: dict[str, Any] = {}
    if solutions_path.is_file():
        solutions = _read_json(solutions_path)
    elif solutions_required:
        raise UserError(f"{solutions_path}: no such file (subset '{subset}' needs its solutions; name it as the "
                        f"hidden test subset if its answers are unknown)")
    tasks = {}
    for task_id, raw in challenges.items():
        where = f"{challenges_path.name}: task {task_id}"
        if not isinstance(raw, dict) or "test" not in raw or "train" not in raw:
            raise UserError(f"{where}: expected an object with 'train' and 'test' lists")
        outputs = solutions.get(task_id)
        if outputs is None and solutions_required:
            raise UserError(f"{solutions_path.name}: no solutions for task {task_id}")
        if outputs is not None and len(outputs) != len(raw["test"]):
            raise UserError(f"{solutions_path.name}: task {task_id} has {len(outputs)} solutions for "
                            f"{len(raw['test'])} test inputs")
        train = tuple((to_grid(p["input"], where), to_grid(p["output"], where)) for p in raw["train"])
        test = tuple((to_grid(p["input"], where), None if outputs is None else to_grid(outputs[i], where))
                     for i, p in enumerate(raw["test"]))
        tasks[task_id] = ArcTask(task_id, subset, train, test)
    return tasks


def write_subset(directory: Path, subset: str, tasks: dict[str, dict[str, Any]], *, prefix: str = "arc-agi",
                 with_solutions: bool = True) -> None:
    """Write tasks given as ``{"train": [...], "test": [{"input", "output"}...]}`` in the Kaggle layout (tests, tools)."""
    challenges = {tid: {"train": t["train"], "test": [{"input": p["input"]} for p in t["test"]]}
                  for tid, t in tasks.items()}
    challenges_path, solutions_path = subset_paths(directory, subset, prefix)
    Path(directory).mkdir(parents=True, exist_ok=True)
    challenges_path.write_text(json.dumps(challenges))
    if with_solutions:
        solutions_path.write_text(json.dumps({tid: [p["output"] for p in t["test"]] for tid, t in tasks.items()}))

"""Reading ARC tasks in the Kaggle format: ``<prefix>_<subset>_challenges.json`` and ``_solutions.json``.

docs/reference-code.md 1.3 ("Raw JSON"). A challenges file maps task id -> ``{"train": [{"input", "output"}...],
"test": [{"input"}...]}``; a solutions file maps task id -> one output grid per test input. A hidden (competition)
subset may have no solutions file; its test outputs are then unknown (``None`` here, the dummy grid ``[[0]]`` in
the store, as the reference). Every grid is checked: rectangular, 1..30 on each side, colours integers 0..9;
every problem names the file, the task and the field (docs/reliability.md lists the checks).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from trm.errors import UserError
from trm.textfiles import read_utf8

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


def _show(value: Any) -> str:
    """A JSON value named for a message: its JSON type, and the value when short."""
    if value is None:
        return "null"
    kind = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number"}.get(type(value), type(value).__name__)
    return f"{kind} {json.dumps(value)[:40]}" if isinstance(value, (str, int, float, bool)) else kind


def to_grid(value: Any, where: str) -> np.ndarray:
    """A JSON grid (a list of equal-length rows of integers 0..9) as a uint8 array; UserError naming ``where``.

    Colours are checked strictly: 1.5, "3", true, -1 and 10 are refused rather than converted (NumPy would read
    1.5 as 1, "3" as 3 and true as 1, a silently different puzzle)."""
    if not isinstance(value, list) or not value:
        raise UserError(f"{where}: expected a grid (a list of rows of colours), got {_show(value)}")
    width = None
    for r, row in enumerate(value):
        if not isinstance(row, list):
            raise UserError(f"{where}: row {r} is {_show(row)}, expected a list of colours (a grid is a list of rows)")
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise UserError(f"{where}: ragged grid: row {r} has {len(row)} cells, row 0 has {width}")
    height = len(value)
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        raise UserError(f"{where}: a grid must be 1..{MAX_SIDE} x 1..{MAX_SIDE}, got {height}x{width}")
    for r, row in enumerate(value):
        if set(map(type, row)) != {int} or min(row) < 0 or max(row) > 9:  # type(True) is bool, not int
            c, cell = next((c, x) for c, x in enumerate(row) if type(x) is not int or not 0 <= x <= 9)
            raise UserError(f"{where}: colour {json.dumps(cell)} at row {r}, column {c}: colours are integers 0..9")
    return np.array(value, dtype=np.uint8)


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
    text = read_utf8(path, "ARC JSON file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object keyed by task id, got {_show(data)}")
    return data


def _pairs(raw: dict[str, Any], key: str, where: str, *, output: bool) -> list[dict[str, Any]]:
    """The ``train`` or ``test`` list of a challenges entry, each pair checked to be an object with its grids."""
    pairs = raw[key]
    if not isinstance(pairs, list):
        raise UserError(f"{where}: '{key}' is {_show(pairs)}, expected a list of pairs")
    fields = ("input", "output") if output else ("input",)
    for index, pair in enumerate(pairs):
        if not isinstance(pair, dict):
            raise UserError(f"{where}: {key}[{index}] is {_show(pair)}, expected an object with "
                            f"{' and '.join(repr(f) for f in fields)}")
        for field in fields:
            if field not in pair:
                raise UserError(f"{where}: {key}[{index}] has no '{field}'")
    return pairs


def _solutions_of(outputs: Any, where: str, tests: int) -> list[Any]:
    """One task's entry of a solutions file: a list of grids, one per test input."""
    looks_like_grid = isinstance(outputs, list) and bool(outputs) and all(
        isinstance(row, list) and all(type(x) is int for x in row) for row in outputs)
    if looks_like_grid and tests == 1 and len(outputs) != 1:
        raise UserError(f"{where}: expected a list of grids (one per test input), got one grid; wrap it in [...]")
    if not isinstance(outputs, list):
        raise UserError(f"{where}: expected a list of grids (one per test input), got {_show(outputs)}")
    if len(outputs) != tests:
        raise UserError(f"{where}: {len(outputs)} solutions for {tests} test inputs")
    return outputs


def load_subset(directory: Path, subset: str, *, prefix: str = "arc-agi", solutions_required: bool = True,
                ) -> dict[str, ArcTask]:
    """Every task of one subset, keyed by task id in file order, with test outputs filled from the solutions file.

    ``solutions_required=False`` (a hidden competition subset) tolerates a missing solutions file or task. Every
    problem is a UserError naming the file (challenges or solutions), the task and the field.
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
        where = f"{challenges_path}: task {task_id}"
        if not isinstance(raw, dict) or "test" not in raw or "train" not in raw:
            raise UserError(f"{where}: expected an object with 'train' and 'test' lists, got "
                            f"{_show(raw) if not isinstance(raw, dict) else 'keys ' + ', '.join(map(repr, raw))}")
        train_pairs = _pairs(raw, "train", where, output=True)
        test_pairs = _pairs(raw, "test", where, output=False)
        outputs = solutions.get(task_id)
        solved_where = f"{solutions_path}: task {task_id}"
        if outputs is None and solutions_required:
            raise UserError(f"{solutions_path}: no solutions for task {task_id}")
        if outputs is not None:
            outputs = _solutions_of(outputs, solved_where, len(test_pairs))
        train = tuple((to_grid(p["input"], f"{where}: train[{i}].input"),
                       to_grid(p["output"], f"{where}: train[{i}].output")) for i, p in enumerate(train_pairs))
        test = tuple((to_grid(p["input"], f"{where}: test[{i}].input"),
                      None if outputs is None else to_grid(outputs[i], f"{solved_where}: solution {i}"))
                     for i, p in enumerate(test_pairs))
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

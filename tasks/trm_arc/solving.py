"""ARC's hooks for looking at a model: a known task's test inputs in every augmented version, voting, drawing.

An ARC model has a learned puzzle embedding per augmented version of each task it was trained on, so it can only
solve those tasks: PUZZLE is a task id among the checkpoint's identifier names, or a Kaggle-format JSON file of such
a task (``{"train": [...], "test": [...]}`` named by its file stem, or a challenges file keyed by task id). Each
test input becomes one row per version the model knows (the version's dihedral transform and colour map applied,
with that version's identifier); the predictions are de-augmented and voted on exactly as the ``arc_vote``
evaluator does, and the two best candidates are the two attempts.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from trm.errors import UserError
from trm.types import Puzzle, Solution, SolveContext
from trm_arc.canvas import CANVAS, COLOUR_OFFSET, PAD, crop_canvas, grid_to_canvas
from trm_arc.kaggle import to_grid
from trm_arc.transforms import augment_grid, deaugment_grid, parse_name
from trm_arc.vote import VoteTable, grid_key, top_attempts

# The usual ARC palette (colours 0..9); PAD light grey, EOS white.
PALETTE = ["#000000", "#0074d9", "#ff4136", "#2ecc40", "#ffdc00", "#aaaaaa", "#f012be", "#ff851b", "#7fdbff",
           "#870c25"]
PAD_COLOUR, EOS_COLOUR = "#d9d9d9", "#ffffff"


def _versions(names: list[str] | None) -> dict[str, list[tuple[int, int, np.ndarray]]]:
    """Task id -> [(identifier, dihedral id, colour map)], the original version first."""
    versions: dict[str, list[tuple[int, int, np.ndarray]]] = defaultdict(list)
    for identifier, name in enumerate(names or []):
        if identifier == 0:  # <blank>
            continue
        try:
            task_id, tid, colour_map = parse_name(name)
        except ValueError:
            continue
        versions[task_id].append((identifier, tid, colour_map))
    for entries in versions.values():
        entries.sort(key=lambda entry: (entry[1] != 0 or bool(np.any(entry[2] != np.arange(10))), entry[0]))
    return versions


def _unknown_task(task_id: str, known: int) -> UserError:
    return UserError(
        f"ARC task {task_id!r} is not one the model was trained on (it knows {known} task ids): an ARC model only "
        "knows its training tasks' ids, each with a learned puzzle embedding, so a new task needs a model trained "
        "with it (add its JSON to a subset of the store and train or fine-tune)")


def _tasks_from_json(path: Path) -> dict[str, dict[str, Any]]:
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not a readable JSON file ({exc})") from None
    if isinstance(raw, dict) and "test" in raw:
        return {path.stem: raw}
    if isinstance(raw, dict) and raw and all(isinstance(v, dict) and "test" in v for v in raw.values()):
        return raw
    raise UserError(f"{path}: expected a Kaggle ARC task ({{'train': [...], 'test': [...]}}) or a challenges file "
                    "keyed by task id")


def _tasks_from_recipe(task_id: str, context: SolveContext) -> dict[str, Any] | None:
    """The task's raw JSON from the run's store (its held-out tasks) or from the recipe's Kaggle source folder."""
    base = task_id.split("@")[0]
    if context.store_info is not None:
        held_out = context.store_info.extras.get("test_puzzles") or {}
        if base in held_out:
            return held_out[base]
    options = context.task_options
    source = Path(getattr(options, "source", "") or "")
    if source.is_dir():
        from trm_arc.kaggle import load_subset

        subsets = [s for s in (*getattr(options, "subsets", []), getattr(options, "hidden_test_subset", None)) if s]
        wanted = task_id.split("@")[1] if "@" in task_id else None
        for subset in subsets:
            if wanted is not None and subset != wanted:
                continue
            try:
                tasks = load_subset(source, subset, prefix=getattr(options, "file_prefix", "arc-agi"),
                                    solutions_required=False)
            except UserError:
                continue
            if base in tasks:
                return tasks[base].to_json()
    return None


def read_puzzles(text: str, context: SolveContext) -> list[Puzzle]:
    """TaskSpec.read_puzzles of ``arc``: one puzzle per test input of the named task(s)."""
    versions = _versions(context.identifier_names)
    if not versions:
        raise UserError("this checkpoint carries no ARC identifier names (and the run's store is not here), so the "
                        "tasks the model knows cannot be told")
    path = Path(text)
    if text.endswith(".json") or path.is_file():
        if not path.is_file():
            raise UserError(f"{text}: no such file")
        tasks = _tasks_from_json(path)
    else:
        if text not in versions:
            raise _unknown_task(text, len(versions))
        raw = _tasks_from_recipe(text, context)
        if raw is None:
            raise UserError(f"ARC task {text!r} is known to the model, but its test inputs are neither in the run's "
                            "store nor in the recipe's source folder here; give the task's Kaggle JSON file instead")
        tasks = {text: raw}
    puzzles = []
    for task_id, raw in tasks.items():
        if task_id not in versions:
            raise _unknown_task(task_id, len(versions))
        where = f"{text}: task {task_id}"
        for index, pair in enumerate(raw["test"]):
            if not isinstance(pair, dict) or "input" not in pair:
                raise UserError(f"{where}: test pair {index} has no 'input' grid")
            grid = to_grid(pair["input"], f"{where} test {index}")
            rows = [grid_to_canvas(augment_grid(grid, tid, colour_map)) for _, tid, colour_map in versions[task_id]]
            output = pair.get("output")
            label = grid_to_canvas(to_grid(output, f"{where} test {index} output")).astype(np.int64) \
                if output is not None else None
            puzzles.append(Puzzle(
                name=f"{task_id} test {index}", inputs=np.stack(rows).astype(np.int64),
                identifiers=np.array([identifier for identifier, _, _ in versions[task_id]], dtype=np.int64),
                label=label, data=[(tid, colour_map) for _, tid, colour_map in versions[task_id]]))
    return puzzles


def combine(puzzle: Puzzle, preds: Any, q_halt: Any, context: SolveContext) -> Solution:
    """Vote over the de-augmented predictions of every version (count, then mean sigmoid(q_halt)); two attempts."""
    table = VoteTable()
    slot = (puzzle.name, 0)
    confidence = 1.0 / (1.0 + np.exp(-np.asarray(q_halt, dtype=np.float64)))
    for row, (tid, colour_map) in enumerate(puzzle.data):
        grid = crop_canvas(np.asarray(preds[row]))
        table.add(slot, grid_key(deaugment_grid(grid, tid, colour_map) if grid.size else grid),
                  float(confidence[row]))
    first, second = top_attempts(table, slot, np.zeros((1, 1), dtype=np.uint8))
    ranked = table.ranked(slot)
    counts = [count for key, count, _ in ranked if key[0] and key[1]][:2]
    attempts = tuple(grid_to_canvas(grid).astype(np.int64) for grid in (first, second))
    note = f"votes: {len(ranked)} distinct answers from {len(puzzle.data)} versions"
    if counts:
        note += "; " + ", ".join(f"attempt {k + 1} has {count}" for k, count in enumerate(counts)) + " votes"
    if puzzle.label is not None:
        hits = [k + 1 for k, attempt in enumerate(attempts) if np.array_equal(attempt, puzzle.label)]
        note += f"; known answer: {'attempt ' + str(hits[0]) + ' is right' if hits else 'neither attempt is right'}"
    return Solution(tokens=attempts[0], attempts=attempts, note=note)


def _view(tokens: np.ndarray, inputs: np.ndarray | None) -> tuple[int, int]:
    """Rows and columns of the canvas worth showing: everything that is not PAD, in the answer or the input."""
    grids = [tokens] + ([inputs] if inputs is not None else [])
    rows = cols = 1
    for grid in grids:
        used = np.asarray(grid).reshape(CANVAS, CANVAS) != PAD
        if used.any():
            rows = max(rows, int(np.nonzero(used.any(axis=1))[0].max()) + 1)
            cols = max(cols, int(np.nonzero(used.any(axis=0))[0].max()) + 1)
    return rows, cols


def draw(axes: Any, tokens: Any, inputs: Any, changed: Any, context: SolveContext) -> None:
    """The canvas in ARC's palette (PAD grey, EOS white), cut to its used part; changed cells outlined."""
    from matplotlib.colors import to_rgb

    from trm.trajectory import outline_cells

    canvas = np.asarray(tokens).ravel()[:CANVAS * CANVAS]
    rows, cols = _view(canvas, None if inputs is None else np.asarray(inputs).ravel())
    colours = [to_rgb(PAD_COLOUR), to_rgb(EOS_COLOUR)] + [to_rgb(c) for c in PALETTE]
    picture = np.array([colours[int(t)] if 0 <= t < len(colours) else (1, 0, 1) for t in canvas.tolist()])
    axes.imshow(picture.reshape(CANVAS, CANVAS, 3)[:rows, :cols], interpolation="nearest")
    if changed is not None:
        outline_cells(axes, np.asarray(changed).reshape(CANVAS, CANVAS)[:rows, :cols].ravel(), (rows, cols))


def canonical_input(tokens: Any) -> bytes:
    """The input grid wherever it lies on the canvas (training versions are translated), up to a dihedral transform
    and a colour permutation with black fixed: equal for two inputs iff the builder's augmentation maps one to the
    other."""
    canvas = np.asarray(tokens).reshape(CANVAS, CANVAS)
    colour = canvas >= COLOUR_OFFSET
    if not colour.any():
        return b""
    rows, cols = np.nonzero(colour.any(axis=1))[0], np.nonzero(colour.any(axis=0))[0]
    grid = (canvas[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.int64) - COLOUR_OFFSET).clip(0, 9)
    from trm.symmetry import canonical_form

    return canonical_form(grid, values=True, fixed=(0,))


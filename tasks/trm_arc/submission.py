"""The Kaggle ARC Prize submission file (docs/reference-code.md 7, "Submission"; 10.7).

``{task_id: [{"attempt_1": grid, "attempt_2": grid}, ...]}`` with one entry per test input, in order, for every
held-out task. Unlike the reference, a test input without predictions gets the fallback grid instead of being
skipped, so the list never shifts out of alignment with the task's test inputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from trm_arc.vote import HeldOutTasks, VoteTable, top_attempts


def submission(table: VoteTable, tasks: HeldOutTasks, fallback: np.ndarray) -> dict[str, list[dict[str, Any]]]:
    result: dict[str, list[dict[str, Any]]] = {}
    for task_id in tasks.task_ids:
        entries = []
        for index in range(tasks.num_inputs[task_id]):
            first, second = top_attempts(table, (task_id, index), fallback)
            entries.append({"attempt_1": first.tolist(), "attempt_2": second.tolist()})
        result[task_id] = entries
    return result


def validate_submission(data: Any, tasks: HeldOutTasks) -> list[str]:
    """Problems that would make Kaggle reject ``data`` (empty when valid)."""
    problems = []
    if not isinstance(data, dict):
        return ["submission is not a JSON object"]
    for task_id in tasks.task_ids:
        entries = data.get(task_id)
        if not isinstance(entries, list) or len(entries) != tasks.num_inputs[task_id]:
            problems.append(f"{task_id}: expected {tasks.num_inputs[task_id]} entries")
            continue
        for index, entry in enumerate(entries):
            for attempt in ("attempt_1", "attempt_2"):
                grid = entry.get(attempt) if isinstance(entry, dict) else None
                ok = (isinstance(grid, list) and grid and all(isinstance(r, list) and r for r in grid)
                      and len({len(r) for r in grid}) == 1
                      and all(isinstance(v, int) and 0 <= v <= 9 for r in grid for v in r))
                if not ok:
                    problems.append(f"{task_id}[{index}].{attempt}: not a non-empty rectangular grid of 0..9")
    extra = set(data) - set(tasks.task_ids)
    if extra:
        problems.append(f"unknown task ids: {', '.join(sorted(extra)[:5])}")
    return problems


def write_submission(path: Path, table: VoteTable, tasks: HeldOutTasks, fallback: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(submission(table, tasks, fallback)))
    tmp.replace(path)
    return path

"""Voting over augmented versions and pass@K (docs/reference-code.md 7, "Aggregation"; 10.5).

Each test input of each held-out task collects candidate answers (de-augmented predicted grids). A candidate's
score is its vote count; ties are broken by its mean sigmoid(q_halt), which is not a weight. pass@K counts a test
input as solved when the true output is among the top K distinct candidates; a task scores the fraction of its test
inputs solved, and the metric is the mean over tasks with known answers. A test input without votes is wrong.

Grids are keyed by their shape and bytes (exact, no hash collisions); :func:`grid_key` / :func:`key_grid` convert.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Mapping

import numpy as np

Slot = tuple[str, int]  # (task id, test input index)


def grid_key(grid: np.ndarray) -> bytes:
    grid = np.ascontiguousarray(grid, dtype=np.uint8)
    return bytes(grid.shape) + grid.tobytes()


def key_grid(key: bytes) -> np.ndarray:
    rows, cols = key[0], key[1]
    return np.frombuffer(key[2:], dtype=np.uint8).reshape(rows, cols)


class HeldOutTasks:
    """The test inputs (and answers, where known) of the held-out tasks, from the store's ``test_puzzles`` extra."""

    def __init__(self, test_puzzles: Mapping[str, Any]):
        self.task_ids: list[str] = list(test_puzzles)
        self.num_inputs: dict[str, int] = {}
        self.answers: dict[Slot, bytes | None] = {}
        self.slots_by_input: dict[str, dict[bytes, list[int]]] = {}
        for task_id, task in test_puzzles.items():
            by_input: dict[bytes, list[int]] = defaultdict(list)
            for index, pair in enumerate(task["test"]):
                by_input[grid_key(np.array(pair["input"], dtype=np.uint8))].append(index)
                output = pair.get("output")
                self.answers[(task_id, index)] = None if output is None else grid_key(np.array(output, np.uint8))
            self.num_inputs[task_id] = len(task["test"])
            self.slots_by_input[task_id] = dict(by_input)

    def scored_tasks(self) -> list[str]:
        """Tasks whose every answer is known (hidden-subset tasks are not scored)."""
        return [t for t in self.task_ids
                if all(self.answers[(t, i)] is not None for i in range(self.num_inputs[t]))]

    def slots(self) -> Iterable[Slot]:
        for task_id in self.task_ids:
            for index in range(self.num_inputs[task_id]):
                yield task_id, index


class VoteTable:
    """Per slot: candidate grid key -> [vote count, sum of sigmoid(q_halt)]."""

    def __init__(self) -> None:
        self.votes: dict[Slot, dict[bytes, list[float]]] = defaultdict(dict)

    def add(self, slot: Slot, key: bytes, confidence: float) -> None:
        entry = self.votes[slot].get(key)
        if entry is None:
            self.votes[slot][key] = [1, confidence]
        else:
            entry[0] += 1
            entry[1] += confidence

    def ranked(self, slot: Slot) -> list[tuple[bytes, int, float]]:
        """(key, count, mean confidence) of the slot's candidates, best first: count, then mean confidence."""
        candidates = [(key, int(count), total / count) for key, (count, total) in self.votes.get(slot, {}).items()]
        candidates.sort(key=lambda item: (item[1], item[2]), reverse=True)
        return candidates

    def num_votes(self, slot: Slot) -> int:
        return int(sum(count for count, _ in self.votes.get(slot, {}).values()))


def pass_at_k(table: VoteTable, tasks: HeldOutTasks, ks: Iterable[int]) -> dict[int, float]:
    """Mean over scored tasks of the fraction of test inputs whose answer is among the top K candidates."""
    ks = sorted(set(int(k) for k in ks))
    scored = tasks.scored_tasks()
    if not scored:
        return {k: float("nan") for k in ks}
    totals = dict.fromkeys(ks, 0.0)
    for task_id in scored:
        count = tasks.num_inputs[task_id]
        solved = dict.fromkeys(ks, 0)
        for index in range(count):
            answer = tasks.answers[(task_id, index)]
            ranked = [key for key, _, _ in table.ranked((task_id, index))]
            rank = ranked.index(answer) if answer in ranked else None
            for k in ks:
                solved[k] += rank is not None and rank < k
        for k in ks:
            totals[k] += solved[k] / count
    return {k: totals[k] / len(scored) for k in ks}


def top_attempts(table: VoteTable, slot: Slot, fallback: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two attempts of a submission: the top-2 candidates; one candidate is repeated; none gives ``fallback``.

    Empty grids (a prediction whose crop is 0 x 0) are not valid attempts and are passed over.
    """
    ranked = [item for item in table.ranked(slot) if item[0][0] and item[0][1]]
    if not ranked:
        return fallback, fallback
    first = key_grid(ranked[0][0])
    second = key_grid(ranked[1][0]) if len(ranked) > 1 else first
    return first, second

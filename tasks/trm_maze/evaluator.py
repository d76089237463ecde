"""The ``maze_path`` evaluator: exact accuracy as the paper reports it, plus how close wrong answers come.

Exact accuracy is the reference's metric (docs/reference-code.md 7): the step-16 argmax equals the label at every supervised
cell. A maze can have several shortest paths and the label is one of them, so exact accuracy alone hides a model
that finds *a* shortest path but not the labelled one (common with dihedral augmentation, which changes how ties
are broken). The path metrics judge the predicted ``o`` cells against the maze itself, by BFS:

* ``connected_rate``: the predicted path cells, all on open cells, link S to G.
* ``valid_path_rate``: they form exactly one shortest S-to-G path (connected, and as many cells as the BFS distance
  minus one, so no stray cells). Cells other than ``o`` are not judged here; ``cell_accuracy`` covers them.
* ``path_iou``: |predicted path & labelled path| / |union|, averaged over mazes (1 for an exact path).
* ``cell_accuracy``: fraction of supervised cells predicted right.

Rows with ``valid`` False (batch padding) are skipped. The trainer builds an evaluator once per run and reuses it,
so, as with ``arc_vote``, the first ``update()`` after a ``compute()`` starts a new pass: metrics never mix rounds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from trm_maze.grid import PATH, check_path, endpoints, shortest_distance
from trm_maze.options import MazePathOptions
from trm_maze.render import render_prediction

IGNORE_LABEL = -100


def judge(question: np.ndarray, label: np.ndarray, prediction: np.ndarray) -> dict[str, Any]:
    """One maze's verdict: exact, connects, shortest, path lengths, IoU with the labelled path, cells right."""
    supervised = label != IGNORE_LABEL
    right = (prediction == label) | ~supervised
    predicted_path, labelled_path = prediction == PATH, label == PATH
    union = int((predicted_path | labelled_path).sum())
    try:
        endpoints(question)
        shortest = shortest_distance(question)
        connects, is_shortest = check_path(question, prediction, shortest=shortest)
    except ValueError:  # not a maze (e.g. a foreign store): only exactness can be judged
        shortest, connects, is_shortest = -1, False, False
    return {
        "exact": bool(right.all()),
        "connects": connects,
        "shortest": connects and is_shortest,
        "predicted_path_cells": int(predicted_path.sum()),
        "shortest_moves": shortest,
        "path_iou": float((predicted_path & labelled_path).sum() / union) if union else 1.0,
        "cells_right": int((right & supervised).sum()),
        "cells_supervised": int(supervised.sum()),
    }


class MazePathEvaluator:
    """Accumulates per-maze verdicts over one evaluation pass (see the module docstring for the metrics)."""

    def __init__(self, options: MazePathOptions, context: Any = None):
        self.options = options
        self.records: list[dict[str, Any]] = []
        self.failures: list[str] = []
        self._pass_closed = False

    def update(self, batch: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> None:
        if self._pass_closed:  # a new evaluation pass
            self.records, self.failures, self._pass_closed = [], [], False
        inputs, labels = np.asarray(batch["inputs"]), np.asarray(batch["labels"])
        preds = np.asarray(outputs["preds"])
        valid = np.asarray(batch.get("valid", np.ones(len(inputs), dtype=bool)), dtype=bool)
        steps = outputs.get("steps")
        for row in np.flatnonzero(valid):
            record = judge(inputs[row], labels[row], preds[row])
            record["index"] = len(self.records)
            if steps is not None:
                record["steps"] = int(np.asarray(steps)[row])
            self.records.append(record)
            if not record["exact"] and len(self.failures) < self.options.render_failures:
                label = np.where(labels[row] == IGNORE_LABEL, inputs[row], labels[row])
                self.failures.append(f"maze {record['index']}:\n" + render_prediction(inputs[row], preds[row], label))

    def compute(self) -> dict[str, float]:
        self._pass_closed = True
        if not self.records:
            return {}
        count = len(self.records)

        def rate(key: str) -> float:
            return sum(bool(r[key]) for r in self.records) / count

        cells = sum(r["cells_supervised"] for r in self.records)
        return {
            "exact_accuracy": rate("exact"),
            "valid_path_rate": rate("shortest"),
            "connected_rate": rate("connects"),
            "path_iou": sum(r["path_iou"] for r in self.records) / count,
            "cell_accuracy": sum(r["cells_right"] for r in self.records) / cells if cells else 0.0,
            "count": float(count),
        }

    def write(self, directory: Path) -> list[Path]:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        summary = directory / "maze_path.json"
        summary.write_text(json.dumps(self.compute(), indent=2) + "\n")
        written.append(summary)
        if self.options.write_examples:
            examples = directory / "maze_path_examples.jsonl"
            examples.write_text("".join(json.dumps(record) + "\n" for record in self.records))
            written.append(examples)
        if self.failures:
            failures = directory / "maze_path_failures.txt"
            failures.write_text("\n\n".join(self.failures) + "\n")
            written.append(failures)
        return written


def build_evaluator(options: MazePathOptions, context: Any) -> MazePathEvaluator:
    return MazePathEvaluator(options, context)

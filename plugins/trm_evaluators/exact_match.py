"""The ``exact_match`` evaluator: how many answers are entirely right, and how many cells are.

Generic over tasks: it compares predictions with labels on every supervised position (labels of -100 are ignored,
docs/reference-code.md 1.0) and skips padding rows (``valid`` False). It reports

* ``exact_accuracy``: fraction of examples whose every supervised position is right (the paper's "accuracy",
  docs/reference-code.md 5: ``seq_is_correct``);
* ``cell_accuracy``: fraction of supervised positions that are right, over all examples (token accuracy);
* ``examples``: how many examples were scored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import attrs
import numpy as np

from trm.hookspecs import hookimpl
from trm.types import EvalContext, EvaluatorSpec

IGNORE_LABEL = -100


@attrs.frozen
class ExactMatchOptions:
    """exact_match takes no options."""


class ExactMatch:
    """Counts of one evaluation pass: ``compute()`` closes the pass and the next ``update()`` starts a new one."""

    def __init__(self, context: EvalContext | None = None):
        self.context = context
        self._reset()

    def _reset(self) -> None:
        self.examples = 0
        self.exact = 0
        self.cells = 0
        self.correct_cells = 0
        self._closed = False

    def update(self, batch: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> None:
        if self._closed:  # the evaluator lives for the whole run; each evaluation is scored on its own
            self._reset()
        labels = np.asarray(batch["labels"])
        preds = np.asarray(outputs["preds"])
        valid = np.asarray(batch.get("valid", np.ones(len(labels), dtype=bool))).astype(bool)
        labels, preds = labels[valid], preds[valid]
        supervised = labels != IGNORE_LABEL
        right = (preds == labels) & supervised
        self.examples += len(labels)
        self.exact += int((right.sum(1) == supervised.sum(1)).sum())
        self.cells += int(supervised.sum())
        self.correct_cells += int(right.sum())

    def compute(self) -> dict[str, float]:
        self._closed = True
        return {
            "exact_accuracy": self.exact / self.examples if self.examples else float("nan"),
            "cell_accuracy": self.correct_cells / self.cells if self.cells else float("nan"),
            "examples": float(self.examples),
        }

    def write(self, directory: Path) -> list[Path]:
        path = Path(directory) / "exact_match.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.compute(), indent=2) + "\n")
        return [path]


@hookimpl
def trm_evaluators():
    return [
        EvaluatorSpec(
            name="exact_match",
            options_class=ExactMatchOptions,
            build=lambda options, context: ExactMatch(context),
            summary="exact_accuracy (whole answer right) and cell_accuracy (supervised positions right); any task",
        )
    ]

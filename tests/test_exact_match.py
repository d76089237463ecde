"""The generic exact_match evaluator: whole-answer and per-cell accuracy, ignoring -100 labels and padding rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trm import plugins
from trm_evaluators.exact_match import ExactMatch, ExactMatchOptions


def test_counts_exact_and_cell_accuracy():
    evaluator = ExactMatch()
    labels = np.array([[1, 2, 3], [1, 2, 3], [4, -100, 5], [9, 9, 9]])
    preds = np.array([[1, 2, 3], [1, 0, 3], [4, 7, 5], [0, 0, 0]])
    valid = np.array([True, True, True, False])  # the last row is padding
    evaluator.update({"labels": labels, "valid": valid}, {"preds": preds})
    metrics = evaluator.compute()
    assert metrics["exact_accuracy"] == pytest.approx(2 / 3)  # row 2's wrong cell is ignored
    assert metrics["cell_accuracy"] == pytest.approx(7 / 8)
    assert metrics["examples"] == 3
    evaluator.update({"labels": labels[:1], "valid": valid[:1]}, {"preds": preds[:1] * 0})
    assert evaluator.compute()["exact_accuracy"] == 0.0  # a new pass: the first pass's rows no longer count


def test_empty_and_write(tmp_path):
    evaluator = ExactMatch()
    assert np.isnan(evaluator.compute()["exact_accuracy"])
    evaluator.update({"labels": np.ones((2, 2)), "valid": np.ones(2, bool)}, {"preds": np.ones((2, 2))})
    [path] = evaluator.write(tmp_path)
    assert json.loads(path.read_text())["exact_accuracy"] == 1.0


def test_registered_as_plugin():
    spec = plugins.registry("evaluators").get("exact_match")
    assert spec.options_class is ExactMatchOptions
    assert spec.build(ExactMatchOptions(), None).compute()["examples"] == 0


def test_each_evaluation_pass_is_scored_on_its_own():
    from trm_evaluators.exact_match import ExactMatch

    evaluator = ExactMatch()
    labels = np.array([[2, 3], [4, 5]])
    batch = {"labels": labels, "valid": np.array([True, True])}
    evaluator.update(batch, {"preds": np.array([[2, 3], [0, 0]])})
    assert evaluator.compute()["exact_accuracy"] == 0.5
    evaluator.update(batch, {"preds": labels})
    second = evaluator.compute()
    assert second["exact_accuracy"] == 1.0 and second["examples"] == 2.0

"""The training-depth curriculum: the depth per step, recipe checks, the model's training-only depth and a run."""

from __future__ import annotations

import json

import pytest
import torch

from trm import config
from trm.curriculum import depth_at
from trm.recipe import DepthPhase

from test_config import GOOD, problems_of, write
from test_engine import CountingBackbone, batch, tiny
from in_process import trm_in_process
from test_train import write_recipe

PHASES = [DepthPhase(0.25, 1, 1), DepthPhase(0.5, 2, 3)]


def test_depth_follows_the_phases_then_the_models_own():
    depths = [depth_at(step, 8, PHASES) for step in range(9)]
    assert depths == [(1, 1), (1, 1), (2, 3), (2, 3), None, None, None, None, None]
    assert depth_at(0, 8, []) is None


def test_recipe_reads_phases_and_reports_bad_ones_with_their_path(tmp_path, fake_host):
    good = GOOD.replace("epochs: 2}", "epochs: 2, depth_curriculum: [{until: 0.3, h_cycles: 1, l_cycles: 2}]}")
    recipe = config.load_recipe(write(tmp_path, good), host=fake_host)
    assert recipe.train.depth_curriculum == [DepthPhase(0.3, 1, 2)]
    bad = GOOD.replace("epochs: 2}", "epochs: 2, depth_curriculum: [{until: 1.5, h_cycles: 0, l_cycles: 2}]}")
    problems = " ".join(problems_of(write(tmp_path, bad), fake_host))
    assert "depth_curriculum" in problems and "until" in problems and "h_cycles" in problems
    unordered = GOOD.replace("epochs: 2}", "epochs: 2, depth_curriculum: [{until: 0.5, h_cycles: 1, l_cycles: 1}, "
                                           "{until: 0.2, h_cycles: 2, l_cycles: 2}]}")
    assert "increasing order" in " ".join(problems_of(write(tmp_path, unordered), fake_host))


def test_training_uses_the_curriculum_depth_and_evaluation_the_models():
    model = tiny(T=3, n=2)
    model.backbone = CountingBackbone(model.backbone)
    data = batch()
    model.train()
    model.train_depth = (1, 2)
    model(model.initial_carry(data), data)
    assert len(model.backbone.calls) == 1 * (2 + 1) and all(model.backbone.calls)  # T=1: the one cycle has grad
    model.backbone.calls.clear()
    model.eval()
    with torch.no_grad():
        model(model.initial_carry(data), data)
    assert len(model.backbone.calls) == 3 * (2 + 1)


def test_a_run_prints_its_phases_and_evaluates_the_whole_split_at_the_end(tmp_path):
    recipe = write_recipe(tmp_path, steps=6)
    run = tmp_path / "run"
    result = trm_in_process("run", str(recipe), "--run-dir", str(run), "--no-progress",
                            "train.depth_curriculum=[{until: 0.5, h_cycles: 1, l_cycles: 1}]",
                            "eval.final_whole_split=true",
                            "train.ema=0.5")  # EMA weights that moved from the initial ones in 6 steps
    assert result.returncode == 0, result.stderr[-3000:]
    assert "depth curriculum: from step 0, T=1, n=1" in result.stderr
    assert "depth curriculum: from step 3, T=2, n=2 (the model's own)" in result.stderr
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "eval"]
    assert evals[-1]["eval/examples"] == 500  # the recipe's eval.limit is 64: the final evaluation took the whole split
    assert evals[-1]["wall_s"] > 0
    # `trm eval` of the run directory over the whole split repeats the run's final number exactly (same weights,
    # order, batch and halting; the model called as training called it).
    again = trm_in_process("eval", str(run), "eval.limit=null", "--no-progress", "--out", str(tmp_path / "again.json"))
    assert again.returncode == 0, again.stderr[-3000:]
    metrics = json.loads((tmp_path / "again.json").read_text())["metrics"]
    assert 0 < evals[-1]["exact_match/cell_accuracy"] < 1, "the comparison needs a model that gets some cells right"
    for key in ("exact_match/exact_accuracy", "exact_match/cell_accuracy", "eval/examples", "eval/mean_steps"):
        assert metrics[key] == evals[-1][key], key

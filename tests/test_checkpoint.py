"""Checkpoint files: pickle-free round trip, atomic replacement, finding the latest complete one; batch plans; EMA."""

from __future__ import annotations

import pytest
import torch

from trm.checkpoint import find_checkpoint, flatten, read_checkpoint, unflatten, write_checkpoint
from trm.errors import UserError
from trm.data import plan_batches
from trm.optim import EMA


def test_flatten_round_trip_keeps_structure_and_tensors():
    value = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(2, 3)}},
             "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.95), "params": [0]}], "none": None}
    tensors: dict = {}
    restored = unflatten(flatten(value, tensors), tensors)
    assert restored["param_groups"][0]["betas"] == (0.9, 0.95)
    assert list(restored["state"]) == [0]
    assert torch.equal(restored["state"][0]["exp_avg"], value["state"][0]["exp_avg"])


def test_write_read_and_latest(tmp_path):
    for step in (5, 10):
        write_checkpoint(tmp_path, step, model_state={"w": torch.full((2,), float(step))}, ema_state=None,
                         optim_state={"dense": {}}, state={"step": step, "rng": torch.get_rng_state()},
                         identifiers=["<blank>", "a"])
    latest = find_checkpoint(tmp_path)
    assert latest.name == "step_10"
    parts = read_checkpoint(latest)
    assert parts["model"]["w"].tolist() == [10.0, 10.0]
    assert parts["state"]["step"] == 10 and parts["identifiers"] == ["<blank>", "a"]
    assert parts["ema"] is None


def test_partial_checkpoint_is_ignored(tmp_path):
    write_checkpoint(tmp_path, 5, model_state={"w": torch.zeros(1)}, ema_state=None, optim_state={}, state={},
                     identifiers=None)
    (tmp_path / "checkpoints" / "latest").unlink()
    (tmp_path / "checkpoints" / "step_9").mkdir()  # a crash before COMPLETE was written
    assert find_checkpoint(tmp_path).name == "step_5"


def test_a_killed_writers_staging_folder_is_removed_by_the_next_write(tmp_path):
    root = tmp_path / "checkpoints"
    (root / ".step_420.partial-2273").mkdir(parents=True)  # SIGKILL while writing (seen on the GPU machine)
    (root / ".step_420.partial-2273" / "optim.safetensors").write_bytes(b"x" * 100)
    (root / ".latest.partial-2273").write_text("step_420")
    write_checkpoint(tmp_path, 5, model_state={"w": torch.zeros(1)}, ema_state=None, optim_state={}, state={},
                     identifiers=None)
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_5"]


def test_missing_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such run directory"):
        find_checkpoint(tmp_path / "nope")
    with pytest.raises(UserError, match="holds no complete checkpoint"):
        find_checkpoint(tmp_path)


def test_batch_plan():
    plan = plan_batches(768, 4, None)
    assert (plan.per_device, plan.accumulation) == (192, 1)
    assert plan_batches(768, 2, 96).accumulation == 4
    with pytest.raises(UserError, match="not divisible"):
        plan_batches(768, 5, None)
    with pytest.raises(UserError, match="does not divide"):
        plan_batches(768, 2, 100)


def test_ema_tracks_and_swaps():
    model = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model, 0.5)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update()
    assert torch.allclose(ema.shadow["weight"], torch.full((2, 2), 0.5))
    with ema.applied():
        assert torch.allclose(model.weight, torch.full((2, 2), 0.5))
    assert torch.allclose(model.weight, torch.ones(2, 2))

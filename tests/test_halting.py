"""Halting plugins: rules in training and evaluation, exploration, losses, the bootstrapped target (docs/reference-code.md 4-5)."""

import pytest
import torch

from trm.build import assemble
from trm.engine import ModelConfig
from trm.losses import act_loss
from trm.plugins import registry


def strategy(name, **options):
    spec = registry("halting").get(name)
    return spec.build(spec.options_class(**options))


def test_registered():
    assert {"act_q", "act_q_continue", "fixed"} <= set(registry("halting").names())
    with pytest.raises(ValueError):
        strategy("act_q", exploration_prob=1.5)
    with pytest.raises(ValueError):
        strategy("fixed", max_steps=0)


def test_act_q_training_rule_without_exploration():
    act = strategy("act_q", max_steps=16, exploration_prob=0.0)
    steps = torch.tensor([1, 1, 5, 16], dtype=torch.int32)
    q_halt = torch.tensor([0.5, -0.5, -3.0, -3.0])
    q_continue = torch.tensor([9.0, -9.0, 0.0, 0.0])  # ignored by act_q
    halted = act.should_halt(steps, q_halt, q_continue, True, 16)
    assert halted.tolist() == [True, False, False, True]
    # Evaluation: only the step limit counts, whatever the limit (test-time depth beyond 16).
    assert act.should_halt(steps, q_halt, q_continue, False, 16).tolist() == [False, False, False, True]
    assert not act.should_halt(steps, q_halt, q_continue, False, 32).any()
    # max_steps = 1: every sample halts after one step and the q rule is not consulted.
    assert act.should_halt(steps, -q_halt, q_continue, True, 1).all()


def test_exploration_floor_is_redrawn_every_call_and_uniform():
    torch.manual_seed(0)
    act = strategy("act_q", max_steps=16, exploration_prob=1.0)
    rows = 60_000
    q_halt = torch.full((rows,), 10.0)  # always wants to halt
    halted_at = {}
    for step in (1, 2, 9, 16):
        halted = act.should_halt(torch.full((rows,), step, dtype=torch.int32), q_halt, q_halt, True, 16)
        halted_at[step] = halted.float().mean().item()
    # Floor ~ U{2..16}: P(step >= floor) = (step - 1) / 15; at step 16 always halted.
    assert halted_at[1] == 0.0
    assert abs(halted_at[2] - 1 / 15) < 0.01
    assert abs(halted_at[9] - 8 / 15) < 0.01
    assert halted_at[16] == 1.0
    # Two calls draw independently.
    steps = torch.full((rows,), 9, dtype=torch.int32)
    a = act.should_halt(steps, q_halt, q_halt, True, 16)
    b = act.should_halt(steps, q_halt, q_halt, True, 16)
    assert not torch.equal(a, b)


def test_exploration_probability():
    torch.manual_seed(0)
    act = strategy("act_q", max_steps=16, exploration_prob=0.1)
    rows = 100_000
    halted = act.should_halt(torch.ones(rows, dtype=torch.int32), torch.full((rows,), 10.0), torch.zeros(rows), True, 16)
    assert abs((1 - halted.float().mean().item()) - 0.1) < 0.005  # vetoed at step 1 exactly when exploring


def test_act_q_continue_rule_and_target():
    act = strategy("act_q_continue", max_steps=4, exploration_prob=0.0)
    assert act.uses_next_q
    steps = torch.tensor([1, 1, 4], dtype=torch.int32)
    halted = act.should_halt(steps, torch.tensor([1.0, -1.0, -1.0]), torch.tensor([0.0, 0.0, 0.0]), True, 4)
    assert halted.tolist() == [True, False, True]
    target = act.target_q_continue(torch.tensor([1.0, 1.0]), torch.tensor([3.0, 3.0]), torch.tensor([True, False]))
    torch.testing.assert_close(target, torch.sigmoid(torch.tensor([1.0, 3.0])))


def test_fixed_never_halts_early_and_has_no_loss():
    fixed = strategy("fixed", max_steps=3)
    steps = torch.tensor([1, 2, 3], dtype=torch.int32)
    assert fixed.should_halt(steps, torch.full((3,), 9.0), torch.zeros(3), True, 3).tolist() == [False, False, True]
    assert fixed.loss(torch.zeros(3), torch.zeros(3), torch.ones(3, dtype=torch.bool), None).item() == 0.0


def _model(halting, **options):
    torch.manual_seed(0)
    cfg = ModelConfig(hidden_size=16, h_cycles=2, l_cycles=1, puzzle_emb_len=1, puzzle_emb_dim=16)
    return assemble(cfg, "mlp_mixer", {"layers": 1}, halting, options, vocab_size=5, seq_len=4,
                    num_puzzle_identifiers=2)


def _batch():
    g = torch.Generator().manual_seed(0)
    return {"inputs": torch.randint(1, 5, (3, 4), generator=g, dtype=torch.int32),
            "labels": torch.randint(1, 5, (3, 4), generator=g),
            "puzzle_identifiers": torch.zeros(3, dtype=torch.int32)}


def test_engine_bootstraps_q_continue_target_in_training_only():
    model = _model("act_q_continue", max_steps=3, exploration_prob=0.0)
    with torch.no_grad():
        model.q_head.weight.normal_()
    data = _batch()
    model.train()
    carry, out = model(model.initial_carry(data), data)
    assert "target_q_continue" in out
    # The target is the q of one more no-grad supervision step from the new carry.
    model.eval()
    with torch.no_grad():
        _, again = model(carry._replace(halted=torch.zeros(3, dtype=torch.bool)), data)
    expected = torch.sigmoid(torch.maximum(again["q_halt"], again["q_continue"]))
    torch.testing.assert_close(out["target_q_continue"], expected)
    loss, metrics = act_loss(out, model.halting)
    assert "q_continue_loss" in metrics and "q_halt_loss" in metrics
    loss.backward()
    assert model.q_head.weight.grad[1].abs().sum() > 0  # q_continue learns
    _, evaluated = model(model.initial_carry(data), data)
    assert "target_q_continue" not in evaluated


def test_act_q_trains_only_q_halt_and_fixed_trains_neither():
    data = _batch()
    for name, halt_row, continue_row in (("act_q", True, False), ("fixed", False, False)):
        model = _model(name, max_steps=3)
        model.train()
        _, out = model(model.initial_carry(data), data)
        loss, metrics = act_loss(out, model.halting)
        loss.backward()
        grad = model.q_head.weight.grad
        assert (grad is not None and grad[0].abs().sum() > 0) == halt_row
        assert grad is None or grad[1].abs().sum() == 0
        assert ("q_halt_loss" in metrics) == (name == "act_q")

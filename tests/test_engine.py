"""The recursion engine: shapes, input embedding, carry reset, gradient scope, heads, test-time depth (docs/reference-code.md 3-4)."""

import functools
import math

import pytest
import torch
from torch import nn

from trm.config import OptimConfig

from trm.build import assemble
from trm.engine import Carry, ModelConfig, TinyRecursiveModel

D, L, P, V = 32, 9, 2, 11


def tiny(backbone="attention", halting="act_q", halting_options=None, T=2, n=3, ids=4, **config):
    torch.manual_seed(0)
    options = {"num_heads": 4} if backbone == "attention" else {}
    config = {"puzzle_emb_len": P, "puzzle_emb_dim": D, **config}
    cfg = ModelConfig(hidden_size=D, h_cycles=T, l_cycles=n, **config)
    return assemble(cfg, backbone, options, halting, halting_options or {"max_steps": 4, "exploration_prob": 0.0},
                    vocab_size=V, seq_len=L, num_puzzle_identifiers=ids)


def batch(rows=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return {"inputs": torch.randint(1, V, (rows, L), generator=g, dtype=torch.int32),
            "labels": torch.randint(1, V, (rows, L), generator=g),
            "puzzle_identifiers": torch.randint(0, 4, (rows,), generator=g, dtype=torch.int32)}


@pytest.mark.parametrize("backbone", ["attention", "mlp_mixer"])
def test_one_step_shapes_and_dtypes(backbone):
    model = tiny(backbone)
    data = batch()
    carry = model.initial_carry(data)
    assert carry.halted.all() and carry.y.shape == (4, P + L, D)
    carry, out = model(carry, data)
    assert out["logits"].shape == (4, L, V)
    assert out["q_halt"].shape == (4,) and out["q_halt"].dtype == torch.float32
    assert out["q_continue"].shape == (4,)
    assert out["halted"].dtype == torch.bool and out["steps"].dtype == torch.int32
    assert torch.equal(out["steps"], torch.ones(4, dtype=torch.int32))
    assert torch.equal(out["labels"], data["labels"]) and torch.equal(out["inputs"], data["inputs"])
    assert isinstance(carry, Carry) and not carry.y.requires_grad


def test_q_head_starts_at_minus_five_and_fixed_inits_are_buffers():
    model = tiny()
    _, out = model(model.initial_carry(batch()), batch())
    assert torch.equal(out["q_halt"], torch.full((4,), -5.0))
    names = dict(model.named_parameters())
    assert "y_init" not in names and "puzzle_emb.weights" not in names
    state = model.state_dict()
    assert {"y_init", "z_init", "puzzle_emb.weights"} <= set(state)
    assert not any("grad_sink" in key or "local_ids" in key for key in state)
    assert torch.count_nonzero(model.puzzle_emb.weights) == 0


def test_input_embedding_prefix_slot_zero_only_scaled_by_sqrt_d():
    model = tiny()
    model.eval()
    with torch.no_grad():
        model.puzzle_emb.weights.copy_(torch.randn_like(model.puzzle_emb.weights))
        data = batch()
        x = model.embed_input(data["inputs"], data["puzzle_identifiers"])
    scale = math.sqrt(D)
    torch.testing.assert_close(x[:, 0], scale * model.puzzle_emb.weights[data["puzzle_identifiers"].long()])
    assert torch.count_nonzero(x[:, 1:P]) == 0
    torch.testing.assert_close(x[:, P:], scale * model.embed_tokens.weight[data["inputs"].long()])


class CountingBackbone(nn.Module):
    """Wraps a backbone and records, per call, whether gradients were being tracked."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, []

    def embed_positions(self, x):
        return self.inner.embed_positions(x)

    def forward(self, h):
        self.calls.append(torch.is_grad_enabled())
        return self.inner(h)


@pytest.mark.parametrize("T,n", [(3, 2), (2, 4), (1, 1)])
def test_gradient_flows_only_through_the_last_cycle(T, n):
    model = tiny(T=T, n=n)
    model.backbone = CountingBackbone(model.backbone)
    model.train()
    data = batch()
    carry, out = model(model.initial_carry(data), data)
    calls = model.backbone.calls
    assert len(calls) == T * (n + 1)
    assert calls == [False] * ((T - 1) * (n + 1)) + [True] * (n + 1)
    out["logits"].float().sum().backward()
    assert model.embed_tokens.weight.grad is not None and model.embed_tokens.weight.grad.abs().sum() > 0
    assert model.puzzle_emb.pending and model.puzzle_emb.pending[0][1].abs().sum() > 0


def test_answer_update_does_not_see_x_and_latent_update_does():
    """y <- f(y + z) and z <- f(z + y + x): replay the schedule by hand with the same f."""
    model = tiny(T=2, n=2)
    model.eval()
    data = batch()
    with torch.no_grad():
        x = model.embed_input(data["inputs"], data["puzzle_identifiers"])
        y = model.y_init.expand(4, P + L, D)
        z = model.z_init.expand(4, P + L, D)
        f = model.backbone
        for _ in range(2):
            for _ in range(2):
                z = f(z + (y + x))
            y = f(y + z)
        expected = model.lm_head(y)[:, P:]
        _, out = model(model.initial_carry(data), data)
    torch.testing.assert_close(out["logits"], expected)


def test_halted_rows_take_new_data_and_reset_busy_rows_keep_theirs():
    model = tiny()
    model.eval()
    first, second = batch(seed=1), batch(seed=2)
    carry, _ = model(model.initial_carry(first), first)
    carry = carry._replace(halted=torch.tensor([True, False, True, False]))
    carry_after, out = model(carry, second)
    reset = torch.tensor([True, False, True, False])
    expected_inputs = torch.where(reset[:, None], second["inputs"], first["inputs"])
    assert torch.equal(out["inputs"], expected_inputs)
    assert torch.equal(out["labels"], torch.where(reset[:, None], second["labels"], first["labels"]))
    assert torch.equal(out["steps"], torch.tensor([1, 2, 1, 2], dtype=torch.int32))
    # A reset row computes exactly what a fresh carry computes on the same data.
    mixed = {k: torch.where(reset.view(-1, *[1] * (v.dim() - 1)), second[k], first[k]) for k, v in first.items()}
    _, fresh = model(model.initial_carry(mixed), mixed)
    torch.testing.assert_close(out["logits"][reset], fresh["logits"][reset])
    assert not torch.allclose(out["logits"][~reset], fresh["logits"][~reset])


def test_evaluation_runs_to_max_steps_even_beyond_training_and_ignores_q():
    model = tiny()
    model.eval()
    with torch.no_grad():
        model.q_head.bias.fill_(5.0)  # the head says "halt" everywhere: evaluation must not listen
    data = batch()
    carry = model.initial_carry(data)
    for step in range(1, 7):
        carry, out = model(carry, data, max_steps=6)
        assert bool(out["halted"].all()) == (step == 6)
    assert torch.equal(out["steps"], torch.full((4,), 6, dtype=torch.int32))


def test_training_halts_on_q_and_refills():
    model = tiny()
    model.train()
    with torch.no_grad():
        model.q_head.bias.copy_(torch.tensor([5.0, 0.0]))
    data = batch()
    carry, out = model(model.initial_carry(data), data)
    assert out["halted"].all()  # q_halt = 5 > 0, exploration off
    carry, out = model(carry, batch(seed=3))
    assert torch.equal(out["steps"], torch.ones(4, dtype=torch.int32))
    assert torch.equal(out["inputs"], batch(seed=3)["inputs"])


def test_no_puzzle_embedding_and_bf16():
    model = tiny(puzzle_emb_dim=0)
    assert model.puzzle_emb is None
    data = batch()
    _, out = model(model.initial_carry(data), data)
    assert out["logits"].shape == (4, L, V)
    torch.manual_seed(0)
    cfg = ModelConfig(hidden_size=D, h_cycles=1, l_cycles=1, puzzle_emb_len=P, puzzle_emb_dim=D)
    model16 = assemble(cfg, "attention", {"num_heads": 4}, vocab_size=V, seq_len=L, num_puzzle_identifiers=4,
                       dtype=torch.bfloat16)
    carry, out = model16(model16.initial_carry(data), data)
    assert out["logits"].dtype == torch.bfloat16 and carry.y.dtype == torch.bfloat16
    assert model16.lm_head.weight.dtype == torch.float32 and model16.y_init.dtype == torch.bfloat16


def test_config_validation():
    with pytest.raises(ValueError):
        ModelConfig(loss="hinge")
    with pytest.raises(ValueError):
        ModelConfig(h_cycles=0)
    with pytest.raises(ValueError):
        tiny(puzzle_emb_dim=3 * D)  # does not fit in P = 2 slots


def test_carry_moves_and_round_trips_through_a_dict():
    model = tiny()
    carry = model.initial_carry(batch())
    assert Carry(**carry._asdict()).to("cpu").halted.all()


@pytest.mark.slow
@pytest.mark.parametrize("backbone,halting", [("attention", "act_q"), ("mlp_mixer", "act_q_continue")])
def test_training_step_compiles_without_graph_breaks(backbone, halting):
    """fullgraph=True fails on any graph break; inductor on CPU (slow: a C++ compile)."""
    from trm.losses import act_loss

    model = tiny(backbone, halting, {"max_steps": 3, "exploration_prob": 0.5}, T=2, n=1)
    model.train()
    compiled = torch.compile(model, fullgraph=True)
    data = batch()
    carry = model.initial_carry(data)
    eager_carry = carry
    for _ in range(2):
        carry, out = compiled(carry, data)
        loss, _ = act_loss(out, model.halting)
        loss.backward()
    assert len(model.puzzle_emb.pending) == 2
    model.eval()
    carry = model.initial_carry(data)
    carry, out = compiled(carry, data, max_steps=5)
    _, eager = model(eager_carry, data, max_steps=5)
    torch.testing.assert_close(out["logits"], eager["logits"], rtol=1e-4, atol=1e-4)


def test_restored_carry_without_initial_carry_still_collects_puzzle_gradients():
    """After a resume the trainer rebuilds the carry from a checkpoint, so initial_carry (which sizes the gradient
    sink) is never called; the compiled forward must still deliver per-example gradients."""
    import copy

    from trm.losses import act_loss

    data = batch()
    carry = Carry(**tiny().initial_carry(data)._asdict())
    model = tiny(T=1, n=1)
    model.train()
    compiled = torch.compile(model, backend="aot_eager")
    for expected in (1, 2):
        carry, out = compiled(carry, data)
        act_loss(out, model.halting)[0].backward()
        assert len(model.puzzle_emb.pending) == expected
    twin = copy.deepcopy(model)  # e.g. an evaluation copy: same table, no hook of the original's
    assert torch.equal(twin.puzzle_emb.weights, model.puzzle_emb.weights) and twin.puzzle_emb.pending == []


def test_evaluation_batches_leave_the_training_gradient_sink_alone():
    model = tiny()
    model.train()
    model.initial_carry(batch(rows=4))
    sink = model.puzzle_emb.grad_sink
    model.eval()
    carry, _ = model(model.initial_carry(batch(rows=7)), batch(rows=7))
    assert model.puzzle_emb.grad_sink is sink


def test_a_discarded_trained_model_is_freed_with_its_puzzle_table():
    """The gradient sink's hook must not keep the module alive: the tensor-held hook is invisible to gc, so a
    strong reference there leaked every discarded model's table (1.8 GB of GPU memory for ARC in `trm bench`)."""
    import gc
    import weakref

    from trm.losses import act_loss

    model = tiny()
    model.train()
    data = batch()
    _, out = model(model.initial_carry(data), data)
    act_loss(out, model.halting)[0].backward()
    assert len(model.puzzle_emb.pending) == 1  # the hook still delivers gradients
    table = weakref.ref(model.puzzle_emb)
    del model, out
    gc.collect()
    assert table() is None


def test_learns_a_copy_task_and_learns_to_halt_early():
    """End to end on the real pieces (engine, act_q, loss, AdamATan2, sign-SGD): copying the input is learned and the
    halting head learns to stop after about one step (exploration keeps a few rows longer)."""
    from trm.losses import act_loss
    from trm.optim import build_optimizers

    Optim = functools.partial(OptimConfig, lr=3e-3, weight_decay=0.0, puzzle_emb_lr=1e-3, puzzle_emb_weight_decay=0.0)

    torch.manual_seed(0)
    cfg = ModelConfig(hidden_size=32, h_cycles=1, l_cycles=1, puzzle_emb_len=1, puzzle_emb_dim=32)
    model = assemble(cfg, "attention", {"layers": 1, "num_heads": 2}, "act_q", {"max_steps": 4}, vocab_size=6,
                     seq_len=8)
    dense, sparse = build_optimizers(model, Optim())
    model.train()
    g = torch.Generator().manual_seed(0)

    def copy_batch():
        x = torch.randint(1, 6, (32, 8), generator=g, dtype=torch.int32)
        return {"inputs": x, "labels": x.long(), "puzzle_identifiers": torch.zeros(32, dtype=torch.int32)}

    carry = model.initial_carry(copy_batch())
    totals = {"count": 0.0, "exact_accuracy": 0.0, "steps": 0.0}
    for step in range(200):
        carry, out = model(carry, copy_batch())
        loss, metrics = act_loss(out, model.halting)
        (loss / 32).backward()
        sparse.step()
        dense.step()
        dense.zero_grad()
        if step >= 150:
            for key in totals:
                totals[key] += metrics[key].item()
    assert totals["exact_accuracy"] / totals["count"] > 0.95
    assert totals["steps"] / totals["count"] < 1.5  # halting learned; without it every row would take 4 steps
    assert torch.count_nonzero(model.puzzle_emb.weights) > 0

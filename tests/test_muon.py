"""Muon (trm/muon.py, optim.name: muon): Newton-Schulz orthogonalisation, the parameter partition on a real TRM,
zero-gradient steps, the schedule on both group kinds, state_dict round trips, a tiny run that learns and resumes
exactly, recipe validation; the default recipe still builds AdamATan2."""

from __future__ import annotations

import copy
import math
import signal
from pathlib import Path
from types import SimpleNamespace

import attrs
import pytest
import torch

from conftest import REPO
from in_process import trm_in_process
from test_train import assert_same_records, train_records, trm, write_recipe
from trm import config
from trm.build import assemble
from trm.engine import ModelConfig
from trm.errors import RecipeError
from trm.muon import hidden_matrices, muon_scale, orthogonalise
from trm.optim import AdamATan2, Muon, build_optimizers, lr_at
from trm.recipe import OptimConfig
from trm.train import Trainer

MUON = OptimConfig(name="muon", lr=1e-3, weight_decay=0.1, muon_lr=0.02, muon_momentum=0.95, muon_weight_decay=0.005)


def tiny_model(backbone: str = "attention", options: dict | None = None) -> torch.nn.Module:
    torch.manual_seed(0)
    config_ = ModelConfig(hidden_size=32, h_cycles=2, l_cycles=1, puzzle_emb_len=1, puzzle_emb_dim=32)
    return assemble(config_, backbone, options or {"num_heads": 4, "layers": 2}, "act_q",
                    {"max_steps": 2, "exploration_prob": 0.0}, vocab_size=6, seq_len=9, num_puzzle_identifiers=5)


def a_step(model: torch.nn.Module, seed: int = 1) -> None:
    """Random gradients on every trainable parameter (a real backward is not needed to test the update)."""
    generator = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=generator)


@pytest.mark.parametrize("shape", [(64, 64), (16, 96), (96, 16)], ids=["square", "wide", "tall"])
def test_newton_schulz_brings_singular_values_near_one(shape):
    torch.manual_seed(0)
    k = min(shape)
    left, _ = torch.linalg.qr(torch.randn(shape[0], k))
    right, _ = torch.linalg.qr(torch.randn(shape[1], k))
    # Singular values spread over two decades and off scale: what five quintic steps are designed to handle (a
    # value far below 1% of the largest is only partly lifted, which is why a plain random square matrix, whose
    # smallest singular value is near 0, is not the test).
    spread = torch.logspace(-2, 0, k) * 7.0
    matrix = left @ torch.diag(spread) @ right.T
    result = orthogonalise(matrix)
    assert result.shape == shape and result.dtype == torch.float32
    singular = torch.linalg.svdvals(result)
    assert singular.min() > 0.65 and singular.max() < 1.25, singular  # the quintic's band is about [0.7, 1.2]
    assert torch.linalg.svdvals(orthogonalise(matrix, steps=2)).min() < 0.5  # fewer steps would not get there
    # The singular vectors are kept: U V^T up to the band's error.
    assert torch.linalg.matrix_norm(result - left @ right.T) / math.sqrt(k) < 0.35
    plain = torch.linalg.svdvals(orthogonalise(torch.randn(*shape)))
    assert len(plain) == k and plain.max() < 1.25 and (plain > 0.65).float().mean() > 0.95


def test_update_scale_is_keller_jordans_rule():
    assert muon_scale((64, 64)) == 1.0 and muon_scale((16, 96)) == 1.0 and muon_scale((96, 16)) == math.sqrt(6)


def test_partition_gives_muon_the_backbone_matrices_and_adam_everything_else_once():
    model = tiny_model(options={"num_heads": 4, "layers": 2, "positions": "learned"})
    dense, sparse = build_optimizers(model, MUON)
    assert isinstance(dense, Muon) and sparse is not None  # the puzzle table keeps sign-SGD
    names = {id(p): name for name, p in model.named_parameters()}
    by_kind = {group["kind"]: [names[id(p)] for p in group["params"]] for group in dense.param_groups}
    assert sorted(by_kind["muon"]) == sorted(
        f"backbone.layers.{i}.{part}.weight" for i in range(2)
        for part in ("self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj"))
    assert sorted(by_kind["adam"]) == ["backbone.embed_pos", "embed_tokens.weight", "lm_head.weight",
                                       "q_head.bias", "q_head.weight"]
    every = [name for group in dense.param_groups for name in (names[id(p)] for p in group["params"])]
    assert sorted(every) == sorted(name for name, p in model.named_parameters() if p.requires_grad)
    assert len(every) == len(set(every))
    muon, adam = dense.param_groups
    assert (muon["lr"], muon["base_lr"], muon["momentum"], muon["weight_decay"]) == (0.02, 0.02, 0.95, 0.005)
    assert (adam["lr"], adam["base_lr"], adam["betas"], adam["weight_decay"]) == (1e-3, 1e-3, (0.9, 0.95), 0.1)
    buffers = {name for name, _ in model.named_buffers()}
    assert {"y_init", "z_init", "puzzle_emb.weights"} <= buffers  # never handed to the dense optimizer


def test_mixer_backbone_matrices_include_the_token_mixing_ones():
    model = tiny_model("mlp_mixer", {"layers": 1})
    names = {id(p): name for name, p in model.named_parameters()}
    chosen = sorted(names[id(p)] for p in hidden_matrices(model))
    assert chosen and all(name.startswith("backbone.") and name.endswith(".weight") for name in chosen)
    assert len(chosen) == 4, chosen  # token and channel SwiGLU, gate_up and down each


def test_zero_gradient_without_decay_changes_nothing_and_decay_alone_shrinks():
    model = tiny_model()
    dense, _ = build_optimizers(model, attrs.evolve(MUON, weight_decay=0.0, muon_weight_decay=0.0))
    before = copy.deepcopy(model.state_dict())
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    dense.step()
    dense.step()
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
    decayed, _ = build_optimizers(model, MUON)
    decayed.step()
    matrix = decayed.param_groups[0]["params"][0]
    name = next(n for n, p in model.named_parameters() if p is matrix)
    assert torch.allclose(matrix, before[name] * (1 - 0.02 * 0.005), rtol=0, atol=1e-7)


def test_muon_step_is_the_scaled_orthogonalised_nesterov_momentum():
    matrix = torch.nn.Parameter(torch.randn(24, 8))
    vector = torch.nn.Parameter(torch.randn(8))
    opt = Muon([dict(params=[matrix], kind="muon", lr=0.1, momentum=0.9, weight_decay=0.0),
                dict(params=[vector], kind="adam", lr=0.1, betas=(0.9, 0.95), weight_decay=0.0)])
    twin = torch.nn.Parameter(vector.detach().clone())
    adam = AdamATan2([twin], lr=0.1, betas=(0.9, 0.95))
    start, buffer = matrix.detach().clone(), torch.zeros(24, 8)
    for seed in (1, 2):
        grad = torch.randn(24, 8, generator=torch.Generator().manual_seed(seed))
        matrix.grad, vector.grad = grad, grad[0].clone()
        twin.grad = grad[0].clone()
        opt.step()
        adam.step()
        buffer = 0.9 * buffer + 0.1 * grad
        start = start - 0.1 * math.sqrt(3) * orthogonalise(0.1 * grad + 0.9 * buffer)
        assert torch.allclose(matrix, start, atol=1e-6)
        assert torch.equal(vector, twin)  # the non-matrix group is AdamATan2's arithmetic exactly


def test_schedule_scales_both_group_kinds_and_leaves_other_optimizers_alone():
    model = tiny_model()
    recipe = SimpleNamespace(optim=attrs.evolve(MUON, warmup_steps=10, schedule="cosine", lr_min_ratio=0.1))
    dense, sparse = build_optimizers(model, recipe.optim)
    trainer = SimpleNamespace(recipe=recipe, step=4, total_steps=100, dense_opt=dense, sparse_opt=sparse)
    logged = Trainer._set_lr(trainer)
    muon, adam = dense.param_groups
    assert muon["lr"] == pytest.approx(0.02 * 0.5) and adam["lr"] == pytest.approx(1e-3 * 0.5)
    assert logged == adam["lr"] and sparse.param_groups[0]["lr"] == pytest.approx(1e-4 * 0.5)
    trainer.step = 54  # halfway through the cosine: (0.1 + 0.9 * 0.5) of each base
    Trainer._set_lr(trainer)
    assert muon["lr"] == pytest.approx(0.02 * 0.55) and adam["lr"] == pytest.approx(1e-3 * 0.55)
    assert muon["base_lr"] == 0.02  # the base is never overwritten by the schedule
    plain, _ = build_optimizers(model, OptimConfig(warmup_steps=10))
    trainer.dense_opt, trainer.recipe = plain, SimpleNamespace(optim=OptimConfig(warmup_steps=10))
    Trainer._set_lr(trainer)
    assert plain.param_groups[0]["lr"] == lr_at(55, 1e-4, warmup_steps=10, total_steps=100)


def test_state_dict_round_trip_gives_the_identical_next_step():
    model = tiny_model()
    dense, _ = build_optimizers(model, MUON)
    for seed in (1, 2):
        a_step(model, seed)
        dense.step()
    saved = copy.deepcopy(dense.state_dict())
    weights = copy.deepcopy(model.state_dict())
    twin = tiny_model()
    twin.load_state_dict(weights)
    # A resumed run keeps the recipe's base rates: the fresh optimizer is built with another muon_lr on purpose.
    fresh, _ = build_optimizers(twin, attrs.evolve(MUON, muon_lr=0.01))
    fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["base_lr"] == 0.01 and fresh.param_groups[0]["lr"] == 0.02
    fresh.param_groups[0]["base_lr"] = 0.02
    assert any(len(state) for state in fresh.state.values())
    a_step(model, 3)
    a_step(twin, 3)
    dense.step()
    fresh.step()
    for (name, left), right in zip(model.state_dict().items(), twin.state_dict().values()):
        assert torch.equal(left, right), name
    changed = [name for name, value in model.state_dict().items() if not torch.equal(value, weights[name])]
    assert "lm_head.weight" in changed and "backbone.layers.0.self_attn.qkv_proj.weight" in changed


def test_default_and_paper_recipes_still_build_adam_atan2():
    model = tiny_model()
    dense, _ = build_optimizers(model, OptimConfig())
    assert type(dense) is AdamATan2 and len(dense.param_groups) == 1 and "base_lr" not in dense.param_groups[0]
    for name in ("sudoku_fast.yaml", "quickstart_4x4.yaml"):
        assert config.load_recipe(REPO / "recipes" / name).optim.name == "adam_atan2"


def test_muon_keys_validate_and_unknown_names_list_the_choices():
    path = REPO / "recipes" / "sudoku_fast.yaml"
    loaded = config.load_recipe(path, ["optim.name=muon", "optim.muon_lr=0.01"])
    assert (loaded.optim.name, loaded.optim.muon_lr, loaded.optim.muon_momentum) == ("muon", 0.01, 0.95)
    for override, expected in (("optim.name=mu0n", "$.optim.name: expected one of 'adam_atan2', 'adamw', 'muon', "
                                                  "got str 'mu0n'"),
                               ("optim.muon_momentum=1.0", "$.optim.muon_momentum: must be < 1 (got 1.0)"),
                               ("optim.muon_lr=-1", "$.optim.muon_lr: must be >= 0 (got -1.0)"),
                               ("optim.muon_weight_decay=-1", "$.optim.muon_weight_decay: must be >= 0 (got -1.0)")):
        with pytest.raises(RecipeError) as err:
            config.load_recipe(path, [override])
        assert len(err.value.problems) == 1 and expected in err.value.problems[0], err.value.problems


def lm_losses(run: Path) -> list[float]:
    return [record["lm_loss"] for record in train_records(run)]


def test_a_tiny_muon_run_learns_and_resumes_exactly(tmp_path):
    recipe = write_recipe(tmp_path, steps=30, ckpt=10, extra="")
    overrides = ["optim.name=muon", "optim.muon_lr=0.02"]
    straight = trm("run", str(recipe), *overrides, "--run-dir", str(tmp_path / "straight"), "--no-progress")
    assert straight.returncode == 0, straight.stderr[-3000:]
    assert "name: muon" in (tmp_path / "straight" / "recipe.yaml").read_text()
    losses = lm_losses(tmp_path / "straight")
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.9 * sum(losses[:5]) / 5, losses
    killed = trm("run", str(recipe), *overrides, "--run-dir", str(tmp_path / "killed"), "--no-progress",
                 fault_at=(15,))
    assert killed.returncode == -signal.SIGKILL
    resumed = trm("run", "--resume", str(tmp_path / "killed"), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "at step 10" in resumed.stdout
    assert_same_records(train_records(tmp_path / "killed"), train_records(tmp_path / "straight"))
    switched = trm_in_process("run", "--resume", str(tmp_path / "killed"), "optim.name=adam_atan2", "--no-progress")
    assert switched.returncode == 2 and "a resumed run cannot change optim.name" in switched.stderr, switched.stderr
    assert len(switched.stderr.strip().splitlines()) == 1, switched.stderr
    assert "name: muon" in (tmp_path / "killed" / "recipe.yaml").read_text()  # the refused override left no trace

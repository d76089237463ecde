"""Optimizers: AdamATan2 against a hand-computed update, sign-SGD on touched rows (1 and 2 processes), LR schedule."""

import functools
import math
import os
import socket

import pytest
import torch

from trm.config import OptimConfig

from trm.engine import PuzzleEmbedding
from trm.optim import AdamATan2, SparseSignSGD, build_optimizers, lr_at, sign_sgd_rows


def test_adam_atan2_one_step_by_hand():
    p0, g, lr, wd, b1, b2 = [0.5, -2.0, 0.0], [0.1, -0.3, 0.0], 0.01, 0.5, 0.9, 0.95
    p = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float64))
    opt = AdamATan2([p], lr=lr, betas=(b1, b2), weight_decay=wd)
    p.grad = torch.tensor(g, dtype=torch.float64)
    opt.step()
    for got, w, grad in zip(p.tolist(), p0, g):
        w = w * (1 - lr * wd)  # decay first
        m, v = (1 - b1) * grad, (1 - b2) * grad * grad
        expected = w - lr * math.atan2(m / (1 - b1), math.sqrt(v) / math.sqrt(1 - b2))
        assert abs(got - expected) < 1e-14
    # With bias correction after one step the update is lr * atan2(g, |g|) = lr * pi/4 * sign(g): no epsilon.
    assert abs((p0[0] * (1 - lr * wd) - p.tolist()[0]) - lr * math.pi / 4) < 1e-14


def test_adam_atan2_second_step_and_state_dict():
    p = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    opt = AdamATan2([p], lr=0.1, betas=(0.9, 0.95), weight_decay=0.0)
    grads = [0.2, -0.6]
    for grad in grads:
        p.grad = torch.tensor([grad], dtype=torch.float64)
        opt.step()
    m = 0.9 * (0.1 * 0.2) + 0.1 * -0.6
    v = 0.95 * (0.05 * 0.04) + 0.05 * 0.36
    w1 = 1.0 - 0.1 * math.pi / 4
    expected = w1 - 0.1 * math.atan2(m / (1 - 0.9**2), math.sqrt(v) / math.sqrt(1 - 0.95**2))
    assert abs(p.item() - expected) < 1e-14
    clone = AdamATan2([torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))], lr=0.1)
    clone.load_state_dict(opt.state_dict())
    assert float(next(iter(clone.state.values()))["step"]) == 2


def test_lr_schedule():
    assert lr_at(1, 1.0, warmup_steps=10, total_steps=100) == 0.1
    assert lr_at(10, 1.0, warmup_steps=10, total_steps=100) == 1.0
    assert lr_at(99, 1.0, warmup_steps=10, total_steps=100, schedule="constant", min_ratio=0.1) == 1.0
    assert lr_at(10, 2.0, warmup_steps=10, total_steps=110, schedule="cosine", min_ratio=0.1) == 2.0
    assert abs(lr_at(60, 2.0, warmup_steps=10, total_steps=110, schedule="cosine", min_ratio=0.1) - 1.1) < 1e-12
    assert abs(lr_at(110, 2.0, warmup_steps=10, total_steps=110, schedule="cosine", min_ratio=0.1) - 0.2) < 1e-12


def test_sign_sgd_touches_only_the_batch_rows_and_sums_duplicates():
    weights = torch.ones(6, 3)
    ids = torch.tensor([4, 1, 4, 4])
    grads = torch.tensor([[1.0, -1.0, 0.5], [2.0, 2.0, -2.0], [1.0, 3.0, -0.25], [-3.0, -1.0, 0.0]])
    sign_sgd_rows(weights, ids, grads, lr=0.1, weight_decay=0.5)
    decayed = 1 - 0.1 * 0.5
    assert torch.equal(weights[[0, 2, 3, 5]], torch.ones(4, 3))  # untouched: neither decayed nor moved
    torch.testing.assert_close(weights[1], torch.tensor([decayed - 0.1, decayed - 0.1, decayed + 0.1]))
    # id 4: summed gradient (-1, 1, 0.25) -> sign (-1, 1, 1)
    torch.testing.assert_close(weights[4], torch.tensor([decayed + 0.1, decayed - 0.1, decayed - 0.1]))


def test_sparse_optimizer_keeps_every_backward_before_a_step():
    emb = PuzzleEmbedding(5, 2, torch.float32)
    emb.train()
    opt = SparseSignSGD(emb, lr=1.0, weight_decay=0.0)
    for ids, coefficient in ((torch.tensor([1, 2], dtype=torch.int32), 1.0), (torch.tensor([2, 3], dtype=torch.int32), -3.0)):
        (coefficient * emb(ids)).sum().backward()  # two micro-batches, one optimizer step
    opt.step()
    assert emb.weights[:, 0].tolist() == [0.0, -1.0, 1.0, 1.0, 0.0]  # id 2: 1 - 3 < 0 -> moves up
    assert opt.state_dict() == {"param_groups": [{"lr": 1.0, "weight_decay": 0.0}]}
    opt.zero_grad()
    assert emb.pending == []


def test_build_optimizers():
    from trm.build import assemble
    from trm.engine import ModelConfig

    Optim = functools.partial(OptimConfig, lr=1e-4, weight_decay=1.0, puzzle_emb_lr=1e-2, puzzle_emb_weight_decay=0.1)

    model = assemble(ModelConfig(hidden_size=16, puzzle_emb_len=1, puzzle_emb_dim=16), "mlp_mixer", {"layers": 1},
                     vocab_size=4, seq_len=3)
    dense, sparse = build_optimizers(model, Optim())
    assert isinstance(dense, AdamATan2) and sparse.param_groups[0]["lr"] == 1e-2
    assert sum(p.numel() for p in dense.param_groups[0]["params"]) == sum(p.numel() for p in model.parameters())
    dense, _ = build_optimizers(model, Optim(name="adamw"))
    assert isinstance(dense, torch.optim.AdamW)
    with pytest.raises(ValueError):
        build_optimizers(model, Optim(name="sgd"))


# ---- two processes over gloo ------------------------------------------------------------------------------------
GLOBAL_IDS = torch.tensor([3, 1, 3, 0, 5, 3, 1, 7], dtype=torch.int32)


def _global_grads():
    return torch.randn(len(GLOBAL_IDS), 4, generator=torch.Generator().manual_seed(0))


def _run_rank(rank, world, port, out_dir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        emb = PuzzleEmbedding(8, 4, torch.float32)
        emb.weights.copy_(torch.arange(32, dtype=torch.float32).view(8, 4) / 10)
        emb.train()
        opt = SparseSignSGD(emb, lr=0.05, weight_decay=0.2)
        local = slice(rank * 4, (rank + 1) * 4)
        (emb(GLOBAL_IDS[local]) * _global_grads()[local]).sum().backward()
        opt.step()
        torch.save(emb.weights, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_processes_end_with_identical_tables_equal_to_one_process(tmp_path):
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_run_rank, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    single = torch.arange(32, dtype=torch.float32).view(8, 4) / 10
    sign_sgd_rows(single, GLOBAL_IDS, _global_grads(), lr=0.05, weight_decay=0.2)
    tables = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert torch.equal(tables[0], tables[1])
    assert torch.equal(tables[0], single)
    assert not torch.equal(single, torch.arange(32, dtype=torch.float32).view(8, 4) / 10)

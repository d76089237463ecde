"""trm/distributed.py: the one place that knows the processes of a run, and the rule that keeps it the one place."""

from __future__ import annotations

import ast
import os
import socket
from pathlib import Path

import pytest
import torch

from conftest import REPO
from trm import distributed


def test_rank_and_world_size_come_from_the_launcher_before_a_process_group(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (1, 2, False)


def test_collectives_without_a_process_group_return_this_process_s_view(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")  # a launcher's variable alone starts no group: nothing to exchange with
    grads = [torch.ones(3), torch.full((2, 2), 2.0)]
    distributed.all_reduce_sum_(grads)
    assert torch.equal(grads[0], torch.ones(3)) and torch.equal(grads[1], torch.full((2, 2), 2.0))
    rows = torch.arange(6).view(3, 2)
    assert distributed.all_gather_rows(rows) is rows
    assert distributed.all_gather_objects({"a": 1}) == [{"a": 1}]
    assert distributed.gather_to_main("state") == ["state"]


def _run_rank(rank: int, world: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        grads = [torch.full((3,), float(rank + 1)), torch.full((2, 2), 10.0 * (rank + 1))]
        distributed.all_reduce_sum_(grads)
        result = {
            "rank": distributed.rank(), "world": distributed.world_size(),
            "reduced": [g.tolist() for g in grads],
            "rows": distributed.all_gather_rows(torch.full((2, 3), rank)).tolist(),
            "objects": distributed.all_gather_objects({"rank": rank}),
            "gathered": distributed.gather_to_main(f"state of {rank}"),
        }
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_collectives_over_two_gloo_processes(tmp_path):
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_run_rank, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for rank, result in enumerate(results):
        assert (result["rank"], result["world"]) == (rank, 2)
        assert result["reduced"] == [[3.0] * 3, [[30.0, 30.0], [30.0, 30.0]]]  # summed, in place, shapes kept
        assert result["rows"] == [[0] * 3, [0] * 3, [1] * 3, [1] * 3]  # rank order along dim 0
        assert result["objects"] == [{"rank": 0}, {"rank": 1}]
    assert results[0]["gathered"] == ["state of 0", "state of 1"] and results[1]["gathered"] is None


# The names that touch a run's processes directly. Everywhere else goes through trm.distributed.
_OWNED_CALLS = {"Accelerator", "PartialState", "broadcast_object_list"}
_OWNED_ENV = {"RANK", "WORLD_SIZE"}


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import) and any(alias.name.startswith("torch.distributed") for alias in node.names):
            found.append(f"{where} imports torch.distributed")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("torch.distributed"):
            found.append(f"{where} imports from torch.distributed")
        elif isinstance(node, ast.Attribute) and node.attr == "distributed" and isinstance(node.value, ast.Name) \
                and node.value.id == "torch":
            found.append(f"{where} uses torch.distributed")
        elif isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)):
            name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            if name in _OWNED_CALLS:
                found.append(f"{where} calls {name}")
        elif isinstance(node, ast.Constant) and node.value in _OWNED_ENV:
            found.append(f"{where} names the variable {node.value}")
    return found


@pytest.mark.parametrize("folder", ["trm", "plugins", "tasks"])
def test_only_trm_distributed_touches_the_processes(folder):
    """No other module reads RANK/WORLD_SIZE, calls torch.distributed or makes Accelerate's per-process state: a
    command makes one Accelerator with trm.distributed.make_accelerator and passes it down."""
    found = [problem for path in sorted((REPO / folder).rglob("*.py")) if path != REPO / "trm" / "distributed.py"
             for problem in _violations(path)]
    assert not found, "\n".join(found)


def test_the_trainer_reads_no_fault_switch():
    """Fault injection lives in the tests (tests/faults.py); the training loop reads no environment variable."""
    source = (REPO / "trm" / "train.py").read_text()
    assert "TRM_FAULT" not in source and "os.environ" not in source

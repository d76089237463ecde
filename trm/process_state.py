"""Per-process training state that a checkpoint keeps for an exact resume (docs/training.md, "Checkpoints").

Each process owns state that no other process has: the persistent ACT carries of its micro-batches (docs/reference-code.md 4)
and its random-number generators, which drive the exploration draws and differ per process (seeded with seed + rank,
as the reference does). The main process writes the checkpoint, so every process's state is first gathered to it
(``torch.distributed.gather_object``: CPU copies, in memory only; the files themselves never hold a pickle).
"""

from __future__ import annotations

from typing import Any

import attrs
import torch


def carry_state(carry: Any) -> Any:
    """A carry as a plain dict of its fields (``None`` stays ``None``)."""
    if carry is None:
        return None
    if attrs.has(type(carry)):
        return {f.name: getattr(carry, f.name) for f in attrs.fields(type(carry))}
    if hasattr(carry, "_asdict"):
        return dict(carry._asdict())
    if hasattr(carry, "__dataclass_fields__"):
        return {name: getattr(carry, name) for name in carry.__dataclass_fields__}
    return carry


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: _to_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_cpu(item) for item in value]
    return value


def capture(carries: list[Any]) -> dict[str, Any]:
    """This process's carries and RNG states, copied to the host."""
    return {
        "carries": [_to_cpu(carry_state(carry)) for carry in carries],
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
    }


def gather_to_main(state: dict[str, Any], accelerator: Any) -> list[dict[str, Any]] | None:
    """Every process's ``state``, in rank order, on the main process; ``None`` elsewhere. A collective call."""
    if accelerator.num_processes == 1:
        return [state]
    import torch.distributed as dist

    gathered: list[Any] | None = [None] * accelerator.num_processes if accelerator.is_main_process else None
    dist.gather_object(state, gathered, dst=0)
    return gathered


def restore(state: dict[str, Any], device: torch.device) -> list[Any]:
    """Set this process's RNG states from ``state``; returns its carries on ``device``."""
    from trm.engine import Carry

    torch.set_rng_state(state["torch_rng"].cpu())
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda_rng"].cpu())
    carries = []
    for carry in state.get("carries") or []:
        carries.append(None if carry is None else Carry(**{
            key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in carry.items()
        }))
    return carries


def reseed(seed: int, rank: int, step: int) -> None:
    """RNG streams for a resume on another process count: distinct per process and per resume point."""
    torch.manual_seed(hash((seed, rank, step)) & 0x7FFF_FFFF)

"""The processes of a run and what passes between them: rank, world size, the Accelerator, and the few collectives.

Every question about "which process am I, how many are there" and every ``torch.distributed`` call in trm goes
through this module; nothing else reads ``RANK``/``WORLD_SIZE`` or creates Accelerate's per-process state. A
command that needs the machine makes one :func:`make_accelerator` and passes it down (``trm run``, ``trm eval``).

Before a process group exists the launcher's variables (torchrun and ``accelerate launch`` set ``RANK`` and
``WORLD_SIZE``) are the answer; once one exists, its own rank and size are (tests start gloo groups by hand).
The collectives work on the process group: without one, or with one process, they return at once. Asking for the
rank never imports torch: the store asks it in commands that must start quickly (``trm data info``).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import torch
    from accelerate import Accelerator

T = TypeVar("T")


def _group() -> Any:
    """``torch.distributed`` when a process group is up, else None (without importing torch)."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist
    return None


def _group_size() -> int:
    group = _group()
    return group.get_world_size() if group is not None else 1


def rank() -> int:
    """This process's rank: 0 alone, the process group's rank or the launcher's ``RANK`` otherwise."""
    group = _group()
    return group.get_rank() if group is not None else int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """How many processes the run has: 1 alone, the process group's size or the launcher's ``WORLD_SIZE``."""
    group = _group()
    return group.get_world_size() if group is not None else int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    """True in a single-process run and on rank 0 of a launched one (also before Accelerate is set up)."""
    return rank() == 0


def cpu_processes() -> bool:
    """True for several processes without CUDA: Accelerate then needs ``cpu=True`` to set up its gloo group."""
    import torch

    return not torch.cuda.is_available() and world_size() > 1


def make_accelerator(*, log_with: list[str] | None = None, project_dir: str | os.PathLike | None = None) -> Accelerator:
    """The command's Accelerator (device, process group, experiment trackers), made once and passed down."""
    from accelerate import Accelerator

    return Accelerator(log_with=log_with or None, project_dir=None if project_dir is None else str(project_dir),
                       cpu=cpu_processes())


def broadcast_from_main(value: T) -> T:
    """The main process's ``value`` (picklable), on every process. Sets up the process group when there is none yet
    (Accelerate's shared state, which the command's Accelerator then reuses)."""
    if world_size() == 1:
        return value
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    PartialState(cpu=cpu_processes())
    holder = [value]
    broadcast_object_list(holder, from_process=0)
    return holder[0]


def all_reduce_sum_(tensors: list[torch.Tensor]) -> None:
    """Sum ``tensors`` over all processes, in place, in one fused all-reduce (one flat buffer, as the reference)."""
    if _group_size() == 1 or not tensors:
        return
    import torch
    import torch.distributed as dist

    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    offset = 0
    for t in tensors:
        t.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()


def all_gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """Every process's ``tensor`` concatenated along dim 0, in rank order (the same shape on every process)."""
    if _group_size() == 1:
        return tensor
    import torch
    import torch.distributed as dist

    world = dist.get_world_size()
    if dist.get_backend() == "nccl":
        out = tensor.new_empty((world * tensor.shape[0], *tensor.shape[1:]))
        dist.all_gather_into_tensor(out, tensor.contiguous())
        return out
    parts = [torch.empty_like(tensor) for _ in range(world)]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def all_gather_objects(value: Any) -> list[Any]:
    """Every process's ``value`` (picklable), in rank order, on every process."""
    if _group_size() == 1:
        return [value]
    import torch.distributed as dist

    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def gather_to_main(value: Any) -> list[Any] | None:
    """Every process's ``value`` (picklable), in rank order, on the main process; None elsewhere. Collective."""
    if _group_size() == 1:
        return [value]
    import torch.distributed as dist

    gathered: list[Any] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(value, gathered, dst=0)
    return gathered

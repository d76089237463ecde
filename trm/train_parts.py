"""Pieces of the training loop that stand alone: how the global batch is split (processes x micro-batches) and the
EMA of the dense weights (docs/reference-code.md 5: rate 0.999, evaluation on the averaged weights)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import attrs
import torch

from trm.errors import UserError


@attrs.frozen
class BatchPlan:
    """How the recipe's global batch is spread over processes and accumulation steps."""

    global_batch: int
    processes: int
    per_device: int
    accumulation: int


def plan_batches(global_batch: int, processes: int, per_device: int | None) -> BatchPlan:
    if global_batch % processes:
        raise UserError(f"train.global_batch_size={global_batch} is not divisible by the {processes} processes")
    local = global_batch // processes
    per_device = per_device or local
    if local % per_device:
        raise UserError(f"train.per_device_batch_size={per_device} does not divide the per-process batch {local}")
    return BatchPlan(global_batch, processes, per_device, local // per_device)


class EMA:
    """Exponential moving average of the dense (trainable) parameters; the puzzle embeddings are not averaged."""

    def __init__(self, model: torch.nn.Module, rate: float):
        self.rate = rate
        self.params = {name: p for name, p in model.named_parameters() if p.requires_grad and "puzzle_emb" not in name}
        self.shadow = {name: p.detach().clone() for name, p in self.params.items()}

    @torch.no_grad()
    def update(self) -> None:
        names = list(self.params)
        torch._foreach_lerp_([self.shadow[n] for n in names], [self.params[n].detach() for n in names], 1.0 - self.rate)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Within the block the model holds the EMA weights; the live ones come back afterwards."""
        live = {name: p.detach().clone() for name, p in self.params.items()}
        with torch.no_grad():
            for name, p in self.params.items():
                p.copy_(self.shadow[name])
        try:
            yield
        finally:
            with torch.no_grad():
                for name, p in self.params.items():
                    p.copy_(live[name])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.shadow) - set(state)
        if missing:
            raise UserError(f"checkpoint EMA lacks {sorted(missing)[:3]}...: it was written for another model")
        for name in self.shadow:
            self.shadow[name].copy_(state[name])

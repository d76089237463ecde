"""The per-puzzle vector table: an embedding whose rows learn from per-example gradients, with no dense gradient table.

Only :class:`trm.optim.SparseSignSGD` trains it (docs/reference-code.md 6): the table is a buffer, so the dense
optimizer, the EMA and any DDP wrapper never see it, and one training batch's gradients reach the optimizer through
:meth:`PuzzleEmbedding.take_pending`. The engine (trm/engine.py) looks rows up and prepends them to the input.
"""

from __future__ import annotations

import weakref

import torch
from torch import nn


class PuzzleEmbedding(nn.Module):
    """The per-identifier vector table, trained only by sign-SGD (``trm.optim.SparseSignSGD``).

    ``weights`` is an fp32 *buffer* [num_ids, dim], zero-initialised: dense optimizers, EMA and DDP never see it.
    In training the looked-up rows get a zero leaf ``grad_sink`` [B, dim] added, so backward yields each example's
    gradient in ``grad_sink.grad`` without a [num_ids, dim] gradient table (docs/reference-code.md 6). A hook moves that
    gradient with the batch's ids into ``pending`` after every backward, so several backwards (gradient
    accumulation) before one optimizer step are all kept. The sink is sized by :meth:`prepare`, which the engine
    calls from ``initial_carry`` (outside the compiled step).
    """

    def __init__(self, num_ids: int, dim: int, cast_to: torch.dtype):
        super().__init__()
        self.cast_to = cast_to
        self.register_buffer("weights", torch.zeros(num_ids, dim))
        self.register_buffer("local_ids", torch.zeros(0, dtype=torch.int32), persistent=False)
        self.register_buffer("grad_sink", None, persistent=False)
        self.pending: list[tuple[torch.Tensor, torch.Tensor]] = []

    @torch.compiler.disable  # creates a leaf and a hook: done eagerly even when called from a compiled forward
    def prepare(self, batch_size: int) -> None:
        """Size the gradient sink (and the ids it belongs to) for ``batch_size`` rows; a no-op when it fits."""
        sink = self.grad_sink
        device = self.weights.device
        if sink is not None and sink.shape[0] == batch_size and sink.device == device and sink.is_leaf:
            return
        sink = torch.zeros(batch_size, self.weights.shape[1], device=device, requires_grad=True)
        # The hook lives inside the tensor, where Python's gc cannot see it: a bound method there would make
        # module -> sink -> hook -> module an uncollectable cycle and leak the whole table (GBs for ARC) with
        # every discarded model. A weak reference breaks it.
        owner = weakref.ref(self)
        sink.register_post_accumulate_grad_hook(lambda tensor: _collect_into(owner, tensor))
        self.grad_sink = sink
        self.local_ids = torch.zeros(batch_size, dtype=torch.int32, device=device)

    def _collect(self, sink: torch.Tensor) -> None:
        self.pending.append((self.local_ids.clone(), sink.grad))
        sink.grad = None

    def take_pending(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        pending, self.pending = self.pending, []
        return pending

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = self.weights[ids.long()]
        if self.training and torch.is_grad_enabled():
            if self.grad_sink is None or self.grad_sink.shape[0] != ids.shape[0]:
                self.prepare(ids.shape[0])  # eager fallback; the engine prepares it in initial_carry
            with torch.no_grad():
                self.local_ids.copy_(ids)
            rows = rows + self.grad_sink
        return rows.to(self.cast_to)

    def __deepcopy__(self, memo: dict) -> "PuzzleEmbedding":
        # The sink carries a hook bound to this module; a copy (e.g. for EMA evaluation) starts without one.
        copy = PuzzleEmbedding(self.weights.shape[0], self.weights.shape[1], self.cast_to)
        copy.weights = self.weights.detach().clone()
        copy.train(self.training)
        memo[id(self)] = copy
        return copy


def _collect_into(owner: "weakref.ref[PuzzleEmbedding]", sink: torch.Tensor) -> None:
    module = owner()
    if module is not None:
        module._collect(sink)

"""The fast path's shared pieces: SwiGLU that saves less for backward, and the float32 stablemax loss.

docs/engine.md, "The fast path", lists what differs from the faithful path and by how much. Both SwiGLU functions
compute exactly the faithful arithmetic in the forward direction (the same matmuls and elementwise ops in the
same dtypes); what changes is what is kept between forward and backward:

* the faithful SwiGLU keeps what autograd (or torch.compile's partitioner) chooses: ``gate_up`` and
  ``silu(gate) * up``, for the mixer's token SwiGLU over [B, 2I, D] about 1.2 GB per call at the paper's Sudoku
  batch;
* :class:`ChannelSwiGLUFunction` keeps the input and ``gate_up`` and recomputes the product in backward
  (elementwise, memory-bound, cheap);
* with ``recompute`` only the input is kept and backward computes ``gate_up`` again (one more matmul): compiled,
  the SwiGLU runs in a :func:`recomputed` region; eagerly, the function itself recomputes. The MLP-mixer's token
  SwiGLU (:func:`token_swiglu`) does so unless ``model.recompute: none`` (its matmuls are a quarter of the mixer's
  work and its ``gate_up`` [B, 2I, D] is the step's largest tensor), every SwiGLU with ``model.recompute: swiglu``.

Why a checkpoint region and not a recomputing autograd.Function: under torch.compile the Function's forward and
backward are traced into one graph, common-subexpression elimination merges the backward's ``gate_up`` matmul with
the forward's, and the partitioner then keeps the result after all (docs/performance.md, "Memory"). The partitioner
honours checkpoint regions, and drops the region's down-projection, which backward does not need. The region holds
plain operations, not the Function: with the Function inside, torch 2.11 on an H200 kept ``gate_up`` all the same
(torch 2.13 on the CPU did not). Eagerly a region would run the down-projection again too, so there the function's
own recomputation (exactly one matmul) is used.

Gradients are the faithful ones up to the rounding of recomputed bf16 values, which are bit-identical to the
forward's (same kernels, same inputs), so in practice the gradients are equal.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
import torch.utils.checkpoint

from trm.layers import SwiGLU


def recomputed(fn: Callable[..., torch.Tensor], *args: Any) -> torch.Tensor:
    """``fn(*args)``, keeping only ``args`` for backward, which runs ``fn`` again (nothing in it is random)."""
    if not torch.is_grad_enabled():
        return fn(*args)
    return torch.utils.checkpoint.checkpoint(fn, *args, use_reentrant=False, preserve_rng_state=False)


def _silu_grad(gate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(silu(gate), d silu / d gate), computed in fp32."""
    g = gate.float()
    sig = torch.sigmoid(g)
    return g * sig, sig * (1 + g * (1 - sig))


class ChannelSwiGLUFunction(torch.autograd.Function):
    """``down(silu(gate) * up)`` over the last axis, ``gate_up = x @ W1^T``; keeps x and gate_up and recomputes the
    product in backward, or with ``recompute`` keeps only x and recomputes gate_up too (eagerly: under
    torch.compile the two gate_up matmuls are merged and the result kept, see the module docstring)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w_gate_up: torch.Tensor, w_down: torch.Tensor, recompute: bool) -> torch.Tensor:
        gate_up = F.linear(x, w_gate_up)
        gate, up = gate_up.chunk(2, dim=-1)
        out = F.linear(F.silu(gate) * up, w_down)
        ctx.recompute = recompute
        ctx.save_for_backward(x, w_gate_up, w_down, *(() if recompute else (gate_up,)))
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x, w_gate_up, w_down, *kept = ctx.saved_tensors
        gate_up = F.linear(x, w_gate_up) if ctx.recompute else kept[0]
        gate, up = gate_up.chunk(2, dim=-1)
        silu, dsilu = _silu_grad(gate)
        product = F.silu(gate) * up  # as in forward, bit for bit
        grad_product = F.linear(grad_out, w_down.t()).float()
        grad_gate_up = torch.cat(((grad_product * up.float() * dsilu), (grad_product * silu)), dim=-1).to(x.dtype)
        flat_out, flat_gu = grad_out.reshape(-1, grad_out.shape[-1]), grad_gate_up.reshape(-1, grad_gate_up.shape[-1])
        grad_w_down = flat_out.t() @ product.reshape(-1, product.shape[-1])
        grad_w_gate_up = flat_gu.t() @ x.reshape(-1, x.shape[-1])
        grad_x = F.linear(grad_gate_up, w_gate_up.t())
        return grad_x, grad_w_gate_up, grad_w_down, None


def _plain_swiglu(x: torch.Tensor, w_gate_up: torch.Tensor, w_down: torch.Tensor) -> torch.Tensor:
    """The faithful SwiGLU's operations, for a compiled recomputation region (the compiler derives backward)."""
    gate, up = F.linear(x, w_gate_up).chunk(2, dim=-1)
    return F.linear(F.silu(gate) * up, w_down)


def channel_swiglu(x: torch.Tensor, w_gate_up: torch.Tensor, w_down: torch.Tensor, recompute: bool = False
                   ) -> torch.Tensor:
    """The SwiGLU over the last axis of x; with ``recompute`` backward keeps only x and computes gate_up again."""
    if recompute and torch.compiler.is_compiling():
        # Plain operations in the region: torch 2.11 kept gate_up when the region held the autograd.Function.
        # The Function computes the same forward, so compiled and eager results agree.
        return recomputed(_plain_swiglu, x, w_gate_up, w_down)
    return ChannelSwiGLUFunction.apply(x, w_gate_up, w_down, recompute)


def token_swiglu(h: torch.Tensor, w_gate_up: torch.Tensor, w_down: torch.Tensor, recompute: bool = True,
                 fused: Callable[..., torch.Tensor] | None = None) -> torch.Tensor:
    """The MLP-mixer's SwiGLU over the sequence axis of h [B, S, D] (``W2 @ (silu(g) * u)``, ``[g; u] = W1 @ h``),
    computed as a SwiGLU over the last axis of h^T [B, D, S'] with S padded to S' (a multiple of 8).

    The sequence axis is the matmuls' reduction axis; at S = 97 (Sudoku) rows of 97 bf16 values are not 16-byte
    aligned and cuBLAS falls back to a slow, pre-Hopper kernel. Zero padding (zero weight columns and rows, zero
    positions) adds exact zeros to every sum, so the result is the same; in the transposed layout every matmul of
    forward and backward is a plain 2-D one and only the small [B, S, D] tensors are transposed, never the
    [B, 2I, D] ones. ``fused`` (:func:`trm.fused_swiglu.fused_swiglu`, passed in so that Triton is imported only
    where it is used) computes the SwiGLU instead, with the gating inside the gate/up matmul; its backward keeps only
    the input whatever ``recompute`` says.
    """
    seq = h.shape[1]
    pad = -seq % 8
    x = F.pad(h.transpose(1, 2), (0, pad))  # [B, D, S']
    w1 = F.pad(w_gate_up, (0, pad))  # [2I, S']
    w2 = F.pad(w_down, (0, 0, 0, pad))  # [S', I]
    out = fused(x, w1, w2) if fused is not None else channel_swiglu(x, w1, w2, recompute)  # [B, D, S']
    return out[..., :seq].transpose(1, 2)


class FastSwiGLU(SwiGLU):
    """:class:`trm.layers.SwiGLU` (same parameters) through :class:`ChannelSwiGLUFunction`."""

    def __init__(self, width: int, expansion: float, recompute: bool = False):
        super().__init__(width, expansion)
        self.recompute = recompute  # gate_up computed again in backward (model.recompute: swiglu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_swiglu(x, self.gate_up_proj.weight.to(x.dtype), self.down_proj.weight.to(x.dtype),
                              self.recompute)


def stablemax_cross_entropy_fp32(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token stablemax loss [..., L] in float32 as ``log sum_j s(v_j) - log s(v_label)`` (0 where masked).

    The faithful loss computes ``log(s / sum s)`` in float64; over the paper's vocabularies (<= 12 tokens) the
    float32 log-sum form differs by about 1e-7 relative (docs/engine.md).
    """
    x = logits.float()
    # The negative branch sees min(x, 0): the faithful 1 / (1 - x + 1e-30) is infinite in float32 at x = 1 (1e-30
    # squared underflows in its gradient), and torch.where's backward multiplies that unused branch's inf by 0 = NaN.
    # bf16 logits hit x = 1.0 exactly all the time; float64 (the faithful loss) never overflows there.
    s = torch.where(x < 0, 1 / (1 - x.clamp(max=0)), x + 1)
    safe = torch.where(mask, labels, 0).long()
    picked = s.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    loss = torch.log(s.sum(-1)) - torch.log(picked)
    return torch.where(mask, loss, 0)

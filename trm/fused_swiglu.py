"""The SwiGLU's gating inside its gate/up matmul: one Triton kernel forward, one backward (``model.fused_swiglu``).

A SwiGLU ``down(silu(x W_g^T) * (x W_u^T))`` done by cuBLAS and torch writes ``gate_up`` [M, 2I] from the matmul,
reads it back for the gating, writes the product [M, I], and keeps ``gate_up`` for backward. For the MLP-mixer's
token SwiGLU (x = h^T, [B * D, S'], with the sequence as the short reduction axis: S' = 88 or 104 for Sudoku),
``gate_up`` is the step's largest tensor and the matmul does little arithmetic per byte, so that traffic is most of
its cost (docs/performance.md, the kernel table). Here:

* forward computes both halves of ``gate_up`` tile by tile in registers and writes only the product [M, I];
* backward keeps only x: it computes ``gate_up`` again in the same way, and writes the product (for the
  down-projection's weight gradient) and ``d gate_up`` (for the gate/up weight and input gradients).

The arithmetic is that of the fast path's SwiGLU (trm/kernels.py): ``gate_up`` rounded to the compute dtype, the
gating in float32 from those rounded values and rounded once, the backward's ``d gate`` and ``d up`` in float32
from the rounded ``d product``. Only the order of the matmul's sums differs from cuBLAS's, so a value of
``gate_up`` may round to the neighbouring bf16 number (docs/engine.md, the differences table, F4).

The kernels are Triton's (shipped with torch's CUDA builds); they run on CUDA only. On a machine without Triton
:data:`AVAILABLE` is False and the fast path uses trm/kernels.py. ``TRITON_INTERPRET=1`` runs them on the CPU in
float32, which is how the CPU tests check their indexing and arithmetic.
"""

from __future__ import annotations

import importlib.util
import os

import torch
import torch.nn.functional as F

AVAILABLE = importlib.util.find_spec("triton") is not None

if AVAILABLE:
    import triton
    import triton.language as tl

    # Tiles over (rows of x, columns of the product); each program keeps a [BLOCK_M, BLOCK_N] accumulator for the
    # gate and one for the up half. The reduction axis (S') is short, so it is covered in a few BLOCK_K steps.
    _CONFIGS = [
        triton.Config({"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=4, num_stages=3),
        triton.Config({"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 32}, num_warps=8, num_stages=3),
        triton.Config({"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 32}, num_warps=4, num_stages=3),
        triton.Config({"BLOCK_M": 256, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=8, num_stages=3),
    ]
    if os.environ.get("TRITON_INTERPRET") == "1":  # the CPU interpreter cannot time configurations
        _CONFIGS = _CONFIGS[:1]

    @triton.jit
    def _gate_up_tiles(x_ptr, w_ptr, offs_m, offs_n, M, I, K, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                       BLOCK_K: tl.constexpr):
        """(gate, up) tiles [BLOCK_M, BLOCK_N] of x @ w^T, each rounded to x's dtype as a matmul's output is."""
        acc_g = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        acc_u = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            offs_k = k0 + tl.arange(0, BLOCK_K)
            k_ok = offs_k[None, :] < K
            x = tl.load(x_ptr + offs_m[:, None] * K + offs_k[None, :], mask=(offs_m[:, None] < M) & k_ok, other=0.0)
            w_rows = (offs_n[:, None] < I) & k_ok
            w_g = tl.load(w_ptr + offs_n[:, None] * K + offs_k[None, :], mask=w_rows, other=0.0)
            w_u = tl.load(w_ptr + (offs_n[:, None] + I) * K + offs_k[None, :], mask=w_rows, other=0.0)
            acc_g = tl.dot(x, tl.trans(w_g), acc_g)
            acc_u = tl.dot(x, tl.trans(w_u), acc_u)
        dtype = x_ptr.dtype.element_ty
        return acc_g.to(dtype).to(tl.float32), acc_u.to(dtype).to(tl.float32)

    @triton.autotune(configs=_CONFIGS, key=["M", "I", "K"])
    @triton.jit
    def _swiglu_forward_kernel(x_ptr, w_ptr, out_ptr, M, I, K, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                               BLOCK_K: tl.constexpr):
        offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        gate, up = _gate_up_tiles(x_ptr, w_ptr, offs_m, offs_n, M, I, K, BLOCK_M, BLOCK_N, BLOCK_K)
        product = gate * tl.sigmoid(gate) * up
        ok = (offs_m[:, None] < M) & (offs_n[None, :] < I)
        tl.store(out_ptr + offs_m[:, None] * I + offs_n[None, :], product.to(out_ptr.dtype.element_ty), mask=ok)

    @triton.autotune(configs=_CONFIGS, key=["M", "I", "K"])
    @triton.jit
    def _swiglu_backward_kernel(x_ptr, w_ptr, grad_ptr, product_ptr, grad_gate_up_ptr, M, I, K,
                                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
        offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        gate, up = _gate_up_tiles(x_ptr, w_ptr, offs_m, offs_n, M, I, K, BLOCK_M, BLOCK_N, BLOCK_K)
        ok = (offs_m[:, None] < M) & (offs_n[None, :] < I)
        grad = tl.load(grad_ptr + offs_m[:, None] * I + offs_n[None, :], mask=ok, other=0.0).to(tl.float32)
        sig = tl.sigmoid(gate)
        silu = gate * sig
        dsilu = sig * (1.0 + gate * (1.0 - sig))
        dtype = product_ptr.dtype.element_ty
        tl.store(product_ptr + offs_m[:, None] * I + offs_n[None, :], (silu * up).to(dtype), mask=ok)
        row = grad_gate_up_ptr + offs_m[:, None] * (2 * I)
        tl.store(row + offs_n[None, :], (grad * up * dsilu).to(dtype), mask=ok)
        tl.store(row + I + offs_n[None, :], (grad * silu).to(dtype), mask=ok)

    def _grid(meta: dict, M: int, I: int) -> tuple[int, int]:
        return triton.cdiv(M, meta["BLOCK_M"]), triton.cdiv(I, meta["BLOCK_N"])

    # Opaque custom operators: torch.compile calls them as they are (shapes from the fake implementations), so the
    # same code runs compiled, eagerly and under the CPU interpreter.
    @torch.library.custom_op("trm::swiglu_gate_up_forward", mutates_args=())
    def swiglu_gate_up_forward(x: torch.Tensor, w_gate_up: torch.Tensor) -> torch.Tensor:
        """``silu(x @ W_g^T) * (x @ W_u^T)`` [M, I] for x [M, K] and w_gate_up [2I, K] (both contiguous)."""
        M, K = x.shape
        I = w_gate_up.shape[0] // 2
        out = torch.empty((M, I), dtype=x.dtype, device=x.device)
        _swiglu_forward_kernel[lambda meta: _grid(meta, M, I)](x, w_gate_up, out, M, I, K)
        return out

    @swiglu_gate_up_forward.register_fake
    def _(x: torch.Tensor, w_gate_up: torch.Tensor) -> torch.Tensor:
        return x.new_empty((x.shape[0], w_gate_up.shape[0] // 2))

    @torch.library.custom_op("trm::swiglu_gate_up_backward", mutates_args=())
    def swiglu_gate_up_backward(x: torch.Tensor, w_gate_up: torch.Tensor, grad_product: torch.Tensor
                                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(the product [M, I], d gate_up [M, 2I]) from x, w_gate_up and d product [M, I] (all contiguous)."""
        M, K = x.shape
        I = w_gate_up.shape[0] // 2
        product = torch.empty((M, I), dtype=x.dtype, device=x.device)
        grad_gate_up = torch.empty((M, 2 * I), dtype=x.dtype, device=x.device)
        _swiglu_backward_kernel[lambda meta: _grid(meta, M, I)](x, w_gate_up, grad_product, product, grad_gate_up,
                                                                 M, I, K)
        return product, grad_gate_up

    @swiglu_gate_up_backward.register_fake
    def _(x: torch.Tensor, w_gate_up: torch.Tensor, grad_product: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        I = w_gate_up.shape[0] // 2
        return x.new_empty((x.shape[0], I)), x.new_empty((x.shape[0], 2 * I))


class FusedSwiGLUFunction(torch.autograd.Function):
    """``down(silu(gate) * up)`` over the last axis of x [..., K], the gating fused into the gate/up matmul; keeps
    only x (and the weights) for backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w_gate_up: torch.Tensor, w_down: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1]).contiguous()
        product = torch.ops.trm.swiglu_gate_up_forward(flat, w_gate_up.contiguous())
        ctx.save_for_backward(flat, w_gate_up, w_down)
        ctx.shape = x.shape
        return F.linear(product, w_down).reshape(*x.shape[:-1], w_down.shape[0])

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        flat, w_gate_up, w_down = ctx.saved_tensors
        grad_flat = grad_out.reshape(-1, grad_out.shape[-1])
        grad_product = F.linear(grad_flat, w_down.t()).contiguous()  # [M, I], rounded as the unfused path's
        product, grad_gate_up = torch.ops.trm.swiglu_gate_up_backward(flat, w_gate_up.contiguous(), grad_product)
        grad_w_down = grad_flat.t() @ product
        grad_w_gate_up = grad_gate_up.t() @ flat
        grad_x = (grad_gate_up @ w_gate_up).reshape(ctx.shape)
        return grad_x, grad_w_gate_up, grad_w_down


def fused_swiglu(x: torch.Tensor, w_gate_up: torch.Tensor, w_down: torch.Tensor) -> torch.Tensor:
    """The SwiGLU over the last axis of x with the Triton kernels above (x on CUDA, or any device under
    ``TRITON_INTERPRET=1``)."""
    return FusedSwiGLUFunction.apply(x, w_gate_up, w_down)

"""Building blocks shared by the engine and the backbone plugins.

Everything here follows the paper's code numerically (docs/reference-code.md sections 3.3, 3.5 and 3.7):

* weights are fp32 master copies, cast to the activation dtype at each use (``CastedLinear``, ``CastedEmbedding``),
  so bf16 compute needs no autocast;
* initialisation is the JAX-style truncated normal whose *actual* std equals the requested one (``trunc_normal_``);
* ``rms_norm`` has no gain and computes in fp32;
* ``SwiGLU`` rounds its inner width as the reference does (``swiglu_width``);
* rotary embeddings use the half-split (NeoX) convention over the flattened sequence, tables kept in fp32.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def trunc_normal_(tensor: torch.Tensor, std: float = 1.0, lower: float = -2.0, upper: float = 2.0) -> torch.Tensor:
    """Fill ``tensor`` in place from a normal truncated at ``[lower, upper]`` std, with the std corrected.

    torch's ``trunc_normal_`` clips at absolute bounds and leaves the std shrunk by the truncation (about 0.88x);
    the reference (and JAX) rescale so that the std of the result is exactly ``std`` (docs/reference-code.md 3.5).
    """
    with torch.no_grad():
        if std == 0:
            return tensor.zero_()
        sqrt2 = math.sqrt(2.0)
        a, b = math.erf(lower / sqrt2), math.erf(upper / sqrt2)
        z = (b - a) / 2
        c = (2 * math.pi) ** -0.5
        pdf_u, pdf_l = c * math.exp(-0.5 * lower**2), c * math.exp(-0.5 * upper**2)
        corrected = std / math.sqrt(1 - (upper * pdf_u - lower * pdf_l) / z - ((pdf_u - pdf_l) / z) ** 2)
        tensor.uniform_(a, b)
        tensor.erfinv_()
        tensor.mul_(sqrt2 * corrected)
        tensor.clamp_(lower * corrected, upper * corrected)
    return tensor


def lecun_std(fan_in: int) -> float:
    """LeCun normal: std 1/sqrt(fan_in)."""
    return 1.0 / math.sqrt(fan_in)


def rms_norm(x: torch.Tensor, eps: float = 1e-5, dim: int = -1) -> torch.Tensor:
    """Parameter-free RMSNorm over ``dim``, computed in fp32 and cast back (no learnable gain anywhere)."""
    dtype = x.dtype
    x32 = x.float()
    x32 = x32 * torch.rsqrt(x32.square().mean(dim, keepdim=True) + eps)
    return x32.to(dtype)


class CastedLinear(nn.Module):
    """``x @ W^T (+ b)`` with fp32 master weights cast to ``x``'s dtype at use; LeCun truncated-normal init."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(trunc_normal_(torch.empty(out_features, in_features), std=lecun_std(in_features)))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        return F.linear(x, self.weight.to(x.dtype), bias)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, bias={self.bias is not None}"


class CastedEmbedding(nn.Module):
    """An embedding table in fp32, looked up and cast to ``cast_to``."""

    def __init__(self, num_embeddings: int, embedding_dim: int, init_std: float, cast_to: torch.dtype):
        super().__init__()
        self.cast_to = cast_to
        self.weight = nn.Parameter(trunc_normal_(torch.empty(num_embeddings, embedding_dim), std=init_std))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids.long(), self.weight.to(self.cast_to))


def swiglu_width(width: int, expansion: float) -> int:
    """Inner width of the reference's SwiGLU: round(e * h * 2/3), rounded *up* to a multiple of 256.

    1536 for h = 512, e = 4; 512 for the mixer over S = 97; 2560 over S = 916 (docs/reference-code.md 3.3).
    """
    inner = round(expansion * width * 2 / 3)
    return -(inner // -256) * 256


class SwiGLU(nn.Module):
    """``W_down (silu(gate) * up)`` with one fused ``gate_up`` projection (gate = first half), no biases."""

    def __init__(self, width: int, expansion: float):
        super().__init__()
        self.inner = swiglu_width(width, expansion)
        self.gate_up_proj = CastedLinear(width, 2 * self.inner)
        self.down_proj = CastedLinear(self.inner, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(F.silu(gate) * up)


class Rotary(nn.Module):
    """cos/sin tables [S, head_dim] in fp32 (non-persistent: never saved, recomputed on load)."""

    def __init__(self, head_dim: int, seq_len: int, theta: float = 10000.0):
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
        angles = torch.cat((angles, angles), dim=-1)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` [B, S, H, d] by position (half-split convention), in fp32, cast back to ``x``'s dtype."""
    dtype = x.dtype
    x32 = x.float()
    cos, sin = cos[:, None, :], sin[:, None, :]  # broadcast over heads
    return (x32 * cos + _rotate_half(x32) * sin).to(dtype)

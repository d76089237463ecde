"""``attention``: the paper's network f, a stack of post-norm, bias-free transformer blocks.

docs/reference-code.md 3.3: each block is ``h <- RMSNorm(h + Attn(h))`` then ``h <- RMSNorm(h + SwiGLU(h))``, with a
parameter-free RMSNorm, one fused QKV projection (rows: Q heads, K heads, V heads), non-causal SDPA with the
default 1/sqrt(d) scale, and rotary positions over the flattened sequence (prefix slots included). ``learned``
positions add a table to the input embedding instead (3.2, step 4); ``none`` uses no positions at all.
"""

from __future__ import annotations

import math
from typing import Literal

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from trm.hookspecs import hookimpl
from trm.kernels import FastSwiGLU
from trm.layers import CastedLinear, Rotary, SwiGLU, apply_rotary, rms_norm, trunc_normal_
from trm.types import BackboneShape, BackboneSpec



@attrs.frozen
class AttentionOptions:
    layers: int = attrs.field(default=2, validator=attrs.validators.gt(0), metadata={"help": "blocks in the network (L_layers)"})
    expansion: float = attrs.field(default=4.0, validator=attrs.validators.gt(0), metadata={"help": "SwiGLU expansion factor"})
    num_heads: int = attrs.field(default=8, validator=attrs.validators.gt(0), metadata={"help": "attention heads (head_dim = D / heads)"})
    positions: Literal["rope", "learned", "none"] = attrs.field(
        default="rope", validator=attrs.validators.in_(("rope", "learned", "none")),
        metadata={"help": "rope (rotary over the flattened sequence), learned (absolute table) or none"},
    )
    rope_theta: float = attrs.field(default=10000.0, validator=attrs.validators.gt(0), metadata={"help": "rotary base"})
    norm_eps: float = attrs.field(default=1e-5, validator=attrs.validators.gt(0), metadata={"help": "RMSNorm epsilon"})


class SelfAttention(nn.Module):
    def __init__(self, hidden_size: int, num_heads: int):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, hidden_size // num_heads
        self.qkv_proj = CastedLinear(hidden_size, 3 * hidden_size)
        self.o_proj = CastedLinear(hidden_size, hidden_size)

    def forward(self, h: torch.Tensor, rotary: Rotary | None) -> torch.Tensor:
        batch, seq, _ = h.shape
        qkv = self.qkv_proj(h).view(batch, seq, 3 * self.num_heads, self.head_dim)
        q, k, v = qkv.split(self.num_heads, dim=2)  # [B, S, H, d] each: Q heads, then K heads, then V heads
        if rotary is not None:
            q, k = apply_rotary(q, rotary.cos, rotary.sin), apply_rotary(k, rotary.cos, rotary.sin)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.o_proj(out.transpose(1, 2).reshape(batch, seq, -1))


class AttentionBlock(nn.Module):
    def __init__(self, hidden_size: int, options: AttentionOptions, fast: bool = False, recompute: str = "auto"):
        super().__init__()
        self.norm_eps = options.norm_eps
        self.self_attn = SelfAttention(hidden_size, options.num_heads)
        # The fast path's SwiGLU keeps less for backward (trm/kernels.py); same parameters, same forward.
        self.mlp = (FastSwiGLU(hidden_size, options.expansion, recompute=recompute == "swiglu") if fast
                    else SwiGLU(hidden_size, options.expansion))

    def forward(self, h: torch.Tensor, rotary: Rotary | None) -> torch.Tensor:
        h = rms_norm(h + self.self_attn(h, rotary), self.norm_eps)  # post-norm (docs/reference-code.md 10.1 item 2)
        return rms_norm(h + self.mlp(h), self.norm_eps)


class AttentionBackbone(nn.Module):
    """``forward(h[B, S, D]) -> [B, S, D]``; ``embed_positions`` adds the learned table when configured."""

    def __init__(self, options: AttentionOptions, shape: BackboneShape):
        super().__init__()
        if shape.hidden_size % options.num_heads:
            raise ValueError(f"hidden_size {shape.hidden_size} is not divisible by num_heads {options.num_heads}")
        self.layers = nn.ModuleList(AttentionBlock(shape.hidden_size, options, shape.fast, shape.recompute)
                                    for _ in range(options.layers))
        self.rotary = (Rotary(shape.hidden_size // options.num_heads, shape.seq_len, options.rope_theta)
                       if options.positions == "rope" else None)
        self.embed_pos = None
        if options.positions == "learned":
            self.embed_pos = nn.Parameter(
                trunc_normal_(torch.empty(shape.seq_len, shape.hidden_size), std=1 / math.sqrt(shape.hidden_size)))

    def embed_positions(self, x: torch.Tensor) -> torch.Tensor:
        if self.embed_pos is None:
            return x
        # 1/sqrt(2) keeps the variance of (embedding + position) that of one of them, as the reference does.
        return 0.707106781 * (x + self.embed_pos.to(x.dtype))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            hidden = layer(hidden, self.rotary)
        return hidden


def build(options: AttentionOptions, shape: BackboneShape) -> AttentionBackbone:
    return AttentionBackbone(options, shape)


@hookimpl
def trm_backbones() -> list[BackboneSpec]:
    return [BackboneSpec(
        name="attention", options_class=AttentionOptions, build=build,
        summary="post-norm transformer blocks (RMSNorm without gain, SwiGLU, RoPE/learned/no positions, SDPA)",
    )]

"""``mlp_mixer``: the paper's best Sudoku network (``mlp_t``), token mixing instead of attention.

docs/reference-code.md 3.3: each block applies a SwiGLU over the *sequence* axis (all S = L + P positions, prefix slots
included), adds it and normalises **over the sequence axis** (the reference normalises while the tensor is still
transposed to [B, D, S]); then a channel SwiGLU over D, normalised over D. No positions, no attention.

The reference transposes to [B, D, S] and back around the token mixer. Here the token SwiGLU multiplies its weights
from the left (``W @ h`` over the S axis of [B, S, D]), which is the same arithmetic with the same weight layout
([2 * inner_S, S] and [S, inner_S]) but needs no transposed copies of the activations.
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from trm.hookspecs import hookimpl
from trm.kernels import FastSwiGLU, token_swiglu
from trm.layers import CastedLinear, SwiGLU, rms_norm, swiglu_width
from trm.types import BackboneShape, BackboneSpec



@attrs.frozen
class MixerOptions:
    layers: int = attrs.field(default=2, validator=attrs.validators.gt(0), metadata={"help": "blocks in the network (L_layers)"})
    expansion: float = attrs.field(default=4.0, validator=attrs.validators.gt(0),
                                   metadata={"help": "SwiGLU expansion factor (token and channel mixers)"})
    norm_eps: float = attrs.field(default=1e-5, validator=attrs.validators.gt(0), metadata={"help": "RMSNorm epsilon"})


class TokenSwiGLU(nn.Module):
    """SwiGLU over the sequence axis of h [B, S, D]: ``down @ (silu(gate) * up)`` with ``gate_up @ h``."""

    def __init__(self, seq_len: int, expansion: float):
        super().__init__()
        self.inner = swiglu_width(seq_len, expansion)
        self.gate_up_proj = CastedLinear(seq_len, 2 * self.inner)  # weight [2 * inner, S]; fan-in S
        self.down_proj = CastedLinear(self.inner, seq_len)  # weight [S, inner]; fan-in inner

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        gate_up = torch.matmul(self.gate_up_proj.weight.to(h.dtype), h)  # [B, 2 * inner, D]
        gate, up = gate_up.chunk(2, dim=1)
        return torch.matmul(self.down_proj.weight.to(h.dtype), F.silu(gate) * up)  # [B, S, D]


class FastTokenSwiGLU(TokenSwiGLU):
    """The fast path's token SwiGLU: same parameters and result, computed in the transposed, zero-padded layout
    where every matmul is aligned; unless ``recompute`` is off (``model.recompute: none``), backward recomputes
    ``gate_up`` instead of keeping the block's largest tensor ([B, 2 * inner, D]); trm/kernels.py ``token_swiglu``."""

    def __init__(self, seq_len: int, expansion: float, recompute: bool = True, fused: bool = False):
        super().__init__(seq_len, expansion)
        self.recompute = recompute
        self.fused = None  # model.fused_swiglu: the gating inside the gate/up matmul (trm/fused_swiglu.py, CUDA)
        if fused:
            from trm.fused_swiglu import fused_swiglu

            self.fused = fused_swiglu

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return token_swiglu(h, self.gate_up_proj.weight.to(h.dtype), self.down_proj.weight.to(h.dtype), self.recompute,
                            fused=self.fused)


class MixerBlock(nn.Module):
    def __init__(self, shape: BackboneShape, options: MixerOptions):
        super().__init__()
        self.norm_eps = options.norm_eps
        if shape.fast:
            self.mlp_t = FastTokenSwiGLU(shape.seq_len, options.expansion, recompute=shape.recompute != "none",
                                         fused=shape.fused_swiglu)
            self.mlp = FastSwiGLU(shape.hidden_size, options.expansion, recompute=shape.recompute == "swiglu")
        else:
            self.mlp_t, self.mlp = TokenSwiGLU(shape.seq_len, options.expansion), SwiGLU(shape.hidden_size, options.expansion)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = rms_norm(h + self.mlp_t(h), self.norm_eps, dim=1)  # over S, per channel (docs/reference-code.md 10.1 item 3)
        return rms_norm(h + self.mlp(h), self.norm_eps, dim=-1)


class MixerBackbone(nn.Module):
    def __init__(self, options: MixerOptions, shape: BackboneShape):
        super().__init__()
        self.layers = nn.ModuleList(MixerBlock(shape, options) for _ in range(options.layers))

    def embed_positions(self, x: torch.Tensor) -> torch.Tensor:
        return x  # the mixer's weights are position-specific already

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            hidden = layer(hidden)
        return hidden


def build(options: MixerOptions, shape: BackboneShape) -> MixerBackbone:
    return MixerBackbone(options, shape)


@hookimpl
def trm_backbones() -> list[BackboneSpec]:
    return [BackboneSpec(
        name="mlp_mixer", options_class=MixerOptions, build=build,
        summary="MLP-mixer blocks: SwiGLU over the sequence axis, then over channels (the paper's Sudoku network)",
    )]

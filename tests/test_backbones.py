"""Backbone plugins: registration, options, shapes, and the reference's block arithmetic (docs/reference-code.md 3.3)."""

import attrs
import pytest
import torch
import torch.nn.functional as F

from trm.layers import rms_norm
from trm.plugins import registry
from trm.types import Backbone, BackboneShape
from trm_backbones.attention import AttentionOptions
from trm_backbones.mlp_mixer import MixerOptions

SHAPE = BackboneShape(hidden_size=32, seq_len=11, prefix_len=2)


def build(name, **options):
    spec = registry("backbones").get(name)
    return spec.build(spec.options_class(**options), SHAPE)


@pytest.mark.parametrize("name", ["attention", "mlp_mixer"])
def test_registered_shape_preserving_and_post_normed(name):
    torch.manual_seed(0)
    net = build(name, **({"num_heads": 4} if name == "attention" else {}))
    assert isinstance(net, Backbone)
    h = torch.randn(3, SHAPE.seq_len, SHAPE.hidden_size)
    out = net(h)
    assert out.shape == h.shape
    # The last operation is a gain-free RMSNorm over D: every position has unit mean square.
    torch.testing.assert_close(out.pow(2).mean(-1), torch.ones(3, SHAPE.seq_len), rtol=1e-3, atol=1e-3)
    assert not any("norm" in name for name, _ in net.named_parameters())
    assert all(p.dim() == 2 for p in net.parameters())  # no biases, no gains


def test_options_are_validated():
    with pytest.raises(ValueError):
        AttentionOptions(positions="alibi")
    with pytest.raises(ValueError):
        MixerOptions(layers=0)
    with pytest.raises(ValueError):
        build("attention", num_heads=5)  # 32 is not divisible by 5


def test_positions_options():
    rope = build("attention", num_heads=4, positions="rope")
    none = build("attention", num_heads=4, positions="none")
    learned = build("attention", num_heads=4, positions="learned")
    x = torch.randn(2, SHAPE.seq_len, SHAPE.hidden_size)
    assert rope.rotary is not None and none.rotary is None
    assert torch.equal(rope.embed_positions(x), x)
    assert learned.embed_pos.shape == (SHAPE.seq_len, SHAPE.hidden_size)
    torch.testing.assert_close(learned.embed_positions(x), 0.707106781 * (x + learned.embed_pos))
    count = lambda net: sum(p.numel() for p in net.parameters())
    assert count(learned) - count(rope) == SHAPE.seq_len * SHAPE.hidden_size


def _reference_attention_block(block, h, cos, sin, heads):
    """The reference's Attention + post-norm block, written out from docs/reference-code.md 3.3."""
    B, S, D = h.shape
    d = D // heads
    qkv = F.linear(h, block.self_attn.qkv_proj.weight).view(B, S, 3 * heads, d)
    q, k, v = qkv[:, :, :heads], qkv[:, :, heads:2 * heads], qkv[:, :, 2 * heads:]
    def rot(t):
        half = torch.cat((-t[..., d // 2:], t[..., :d // 2]), -1)
        return t * cos[:, None] + half * sin[:, None]
    q, k = rot(q), rot(k)
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / d**0.5
    attn = torch.einsum("bhqk,bkhd->bqhd", scores.softmax(-1), v).reshape(B, S, D)
    h = rms_norm(h + F.linear(attn, block.self_attn.o_proj.weight))
    gate, up = F.linear(h, block.mlp.gate_up_proj.weight).chunk(2, -1)
    return rms_norm(h + F.linear(F.silu(gate) * up, block.mlp.down_proj.weight))


def test_attention_block_matches_a_written_out_reference():
    torch.manual_seed(0)
    net = build("attention", num_heads=4, layers=1)
    h = torch.randn(2, SHAPE.seq_len, SHAPE.hidden_size)
    expected = _reference_attention_block(net.layers[0], h, net.rotary.cos, net.rotary.sin, 4)
    torch.testing.assert_close(net(h), expected, rtol=1e-4, atol=1e-4)


def test_mixer_block_matches_the_reference_transposed_form():
    torch.manual_seed(0)
    net = build("mlp_mixer", layers=1)
    block = net.layers[0]
    h = torch.randn(2, SHAPE.seq_len, SHAPE.hidden_size)
    t = h.transpose(1, 2)  # [B, D, S], as the reference does
    gate, up = F.linear(t, block.mlp_t.gate_up_proj.weight).chunk(2, -1)
    t = rms_norm(t + F.linear(F.silu(gate) * up, block.mlp_t.down_proj.weight))  # normalised over S
    x = t.transpose(1, 2)
    gate, up = F.linear(x, block.mlp.gate_up_proj.weight).chunk(2, -1)
    expected = rms_norm(x + F.linear(F.silu(gate) * up, block.mlp.down_proj.weight))
    torch.testing.assert_close(net(h), expected, rtol=1e-4, atol=1e-4)
    assert block.mlp_t.gate_up_proj.weight.shape == (2 * 256, SHAPE.seq_len)  # round(4*11*2/3)=29 -> 256


def test_bf16_activations_stay_bf16():
    net = build("attention", num_heads=4)
    out = net(torch.randn(2, SHAPE.seq_len, SHAPE.hidden_size).bfloat16())
    assert out.dtype == torch.bfloat16
    assert build("mlp_mixer")(torch.randn(2, SHAPE.seq_len, SHAPE.hidden_size).bfloat16()).dtype == torch.bfloat16

"""Shared layers: truncated-normal init with std correction, RMSNorm, SwiGLU widths, casting, rotary (docs/reference-code.md 3)."""

import math

import torch
import torch.nn.functional as F

from trm.layers import CastedEmbedding, CastedLinear, Rotary, SwiGLU, apply_rotary, rms_norm, swiglu_width, trunc_normal_


def test_trunc_normal_has_the_requested_std_and_bounds():
    torch.manual_seed(0)
    values = trunc_normal_(torch.empty(400_000), std=0.5)
    assert abs(values.std().item() - 0.5) < 0.005  # torch.nn.init.trunc_normal_ would give ~0.44
    assert abs(values.mean().item()) < 0.005
    corrected = 0.5 / 0.8796256610342398  # std of a standard normal truncated at +-2
    assert values.abs().max().item() <= 2 * corrected + 1e-6
    assert values.abs().max().item() > 2 * corrected * 0.98


def test_trunc_normal_zero_std_zeroes():
    assert torch.count_nonzero(trunc_normal_(torch.ones(5), std=0.0)) == 0


def test_rms_norm_is_parameter_free_fp32_and_per_axis():
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    expected = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)
    torch.testing.assert_close(rms_norm(x), expected.to(torch.float64), rtol=1e-6, atol=1e-6)
    over_axis1 = rms_norm(x, dim=1)
    torch.testing.assert_close(over_axis1.pow(2).mean(1), torch.ones(2, 4, dtype=torch.float64), rtol=1e-4, atol=1e-4)
    assert rms_norm(x.bfloat16()).dtype == torch.bfloat16


def test_swiglu_width_matches_the_reference_rounding():
    assert swiglu_width(512, 4) == 1536
    assert swiglu_width(97, 4) == 512
    assert swiglu_width(916, 4) == 2560
    assert swiglu_width(64, 4) == 256


def test_swiglu_gate_is_the_first_half():
    torch.manual_seed(0)
    mlp = SwiGLU(8, 4)
    x = torch.randn(3, 8)
    gate_up = x @ mlp.gate_up_proj.weight.T
    gate, up = gate_up[:, :mlp.inner], gate_up[:, mlp.inner:]
    torch.testing.assert_close(mlp(x), (F.silu(gate) * up) @ mlp.down_proj.weight.T)


def test_casted_linear_and_embedding_cast_fp32_masters_at_use():
    torch.manual_seed(0)
    linear = CastedLinear(16, 4, bias=True)
    assert linear.weight.dtype == torch.float32
    assert abs(linear.weight.std().item() - 1 / math.sqrt(16)) < 0.1
    x = torch.randn(2, 16).bfloat16()
    out = linear(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, F.linear(x, linear.weight.bfloat16(), linear.bias.bfloat16()))
    table = CastedEmbedding(5, 8, init_std=0.1, cast_to=torch.bfloat16)
    assert table(torch.tensor([1, 4])).dtype == torch.bfloat16


def test_rotary_rotates_pairs_half_split_and_keeps_norms():
    head_dim, seq = 8, 5
    rotary = Rotary(head_dim, seq, theta=10000.0)
    x = torch.randn(1, seq, 2, head_dim)
    rotated = apply_rotary(x, rotary.cos, rotary.sin)
    torch.testing.assert_close(rotated[:, 0], x[:, 0])  # position 0: no rotation
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))
    # Pair (i, i + d/2) at position p is rotated by angle p * theta^(-2i/d), as a complex multiplication.
    p, i = 3, 1
    angle = p * 10000.0 ** (-2 * i / head_dim)
    z = torch.complex(x[0, p, :, i], x[0, p, :, i + head_dim // 2]) * complex(math.cos(angle), math.sin(angle))
    torch.testing.assert_close(rotated[0, p, :, i], z.real)
    torch.testing.assert_close(rotated[0, p, :, i + head_dim // 2], z.imag)

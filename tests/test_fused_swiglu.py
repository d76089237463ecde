"""model.fused_swiglu (trm/fused_swiglu.py, docs/engine.md F4): the SwiGLU with its gating inside the gate/up matmul.

On the CPU the Triton kernels run under Triton's interpreter (``TRITON_INTERPRET=1``, float32, in a subprocess so
that the variable is set before Triton loads); they must give the fast path's SwiGLU, its gradients and the
MLP-mixer's results, eagerly and compiled. Where Triton is not installed those tests skip (CI installs it). On a
CUDA machine (``-m gpu``) the bf16 kernels are checked against torch's at the paper's Sudoku shapes.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from conftest import REPO

HAS_TRITON = importlib.util.find_spec("triton") is not None
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="Triton is not installed (pip install triton); .ci/run "
                                                         "installs it for these interpreter tests")


def run_interpreted(code: str) -> str:
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                            cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@needs_triton
def test_the_kernels_give_the_fast_swiglu_and_its_gradients():
    # Sizes that fill no tile exactly (rows, product columns and the reduction axis all leave remainders), so a
    # wrong mask or offset shows; compiled with each backend the custom operators must run as they do eagerly.
    out = run_interpreted("""
        import torch
        from trm.fused_swiglu import fused_swiglu
        from trm.kernels import ChannelSwiGLUFunction
        torch.manual_seed(0)
        M, K, I = 300, 40, 96
        x = torch.randn(M, K)
        w1 = torch.randn(2 * I, K) * 0.2
        w2 = torch.randn(K, I) * 0.1
        g = torch.randn(M, K)
        def run(fn):
            leaves = [t.clone().requires_grad_() for t in (x, w1, w2)]
            out = fn(*leaves)
            return [out.detach()] + list(torch.autograd.grad(out, leaves, g))
        want = run(lambda a, b, c: ChannelSwiGLUFunction.apply(a, b, c, False))
        for name, fn in (("eager", fused_swiglu), ("aot_eager", torch.compile(fused_swiglu, backend="aot_eager",
                         fullgraph=True)), ("inductor", torch.compile(fused_swiglu, fullgraph=True))):
            got = run(fn)
            for label, a, b in zip(("out", "dx", "dw_gate_up", "dw_down"), got, want):
                error = float((a - b).abs().max() / b.abs().max())
                assert error < 1e-5, (name, label, error)
            print(name, "ok")
    """)
    assert out.split() == ["eager", "ok", "aot_eager", "ok", "inductor", "ok"]


@needs_triton
def test_the_mlp_mixer_with_the_fused_token_swiglu_equals_the_faithful_model():
    # The backbone as the fast path builds it with model.fused_swiglu in effect (the kernels run on the CPU here
    # through the interpreter): two supervision steps, every gradient, against the faithful model.
    out = run_interpreted("""
        import torch
        from trm.build import assemble
        from trm.engine import ModelConfig
        from trm.losses import act_loss, token_loss_name
        from trm_backbones.mlp_mixer import FastTokenSwiGLU

        def build(fast, fused):
            torch.manual_seed(0)
            config = ModelConfig(hidden_size=32, h_cycles=2, l_cycles=2, puzzle_emb_len=2, puzzle_emb_dim=32,
                                 recompute="none")
            model = assemble(config, "mlp_mixer", {}, "act_q", {"max_steps": 4, "exploration_prob": 0.0},
                             vocab_size=7, seq_len=11, num_puzzle_identifiers=3, fast=fast)
            if fused:
                from trm.fused_swiglu import fused_swiglu
                blocks = [m for m in model.modules() if isinstance(m, FastTokenSwiGLU)]
                assert blocks
                for block in blocks:
                    block.fused = fused_swiglu
            with torch.no_grad():
                model.q_head.weight.normal_(0, 0.1)
            return model.train()

        gen = torch.Generator().manual_seed(1)
        batch = {"inputs": torch.randint(1, 7, (5, 11), generator=gen, dtype=torch.int32),
                 "labels": torch.randint(1, 7, (5, 11), generator=gen),
                 "puzzle_identifiers": torch.randint(0, 3, (5,), generator=gen, dtype=torch.int32)}

        def step(model, fast):
            carry = model.initial_carry(batch)
            carry, out = model(carry, batch)
            carry, out = model(carry, batch)
            loss, _ = act_loss(out, model.halting, loss_type=token_loss_name("stablemax", fast))
            loss.backward()
            grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
            return out["logits"].detach(), loss.detach(), grads

        want = step(build(False, False), False)
        got = step(build(True, True), True)
        for name, a, b in (("logits", got[0], want[0]), ("loss", got[1], want[1])):
            assert float((a - b).abs().max()) <= 1e-4 * float(b.abs().max()), name
        assert got[2].keys() == want[2].keys()
        for name in want[2]:
            a, b = got[2][name], want[2][name]
            assert float((a - b).abs().max()) <= 1e-4 * float(b.abs().max()) + 1e-12, name
        print("ok", len(want[2]))
    """)
    assert out.startswith("ok ")


def test_fused_swiglu_on_is_refused_where_it_cannot_run_and_auto_falls_back():
    from trm.build import uses_fused_swiglu
    from trm.errors import UserError

    cpu = torch.device("cpu")
    assert not uses_fused_swiglu("auto", True, cpu)
    assert not uses_fused_swiglu("on", False, cpu)  # the faithful path ignores it, as it ignores model.recompute
    with pytest.raises(UserError, match=r"model\.fused_swiglu: on, but it runs on CUDA only"):
        uses_fused_swiglu("on", True, cpu)


def test_the_recipe_key_offers_the_choices_the_engine_knows():
    import attrs

    from trm.engine import ModelConfig
    from trm.types import FUSED_SWIGLU_CHOICES

    assert tuple(attrs.fields(ModelConfig).fused_swiglu.validator.options) == FUSED_SWIGLU_CHOICES
    with pytest.raises(ValueError):
        ModelConfig(fused_swiglu="sometimes")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or not HAS_TRITON, reason="needs CUDA and Triton (-m gpu)")
def test_the_bf16_kernels_match_torch_at_the_sudoku_shapes():
    # The paper's Sudoku token SwiGLU (B = 768 would be the batch; 96 keeps the test short): x^T [B * D, S'] with
    # S' = 104 (97 padded) and the product over I = 512. bf16: the sums' order differs from cuBLAS's, so a value may
    # round to the neighbouring bf16 number; 2% of a tensor's largest entry bounds it (measured far below).
    from trm.fused_swiglu import fused_swiglu
    from trm.kernels import ChannelSwiGLUFunction

    torch.manual_seed(0)
    device = torch.device("cuda")
    M, K, I = 96 * 512, 104, 512
    x = torch.randn(M, K, device=device, dtype=torch.bfloat16)
    w1 = (torch.randn(2 * I, K, device=device) * K ** -0.5).bfloat16()
    w2 = (torch.randn(K, I, device=device) * I ** -0.5).bfloat16()
    g = torch.randn(M, K, device=device, dtype=torch.bfloat16)

    def run(fn):
        leaves = [t.clone().requires_grad_() for t in (x, w1, w2)]
        out = fn(*leaves)
        return [out.detach()] + list(torch.autograd.grad(out, leaves, g))

    want = run(lambda a, b, c: ChannelSwiGLUFunction.apply(a, b, c, False))
    got = run(fused_swiglu)
    errors = {label: float((a.float() - b.float()).abs().max() / b.float().abs().max())
              for label, a, b in zip(("out", "dx", "dw_gate_up", "dw_down"), got, want)}
    print("relative max errors", errors)
    assert all(error < 2e-2 for error in errors.values()), errors

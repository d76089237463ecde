"""Reference checkpoints -> trm: a fake state dict with the reference's keys and shapes (docs/reference-code.md 12) is
converted, and trm's logits and halting logits equal those of a minimal re-implementation of the reference's
forward (written here from docs/reference-code.md 3, independent of trm's modules)."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from in_process import trm_in_process
from trm.convert import convert_state_dict, reference_key_to_trm
from trm.build import assemble
from trm.engine import ModelConfig
from trm.errors import UserError

PREFIX = "_orig_mod.model.inner."


def fake_reference(D, V, S, layers, ids, heads_inner, mixer_inner=None, seed=0, learned=False):
    """Random tensors under the reference's keys and shapes (attention, or mlp_t when mixer_inner is given)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g) / math.sqrt(shape[-1])
    sd = {"H_init": torch.randn(D, generator=g).bfloat16(), "L_init": torch.randn(D, generator=g).bfloat16(),
          "embed_tokens.embedding_weight": r(V, D), "lm_head.weight": r(V, D),
          "q_head.weight": r(2, D), "q_head.bias": torch.tensor([0.3, -0.2]),
          "puzzle_emb.weights": torch.randn(ids, D, generator=g)}
    if learned:
        sd["embed_pos.embedding_weight"] = r(S, D)
    for i in range(layers):
        base = f"L_level.layers.{i}."
        if mixer_inner is None:
            sd[base + "self_attn.qkv_proj.weight"] = r(3 * D, D)
            sd[base + "self_attn.o_proj.weight"] = r(D, D)
        else:
            sd[base + "mlp_t.gate_up_proj.weight"] = r(2 * mixer_inner, S)
            sd[base + "mlp_t.down_proj.weight"] = r(S, mixer_inner)
        sd[base + "mlp.gate_up_proj.weight"] = r(2 * heads_inner, D)
        sd[base + "mlp.down_proj.weight"] = r(D, heads_inner)
    return {PREFIX + k: v for k, v in sd.items()}


def reference_forward(sd, inputs, ids, *, T, n, P, heads=None, learned=False, mixer=False, eps=1e-5):
    """One supervision step from a fresh carry, as the reference computes it (fp32)."""
    w = {k[len(PREFIX):]: v.float() for k, v in sd.items()}
    D = w["H_init"].shape[0]
    B = inputs.shape[0]
    norm = lambda x, dim=-1: x * torch.rsqrt(x.pow(2).mean(dim, keepdim=True) + eps)
    def swiglu(x, prefix):
        gate, up = F.linear(x, w[prefix + ".gate_up_proj.weight"]).chunk(2, -1)
        return F.linear(F.silu(gate) * up, w[prefix + ".down_proj.weight"])
    pe = F.pad(w["puzzle_emb.weights"][ids.long()], (0, P * D - D)).view(B, P, D)
    emb = torch.cat((pe, F.embedding(inputs.long(), w["embed_tokens.embedding_weight"])), 1)
    if learned:
        emb = 0.707106781 * (emb + w["embed_pos.embedding_weight"])
    x = math.sqrt(D) * emb
    S = x.shape[1]
    if heads:
        d = D // heads
        inv = 1.0 / (10000 ** (torch.arange(0, d, 2).float() / d))
        ang = torch.outer(torch.arange(S).float(), inv)
        ang = torch.cat((ang, ang), -1)
        cos, sin = ang.cos()[:, None], ang.sin()[:, None]
    layers = sorted({int(k.split(".")[2]) for k in w if k.startswith("L_level.")})
    def block(i, h):
        p = f"L_level.layers.{i}."
        if mixer:
            t = h.transpose(1, 2)
            h = norm(t + swiglu(t, p + "mlp_t")).transpose(1, 2)
        else:
            qkv = F.linear(h, w[p + "self_attn.qkv_proj.weight"]).view(B, S, 3 * heads, d)
            q, k, v = qkv[:, :, :heads], qkv[:, :, heads:2 * heads], qkv[:, :, 2 * heads:]
            if not learned:
                rot = lambda t: t * cos + torch.cat((-t[..., d // 2:], t[..., :d // 2]), -1) * sin
                q, k = rot(q), rot(k)
            a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
            h = norm(h + F.linear(a.transpose(1, 2).reshape(B, S, D), w[p + "self_attn.o_proj.weight"]))
        return norm(h + swiglu(h, p + "mlp"))
    def L_level(h, inj):
        h = h + inj
        for i in layers:
            h = block(i, h)
        return h
    zH, zL = w["H_init"].expand(B, S, D), w["L_init"].expand(B, S, D)
    for _ in range(T):
        for _ in range(n):
            zL = L_level(zL, zH + x)
        zH = L_level(zH, zL)
    logits = F.linear(zH, w["lm_head.weight"])[:, P:]
    q = F.linear(zH[:, 0], w["q_head.weight"], w["q_head.bias"])
    return logits, q[:, 0], q[:, 1]


def test_key_mapping():
    assert reference_key_to_trm(PREFIX + "L_level.layers.1.self_attn.qkv_proj.weight") == \
        "backbone.layers.1.self_attn.qkv_proj.weight"
    assert reference_key_to_trm("model.inner.H_init") == "y_init"  # uncompiled: no _orig_mod.
    assert reference_key_to_trm(PREFIX + "embed_pos.embedding_weight") == "backbone.embed_pos"
    assert reference_key_to_trm(PREFIX + "H_level.layers.0.mlp.down_proj.weight") is None


@pytest.mark.parametrize("kind", ["attention", "learned", "mlp_mixer"])
def test_converted_model_reproduces_the_reference_forward(kind):
    D, V, L, P, layers, ids, T, n = 32, 7, 6, 2, 2, 5, 2, 2
    S = L + P
    mixer = kind == "mlp_mixer"
    sd = fake_reference(D, V, S, layers, ids, heads_inner=256, mixer_inner=256 if mixer else None,
                        learned=kind == "learned")
    cfg = ModelConfig(hidden_size=D, h_cycles=T, l_cycles=n, puzzle_emb_len=P, puzzle_emb_dim=D)
    options = {"layers": layers} if mixer else {"layers": layers, "num_heads": 4,
                                                "positions": "learned" if kind == "learned" else "rope"}
    model = assemble(cfg, "mlp_mixer" if mixer else "attention", options, "act_q", None, vocab_size=V, seq_len=L,
                     num_puzzle_identifiers=ids)
    model.load_state_dict(convert_state_dict(sd, model), strict=True)
    assert torch.equal(model.puzzle_emb.weights, sd[PREFIX + "puzzle_emb.weights"])
    assert torch.equal(model.y_init, sd[PREFIX + "H_init"].float())
    model.eval()
    g = torch.Generator().manual_seed(1)
    inputs = torch.randint(0, V, (3, L), generator=g, dtype=torch.int32)
    ids_batch = torch.tensor([4, 0, 2], dtype=torch.int32)
    data = {"inputs": inputs, "labels": inputs.long(), "puzzle_identifiers": ids_batch}
    with torch.no_grad():
        _, out = model(model.initial_carry(data), data)
    logits, q_halt, q_continue = reference_forward(sd, inputs, ids_batch, T=T, n=n, P=P, heads=None if mixer else 4,
                                                   learned=kind == "learned", mixer=mixer)
    torch.testing.assert_close(out["logits"], logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out["q_halt"], q_halt, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out["q_continue"], q_continue, rtol=1e-4, atol=1e-4)


def test_mismatches_are_user_errors():
    cfg = ModelConfig(hidden_size=32, h_cycles=1, l_cycles=1, puzzle_emb_len=2, puzzle_emb_dim=32)
    model = assemble(cfg, "attention", {"layers": 2, "num_heads": 4}, vocab_size=7, seq_len=6, num_puzzle_identifiers=5)
    good = fake_reference(32, 7, 8, 2, 5, heads_inner=256)
    with pytest.raises(UserError, match="shape"):
        convert_state_dict(fake_reference(32, 9, 8, 2, 5, heads_inner=256), model)
    with pytest.raises(UserError, match="does not"):
        convert_state_dict({**good, PREFIX + "H_level.layers.0.mlp.down_proj.weight": torch.zeros(1)}, model)
    with pytest.raises(UserError, match="lacks"):
        convert_state_dict({k: v for k, v in good.items() if "layers.1" not in k}, model)


def test_a_file_that_is_not_a_checkpoint_is_one_line(tmp_path):
    from trm.convert import load_reference

    text = tmp_path / "README.md"
    text.write_text("# not a checkpoint\n")
    with pytest.raises(UserError) as error:
        load_reference(text)
    message = str(error.value)
    assert message.startswith(f"{text}: not a PyTorch checkpoint (torch.load failed: ") and message.endswith(")")
    assert "\n" not in message and "file an issue" not in message and "weights_only" not in message
    torch.save({"w": torch.zeros(2)}, tmp_path / "ok.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "ok.pt").read_bytes()[:300])
    with pytest.raises(UserError, match=r"cut.pt: not a PyTorch checkpoint \(torch.load failed: [^\n.]+\)$"):
        load_reference(tmp_path / "cut.pt")


def test_cli_writes_a_loadable_run_directory(tmp_path):
    from trm.build import task_dims
    from trm.config import load_recipe

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        "extends: " + str((__import__("pathlib").Path(__file__).parents[1] / "recipes/quickstart_4x4.yaml")) + "\n"
        f"data: {{store: {tmp_path / 'absent.zarr'}}}\n"
        "model: {hidden_size: 32, h_cycles: 1, l_cycles: 1, puzzle_emb_len: 2, puzzle_emb_dim: 32}\n"
        "backbone: {name: attention, options: {layers: 1, num_heads: 4}}\n")
    dims, _ = task_dims(load_recipe(recipe))
    ids = dims.num_puzzle_identifiers or 3
    sd = fake_reference(32, dims.vocab_size, dims.seq_len + 2, 1, ids, heads_inner=256)
    ckpt = tmp_path / "ref.pt"
    torch.save(sd, ckpt)
    names = tmp_path / "identifiers.json"
    names.write_text(json.dumps([f"puzzle-{i}" for i in range(ids)]))
    out = tmp_path / "converted"
    result = trm_in_process("convert", "reference", str(ckpt), "--recipe", str(recipe), "--out", str(out),
                            "--identifiers", str(names))  # the command in this process
    assert result.returncode == 0, result.stderr
    from trm.api import load

    loaded = load(out)
    assert loaded.identifiers == [f"puzzle-{i}" for i in range(ids)]
    assert loaded.identifier(f"puzzle-{ids - 1}") == ids - 1
    assert torch.equal(loaded.model.puzzle_emb.weights, sd[PREFIX + "puzzle_emb.weights"])
    steps = loaded.run(torch.randint(1, dims.vocab_size, (2, dims.seq_len)), [0, 0], max_steps=3)
    assert [s.step for s in steps] == [1, 2, 3] and steps[0].logits.shape == (2, dims.seq_len, dims.vocab_size)
    board = "1" + "." * (dims.seq_len - 1)  # trm solve takes a converted reference run like a trm run
    solved = trm_in_process("solve", str(out), board, "--json", "--max-steps", "2")
    assert solved.returncode == 0, solved.stderr
    assert json.loads(solved.stdout)["puzzles"][0]["steps"] in (1, 2)
    bad = trm_in_process("convert", "reference", str(tmp_path / "missing.pt"), "--recipe", str(recipe),
                         "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "no such file" in bad.stderr

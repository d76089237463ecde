"""Checkpoints of the paper's code -> trm run directories (``trm convert reference``).

docs/reference-code.md 12 gives the reference layout: ``state_dict()`` of the compiled loss head, so keys read
``_orig_mod.model.inner.<name>`` (``_orig_mod.`` is absent when compilation was off). Every tensor maps one to one:
the engine and the built-in backbones keep the reference's weight layouts (fused QKV rows Q|K|V, fused gate|up rows,
the mixer's [2 * inner_S, S] token weights), so no tensor is reshaped or permuted. The only changes are the names
below and the dtype of the fixed init vectors (bf16 in the reference; trm stores them in the compute dtype).

What carries over: every weight, the puzzle-embedding table, H_init/L_init. What does not: the optimizer state and
step count (the reference does not save them), the EMA shadow as a separate copy (the reference's checkpoints
written at evaluation already *are* the EMA weights, so they become trm's live weights), and the data-loader
position. ``docs/convert.md`` says the same for users.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import attrs
import torch

from trm.build import build_model, open_recipe_store, task_dims
from trm.checkpoint import write_checkpoint
from trm.config import dump_recipe, load_recipe
from trm.errors import UserError
from trm.hub_checkpoints import (check_size, default_recipe, download, expected_bytes, hub_metadata, is_hub_ref,
                                 parse_hub_ref)
from trm.recipe import Recipe
from trm.recipe_catalog import find_recipe, resolve_recipe
from trm.textfiles import read_utf8
from trm.types import TaskDims

# reference name (after the prefixes) -> trm name; "{i}" is a layer index.
_RENAMES = [
    (r"H_init", "y_init"),
    (r"L_init", "z_init"),
    (r"embed_tokens\.embedding_weight", "embed_tokens.weight"),
    (r"embed_pos\.embedding_weight", "backbone.embed_pos"),
    (r"lm_head\.weight", "lm_head.weight"),
    (r"q_head\.(weight|bias)", r"q_head.\1"),
    (r"puzzle_emb\.weights", "puzzle_emb.weights"),
    (r"L_level\.layers\.(\d+)\.(self_attn\.qkv_proj|self_attn\.o_proj|mlp\.gate_up_proj|mlp\.down_proj"
     r"|mlp_t\.gate_up_proj|mlp_t\.down_proj)\.weight", r"backbone.layers.\1.\2.weight"),
]
_PREFIXES = ("_orig_mod.", "model.", "inner.")


def reference_key_to_trm(key: str) -> str | None:
    """The trm state-dict key of a reference key, or None when the key has no counterpart in trm."""
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix):]
    for pattern, replacement in _RENAMES:
        if re.fullmatch(pattern, key):
            return re.sub(pattern, replacement, key)
    return None


def convert_state_dict(reference: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A state dict for ``model`` holding the reference's tensors; raises UserError on any unmatched key or shape."""
    target = model.state_dict()
    converted: dict[str, torch.Tensor] = {}
    unknown = []
    for key, tensor in reference.items():
        name = reference_key_to_trm(key)
        if name is None or name not in target:
            unknown.append(key)
            continue
        want = target[name]
        if tuple(tensor.shape) != tuple(want.shape):
            raise UserError(f"reference tensor {key} has shape {tuple(tensor.shape)}, but the recipe's model expects "
                            f"{tuple(want.shape)} for {name}; check the recipe's sizes (hidden_size, layers, "
                            f"expansion, puzzle_emb_len, vocabulary, grid length)")
        converted[name] = tensor.detach().to(want.dtype)
    if unknown:
        raise UserError(f"reference checkpoint has {len(unknown)} key(s) the recipe's model does not: "
                        f"{', '.join(unknown[:4])}{' ...' if len(unknown) > 4 else ''} (an HRM or baseline "
                        "checkpoint, or a recipe naming another backbone?)")
    missing = sorted(set(target) - set(converted))
    if missing:
        raise UserError(f"reference checkpoint lacks {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''} "
                        "that the recipe's model needs")
    return converted


def load_reference(path: Path) -> dict[str, torch.Tensor]:
    """A reference checkpoint file (a torch.save'd state dict) read without executing pickled code."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad input file
        raise UserError(f"{path}: not a PyTorch checkpoint (torch.load failed: {_load_failure(exc)})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path}: expected a state dict of tensors (the reference saves model.state_dict())")
    return state


def _load_failure(exc: Exception) -> str:
    """One line saying why ``torch.load`` failed. Its weights-only errors are paragraphs of advice (load with
    weights_only=False, file an issue) around the actual reason after 'WeightsUnpickler error:', and others add
    sentences of advice after the reason; keep the reason."""
    text = str(exc)
    reason = text.partition("WeightsUnpickler error:")[2] or text
    lines = [line.strip() for line in reason.splitlines() if line.strip()]
    return lines[0].split(". ")[0].rstrip(".") if lines else type(exc).__name__  # the first sentence


def _table_rows(reference: dict[str, torch.Tensor]) -> int | None:
    for key, tensor in reference.items():
        if reference_key_to_trm(key) == "puzzle_emb.weights":
            return int(tensor.shape[0])
    return None


def convert_reference(checkpoint: Path | str, recipe_path: Path | None, out: Path, *,
                      identifiers: Path | None = None, overrides: tuple[str, ...] = ()) -> Path:
    """Write a trm run directory at ``out`` (recipe.yaml + checkpoints/step_0) from a reference checkpoint: a file,
    or a Hub reference ``hf:OWNER/REPO[/PATH][@REVISION]`` (size checked against the recipe, then downloaded)."""
    out = Path(out)
    if (out / "checkpoints").exists():
        raise UserError(f"{out}: already holds checkpoints; choose a new --out directory")
    # `--out .` or any folder with files in it would get a recipe.yaml written over whatever is there
    if out.is_dir() and any(out.iterdir()):
        raise UserError(f"{out}: is a directory that is not empty; --out names a new run directory to create")
    ref = parse_hub_ref(str(checkpoint)) if is_hub_ref(str(checkpoint)) else None
    if recipe_path is None:
        if ref is None:
            raise UserError("--recipe is required for a checkpoint file (it is optional only for the known Hub "
                            "checkpoints of docs/convert.md)")
        recipe_path = find_recipe(default_recipe(ref)).path
    recipe_path = resolve_recipe(recipe_path)  # a file, or a shipped recipe's name (`trm recipes`)
    recipe = load_recipe(recipe_path, overrides)
    if "model.path=" not in " ".join(overrides):  # "identical to the paper's code" holds on the faithful path
        recipe = attrs.evolve(recipe, model=attrs.evolve(recipe.model, path="faithful"))
    try:
        dims, source = task_dims(recipe)
    except UserError:
        dims, source = None, None
    if dims is None:
        raise UserError(f"{recipe_path}: cannot tell the grid length without the task's store or options")
    origin = str(checkpoint)
    if ref is not None:
        checkpoint, origin = _from_hub(ref, recipe, dims)
    reference = load_reference(Path(checkpoint))
    rows = _table_rows(reference)
    vocab = next((t.shape[0] for k, t in reference.items() if reference_key_to_trm(k) == "embed_tokens.weight"), None)
    if vocab is not None and vocab != dims.vocab_size:
        raise UserError(f"reference vocabulary is {vocab} but {source} says {dims.vocab_size}")
    if rows is not None and dims.num_puzzle_identifiers not in (None, rows):
        raise UserError(f"reference puzzle-embedding table has {rows} rows but {source} has "
                        f"{dims.num_puzzle_identifiers} identifiers: was it trained on another build of the data?")
    dims = TaskDims(dims.vocab_size, dims.seq_len, rows or dims.num_puzzle_identifiers or 1)
    model = build_model(recipe, dims, dtype=torch.float32)  # stored in fp32; loading casts to the compute dtype
    model.load_state_dict(convert_state_dict(reference, model), strict=True)

    names = _identifier_names(identifiers, rows) if identifiers is not None else _store_names(recipe)
    fingerprint = _store_fingerprint(recipe)
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipe.yaml").write_text(dump_recipe(recipe))
    state = {"step": 0, "fingerprint": fingerprint, "converted_from": origin, "source": "reference",
             "dims": {"vocab_size": dims.vocab_size, "seq_len": dims.seq_len,
                      "num_puzzle_identifiers": dims.num_puzzle_identifiers}}
    return write_checkpoint(out, 0, model_state=model.state_dict(), ema_state=None, optim_state=None, state=state,
                            identifiers=names)


def _from_hub(ref: Any, recipe: Recipe, dims: TaskDims) -> tuple[Path, str]:
    """Check the Hub file's announced size against the recipe's model, then download it; (path, origin)."""
    meta = hub_metadata(ref)
    with torch.device("meta"):
        model = build_model(recipe, TaskDims(dims.vocab_size, dims.seq_len, 1), dtype=torch.float32)
    fixed, per_row = expected_bytes(model, dims.num_puzzle_identifiers)
    print(check_size(ref, meta.size, fixed, per_row, dims.num_puzzle_identifiers), flush=True)
    path = download(ref, meta.size, meta.etag)
    commit = f" (commit {meta.commit_hash})" if meta.commit_hash else ""
    return path, f"{ref}{commit}"


def _identifier_names(path: Path, rows: int | None) -> list[str]:
    try:
        names = json.loads(read_utf8(path, "identifiers file"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: unreadable identifiers file ({exc})") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise UserError(f"{path}: expected a JSON list of names (identifier id -> augmented puzzle name)")
    if rows is not None and len(names) != rows:
        raise UserError(f"{path}: lists {len(names)} identifiers but the puzzle-embedding table has {rows} rows")
    return names


def _store_names(recipe: Recipe) -> list[str] | None:
    if not Path(recipe.data.store).exists():
        return None
    names = getattr(open_recipe_store(recipe, build=False).info, "identifier_names", None)
    return list(names) if names is not None else None


def _store_fingerprint(recipe: Recipe) -> str | None:
    if not Path(recipe.data.store).exists():
        return None
    return open_recipe_store(recipe, build=False).info.fingerprint

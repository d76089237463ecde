"""Checkpoints: atomic directories of safetensors and JSON, loadable without executing pickled code.

A checkpoint ``RUN_DIR/checkpoints/step_<N>/`` holds

* ``model.safetensors``   every parameter and buffer (puzzle-embedding table, fixed init vectors) of the live model;
* ``ema.safetensors``     the EMA shadow of the dense parameters (what evaluation uses), when EMA is on;
* ``optim.safetensors`` + ``optim.json``   both optimizers' states, tensors and structure kept apart;
* ``state.safetensors`` + ``state.json``   step, data-loader position, RNG states, the ACT carry, the dataset
  fingerprint and trm's version;
* ``identifiers.json.gz`` the store's puzzle-identifier -> name map, so the embedding rows keep their names.

It is written under a temporary name and renamed into place, then ``checkpoints/latest`` is replaced atomically: a
crash at any moment leaves either the previous checkpoint or the new one, never half of one. Accelerate's
``save_state`` is not used because its RNG and optimizer files are pickles (see docs/training.md).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from trm.errors import UserError

TENSOR_MARK = "__tensor__"


def flatten(value: Any, tensors: dict[str, torch.Tensor], prefix: str = "") -> Any:
    """JSON-able structure of ``value`` with every tensor moved into ``tensors`` under a path key."""
    if isinstance(value, torch.Tensor):
        key = prefix or "value"
        tensors[key] = value.detach().to("cpu").contiguous()
        return {TENSOR_MARK: key}
    if isinstance(value, dict):
        return {"__dict__": [[flatten(k, tensors, f"{prefix}.k{i}"), flatten(v, tensors, f"{prefix}.{i}")]
                             for i, (k, v) in enumerate(value.items())]}
    if isinstance(value, (list, tuple)):
        items = [flatten(v, tensors, f"{prefix}.{i}") for i, v in enumerate(value)]
        return {"__tuple__": items} if isinstance(value, tuple) else items
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot checkpoint a value of type {type(value).__name__}")


def unflatten(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten`."""
    if isinstance(value, dict):
        if TENSOR_MARK in value:
            return tensors[value[TENSOR_MARK]]
        if "__tuple__" in value:
            return tuple(unflatten(v, tensors) for v in value["__tuple__"])
        return {unflatten(k, tensors): unflatten(v, tensors) for k, v in value["__dict__"]}
    if isinstance(value, list):
        return [unflatten(v, tensors) for v in value]
    return value


def save_tree(directory: Path, stem: str, value: Any) -> None:
    """``value`` (nested dicts/lists of tensors and scalars) as ``stem.safetensors`` + ``stem.json``."""
    tensors: dict[str, torch.Tensor] = {}
    structure = flatten(value, tensors)
    save_file(tensors, str(directory / f"{stem}.safetensors"))
    (directory / f"{stem}.json").write_text(json.dumps(structure))


def load_tree(directory: Path, stem: str) -> Any:
    tensors = load_file(str(directory / f"{stem}.safetensors"))
    return unflatten(json.loads((directory / f"{stem}.json").read_text()), tensors)


def _state_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses shared storage; clone so tied or viewed tensors save independently.
    return {key: value.detach().to("cpu").clone().contiguous() for key, value in state.items()}


def write_checkpoint(
    run_dir: Path,
    step: int,
    *,
    model_state: dict[str, torch.Tensor],
    ema_state: dict[str, torch.Tensor] | None,
    optim_state: Any,
    state: Any,
    identifiers: list[str] | None,
    keep: int | None = None,
) -> Path:
    """Write ``RUN_DIR/checkpoints/step_<step>`` atomically and point ``latest`` at it; returns its path."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step}"
    for leftover in root.glob(".*.partial-*"):  # a writer killed mid-checkpoint (one writer per run directory)
        shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)
    staging = root / f".step_{step}.partial-{os.getpid()}"
    staging.mkdir()
    save_file(_state_tensors(model_state), str(staging / "model.safetensors"))
    if ema_state is not None:
        save_file(_state_tensors(ema_state), str(staging / "ema.safetensors"))
    save_tree(staging, "optim", optim_state)
    save_tree(staging, "state", state)
    if identifiers is not None:
        with gzip.open(staging / "identifiers.json.gz", "wt") as handle:
            json.dump(identifiers, handle)
    (staging / "COMPLETE").write_text(str(step))
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    pointer = root / f".latest.partial-{os.getpid()}"
    pointer.write_text(final.name)
    os.replace(pointer, root / "latest")
    if keep:
        _prune(root, keep)
    return final


def _prune(root: Path, keep: int) -> None:
    steps = sorted((int(p.name.split("_")[1]), p) for p in root.glob("step_*") if p.name.split("_")[1].isdigit())
    for _, path in steps[:-keep]:
        shutil.rmtree(path, ignore_errors=True)


def find_checkpoint(path: Path) -> Path:
    """The checkpoint directory meant by ``path``: a run directory (its latest) or a checkpoint directory."""
    path = Path(path)
    if (path / "COMPLETE").exists():
        return path
    root = path / "checkpoints"
    if (root / "latest").exists():
        candidate = root / (root / "latest").read_text().strip()
        if (candidate / "COMPLETE").exists():
            return candidate
    steps = sorted(
        (int(p.name.split("_")[1]), p) for p in root.glob("step_*")
        if p.name.split("_")[1].isdigit() and (p / "COMPLETE").exists()
    ) if root.is_dir() else []
    if steps:
        return steps[-1][1]
    if not path.exists():
        raise UserError(f"{path}: no such run directory or checkpoint")
    raise UserError(f"{path}: holds no complete checkpoint (expected a run directory or a checkpoints/step_N folder)")


def read_checkpoint(directory: Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Every part of a checkpoint, as written by :func:`write_checkpoint` (tensors on ``map_location``)."""
    directory = Path(directory)
    target = torch.device(map_location)
    device = "cpu" if target.type == "cpu" else str(target)  # safetensors rejects "cpu:0" (multi-process CPU runs)
    try:
        parts: dict[str, Any] = {"path": directory, "model": load_file(str(directory / "model.safetensors"), device=device)}
        ema = directory / "ema.safetensors"
        parts["ema"] = load_file(str(ema), device=device) if ema.exists() else None
        parts["optim"] = load_tree(directory, "optim")
        parts["state"] = load_tree(directory, "state")
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise UserError(f"{directory}: unreadable checkpoint ({type(exc).__name__}: {exc})") from None
    names = directory / "identifiers.json.gz"
    if names.exists():
        with gzip.open(names, "rt") as handle:
            parts["identifiers"] = json.load(handle)
    else:
        parts["identifiers"] = None
    return parts

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

Per-process state (the end of this module) is what a checkpoint keeps of each process for an exact resume
(docs/training.md, "Checkpoints"): the persistent ACT carries of its micro-batches (docs/reference-code.md 4) and its
random-number generators, which drive the exploration draws and differ per process (seeded with seed + rank,
as the reference does). The main process writes the checkpoint, so every process's state is first gathered to it
(``trm.distributed.gather_to_main``: CPU copies, in memory only; the files themselves never hold a pickle).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path
from typing import Any

import attrs
import torch
from safetensors import SafetensorError
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
    return _read_tree(Path(directory), stem)


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
    pointer = root / f".latest.partial-{os.getpid()}"
    try:
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
        pointer.write_text(final.name)
        os.replace(pointer, root / "latest")
    except (OSError, RuntimeError, SafetensorError) as exc:  # disk full, quota, permissions
        shutil.rmtree(staging, ignore_errors=True)
        pointer.unlink(missing_ok=True)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
        try:
            kept = f"the last complete checkpoint, {find_checkpoint(run_dir).name}, is kept"
        except UserError:
            kept = "no earlier checkpoint exists"
        raise UserError(f"{final}: cannot write the checkpoint ({reason}); the partial files are removed and "
                        f"{kept}") from None
    if keep:
        prune_checkpoints(root, keep)
    return final


def checkpoint_steps(root: Path) -> list[tuple[int, Path]]:
    """(step, directory) of the complete checkpoints under ``RUN/checkpoints``, oldest first."""
    if not Path(root).is_dir():
        return []
    return sorted((int(p.name.split("_")[1]), p) for p in Path(root).glob("step_*")
                  if p.name.split("_")[1].isdigit() and (p / "COMPLETE").exists())


def prune_checkpoints(root: Path, keep: int, protect: frozenset[int] | set[int] = frozenset()) -> list[Path]:
    """Remove complete checkpoints but the latest ``keep`` and those of the ``protect`` steps; returns the removed."""
    steps = checkpoint_steps(root)
    removed = []
    for step, path in steps[:-keep]:
        if step in protect:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def find_checkpoint(path: Path) -> Path:
    """The checkpoint directory meant by ``path``: a run directory (its latest) or a checkpoint directory."""
    path = Path(path)
    if (path / "COMPLETE").exists():
        return path
    root = path / "checkpoints"
    if (root / "latest").exists():
        try:
            name = (root / "latest").read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            name = ""  # a damaged pointer: the newest complete checkpoint is the same thing
        candidate = root / name
        if name and name.startswith("step_") and (candidate / "COMPLETE").exists():
            return candidate
    steps = checkpoint_steps(root)
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
    parts: dict[str, Any] = {"path": directory}
    parts["model"] = _read_part(directory / "model.safetensors", lambda p: load_file(str(p), device=device))
    ema = directory / "ema.safetensors"
    parts["ema"] = _read_part(ema, lambda p: load_file(str(p), device=device)) if ema.exists() else None
    parts["optim"] = _read_tree(directory, "optim")
    parts["state"] = _read_tree(directory, "state")
    names = directory / "identifiers.json.gz"
    parts["identifiers"] = _read_part(names, _read_gzip_json) if names.exists() else None
    return parts


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], source: Path, hint: str) -> None:
    """``model.load_state_dict(state)``; weights that do not fit (a changed ``model.*`` or ``backbone.*`` setting)
    are one :class:`UserError` line naming ``source``, torch's first mismatch and ``hint``."""
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        detail = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line or "key" in line),
                      str(exc).splitlines()[0])
        raise UserError(f"{source}: the checkpoint's model does not fit the recipe ({detail.rstrip('.')}); "
                        f"{hint}") from None


def _read_gzip_json(path: Path) -> Any:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return json.load(handle)


def _read_tree(directory: Path, stem: str) -> Any:
    tensors = _read_part(directory / f"{stem}.safetensors", lambda p: load_file(str(p)))
    structure = _read_part(directory / f"{stem}.json", lambda p: json.loads(p.read_text(encoding="utf-8")))
    try:
        return unflatten(structure, tensors)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UserError(f"{directory / (stem + '.json')}: damaged checkpoint file (does not match "
                        f"{stem}.safetensors: {type(exc).__name__} {exc})") from None


def _read_part(path: Path, read: Any) -> Any:
    """``read(path)``, with any failure turned into one line naming the file and what is wrong with it."""
    if not path.exists():
        raise UserError(f"{path}: checkpoint file missing (the checkpoint is damaged; resume or evaluate "
                        "another one under checkpoints/)")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: damaged checkpoint file (empty)")
    try:
        return read(path)
    except Exception as exc:  # noqa: BLE001 - SafetensorError, BadGzipFile, EOFError, UnicodeDecodeError, JSON, ...
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        kind = "truncated" if isinstance(exc, EOFError) else type(exc).__name__
        raise UserError(f"{path}: damaged checkpoint file ({kind}{': ' + detail if detail else ''})") from None


# --------------------------------------------------------------------------------------------------------------
# per-process state: ACT carries and RNG streams
# --------------------------------------------------------------------------------------------------------------


def carry_state(carry: Any) -> Any:
    """A carry as a plain dict of its fields (``None`` stays ``None``)."""
    if carry is None:
        return None
    if attrs.has(type(carry)):
        return {f.name: getattr(carry, f.name) for f in attrs.fields(type(carry))}
    if hasattr(carry, "_asdict"):
        return dict(carry._asdict())
    if hasattr(carry, "__dataclass_fields__"):
        return {name: getattr(carry, name) for name in carry.__dataclass_fields__}
    return carry


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: _to_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_cpu(item) for item in value]
    return value


def capture_process_state(carries: list[Any]) -> dict[str, Any]:
    """This process's carries and RNG states, copied to the host."""
    return {
        "carries": [_to_cpu(carry_state(carry)) for carry in carries],
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
    }


def restore_process_state(state: dict[str, Any], device: torch.device) -> list[Any]:
    """Set this process's RNG states from ``state``; returns its carries on ``device``."""
    from trm.engine import Carry

    torch.set_rng_state(state["torch_rng"].cpu())
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda_rng"].cpu())
    carries = []
    for carry in state.get("carries") or []:
        carries.append(None if carry is None else Carry(**{
            key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in carry.items()
        }))
    return carries


def reseed_process(seed: int, rank: int, step: int) -> None:
    """RNG streams for a resume on another process count: distinct per process and per resume point."""
    torch.manual_seed(hash((seed, rank, step)) & 0x7FFF_FFFF)

"""Writing dataset stores (format: trm/store.py): the writer task plugins fill, and the atomic build around it.

Task plugins never touch zarr: ``TaskSpec.build(options, writer)`` receives a :class:`DatasetWriter`, which validates
every group it is given and streams rows to disk in whole shards, every chunk with a CRC32C checksum.
:func:`build_store` writes into ``<out>.partial-<pid>``, sets the completion marker last and renames, so an
interrupted build leaves nothing that :func:`trm.store.open_store` accepts; the next build removes such leftovers.
It replaces an existing path only when that path is a trm store (:func:`check_target`), and a full disk ends the
build with one line and no partial files.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import attrs
import numpy as np

from trm.errors import UserError
from trm import store as _layout  # CHUNK_ROWS, SHARD_ROWS, ZSTD_LEVEL read at build time (tests shrink them)
from trm.store import (FORMAT, FORMAT_VERSION, META_KEY, SPLIT_NAMES, StoreInfo, _pack_json, _token_dtype, _zarr,
                       leftovers, open_store, publish_directory)

# --------------------------------------------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------------------------------------------


def _checked() -> dict[str, Any]:
    """``create_array`` settings of every array: zstd, then a CRC32C of the compressed chunk (verified on every
    read), and every chunk written even when it holds only the fill value (maze identifiers are all 0), so that a
    missing chunk file always means damage."""
    from zarr.codecs import Crc32cCodec, ZstdCodec

    return {"compressors": (ZstdCodec(level=_layout.ZSTD_LEVEL), Crc32cCodec()), "fill_value": 0,
            "config": {"write_empty_chunks": True}}


class SplitWriter:
    """Writes one split: groups of puzzles of examples, validated and streamed to disk a shard at a time."""

    def __init__(self, parent: "DatasetWriter", name: str):
        self.name, self._parent = name, parent
        self._group = parent._root.create_group(name)
        seq_len, dtype = parent.seq_len, _token_dtype(parent.vocab_size)
        self._shard_rows = _layout.SHARD_ROWS
        self._arrays = {
            key: self._group.create_array(key, shape=(0, seq_len), dtype=dtype, chunks=(_layout.CHUNK_ROWS, seq_len),
                                          shards=(self._shard_rows, seq_len), **_checked())
            for key in ("inputs", "labels")
        }
        self._buffers: dict[str, list[np.ndarray]] = {"inputs": [], "labels": []}
        self._buffered = 0
        self._written = 0
        self._hash = hashlib.sha256()
        self._identifiers: list[int] = []
        self._puzzle_sizes: list[int] = []
        self._group_sizes: list[int] = []
        self._token_min, self._token_max = None, None
        self.closed = False

    def add_group(self, puzzles: list[tuple[int, np.ndarray, np.ndarray]]) -> None:
        """One group (an original puzzle) = its versions ``(identifier, inputs [E, L], labels [E, L])``."""
        if self.closed:
            raise ValueError(f"split '{self.name}' is already closed")
        if not puzzles:
            raise ValueError(f"split '{self.name}': a group needs at least one puzzle")
        parent = self._parent
        checked = []
        for number, item in enumerate(puzzles):
            where = f"split '{self.name}', group {len(self._group_sizes)}, puzzle {number}"
            if not (isinstance(item, tuple) and len(item) == 3):
                raise ValueError(f"{where}: expected (identifier, inputs, labels), got {type(item).__name__}")
            identifier, inputs, labels = item
            identifier = int(identifier)
            if not 0 <= identifier < len(parent._identifier_names):
                raise ValueError(f"{where}: identifier {identifier} was not assigned by writer.identifier()")
            inputs, labels = np.asarray(inputs), np.asarray(labels)
            for label, array in (("inputs", inputs), ("labels", labels)):
                if array.ndim != 2 or array.shape[1] != parent.seq_len or array.shape[0] < 1:
                    raise ValueError(f"{where}: {label} must have shape [E >= 1, {parent.seq_len}], got {array.shape}")
                if not np.issubdtype(array.dtype, np.integer):
                    raise ValueError(f"{where}: {label} must hold integers, got {array.dtype}")
            if inputs.shape != labels.shape:
                raise ValueError(f"{where}: inputs {inputs.shape} and labels {labels.shape} differ in shape")
            checked.append((identifier, inputs, labels))
        # One range check over the whole group: cheap even for Sudoku's 1,001 one-row versions per group.
        for label, position in (("inputs", 1), ("labels", 2)):
            stacked = np.concatenate([item[position] for item in checked])
            low, high = int(stacked.min()), int(stacked.max())
            if low < 0 or high >= parent.vocab_size:
                raise ValueError(f"split '{self.name}', group {len(self._group_sizes)}: {label} tokens span "
                                 f"[{low}, {high}], outside [0, {parent.vocab_size})")
            self._token_min = low if self._token_min is None else min(self._token_min, low)
            self._token_max = high if self._token_max is None else max(self._token_max, high)
        dtype = _token_dtype(parent.vocab_size)
        for identifier, inputs, labels in checked:
            self._identifiers.append(identifier)
            self._puzzle_sizes.append(inputs.shape[0])
            for key, array in (("inputs", inputs), ("labels", labels)):
                self._buffers[key].append(np.ascontiguousarray(array, dtype=dtype))
            self._buffered += inputs.shape[0]
        self._group_sizes.append(len(checked))
        if self._buffered >= self._shard_rows:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        """Write whole shards (all buffered rows when ``final``); keep the remainder buffered."""
        if not self._buffered:
            return
        blocks = {key: np.concatenate(parts) for key, parts in self._buffers.items()}
        take = self._buffered if final else (self._buffered // self._shard_rows) * self._shard_rows
        start, stop = self._written, self._written + take
        for key, block in blocks.items():
            array = self._arrays[key]
            array.resize((stop, self._parent.seq_len))
            array[start:stop] = block[:take]
            self._hash.update(key.encode())
            self._hash.update(block[:take].tobytes())
            self._buffers[key] = [block[take:]] if take < len(block) else []
        self._written, self._buffered = stop, self._buffered - take

    def close(self) -> dict[str, Any]:
        """Flush the rest, write the index arrays, return the split's summary (also stored as attrs)."""
        if self.closed:
            return dict(self._group.attrs)
        self._flush(final=True)
        if not self._group_sizes:
            raise ValueError(f"split '{self.name}' was opened but no group was added")
        identifiers = np.asarray(self._identifiers, dtype=np.int32)
        puzzle_indices = np.concatenate([[0], np.cumsum(self._puzzle_sizes)]).astype(np.int64)
        group_indices = np.concatenate([[0], np.cumsum(self._group_sizes)]).astype(np.int64)
        for key, array in (("puzzle_identifiers", identifiers), ("puzzle_indices", puzzle_indices),
                           ("group_indices", group_indices)):
            self._group.create_array(key, data=array, chunks=(max(1, min(len(array), 2**20)),), **_checked())
            self._hash.update(key.encode())
            self._hash.update(array.tobytes())
        summary = {
            "num_examples": int(self._written), "num_puzzles": len(identifiers), "num_groups": len(self._group_sizes),
            "token_min": int(self._token_min), "token_max": int(self._token_max),
            "content_sha256": self._hash.hexdigest(),
        }
        self._group.attrs.update(summary)
        self.closed = True
        return summary


class DatasetWriter:
    """What a task's ``build(options, writer)`` writes through. Created by :func:`build_store`."""

    def __init__(self, root: Any, *, seed: int, show_progress: bool = True):
        self._root = root
        self.seed = int(seed)
        self.show_progress = show_progress
        self.vocab_size: int | None = None
        self.seq_len: int | None = None
        self._vocabulary: dict[str, Any] | None = None
        self._identifier_names: list[str] = ["<blank>"]
        self._identifier_ids: dict[str, int] = {"<blank>": 0}
        self._splits: dict[str, SplitWriter] = {}
        self._extras: dict[str, Any] = {}

    def set_vocabulary(self, *, vocab_size: int, seq_len: int, pad_id: int = 0, ignore_label_id: int | None = 0,
                       blank_token_id: int | None = None, token_names: list[str] | None = None) -> None:
        """Tokens are ``0 .. vocab_size-1``; every example has ``seq_len`` of them. Call once, before any split."""
        if self._vocabulary is not None:
            raise ValueError("set_vocabulary() was already called")
        if not (1 <= vocab_size <= 65536) or seq_len < 1:
            raise ValueError(f"vocab_size must be in [1, 65536] and seq_len >= 1, got {vocab_size}, {seq_len}")
        for label, value in (("pad_id", pad_id), ("ignore_label_id", ignore_label_id),
                             ("blank_token_id", blank_token_id)):
            if value is not None and not 0 <= value < vocab_size:
                raise ValueError(f"{label} {value} is outside [0, {vocab_size})")
        if token_names is not None and len(token_names) != vocab_size:
            raise ValueError(f"token_names has {len(token_names)} entries, vocab_size is {vocab_size}")
        self.vocab_size, self.seq_len = int(vocab_size), int(seq_len)
        self._vocabulary = {
            "vocab_size": int(vocab_size), "seq_len": int(seq_len), "pad_id": int(pad_id),
            "ignore_label_id": None if ignore_label_id is None else int(ignore_label_id),
            "blank_token_id": None if blank_token_id is None else int(blank_token_id),
            "token_names": None if token_names is None else [str(name) for name in token_names],
        }

    def identifier(self, name: str) -> int:
        """The puzzle identifier of ``name``, assigning the next free id on first use (0 is ``"<blank>"``)."""
        name = str(name)
        found = self._identifier_ids.get(name)
        if found is None:
            found = self._identifier_ids[name] = len(self._identifier_names)
            self._identifier_names.append(name)
        return found

    def split(self, name: str) -> SplitWriter:
        """The writer of split ``name`` (``train`` or ``test``); each split is written once."""
        if self._vocabulary is None:
            raise ValueError("call writer.set_vocabulary(...) before writer.split(...)")
        if name not in SPLIT_NAMES:
            raise ValueError(f"unknown split '{name}'; expected one of {', '.join(SPLIT_NAMES)}")
        if name in self._splits:
            raise ValueError(f"split '{name}' was already opened; get its writer once and add every group to it")
        self._splits[name] = SplitWriter(self, name)
        return self._splits[name]

    def set_extra(self, key: str, value: Any) -> None:
        """A JSON-serialisable task extra kept in the store (e.g. ARC's raw test puzzles)."""
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"extra '{key}' is not JSON-serialisable: {exc}") from None
        self._extras[str(key)] = value

    def progress(self, iterable: Iterable | None = None, *, total: int | None = None, desc: str = "") -> Any:
        """A progress bar (trm.progress: plain lines when stderr is not a terminal; silent when the build was asked
        not to show progress)."""
        from trm.progress import progress_bar

        # "build train", not "train": the training run's own bar comes next and is called "train"
        shown = f"build {desc}" if desc else "build"
        return progress_bar(iterable, total=total, desc=shown, disable=not self.show_progress, leave=False)

    def finish(self, metadata: dict[str, Any]) -> dict[str, Any]:
        """Close every split, write names and extras, and set the metadata with the completion marker last."""
        if self._vocabulary is None or not self._splits:
            raise ValueError("the task wrote no data: call set_vocabulary() and add groups to at least one split")
        splits = {name: writer.close() for name, writer in self._splits.items()}
        names = _pack_json(self._identifier_names)
        extras = _pack_json(self._extras)
        self._root.create_array("identifier_names", data=names, chunks=(max(1, len(names)),), **_checked())
        self._root.create_array("extras", data=extras, chunks=(max(1, len(extras)),), **_checked())
        digest = hashlib.sha256()
        digest.update(json.dumps(self._vocabulary, sort_keys=True).encode())
        digest.update(hashlib.sha256(names.tobytes()).digest() + hashlib.sha256(extras.tobytes()).digest())
        for name in sorted(splits):
            digest.update(name.encode() + splits[name]["content_sha256"].encode())
        meta = {
            "format": FORMAT, "format_version": FORMAT_VERSION, **metadata, **self._vocabulary,
            "num_puzzle_identifiers": len(self._identifier_names), "seed": self.seed,
            "splits": {name: {k: v for k, v in s.items() if k != "content_sha256"} for name, s in splits.items()},
            "fingerprint": digest.hexdigest()[:16],
            "complete": True,
        }
        self._root.attrs[META_KEY] = meta
        return meta


STORE_ENTRIES = frozenset({"zarr.json", "identifier_names", "extras", *SPLIT_NAMES})


def is_trm_store(path: Path) -> bool:
    """Whether ``path`` is a store trm wrote: its ``zarr.json`` names the trm format and it holds nothing else.

    Complete or not, old format or new: what matters for replacing it is that nothing but trm's own files is lost.
    """
    try:
        meta = json.loads((Path(path) / "zarr.json").read_text()).get("attributes", {}).get(META_KEY)
        entries = {entry.name for entry in Path(path).iterdir()}
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(meta, dict) and meta.get("format") == FORMAT and entries <= STORE_ENTRIES


def check_target(out: Path, *, overwrite: bool) -> None:
    """Refuse an ``--out`` whose replacement could lose data: only an existing trm store may be replaced (with
    ``overwrite``); an empty directory is used as is; any other existing path is refused without offering
    ``--overwrite``."""
    out = Path(out)
    if out.name in ("", ".", ".."):
        raise UserError(f"{out}: name a new directory for the store, e.g. data/sudoku.zarr (not the current or "
                        "parent directory)")
    if not out.exists() and not out.is_symlink():
        return
    if out.is_dir() and not out.is_symlink():
        try:
            entries = sorted(entry.name for entry in out.iterdir())
        except OSError as error:
            raise UserError(f"{out}: cannot read it ({error.strerror or error})") from None
        if not entries:
            return
        if is_trm_store(out):
            if not overwrite:
                raise UserError(f"{out}: already exists; pass --overwrite to replace it")
            return
        shown = ", ".join(entries[:4]) + (f" and {len(entries) - 4} more" if len(entries) > 4 else "")
        raise UserError(f"{out}: exists and is not a trm dataset store (it holds {shown}); trm replaces only its "
                        "own stores: choose a new path for the store")
    kind = "a symbolic link" if out.is_symlink() else "a file"
    raise UserError(f"{out}: exists and is {kind}, not a trm dataset store; choose a new path for the store")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_leftovers(out: Path, *, show: bool = True) -> None:
    """Remove what interrupted builds of ``out`` left (``.partial-<pid>``, ``.old-<pid>``) when that process is
    gone; refuse while another live process is building ``out``."""
    for left in leftovers(out):
        pid = int(left.name.rpartition("-")[2])
        if pid != os.getpid() and _pid_alive(pid):
            raise UserError(f"{out}: another build of this store is running (process {pid}, writing {left.name}); "
                            "wait for it to finish or stop it")
        shutil.rmtree(left, ignore_errors=True)
        if show:
            print(f"note: removed {left.name}, left by an interrupted build of {out.name}", file=sys.stderr,
                  flush=True)


_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def build_store(task_spec: Any, options: Any, out: Path, *, overwrite: bool = False,
                show_progress: bool = True) -> "StoreInfo":
    """Build ``out`` with ``task_spec.build(options, writer)``; atomic: the store appears complete or not at all."""
    out = Path(out)
    check_target(out, overwrite=overwrite)
    remove_leftovers(out)
    partial = out.with_name(f"{out.name}.partial-{os.getpid()}")
    try:  # before any data is built, so that an unwritable --out fails at once
        out.parent.mkdir(parents=True, exist_ok=True)
        partial.mkdir()
    except OSError as error:
        raise UserError(f"{out}: cannot create the store there ({error.strerror or error}); "
                        f"expected a writable directory for it") from None
    from trm.structuring import recipe_to_dict

    plain_options = recipe_to_dict(options) if attrs.has(type(options)) else dict(options or {})
    started = time.time()
    try:
        root = _zarr().open_group(str(partial), mode="w")
        # Marked as trm's own from the start, so that a build killed outright is recognised as an interrupted build.
        root.attrs[META_KEY] = {"format": FORMAT, "format_version": FORMAT_VERSION, "task": task_spec.name,
                                "complete": False}
        writer = DatasetWriter(root, seed=int(plain_options.get("seed", 0) or 0), show_progress=show_progress)
        task_spec.build(options, writer)
        writer.finish({
            "task": task_spec.name, "task_options": plain_options, "builder_version": str(task_spec.version),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "build_seconds": round(time.time() - started, 2),
        })
        publish_directory(partial, out)
    except OSError as error:
        _remove_partial(partial)
        if error.errno in _DISK_FULL:
            kept = "; the existing store is unchanged" if out.exists() else ""
            raise UserError(f"{out}: disk full while writing the store ({error.strerror or 'no space left'}); "
                            f"the partial build was removed{kept}; free some space and build again") from None
        raise
    except BaseException:
        _remove_partial(partial)
        raise
    return open_store(out).info


def _remove_partial(partial: Path, patience_s: float = 2.0) -> None:
    """Remove a failed build's folder, waiting out writes still in flight.

    zarr writes chunks concurrently from its own event-loop thread; when one write fails, others may still land
    after a first ``rmtree`` and recreate part of the folder (seen about once in six disk-full builds).
    """
    deadline = time.monotonic() + patience_s
    while True:
        shutil.rmtree(partial, ignore_errors=True)
        time.sleep(0.1)  # gone, and still gone a moment later: no write was left in flight
        if not partial.exists() or time.monotonic() > deadline:
            return



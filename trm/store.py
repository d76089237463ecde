"""The dataset store: a zarr v3 directory holding every split of a built task; its format and reader.

Layout (docs/datasets.md has the full table and the measurements behind the chunking choice)::

    STORE.zarr/                       zarr group; attrs["trm_dataset"] = metadata (format, vocabulary, task, ...)
      identifier_names                uint8 [bytes]: gzip(JSON list id -> name); entry 0 is "<blank>"
      extras                          uint8 [bytes]: gzip(JSON dict) of task extras (ARC: the raw test puzzles)
      {train,test}/                   zarr group per split; attrs = counts and token range of the split
        inputs, labels                uint8 (uint16 if vocab > 256) [N_examples, seq_len], row chunks in shards
        puzzle_identifiers            int32 [N_puzzles]
        puzzle_indices                int64 [N_puzzles + 1]   CSR: puzzle p owns examples [pi[p], pi[p+1])
        group_indices                 int64 [N_groups + 1]    CSR: group g owns puzzles  [gi[g], gi[g+1])

The three levels group > puzzle > example and the CSR offsets are those of the reference (docs/reference-code.md 1.0); trm
stores one set per split instead of ``all__*.npy`` files, and int64 offsets so ARC-scale stores cannot overflow.

Writing is in trm/store_write.py (``DatasetWriter``, ``build_store``): an interrupted build leaves nothing that
:func:`open_store` accepts. :func:`open_store` checks the format, the completion marker, shapes, offsets and token
range, and raises :class:`~trm.errors.UserError` with one line naming the store when anything is off.
"""

from __future__ import annotations

import functools
import glob
import gzip
import json
import os
import sys
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from trm.errors import UserError
from trm.store_rows import RowArray

FORMAT = "trm-dataset"
# Version 2 added a CRC32C checksum to every chunk of every array; version 1 stores are still read (with a note).
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
CHECKSUMS_SINCE = 2
META_KEY = "trm_dataset"
SPLIT_NAMES = ("train", "test")

# Chunking chosen by measurement (docs/datasets.md "Chunking and compression"): 256-row chunks keep a random row
# read cheap, shards of 16 chunks keep the file count low (ARC: ~1,300 files per array), zstd level 3 shrinks
# Sudoku tokens ~2.6x and decodes at memory speed.
CHUNK_ROWS = 256
SHARD_ROWS = 256 * 16
ZSTD_LEVEL = 3



def _zarr():
    import zarr  # imported lazily: the CLI and plugin host must start quickly

    return zarr


def _token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint8 if vocab_size <= 256 else np.uint16)


def _pack_json(value: Any) -> np.ndarray:
    return np.frombuffer(gzip.compress(json.dumps(value, sort_keys=True).encode(), mtime=0), dtype=np.uint8)


def _unpack_json(array: Any, where: str = "") -> Any:
    try:
        return json.loads(gzip.decompress(np.asarray(array[:], dtype=np.uint8).tobytes()))
    except Exception as exc:  # a checksum mismatch, bad gzip or bad JSON: all mean a damaged store
        raise UserError(f"{where or 'store'}: store is damaged: cannot read it ({type(exc).__name__}: {exc}); "
                        "rebuild the store") from None


# --------------------------------------------------------------------------------------------------------------
# Reader
# --------------------------------------------------------------------------------------------------------------


@attrs.define(frozen=True, slots=False)
class StoreInfo:
    """A store's metadata. ``identifier_names`` and ``extras`` are read on first use (ARC has ~900k names)."""

    path: Path
    task: str
    task_options: dict
    vocab_size: int
    seq_len: int
    pad_id: int
    ignore_label_id: int | None
    blank_token_id: int | None
    token_names: list[str] | None
    num_puzzle_identifiers: int
    format_version: int
    builder_version: str
    seed: int
    created: str
    fingerprint: str
    splits: dict  # name -> {num_examples, num_puzzles, num_groups, token_min, token_max}
    build_seconds: float | None = None

    @property
    def checksums(self) -> bool:
        """Whether every chunk carries a CRC32C checksum (format 2 on); reads verify it."""
        return self.format_version >= CHECKSUMS_SINCE

    @functools.cached_property
    def identifier_names(self) -> list[str]:
        return _unpack_json(self._packed("identifier_names"), f"{self.path} identifier_names")

    @functools.cached_property
    def extras(self) -> dict:
        return _unpack_json(self._packed("extras"), f"{self.path} extras")

    def _packed(self, key: str) -> np.ndarray:
        from trm.store_check import _read_plain  # straight from the chunk files: `trm data info` needs no zarr

        return _read_plain(self, key, "uint8")


def _open_array(path: Path, key: str) -> Any:
    try:
        return _zarr().open_array(str(path / key), mode="r")
    except Exception as exc:  # zarr raises several types for missing/garbled metadata
        raise UserError(f"{path}: store is damaged: cannot open '{key}' ({type(exc).__name__})") from None


@attrs.define(slots=False)
class SplitData:
    """One split: token rows (``inputs``, ``labels``) and the CSR index arrays (docs/reference-code.md 1.0)."""

    name: str
    inputs: RowArray
    labels: RowArray
    puzzle_identifiers: np.ndarray  # int32 [P]
    puzzle_indices: np.ndarray  # int64 [P+1]
    group_indices: np.ndarray  # int64 [G+1]

    @property
    def num_examples(self) -> int:
        return int(self.puzzle_indices[-1])

    @property
    def num_puzzles(self) -> int:
        return len(self.puzzle_identifiers)

    @property
    def num_groups(self) -> int:
        return len(self.group_indices) - 1

    @property
    def mean_puzzle_examples(self) -> float:
        """Examples per puzzle (1 for Sudoku and Maze); the trainer sizes an epoch with it."""
        return self.num_examples / max(1, self.num_puzzles)


class Store:
    """An opened, validated store (see :func:`open_store`)."""

    def __init__(self, path: Path, info: StoreInfo):
        self.path, self.info = path, info
        self._splits: dict[str, SplitData] = {}

    def has_split(self, name: str) -> bool:
        return name in self.info.splits

    def split(self, name: str) -> SplitData:
        if not self.has_split(name):
            have = ", ".join(sorted(self.info.splits)) or "none"
            raise UserError(f"{self.path}: store has no split '{name}' (it has: {have})")
        if name not in self._splits:
            self._splits[name] = _open_split(self.path, name, self.info)
        return self._splits[name]

    def size_bytes(self) -> int:
        """Bytes on disk."""
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())


def _fail(path: Path, message: str) -> UserError:
    return UserError(f"{path}: {message}")


def leftovers(path: Path) -> list[Path]:
    """What interrupted builds of ``path`` left beside it: ``<name>.partial-<pid>`` and ``<name>.old-<pid>``."""
    path = Path(path)
    parent = path.parent if path.name else Path(".")
    try:
        return sorted(p for p in parent.glob(f"{glob.escape(path.name)}.*-*")
                      if p.name.rpartition("-")[0] in (f"{path.name}.partial", f"{path.name}.old")
                      and p.name.rpartition("-")[2].isdigit())
    except OSError:
        return []


_NOTED_UNCHECKED: set[str] = set()


def _note_no_checksums(path: Path) -> None:
    """One line per store and process (main process only): a format 1 store has no chunk checksums."""
    key = str(Path(path).resolve())
    if key in _NOTED_UNCHECKED or os.environ.get("RANK", "0") != "0":
        return
    _NOTED_UNCHECKED.add(key)
    print(f"note: {path}: store format 1 has no chunk checksums, so damage to its data can go unnoticed; rebuild it "
          "with `trm augment ... --overwrite` (same options, same fingerprint)", file=sys.stderr, flush=True)


def open_store(path: Path, *, expect_task: str | None = None) -> Store:
    """Open and validate a store; :class:`UserError` (one line naming ``path``) if it is absent, partial or foreign."""
    path = Path(path)
    if not path.exists():
        left = leftovers(path)
        if left:
            raise _fail(path, f"dataset store not found; an interrupted build left {left[0].name} beside it "
                              "(the next build of this store removes it)")
        raise _fail(path, "dataset store not found")
    if not (path / "zarr.json").is_file():
        if ".partial-" in path.name:
            raise _fail(path, "interrupted build: this is what a build killed early left; delete it (the next build "
                              "of the store does)")
        raise _fail(path, "not a zarr store (no zarr.json); expected a directory written by `trm augment`")
    try:
        meta = json.loads((path / "zarr.json").read_text()).get("attributes", {}).get(META_KEY)
    except (OSError, ValueError) as exc:
        raise _fail(path, f"unreadable store metadata ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        if ".partial-" in path.name:
            raise _fail(path, "interrupted build: this is what a build killed early left; delete it (the next build "
                              "of the store does)")
        raise _fail(path, "not a trm dataset store (no trm_dataset metadata); build one with `trm augment`")
    if meta.get("format_version") not in READABLE_VERSIONS:
        raise _fail(path, f"store format version {meta.get('format_version')!r} is not supported "
                          f"(this trm reads versions {', '.join(map(str, READABLE_VERSIONS))}); "
                          "rebuild it with `trm augment`")
    if meta.get("complete") is not True:
        raise _fail(path, "interrupted build: the store was never completed; rebuild it with `trm augment ... "
                          "--overwrite`")
    if expect_task is not None and meta.get("task") != expect_task:
        raise _fail(path, f"store was built by task '{meta.get('task')}', expected task '{expect_task}'")
    try:
        info = StoreInfo(
            path=path, task=meta["task"], task_options=meta["task_options"], vocab_size=int(meta["vocab_size"]),
            seq_len=int(meta["seq_len"]), pad_id=int(meta["pad_id"]), ignore_label_id=meta["ignore_label_id"],
            blank_token_id=meta["blank_token_id"], token_names=meta.get("token_names"),
            num_puzzle_identifiers=int(meta["num_puzzle_identifiers"]), format_version=int(meta["format_version"]),
            builder_version=str(meta["builder_version"]), seed=int(meta["seed"]), created=str(meta["created"]),
            fingerprint=str(meta["fingerprint"]), splits=dict(meta["splits"]), build_seconds=meta.get("build_seconds"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _fail(path, f"store metadata is missing or has a bad field ({exc})") from None
    for name, counts in info.splits.items():
        if not (path / name / "zarr.json").is_file():
            raise _fail(path, f"split '{name}' is listed in the metadata but missing on disk (truncated store?)")
        if counts["token_min"] < 0 or counts["token_max"] >= info.vocab_size:
            raise _fail(path, f"split '{name}' tokens span [{counts['token_min']}, {counts['token_max']}], "
                              f"outside the vocabulary [0, {info.vocab_size})")
    if not info.checksums:
        _note_no_checksums(path)
    return Store(path, info)


def _expected_shards(num_rows: int, shard_rows: int) -> int:
    return (num_rows + shard_rows - 1) // shard_rows


SPLIT_ARRAYS = ("inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices")


def _open_split(path: Path, name: str, info: StoreInfo) -> SplitData:
    return split_from_arrays(path, name, info, {key: _open_array(path, f"{name}/{key}") for key in SPLIT_ARRAYS})


def split_from_arrays(path: Path, name: str, info: StoreInfo, arrays: dict[str, Any]) -> SplitData:
    """The checked split from its opened zarr arrays: shapes, shard files, the index arrays read and checked."""
    counts = info.splits[name]
    where = f"{path} split '{name}'"
    n = counts["num_examples"]
    for key in ("inputs", "labels"):
        array = arrays[key]
        if tuple(array.shape) != (n, info.seq_len):
            raise UserError(f"{where}: {key} has shape {tuple(array.shape)}, metadata says ({n}, {info.seq_len})")
        shard_rows = int((array.shards or array.chunks)[0])
        stored = path / name / key / "c"
        found = sum(1 for f in stored.rglob("*") if f.is_file()) if stored.exists() else 0
        if found != _expected_shards(n, shard_rows):
            raise UserError(f"{where}: {key} has {found} of {_expected_shards(n, shard_rows)} data files "
                            "(truncated store); rebuild it with --overwrite")
    index = {}
    for key, dtype in (("puzzle_identifiers", np.int32), ("puzzle_indices", np.int64), ("group_indices", np.int64)):
        try:
            index[key] = np.asarray(arrays[key][:], dtype=dtype)
        except Exception as exc:  # a chunk failing its checksum, or not decodable
            raise UserError(f"{where}: {key} is damaged ({type(exc).__name__}: {exc}); rebuild the store") from None
    identifiers, puzzle_indices, group_indices = (index[k] for k in ("puzzle_identifiers", "puzzle_indices",
                                                                    "group_indices"))
    check_index(where, info, counts, identifiers, puzzle_indices, group_indices)
    return SplitData(name, RowArray(arrays["inputs"], where + " inputs"), RowArray(arrays["labels"], where + " labels"),
                     identifiers, puzzle_indices, group_indices)


def check_index(where: str, info: StoreInfo, counts: dict, identifiers: np.ndarray, puzzle_indices: np.ndarray,
                group_indices: np.ndarray) -> None:
    """UserError unless the CSR offsets run from 0 to the count below with no empty puzzle or group, and every
    identifier is in range."""
    n, p, g = counts["num_examples"], counts["num_puzzles"], counts["num_groups"]
    problems = []
    if len(identifiers) != p or len(puzzle_indices) != p + 1 or len(group_indices) != g + 1:
        problems.append(f"index arrays have lengths {len(identifiers)}, {len(puzzle_indices)}, {len(group_indices)}; "
                        f"expected {p}, {p + 1}, {g + 1}")
    elif puzzle_indices[0] != 0 or puzzle_indices[-1] != n or (np.diff(puzzle_indices) < 1).any():
        problems.append("puzzle_indices is not a CSR offset array from 0 to num_examples with non-empty puzzles")
    elif group_indices[0] != 0 or group_indices[-1] != p or (np.diff(group_indices) < 1).any():
        problems.append("group_indices is not a CSR offset array from 0 to num_puzzles with non-empty groups")
    elif p and (identifiers.min() < 0 or identifiers.max() >= info.num_puzzle_identifiers):
        problems.append(f"puzzle identifiers outside [0, {info.num_puzzle_identifiers})")
    if problems:
        raise UserError(f"{where}: {problems[0]}; rebuild the store")


# Names that lived here until the writer moved to trm/store_write.py: plugins written against the earlier docs
# (``trm.store.DatasetWriter``) keep working, with a warning that says where to import them from.
_MOVED_TO_STORE_WRITE = ("DatasetWriter", "SplitWriter", "build_store")


def __getattr__(name: str) -> Any:
    if name in _MOVED_TO_STORE_WRITE:
        import warnings

        from trm import store_write

        warnings.warn(f"trm.store.{name} is deprecated: import it from trm.store_write "
                      f"(from trm.store_write import {name})", DeprecationWarning, stacklevel=2)
        return getattr(store_write, name)
    raise AttributeError(f"module 'trm.store' has no attribute {name!r}")

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
import shutil
import sys
from pathlib import Path
from collections import OrderedDict
from typing import Any, Callable

import attrs
import google_crc32c  # zarr's own dependency for its crc32c codec
import numpy as np

from trm import distributed, moved
from trm.errors import UserError
from trm.types import TaskDims

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

    @property
    def dims(self) -> TaskDims:
        """The sizes a model for this store needs: vocabulary, grid length, puzzle identifiers."""
        return TaskDims(self.vocab_size, self.seq_len, self.num_puzzle_identifiers)

    @functools.cached_property
    def identifier_names(self) -> list[str]:
        return _unpack_json(self._packed("identifier_names"), f"{self.path} identifier_names")

    @functools.cached_property
    def extras(self) -> dict:
        return _unpack_json(self._packed("extras"), f"{self.path} extras")

    def _packed(self, key: str) -> np.ndarray:
        # straight from the chunk files (_read_plain): `trm data info` needs no zarr
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


def publish_directory(staging: Path, target: Path) -> None:
    """Move a complete ``staging`` directory to ``target`` by renames; an existing ``target`` is replaced, and is
    kept as ``<name>.old-<pid>`` only between the two renames (interrupted builds' leftovers are named so)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        retired = target.with_name(f"{target.name}.old-{os.getpid()}")
        target.rename(retired)
        staging.rename(target)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        staging.rename(target)


_NOTED_UNCHECKED: set[str] = set()


def _note_no_checksums(path: Path) -> None:
    """One line per store and process (main process only): a format 1 store has no chunk checksums."""
    key = str(Path(path).resolve())
    if key in _NOTED_UNCHECKED or not distributed.is_main():
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


# --------------------------------------------------------------------------------------------------------------
# Row access: whole in memory when small, through a bounded chunk cache when big
# --------------------------------------------------------------------------------------------------------------


# The reader keeps an array whole in memory when it is at most this big, else an LRU cache of decoded chunks.
WHOLE_ARRAY_BYTES = int(os.environ.get("TRM_STORE_WHOLE_MB", "256")) * 2**20
CHUNK_CACHE_BYTES = int(os.environ.get("TRM_STORE_CACHE_MB", "256")) * 2**20


class _ShardChunks:
    """Decodes inner chunks straight from shard files, for arrays in exactly the layout this module writes.

    zarr's own read path costs about 1 ms per chunk in Python overhead on a 2-core machine, which made random
    row reads on ARC-scale stores (hundreds of chunks per batch) far too slow. A shard file is the zstd-compressed
    inner chunks followed by an index of (offset, nbytes) uint64 pairs and a CRC32C (the zarr v3 sharding spec with
    ``index_location: end``), so one ``pread`` and one zstd call per chunk suffice. From store format 2 each inner
    chunk ends with the CRC32C of its compressed bytes (zarr's ``crc32c`` codec), checked here on every read as zarr
    would. Any other layout falls back to zarr. The shard files are read through the OS page cache, which processes
    on one host share.
    """

    def __init__(self, meta: dict, directory: Path):
        """``meta``: the array's zarr metadata (its ``zarr.json``, or ``zarray.metadata.to_dict()``)."""
        (codec,) = meta["codecs"]
        config = codec["configuration"]
        self.directory = directory
        self.shard_rows = int(meta["chunk_grid"]["configuration"]["chunk_shape"][0])
        self.chunk_rows = int(config["chunk_shape"][0])
        self.num_rows, self.width = (int(v) for v in meta["shape"])
        self.dtype = np.dtype(meta["data_type"]).newbyteorder("<")
        self.per_shard = self.shard_rows // self.chunk_rows
        self.checksummed = [c["name"] for c in config["codecs"]][-1] == "crc32c"
        self._indices: dict[int, np.ndarray] = {}
        from numcodecs import Zstd

        self._zstd = Zstd()

    @staticmethod
    def supports(meta: dict) -> bool:
        try:
            (codec,) = meta["codecs"]
            config = codec["configuration"]
            inner = [c["name"] for c in config["codecs"]]
            index = [c["name"] for c in config["index_codecs"]]
            return (codec["name"] == "sharding_indexed" and inner in (["bytes", "zstd"], ["bytes", "zstd", "crc32c"])
                    and index == ["bytes", "crc32c"] and config["index_location"] == "end"
                    and meta["chunk_key_encoding"] == {"name": "default", "configuration": {"separator": "/"}}
                    and len(meta["shape"]) == 2 and int(config["chunk_shape"][1]) == int(meta["shape"][1])
                    and int(meta["chunk_grid"]["configuration"]["chunk_shape"][0]) % int(config["chunk_shape"][0]) == 0)
        except (AttributeError, KeyError, TypeError, ValueError):
            return False

    def chunk_file(self, chunk: int) -> str:
        """The shard file holding ``chunk``, relative to the array's directory (for messages)."""
        return f"c/{chunk // self.per_shard}/0"

    def _shard_path(self, shard: int) -> Path:
        return self.directory / "c" / str(shard) / "0"

    def _index(self, shard: int) -> np.ndarray:
        index = self._indices.get(shard)
        if index is None:
            size = self.per_shard * 16 + 4
            with open(self._shard_path(shard), "rb") as handle:
                handle.seek(-size, os.SEEK_END)
                raw = handle.read(size)
            if len(raw) != size or google_crc32c.value(raw[:-4]) != int.from_bytes(raw[-4:], "little"):
                raise ValueError(f"shard {shard} has a damaged index (checksum mismatch)")
            index = np.frombuffer(raw[:-4], dtype="<u8").reshape(self.per_shard, 2)
            self._indices[shard] = index
        return index

    def read(self, chunk: int) -> np.ndarray:
        """Inner chunk number ``chunk`` (rows ``chunk * chunk_rows ...``), full chunk_rows tall."""
        shard, inner = divmod(chunk, self.per_shard)
        offset, nbytes = (int(v) for v in self._index(shard)[inner])
        if offset == 2**64 - 1:  # never written: zarr's fill value
            return np.zeros((self.chunk_rows, self.width), dtype=self.dtype)
        with open(self._shard_path(shard), "rb") as handle:
            handle.seek(offset)
            raw = handle.read(nbytes)
        if len(raw) != nbytes:
            raise ValueError(f"shard {shard} is truncated")
        if self.checksummed:
            if len(raw) < 4 or google_crc32c.value(raw[:-4]) != int.from_bytes(raw[-4:], "little"):
                raise ValueError(f"chunk {chunk} (in shard file {self.chunk_file(chunk)}) fails its checksum")
            raw = raw[:-4]
        data = np.frombuffer(self._zstd.decode(raw), dtype=self.dtype)
        return data.reshape(self.chunk_rows, self.width)


class RowArray:
    """Read-only rows of a token array, ``array[rows]`` for an int, slice or integer array of rows.

    Arrays up to ``WHOLE_ARRAY_BYTES`` are decoded whole on first use (Sudoku: 81 MB); bigger ones (ARC: 4.7 GB)
    are read chunk by chunk through an LRU cache of at most ``CHUNK_CACHE_BYTES`` decoded bytes, so memory stays
    bounded whatever the store's size.
    """

    def __init__(self, zarray: Any, where: str, *, whole_bytes: int = WHOLE_ARRAY_BYTES,
                 cache_bytes: int = CHUNK_CACHE_BYTES):
        self._zarray, self.where = zarray, where
        self.shape, self.dtype = tuple(zarray.shape), np.dtype(zarray.dtype)
        self.chunk_rows = int(zarray.chunks[0])
        self._row_bytes = self.shape[1] * self.dtype.itemsize
        self._whole = None
        self._use_whole = self.shape[0] * self._row_bytes <= whole_bytes
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_limit = max(1, cache_bytes // max(1, self.chunk_rows * self._row_bytes))
        self._fast = None
        store_root = getattr(getattr(zarray, "store", None), "root", None)
        meta = zarray.metadata.to_dict()
        if store_root is not None and _ShardChunks.supports(meta):
            self._fast = _ShardChunks(meta, Path(store_root) / zarray.path)
            self.chunk_rows = self._fast.chunk_rows

    def __len__(self) -> int:
        return self.shape[0]

    def _read(self, start: int, stop: int) -> np.ndarray:
        try:
            if self._fast is not None and start % self.chunk_rows == 0:
                first, last = start // self.chunk_rows, (stop - 1) // self.chunk_rows
                if first == last:
                    return self._fast.read(first)[: stop - start]
                out = np.empty((stop - start, self.shape[1]), dtype=self.dtype)  # no second copy of a whole array
                for chunk in range(first, last + 1):
                    low = (chunk - first) * self.chunk_rows
                    data = self._fast.read(chunk)
                    out[low:low + self.chunk_rows] = data[: len(out) - low]
                return out
            return np.asarray(self._zarray[start:stop])
        except Exception as exc:
            raise UserError(f"{self.where}: cannot read rows {start}..{stop} ({type(exc).__name__}: {exc}); "
                            "the store is damaged, rebuild it") from None

    def __getitem__(self, rows: Any) -> np.ndarray:
        if isinstance(rows, slice):
            start, stop, step = rows.indices(self.shape[0])
            if self._use_whole or step != 1:
                return self[np.arange(start, stop, step)]
            return self._read(start, stop)
        scalar = np.isscalar(rows)
        rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        rows = np.where(rows < 0, rows + self.shape[0], rows)
        if rows.size and (rows.min() < 0 or rows.max() >= self.shape[0]):
            raise IndexError(f"{self.where}: row index out of range [0, {self.shape[0]})")
        if self._use_whole:
            if self._whole is None:
                self._whole = self._read(0, self.shape[0])
            out = self._whole[rows]
        else:
            out = self._gather(rows)
        return out[0] if scalar else out

    def _gather(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), self.shape[1]), dtype=self.dtype)
        chunk_of = rows // self.chunk_rows
        order = np.argsort(chunk_of, kind="stable")
        boundaries = np.flatnonzero(np.diff(chunk_of[order])) + 1
        for positions in np.split(order, boundaries):
            if positions.size == 0:
                continue
            chunk = int(chunk_of[positions[0]])
            data = self._cache.get(chunk)
            if data is None:
                start = chunk * self.chunk_rows
                data = self._read(start, min(start + self.chunk_rows, self.shape[0]))
                self._cache[chunk] = data
                if len(self._cache) > self._cache_limit:
                    self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(chunk)
            out[positions] = data[rows[positions] - chunk * self.chunk_rows]
        return out


# --------------------------------------------------------------------------------------------------------------
# Plain arrays straight from their chunk files, and damage reports
# --------------------------------------------------------------------------------------------------------------


class StoreDamaged(UserError):
    """The store's files are not what its metadata describes; the message names the array and chunk."""


def _damaged(store: Store | StoreInfo, where: str, problem: str) -> StoreDamaged:
    return StoreDamaged(f"{store.path}: damaged store: {where}: {problem}; rebuild it with `trm augment ... "
                        "--overwrite`")


def _array_meta(store: Store | StoreInfo, key: str) -> dict:
    meta_file = store.path / key / "zarr.json"
    try:
        meta = json.loads(meta_file.read_text())
    except FileNotFoundError:
        raise _damaged(store, key, "the array is missing (no zarr.json)") from None
    except (OSError, ValueError) as exc:
        raise _damaged(store, key, f"unreadable array metadata ({type(exc).__name__})") from None
    if not isinstance(meta, dict) or meta.get("node_type") != "array":
        raise _damaged(store, key, "zarr.json does not describe an array")
    return meta


def _codec_names(codecs: Any) -> list[str]:
    return [c.get("name") if isinstance(c, dict) else None for c in codecs or []]


def _decode_failure(exc: Exception) -> str:
    return str(exc) if "checksum" in str(exc) else f"cannot decode it ({type(exc).__name__}: {exc})"


def _read_plain(store: Store | StoreInfo, key: str, dtype: str, tick: Callable[[], None] = lambda: None) -> np.ndarray:
    """A 1-D array, chunk by chunk: straight from its chunk files in trm's layout (zstd, then CRC32C from format 2),
    through zarr otherwise (only ``store.path`` is used, so a :class:`StoreInfo` will do)."""
    meta = _array_meta(store, key)
    length, step = int(meta["shape"][0]), int(meta["chunk_grid"]["configuration"]["chunk_shape"][0])
    codecs = _codec_names(meta.get("codecs"))
    direct = codecs in (["bytes", "zstd"], ["bytes", "zstd", "crc32c"]) and meta.get("chunk_key_encoding") == {
        "name": "default", "configuration": {"separator": "/"}}
    zarray = None if direct else _open_array(store.path, key)
    from numcodecs import Zstd

    zstd, parts = Zstd(), []
    for chunk in range(-(-length // step)):
        try:
            if zarray is not None:
                parts.append(np.asarray(zarray[chunk * step:(chunk + 1) * step], dtype=dtype))
            else:
                chunk_file = store.path / key / "c" / str(chunk)
                if not chunk_file.is_file():  # format 1 skipped chunks holding only the fill value
                    parts.append(np.zeros(min(step, length - chunk * step), dtype=dtype))
                    continue
                raw = chunk_file.read_bytes()
                if codecs[-1] == "crc32c":
                    if len(raw) < 4 or google_crc32c.value(raw[:-4]) != int.from_bytes(raw[-4:], "little"):
                        raise ValueError("the chunk fails its checksum")
                    raw = raw[:-4]
                values = np.frombuffer(zstd.decode(raw), dtype=np.dtype(dtype).newbyteorder("<"))
                if len(values) != step:
                    raise ValueError(f"{len(values)} values, expected {step}")
                parts.append(values[: length - chunk * step].astype(dtype))
        except Exception as exc:
            raise _damaged(store, f"{key} chunk {chunk} (file {key}/c/{chunk})", _decode_failure(exc)) from None
        tick()
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


# --------------------------------------------------------------------------------------------------------------
# The data root: where relative data.store paths live.
# --------------------------------------------------------------------------------------------------------------

DATA_ROOT_ENV = "TRM_DATA_ROOT"
DEFAULT_DATA_ROOT = "data"


def data_root() -> Path:
    """The folder relative ``data.store`` paths are under: ``$TRM_DATA_ROOT`` (``trm --data-root``), else ``./data``.

    Returned absolute, resolved against the working directory at the time of the call.
    """
    value = os.environ.get(DATA_ROOT_ENV, "").strip()
    return Path(os.path.abspath(Path(value or DEFAULT_DATA_ROOT).expanduser()))


def resolve_store_path(store: str | os.PathLike) -> Path:
    """The absolute path a recipe's ``data.store`` names (docs/datasets.md, "The data root").

    Absolute paths (``~`` expanded) stay; ``./x`` and ``../x`` are relative to the working directory; ``data/x`` and
    plain ``x`` are ``x`` under the data root (``data/`` was the data root's place before trm had one, so recipes
    written that way keep naming the same store).
    """
    text = os.fspath(store)
    path = Path(text).expanduser()
    if path.is_absolute():
        return Path(os.path.abspath(path))
    if text == "." or text.startswith(("./", "../")) or text == "..":  # Path("./x") would lose the "./"
        return Path(os.path.abspath(path))
    parts = path.parts
    if parts[:1] == (DEFAULT_DATA_ROOT,) and len(parts) > 1:
        path = Path(*parts[1:])
    return Path(os.path.abspath(data_root() / path))


# Names that lived here until the writer moved to trm/store_write.py (trm/moved.py lists them): plugins written against
# the earlier docs (``trm.store.DatasetWriter``) keep working, with a warning that says where to import them from.


def __getattr__(name: str) -> Any:
    return moved.resolve(__name__, name)

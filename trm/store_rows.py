"""Row access to the token arrays of a store: whole in memory when small, through a bounded chunk cache when big.

``SplitData.inputs`` / ``.labels`` are :class:`RowArray` objects. Reads of stores in the layout trm/store.py
writes go straight to the shard files (:class:`_ShardChunks`); docs/datasets.md ("Reading and validation") gives the
measurements behind this.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import google_crc32c  # zarr's own dependency for its crc32c codec
import numpy as np

from trm.errors import UserError

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

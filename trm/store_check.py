"""Store integrity: the quick structural check of ``trm data info`` and the full read of ``trm data verify``.

:func:`check_structure` reads only metadata and the small index at the end of each shard file (no chunk data, no
zarr import): every array present with the shape, type and codecs the metadata implies, every chunk file present
and every shard index intact (its CRC32C) and pointing inside its file. It takes milliseconds.

:func:`verify_store` then reads every chunk of every array, checking each chunk's CRC32C (store format 2), and
recomputes each split's content hash and the store's fingerprint exactly as the writer computed them
(trm/store_write.py), so a store that passes holds the bytes it was built with. docs/reliability.md says what each
check covers.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import google_crc32c
import numpy as np

# StoreDamaged is raised by the readers in trm/store.py and named here too, where callers of the checks catch it
from trm.store import (SPLIT_NAMES, Store, StoreDamaged, _array_meta, _codec_names, _damaged, _decode_failure,  # noqa: F401
                       _open_array, _read_plain, _ShardChunks, _token_dtype)

INDEX_ARRAYS = (("puzzle_identifiers", "int32"), ("puzzle_indices", "int64"), ("group_indices", "int64"))
EMPTY_ENTRY = 2**64 - 1  # a shard index entry for a chunk never written


def _split_order(names: Any) -> list[str]:
    return sorted(names, key=lambda s: (SPLIT_NAMES.index(s) if s in SPLIT_NAMES else 9, s))


# --------------------------------------------------------------------------------------------------------------
# Structure
# --------------------------------------------------------------------------------------------------------------


def _check_plain(store: Store, key: str, dtype: str, length: int | None) -> int:
    """A 1-D unsharded array (index arrays, names, extras); returns its number of chunks."""
    meta = _array_meta(store, key)
    try:
        shape, chunk = list(meta["shape"]), int(meta["chunk_grid"]["configuration"]["chunk_shape"][0])
        codecs, data_type = _codec_names(meta["codecs"]), meta["data_type"]
    except (KeyError, TypeError, ValueError, IndexError):
        raise _damaged(store, key, "array metadata lacks its shape, chunks or codecs") from None
    if len(shape) != 1 or (length is not None and shape[0] != length) or data_type != dtype or chunk < 1:
        expected = f"[{length}]" if length is not None else "1-D"
        raise _damaged(store, key, f"shape {shape} of {data_type}, expected {expected} of {dtype}")
    if store.info.checksums and codecs[-1:] != ["crc32c"]:
        raise _damaged(store, key, "its chunks carry no checksum although the store format has them")
    chunks = -(-shape[0] // chunk)
    for number in range(chunks):
        chunk_file = store.path / key / "c" / str(number)
        if not chunk_file.is_file():
            if store.info.checksums:  # format 1 skipped chunks holding only the fill value
                raise _damaged(store, key, f"chunk {number} is missing (file {key}/c/{number})")
        elif store.info.checksums and chunk_file.stat().st_size <= 4:
            raise _damaged(store, key, f"chunk {number} is truncated (file {key}/c/{number})")
    return chunks


def _shard_layout(store: Store, key: str, rows: int) -> dict:
    meta = _array_meta(store, key)
    info = store.info
    try:
        shape = list(meta["shape"])
        shard_rows = int(meta["chunk_grid"]["configuration"]["chunk_shape"][0])
        (codec,) = meta["codecs"]
        config = codec["configuration"]
        chunk_rows = int(config["chunk_shape"][0])
        inner, index = _codec_names(config["codecs"]), _codec_names(config["index_codecs"])
        data_type, location = meta["data_type"], config["index_location"]
    except (KeyError, TypeError, ValueError, IndexError):
        raise _damaged(store, key, "array metadata lacks its shape, shards or codecs") from None
    dtype = str(_token_dtype(info.vocab_size))
    if shape != [rows, info.seq_len] or data_type != dtype:
        raise _damaged(store, key, f"shape {shape} of {data_type}, the store metadata says [{rows}, {info.seq_len}] "
                                   f"of {dtype}")
    expected_inner = ["bytes", "zstd", "crc32c"] if info.checksums else ["bytes", "zstd"]
    if (codec.get("name") != "sharding_indexed" or index != ["bytes", "crc32c"] or location != "end"
            or chunk_rows < 1 or shard_rows % chunk_rows or inner != expected_inner):
        raise _damaged(store, key, f"unexpected chunk layout (codecs {inner}, index {index} at {location})")
    return {"shard_rows": shard_rows, "chunk_rows": chunk_rows, "per_shard": shard_rows // chunk_rows}


def _check_sharded(store: Store, key: str, rows: int) -> int:
    """A token array: every shard file present, its index intact and inside the file; returns its chunk count."""
    layout = _shard_layout(store, key, rows)
    shard_rows, chunk_rows, per_shard = layout["shard_rows"], layout["chunk_rows"], layout["per_shard"]
    shards = -(-rows // shard_rows)
    directory = store.path / key / "c"
    found = sum(1 for f in directory.rglob("*") if f.is_file()) if directory.is_dir() else 0
    if found != shards:
        raise _damaged(store, key, f"{found} of {shards} shard files present (truncated store?)")
    index_bytes = per_shard * 16 + 4
    minimum = 5 if store.info.checksums else 1  # a chunk's bytes: zstd frame (+ its 4-byte checksum)
    for shard in range(shards):
        name = f"{key}/c/{shard}/0"
        try:
            with open(store.path / name, "rb") as handle:
                size = handle.seek(0, 2)
                if size < index_bytes:
                    raise _damaged(store, name, f"the shard file is truncated ({size} bytes)")
                handle.seek(size - index_bytes)
                raw = handle.read(index_bytes)
        except OSError as exc:
            raise _damaged(store, name, f"cannot read the shard file ({exc.strerror or exc})") from None
        if google_crc32c.value(raw[:-4]) != int.from_bytes(raw[-4:], "little"):
            raise _damaged(store, name, "the shard index fails its checksum (truncated or overwritten file)")
        index = np.frombuffer(raw[:-4], dtype="<u8").reshape(per_shard, 2)
        filled = -(-min(shard_rows, rows - shard * shard_rows) // chunk_rows)
        for inner, (offset, nbytes) in enumerate(index[:filled].tolist()):
            chunk = shard * per_shard + inner
            if offset == EMPTY_ENTRY:
                if store.info.checksums:  # format 1 skipped chunks holding only the fill value
                    raise _damaged(store, name, f"chunk {chunk} was never written")
            elif nbytes < minimum or offset + nbytes > size - index_bytes:
                raise _damaged(store, name, f"chunk {chunk} lies outside its shard file")
    return -(-rows // chunk_rows)


def check_structure(store: Store) -> int:
    """Raise :class:`StoreDamaged` naming the first array (and chunk or file) that is missing or inconsistent with
    the metadata; return the number of chunks in the store. Reads no chunk data."""
    info = store.info
    chunks = sum(_check_plain(store, key, "uint8", None) for key in ("identifier_names", "extras"))
    for name in _split_order(info.splits):
        counts = info.splits[name]
        n, p, g = counts["num_examples"], counts["num_puzzles"], counts["num_groups"]
        for key in ("inputs", "labels"):
            chunks += _check_sharded(store, f"{name}/{key}", n)
        for (key, dtype), length in zip(INDEX_ARRAYS, (p, p + 1, g + 1)):
            chunks += _check_plain(store, f"{name}/{key}", dtype, length)
    return chunks


# --------------------------------------------------------------------------------------------------------------
# Full read
# --------------------------------------------------------------------------------------------------------------


def _flush_blocks(group_rows: np.ndarray, shard_rows: int) -> Iterator[tuple[int, int]]:
    """The row ranges the writer hashed, in order: it flushes whole shards once a group fills one, then the rest."""
    written = buffered = 0
    for rows in group_rows.tolist():
        buffered += rows
        if buffered >= shard_rows:
            take = (buffered // shard_rows) * shard_rows
            yield written, written + take
            written, buffered = written + take, buffered - take
    if buffered:
        yield written, written + buffered


class _TokenChunks:
    """Chunk-by-chunk reads of one token array, each chunk checked, damage reported with its chunk and file."""

    def __init__(self, store: Store, key: str, tick: Callable[[], None]):

        self.store, self.key, self.tick = store, key, tick
        meta = _array_meta(store, key)
        self.rows = int(meta["shape"][0])
        if _ShardChunks.supports(meta):  # trm's layout: read the shard files directly, as training does
            self.fast, self.zarray = _ShardChunks(meta, store.path / key), None
            self.chunk_rows, self.per_shard = self.fast.chunk_rows, self.fast.per_shard
            self.shard_rows = self.fast.shard_rows
        else:
            self.fast, self.zarray = None, _open_array(store.path, key)
            self.chunk_rows, self.per_shard = int(self.zarray.chunks[0]), 1
            self.shard_rows = int(self.zarray.shards[0]) if self.zarray.shards else self.rows
        self.low, self.high = None, None

    def read(self, chunk: int) -> np.ndarray:
        start = chunk * self.chunk_rows
        stop = min(start + self.chunk_rows, self.rows)
        try:
            data = self.fast.read(chunk)[: stop - start] if self.fast else np.asarray(self.zarray[start:stop])
        except Exception as exc:  # checksum mismatch, bad zstd frame, wrong size
            where = f"{self.key} chunk {chunk} (rows {start}..{stop}, file {self.key}/c/{chunk // self.per_shard}/0)"
            raise _damaged(self.store, where, _decode_failure(exc)) from None
        if data.size:
            low, high = int(data.min()), int(data.max())
            self.low = low if self.low is None else min(self.low, low)
            self.high = high if self.high is None else max(self.high, high)
        self.tick()
        return data

    def hash_rows(self, digest: Any, start: int, stop: int) -> None:
        for chunk in range(start // self.chunk_rows, -(-stop // self.chunk_rows)):
            low = chunk * self.chunk_rows
            data = self.read(chunk)
            digest.update(data[max(start, low) - low: stop - low].tobytes())


def verify_store(store: Store, *, show_progress: bool = True) -> dict[str, Any]:
    """Read every chunk, check its checksum, recompute the split hashes and the fingerprint; raise
    :class:`StoreDamaged` at the first difference. Returns what was checked (chunks, bytes, seconds)."""
    from trm.progress import progress_bar
    from trm.store import _unpack_json

    started = time.perf_counter()
    total = check_structure(store)
    info = store.info
    bar = progress_bar(total=total, desc="verify", unit="chunk", disable=not show_progress, leave=False)
    try:
        split_hashes = {}
        for name in sorted(info.splits):
            split_hashes[name] = _verify_split(store, name, bar.update)
        names = _read_plain(store, "identifier_names", "uint8", bar.update)
        extras = _read_plain(store, "extras", "uint8", bar.update)
    finally:
        bar.close()
    for key, packed in (("identifier_names", names), ("extras", extras)):
        _unpack_json(packed, f"{store.path} {key}")  # gzip and JSON intact
    vocabulary = {"vocab_size": info.vocab_size, "seq_len": info.seq_len, "pad_id": info.pad_id,
                  "ignore_label_id": info.ignore_label_id, "blank_token_id": info.blank_token_id,
                  "token_names": info.token_names}
    digest = hashlib.sha256()
    digest.update(json.dumps(vocabulary, sort_keys=True).encode())
    digest.update(hashlib.sha256(names.tobytes()).digest() + hashlib.sha256(extras.tobytes()).digest())
    for name in sorted(split_hashes):
        digest.update(name.encode() + split_hashes[name].encode())
    fingerprint = digest.hexdigest()[:16]
    if fingerprint != info.fingerprint:
        raise _damaged(store, "fingerprint", f"the content gives {fingerprint}, the metadata records "
                                             f"{info.fingerprint} (metadata edited or data replaced)")
    data_bytes = sum(f.stat().st_size for f in store.path.rglob("*") if f.is_file())
    return {"chunks": total, "bytes": data_bytes, "seconds": time.perf_counter() - started,
            "fingerprint": fingerprint, "checksums": info.checksums}


def _verify_split(store: Store, name: str, tick: Callable[[], None]) -> str:
    from trm.store import check_index

    counts = store.info.splits[name]
    index = {key: _read_plain(store, f"{name}/{key}", dtype, tick) for key, dtype in INDEX_ARRAYS}
    check_index(f"{store.path} split '{name}'", store.info, counts, *index.values())
    starts = index["puzzle_indices"][index["group_indices"]]
    tokens = {key: _TokenChunks(store, f"{name}/{key}", tick) for key in ("inputs", "labels")}
    digest = hashlib.sha256()
    for start, stop in _flush_blocks(np.diff(starts), tokens["inputs"].shard_rows):
        for key in ("inputs", "labels"):
            digest.update(key.encode())
            tokens[key].hash_rows(digest, start, stop)
    found = [(t.low, t.high) for t in tokens.values() if t.low is not None]
    low, high = (min(f[0] for f in found), max(f[1] for f in found)) if found else (None, None)
    if (low, high) != (counts["token_min"], counts["token_max"]):
        raise _damaged(store, name, f"tokens span [{low}, {high}], the metadata records "
                                    f"[{counts['token_min']}, {counts['token_max']}]")
    for key, _ in INDEX_ARRAYS:
        digest.update(key.encode())
        digest.update(index[key].tobytes())
    if digest.hexdigest() != _split_attrs(store, name).get("content_sha256"):
        raise _damaged(store, name, "its content does not match the hash recorded at build time")
    return digest.hexdigest()


def _split_attrs(store: Store, name: str) -> dict:
    try:
        return json.loads((store.path / name / "zarr.json").read_text()).get("attributes", {})
    except (OSError, ValueError, AttributeError):
        raise _damaged(store, name, "unreadable split metadata") from None

"""Measures the training (and evaluation) loader on a store: samples per second and host-memory growth.

``trm data bench STORE`` runs it. Memory is the process's resident set (``VmRSS``) read before the store is opened
and after the loop, plus the peak (``VmHWM``), so the figures include the decoded arrays or chunk cache the loader
keeps. The first batch is timed apart: it pays for decoding whole arrays (small stores) or the first chunks.
"""

from __future__ import annotations

import time
from pathlib import Path


def _memory_mib() -> dict[str, float]:
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, amount, _unit = line.split()
                values[key[:-1]] = int(amount) / 1024
    return values


def bench_loader(path: Path, *, batch_size: int = 768, batches: int = 2000, split: str = "train", seed: int = 0,
                 eval_batches: int = 200) -> dict[str, float]:
    """Time ``batches`` training batches (and up to ``eval_batches`` evaluation batches) of ``split``."""
    from trm.data import EvalLoader, TrainLoader
    from trm.errors import UserError
    from trm.store import open_store

    for option, value in (("--batch-size", batch_size), ("--batches", batches)):
        if value < 1:
            raise UserError(f"{option} {value}: expected an integer >= 1")
    before = _memory_mib()
    store = open_store(Path(path))
    data = store.split(split)
    loader = TrainLoader(data, global_batch_size=batch_size, seed=seed, ignore_label_id=store.info.ignore_label_id)
    stream = iter(loader)
    start = time.perf_counter()
    next(stream)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(batches):
        batch = next(stream)
    elapsed = time.perf_counter() - start
    stream.close()  # stops the prefetch thread
    results = {
        "first_batch_s": first,
        "train_batches": float(batches),
        "train_samples_per_s": batches * batch_size / elapsed,
        "train_epochs_covered": loader.epoch,
        "batch_tokens": float(batch["inputs"].numel()),
    }
    if eval_batches and store.has_split("test"):
        evaluation = EvalLoader(store.split("test"), global_batch_size=batch_size, pad_id=store.info.pad_id,
                                ignore_label_id=store.info.ignore_label_id)
        start, count = time.perf_counter(), 0
        for count, _ in enumerate(evaluation, start=1):
            if count >= eval_batches:
                break
        results["eval_samples_per_s"] = count * batch_size / (time.perf_counter() - start)
    after = _memory_mib()
    results["rss_growth_mib"] = after["VmRSS"] - before["VmRSS"]
    results["peak_rss_growth_mib"] = after["VmHWM"] - before["VmRSS"]
    return results


def bench_layouts(path: Path, *, split: str = "train", key: str = "inputs", scratch: Path | None = None,
                  random_reads: int = 200) -> list[dict[str, float | str]]:
    """Rewrite one array of a store under several chunk/shard/compressor layouts and time writes and reads.

    The numbers behind the layout chosen in trm/store.py (docs/datasets.md, "Chunking and compression").
    """
    import shutil
    import tempfile

    import numpy as np
    import zarr
    from zarr.codecs import BloscCodec, ZstdCodec

    source = np.asarray(zarr.open_array(str(Path(path) / split / key), mode="r")[:])
    rows, width = source.shape
    layouts = [
        ("none", 256, 4096, None),
        ("zstd-1", 256, 4096, ZstdCodec(level=1)),
        ("zstd-3", 256, 4096, ZstdCodec(level=3)),
        ("zstd-9", 256, 4096, ZstdCodec(level=9)),
        ("blosc-lz4-shuffle", 256, 4096, BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")),
        ("zstd-3", 64, 4096, ZstdCodec(level=3)),
        ("zstd-3", 4096, 65536, ZstdCodec(level=3)),
        ("zstd-3", 256, None, ZstdCodec(level=3)),
    ]
    scratch_dir = Path(tempfile.mkdtemp(dir=scratch))
    rng = np.random.default_rng(0)
    results = []
    try:
        for name, chunk, shard, codec in layouts:
            target = scratch_dir / "layout.zarr"
            start = time.perf_counter()
            array = zarr.create_array(str(target), shape=source.shape, dtype=source.dtype, chunks=(chunk, width),
                                      shards=None if shard is None else (shard, width),
                                      compressors=codec if codec is not None else None, fill_value=0)
            array[:] = source
            write_s = time.perf_counter() - start
            size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
            files = sum(1 for f in target.rglob("*") if f.is_file())
            reader = zarr.open_array(str(target), mode="r")
            start = time.perf_counter()
            reader[:]
            whole_s = time.perf_counter() - start
            starts = rng.integers(0, rows // chunk, random_reads) * chunk
            start = time.perf_counter()
            for row in starts:
                reader[row:row + chunk]
            chunk_ms = (time.perf_counter() - start) / random_reads * 1000
            results.append({"codec": name, "chunk_rows": chunk, "shard_rows": shard or 0, "files": files,
                            "size_mib": size / 2**20, "ratio": source.nbytes / size, "write_s": write_s,
                            "read_whole_s": whole_s, "random_chunk_ms": chunk_ms})
            shutil.rmtree(target)
    finally:
        shutil.rmtree(scratch_dir, ignore_errors=True)
    return results

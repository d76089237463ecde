"""Choosing a task's augmented versions: dihedral x colour permutation, de-duplicated by task hash.

docs/reference-code.md 1.3 ("Augmentation", "Deduplication"). Version 0 is the original. Candidates draw a dihedral id
uniformly from 0..7 and a colour map with black fixed; a candidate is accepted when the task it produces (all of
its pairs, both splits) differs from every task accepted so far, the original included. At most
``retries_factor * num_aug`` candidates are tried, so tasks with few colours or symmetric grids get fewer versions.

Equality of tasks is the reference's: the multiset of (input, output) pairs, each grid taken with its shape. The
reference compares SHA-256 digests of the sorted per-pair hashes; here each candidate's sorted pair serialisations
are hashed once (the same equivalence, cheaper). Candidates are drawn and transformed in vectorised blocks.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from trm_arc.transforms import dihedral, random_colour_maps

Pair = tuple[np.ndarray, np.ndarray]


def grid_hash(grid: np.ndarray) -> str:
    """SHA-256 hex digest of (shape bytes + raw uint8 bytes): the reference's grid hash."""
    grid = np.ascontiguousarray(grid, dtype=np.uint8)
    return hashlib.sha256(bytes(grid.shape) + grid.tobytes()).hexdigest()


def task_hash(pairs: Sequence[Pair]) -> str:
    """The reference's task hash: SHA-256 of the sorted ``hash(input)|hash(output)`` strings of all pairs."""
    return hashlib.sha256("|".join(sorted(f"{grid_hash(i)}|{grid_hash(o)}" for i, o in pairs)).encode()).hexdigest()


class _TaskBytes:
    """Every pair of a task under each dihedral transform, flattened for fast colour mapping and hashing."""

    def __init__(self, pairs: Sequence[Pair]):
        self.flat = []  # per tid: all cells of all pairs, concatenated [cells] (cell count is the same for every tid)
        self.headers = []  # per tid: per pair, shape bytes of input and output
        self.bounds = []  # per pair: (start, end) of its cells in ``flat``
        start = 0
        for i, o in pairs:
            end = start + i.size + o.size
            self.bounds.append((start, end))
            start = end
        for tid in range(8):
            grids = [(dihedral(i, tid), dihedral(o, tid)) for i, o in pairs]
            self.flat.append(np.concatenate([np.concatenate([i.ravel(), o.ravel()]) for i, o in grids])
                             .astype(np.uint8))
            self.headers.append([bytes(i.shape) + bytes(o.shape) for i, o in grids])
        self.flat_by_tid = np.stack(self.flat)  # [8, cells]

    def key(self, tid: int, mapped: bytes) -> bytes:
        """Digest identifying the task (multiset of pairs) of one candidate whose cells are ``mapped``."""
        headers = self.headers[tid]
        parts = sorted(headers[p] + mapped[s:e] for p, (s, e) in enumerate(self.bounds))
        return hashlib.sha256(b"\x00".join(parts)).digest()


def choose_versions(pairs: Sequence[Pair], *, num_aug: int, retries_factor: int, rng: np.random.Generator,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(dihedral ids [V] uint8, colour maps [V, 10] uint8) of the accepted versions, the original first.

    ``V <= num_aug + 1``; fewer when ``retries_factor * num_aug`` candidates do not yield enough distinct tasks.
    """
    tids = [0]
    maps = [np.arange(10, dtype=np.uint8)]
    if num_aug <= 0:
        return np.array(tids, dtype=np.uint8), np.stack(maps)
    task = _TaskBytes(pairs)
    seen = {task.key(0, task.flat[0].tobytes())}
    budget = retries_factor * num_aug
    tried = 0
    while len(tids) < num_aug + 1 and tried < budget:
        block = min(budget - tried, max(64, int((num_aug + 1 - len(tids)) * 1.25)))
        cand_tids = rng.integers(0, 8, size=block)
        cand_maps = random_colour_maps(rng, block)
        mapped = np.take_along_axis(cand_maps, task.flat_by_tid[cand_tids].astype(np.intp), axis=1)
        for k in range(block):
            tried += 1
            key = task.key(int(cand_tids[k]), mapped[k].tobytes())
            if key not in seen:
                seen.add(key)
                tids.append(int(cand_tids[k]))
                maps.append(cand_maps[k])
                if len(tids) >= num_aug + 1:
                    break
    return np.array(tids, dtype=np.uint8), np.stack(maps).astype(np.uint8)

"""Grid symmetries for task plugins: the dihedral group, value (colour, digit) permutations, and canonical forms.

A task augments its training split by writing extra versions of a puzzle into the puzzle's group (docs/plugins.md,
"Augmentation and held-out splits"); the versions are the puzzle under symmetries that keep its answer an answer.
This module holds the common ones, each with its inverse, so that a plugin does not re-invent them:

* **Dihedral transforms** of a grid (the 8 symmetries of a square): :func:`dihedral`, :func:`inverse_dihedral`,
  :func:`dihedral_flat`. Ids follow the TRM reference's numbering, which the built-in Maze and ARC tasks use and
  store names record: 0 identity, 1-3 ``np.rot90`` with k = 1..3 (counter-clockwise), 4 left-right mirror, 5 up-down
  mirror, 6 transpose, 7 anti-transpose (``np.fliplr(np.rot90(grid))``). They act on the last two axes, so a stack
  of grids transforms at once; rectangular grids are allowed (ids 1, 3, 6, 7 swap their height and width).
* **Value permutations** (colours, digits, symbols): :func:`random_value_maps` draws maps that permute some values
  and keep others fixed (ARC's black, Sudoku's blank); :func:`apply_value_map` and :func:`invert_value_map`.
* **Canonical forms**: :func:`canonical_form` gives bytes that are equal for two grids (or tuples of grids, such as
  an input/output pair) exactly when one is a symmetric version of the other, for de-duplication under symmetry
  (trm/heldout.py).

Everything here is NumPy and deterministic given the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

__all__ = [
    "NUM_DIHEDRAL", "DIHEDRAL_INVERSE", "DIHEDRAL_NAMES", "dihedral", "inverse_dihedral", "dihedral_flat",
    "random_value_maps", "apply_value_map", "invert_value_map", "relabel_by_first_appearance", "canonical_form",
]

NUM_DIHEDRAL = 8
# DIHEDRAL_INVERSE[tid] undoes tid: rotations by 90 and 270 degrees undo each other, the rest are involutions.
DIHEDRAL_INVERSE = (0, 3, 2, 1, 4, 5, 6, 7)
DIHEDRAL_NAMES = ("identity", "rot90", "rot180", "rot270", "flip left-right", "flip up-down", "transpose",
                  "anti-transpose")


def dihedral(grid: np.ndarray, tid: int) -> np.ndarray:
    """Dihedral transform ``tid`` (0..7, numbering above) of the last two axes of ``grid``.

    Returns a NumPy view where one exists (``grid`` itself for 0); use ``np.ascontiguousarray`` to own a copy.
    """
    if tid == 0:
        return grid
    if tid in (1, 2, 3):
        return np.rot90(grid, k=tid, axes=(-2, -1))
    if tid == 4:
        return np.flip(grid, axis=-1)
    if tid == 5:
        return np.flip(grid, axis=-2)
    if tid == 6:
        return np.swapaxes(grid, -1, -2)
    if tid == 7:
        return np.flip(np.rot90(grid, k=1, axes=(-2, -1)), axis=-1)
    raise ValueError(f"dihedral transform id must be 0..7, got {tid}")


def inverse_dihedral(grid: np.ndarray, tid: int) -> np.ndarray:
    """Undo :func:`dihedral` with the same ``tid``: ``inverse_dihedral(dihedral(g, t), t)`` equals ``g``."""
    if not 0 <= tid < NUM_DIHEDRAL:
        raise ValueError(f"dihedral transform id must be 0..7, got {tid}")
    return dihedral(grid, DIHEDRAL_INVERSE[tid])


def dihedral_flat(tokens: np.ndarray, tid: int, side: int) -> np.ndarray:
    """Transform ``tid`` of a row-major flattened ``side`` x ``side`` grid (or a stack ``[..., side*side]``).

    Returns a contiguous copy of the same shape as ``tokens``: what a store row needs.
    """
    tokens = np.asarray(tokens)
    grid = tokens.reshape(*tokens.shape[:-1], side, side)
    return np.ascontiguousarray(dihedral(grid, tid)).reshape(tokens.shape)


def random_value_maps(rng: np.random.Generator, count: int, num_values: int, *, fixed: Iterable[int] = (),
                      dtype: type = np.uint8) -> np.ndarray:
    """``count`` value maps ``[count, num_values]``: ``maps[k, old] = new``, a uniform permutation of the values
    not in ``fixed``, each value in ``fixed`` mapped to itself (ARC: ``fixed=(0,)`` keeps black; Sudoku: the blank).

    One ``rng.random((count, free))`` draw is argsorted into permutations, so a given generator state always gives
    the same maps (the built-in tasks' stores depend on this order of draws).
    """
    fixed_set = {int(v) for v in fixed}
    if any(not 0 <= v < num_values for v in fixed_set):
        raise ValueError(f"fixed values {sorted(fixed_set)} must lie in 0..{num_values - 1}")
    free = np.array([v for v in range(num_values) if v not in fixed_set], dtype=np.intp)
    maps = np.tile(np.arange(num_values, dtype=dtype), (count, 1))
    if len(free):
        maps[:, free] = free[np.argsort(rng.random((count, len(free))), axis=1)].astype(dtype)
    return maps


def apply_value_map(values: np.ndarray, value_map: np.ndarray) -> np.ndarray:
    """``values`` with every value ``v`` replaced by ``value_map[v]`` (any shape; a new array of the map's dtype)."""
    return np.asarray(value_map)[np.asarray(values)]


def invert_value_map(value_map: np.ndarray) -> np.ndarray:
    """The map that undoes ``value_map`` (which must be a permutation of ``0..len-1``): its argsort."""
    value_map = np.asarray(value_map)
    return np.argsort(value_map, axis=-1).astype(value_map.dtype)


def relabel_by_first_appearance(cells: np.ndarray, *, fixed: Iterable[int] = ()) -> np.ndarray:
    """``cells`` (1-D) with the values not in ``fixed`` renamed in order of first appearance to the smallest
    values not in ``fixed`` (0, 1, 2, ... skipping the fixed ones): equal for two arrays exactly when one is a
    value permutation of the other that keeps ``fixed``."""
    cells = np.asarray(cells).ravel()
    fixed_set = {int(v) for v in fixed}
    if cells.size == 0:
        return cells.copy()
    if not np.issubdtype(cells.dtype, np.integer) or int(cells.min()) < 0:
        raise ValueError("relabelling needs non-negative integer values")
    _, first = np.unique(cells, return_index=True)
    order = [int(v) for v in cells[np.sort(first)] if int(v) not in fixed_set]
    targets, candidate = [], 0
    while len(targets) < len(order):
        if candidate not in fixed_set:
            targets.append(candidate)
        candidate += 1
    relabel = np.zeros(max(int(cells.max()) + 1, 1), dtype=np.int64)
    for value in fixed_set:
        if value < len(relabel):
            relabel[value] = value
    relabel[order] = np.asarray(targets, dtype=np.int64)
    return relabel[cells]


def canonical_form(grids: np.ndarray | Sequence[np.ndarray], *, dihedral_group: bool = True,
                   values: bool = False, fixed: Iterable[int] = ()) -> bytes:
    """Bytes equal for two grids (or two tuples of grids taken together, e.g. an input/output pair) exactly when
    one is a symmetric version of the other.

    The symmetries are the dihedral group (when ``dihedral_group``; the same transform on every grid of a tuple)
    and, when ``values``, every permutation of the values that keeps ``fixed``. The form is the smallest, over the
    dihedral transforms, of the grids' shapes and cells (cells relabelled by first appearance when ``values``).
    Shapes are part of the form, so grids of other shapes never compare equal. Cost: 8 transforms of the cells.
    """
    items = [np.asarray(grids)] if isinstance(grids, np.ndarray) else [np.asarray(g) for g in grids]
    fixed = tuple(fixed)
    best: bytes | None = None
    for tid in range(NUM_DIHEDRAL if dihedral_group else 1):
        moved = [dihedral(g, tid) for g in items]
        cells = np.concatenate([g.ravel() for g in moved]) if moved else np.zeros(0, dtype=np.uint8)
        if values:
            cells = relabel_by_first_appearance(cells, fixed=fixed)
        shapes = np.asarray([len(moved)] + [d for g in moved for d in (g.ndim, *g.shape)], dtype="<i8")
        form = shapes.tobytes() + cells.astype("<i8").tobytes()  # one dtype: uint8 and int64 grids compare equal
        if best is None or form < best:
            best = form
    assert best is not None
    return best

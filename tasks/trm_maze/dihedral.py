"""The 8 dihedral transforms of a square grid, with the reference's ids (REFERENCE.md 1.3).

Ids: 0 identity, 1 ``np.rot90`` (k=1, counter-clockwise), 2 rot180, 3 rot270, 4 left-right mirror, 5 up-down
mirror, 6 transpose, 7 anti-transpose (``np.fliplr(np.rot90(grid))``). ``INVERSE[tid]`` undoes ``tid``:
[0, 3, 2, 1, 4, 5, 6, 7]. The maze builder uses them as the reference's ``aug`` option does: 8 versions of each
training maze in one group. They are isometries of the grid graph, so a shortest path stays a shortest path.
"""

from __future__ import annotations

import numpy as np

NUM_TRANSFORMS = 8
INVERSE = (0, 3, 2, 1, 4, 5, 6, 7)


def transform(grid: np.ndarray, tid: int) -> np.ndarray:
    """Apply dihedral transform ``tid`` to a 2-D grid (a copy, C-contiguous)."""
    if tid == 0:
        out = grid
    elif tid in (1, 2, 3):
        out = np.rot90(grid, k=tid)
    elif tid == 4:
        out = np.fliplr(grid)
    elif tid == 5:
        out = np.flipud(grid)
    elif tid == 6:
        out = grid.T
    elif tid == 7:
        out = np.fliplr(np.rot90(grid, k=1))
    else:
        raise ValueError(f"dihedral transform id must be 0..7, got {tid}")
    return np.ascontiguousarray(out)


def inverse(grid: np.ndarray, tid: int) -> np.ndarray:
    """Undo dihedral transform ``tid``."""
    return transform(grid, INVERSE[tid])


def transform_flat(tokens: np.ndarray, tid: int, side: int) -> np.ndarray:
    """Apply ``tid`` to a row-major flattened ``side`` x ``side`` grid; returns a flat copy."""
    return transform(np.asarray(tokens).reshape(side, side), tid).reshape(-1)

"""The 8 dihedral transforms of a square grid, with the reference's ids (docs/reference-code.md 1.3), from trm.symmetry.

Ids: 0 identity, 1 ``np.rot90`` (k=1, counter-clockwise), 2 rot180, 3 rot270, 4 left-right mirror, 5 up-down
mirror, 6 transpose, 7 anti-transpose (``np.fliplr(np.rot90(grid))``). ``INVERSE[tid]`` undoes ``tid``:
[0, 3, 2, 1, 4, 5, 6, 7]. The maze builder uses them as the reference's ``aug`` option does: 8 versions of each
training maze in one group. They are isometries of the grid graph, so a shortest path stays a shortest path.
This module keeps the maze task's names for :mod:`trm.symmetry`'s functions (which every task shares).
"""

from __future__ import annotations

import numpy as np

from trm.symmetry import DIHEDRAL_INVERSE, NUM_DIHEDRAL, dihedral, dihedral_flat

NUM_TRANSFORMS = NUM_DIHEDRAL
INVERSE = DIHEDRAL_INVERSE


def transform(grid: np.ndarray, tid: int) -> np.ndarray:
    """Apply dihedral transform ``tid`` to a 2-D grid (a copy, C-contiguous)."""
    return np.ascontiguousarray(dihedral(grid, tid))


def inverse(grid: np.ndarray, tid: int) -> np.ndarray:
    """Undo dihedral transform ``tid``."""
    return transform(grid, INVERSE[tid])


def transform_flat(tokens: np.ndarray, tid: int, side: int) -> np.ndarray:
    """Apply ``tid`` to a row-major flattened ``side`` x ``side`` grid; returns a flat copy."""
    return dihedral_flat(np.asarray(tokens).reshape(-1), tid, side)

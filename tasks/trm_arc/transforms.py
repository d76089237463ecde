"""ARC grid transforms: the 8 dihedral transforms, colour permutations with black fixed, and their inverses.

docs/reference-code.md 1.3 ("Augmentation") and 7 ("Per example", step 3). A version of a task is named
``<task_id>|||t<tid>|||<10-digit colour map>``; the original keeps its plain id. The forward transform applies the
colour map first and then the dihedral transform (they commute: the colour map acts cell by cell); the inverse
undoes the dihedral transform and then the colour map. The transforms themselves are trm.symmetry's (shared by every
task); this module keeps ARC's names and its version-name format.
"""

from __future__ import annotations

import numpy as np

from trm import symmetry
from trm.symmetry import DIHEDRAL_INVERSE

NAME_SEPARATOR = "|||"
NUM_COLOURS = 10
IDENTITY_COLOURS = np.arange(NUM_COLOURS, dtype=np.uint8)
# dihedral id -> the id that undoes it (rotations by 90 and 270 degrees undo each other; the rest are involutions)
INVERSE_DIHEDRAL = DIHEDRAL_INVERSE


def dihedral(grid: np.ndarray, tid: int) -> np.ndarray:
    """Dihedral transform ``tid`` of a 2-D grid: 0 identity, 1-3 rot90 k=1..3, 4 left-right mirror,
    5 up-down mirror, 6 transpose, 7 anti-transpose (the mirror of rot90), exactly the reference's numbering
    (:func:`trm.symmetry.dihedral`)."""
    return symmetry.dihedral(grid, tid)


def inverse_dihedral(grid: np.ndarray, tid: int) -> np.ndarray:
    """Undo :func:`dihedral` with the same ``tid``."""
    return symmetry.inverse_dihedral(grid, tid)


def inverse_colours(colour_map: np.ndarray) -> np.ndarray:
    """The colour map that undoes ``colour_map`` (``colour_map[old] = new``): its argsort."""
    return symmetry.invert_value_map(np.asarray(colour_map, dtype=np.uint8))


def augment_grid(grid: np.ndarray, tid: int, colour_map: np.ndarray) -> np.ndarray:
    """Forward transform of one grid: colour map, then dihedral (a contiguous uint8 copy)."""
    return np.ascontiguousarray(dihedral(colour_map[grid], tid), dtype=np.uint8)


def deaugment_grid(grid: np.ndarray, tid: int, colour_map: np.ndarray) -> np.ndarray:
    """Inverse of :func:`augment_grid`: undo the dihedral transform, then the colour map."""
    return np.ascontiguousarray(inverse_colours(colour_map)[inverse_dihedral(grid, tid)], dtype=np.uint8)


def version_name(task_id: str, tid: int, colour_map: np.ndarray) -> str:
    """The identifier name of one augmented version (the reference's format)."""
    digits = (np.asarray(colour_map, dtype=np.uint8) + ord("0")).tobytes().decode()
    return f"{task_id}{NAME_SEPARATOR}t{tid}{NAME_SEPARATOR}{digits}"


def parse_name(name: str) -> tuple[str, int, np.ndarray]:
    """(task id, dihedral id, colour map) of an identifier name; a plain task id is the identity version."""
    parts = name.split(NAME_SEPARATOR)
    if len(parts) == 1:
        return name, 0, IDENTITY_COLOURS
    if len(parts) != 3 or not parts[1].startswith("t") or len(parts[2]) != NUM_COLOURS:
        raise ValueError(f"not an ARC version name: {name!r} (expected '<task>|||t<tid>|||<10 digits>')")
    colour_map = np.frombuffer(parts[2].encode(), dtype=np.uint8) - ord("0")
    return parts[0], int(parts[1][1:]), colour_map.astype(np.uint8)


def random_colour_maps(rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` colour maps [count, 10]: black (0) fixed, colours 1..9 permuted uniformly."""
    return symmetry.random_value_maps(rng, count, NUM_COLOURS, fixed=(0,))

"""trm.symmetry and trm.heldout: the augmentation and held-out helpers plugins use (docs/plugins.md)."""

from __future__ import annotations

import numpy as np
import pytest

from trm.errors import UserError
from trm.heldout import (Deduplicator, check_disjoint, exact_key, find_shared, split_rng, split_stream, symmetry_key,
                         unique_indices)
from trm.symmetry import (DIHEDRAL_INVERSE, NUM_DIHEDRAL, apply_value_map, canonical_form, dihedral, dihedral_flat,
                          invert_value_map, inverse_dihedral, random_value_maps, relabel_by_first_appearance)

GRID = np.arange(12, dtype=np.uint8).reshape(3, 4)  # rectangular and asymmetric: every transform differs


def reference_dihedral(grid, tid):
    """The TRM reference's numbering, written out with NumPy's 2-D helpers."""
    return [grid, np.rot90(grid, 1), np.rot90(grid, 2), np.rot90(grid, 3), np.fliplr(grid), np.flipud(grid), grid.T,
            np.fliplr(np.rot90(grid, 1))][tid]


@pytest.mark.parametrize("tid", range(8))
def test_dihedral_numbering_inverse_and_stacks(tid):
    moved = dihedral(GRID, tid)
    assert np.array_equal(moved, reference_dihedral(GRID, tid))
    assert np.array_equal(inverse_dihedral(moved, tid), GRID)
    assert np.array_equal(dihedral(moved, DIHEDRAL_INVERSE[tid]), GRID)
    stack = np.stack([GRID, GRID + 1])  # the last two axes transform, the leading one is a batch
    assert np.array_equal(dihedral(stack, tid)[1], reference_dihedral(GRID + 1, tid))
    square = np.arange(9).reshape(3, 3)
    flat = dihedral_flat(square.reshape(-1), tid, 3)
    assert flat.shape == (9,) and flat.flags.c_contiguous
    assert np.array_equal(flat, reference_dihedral(square, tid).reshape(-1))


def test_dihedral_transforms_are_distinct_and_ids_checked():
    forms = {dihedral(np.arange(16).reshape(4, 4), tid).tobytes() for tid in range(NUM_DIHEDRAL)}
    assert len(forms) == 8
    with pytest.raises(ValueError, match="0..7"):
        dihedral(GRID, 8)
    with pytest.raises(ValueError, match="0..7"):
        inverse_dihedral(GRID, -1)


def test_value_maps_fix_what_is_asked_and_invert():
    rng = np.random.default_rng(0)
    maps = random_value_maps(rng, 200, 10, fixed=(0, 5))
    assert maps.shape == (200, 10) and maps.dtype == np.uint8
    assert (maps[:, 0] == 0).all() and (maps[:, 5] == 5).all()
    assert all(sorted(row) == list(range(10)) for row in maps)
    assert len({row.tobytes() for row in maps}) > 150  # really random, not one map repeated
    grid = np.random.default_rng(1).integers(0, 10, (5, 5)).astype(np.uint8)
    for row in maps[:10]:
        assert np.array_equal(apply_value_map(apply_value_map(grid, row), invert_value_map(row)), grid)
    with pytest.raises(ValueError, match="fixed"):
        random_value_maps(rng, 1, 4, fixed=(4,))


def test_value_maps_draw_like_the_builtin_tasks():
    """Sudoku and ARC stores depend on this exact draw order (their fingerprints must not change)."""
    ours = random_value_maps(np.random.default_rng(3), 7, 10, fixed=(0,))
    rng = np.random.default_rng(3)
    theirs = np.concatenate([np.zeros((7, 1), np.uint8), np.argsort(rng.random((7, 9)), axis=1).astype(np.uint8) + 1],
                            axis=1)
    assert np.array_equal(ours, theirs)


def test_relabel_and_canonical_form_identify_exactly_the_symmetric_versions():
    rng = np.random.default_rng(2)
    grid = rng.integers(0, 6, (4, 5)).astype(np.uint8)
    other = rng.integers(0, 6, (4, 5)).astype(np.uint8)
    assert list(relabel_by_first_appearance(np.array([7, 0, 7, 3]), fixed=(0,))) == [1, 0, 1, 2]
    full = dict(dihedral_group=True, values=True, fixed=(0,))
    base = canonical_form((grid, other), **full)
    for tid in range(8):
        for value_map in random_value_maps(rng, 3, 6, fixed=(0,)):
            version = (dihedral(value_map[grid], tid), dihedral(value_map[other], tid))
            assert canonical_form(version, **full) == base
    assert canonical_form((grid, other), dihedral_group=True) == canonical_form(
        (dihedral(grid, 3), dihedral(other, 3)), dihedral_group=True)
    # not equal: one grid moved alone, a colour map that moves the fixed value, another grid, other shapes
    assert canonical_form((dihedral(grid, 2), other), **full) != base
    swap0 = np.array([1, 0, 2, 3, 4, 5], dtype=np.uint8)
    if (grid == 0).any() or (other == 0).any():
        assert canonical_form((swap0[grid], swap0[other]), **full) != base
    assert canonical_form((other, grid), **full) != base
    assert canonical_form(np.zeros((2, 3), np.uint8), dihedral_group=False) != canonical_form(
        np.zeros((3, 2), np.uint8), dihedral_group=False)
    assert exact_key(grid) == exact_key(grid.astype(np.int64))  # dtype does not matter, values do


def test_deduplicator_within_and_across_splits_and_under_symmetry():
    grid = np.arange(9).reshape(3, 3)
    exact = Deduplicator()
    assert exact.add(grid, "test") and not exact.add(grid.copy(), "train")
    assert exact.owner(grid) == "test" and exact.rejected == {"train": 1}
    assert exact.add(np.rot90(grid), "train")  # exact keys: a rotation is another item
    symmetric = Deduplicator(symmetry_key(dihedral_group=True))
    assert symmetric.add(grid, "test")
    assert not symmetric.add(np.rot90(grid), "train") and np.rot90(grid) in symmetric and len(symmetric) == 1


def test_unique_indices_find_shared_and_check_disjoint():
    a, b, c = np.zeros((2, 2)), np.eye(2), np.array([[0, 1], [1, 0]])
    assert list(unique_indices([a, b, a, c, b])) == [0, 1, 3]
    splits = {"test": [b, a], "train": [c, a, a]}
    assert find_shared(splits) == [("test", 1, "train", 1), ("test", 1, "train", 2)]
    with pytest.raises(UserError, match=r"2 item\(s\) occur in two splits \(e.g. test\[1\] = train\[1\], test\[1\] = train\[2\]\)"):
        check_disjoint(splits)
    check_disjoint({"test": [b], "train": [c]})
    with pytest.raises(UserError):  # c is b mirrored: shared under the dihedral group
        check_disjoint({"test": [b], "train": [c]}, symmetry_key())


def test_split_streams_are_stable_and_independent():
    assert split_stream("test") == split_stream("test") != split_stream("train")
    assert split_stream("test") == 0x657d4c8881d0869f  # pinned: stores built by plugins depend on it
    first = split_rng(5, "test").random(4)
    assert np.array_equal(first, split_rng(5, "test").random(4))
    assert not np.array_equal(first, split_rng(5, "train").random(4))
    assert not np.array_equal(first, split_rng(6, "test").random(4))


def test_maze_warns_when_a_test_maze_is_a_rotation_of_a_training_maze(capsys):
    from trm_maze.build import warn_symmetric_overlap

    rng = np.random.default_rng(0)
    train = rng.integers(1, 6, (3, 16)).astype(np.uint8)
    test = np.stack([rng.integers(1, 6, 16).astype(np.uint8), dihedral_flat(train[1], 1, 4)])
    warn_symmetric_overlap(train, test[:1], 4)
    assert capsys.readouterr().err == ""
    warn_symmetric_overlap(train, test, 4)
    assert "1 test maze(s) (e.g. row 1) equal a rotation or reflection of a training maze" in capsys.readouterr().err

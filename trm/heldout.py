"""Held-out hygiene for task plugins: de-duplication within and across splits, also under symmetry, and the
convention for a test split that shares nothing with training.

A score on a test split means something only when no test puzzle was trained on. Augmentation makes that harder
than it looks: a training group holds symmetric versions of its puzzle (trm/symmetry.py), so a test puzzle that
equals a *version* of a training puzzle leaks even though it differs from the original. The convention trm's
helpers implement (docs/plugins.md, "A test split that shares nothing with training"):

1. **Own streams.** Each split draws from its own random stream, :func:`split_rng` ``(seed, "test")`` and
   ``(seed, "train")``, so the test split stays the same when the number of training puzzles changes.
2. **Test first, then training without it.** Generate the test split first and register each puzzle in a
   :class:`Deduplicator`; then generate training puzzles, skipping every one already registered (in the test
   split or earlier in training). Skipping (and drawing another) keeps the requested counts.
3. **Key by the augmentation's symmetries.** Give the deduplicator :func:`symmetry_key` for the symmetries the
   training augmentation applies (dihedral transforms, value permutations), so that "already registered" means
   "equal to some version". :func:`exact_key` is for tasks that do not augment.
4. **Never augment the test split**, and check the finished splits with :func:`check_disjoint`.

Items are grids (NumPy arrays) or tuples of grids taken together (an input/output pair, a puzzle and its answer).
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Hashable, Iterable, Mapping, Sequence

import numpy as np

from trm.errors import UserError
from trm.symmetry import canonical_form

__all__ = ["exact_key", "symmetry_key", "Deduplicator", "unique_indices", "find_shared", "check_disjoint",
           "split_rng", "split_stream"]

Key = Callable[[Any], Hashable]


def exact_key(item: np.ndarray | Sequence[np.ndarray]) -> bytes:
    """A key equal for two items exactly when they have the same shapes and values (any integer dtype)."""
    return canonical_form(item, dihedral_group=False)


def symmetry_key(*, dihedral_group: bool = True, values: bool = False, fixed: Iterable[int] = ()) -> Key:
    """A key function equal for two items exactly when one is a symmetric version of the other.

    ``dihedral_group``: the 8 rotations and reflections of a grid; ``values``: every permutation of the values
    except those in ``fixed`` (ARC: ``fixed=(0,)`` for black). See :func:`trm.symmetry.canonical_form`.
    """
    fixed = tuple(fixed)

    def key(item: np.ndarray | Sequence[np.ndarray]) -> bytes:
        return canonical_form(item, dihedral_group=dihedral_group, values=values, fixed=fixed)

    return key


class Deduplicator:
    """Remembers the keys of the items seen so far, and in which split, across every split it is given.

    ``add(item, split)`` registers an item and says whether it was new; a repeat (in any split) is not registered
    again and is counted in ``rejected[split]``. Use one deduplicator for all splits of a build, the held-out split
    first (see the module docstring).
    """

    def __init__(self, key: Key = exact_key):
        self.key = key
        self._owner: dict[Hashable, str] = {}
        self.rejected: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._owner)

    def __contains__(self, item: Any) -> bool:
        return self.key(item) in self._owner

    def owner(self, item: Any) -> str | None:
        """The split the item (or a symmetric version of it, with a symmetry key) was registered in, or None."""
        return self._owner.get(self.key(item))

    def has_key(self, key: Hashable) -> bool:
        """Whether a key computed by the caller is registered."""
        return key in self._owner

    def add(self, item: Any, split: str = "train") -> bool:
        """Register ``item`` as part of ``split``: True when it is new, False when a repeat (then not added)."""
        return self.add_key(self.key(item), split)

    def add_key(self, key: Hashable, split: str = "train") -> bool:
        """:meth:`add` for a key computed by the caller (e.g. once per candidate, before other checks)."""
        if key in self._owner:
            self.rejected[split] = self.rejected.get(split, 0) + 1
            return False
        self._owner[key] = split
        return True


def unique_indices(items: Iterable[Any], key: Key = exact_key) -> np.ndarray:
    """Indices of the first occurrence of each distinct item (in order): de-duplication within one split."""
    seen: set[Hashable] = set()
    keep = []
    for index, item in enumerate(items):
        k = key(item)
        if k not in seen:
            seen.add(k)
            keep.append(index)
    return np.asarray(keep, dtype=np.int64)


def find_shared(splits: Mapping[str, Iterable[Any]], key: Key = exact_key) -> list[tuple[str, int, str, int]]:
    """Every item of a split equal to an item of an earlier split: ``(earlier split, its index, split, index)``.

    Splits are compared in the mapping's order; the earlier item is the first occurrence there. Repeats inside one
    split are not reported (see :func:`unique_indices`).
    """
    first: dict[Hashable, tuple[str, int]] = {}
    shared = []
    for name, items in splits.items():
        mine: dict[Hashable, int] = {}
        for index, item in enumerate(items):
            k = key(item)
            if k in first and first[k][0] != name:
                shared.append((*first[k], name, index))
            mine.setdefault(k, index)
        for k, index in mine.items():
            first.setdefault(k, (name, index))
    return shared


def check_disjoint(splits: Mapping[str, Iterable[Any]], key: Key = exact_key, *, what: str = "splits") -> None:
    """UserError naming the first shared items when two splits share an item (under ``key``'s symmetries)."""
    shared = find_shared(splits, key)
    if shared:
        examples = ", ".join(f"{a}[{i}] = {b}[{j}]" for a, i, b, j in shared[:3])
        raise UserError(f"{what}: {len(shared)} item(s) occur in two splits (e.g. {examples}); a held-out split must "
                        "share nothing with training")


def split_stream(split: str) -> int:
    """A stable 64-bit number naming a split (SHA-256 based: the same on every machine and Python version)."""
    return int.from_bytes(hashlib.sha256(split.encode()).digest()[:8], "little")


def split_rng(seed: int, split: str) -> np.random.Generator:
    """The random stream of one split of a build: independent of every other split's for the same ``seed``."""
    return np.random.default_rng([int(seed), split_stream(split)])

"""Leakage check: do test pairs (or their augmented versions) appear among the training examples?

docs/reference-code.md 1.3 and 10.4: ARC-AGI-2's ``training2`` holds 376 of ARC-AGI-1's 400 evaluation tasks, test pairs
included, so training on it and scoring on ARC-AGI-1 evaluation is contaminated. This module compares every test
pair whose answer is known with every training example, three ways:

* ``exact``: the same (input, output) pair, grid hashes equal (docs/reference-code.md's grid hash);
* ``augmented``: equal up to a dihedral transform and a colour permutation with black fixed (what the builder's
  augmentation could turn one into the other), via a canonical form;
* ``output``: the test output grid appears as some training output (weaker: small or blank grids recur innocently;
  reported for information, not flagged).

Task ids shared between a training subset and the test subset are listed too. A test task's own demonstrations are
not compared with its test pairs (a solver is given them; some tasks' demos are colour-permuted copies of the test).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Iterable, Sequence

import attrs
import numpy as np

from trm_arc.augment import grid_hash
from trm_arc.kaggle import ArcTask
from trm.symmetry import canonical_form

Pair = tuple[np.ndarray, np.ndarray]


def pair_hash(inp: np.ndarray, out: np.ndarray) -> str:
    return f"{grid_hash(inp)}|{grid_hash(out)}"


def canonical_pair_hash(inp: np.ndarray, out: np.ndarray) -> str:
    """A hash equal for two pairs iff one is a dihedral + colour-permuted (black fixed) version of the other."""
    return hashlib.sha256(canonical_form((inp, out), dihedral_group=True, values=True, fixed=(0,))).hexdigest()


@attrs.frozen
class Leak:
    kind: str  # "exact" or "augmented"
    test_task: str
    test_index: int
    train_subset: str
    train_task: str


@attrs.frozen
class LeakageReport:
    test_subsets: tuple[str, ...]
    train_subsets: tuple[str, ...]
    test_pairs_checked: int
    leaks: tuple[Leak, ...]
    shared_task_ids: dict[str, list[str]]  # training subset -> test task ids it also holds
    output_matches: int  # test outputs that occur as some training output grid (informational)

    @property
    def leaked_test_pairs(self) -> int:
        return len({(leak.test_task, leak.test_index) for leak in self.leaks})

    @property
    def leaked_test_tasks(self) -> list[str]:
        return sorted({leak.test_task for leak in self.leaks})

    @property
    def clean(self) -> bool:
        return not self.leaks

    def lines(self) -> list[str]:
        """A human summary; leakage is reported with a loud banner."""
        head = (f"leakage check: {self.test_pairs_checked} test pairs of {', '.join(self.test_subsets) or '-'} "
                f"against training examples of {', '.join(self.train_subsets) or '-'}")
        if self.clean:
            lines = [head, "  no test pair occurs among the training examples (exactly or up to augmentation)"]
        else:
            by_subset: dict[str, set[str]] = defaultdict(set)
            kinds: dict[str, int] = defaultdict(int)
            for leak in self.leaks:
                by_subset[leak.train_subset].add(leak.test_task)
            for pair_kinds in self._pair_kinds().values():
                kinds["exact" if "exact" in pair_kinds else "augmented"] += 1
            bar = "!" * 100
            lines = [bar, "LEAKAGE: test answers are in the training data; test scores on this store are contaminated",
                     head,
                     f"  {self.leaked_test_pairs} of {self.test_pairs_checked} test pairs leaked "
                     f"({kinds['exact']} exactly, {kinds['augmented']} only up to augmentation), "
                     f"in {len(self.leaked_test_tasks)} test tasks"]
            for subset, tasks in sorted(by_subset.items()):
                lines.append(f"  from {subset}: {len(tasks)} test tasks, e.g. {', '.join(sorted(tasks)[:8])}")
            lines.append(bar)
        for subset, ids in sorted(self.shared_task_ids.items()):
            if ids:
                lines.append(f"  note: {subset} shares {len(ids)} task ids with the test subset")
        lines.append(f"  info: {self.output_matches} test outputs also occur as a training output grid "
                     f"(not flagged: small grids recur innocently)")
        return lines

    def _pair_kinds(self) -> dict[tuple[str, int], set[str]]:
        kinds: dict[tuple[str, int], set[str]] = defaultdict(set)
        for leak in self.leaks:
            kinds[(leak.test_task, leak.test_index)].add(leak.kind)
        return kinds

    def to_json(self, max_leaks: int = 2000) -> dict:
        return {
            "clean": self.clean,
            "test_subsets": list(self.test_subsets),
            "train_subsets": list(self.train_subsets),
            "test_pairs_checked": self.test_pairs_checked,
            "leaked_test_pairs": self.leaked_test_pairs,
            "leaked_test_tasks": self.leaked_test_tasks,
            "shared_task_ids": {k: v for k, v in self.shared_task_ids.items() if v},
            "output_matches": self.output_matches,
            "leaks": [attrs.asdict(leak) for leak in self.leaks[:max_leaks]],
        }


def check_leakage(training: Iterable[tuple[str, str, Sequence[Pair]]], test_tasks: Sequence[ArcTask],
                  ) -> LeakageReport:
    """Compare the test pairs of ``test_tasks`` (known answers only) with ``training``: (subset, task id, pairs)."""
    exact: dict[str, list[tuple[str, int]]] = defaultdict(list)
    canonical: dict[str, list[tuple[str, int]]] = defaultdict(list)
    outputs: set[str] = set()
    checked = 0
    for task in test_tasks:
        for index, (inp, out) in enumerate(task.test):
            if out is None:
                continue
            checked += 1
            exact[pair_hash(inp, out)].append((task.task_id, index))
            canonical[canonical_pair_hash(inp, out)].append((task.task_id, index))
            outputs.add(grid_hash(out))
    test_ids = {task.task_id for task in test_tasks}
    held_out = {(task.subset, task.task_id) for task in test_tasks}
    leaks: list[Leak] = []
    shared: dict[str, set[str]] = defaultdict(set)
    train_outputs: set[str] = set()
    subsets: list[str] = []
    for subset, task_id, pairs in training:
        if subset not in subsets:
            subsets.append(subset)
        if task_id in test_ids and subset not in {t.subset for t in test_tasks}:
            shared[subset].add(task_id)
        for inp, out in pairs:
            train_outputs.add(grid_hash(out))
            # a test task's own demonstrations are given to any solver: matching them is not leakage
            own = (subset, task_id) in held_out
            hits = [(t, i) for t, i in exact.get(pair_hash(inp, out), ()) if not (own and t == task_id)]
            if hits:
                leaks += [Leak("exact", t, i, subset, task_id) for t, i in hits]
                continue
            for t, i in canonical.get(canonical_pair_hash(inp, out), ()):
                if not (own and t == task_id):
                    leaks.append(Leak("augmented", t, i, subset, task_id))
    return LeakageReport(
        test_subsets=tuple(dict.fromkeys(t.subset for t in test_tasks)),
        train_subsets=tuple(subsets),
        test_pairs_checked=checked,
        leaks=tuple(leaks),
        shared_task_ids={k: sorted(v) for k, v in shared.items()},
        output_matches=len(outputs & train_outputs),
    )

"""Evaluation-integrity checks: how much a score owes to memorised puzzle identifiers, and test/train leakage.

``trm eval --puzzle-ids blank|shuffled`` evaluates a second time with the model seeing other puzzle identifiers
(:class:`ReplacedIdentifiers`; the evaluators still see the real ones, so ARC's voting can still undo each version)
and reports the drop. ``trm data check-leakage STORE`` (:func:`check_store_leakage`) finds test examples whose
input also occurs among the training inputs, exactly and under the task's canonical form (its own augmentations).
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable

import attrs
import numpy as np
import torch

from trm.errors import UserError

PUZZLE_ID_MODES = ("blank", "shuffled")


class ReplacedIdentifiers:
    """``model`` fed through a table ``mapping[id] -> id`` applied to every batch's puzzle identifiers.

    Everything else (eval mode, the halting strategy, parameters) is the wrapped model's: only what the model is
    given changes, so :func:`trm.evaluate.evaluate` and its evaluators run unchanged.
    """

    def __init__(self, model: Any, mapping: torch.Tensor):
        self.model, self.mapping = model, mapping

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def _swap(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        ids = batch["puzzle_identifiers"]
        mapping = self.mapping.to(ids.device)
        return {**batch, "puzzle_identifiers": mapping[ids.long()].to(ids.dtype)}

    def initial_carry(self, batch: dict[str, torch.Tensor]) -> Any:
        return self.model.initial_carry(self._swap(batch))

    def __call__(self, carry: Any, batch: dict[str, torch.Tensor], **options: Any) -> Any:
        return self.model(carry, self._swap(batch), **options)


def identifier_mapping(mode: str, num_identifiers: int, train_identifiers: np.ndarray, seed: int) -> torch.Tensor:
    """``blank``: every id -> 0. ``shuffled``: every training id -> a different training id (a seeded derangement),
    any other non-blank id -> a random training id; 0 stays 0 (it only pads)."""
    if mode not in PUZZLE_ID_MODES:
        raise UserError(f"--puzzle-ids: expected one of {', '.join(PUZZLE_ID_MODES)}, got {mode!r}")
    mapping = torch.zeros(num_identifiers, dtype=torch.int64)
    if mode == "blank":
        return mapping
    used = np.unique(np.asarray(train_identifiers, dtype=np.int64))
    used = used[used != 0]
    if len(used) < 2:
        raise UserError("--puzzle-ids shuffled: the store's training puzzles use fewer than two puzzle identifiers "
                        "(e.g. Sudoku's one shared id), so there is no other id to swap in; use --puzzle-ids blank")
    rng = np.random.Generator(np.random.PCG64([int(seed), 17]))
    others = rng.integers(0, len(used), size=num_identifiers)
    mapping[:] = torch.from_numpy(used[others])
    order = used[rng.permutation(len(used))]
    mapping[torch.from_numpy(order)] = torch.from_numpy(np.roll(order, -1))  # a cycle: nobody keeps its own id
    mapping[0] = 0
    return mapping


NO_DROP = ("eval/examples", "eval/puzzles_per_s")  # a count and a speed: their difference is no score's drop


def metric_drop(normal: dict[str, float], changed: dict[str, float]) -> dict[str, float]:
    """normal - changed for every metric both have (the example count and the speed left out)."""
    return {key: normal[key] - changed[key] for key in normal
            if key in changed and key not in NO_DROP and isinstance(normal[key], float)}


def format_comparison(normal: dict[str, float], changed: dict[str, float], label: str) -> str:
    """A table: metric, normal value, value with replaced identifiers, drop."""
    drop = metric_drop(normal, changed)
    width = max((len(key) for key in normal), default=6)
    head = f"{'metric':<{width}}  {'normal':>9}  {label:>9}  {'drop':>9}"
    lines = [head, "-" * len(head)]
    for key, value in normal.items():
        other = changed.get(key, float("nan"))
        lost = drop.get(key)
        lines.append(f"{key:<{width}}  {value:>9.4f}  {other:>9.4f}  " + (f"{lost:>+9.4f}" if lost is not None else ""))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------
# Leakage: test inputs among the training inputs
# --------------------------------------------------------------------------------------------------------------


@attrs.frozen
class StoreLeakage:
    """Test examples whose input occurs among the training inputs."""

    store: str
    task: str
    test_examples: int
    train_examples: int
    exact: tuple[int, ...]  # test example indices whose input equals a training input
    augmented: tuple[int, ...]  # not exact, but equal under the task's canonical form
    canonical: bool  # whether the task provides a canonical form
    examples: tuple[dict, ...]  # a few leaked examples: test index, test puzzle name, training puzzle names

    @property
    def clean(self) -> bool:
        return not self.exact and not self.augmented

    def lines(self) -> list[str]:
        head = (f"leakage check of {self.store} ({self.task}): {self.test_examples:,} test inputs against "
                f"{self.train_examples:,} training inputs")
        how = "compared exactly and up to the task's augmentations" if self.canonical else \
            "compared exactly only: the task gives no canonical form, so augmented copies are not recognised"
        if self.clean:
            return [head, f"  no test input occurs among the training inputs ({how})"]
        bar = "!" * 100
        lines = [bar, "LEAKAGE: test inputs occur among the training inputs; test scores on this store may be "
                      "contaminated", head,
                 f"  {len(self.exact)} test inputs occur exactly, {len(self.augmented)} more only up to "
                 f"augmentation ({how})"]
        for example in self.examples:
            lines.append(f"  test example {example['test_example']} ({example['test_puzzle']}) "
                         f"~ training {', '.join(example['train_puzzles'])} [{example['kind']}]")
        lines.append(bar)
        return lines

    def to_json(self) -> dict:
        return {"store": self.store, "task": self.task, "clean": self.clean, "test_examples": self.test_examples,
                "train_examples": self.train_examples, "exact": len(self.exact), "augmented": len(self.augmented),
                "canonical_form": self.canonical, "exact_examples": list(self.exact)[:1000],
                "augmented_examples": list(self.augmented)[:1000], "examples": list(self.examples)}


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def check_store_leakage(store: Any, canonical: Callable[[np.ndarray], bytes] | None, *, show: int = 10,
                        progress: Callable[..., Any] | None = None, chunk: int = 4096) -> StoreLeakage:
    """Compare every test input of ``store`` with every training input (hashes, so memory stays small)."""
    for name in ("train", "test"):
        if not store.has_split(name):
            raise UserError(f"{store.path}: store has no '{name}' split; the leakage check compares test with train")
    train, test = store.split("train"), store.split("test")
    names = store.info.identifier_names if store.info.num_puzzle_identifiers > 1 else None

    def puzzle_name(split: Any, row: int) -> str:
        puzzle = int(np.searchsorted(split.puzzle_indices, row, side="right") - 1)
        identifier = int(split.puzzle_identifiers[puzzle])
        return names[identifier] if names is not None and identifier < len(names) else f"puzzle {puzzle}"

    exact_index: dict[bytes, int] = {}
    canonical_index: dict[bytes, int] = {}
    steps = range(0, train.num_examples, chunk)
    for low in (progress(steps, total=len(steps), desc="train inputs") if progress else steps):
        rows = np.asarray(train.inputs[np.arange(low, min(low + chunk, train.num_examples))])
        for offset, row in enumerate(rows):
            exact_index.setdefault(_digest(row.tobytes()), low + offset)
            if canonical is not None:
                canonical_index.setdefault(_digest(canonical(row)), low + offset)
    exact: list[int] = []
    augmented: list[int] = []
    shown: list[dict] = []
    matches: dict[int, int] = {}
    steps = range(0, test.num_examples, chunk)
    for low in (progress(steps, total=len(steps), desc="test inputs") if progress else steps):
        rows = np.asarray(test.inputs[np.arange(low, min(low + chunk, test.num_examples))])
        for offset, row in enumerate(rows):
            index = low + offset
            hit = exact_index.get(_digest(row.tobytes()))
            if hit is not None:
                exact.append(index)
                matches[index] = hit
            elif canonical is not None:
                hit = canonical_index.get(_digest(canonical(row)))
                if hit is not None:
                    augmented.append(index)
                    matches[index] = hit
    exact_set = set(exact)
    for index in sorted(matches)[:show]:
        shown.append({"test_example": index, "test_puzzle": puzzle_name(test, index),
                      "train_puzzles": [puzzle_name(train, matches[index])],
                      "kind": "exact" if index in exact_set else "augmented"})
    return StoreLeakage(str(store.path), store.info.task, test.num_examples, train.num_examples, tuple(exact),
                        tuple(augmented), canonical is not None, tuple(shown))

"""Training and evaluation batches from a store split (docs/reference-code.md 2), deterministic given one seed.

:func:`plan_batches` spreads the recipe's global batch over processes and micro-batches (:class:`BatchPlan`).

Training (:class:`TrainLoader`, an infinite iterator): epoch e visits every group once in the order of a random
permutation drawn from ``(seed, e)``; for each visited group one puzzle (augmented version) is drawn uniformly and
all of its examples go into the batch together; when a puzzle has more examples than the batch has room for, a
random subset fills the batch exactly and the rest is dropped, as in the reference. A global batch is always full
(epochs run on, so no batch is dropped at the end of a pass). Every rank builds the same global batch and keeps the
contiguous slice ``[rank * B_local, (rank + 1) * B_local)``.

Differences from the reference, on purpose: every random draw comes from streams derived from the one seed (the
reference draws the within-puzzle subset from a per-worker global RNG, so ranks could disagree); examples of a
complete puzzle keep their stored order (the reference shuffles them; only the rank slice could notice).

Evaluation (:class:`EvalLoader`): every example once in storage order (or a fixed seeded subset of ``limit``
examples), windows of the global batch size, the last one padded with rows whose ``valid`` is False (inputs
``pad_id``, labels -100, identifier 0).
"""

from __future__ import annotations

import atexit
import json
import math
import queue
import sys
import threading
import weakref
from typing import Any, Iterator

import attrs
import numpy as np
import torch

from trm.errors import UserError

IGNORE_LABEL = -100  # what the loss ignores (docs/reference-code.md 1.0: label == ignore_label_id -> -100)


@attrs.frozen
class BatchPlan:
    """How the recipe's global batch is spread over processes and accumulation steps."""

    global_batch: int
    processes: int
    per_device: int
    accumulation: int


def plan_batches(global_batch: int, processes: int, per_device: int | None) -> BatchPlan:
    if global_batch % processes:
        raise UserError(f"train.global_batch_size={global_batch} is not divisible by the {processes} processes")
    local = global_batch // processes
    per_device = per_device or local
    if local % per_device:
        raise UserError(f"train.per_device_batch_size={per_device} does not divide the per-process batch {local}")
    return BatchPlan(global_batch, processes, per_device, local // per_device)



def _local_size(global_batch_size: int, world_size: int, rank: int) -> int:
    if global_batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
        raise UserError(f"bad batch layout: global batch {global_batch_size}, rank {rank} of {world_size}")
    if global_batch_size % world_size:
        raise UserError(f"global batch size {global_batch_size} is not divisible by {world_size} processes")
    return global_batch_size // world_size


def _to_tensors(inputs: np.ndarray, labels: np.ndarray, identifiers: np.ndarray,
                ignore_label_id: int | None) -> dict[str, torch.Tensor]:
    # Conversions in NumPy: small torch ops on CPU pay thread-pool overhead that dominated the loader's time.
    labels = labels.astype(np.int64)
    if ignore_label_id is not None:
        labels[labels == ignore_label_id] = IGNORE_LABEL
    return {
        "inputs": torch.from_numpy(inputs.astype(np.int32)),
        "labels": torch.from_numpy(labels),
        "puzzle_identifiers": torch.from_numpy(identifiers.astype(np.int32)),
    }


class TrainLoader:
    """Infinite training batches of one rank; ``state_dict`` / ``load_state_dict`` resume exactly."""

    def __init__(self, split: Any, *, global_batch_size: int, rank: int = 0, world_size: int = 1, seed: int = 0,
                 ignore_label_id: int | None = 0, prefetch: int = 2):
        self.split = split
        self.prefetch = int(prefetch)  # batches prepared ahead in a thread (0: in the caller's thread)
        self._view: tuple | None = None  # sampler state after the last batch handed out (prefetch runs ahead)
        self.global_batch_size = int(global_batch_size)
        self.local_batch_size = _local_size(self.global_batch_size, world_size, rank)
        self.rank, self.world_size, self.seed = rank, world_size, int(seed)
        self.ignore_label_id = ignore_label_id
        self._group_starts = split.group_indices[:-1]
        self._group_counts = np.diff(split.group_indices)
        self._puzzle_indices = split.puzzle_indices
        self._num_groups = split.num_groups
        if self._num_groups < 1:
            raise UserError(f"split '{getattr(split, 'name', '?')}' has no groups to train on")
        self._epoch_index = 0  # epochs completed
        self._position = 0  # groups of the current epoch already visited
        self._batches = 0
        self._rng = np.random.Generator(np.random.PCG64([self.seed, 1]))  # versions and subsets
        self._orders: dict[int, np.ndarray] = {}

    # ---- state ----------------------------------------------------------------------------------------------

    def _snapshot(self) -> tuple:
        return self._epoch_index, self._position, self._batches, json.dumps(self._rng.bit_generator.state)

    @property
    def epoch(self) -> float:
        """Group visits of the batches handed out so far / number of groups (fractional epochs)."""
        epoch_index, position = self._view[:2] if self._view else (self._epoch_index, self._position)
        return epoch_index + position / self._num_groups

    def state_dict(self) -> dict:
        """Position after the last batch handed out (batches prefetched but not yet taken are not counted)."""
        epoch_index, position, batches, rng = self._view or self._snapshot()
        return {"epoch_index": epoch_index, "position": position, "batches": batches,
                "seed": self.seed, "global_batch_size": self.global_batch_size, "num_groups": self._num_groups,
                "rng": rng}

    def load_state_dict(self, state: dict) -> None:
        for key, mine in (("seed", self.seed), ("global_batch_size", self.global_batch_size),
                          ("num_groups", self._num_groups)):
            if state[key] != mine:
                raise UserError(f"cannot resume the data loader: saved {key} {state[key]} differs from {mine}")
        self._epoch_index, self._position, self._batches = state["epoch_index"], state["position"], state["batches"]
        self._rng.bit_generator.state = json.loads(state["rng"])
        self._orders.clear()
        self._view = None

    # ---- sampling -------------------------------------------------------------------------------------------

    def _order(self, epoch_index: int) -> np.ndarray:
        """The group order of one epoch: a permutation drawn from (seed, epoch), so it never needs saving."""
        order = self._orders.get(epoch_index)
        if order is None:
            order = np.random.Generator(np.random.PCG64([self.seed, 0, epoch_index])).permutation(self._num_groups)
            self._orders = {k: v for k, v in self._orders.items() if k >= epoch_index - 1}
            self._orders[epoch_index] = order
        return order

    def _next_groups(self, count: int) -> np.ndarray:
        """The next ``count`` groups in visiting order (may run into later epochs), without advancing."""
        parts, epoch, position, needed = [], self._epoch_index, self._position, count
        while needed > 0:
            order = self._order(epoch)
            take = order[position:position + needed]
            parts.append(take)
            needed -= len(take)
            epoch, position = epoch + 1, 0
        return np.concatenate(parts)

    def _advance(self, groups_used: int) -> None:
        total = self._position + groups_used
        self._epoch_index += total // self._num_groups
        self._position = total % self._num_groups

    def global_batch_rows(self) -> np.ndarray:
        """Example rows of the next global batch (advances the loader)."""
        size = self.global_batch_size
        groups = self._next_groups(size)  # every puzzle has >= 1 example, so `size` groups always suffice
        uniform = self._rng.random(size)
        puzzles = self._group_starts[groups] + (uniform * self._group_counts[groups]).astype(np.int64)
        starts = self._puzzle_indices[puzzles]
        counts = self._puzzle_indices[puzzles + 1] - starts
        filled = np.cumsum(counts)
        complete = int(np.searchsorted(filled, size, side="right"))  # puzzles that fit whole
        used = filled[complete - 1] if complete else 0
        rows = _ranges(starts[:complete], counts[:complete])
        if used < size:  # the next puzzle fills the rest with a random subset; its other examples are dropped
            subset = self._rng.choice(int(counts[complete]), size=size - int(used), replace=False)
            rows = np.concatenate([rows, starts[complete] + np.sort(subset)])
            complete += 1
        self._advance(complete)
        self._batches += 1
        return rows

    def _make_batch(self) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], tuple]:
        """NumPy arrays of the next local batch and the sampler state after it (no torch: may run in a thread)."""
        low = self.rank * self.local_batch_size
        rows = self.global_batch_rows()[low:low + self.local_batch_size]
        puzzles = np.searchsorted(self._puzzle_indices, rows, side="right") - 1
        arrays = (self.split.inputs[rows], self.split.labels[rows], self.split.puzzle_identifiers[puzzles])
        return arrays, self._snapshot()

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        """This rank's batches, forever. With ``prefetch`` a thread reads ahead (chunk decoding overlaps training);
        call :meth:`load_state_dict` before iterating, not during."""
        if self.prefetch <= 0:
            while True:
                arrays, self._view = self._make_batch()
                yield _to_tensors(*arrays, self.ignore_label_id)
        ready: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def produce() -> None:
            try:
                while not stop.is_set():
                    item = self._make_batch()
                    while not stop.is_set():
                        try:
                            ready.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
            except BaseException as exc:  # hand the error to the consumer
                ready.put(exc)

        worker = threading.Thread(target=produce, name="trm-train-loader", daemon=True)
        _PRODUCERS[worker] = stop
        worker.start()
        try:
            while True:
                item = ready.get()
                if isinstance(item, BaseException):
                    raise item
                arrays, self._view = item
                yield _to_tensors(*arrays, self.ignore_label_id)
        finally:
            stop.set()
            if not sys.is_finalizing():
                worker.join(timeout=10)


# Live prefetch threads. Stopped and joined at exit: a daemon thread still decoding when the interpreter finalises
# can abort the process ("terminate called without an active exception").
_PRODUCERS: "weakref.WeakKeyDictionary[threading.Thread, threading.Event]" = weakref.WeakKeyDictionary()


@atexit.register
def _stop_producers() -> None:
    for worker, stop in list(_PRODUCERS.items()):
        stop.set()
        worker.join(timeout=10)


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + c)`` for each pair, vectorised."""
    if len(counts) == 0:
        return np.zeros(0, dtype=np.int64)
    if (counts == 1).all():
        return starts.astype(np.int64)
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return offsets + np.arange(int(counts.sum()), dtype=np.int64)


class EvalLoader:
    """One pass over a split (or a seeded subset of ``limit`` examples); the last batch is padded."""

    def __init__(self, split: Any, *, global_batch_size: int, rank: int = 0, world_size: int = 1,
                 limit: int | None = None, seed: int = 0, ignore_label_id: int | None = 0, pad_id: int = 0):
        self.split = split
        self.global_batch_size = int(global_batch_size)
        self.local_batch_size = _local_size(self.global_batch_size, world_size, rank)
        self.rank, self.world_size = rank, world_size
        self.ignore_label_id, self.pad_id = ignore_label_id, pad_id
        total = split.num_examples
        if limit is not None and limit < 1:
            raise UserError(f"eval limit must be a positive number of examples, got {limit}")
        if limit is None or limit >= total:
            self.rows = np.arange(total, dtype=np.int64)
        else:  # a fixed subset, sorted so reads stay sequential
            rng = np.random.Generator(np.random.PCG64([int(seed), 2]))
            self.rows = np.sort(rng.choice(total, size=int(limit), replace=False))

    def __len__(self) -> int:
        return math.ceil(len(self.rows) / self.global_batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        split, size = self.split, self.local_batch_size
        for number in range(len(self)):
            low = number * self.global_batch_size + self.rank * size
            rows = self.rows[low:low + size]
            puzzles = np.searchsorted(split.puzzle_indices, rows, side="right") - 1
            batch = _to_tensors(split.inputs[rows], split.labels[rows], split.puzzle_identifiers[puzzles],
                                self.ignore_label_id)
            valid = torch.zeros(size, dtype=torch.bool)
            valid[:len(rows)] = True
            if len(rows) < size:
                pad = size - len(rows)
                seq_len = split.inputs.shape[1]
                batch["inputs"] = torch.cat([batch["inputs"], torch.full((pad, seq_len), self.pad_id, dtype=torch.int32)])
                batch["labels"] = torch.cat([batch["labels"], torch.full((pad, seq_len), IGNORE_LABEL, dtype=torch.int64)])
                batch["puzzle_identifiers"] = torch.cat([batch["puzzle_identifiers"], torch.zeros(pad, dtype=torch.int32)])
            batch["valid"] = valid
            yield batch

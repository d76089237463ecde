"""Evaluation: run every test example through the model, feed the task's evaluators, report flat metrics.

Each example starts from the fixed init vectors and takes supervision steps until its **stop rule** says stop
(docs/engine.md, "Evaluation and adaptive halting"):

* ``fixed``: exactly ``max_steps`` supervision steps for every example (what the paper's numbers used; more than
  the trained maximum is test-time depth);
* ``adaptive``: an example stops at the first step at which the halting strategy says halt (``act_q``:
  ``q_halt > 0``; ``act_q_continue``: ``q_halt > q_continue``; the logit of :meth:`halt_logit` compared with
  ``logit(threshold)`` when a confidence threshold is given), and at ``max_steps`` at the latest.

**Continuous batching.** The device always works on one batch of fixed shape (so a compiled model never
recompiles). When an example stops, its slot takes the next unevaluated example at the next supervision step
(the engine restarts a row whose carry says ``halted``), until the split is exhausted. Each row's arithmetic
depends on its own example only, so an example's prediction and step count are those of evaluating it alone.
The one host synchronisation per step is the stop mask (to know which slots to refill). When the split is
exhausted, an uncompiled model (the CPU, or train.compile=off) continues with only the busy rows, so the last
examples running to the cap do not cost a full batch per step; a compiled model keeps its shape.

Evaluators receive finished examples in the order of the split (not the order in which they finished), in chunks
of at most one global batch: ``inputs``, ``labels``, ``puzzle_identifiers`` and ``valid`` (all true; kept for
evaluators written when batches were padded), and outputs ``preds`` (the prediction at the example's stopping step),
``q_halt`` (its halting logit there) and ``steps`` (steps it used), plus ``probabilities`` / ``confidences`` when an
evaluator's spec asks for them (``EvaluatorSpec.wants``; computed only then). With several processes each takes every
W-th example; finished examples are exchanged every few steps so that every process feeds its evaluators the same
examples in the same order as one process would.
"""

from __future__ import annotations

import math
import time
import weakref
from pathlib import Path
from typing import Any, Callable

import attrs
import numpy as np
import torch

from trm import distributed
from trm.errors import PluginError, UserError
from trm.plugins import get_host, registry
from trm.progress import progress_bar
from trm.recipe import PluginSection, Recipe
from trm.store import Store
from trm.structuring import structure_options
from trm.types import OPTIONAL_OUTPUTS, EvalContext, Evaluator, HaltingStrategy

HALTING_MODES = ("adaptive", "fixed")


def build_evaluators(recipe: Recipe, store: Store, output_dir: Path | None) -> list[tuple[str, Any]]:
    """(name, evaluator) for the recipe's evaluators, or the task's defaults when the recipe names none."""
    sections = recipe.eval.evaluators
    if sections is None:
        task = registry("tasks").get(recipe.task.name)
        sections = [PluginSection(name) for name in task.default_evaluators]
    built = []
    for section in sections:
        spec = registry("evaluators").get(section.name)
        options = section.options
        if isinstance(options, dict):
            options = structure_options(spec.options_class, options, f"$.eval.evaluators.{section.name}.options")
        context = EvalContext(store_info=store.info, split=recipe.eval.split, output_dir=output_dir,
                              store_path=Path(recipe.data.store))
        evaluator = spec.build(options, context)
        if not isinstance(evaluator, Evaluator):
            owner = registry("evaluators").owner(section.name)
            raise PluginError(f"plugin {get_host().describe(owner)}: evaluator '{section.name}': build() returned "
                              f"{type(evaluator).__name__}, expected an Evaluator (trm.types: update, compute, write)")
        built.append((section.name, evaluator))
    return built


@attrs.frozen
class StopRule:
    """When an example's supervision steps end at evaluation (see the module docstring)."""

    mode: str = attrs.field(default="adaptive", validator=attrs.validators.in_(HALTING_MODES))
    max_steps: int = attrs.field(default=16, validator=attrs.validators.ge(1))  # the cap (adaptive) or the depth
    threshold: float | None = None  # halting confidence in (0, 1); None: the strategy's own rule (0.5)

    def __attrs_post_init__(self) -> None:
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise UserError(f"halt threshold must be in (0, 1) (got {self.threshold})")

    def stop(self, halting: HaltingStrategy, steps: torch.Tensor, q_halt: torch.Tensor, q_continue: torch.Tensor) -> torch.Tensor:
        """Bool [B]: the rows that take no further step."""
        stop = steps >= self.max_steps
        if self.mode == "adaptive":
            cut = 0.0 if self.threshold is None else math.log(self.threshold / (1.0 - self.threshold))
            stop = stop | (halting.halt_logit(q_halt, q_continue) > cut)
        return stop


def eval_settings(section: Any, halting: str | None, max_steps: int | None, halt_threshold: float | None
                  ) -> tuple[str, int | None, float | None]:
    """(halting, max_steps, halt_threshold): each one given, else the recipe's ``eval`` section's (``section`` may be
    None, for a model built in Python), so ``trm eval``, ``trm solve`` and the Python API stop rows alike. A fixed
    depth has no threshold: the recipe's is for adaptive halting, so it comes back None."""
    halting = halting or getattr(section, "halting", None) or "adaptive"
    threshold = halt_threshold if halt_threshold is not None else getattr(section, "halt_threshold", None)
    return (halting, max_steps if max_steps is not None else getattr(section, "max_steps", None),
            None if halting == "fixed" else threshold)


def describe_stop_rule(halting: str, cap: int, threshold: float | None) -> str:
    """'adaptive halting (halt when confidence > 0.9), at most 16 steps' or 'fixed 16 steps': how rows stop, in
    the words of trm eval's first line and trm run's plan."""
    steps = f"{cap} step{'s' if cap != 1 else ''}"
    if halting == "fixed":
        return f"fixed {steps}"
    # None: the strategy's own rule (q_halt > 0 for act_q, q_halt > q_continue for act_q_continue)
    when = "by the halting strategy's rule" if threshold is None else f"when confidence > {threshold:g}"
    return f"adaptive halting (halt {when}), at most {steps}"


def stop_rule_for(halting: HaltingStrategy, mode: str | None, max_steps: int | None, threshold: float | None = None) -> StopRule:
    """The rule of a run's evaluation: ``mode`` defaults to adaptive, ``max_steps`` to the trained maximum."""
    mode = mode or "adaptive"
    if mode not in HALTING_MODES:
        raise UserError(f"halting mode must be one of {', '.join(HALTING_MODES)} (got {mode!r})")
    if mode == "adaptive" and not hasattr(halting, "halt_logit"):
        # A strategy written before adaptive evaluation existed: it has no halting logit to compare.
        print(f"note: halting strategy {type(halting).__name__} has no halt_logit(); evaluating with fixed depth",
              flush=True)
        mode = "fixed"
    return StopRule(mode, int(max_steps or halting.max_steps), threshold)


@attrs.frozen
class MemorySplit:
    """Examples held in memory, evaluated like a store split (one example per puzzle): the Python API's
    ``solve`` and tools that evaluate the user's own puzzles use it."""

    inputs: np.ndarray  # [N, L] tokens
    labels: np.ndarray  # [N, L]; -100 (or the store's ignore id) where nothing is supervised
    puzzle_identifiers: np.ndarray  # [N]

    @property
    def num_examples(self) -> int:
        return len(self.inputs)

    @property
    def puzzle_indices(self) -> np.ndarray:
        return np.arange(len(self.inputs) + 1)


def eval_rows(split: Any, limit: int | None, seed: int) -> np.ndarray:
    """Row indices an evaluation covers: all of the split, or a seeded fixed subset of ``limit`` (sorted)."""
    total = split.num_examples
    if limit is not None and limit < 1:
        raise UserError(f"eval limit must be a positive number of examples, got {limit}")
    if limit is None or limit >= total:
        return np.arange(total, dtype=np.int64)
    rng = np.random.Generator(np.random.PCG64([int(seed), 2]))  # the same subset as every earlier trm version
    return np.sort(rng.choice(total, size=int(limit), replace=False))


class _RowReader:
    """Examples of one split by position, read ahead in blocks (zarr chunk reads stay sequential)."""

    def __init__(self, split: Any, rows: np.ndarray, ignore_label_id: int | None, block: int):
        self.split, self.rows, self.ignore_label_id, self.block = split, rows, ignore_label_id, max(1, block)
        self._start, self._data = 0, None

    def read(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(inputs int32 [k, L], labels int64 [k, L] with -100 where ignored, identifiers int32 [k])."""
        out = []
        for position in positions:  # positions ascend; a block covers many consecutive calls
            if self._data is None or not self._start <= position < self._start + len(self._data[0]):
                self._load(int(position))
            offset = int(position) - self._start
            out.append((self._data[0][offset], self._data[1][offset], self._data[2][offset]))
        return (np.stack([o[0] for o in out]), np.stack([o[1] for o in out]), np.array([o[2] for o in out]))

    def _load(self, position: int) -> None:
        rows = self.rows[position:position + self.block]
        split = self.split
        puzzles = np.searchsorted(split.puzzle_indices, rows, side="right") - 1
        labels = np.asarray(split.labels[rows]).astype(np.int64)
        if self.ignore_label_id is not None:
            labels[labels == self.ignore_label_id] = -100
        self._start = position
        self._data = (np.asarray(split.inputs[rows]).astype(np.int32), labels,
                      np.asarray(split.puzzle_identifiers[puzzles]).astype(np.int32))


class _Finished:
    """Finished examples waiting to be handed to the evaluators in split order (chunks as they arrived)."""

    def __init__(self) -> None:
        self.chunks: list[tuple[np.ndarray, tuple[np.ndarray, ...]]] = []

    def add(self, positions: np.ndarray, parts: tuple[np.ndarray, ...]) -> None:
        if len(positions):
            self.chunks.append((positions, parts))

    def take_below(self, boundary: float) -> tuple[np.ndarray, tuple[np.ndarray, ...]] | None:
        """Everything with position < boundary, sorted by position; the rest stays."""
        taken, kept = [], []
        for positions, parts in self.chunks:
            below = positions < boundary
            if below.all():
                taken.append((positions, parts))
            elif below.any():
                taken.append((positions[below], tuple(p[below] for p in parts)))
                kept.append((positions[~below], tuple(p[~below] for p in parts)))
            else:
                kept.append((positions, parts))
        self.chunks = kept
        if not taken:
            return None
        positions = np.concatenate([t[0] for t in taken])
        parts = tuple(np.concatenate([t[1][i] for t in taken]) for i in range(len(taken[0][1])))
        order = np.argsort(positions, kind="stable")
        return positions[order], tuple(p[order] for p in parts)


def is_compiled(model: Any) -> bool:
    """Whether ``model`` (or the model a plain wrapper such as ReplacedIdentifiers holds) is torch.compile'd."""
    while model is not None:
        if isinstance(model, torch._dynamo.eval_frame.OptimizedModule):
            return True
        # A plain Python wrapper keeps its model in __dict__; an nn.Module keeps submodules in _modules instead.
        model = None if isinstance(model, torch.nn.Module) else vars(model).get("model")
    return False


# (batch rows, step cap) already compiled, per model: the first evaluation of a shape warms it up untimed.
_WARM: "weakref.WeakKeyDictionary[Any, set[tuple[int, int | None]]]" = weakref.WeakKeyDictionary()


def _warm_up(stream: "_Stream") -> None:
    """Compile a compiled model's evaluation graph before the clock starts, so puzzles/s is the steady rate.

    One supervision step on the stream's all-idle batch (its result is dropped: the step is a pure function of
    the carry and the batch); done once per model, batch size and step cap.
    """
    model = stream.model
    key = (stream.size, stream.rule.max_steps)
    done = _WARM.setdefault(model, set())
    if key in done:
        return
    model(stream.carry, stream.batch, max_steps=stream.rule.max_steps)
    done.add(key)


class _Stream:
    """One process's continuous batch: slots, their examples, and one supervision step for all of them."""

    def __init__(self, model: Any, reader: _RowReader, positions: np.ndarray, batch_size: int, rule: StopRule,
                 device: torch.device, wants: tuple[str, ...] = ()):
        self.model, self.reader, self.positions, self.rule, self.device = model, reader, positions, rule, device
        self.wants = wants
        self.size = batch_size
        # Once the split is exhausted the last examples may run to the cap in a nearly empty batch. An uncompiled
        # model then continues with only the busy rows (a smaller batch costs less); a compiled one keeps its
        # shape, since every new shape would compile again.
        self.compact_tail = not is_compiled(model)
        self.next = 0  # index into positions of the next example to start
        self.slot_position = np.full(batch_size, -1, dtype=np.int64)  # -1: idle slot
        seq_len = model.seq_len
        self.host_inputs = np.zeros((batch_size, seq_len), dtype=np.int32)
        self.host_labels = np.full((batch_size, seq_len), -100, dtype=np.int64)
        self.host_ids = np.zeros(batch_size, dtype=np.int32)
        self.batch = {"inputs": torch.zeros(batch_size, seq_len, dtype=torch.int32, device=device),
                      "labels": torch.full((batch_size, seq_len), -100, dtype=torch.int64, device=device),
                      "puzzle_identifiers": torch.zeros(batch_size, dtype=torch.int32, device=device)}
        self.carry = model.initial_carry(self.batch)  # every row halted: the first step fills all of them

    @property
    def finished(self) -> bool:
        return self.next >= len(self.positions) and not (self.slot_position >= 0).any()

    @property
    def watermark(self) -> float:
        """Every example of this stream before this position has finished."""
        active = self.slot_position[self.slot_position >= 0]
        if len(active):
            return float(active.min())
        return float(self.positions[self.next]) if self.next < len(self.positions) else math.inf

    def _refill(self, free: np.ndarray) -> None:
        count = min(len(free), len(self.positions) - self.next)
        if count <= 0:
            return
        slots = free[:count]
        positions = self.positions[self.next:self.next + count]
        self.next += count
        inputs, labels, ids = self.reader.read(positions)
        self.slot_position[slots] = positions
        self.host_inputs[slots], self.host_labels[slots], self.host_ids[slots] = inputs, labels, ids
        index = torch.from_numpy(slots).to(self.device)
        self.batch["inputs"].index_copy_(0, index, torch.from_numpy(inputs).to(self.device))
        self.batch["labels"].index_copy_(0, index, torch.from_numpy(labels).to(self.device))
        self.batch["puzzle_identifiers"].index_copy_(0, index, torch.from_numpy(ids).to(self.device))

    def _keep_rows(self, rows: np.ndarray) -> None:
        """Continue with these slots only (their carry, batch rows and bookkeeping), in their order."""
        index = torch.from_numpy(rows).to(self.device)
        self.carry = type(self.carry)(*(tensor.index_select(0, index) for tensor in self.carry))
        self.batch = {key: value.index_select(0, index) for key, value in self.batch.items()}
        self.slot_position = self.slot_position[rows]
        self.host_inputs, self.host_labels, self.host_ids = (self.host_inputs[rows], self.host_labels[rows],
                                                            self.host_ids[rows])
        self.size = len(rows)

    def step(self) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """Refill free slots, take one supervision step; (positions, parts) of the examples that finished."""
        self._refill(np.flatnonzero(self.slot_position < 0))
        busy = np.flatnonzero(self.slot_position >= 0)
        if self.compact_tail and self.next >= len(self.positions) and len(busy) <= self.size // 2:
            self._keep_rows(busy)
        carry, out = self.model(self.carry, self.batch, max_steps=self.rule.max_steps)
        stop = self.rule.stop(self.model.halting, out["steps"], out["q_halt"], out["q_continue"])
        idle = torch.from_numpy(self.slot_position < 0).to(self.device)
        # Stopped and idle rows are marked halted: the engine restarts them from the next batch row.
        self.carry = carry._replace(halted=stop | idle)
        done = np.flatnonzero(stop.cpu().numpy() & (self.slot_position >= 0))
        if not len(done):
            return np.zeros(0, dtype=np.int64), ()
        index = torch.from_numpy(done).to(self.device)
        logits = out["logits"].index_select(0, index)
        preds = logits.argmax(-1).cpu().numpy()
        extra = ()
        if self.wants:  # only when an evaluator asked: [k, L, V] per finished example
            probabilities = logits.float().softmax(-1)
            extra = tuple((probabilities if name == "probabilities" else probabilities.amax(-1)).cpu().numpy()
                          for name in self.wants)
        q_halt = out["q_halt"].index_select(0, index).float().cpu().numpy()
        steps = out["steps"].index_select(0, index).to(torch.int32).cpu().numpy()
        positions = self.slot_position[done].copy()
        parts = (self.host_inputs[done].copy(), self.host_labels[done].copy(), self.host_ids[done].copy(),
                 preds.astype(np.int64), q_halt, steps) + extra
        self.slot_position[done] = -1
        return positions, parts


def _exchange(accelerator: Any, payload: Any) -> list[Any]:
    if accelerator is None or accelerator.num_processes == 1:
        return [payload]
    return distributed.all_gather_objects(payload)


@torch.no_grad()
def evaluate(
    model: Any,
    split: Any,
    evaluators: list[tuple[str, Any]],
    *,
    accelerator: Any,
    global_batch_size: int,
    max_steps: int | None = None,
    halting: str | None = None,
    halt_threshold: float | None = None,
    limit: int | None = None,
    seed: int = 0,
    ignore_label_id: int | None = 0,
    pad_id: int = 0,
    show_progress: bool = True,
    sync_every: int = 4,
    on_examples: Callable[[dict[str, np.ndarray], dict[str, np.ndarray]], None] | None = None,
    device: torch.device | None = None,
    wants: tuple[str, ...] = (),
) -> dict[str, float]:
    """One pass over ``split``; returns ``{"<evaluator>/<metric>": value, "eval/mean_steps": ...}``.

    ``halting`` (adaptive by default) and ``max_steps`` (default: the trained maximum) make the :class:`StopRule`;
    ``on_examples`` sees every chunk handed to the evaluators (used by tools that keep per-example results).
    ``pad_id`` is unused since batches are no longer padded; it is kept for callers of the earlier signature.
    ``wants`` adds optional outputs (``probabilities``, ``confidences``) besides those the evaluators' specs ask for.
    """
    rank = accelerator.process_index if accelerator is not None else 0
    world = accelerator.num_processes if accelerator is not None else 1
    device = device or (accelerator.device if accelerator is not None else torch.device("cpu"))
    rule = stop_rule_for(model.halting, halting, max_steps, halt_threshold)
    wants = wanted_outputs(evaluators, wants)
    rows = eval_rows(split, limit, seed)
    local_batch = global_batch_size // world + (1 if rank < global_batch_size % world else 0)
    if local_batch < 1:
        raise UserError(f"evaluation batch {global_batch_size} is smaller than the {world} processes")
    mine = np.arange(rank, len(rows), world, dtype=np.int64)  # positions in `rows` this process evaluates
    reader = _RowReader(split, rows, ignore_label_id, block=max(local_batch, 256))
    was_training = model.training
    model.eval()
    finished = _Finished()
    all_steps: list[np.ndarray] = []
    bar = progress_bar(total=len(rows), desc="eval", disable=not show_progress or rank != 0, leave=False, unit="ex")

    def hand_over(chunk: tuple[np.ndarray, tuple[np.ndarray, ...]] | None) -> None:
        if chunk is None:
            return
        _, (inputs, labels, ids, preds, q_halt, steps, *extra) = chunk
        for low in range(0, len(preds), global_batch_size):
            part = slice(low, low + global_batch_size)
            arrays = {"inputs": inputs[part], "labels": labels[part], "puzzle_identifiers": ids[part],
                      "valid": np.ones(len(preds[part]), dtype=bool)}
            outputs = {"preds": preds[part], "q_halt": q_halt[part], "steps": steps[part]}
            outputs.update((name, values[part]) for name, values in zip(wants, extra))
            for _, evaluator in evaluators:
                evaluator.update(arrays, outputs)
            if on_examples is not None:
                on_examples(arrays, outputs)
        all_steps.append(steps)
        bar.update(len(preds))

    try:
        stream = _Stream(model, reader, mine, local_batch, rule, device, wants) if len(mine) else None
        if stream is not None and not stream.compact_tail:
            _warm_up(stream)
        started = time.perf_counter()
        outbox_positions: list[np.ndarray] = []
        outbox_parts: list[tuple[np.ndarray, ...]] = []
        tick = 0
        while True:
            if stream is not None and not stream.finished:
                positions, parts = stream.step()
                if len(positions):
                    outbox_positions.append(positions)
                    outbox_parts.append(parts)
            tick += 1
            if world > 1 and tick % sync_every:
                continue
            local_done = stream is None or stream.finished
            payload = (outbox_positions, outbox_parts, stream.watermark if stream is not None else math.inf, local_done)
            outbox_positions, outbox_parts = [], []
            everyone = _exchange(accelerator, payload)
            for positions_list, parts_list, _, _ in everyone:
                for positions, parts in zip(positions_list, parts_list):
                    finished.add(positions, parts)
            boundary = min(item[2] for item in everyone)
            hand_over(finished.take_below(boundary))
            if all(item[3] for item in everyone):
                hand_over(finished.take_below(math.inf))
                break
    finally:
        bar.close()
        model.train(was_training)
    seconds = time.perf_counter() - started
    metrics: dict[str, float] = {}
    for name, evaluator in evaluators:
        for key, value in evaluator.compute().items():
            metrics[f"{name}/{key}"] = float(value)
    steps = np.concatenate(all_steps) if all_steps else np.zeros(0, dtype=np.int32)
    metrics.update(step_statistics(steps, seconds))
    return metrics


def wanted_outputs(evaluators: list[tuple[str, Any]], extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The optional outputs (``EvaluatorSpec.wants``) of the registered evaluators among ``evaluators``, in order."""
    specs = registry("evaluators")
    asked = set(extra)
    for name, _ in evaluators:
        if name in specs:
            asked.update(getattr(specs.get(name), "wants", ()))
    unknown = sorted(asked - set(OPTIONAL_OUTPUTS))
    if unknown:
        raise UserError(f"unknown evaluation outputs {unknown}; expected some of {', '.join(OPTIONAL_OUTPUTS)}")
    return tuple(name for name in OPTIONAL_OUTPUTS if name in asked)


def step_statistics(steps: np.ndarray, seconds: float) -> dict[str, float]:
    """``eval/*`` metrics of one pass: examples, puzzles/s, mean, p90 and largest supervision-step count."""
    count = len(steps)
    return {
        "eval/examples": float(count),
        "eval/puzzles_per_s": count / seconds if seconds > 0 else math.nan,
        "eval/mean_steps": float(steps.mean()) if count else math.nan,
        # Nearest-rank percentile: a step count some example actually used.
        "eval/p90_steps": float(np.percentile(steps, 90, method="inverted_cdf")) if count else math.nan,
        "eval/max_steps": float(steps.max()) if count else math.nan,
    }


def format_table(metrics: dict[str, float]) -> str:
    """A small two-column table of metrics for the terminal."""
    width = max((len(key) for key in metrics), default=6)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  ------"]
    for key, value in metrics.items():
        shown = f"{value:.4f}" if isinstance(value, float) and not float(value).is_integer() else f"{value:g}"
        lines.append(f"{key:<{width}}  {shown}")
    return "\n".join(lines)

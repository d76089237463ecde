"""The ``arc`` builder: Kaggle JSON -> routed, augmented, tokenised splits written through trm's DatasetWriter.

docs/reference-code.md 1.3. Two phases, as the reference:

1. **Plan** (:func:`plan_build`): read the subsets in order, shuffle each subset's tasks (seeded), route pairs to
   splits and choose each task's augmented versions. Routing: a task of the test subset sends its demonstration
   pairs to train (option ``eval_demos_in_train``) and its test pairs to test; a task of any other subset
   (``training``, ``training2``, ``concept``) sends demos *and* test pairs to train. A hidden subset (no answers)
   is routed like the test subset with the dummy output [[0]]. The plan alone gives the store's statistics
   (:func:`plan_statistics`), which the slow test compares with docs/reference-code.md's table without writing anything.
2. **Write** (:func:`write_plan`): per task, every version's examples on 30x30 canvases (training examples
   translated), one group per task per split; identifiers are assigned in write order, train split first, so the
   ids follow the reference's ordering.

Randomness: one seeded generator shuffles task order; each task draws its augmentations and translations from
generators keyed by (seed, subset, task id), so a task's versions do not depend on which other tasks are built.
The reference's exact random stream is not reproduced (not needed: the statistics agree, see docs/tasks/arc.md).
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path
from typing import Any, Callable, Iterable

import attrs
import numpy as np

from trm.errors import UserError
from trm_arc.augment import choose_versions
from trm_arc.canvas import SEQ_LEN, TOKEN_NAMES, VOCAB_SIZE
from trm_arc.kaggle import DUMMY_OUTPUT, ArcTask, check_subsets, load_subset
from trm_arc.layout import TaskLayout
from trm_arc.leakage import LeakageReport, check_leakage
from trm_arc.options import ArcOptions
from trm_arc.transforms import version_name

Pair = tuple[np.ndarray, np.ndarray]
BUILDER_VERSION = "1"


@attrs.frozen
class PlannedTask:
    """One task routed and augmented: its pairs per split and its accepted versions (original first)."""

    name: str  # the id used in identifier names (the task id, or '<id>@<subset>' for a clashing training copy)
    task: ArcTask
    train_pairs: tuple[Pair, ...]
    test_pairs: tuple[Pair, ...]
    tids: np.ndarray  # [V] dihedral id of each version
    colour_maps: np.ndarray  # [V, 10]
    stream_key: int  # keys this task's random generators

    def version_names(self) -> list[str]:
        return [self.name] + [version_name(self.name, int(t), m) for t, m in zip(self.tids[1:], self.colour_maps[1:])]


@attrs.frozen
class BuildPlan:
    tasks: tuple[PlannedTask, ...]  # in build order (subset order, shuffled within each subset)
    test_tasks: tuple[ArcTask, ...]  # raw tasks of the test (and hidden) subset, in build order
    leakage: LeakageReport
    num_aug: int

    @property
    def not_full(self) -> list[str]:
        return [t.name for t in self.tasks if len(t.tids) < self.num_aug + 1]


def _say(writer: Any, line: str) -> None:
    """A message for the person running the build, printed without breaking the progress bar."""
    log = getattr(writer, "log", None)
    if callable(log):
        log(line)
        return
    from tqdm.auto import tqdm

    tqdm.write(line, file=sys.stderr)


def _identity_progress(iterable: Iterable, *, total: int | None = None, desc: str = "") -> Iterable:
    return iterable


def _stream_key(subset: str, task_id: str) -> int:
    return zlib.crc32(f"{subset}/{task_id}".encode())


def load_tasks(options: ArcOptions) -> list[tuple[str, ArcTask]]:
    """(role, task) in build order; role is 'train', 'test' or 'hidden'. Applies task_ids / max_tasks / shuffle."""
    source = Path(options.source)
    if not options.source or not source.is_dir():
        raise UserError(f"arc: option source={options.source!r} is not a directory (expected the folder holding "
                        f"{options.file_prefix}_<subset>_challenges.json files)")
    if not options.subsets:
        raise UserError("arc: option subsets is empty (expected e.g. [training, evaluation, concept])")
    if len(set(options.subsets)) != len(options.subsets):
        raise UserError(f"arc: option subsets={options.subsets} names a subset twice")
    check_subsets(source, [s for s in (*options.subsets, options.test_subset, options.hidden_test_subset) if s],
                  options.file_prefix)
    if options.test_subset is not None and options.test_subset not in options.subsets:
        raise UserError(f"arc: test_subset={options.test_subset!r} must be one of subsets={options.subsets}")
    if options.hidden_test_subset is not None and options.hidden_test_subset in options.subsets:
        raise UserError(f"arc: hidden_test_subset={options.hidden_test_subset!r} must not also be in subsets")
    if options.num_aug < 0 or options.retries_factor < 1:
        raise UserError(f"arc: num_aug must be >= 0 and retries_factor >= 1, got {options.num_aug}, "
                        f"{options.retries_factor}")
    order = list(options.subsets) + ([options.hidden_test_subset] if options.hidden_test_subset else [])
    shuffle_rng = np.random.default_rng([options.seed, 0])
    wanted = set(options.task_ids) if options.task_ids is not None else None
    found: set[str] = set()
    loaded: list[tuple[str, ArcTask]] = []
    for subset in order:
        role = "test" if subset == options.test_subset else "hidden" if subset == options.hidden_test_subset else \
            "train"
        tasks = load_subset(source, subset, prefix=options.file_prefix, solutions_required=role != "hidden")
        ids = sorted(tasks)
        if wanted is not None:
            ids = [i for i in ids if i in wanted]
            found.update(ids)
        if options.max_tasks is not None:
            ids = ids[:options.max_tasks]
        ids = [ids[k] for k in shuffle_rng.permutation(len(ids))]
        loaded += [(role, tasks[i]) for i in ids]
    if wanted is not None and wanted - found:
        raise UserError(f"arc: task_ids not found in subsets {order}: {', '.join(sorted(wanted - found))}")
    return loaded


def _route(role: str, task: ArcTask, options: ArcOptions) -> tuple[tuple[Pair, ...], tuple[Pair, ...]]:
    """(train pairs, test pairs) of one task (docs/reference-code.md 1.3, 'How pairs are routed to splits')."""
    if role == "train":
        return task.train + tuple((i, o) for i, o in task.test), ()
    demos = task.train if options.eval_demos_in_train else ()
    return demos, tuple((i, DUMMY_OUTPUT if o is None else o) for i, o in task.test)


def plan_build(options: ArcOptions, progress: Callable[..., Iterable] | None = None) -> BuildPlan:
    """Load, route, check leakage and choose every task's versions; nothing is written."""
    progress = progress or _identity_progress
    loaded = load_tasks(options)
    held_out = [task for role, task in loaded if role != "train"]
    held_ids = [t.task_id for t in held_out]
    if len(set(held_ids)) != len(held_ids):
        raise UserError("arc: the test subset and hidden_test_subset share task ids; they must be distinct")
    used = set(held_ids)
    planned: list[PlannedTask] = []
    training_pairs: list[tuple[str, str, tuple[Pair, ...]]] = []
    for role, task in progress(loaded, total=len(loaded), desc="arc: augment"):
        name = task.task_id
        if role == "train":
            if name in used:  # e.g. training2 holds ARC-1 evaluation ids: keep both, distinctly named
                name = f"{task.task_id}@{task.subset}"
            used.add(name)
        train_pairs, test_pairs = _route(role, task, options)
        if train_pairs:
            training_pairs.append((task.subset, task.task_id, train_pairs))
        key = _stream_key(task.subset, task.task_id)
        tids, maps = choose_versions(train_pairs + test_pairs, num_aug=options.num_aug,
                                     retries_factor=options.retries_factor,
                                     rng=np.random.default_rng([options.seed, 1, key]))
        planned.append(PlannedTask(name, task, train_pairs, test_pairs, tids, maps, key))
    leakage = check_leakage(training_pairs, held_out)
    return BuildPlan(tuple(planned), tuple(held_out), leakage, options.num_aug)


def plan_statistics(plan: BuildPlan) -> dict[str, Any]:
    """The store's sizes implied by a plan (the quantities of docs/reference-code.md 1.3's statistics table)."""
    train = [t for t in plan.tasks if t.train_pairs]
    test = [t for t in plan.tasks if t.test_pairs]
    train_puzzles = sum(len(t.tids) for t in train)
    train_examples = sum(len(t.tids) * len(t.train_pairs) for t in train)
    test_puzzles = sum(len(t.tids) for t in test)
    test_examples = sum(len(t.tids) * len(t.test_pairs) for t in test)
    names = train_puzzles + sum(len(t.tids) for t in test if not t.train_pairs)
    return {
        "tasks": len(plan.tasks),
        "tasks_not_full": len(plan.not_full),
        "train_groups": len(train),
        "train_puzzles": train_puzzles,
        "train_examples": train_examples,
        "train_mean_puzzle_examples": train_examples / train_puzzles if train_puzzles else 0.0,
        "train_examples_per_epoch": sum(len(t.train_pairs) for t in train),
        "test_groups": len(test),
        "test_puzzles": test_puzzles,
        "test_examples": test_examples,
        "test_mean_puzzle_examples": test_examples / test_puzzles if test_puzzles else 0.0,
        "num_puzzle_identifiers": names + 1,  # + the blank id 0
    }


def write_plan(plan: BuildPlan, options: ArcOptions, writer: Any) -> None:
    """Write both splits of a plan through ``writer`` (trm.store_write.DatasetWriter), train first."""
    progress = getattr(writer, "progress", None) or _identity_progress
    writer.set_vocabulary(vocab_size=VOCAB_SIZE, seq_len=SEQ_LEN, pad_id=0, ignore_label_id=0,
                          token_names=list(TOKEN_NAMES))
    for split_name in ("train", "test"):
        tasks = [t for t in plan.tasks if (t.train_pairs if split_name == "train" else t.test_pairs)]
        if not tasks:
            continue
        split = writer.split(split_name)
        for task in progress(tasks, total=len(tasks), desc=f"arc: write {split_name}"):
            pairs = task.train_pairs if split_name == "train" else task.test_pairs
            layout = TaskLayout(pairs)
            rows = cols = None
            if split_name == "train" and options.translate:
                rows, cols = layout.draw_offsets(task.tids, np.random.default_rng([options.seed, 2, task.stream_key]))
            inputs, labels = layout.render(task.tids, task.colour_maps, rows, cols)
            ids = [writer.identifier(name) for name in task.version_names()]
            split.add_group([(ids[v], inputs[v], labels[v]) for v in range(len(ids))])


def test_puzzles_extra(plan: BuildPlan) -> dict[str, Any]:
    """The raw held-out tasks, answers included where known, keyed by task id (read by the arc_vote evaluator)."""
    return {task.task_id: task.to_json() for task in plan.test_tasks}


def build(options: ArcOptions, writer: Any) -> None:
    """TaskSpec.build of the ``arc`` task."""
    plan = plan_build(options, progress=getattr(writer, "progress", None))
    for line in plan.leakage.lines():
        _say(writer, line)
    if not plan.leakage.clean and options.on_leakage == "error":
        raise UserError(f"arc: {plan.leakage.leaked_test_pairs} test pairs occur among the training examples "
                        f"(subsets {options.subsets}); drop the contaminating subset or set on_leakage=warn")
    stats = plan_statistics(plan)
    if plan.not_full:
        _say(writer, f"arc: {len(plan.not_full)} of {len(plan.tasks)} tasks have fewer than {options.num_aug + 1} "
                     f"versions (few colours or symmetric grids), e.g. {', '.join(plan.not_full[:5])}")
    writer.set_extra("test_puzzles", test_puzzles_extra(plan))
    writer.set_extra("leakage", plan.leakage.to_json())
    writer.set_extra("arc_build", {"builder_version": BUILDER_VERSION, "statistics": stats,
                                   "tasks_not_full": plan.not_full})
    write_plan(plan, options, writer)

"""``trm new task NAME [DIR]``: write a working, pip-installable task plugin package to start a new task from.

The package holds a small task that works as it is (one step of Conway's Game of Life on a small torus: a generator,
typed options, augmentation by the grid's 8 symmetries with trm.symmetry, a test split that shares nothing with
training by trm.heldout's convention), an
evaluator, a CPU recipe shipped inside the package (``trm_recipe_dirs``, docs/plugins.md "Shipping recipes") and
tests that use :mod:`trm.testing`. ``pip install -e DIR`` then ``trm run NAME:cpu`` trains and evaluates it in a few
minutes; the author then replaces the toy task with
their own. docs/plugins.md ("Starting a new task") walks through the files.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path

from trm.errors import UserError

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")

PYPROJECT = '''\
[build-system]
requires = ["setuptools>=70.1"]
build-backend = "setuptools.build_meta"

[project]
name = "__DIST__"
version = "0.1.0"
description = "A trm task plugin: __NAME__ (scaffolded by `trm new task`)."
requires-python = ">=3.10"
dependencies = ["trm", "numpy"]

[project.optional-dependencies]
test = ["pytest"]

# The one table trm needs: the `trm` entry-point group names the module that implements the hooks.
[project.entry-points.trm]
__NAME__ = "__PACKAGE__"

[tool.setuptools]
packages = ["__PACKAGE__"]

# The recipes travel inside the package, so that `trm run __NAME__:cpu` finds them in any install.
[tool.setuptools.package-data]
__PACKAGE__ = ["recipes/*.yaml"]
'''

INIT = '''\
"""The __NAME__ task plugin: registers the task, its evaluator and its recipes with trm (see `trm plugins`,
`trm list tasks`, `trm recipes`)."""

from __future__ import annotations

from pathlib import Path

from trm.hookspecs import hookimpl
from trm.types import EvaluatorSpec, TaskDims, TaskSpec

from __PACKAGE__.evaluator import __CLASS__Evaluator, __CLASS__EvaluatorOptions
from __PACKAGE__.task import VOCAB_SIZE, __CLASS__Options, build, render


@hookimpl
def trm_tasks():
    return [
        TaskSpec(
            name="__NAME__",
            options_class=__CLASS__Options,
            build=build,
            summary="one step of the Game of Life on a small torus (the `trm new task` example: replace it)",
            version="1",  # change it whenever build() writes different data for the same options
            default_evaluators=("__NAME__",),
            render=render,
            dims=lambda options: TaskDims(vocab_size=VOCAB_SIZE, seq_len=options.size * options.size,
                                          num_puzzle_identifiers=1),
        )
    ]


@hookimpl
def trm_evaluators():
    return [
        EvaluatorSpec(
            name="__NAME__",
            options_class=__CLASS__EvaluatorOptions,
            build=lambda options, context: __CLASS__Evaluator(options, context),
            summary="board_accuracy, cell_accuracy and changed_cell_accuracy; writes the first wrong boards",
        )
    ]


@hookimpl
def trm_recipe_dirs():
    return [Path(__file__).parent / "recipes"]  # recipes/cpu.yaml is the recipe `cpu`, or `__NAME__:cpu`
'''

TASK = '''\
"""The __NAME__ task: options, the generator that writes the store, and the text renderer.

The example task is one step of Conway's Game of Life on a SIZE x SIZE torus: the input is a random board, the
label the board one generation later. Tokens: 0 padding, 1 a dead cell, 2 a live cell. The rule commutes with the
8 symmetries of the square (rotations and reflections), so every training board is augmented with up to 7 of its
transformed copies (trm.symmetry). The splits follow trm's held-out convention (trm.heldout): each split has its own
random stream, the test split is drawn first, and no training board is a board of the test split or a rotation or
reflection of one. The test split is never augmented. Replace the generator with your puzzle; keep the structure.
"""

from __future__ import annotations

import attrs
import numpy as np

from trm import UserError
from trm.heldout import Deduplicator, split_rng, symmetry_key
from trm.symmetry import NUM_DIHEDRAL, dihedral

VOCAB_SIZE = 3  # 0 padding, 1 dead, 2 alive


@attrs.frozen
class __CLASS__Options:
    """Every option is typed and has a help text: recipes are checked against them, `trm list tasks` shows them."""

    source: str = attrs.field(default="generate", metadata={"help": "only 'generate' (boards are random)"})
    size: int = attrs.field(default=6, validator=attrs.validators.and_(attrs.validators.ge(3), attrs.validators.le(16)),
                            metadata={"help": "board side (3..16); the sequence length is size * size"})
    density: float = attrs.field(default=0.35, validator=attrs.validators.and_(attrs.validators.gt(0),
                                                                                attrs.validators.lt(1)),
                                 metadata={"help": "probability that a cell starts alive"})
    num_train: int = attrs.field(default=1000, validator=attrs.validators.ge(1), metadata={"help": "training boards"})
    num_test: int = attrs.field(default=200, validator=attrs.validators.ge(1), metadata={"help": "test boards"})
    num_aug: int = attrs.field(default=7, validator=attrs.validators.and_(attrs.validators.ge(0),
                                                                          attrs.validators.le(7)),
                               metadata={"help": "symmetric copies per training board besides the original (0..7)"})
    seed: int = attrs.field(default=0, validator=attrs.validators.ge(0), metadata={"help": "seed of the boards"})


def life_step(board: np.ndarray) -> np.ndarray:
    """One generation on a torus: ``board`` holds 0 (dead) and 1 (alive)."""
    neighbours = sum(np.roll(np.roll(board, dr, 0), dc, 1)
                     for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0))
    return ((neighbours == 3) | ((board == 1) & (neighbours == 2))).astype(board.dtype)


def build(options: __CLASS__Options, writer) -> None:
    """Write the test split, then a training split sharing no board with it, through trm's dataset writer."""
    if options.source != "generate":
        raise UserError(f"task '__NAME__': source {options.source!r} is not known; expected 'generate'")
    side = options.size
    writer.set_vocabulary(vocab_size=VOCAB_SIZE, seq_len=side * side, pad_id=0, ignore_label_id=None,
                          token_names=["<pad>", "dead", "alive"])
    # One deduplicator for both splits, keyed by the augmentation's symmetries: "seen" means "equal to a version".
    seen = Deduplicator(symmetry_key(dihedral_group=True))

    def fresh_boards(split: str, count: int):
        rng = split_rng(options.seed, split)  # the test boards stay the same when num_train changes
        for _ in writer.progress(range(count), total=count, desc=split):
            for _attempt in range(1000):
                board = (rng.random((side, side)) < options.density).astype(np.int64)
                if seen.add(board, split):
                    yield board, rng
                    break
            else:
                raise UserError(f"task '__NAME__': cannot draw {count} distinct {side}x{side} boards; ask for fewer "
                                "or larger ones")

    def row(board: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return board.reshape(1, -1) + 1, life_step(board).reshape(1, -1) + 1  # tokens 1 dead, 2 alive

    test = writer.split("test")
    for board, _ in fresh_boards("test", options.num_test):
        test.add_group([(0, *row(board))])
    train = writer.split("train")
    for board, rng in fresh_boards("train", options.num_train):
        # A group is one puzzle and its augmented versions: the original first, then distinct symmetric copies.
        chosen = [0] + sorted(rng.choice(np.arange(1, NUM_DIHEDRAL), size=options.num_aug, replace=False).tolist())
        train.add_group([(0, *row(np.ascontiguousarray(dihedral(board, tid)))) for tid in chosen])


def render(tokens, info=None) -> str:
    """A board as text: '#' alive, '.' dead, ' ' padding, '?' any other token; one line per row."""
    flat = np.asarray(tokens).ravel()
    side = int(round(len(flat) ** 0.5))
    chars = np.array([" ", ".", "#"] + ["?"] * 256)[np.clip(flat.astype(np.int64), 0, 258)]
    if side * side != len(flat):
        return "".join(chars)
    return "\\n".join("".join(chars[row * side:(row + 1) * side]) for row in range(side))
'''

EVALUATOR = '''\
"""The __NAME__ evaluator: how many boards the model gets entirely right, and how it does on the cells that change.

``update(batch, outputs)`` receives NumPy arrays of one global batch (docs/plugins.md, "The evaluator contract"):
``batch["labels"]`` is int64 with -100 where a position is not supervised, ``batch["valid"]`` is False on padding
rows, ``outputs["preds"]`` holds the predicted tokens. ``compute()`` closes one evaluation pass.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np

from __PACKAGE__.task import render

IGNORE = -100


@attrs.frozen
class __CLASS__EvaluatorOptions:
    write_failures: int = attrs.field(default=5, validator=attrs.validators.ge(0),
                                      metadata={"help": "wrong boards drawn into __NAME___failures.txt"})


class __CLASS__Evaluator:
    def __init__(self, options: __CLASS__EvaluatorOptions, context):
        self.options, self.context = options, context
        self._start()

    def _start(self) -> None:
        self.boards = self.right_boards = self.cells = self.right_cells = self.changed = self.right_changed = 0
        self.failures: list[str] = []
        self._closed = False

    def update(self, batch, outputs) -> None:
        if self._closed:  # the first update after compute() starts a new pass
            self._start()
        valid = batch["valid"].astype(bool)
        inputs, labels, preds = batch["inputs"][valid], batch["labels"][valid], outputs["preds"][valid]
        supervised = labels != IGNORE
        right = (preds == labels) & supervised
        changed = supervised & (inputs != labels)
        self.boards += len(labels)
        self.right_boards += int((right.sum(1) == supervised.sum(1)).sum())
        self.cells += int(supervised.sum())
        self.right_cells += int(right.sum())
        self.changed += int(changed.sum())
        self.right_changed += int((right & changed).sum())
        for row in np.flatnonzero(right.sum(1) != supervised.sum(1)):
            if len(self.failures) < self.options.write_failures:
                self.failures.append(_side_by_side(inputs[row], labels[row], preds[row]))

    def compute(self) -> dict[str, float]:
        self._closed = True
        ratio = lambda a, b: a / b if b else float("nan")  # noqa: E731
        return {"board_accuracy": ratio(self.right_boards, self.boards),
                "cell_accuracy": ratio(self.right_cells, self.cells),
                "changed_cell_accuracy": ratio(self.right_changed, self.changed),
                "boards": float(self.boards)}

    def write(self, directory: Path) -> list[Path]:
        path = Path(directory) / "__NAME___failures.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\\n\\n".join(self.failures) + "\\n" if self.failures else "no wrong board\\n")
        return [path]


def _side_by_side(inputs, labels, preds) -> str:
    panels = [render(np.where(tokens == IGNORE, 0, tokens)).splitlines() for tokens in (inputs, labels, preds)]
    lines = ["input".ljust(len(panels[0][0]) + 3) + "label".ljust(len(panels[0][0]) + 3) + "prediction"]
    lines += ["   ".join(parts) for parts in zip(*panels)]
    return "\\n".join(lines)
'''

RECIPE = '''\
# A CPU-sized recipe for the __NAME__ task: trains and evaluates in a few minutes on a laptop.
#   pip install -e __DIR__
#   trm run __NAME__:cpu          (or the file itself: trm run __DIR__/__PACKAGE__/recipes/cpu.yaml)
# The store is built on first use (data.build_if_missing), under the data root: ./data unless TRM_DATA_ROOT or
# `trm --data-root DIR` says otherwise.
description: __NAME__ on the CPU (scaffolded by `trm new task`)
task:
  name: __NAME__
  options: {source: generate, size: 6, density: 0.35, num_train: 1000, num_test: 200, num_aug: 7, seed: 0}
data: {store: __NAME__-cpu.zarr, build_if_missing: true}
# A fixed, small grid: the MLP-mixer (one token-mixing MLP across positions) learns local rules much faster on a
# CPU than attention does.
backbone: {name: mlp_mixer, options: {layers: 2, expansion: 2.0}}
# Two supervision steps: deep supervision is what TRM adds, and more steps cost time linearly.
halting: {name: act_q, options: {max_steps: 2, exploration_prob: 0.1}}
# T=2 cycles of n=2 latent updates; a one-slot puzzle embedding (every board shares identifier 0).
model: {hidden_size: 64, h_cycles: 2, l_cycles: 2, puzzle_emb_len: 1, puzzle_emb_dim: 64}
# A short warm-up and a large rate: a CPU budget is a few hundred steps, not the paper's 2000 of warm-up.
optim: {name: adam_atan2, lr: 3.0e-3, weight_decay: 0.1, puzzle_emb_lr: 3.0e-3, puzzle_emb_weight_decay: 0.1,
        warmup_steps: 20}
# EMA 0.99 averages over ~100 steps (the paper's 0.999 would still mostly hold the initial weights).
# A small batch and a step cap: about a minute of CPU time (epochs is a ceiling that max_steps reaches first).
train: {global_batch_size: 32, epochs: 20, max_steps: 400, ema: 0.99, compile: off, log_every: 50}
eval: {every: null, evaluators: [__NAME__]}
'''

TESTS = '''\
"""Tests of the __NAME__ plugin with trm's helpers (trm.testing): no training needed, a few seconds.

Run them with `pytest tests` after `pip install -e .`; `trm plugins check __NAME__` runs the same checks.
"""

from __future__ import annotations

import numpy as np
import pytest

from trm import UserError
from trm.testing import build_tiny_store, check_evaluator, check_options, check_render

from __PACKAGE__.task import life_step

TINY = {"size": 5, "num_train": 30, "num_test": 10, "num_aug": 3}


@pytest.fixture
def store(tmp_path):
    return build_tiny_store("__NAME__", tmp_path / "tiny.zarr", TINY)  # also checks the store contract


def test_options_give_clear_messages():
    check_options("__NAME__")
    check_options("__NAME__", "evaluators")


def test_render_round_trip(store):
    check_render("__NAME__", store)


def test_evaluator_scores_labels_one_and_corrupted_copies_less(store):
    result = check_evaluator("__NAME__", store)
    assert result["perfect"]["board_accuracy"] == 1.0


def test_the_rule():
    blinker = np.zeros((5, 5), dtype=np.int64)
    blinker[2, 1:4] = 1
    assert life_step(life_step(blinker)).tolist() == blinker.tolist()
    assert life_step(blinker)[1:4, 2].tolist() == [1, 1, 1]


def test_an_unknown_source_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="source"):
        build_tiny_store("__NAME__", tmp_path / "bad.zarr", {**TINY, "source": "csv"})
'''

README = '''\
# __DIST__

A trm task plugin, scaffolded by `trm new task __NAME__`. It works as it is: the example task is one step of
Conway's Game of Life on a small torus. Replace it with your own puzzle.

```bash
# register the `__NAME__` task and evaluator with trm
pip install -e .
# check the contracts: options, a tiny store, rendering, the evaluator
trm plugins check __NAME__
# the same checks, as tests
pytest tests
# train and evaluate on the CPU in a few minutes
trm run __NAME__:cpu
```

Files:

* `__PACKAGE__/task.py`: the options, the generator (`build`) and the renderer;
* `__PACKAGE__/evaluator.py`: the evaluator (`update`, `compute`, `write`);
* `__PACKAGE__/__init__.py`: the hooks that register both, and the recipe folder;
* `__PACKAGE__/recipes/cpu.yaml`: a CPU-sized recipe (`trm run __NAME__:cpu`), with the reason for each value;
* `tests/test___NAME__.py`: tests built on `trm.testing`.

To make it your task, change in each file what belongs to the Game of Life:

* `__PACKAGE__/task.py`: the options class, `build` (your generator or reader; keep the held-out structure),
  `render`, and `VOCAB_SIZE`;
* `__PACKAGE__/__init__.py`: the `dims` lambda (`seq_len=options.size * options.size` is the board's length) and the
  `summary` lines;
* `__PACKAGE__/evaluator.py`: `changed_cell_accuracy` is a metric of the example (cells that change in one
  generation); keep board and cell accuracy, replace or drop the rest;
* `tests/test___NAME__.py`: `test_the_rule` imports `life_step`, and `TINY` sets `size` and `num_aug`;
* `__PACKAGE__/recipes/cpu.yaml`: `task.options` sets `size`, `density` and `num_aug`: your options instead.

`trm solve` needs more: the task has no `read_puzzles`, `check_answer` or `draw` field, so `trm solve` on a run of
it says the task does not read puzzles. The sorting example in trm's docs/plugins.md shows all three in a few lines.

trm's docs/plugins.md is the reference for every field these files use.
'''


def _files(name: str, directory: Path) -> dict[str, str]:
    package, dist = f"trm_{name}", f"trm-{name.replace('_', '-')}"
    klass = "".join(part.capitalize() for part in name.split("_"))
    shown = str(directory)

    def fill(text: str) -> str:
        return (text.replace("__PACKAGE__", package).replace("__DIST__", dist).replace("__CLASS__", klass)
                .replace("__NAME__", name).replace("__DIR__", shown))

    return {
        "pyproject.toml": fill(PYPROJECT),
        "README.md": fill(README),
        f"{package}/__init__.py": fill(INIT),
        f"{package}/task.py": fill(TASK),
        f"{package}/evaluator.py": fill(EVALUATOR),
        f"{package}/recipes/cpu.yaml": fill(RECIPE),
        f"tests/test_{name}.py": fill(TESTS),
    }


def scaffold_task(name: str, directory: str | Path | None = None) -> list[Path]:
    """Write the package for task ``name`` into ``directory`` (default ``./trm-NAME``); returns the files written."""
    if keyword.iskeyword(name):  # the scaffold's code uses the name as a Python identifier too
        raise UserError(f"task name {name!r}: a Python keyword; choose another name, e.g. {name}_task")
    if not NAME_PATTERN.fullmatch(name):
        raise UserError(f"task name {name!r}: expected lower-case letters, digits and '_', starting with a letter "
                        "(it becomes the Python package trm_NAME), e.g. takuzu")
    from trm.plugins import registry

    tasks = registry("tasks")
    if name in tasks.names():  # installed beside it, the two would be refused as the same task registered twice
        raise UserError(f"task name {name!r}: an installed task has it already (plugin "
                        f"{tasks.owner(name)!r}); choose another name")
    target = Path(directory) if directory is not None else Path(f"trm-{name.replace('_', '-')}")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UserError(f"{target}: already exists and is not an empty directory; choose another DIR")
    files = _files(name, target)
    written = []
    try:
        for relative, text in files.items():
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            written.append(path)
    except OSError as error:
        raise UserError(f"{target}: cannot write the package there ({error.strerror or error})") from None
    return written

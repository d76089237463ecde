"""A worked example of a third-party trm task plugin: learn to sort a row of digits.

Each example is a row of ``length`` random digits (tokens 1..10 for digits 0..9; 0 is padding); its label is the same
row sorted. Groups hold one puzzle each and every puzzle shares identifier 0, like Sudoku. docs/plugins.md walks
through this file. The optional solving hooks let ``trm solve RUN 509321`` (six digits: recipes/cpu.yaml's length) read
a row, check the answer and draw each supervision step.
"""

from __future__ import annotations

import attrs
import numpy as np

from trm import UserError
from trm.hookspecs import hookimpl
from trm.types import Puzzle, TaskDims, TaskSpec


@attrs.frozen
class SortingOptions:
    source: str = attrs.field(default="generate", metadata={"help": "only 'generate' (rows are random)"})
    length: int = attrs.field(default=8, metadata={"help": "digits per row (the sequence length)"})
    num_train: int = attrs.field(default=1000, metadata={"help": "training rows"})
    num_test: int = attrs.field(default=200, metadata={"help": "test rows"})
    seed: int = attrs.field(default=0, metadata={"help": "seed of the random rows"})


def build(options: SortingOptions, writer) -> None:
    """Write both splits through trm's dataset writer (the plugin never touches zarr)."""
    if options.source != "generate":  # a user's mistake: a UserError, reported in one line naming the plugin
        raise UserError(f"task 'sorting': source {options.source!r} is not known; expected 'generate'")
    writer.set_vocabulary(vocab_size=11, seq_len=options.length, pad_id=0, ignore_label_id=0,
                          token_names=["<pad>"] + [str(d) for d in range(10)])
    rng = np.random.default_rng(options.seed)
    for split, count in (("train", options.num_train), ("test", options.num_test)):
        out = writer.split(split)
        for _ in writer.progress(range(count), total=count, desc=split):
            row = rng.integers(0, 10, size=(1, options.length))
            out.add_group([(0, row + 1, np.sort(row, axis=1) + 1)])


def render(tokens, info) -> str:
    """One row as text: digits, '.' for padding."""
    return " ".join("." if t == 0 else str(int(t) - 1) for t in np.asarray(tokens).ravel())


def read_puzzles(text, context):
    """``trm solve RUN 509321``: one row of the model's length (6 for recipes/cpu.yaml), written as digits."""
    digits = text.strip()
    if len(digits) != context.seq_len or not digits.isdigit():
        raise UserError(f"puzzle: expected {context.seq_len} digits (the model's row length), got {text!r}")
    return [Puzzle(name="row", inputs=np.array([[int(d) + 1 for d in digits]]), identifiers=np.zeros(1, dtype=int))]


def check_answer(puzzle, tokens):
    """Valid when the answer holds the row's digits in order."""
    valid = np.array_equal(np.asarray(tokens).ravel(), np.sort(np.asarray(puzzle.inputs[0]).ravel()))
    return valid, "the row's digits in order" if valid else "not the row's digits in order"


def draw(axes, tokens, inputs, changed, context):
    """A strip of cells coloured by digit, the digit written in each; changed cells outlined by trm's helper."""
    from trm.trajectory import outline_cells

    row = np.asarray(tokens).ravel()
    axes.imshow(row[None], cmap="viridis", vmin=0, vmax=10, interpolation="nearest")
    for column, token in enumerate(row.tolist()):
        axes.text(column, 0, "." if token == 0 else str(token - 1), ha="center", va="center", color="white")
    outline_cells(axes, changed, (1, len(row)))


@hookimpl
def trm_tasks():
    return [
        TaskSpec(
            name="sorting",
            options_class=SortingOptions,
            build=build,
            summary="sort a row of random digits (a worked example of a third-party task plugin)",
            version="1",
            default_evaluators=("exact_match",),
            render=render,
            dims=lambda options: TaskDims(vocab_size=11, seq_len=options.length, num_puzzle_identifiers=1),
            read_puzzles=read_puzzles,
            check_answer=check_answer,
            draw=draw,
        )
    ]

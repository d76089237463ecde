"""A worked example of a third-party trm task plugin: learn to sort a row of digits.

Each example is a row of ``length`` random digits (tokens 1..10 for digits 0..9; 0 is padding); its label is the same
row sorted. Groups hold one puzzle each and every puzzle shares identifier 0, like Sudoku. docs/plugins.md walks
through this file.
"""

from __future__ import annotations

import attrs
import numpy as np

from trm import UserError
from trm.hookspecs import hookimpl
from trm.types import TaskDims, TaskSpec


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
        )
    ]

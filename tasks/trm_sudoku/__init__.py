"""The ``sudoku`` task: Sudoku-Extreme CSV files or generated boards -> a trm dataset store (docs/reference-code.md 1.1).

Tokens: PAD 0, blank 1, digits 1..9 as tokens 2..10 (vocab 11 for every board size; seq_len = size*size). Labels
are the full solution; no cell is ignored. Every puzzle shares identifier 0 (one learned puzzle embedding), as in
the reference. Train: one group per original puzzle holding the original and ``num_aug`` shuffles (1 example each).
Test: one group per puzzle, never augmented. docs/tasks/sudoku.md describes the options and the generator.
"""

from __future__ import annotations

import sys

import attrs
import numpy as np

from trm.errors import UserError
from trm.heldout import Deduplicator
from trm.hookspecs import hookimpl
from trm.types import TaskDims, TaskSpec

from trm_sudoku.solver import BOX_SHAPES

VERSION = "1"
VOCAB_SIZE = 11
TOKEN_NAMES = ["<pad>", "<blank>"] + [str(d) for d in range(1, 10)]


def _help(text: str) -> dict:
    return {"help": text}


_positive_or_none = attrs.validators.optional(attrs.validators.ge(1))


@attrs.frozen
class SudokuOptions:
    source: str = attrs.field(default="generate", metadata=_help(
        "'generate', a directory holding the CSVs, or the training CSV file itself"))
    train_file: str | None = attrs.field(default=None, metadata=_help(
        "training CSV inside a source directory (null: train.csv)"))
    test_file: str | None = attrs.field(default=None, metadata=_help(
        "test CSV inside the source directory or beside the source file (null: test.csv inside a source "
        "directory if present; none for a source file)"))
    subsample_size: int | None = attrs.field(default=None, validator=_positive_or_none, metadata=_help(
        "keep a seeded random subset of this many training puzzles (the paper: 1000)"))
    min_rating: int | None = attrs.field(default=None, metadata=_help(
        "drop CSV puzzles whose rating is below this (both splits; the reference's --min-difficulty)"))
    num_aug: int = attrs.field(default=1000, validator=attrs.validators.ge(0), metadata=_help(
        "shuffled versions per training puzzle, besides the original (the paper: 1000)"))
    size: int = attrs.field(default=9, validator=attrs.validators.in_(sorted(BOX_SHAPES)), metadata=_help(
        "board size 4, 6 or 9 (boxes 2x2, 2x3, 3x3); CSV boards must have it"))
    num_train: int = attrs.field(default=1000, validator=attrs.validators.ge(1), metadata=_help(
        "generate: training puzzles"))
    num_test: int = attrs.field(default=1000, validator=attrs.validators.ge(0), metadata=_help(
        "generate: test puzzles (distinct from the training ones)"))
    min_guesses: int = attrs.field(default=0, validator=attrs.validators.ge(0), metadata=_help(
        "generate: least difficulty (guesses of the backtracking solver)"))
    max_guesses: int | None = attrs.field(default=None, metadata=_help(
        "generate: greatest difficulty (null: no bound)"))
    seed: int = attrs.field(default=0, metadata=_help("seed of subsampling, augmentation and generation"))


def dims(options: SudokuOptions) -> TaskDims:
    return TaskDims(vocab_size=VOCAB_SIZE, seq_len=options.size * options.size, num_puzzle_identifiers=1)


def _load_csv(options: SudokuOptions, rng: np.random.Generator):
    from trm_sudoku.csv_source import read_csv, resolve_files

    train_path, test_path = resolve_files(options.source, options.train_file, options.test_file)
    if test_path is None:  # legitimate (train-only), but a run on the store cannot evaluate: say so once
        print(f"note: no test file found next to {train_path} (name one with test_file=...); the store has no "
              f"test split, so runs will not evaluate", file=sys.stderr)
    train = read_csv(train_path, min_rating=options.min_rating, size=options.size)
    test = read_csv(test_path, min_rating=options.min_rating, size=options.size) if test_path is not None else None
    questions, answers = train.questions, train.answers
    if options.subsample_size is not None and options.subsample_size < len(questions):
        chosen = rng.choice(len(questions), size=options.subsample_size, replace=False)
        questions, answers = questions[chosen], answers[chosen]
    test_pair = (test.questions, test.answers) if test is not None else None
    return (questions, answers), test_pair


def _generate(options: SudokuOptions, writer):
    from trm_sudoku.generate import generate_puzzles

    total = options.num_train + options.num_test
    made = generate_puzzles(options.size, total, seed=options.seed, min_guesses=options.min_guesses,
                            max_guesses=options.max_guesses)
    try:
        rows = list(writer.progress(made, total=total, desc="generate"))
    except ValueError as exc:
        raise UserError(f"sudoku generator: {exc}") from None
    questions = np.asarray([p for p, _, _ in rows], dtype=np.uint8)
    answers = np.asarray([s for _, s, _ in rows], dtype=np.uint8)
    guesses = [g for _, _, g in rows]
    writer.set_extra("generated_guesses", {"train": guesses[:options.num_train], "test": guesses[options.num_train:]})
    train = (questions[:options.num_train], answers[:options.num_train])
    test = (questions[options.num_train:], answers[options.num_train:]) if options.num_test else None
    return train, test


def build(options: SudokuOptions, writer) -> None:
    """Read or generate the boards, augment the training ones, write both splits."""
    from trm_sudoku.augment import shuffle_boards

    size = options.size
    writer.set_vocabulary(vocab_size=VOCAB_SIZE, seq_len=size * size, pad_id=0, ignore_label_id=0, blank_token_id=1,
                          token_names=TOKEN_NAMES)
    writer.set_extra("board", {"size": size, "box": list(BOX_SHAPES[size])})
    rng = np.random.default_rng(options.seed)
    if options.source == "generate":
        (train_q, train_a), test = _generate(options, writer)
    else:
        (train_q, train_a), test = _load_csv(options, rng)
    if len(train_q) == 0:
        raise UserError(f"sudoku source {options.source}: no training puzzles left after filtering")

    # Held-out check (trm.heldout's convention: test registered first): a test board equal to a training board or
    # to one of its shuffles is trained on. The generator keeps originals apart, but on small boards a shuffle can
    # land on a test board; CSV splits can share boards. Only a warning: the store stays as built.
    held_out = Deduplicator(key=np.ndarray.tobytes)
    for row in (test[0] if test is not None else ()):
        held_out.add(np.ascontiguousarray(row, dtype=np.uint8), "test")
    leaked: set[bytes] = set()
    split = writer.split("train")
    for question, answer in writer.progress(zip(train_q, train_a), total=len(train_q), desc="train"):
        questions, answers = question[None], answer[None]
        if options.num_aug:
            shuffled_q, shuffled_a = shuffle_boards(question, answer, options.num_aug, rng, size)
            questions = np.concatenate([questions, shuffled_q])
            answers = np.concatenate([answers, shuffled_a])
        if len(held_out):
            leaked.update(row.tobytes() for row in questions.astype(np.uint8, copy=False) if held_out.owner(row) == "test")
        inputs, labels = questions + 1, answers + 1  # blank 0 -> token 1, digit d -> token d+1
        split.add_group([(0, inputs[v:v + 1], labels[v:v + 1]) for v in range(len(inputs))])

    if leaked:
        count = sum(np.ascontiguousarray(row, dtype=np.uint8).tobytes() in leaked for row in test[0])
        print(f"warning: {count} of {len(test[0])} test puzzles equal a training puzzle or one of its "
              "shuffles (num_aug), so their test scores are not held out", file=sys.stderr)
    if test is not None and len(test[0]):
        split = writer.split("test")
        inputs, labels = test[0] + 1, test[1] + 1
        for row in writer.progress(range(len(inputs)), total=len(inputs), desc="test"):
            split.add_group([(0, inputs[row:row + 1], labels[row:row + 1])])


def _render(tokens, info=None) -> str:
    # Not called `render`: importing the submodule trm_sudoku.render rebinds that name on this package, and the
    # task's record would then hold the module instead of this function (trm plugins check found it).
    from trm_sudoku.render import render as render_board

    return render_board(tokens, info)


def _read_puzzles(text, context):
    from trm_sudoku.solving import read_puzzles

    return read_puzzles(text, context)


def _check_answer(puzzle, tokens):
    from trm_sudoku.solving import check_answer

    return check_answer(puzzle, tokens)


def _draw(axes, tokens, inputs, changed, context):
    from trm_sudoku.solving import draw

    draw(axes, tokens, inputs, changed, context)


@hookimpl
def trm_tasks():
    return [
        TaskSpec(
            name="sudoku",
            options_class=SudokuOptions,
            build=build,
            summary="Sudoku-Extreme CSVs or generated 4x4/6x6/9x9 boards, with validity-preserving shuffles",
            version=VERSION,
            default_evaluators=("exact_match",),
            render=_render,
            dims=dims,
            read_puzzles=_read_puzzles,
            check_answer=_check_answer,
            draw=_draw,
        )
    ]

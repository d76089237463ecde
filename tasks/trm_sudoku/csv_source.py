"""Reading Sudoku-Extreme CSV files (``source,question,answer,rating``; docs/reference-code.md 1.1).

``question`` is a row-major board with ``.`` or ``0`` for a blank cell, ``answer`` the solved board; both have
size*size characters. Files must be UTF-8 (a byte-order mark is accepted); every answer is checked to be a valid
solution of its question (docs/reliability.md lists the checks). ``rating`` (an int, possibly empty) is only used by the optional minimum-rating filter.
"""

from __future__ import annotations

import math
from pathlib import Path

import attrs
import numpy as np

from trm.errors import UserError
from trm.textfiles import csv_records
from trm_sudoku.solver import BOX_SHAPES

COLUMNS = ("source", "question", "answer", "rating")


@attrs.frozen
class SudokuRows:
    """Boards of one CSV file as digit arrays (0 = blank) and their ratings (-1 where the file has none)."""

    questions: np.ndarray  # uint8 [N, size*size]
    answers: np.ndarray  # uint8 [N, size*size]
    ratings: np.ndarray  # int64 [N]
    size: int


SUPPORTED_SIZES = (4, 6, 9)


def _wrong_cells(where: str, cells: int, size: int | None, first: bool) -> UserError:
    """The error for a board of ``cells`` cells where a ``size`` x ``size`` Sudoku was expected (any square board
    when ``size`` is None). On the file's first row a wrong size most likely means another task's file (a 30x30
    maze has 900 cells), so the message says so."""
    side = math.isqrt(cells)
    if size is not None and side * side == cells and side in SUPPORTED_SIZES:
        return UserError(f"{where}: boards are {side}x{side} but size={size}; set size={side}")
    expected = f"{size * size} cells for a {size}x{size} Sudoku (size={size})" if size else "a square Sudoku board"
    foreign = "; this looks like another task's file, not a Sudoku CSV" if first else ""
    return UserError(f"{where}: expected {expected}, got {cells} cells{foreign}")


def read_csv(path: Path, *, min_rating: int | None = None, size: int | None = None) -> SudokuRows:
    """All rows of ``path`` (rows rated below ``min_rating`` left out); UserError naming the line on bad input.

    With ``size``, every board must have size*size cells; without it, the first row sets the size. Every answer
    must be a solved board (each row, column and box holding 1..size once) that keeps the question's clues: a
    wrong answer would train the model toward it and score correct predictions as wrong."""
    path = Path(path)
    questions, answers, ratings, lines = [], [], [], []
    first = True
    records = csv_records(path, "Sudoku CSV")
    header = next(records, (0, None))[1]
    if header is None or [h.strip() for h in header[:4]] != list(COLUMNS):
        raise UserError(f"{path}: expected the header 'source,question,answer,rating', got {header!r}")
    for line, row in records:
        if not row:
            continue
        if len(row) < 3:
            raise UserError(f"{path}:{line}: expected 4 columns source,question,answer,rating")
        question, answer = row[1].strip(), row[2].strip()
        rating_text = row[3].strip() if len(row) > 3 else ""
        if size is None and math.isqrt(len(question)) ** 2 == len(question) and len(question):
            size = math.isqrt(len(question))
            if size not in BOX_SHAPES:
                raise UserError(f"{path}:{line}: boards are {size}x{size}; supported sizes are "
                                f"{', '.join(map(str, SUPPORTED_SIZES))}")
        for column, cells in (("question", len(question)), ("answer", len(answer))):
            if size is None or cells != size * size:
                raise _wrong_cells(f"{path}:{line}: {column}", cells, size, first)
        first = False
        try:
            rating = int(rating_text) if rating_text else -1
        except ValueError:
            raise UserError(f"{path}:{line}: rating {rating_text!r} is not an integer") from None
        if min_rating is not None and rating < min_rating:
            continue
        questions.append(question.replace(".", "0"))
        answers.append(answer)
        ratings.append(rating)
        lines.append(line)
    if first or size is None:
        raise UserError(f"{path}: no puzzles in the file")
    q = _digits(questions, size, path, "question", lines)
    a = _digits(answers, size, path, "answer", lines)
    _check_answers(q, a, size, path, lines)
    return SudokuRows(q, a, np.asarray(ratings, dtype=np.int64), size)


def _digits(boards: list[str], size: int, path: Path, column: str, lines: list[int]) -> np.ndarray:
    if not boards:
        return np.zeros((0, size * size), dtype=np.uint8)
    raw = np.frombuffer("".join(boards).encode("ascii", errors="replace"), dtype=np.uint8).reshape(len(boards), -1)
    digits = raw.astype(np.int16) - ord("0")
    if (digits < 0).any() or (digits > size).any():
        bad = int(np.flatnonzero(((digits < 0) | (digits > size)).any(1))[0])
        raise UserError(f"{path}:{lines[bad]}: {column} has a character outside '.0-{size}'")
    return digits.astype(np.uint8)


def _units(boards: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """Rows, columns and boxes of ``boards`` [N, size*size], each as [N, size units, size cells]."""
    box_rows, box_cols = BOX_SHAPES[size]
    grid = boards.reshape(-1, size, size)
    boxes = grid.reshape(-1, size // box_rows, box_rows, size // box_cols, box_cols).transpose(0, 1, 3, 2, 4)
    return {"row": grid, "column": grid.transpose(0, 2, 1), "box": boxes.reshape(-1, size, size)}


def _check_answers(q: np.ndarray, a: np.ndarray, size: int, path: Path, lines: list[int]) -> None:
    """UserError naming the line of the first answer that is incomplete, disagrees with a clue or breaks a rule."""
    want = np.arange(1, size + 1, dtype=np.uint8)
    chunk = 100_000  # bounds the temporary copies for files of millions of rows
    for begin in range(0, len(a), chunk):
        qs, answers = q[begin:begin + chunk], a[begin:begin + chunk]
        bad = ((qs != 0) & (qs != answers)).any(1) | (answers == 0).any(1)
        for units in _units(answers, size).values():
            bad |= (np.sort(units, axis=2) != want).any(axis=(1, 2))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            where = f"{path}:{lines[begin + row]}"
            raise UserError(f"{where}: {_answer_problem(qs[row], answers[row], size)}")


def _answer_problem(question: np.ndarray, answer: np.ndarray, size: int) -> str:
    """What is wrong with one answer, in words (cells counted from 1, as people count them)."""
    if (answer == 0).any():
        cell = int(np.flatnonzero(answer == 0)[0])
        return f"answer is incomplete: blank at row {cell // size + 1}, column {cell % size + 1}"
    clash = np.flatnonzero((question != 0) & (question != answer))
    if len(clash):
        cell = int(clash[0])
        return (f"answer disagrees with its clues at row {cell // size + 1}, column {cell % size + 1} "
                f"(clue {question[cell]}, answer {answer[cell]})")
    for name, units in _units(answer[None], size).items():
        for index, unit in enumerate(units[0]):
            counts = np.bincount(unit, minlength=size + 1)
            if (counts[1:] != 1).any():
                digit = int(np.flatnonzero(counts[1:] > 1)[0]) + 1
                return (f"answer is not a valid Sudoku solution: {name} {index + 1} holds {digit} "
                        f"{int(counts[digit])} times")
    return "answer is not a valid Sudoku solution"  # unreachable when the vectorised check found a fault


def resolve_files(source: str, train_file: str | None, test_file: str | None) -> tuple[Path, Path | None]:
    """The train and test CSVs named by ``source`` (a directory or the train file) and the file options."""
    root = Path(source).expanduser()
    if not root.exists():
        raise UserError(f"source {root}: no such file or directory (or use --source generate)")
    if root.is_dir():
        train = root / (train_file or "train.csv")
        test = root / (test_file or "test.csv")
        if test_file is None and not test.exists():
            test = None
    else:
        train = root
        test = (root.parent / test_file) if test_file else None
    if not train.is_file():
        raise UserError(f"source {root}: training file {train} not found (set train_file=...)")
    if test is not None and not test.is_file():
        raise UserError(f"source {root}: test file {test} not found (set test_file=...)")
    return train, test

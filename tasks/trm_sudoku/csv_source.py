"""Reading Sudoku-Extreme CSV files (``source,question,answer,rating``; REFERENCE.md 1.1).

``question`` is a row-major board with ``.`` or ``0`` for a blank cell, ``answer`` the solved board; both have
size*size characters. ``rating`` (an int, possibly empty) is only used by the optional minimum-rating filter.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import attrs
import numpy as np

from trm.errors import UserError

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

    With ``size``, every board must have size*size cells; without it, the first row sets the size."""
    path = Path(path)
    try:
        handle = path.open(newline="")
    except OSError as exc:
        raise UserError(f"{path}: cannot read Sudoku CSV ({exc.strerror})") from None
    questions, answers, ratings = [], [], []
    first = True
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:4]] != list(COLUMNS):
            raise UserError(f"{path}: expected the header 'source,question,answer,rating', got {header!r}")
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) < 3:
                raise UserError(f"{path}:{line}: expected 4 columns source,question,answer,rating")
            question, answer = row[1].strip(), row[2].strip()
            rating_text = row[3].strip() if len(row) > 3 else ""
            if size is None and math.isqrt(len(question)) ** 2 == len(question) and len(question):
                size = math.isqrt(len(question))
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
    if first or size is None:
        raise UserError(f"{path}: no puzzles in the file")
    q = _digits(questions, size, path, "question")
    a = _digits(answers, size, path, "answer")
    if ((q != 0) & (q != a)).any() or (a == 0).any():
        bad = int(np.flatnonzero(((q != 0) & (q != a)).any(1) | (a == 0).any(1))[0])
        raise UserError(f"{path}: puzzle {bad + 1} has an answer that is incomplete or disagrees with its clues")
    return SudokuRows(q, a, np.asarray(ratings, dtype=np.int64), size)


def _digits(boards: list[str], size: int, path: Path, column: str) -> np.ndarray:
    if not boards:
        return np.zeros((0, size * size), dtype=np.uint8)
    raw = np.frombuffer("".join(boards).encode("ascii", errors="replace"), dtype=np.uint8).reshape(len(boards), -1)
    digits = raw.astype(np.int16) - ord("0")
    if (digits < 0).any() or (digits > size).any():
        bad = int(np.flatnonzero(((digits < 0) | (digits > size)).any(1))[0])
        raise UserError(f"{path}: {column} of puzzle {bad + 1} has a character outside '.0-{size}'")
    return digits.astype(np.uint8)


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

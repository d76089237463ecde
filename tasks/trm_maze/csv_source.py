"""Reading the Maze-Hard CSV format: ``source,question,answer,rating`` (docs/reference-code.md 1.2, data/maze/SOURCE.md).

``question`` and ``answer`` are row-major square grids over ``"# SGo"`` (900 characters for 30x30). Fields are
unquoted and contain spaces, so nothing is stripped. ``source`` and ``rating`` are not used: the rating of the
published copy was recomputed, and we recompute lengths with BFS whenever we need them. Files must be UTF-8 (a
byte-order mark is accepted).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trm.errors import UserError
from trm.textfiles import csv_records
from trm_maze.grid import encode, side_of, verify_example


def split_files(source: str, train_file: str | None = None, test_file: str | None = None) -> dict[str, Path]:
    """Split name -> CSV path, named like the sudoku task's options.

    A directory: ``train_file`` (default train.csv) and ``test_file`` (default test.csv, skipped when absent) inside
    it. A single file: it is the train split, and ``test_file`` (default test.csv) is looked for beside it.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        train = path / (train_file or "train.csv")
        if not train.is_file():
            raise UserError(f"task option source: {path} holds no {train.name} (set train_file to its CSV name)")
        folder = path
    elif path.is_file():
        if train_file is not None:
            raise UserError(f"task option train_file is for a source directory; source {path} is already a file")
        train, folder = path, path.parent
    else:
        raise UserError(f"task option source: {path} is neither a CSV file, a directory nor 'generate'")
    files = {"train": train}
    test = folder / (test_file or "test.csv")
    if test.is_file() and test.resolve() != train.resolve():
        files["test"] = test
    elif test_file is not None:
        raise UserError(f"task option test_file: {test} is not a file")
    return files


def read_csv(path: Path, *, verify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """All rows of one CSV as (questions, answers) uint8 token arrays [N, side*side].

    Every row is checked for the charset, squareness and equal lengths, and with ``verify`` that its answer is the
    question with one BFS-shortest path marked; the first bad row raises UserError naming file and line.
    """
    questions: list[np.ndarray] = []
    answers: list[np.ndarray] = []
    records = csv_records(path, "maze CSV")
    header = next(records, (0, None))[1]
    if header is None or "question" not in header or "answer" not in header:
        raise UserError(f"{path}: expected a header with 'question' and 'answer' columns, got {header}")
    q_col, a_col = header.index("question"), header.index("answer")
    length = None
    for line_number, row in records:
        if not row:
            continue
        where = f"{path}:{line_number}"
        if len(row) != len(header):
            raise UserError(f"{where}: expected {len(header)} fields, got {len(row)}")
        question_text, answer_text = row[q_col], row[a_col]
        length = length or len(question_text)
        if len(question_text) != length or len(answer_text) != length:
            raise UserError(f"{where}: question/answer have {len(question_text)}/{len(answer_text)} cells, "
                            f"expected {length} like the first row")
        try:
            side_of(length)
            question, answer = encode(question_text), encode(answer_text)
            if verify:
                verify_example(question, answer)
        except ValueError as exc:
            raise UserError(f"{where}: {exc}") from None
        questions.append(question)
        answers.append(answer)
    if not questions:
        raise UserError(f"{path}: no maze rows after the header")
    return np.stack(questions), np.stack(answers)


def peek_seq_len(path: Path) -> int | None:
    """The grid length of the first row of a CSV, or None when it cannot be read (used before a build)."""
    try:
        records = csv_records(path, "maze CSV")
        header = next(records)[1]
        return len(next(records)[1][header.index("question")])
    except (UserError, StopIteration, ValueError, IndexError):
        return None

"""Sudoku's hooks for looking at a model: reading a user's puzzles, checking an answer by the rules, drawing boards.

A puzzle is written with digits and ``.`` or ``0`` for blanks: inline as one string of size*size characters, or in
a file as one board per line, as text rows (``render``'s own picture with ``|`` and ``-+-`` separators reads back),
or as a CSV of the task's format (``source,question,answer,rating``; the answer column becomes the known answer).
The board size is the model's (seq_len = size * size).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from trm.errors import UserError
from trm.types import Puzzle, SolveContext
from trm_sudoku.solver import BOX_SHAPES, geometry

SEPARATORS = set(" \t|+-")
BLANK_TOKEN = 1


def board_size(context: SolveContext) -> int:
    size = math.isqrt(context.seq_len)
    if size * size != context.seq_len or size not in BOX_SHAPES:
        raise UserError(f"the model's grid has {context.seq_len} cells, not a 4x4, 6x6 or 9x9 Sudoku board")
    return size


def encode(cells: str, size: int, where: str) -> np.ndarray:
    """A board's characters (digits, ``.``/``0`` blanks) -> tokens [size*size]; UserError naming ``where``."""
    if len(cells) != size * size:
        raise UserError(f"{where}: expected {size * size} cells for the model's {size}x{size} board, got {len(cells)}")
    tokens = np.empty(len(cells), dtype=np.int64)
    for index, char in enumerate(cells):
        if char in ".0":
            tokens[index] = BLANK_TOKEN
        elif char.isdigit() and 1 <= int(char) <= size:
            tokens[index] = int(char) + 1
        else:
            raise UserError(f"{where}: cell {index + 1} is {char!r}; expected a digit 1-{size} or '.'/'0' for a blank")
    return tokens


def _cells(line: str) -> str:
    return "".join(char for char in line if char not in SEPARATORS)


def _puzzle(name: str, tokens: np.ndarray, label: np.ndarray | None = None) -> Puzzle:
    return Puzzle(name=name, inputs=tokens[None], identifiers=np.zeros(1, dtype=np.int64), label=label)


def _read_csv(text: str, size: int, where: str) -> list[Puzzle]:
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader)]
    if "question" not in header:
        raise UserError(f"{where}: a CSV needs a 'question' column (the task's format: source,question,answer,rating)")
    q_col, a_col = header.index("question"), header.index("answer") if "answer" in header else None
    puzzles = []
    for line, row in enumerate(reader, start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) <= q_col:
            raise UserError(f"{where}:{line}: expected a question in column {q_col + 1}")
        question = encode(row[q_col].strip(), size, f"{where}:{line}")
        answer = None
        if a_col is not None and len(row) > a_col and row[a_col].strip():
            answer = encode(row[a_col].strip(), size, f"{where}:{line} answer")
        puzzles.append(_puzzle(f"line {line}", question, answer))
    return puzzles


def read_puzzles(text: str, context: SolveContext) -> list[Puzzle]:
    """TaskSpec.read_puzzles of ``sudoku``: PUZZLE inline, or a file (see the module docstring)."""
    size = board_size(context)
    path = Path(text)
    if not (len(text) < 4096 and "\n" not in text and path.is_file()):
        if "/" in text or text.endswith((".txt", ".csv")):
            raise UserError(f"{text}: no such file")
        return [_puzzle("puzzle", encode(_cells(text.strip()), size, "puzzle"))]
    where = str(path)
    content = path.read_text()
    first = next((line for line in content.splitlines() if line.strip()), "")
    if "," in first:
        return _read_csv(content, size, where)
    lines = [(number, _cells(line)) for number, line in enumerate(content.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    lines = [(number, cells) for number, cells in lines if cells]  # drop box separator lines
    if not lines:
        raise UserError(f"{where}: no puzzle found")
    if all(len(cells) == size * size for _, cells in lines):
        return [_puzzle(f"line {number}", encode(cells, size, f"{where}:{number}")) for number, cells in lines]
    if all(len(cells) == size for _, cells in lines) and len(lines) % size == 0:
        return [_puzzle(f"board {k // size + 1} (line {lines[k][0]})",
                        encode("".join(cells for _, cells in lines[k:k + size]), size, f"{where}:{lines[k][0]}"))
                for k in range(0, len(lines), size)]
    number, cells = next(((n, c) for n, c in lines if len(c) not in (size, size * size)), lines[0])
    raise UserError(f"{where}:{number}: expected a board per line ({size * size} cells) or text rows of {size} "
                    f"cells for the model's {size}x{size} board, got {len(cells)} cells")


def check_answer(puzzle: Puzzle, tokens: Any) -> tuple[bool, str]:
    """Valid when every cell is a digit, the given digits are kept, and no row, column or box repeats a digit."""
    answer = np.asarray(tokens).ravel()
    question = np.asarray(puzzle.inputs[0]).ravel()
    size = math.isqrt(len(answer))
    clash = _clashing_givens(question, size)
    if clash:  # no answer can keep these givens and the rules: say so, not that the model changed a digit
        return False, f"the puzzle itself breaks the rules: {clash}, so it has no solution"
    if np.any((answer < 2) | (answer > size + 1)):
        return False, f"{int(np.sum((answer < 2) | (answer > size + 1)))} cells are not digits 1-{size}"
    given = question != BLANK_TOKEN
    if np.any(answer[given] != question[given]):
        return False, f"{int(np.sum(answer[given] != question[given]))} given digits were changed"
    for name, unit in _named_units(size):
        if len(set(answer[list(unit)].tolist())) != size:
            return False, f"{name} repeats a digit"
    return True, "every row, column and box holds each digit once, givens kept"


def _named_units(size: int) -> list[tuple[str, tuple[int, ...]]]:
    """('row 1', its cells), ... ('column 1', ...), ... ('box 1', ...): the solver's units with their names."""
    units, _ = geometry(size)
    kinds = ["row"] * size + ["column"] * size + ["box"] * size
    return [(f"{kinds[index]} {index % size + 1}", unit) for index, unit in enumerate(units)]


def _clashing_givens(question: np.ndarray, size: int) -> str:
    """'row 1 gives the digit 1 twice' for the first unit whose given digits repeat, else ''."""
    for name, unit in _named_units(size):
        digits = [int(t) - 1 for t in question[list(unit)] if t != BLANK_TOKEN]
        repeated = sorted({d for d in digits if digits.count(d) > 1})
        if repeated:
            return f"{name} gives the digit {repeated[0]} twice"
    return ""


def draw(axes: Any, tokens: Any, inputs: Any, changed: Any, context: SolveContext) -> None:
    """A board: given digits black, the model's digits blue, changed cells outlined, box lines thick."""
    from trm.trajectory import outline_cells

    flat = np.asarray(tokens).ravel()
    size = math.isqrt(len(flat))
    box_rows, box_cols = BOX_SHAPES.get(size, (size, size))
    given = (np.asarray(inputs).ravel() != BLANK_TOKEN) if inputs is not None else np.ones(len(flat), dtype=bool)
    axes.imshow(np.ones((size, size, 3)), interpolation="nearest")
    axes.set_xlim(-0.5, size - 0.5)
    axes.set_ylim(size - 0.5, -0.5)
    for line in range(size + 1):
        thick = 2.0 if line % box_rows == 0 else 0.5
        axes.axhline(line - 0.5, color="black", linewidth=thick)
        thick = 2.0 if line % box_cols == 0 else 0.5
        axes.axvline(line - 0.5, color="black", linewidth=thick)
    font = max(5, int(90 / size))
    for cell, token in enumerate(flat.tolist()):
        if 2 <= token <= size + 1:
            row, col = divmod(cell, size)
            axes.text(col, row, str(token - 1), ha="center", va="center", fontsize=font,
                      color="black" if given[cell] else "#1f5fbf", fontweight="bold" if given[cell] else "normal")
    outline_cells(axes, changed, (size, size))

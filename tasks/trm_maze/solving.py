"""Maze's hooks for looking at a model: reading a user's mazes, checking a path, drawing, the leakage canonical form.

A maze is given in the Maze-Hard characters (``#`` wall, space or ``.`` open, ``S`` start, ``G`` goal): a text file
of ``side`` rows of ``side`` characters (several mazes one after another, blank lines between them allowed), a file
of one maze per line (``side * side`` characters), or a CSV of the task's format (``source,question,answer,rating``;
the answer becomes the known answer). The side is the model's (seq_len = side * side, 30 for Maze-Hard).
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
from trm_maze.grid import GOAL, OPEN, PATH, START, WALL, check_path, encode, endpoints, shortest_distance

# wall, open, start, goal, path, and PAD (never in a maze)
COLOURS = {0: (0.6, 0.0, 0.6), WALL: (0.2, 0.2, 0.22), OPEN: (1.0, 1.0, 1.0), START: (0.1, 0.65, 0.2),
           GOAL: (0.85, 0.1, 0.1), PATH: (0.25, 0.5, 0.95)}


def maze_side(context: SolveContext) -> int:
    side = math.isqrt(context.seq_len)
    if side * side != context.seq_len:
        raise UserError(f"the model's grid has {context.seq_len} cells, not a square maze")
    return side


def encode_question(text: str, side: int, where: str) -> np.ndarray:
    """A maze's characters -> tokens, checked: the model's size, known characters, one S and one G, no path."""
    if len(text) != side * side:
        raise UserError(f"{where}: expected {side * side} cells for the model's {side}x{side} maze, got {len(text)}")
    try:
        tokens = encode(text.replace(".", " ")).astype(np.int64)
        endpoints(tokens)
    except ValueError as exc:
        raise UserError(f"{where}: {exc}") from None
    if np.any(tokens == PATH):
        raise UserError(f"{where}: the maze already marks path cells 'o'; give the question only")
    return tokens


def _puzzle(name: str, tokens: np.ndarray, label: np.ndarray | None = None) -> Puzzle:
    return Puzzle(name=name, inputs=tokens[None], identifiers=np.zeros(1, dtype=np.int64), label=label)


def _read_csv(text: str, side: int, where: str) -> list[Puzzle]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    if "question" not in header:
        raise UserError(f"{where}: a CSV needs a 'question' column (the task's format: source,question,answer,rating)")
    q_col = header.index("question")
    a_col = header.index("answer") if "answer" in header else None
    puzzles = []
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) <= q_col:
            raise UserError(f"{where}:{line}: expected a question in column {q_col + 1}")
        question = encode_question(row[q_col], side, f"{where}:{line}")
        answer = None
        if a_col is not None and len(row) > a_col and row[a_col]:
            try:
                answer = encode(row[a_col]).astype(np.int64)
            except ValueError as exc:
                raise UserError(f"{where}:{line} answer: {exc}") from None
        puzzles.append(_puzzle(f"line {line}", question, answer))
    return puzzles


def read_puzzles(text: str, context: SolveContext) -> list[Puzzle]:
    """TaskSpec.read_puzzles of ``maze``: a file of mazes (see the module docstring)."""
    side = maze_side(context)
    path = Path(text)
    if len(text) > 4096 or "\n" in text or not path.is_file():
        raise UserError(f"{text[:80]}: no such file; a maze is given as a text file of {side} rows of {side} "
                        "characters (# wall, space or . open, S start, G goal)")
    where = str(path)
    content = path.read_text().replace("\r", "")
    lines = content.split("\n")
    if "question" in lines[0].split(","):
        return _read_csv(content, side, where)
    rows = [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    if not rows:
        raise UserError(f"{where}: no maze found")
    if all(len(line) == side * side for _, line in rows):
        return [_puzzle(f"line {number}", encode_question(line, side, f"{where}:{number}")) for number, line in rows]
    for number, line in rows:
        if len(line) != side:
            raise UserError(f"{where}:{number}: a maze row of the model's {side}x{side} mazes has {side} characters, "
                            f"this one {len(line)} (spaces are open cells: keep trailing ones, or write '.')")
    if len(rows) % side:
        raise UserError(f"{where}: {len(rows)} rows is not a whole number of {side}-row mazes")
    return [_puzzle(f"maze {k // side + 1} (line {rows[k][0]})",
                    encode_question("".join(line for _, line in rows[k:k + side]), side, f"{where}:{rows[k][0]}"))
            for k in range(0, len(rows), side)]


def check_answer(puzzle: Puzzle, tokens: Any) -> tuple[bool, str] | None:
    """Valid when the marked cells are one shortest S-to-G path (judged by BFS, not by a label)."""
    question = np.asarray(puzzle.inputs[0]).ravel()
    answer = np.asarray(tokens).ravel()
    try:
        shortest = shortest_distance(question)
        if shortest < 0:
            return False, "the goal cannot be reached from the start in this maze"
        connects, is_shortest = check_path(question, answer, shortest=shortest)
    except ValueError as exc:
        return None if "S and" in str(exc) else (False, str(exc))
    marked = int((answer == PATH).sum())
    off_path = int(((answer == PATH) & (question != OPEN)).sum())
    if off_path:
        return False, f"{off_path} path cells lie on walls, S or G (a shortest path has {shortest} moves)"
    if is_shortest:
        return True, f"a shortest path from S to G ({shortest} moves)"
    if connects:
        return False, f"connects S to G but marks {marked} cells (a shortest path has {shortest - 1})"
    return False, f"the marked cells do not connect S to G (a shortest path has {shortest} moves)"


def draw(axes: Any, tokens: Any, inputs: Any, changed: Any, context: SolveContext) -> None:
    """Walls dark, open white, S green, G red, path blue; changed cells outlined."""
    from trm.trajectory import outline_cells

    flat = np.asarray(tokens).ravel()
    side = math.isqrt(len(flat))
    colours = np.array([COLOURS.get(int(t), (0.6, 0.0, 0.6)) for t in flat.tolist()]).reshape(side, side, 3)
    axes.imshow(colours, interpolation="nearest")
    outline_cells(axes, changed, (side, side))


def canonical_input(tokens: Any) -> bytes:
    """Equal for a maze and its 8 dihedral versions (the builder's augmentation)."""
    from trm.symmetry import canonical_form

    flat = np.asarray(tokens, dtype=np.uint8).ravel()
    side = math.isqrt(len(flat))
    return canonical_form(flat.reshape(side, side))

"""Maze grids: the character set, tokens, and breadth-first search over open cells.

A maze is a square grid of characters from ``"# SGo"`` (docs/reference-code.md 1.2): ``#`` wall, space open, ``S`` start,
``G`` goal, ``o`` a cell of the labelled path (answers only). Tokens follow the reference builder: PAD 0, then the
characters in that order as 1..5, so vocab 6 and seq_len = side * side (900 for Maze-Hard).

Movement is 4-neighbour. Every check that something "is a shortest path" is made against a BFS distance computed
here, never against the label, so a wrong label cannot make a wrong prediction look right.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Iterable

import numpy as np

CHARSET = "# SGo"  # the reference's CHARSET: token = index + 1
PAD, WALL, OPEN, START, GOAL, PATH = 0, 1, 2, 3, 4, 5
VOCAB_SIZE = 6
TOKEN_NAMES = ["<pad>", "wall", "open", "start", "goal", "path"]

_CHAR_TO_TOKEN = {char: index + 1 for index, char in enumerate(CHARSET)}
_TOKEN_TO_CHAR = np.array(["?"] + list(CHARSET))  # PAD renders as '?': it never occurs in a maze


def side_of(length: int) -> int:
    """The side of a square grid of ``length`` cells (the reference infers it as sqrt(len))."""
    side = math.isqrt(length)
    if side * side != length:
        raise ValueError(f"a maze of {length} cells is not square")
    return side


def encode(text: str) -> np.ndarray:
    """A maze string (row-major) -> uint8 tokens; ValueError naming the first foreign character."""
    try:
        return np.fromiter((_CHAR_TO_TOKEN[char] for char in text), dtype=np.uint8, count=len(text))
    except KeyError as exc:
        raise ValueError(f"character {exc.args[0]!r} is not one of {CHARSET!r}") from None


def decode(tokens: Iterable[int]) -> str:
    """Tokens -> maze string; tokens outside 1..5 become '?'."""
    array = np.asarray(tokens).ravel().astype(np.int64)
    array = np.where((array >= 1) & (array < VOCAB_SIZE), array, 0)
    return "".join(_TOKEN_TO_CHAR[array])


def neighbours(cell: int, side: int) -> Iterable[int]:
    """4-neighbours of a flat cell index (up, left, right, down)."""
    row, col = divmod(cell, side)
    if row > 0:
        yield cell - side
    if col > 0:
        yield cell - 1
    if col < side - 1:
        yield cell + 1
    if row < side - 1:
        yield cell + side


def bfs(passable: np.ndarray, source: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Distances (moves; -1 where unreachable) and BFS parents (-1 at the source) from ``source`` over ``passable``."""
    passable_list = passable.ravel().tolist()
    distance = [-1] * len(passable_list)
    parent = [-1] * len(passable_list)
    distance[source] = 0
    queue = deque([source])
    while queue:
        cell = queue.popleft()
        next_distance = distance[cell] + 1
        for other in neighbours(cell, side):
            if passable_list[other] and distance[other] < 0:
                distance[other] = next_distance
                parent[other] = cell
                queue.append(other)
    return np.array(distance, dtype=np.int64), np.array(parent, dtype=np.int64)


def endpoints(tokens: np.ndarray) -> tuple[int, int]:
    """Flat indices of the single S and single G; ValueError when either is missing or repeated."""
    flat = np.asarray(tokens).ravel()
    starts, goals = np.flatnonzero(flat == START), np.flatnonzero(flat == GOAL)
    if len(starts) != 1 or len(goals) != 1:
        raise ValueError(f"a maze needs exactly one S and one G, found {len(starts)} S and {len(goals)} G")
    return int(starts[0]), int(goals[0])


def shortest_distance(question: np.ndarray) -> int:
    """BFS moves from S to G through non-wall cells of a question; -1 when G cannot be reached."""
    flat = np.asarray(question).ravel()
    start, goal = endpoints(flat)
    distance, _ = bfs(flat != WALL, start, side_of(len(flat)))
    return int(distance[goal])


# Tie-break of Maze-Hard's labels, found by testing all 48 rules "walk from S (or back from G), stepping to the
# first neighbour, in a fixed direction order, that is one move closer to the other end" on 100 training mazes: only
# this one matched all of them, and it reproduces all 2,000 published labels (tests/test_maze.py checks it).
LABEL_DIRECTION_ORDER = ("down", "left", "right", "up")
_STEP = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}


def solve(question: np.ndarray) -> np.ndarray:
    """The answer to a question: one shortest S-to-G path marked with PATH tokens (S and G kept).

    Among the many shortest paths (a median of ~3.8M per Maze-Hard maze) it marks the one the Maze-Hard labels
    use: from S, repeatedly step to the first neighbour in the order down, left, right, up whose BFS distance to G
    is one less. So generated labels follow the real data's convention, and the label is a deterministic, local
    function of the maze. ValueError when G is unreachable.
    """
    flat = np.asarray(question).ravel()
    side = side_of(len(flat))
    start, goal = endpoints(flat)
    to_goal, _ = bfs(flat != WALL, goal, side)
    if to_goal[start] < 0:
        raise ValueError("the goal cannot be reached from the start")
    answer = flat.astype(np.uint8).copy()
    cell = start
    while to_goal[cell] > 1:
        row, col = divmod(cell, side)
        for direction in LABEL_DIRECTION_ORDER:
            d_row, d_col = _STEP[direction]
            r, c = row + d_row, col + d_col
            if 0 <= r < side and 0 <= c < side and to_goal[r * side + c] == to_goal[cell] - 1:
                cell = r * side + c
                break
        answer[cell] = PATH
    return answer


def check_path(question: np.ndarray, answer: np.ndarray, *, shortest: int | None = None) -> tuple[bool, bool]:
    """Judge the PATH cells of ``answer`` against ``question``: (connects S to G, is a shortest path).

    Only the cells marked PATH are read; other cells of ``answer`` do not matter here. The path cells must lie on
    open cells of the question. "Connects" means G is reachable from S moving through path cells only. "Shortest"
    additionally means there are exactly (BFS distance - 1) path cells: a connecting set of that size can only be
    one shortest path, with no stray cells. ``shortest`` is the BFS distance when the caller already knows it.
    """
    flat_question = np.asarray(question).ravel()
    flat_answer = np.asarray(answer).ravel()
    start, goal = endpoints(flat_question)
    on_path = flat_answer == PATH
    if np.any(on_path & (flat_question != OPEN)):
        return False, False
    passable = on_path.copy()
    passable[start] = passable[goal] = True
    distance, _ = bfs(passable, start, side_of(len(flat_question)))
    connects = bool(distance[goal] > 0)
    if not connects:
        return False, False
    if shortest is None:
        shortest = shortest_distance(flat_question)
    return True, int(on_path.sum()) == shortest - 1


def verify_example(question: np.ndarray, answer: np.ndarray) -> None:
    """ValueError unless ``answer`` is ``question`` with exactly one shortest S-to-G path marked (a valid label)."""
    flat_question = np.asarray(question).ravel()
    flat_answer = np.asarray(answer).ravel()
    if flat_question.shape != flat_answer.shape:
        raise ValueError(f"question has {flat_question.size} cells but answer has {flat_answer.size}")
    if np.any(flat_question == PATH):
        raise ValueError("the question already contains path cells 'o'")
    changed = flat_question != flat_answer
    if np.any(changed & ~((flat_question == OPEN) & (flat_answer == PATH))):
        raise ValueError("the answer differs from the question by more than open cells becoming 'o'")
    shortest = shortest_distance(flat_question)
    if shortest < 0:
        raise ValueError("the goal cannot be reached from the start")
    connects, is_shortest = check_path(flat_question, flat_answer, shortest=shortest)
    if not connects:
        raise ValueError("the marked path does not connect S to G")
    if not is_shortest:
        marked = int((flat_answer == PATH).sum()) + 1
        raise ValueError(f"the marked path has {marked} moves but the shortest has {shortest}")

"""Offline Sudoku generator: random solved boards, clues removed while the solution stays unique.

1. A random complete board: the solver's search with shuffled digit order on an empty board.
2. Cells are visited in random order; a clue is removed when the board without it has no solution with another
   digit in that cell (so the puzzle always keeps exactly one solution). The result is *minimal*: no clue can go.
3. The puzzle is rated by :meth:`Solver.rate` (guesses needed); puzzles outside ``[min_guesses, max_guesses]`` are
   thrown away and another is made. Hard targets on 9x9 need many tries: random minimal puzzles are mostly easy.

Every accepted puzzle is checked once more with a full solution count (limit 2) before it is returned.
"""

from __future__ import annotations

import random
from typing import Iterator

from trm.heldout import Deduplicator
from trm_sudoku.solver import Solver


def _board_key(board: list[int]) -> str:
    """The digits of a board as one string (what ``exclude`` holds)."""
    return "".join(map(str, board))


def random_solution(solver: Solver, rng: random.Random) -> list[int]:
    return solver.solve([0] * solver.cells, limit=1, rng=rng)[0]


def minimal_puzzle(solver: Solver, solution: list[int], rng: random.Random) -> list[int]:
    """Clues of ``solution`` removed in random order as long as the solution stays unique."""
    board = list(solution)
    order = list(range(solver.cells))
    rng.shuffle(order)
    for cell in order:
        value = board[cell]
        board[cell] = 0
        if solver.has_other_solution(board, cell, value):
            board[cell] = value
    return board


def generate_puzzles(size: int, count: int, *, seed: int, min_guesses: int = 0, max_guesses: int | None = None,
                     max_tries: int | None = None, exclude: set[str] | None = None) -> Iterator[tuple[list[int], list[int], int]]:
    """Yield ``count`` distinct ``(puzzle, solution, guesses)`` with guesses in ``[min_guesses, max_guesses]``.

    Every puzzle differs from the others and from the boards in ``exclude`` (digit strings, e.g. a held-out
    split's); the caller splits them into train and test, which therefore share no puzzle.
    Raises ValueError when ``max_tries`` (default ``200 * count``) candidates did not give enough puzzles.
    """
    solver = Solver(size)
    rng = random.Random(seed)
    seen = Deduplicator(key=_board_key)  # exact: the shuffles of a puzzle are not excluded (see docs/tasks/sudoku.md)
    for key in exclude or ():
        seen.add_key(key, "excluded")
    tries, made = 0, 0
    limit = max_tries if max_tries is not None else 200 * count
    while made < count:
        if tries >= limit:
            raise ValueError(f"made only {made} of {count} {size}x{size} puzzles with {min_guesses}.."
                             f"{max_guesses if max_guesses is not None else 'any'} guesses in {tries} tries; "
                             "widen the difficulty range")
        tries += 1
        solution = random_solution(solver, rng)
        puzzle = minimal_puzzle(solver, solution, rng)
        key = _board_key(puzzle)
        if seen.has_key(key):
            continue
        guesses = solver.rate(puzzle)
        if guesses < min_guesses or (max_guesses is not None and guesses > max_guesses):
            continue
        if solver.count_solutions(puzzle, limit=2) != 1:  # belt and braces: removal kept uniqueness
            raise AssertionError(f"generator produced a puzzle without a unique solution: {key}")
        seen.add_key(key, "generated")
        made += 1
        yield puzzle, solution, guesses

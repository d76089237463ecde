"""A propagate-and-backtrack Sudoku solver on bitmasks, for boards of 4x4, 6x6 and 9x9.

Each cell holds a bitmask of its candidate digits (bit d = digit d+1). Propagation applies naked singles (a cell
with one candidate removes it from its peers) and hidden singles (a digit with one place left in a row, column or
box goes there) until nothing changes; search then branches on a cell with the fewest candidates.

Difficulty is the **number of guesses**: branch decisions that were not forced (the last candidate left at a branch
point is forced, not guessed) while searching for the first solution with a fixed cell and digit order. 0 means
singles alone solve the puzzle. The Sudoku-Extreme ``rating`` column counts guesses of tdoku's DPLL solver
(/work/shared/data/sudoku/SOURCE.md), which propagates more strongly, so the two scales agree in kind, not in value.
"""

from __future__ import annotations

import random
from functools import lru_cache

BOX_SHAPES = {4: (2, 2), 6: (2, 3), 9: (3, 3)}  # board size -> (box rows, box columns)


class Contradiction(Exception):
    pass


@lru_cache(maxsize=None)
def geometry(size: int) -> tuple[tuple[tuple[int, ...], ...], tuple[tuple[int, ...], ...]]:
    """``(units, peers)``: the rows, columns and boxes of a board, and each cell's peers."""
    if size not in BOX_SHAPES:
        raise ValueError(f"unsupported board size {size}; expected one of {sorted(BOX_SHAPES)}")
    box_rows, box_cols = BOX_SHAPES[size]
    rows = [tuple(r * size + c for c in range(size)) for r in range(size)]
    cols = [tuple(r * size + c for r in range(size)) for c in range(size)]
    boxes = [
        tuple((br + r) * size + bc + c for r in range(box_rows) for c in range(box_cols))
        for br in range(0, size, box_rows) for bc in range(0, size, box_cols)
    ]
    units = tuple(rows + cols + boxes)
    peers = tuple(
        tuple(sorted({p for unit in units if cell in unit for p in unit} - {cell})) for cell in range(size * size)
    )
    return units, peers


class Solver:
    """Solutions and guess counts of boards given as lists of ints (0 = blank, 1..size = digits)."""

    def __init__(self, size: int = 9):
        self.size = size
        self.cells = size * size
        self.full = (1 << size) - 1
        self.units, self.peers = geometry(size)
        self.guesses = 0

    # ---- propagation ---------------------------------------------------------------------------------------

    def _propagate(self, cand: list[int], queue: list[int]) -> bool:
        """Apply singles in place; False on a contradiction."""
        peers, units, full = self.peers, self.units, self.full
        while True:
            while queue:
                cell = queue.pop()
                bit = cand[cell]
                for peer in peers[cell]:
                    mask = cand[peer]
                    if mask & bit:
                        mask &= ~bit
                        if not mask:
                            return False
                        cand[peer] = mask
                        if not mask & (mask - 1):
                            queue.append(peer)
            for unit in units:
                once = more = 0
                for cell in unit:
                    mask = cand[cell]
                    more |= once & mask
                    once |= mask
                if once != full:
                    return False  # some digit has no place left in this unit
                hidden = once & ~more
                if not hidden:
                    continue
                for cell in unit:
                    mask = cand[cell]
                    pick = mask & hidden
                    if pick and mask != pick:
                        if pick & (pick - 1):
                            return False  # two digits need this one cell
                        cand[cell] = pick
                        queue.append(cell)
            if not queue:
                return True

    def candidates(self, board: list[int]) -> list[int] | None:
        """Propagated candidate masks of ``board``, or None when the clues contradict each other."""
        cand = [self.full] * self.cells
        queue = []
        for cell, value in enumerate(board):
            if value:
                bit = 1 << (value - 1)
                if not cand[cell] & bit:
                    return None
                cand[cell] = bit
                queue.append(cell)
        return cand if self._propagate(cand, queue) else None

    # ---- search --------------------------------------------------------------------------------------------

    def _search(self, cand: list[int], limit: int, found: list[list[int]], rng: random.Random | None) -> None:
        best, best_count = -1, 99
        for cell, mask in enumerate(cand):
            if mask & (mask - 1):
                count = mask.bit_count()
                if count < best_count:
                    best, best_count = cell, count
                    if count == 2:
                        break
        if best < 0:
            found.append(cand)
            return
        mask = cand[best]
        bits = [1 << d for d in range(self.size) if mask >> d & 1]
        if rng is not None:
            rng.shuffle(bits)
        for number, bit in enumerate(bits):
            if number < len(bits) - 1:
                self.guesses += 1
            child = cand[:]
            child[best] = bit
            if self._propagate(child, [best]):
                self._search(child, limit, found, rng)
                if len(found) >= limit:
                    return

    def solve(self, board: list[int], *, limit: int = 1, rng: random.Random | None = None) -> list[list[int]]:
        """Up to ``limit`` solutions (lists of digits); ``self.guesses`` counts guesses of this call."""
        self.guesses = 0
        cand = self.candidates(board)
        if cand is None:
            return []
        found: list[list[int]] = []
        self._search(cand, limit, found, rng)
        return [[mask.bit_length() for mask in solution] for solution in found]

    def count_solutions(self, board: list[int], limit: int = 2) -> int:
        return len(self.solve(board, limit=limit))

    def rate(self, board: list[int]) -> int:
        """Guesses to find the first solution (the difficulty; -1 if there is none)."""
        solutions = self.solve(board, limit=1)
        return self.guesses if solutions else -1

    def has_other_solution(self, board: list[int], cell: int, value: int) -> bool:
        """Whether ``board`` (with ``cell`` blank) has a solution where ``cell`` is not ``value``."""
        cand = self.candidates(board)
        if cand is None:
            return False
        cand[cell] &= ~(1 << (value - 1))
        if not cand[cell]:
            return False
        queue = [cell] if not cand[cell] & (cand[cell] - 1) else []
        if not self._propagate(cand, queue):
            return False
        found: list[list[int]] = []
        self._search(cand, 1, found, None)
        return bool(found)

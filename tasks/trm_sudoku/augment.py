"""Validity-preserving Sudoku shuffles (docs/reference-code.md 1.1), generalised to 4x4 and 6x6 boards.

One shuffle applies the same transform to a puzzle and its solution, drawn in the reference's order:
1. a digit relabelling (a permutation of 1..size; blank 0 stays 0: :func:`trm.symmetry.random_value_maps`);
2. a transpose with probability 1/2, applied first (only for square boxes: a 6x6 board's 2x3 boxes would become 3x2);
3. a row permutation: permute the bands (rows of boxes), then the rows inside each band independently;
4. a column permutation: the same over the stacks (columns of boxes);
5. new cell (i, j) takes old cell (row_perm[i], col_perm[j]) of the (transposed) board; then the digit map applies.
Every such transform maps a valid board to a valid board and keeps the clue count. Version 0 is the original.
"""

from __future__ import annotations

import numpy as np

from trm.symmetry import random_value_maps
from trm_sudoku.solver import BOX_SHAPES


def _block_permutations(rng: np.random.Generator, count: int, blocks: int, width: int) -> np.ndarray:
    """``count`` permutations of ``blocks * width`` lines that permute whole blocks and lines inside each block."""
    block_order = np.argsort(rng.random((count, blocks)), axis=1)
    inner = np.argsort(rng.random((count, blocks, width)), axis=2)
    return (block_order[:, :, None] * width + inner).reshape(count, blocks * width)


def shuffle_boards(puzzle: np.ndarray, solution: np.ndarray, count: int, rng: np.random.Generator,
                   size: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """``count`` random shuffles of one board pair (digits, 0 = blank) -> two arrays [count, size*size]."""
    box_rows, box_cols = BOX_SHAPES[size]
    digit_maps = random_value_maps(rng, count, size + 1, fixed=(0,))  # blank 0 stays blank
    transpose = rng.random(count) < 0.5 if box_rows == box_cols else np.zeros(count, dtype=bool)
    row_perm = _block_permutations(rng, count, size // box_rows, box_rows)  # bands of box_rows rows
    col_perm = _block_permutations(rng, count, size // box_cols, box_cols)  # stacks of box_cols columns
    mapping = row_perm[:, :, None] * size + col_perm[:, None, :]  # [count, size, size] source cell of each cell
    mapping = mapping.reshape(count, size * size)
    out = []
    for board in (puzzle, solution):
        grid = np.asarray(board, dtype=np.uint8).reshape(size, size)
        sources = np.where(transpose[:, None], grid.T.reshape(1, -1), grid.reshape(1, -1))  # [count, cells]
        moved = np.take_along_axis(sources, mapping, axis=1)
        out.append(np.take_along_axis(digit_maps, moved.astype(np.int64), axis=1))
    return out[0], out[1]


def is_valid_solution(board: np.ndarray, size: int = 9) -> bool:
    """Every row, column and box holds each digit 1..size once."""
    box_rows, box_cols = BOX_SHAPES[size]
    grid = np.asarray(board).reshape(size, size)
    want = set(range(1, size + 1))
    boxes = grid.reshape(size // box_rows, box_rows, size // box_cols, box_cols).transpose(0, 2, 1, 3)
    return (all(set(row) == want for row in grid) and all(set(col) == want for col in grid.T)
            and all(set(box.ravel()) == want for band in boxes for box in band))

"""Text rendering of Sudoku token sequences, for reports and inference commands.

Tokens: 0 PAD (shown as a space), 1 blank (shown as ``.``), 2..10 the digits 1..9. Box lines follow the board's
box shape (2x2, 2x3 or 3x3), inferred from the sequence length.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from trm_sudoku.solver import BOX_SHAPES


def token_char(token: int) -> str:
    if token == 0:
        return " "
    if token == 1:
        return "."
    if 2 <= token <= 10:
        return str(token - 1)
    return "?"


def render(tokens: Any, info: Any = None) -> str:
    """A board with box separators, e.g. ``5 3 . | . 7 . | . . .`` rows and ``------+-------+------`` lines."""
    flat = np.asarray(tokens).ravel().tolist()
    size = math.isqrt(len(flat))
    if size * size != len(flat) or size not in BOX_SHAPES:
        return " ".join(token_char(int(t)) for t in flat)
    box_rows, box_cols = BOX_SHAPES[size]
    lines = []
    for r in range(size):
        if r and r % box_rows == 0:
            lines.append("-+-".join(["-" * (2 * box_cols - 1)] * (size // box_cols)))
        cells = [token_char(int(t)) for t in flat[r * size:(r + 1) * size]]
        lines.append(" | ".join(" ".join(cells[c:c + box_cols]) for c in range(0, size, box_cols)))
    return "\n".join(lines)

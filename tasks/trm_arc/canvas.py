"""ARC grids <-> 30x30 token canvases with the EOS border, and the evaluator's crop.

docs/reference-code.md 1.3 ("Tokenisation") and 7 ("Per example", step 2). Tokens: PAD 0, EOS 1, colour c -> c + 2, so the
vocabulary has 12 tokens and a flattened canvas 900. A grid of size h x w placed at (r0, c0) gets an L-shaped EOS
border: the row segment just below it and the column segment just right of it (each only where it still lies on the
canvas); the corner stays PAD. PAD cells are ignored by the loss; EOS cells are supervised, which teaches the model
the output's shape. The crop finds the largest top-left-anchored rectangle of colour tokens, which is where a
prediction's grid is, since evaluation examples are never translated.
"""

from __future__ import annotations

import numpy as np

CANVAS = 30  # ARC grids are at most 30 x 30
SEQ_LEN = CANVAS * CANVAS
PAD, EOS, COLOUR_OFFSET = 0, 1, 2
VOCAB_SIZE = COLOUR_OFFSET + 10
TOKEN_NAMES = ["<pad>", "<eos>"] + [f"colour{c}" for c in range(10)]


def grid_to_canvas(grid: np.ndarray, r0: int = 0, c0: int = 0) -> np.ndarray:
    """One grid on a flattened canvas [900] uint8 at offset (r0, c0), with its EOS border."""
    grid = np.asarray(grid)
    h, w = grid.shape
    if not (1 <= h and 1 <= w and r0 + h <= CANVAS and c0 + w <= CANVAS and r0 >= 0 and c0 >= 0):
        raise ValueError(f"grid of shape {grid.shape} at ({r0}, {c0}) does not fit a {CANVAS}x{CANVAS} canvas")
    canvas = np.zeros((CANVAS, CANVAS), dtype=np.uint8)
    canvas[r0:r0 + h, c0:c0 + w] = grid + COLOUR_OFFSET
    if r0 + h < CANVAS:
        canvas[r0 + h, c0:c0 + w] = EOS
    if c0 + w < CANVAS:
        canvas[r0:r0 + h, c0 + w] = EOS
    return canvas.reshape(SEQ_LEN)


def crop_sizes(canvases: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the largest top-left rectangle of colour tokens on each canvas [B, 900] (or [900]).

    Row by row from the top, the usable width is the running minimum of each row's colour prefix; the chosen
    rectangle is the first of maximal area, as the reference's scan (a canvas with no colour at (0, 0) gives 0 x 0).
    """
    tokens = np.asarray(canvases).reshape(-1, CANVAS, CANVAS)
    is_colour = (tokens >= COLOUR_OFFSET) & (tokens < VOCAB_SIZE)
    # prefix width of each row: index of the first non-colour cell (30 when the whole row is colour)
    blocked = ~is_colour
    prefix = np.where(blocked.any(axis=2), blocked.argmax(axis=2), CANVAS)
    width = np.minimum.accumulate(prefix, axis=1)
    area = width * np.arange(1, CANVAS + 1)[None, :]
    best = area.argmax(axis=1)
    rows = np.where(area.max(axis=1) > 0, best + 1, 0)
    cols = np.where(rows > 0, width[np.arange(len(best)), best], 0)
    return rows, cols


def crop_canvas(canvas: np.ndarray) -> np.ndarray:
    """The colour grid (values 0..9, uint8) at the top-left of one canvas [900]."""
    (rows,), (cols,) = crop_sizes(canvas)
    grid = np.asarray(canvas).reshape(CANVAS, CANVAS)[:rows, :cols]
    return (grid.astype(np.int64) - COLOUR_OFFSET).astype(np.uint8)


def crop_canvases(canvases: np.ndarray) -> list[np.ndarray]:
    """:func:`crop_canvas` of every row of [B, 900], computing the sizes in one vectorised pass."""
    canvases = np.asarray(canvases).reshape(-1, CANVAS, CANVAS)
    rows, cols = crop_sizes(canvases)
    return [(canvases[i, :r, :c].astype(np.int64) - COLOUR_OFFSET).astype(np.uint8)
            for i, (r, c) in enumerate(zip(rows.tolist(), cols.tolist()))]


def render_canvas(tokens: np.ndarray) -> str:
    """Text of one canvas: the cropped grid's digits, one row per line (``.`` marks an empty crop)."""
    grid = crop_canvas(np.asarray(tokens).ravel()[:SEQ_LEN])
    if grid.size == 0:
        return "."
    return "\n".join("".join(str(int(v)) for v in row) for row in grid)

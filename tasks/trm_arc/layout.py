"""Canvases of every version of one task's examples at once (the builder's inner loop, vectorised).

Same result as calling ``canvas.grid_to_canvas`` on ``augment_grid(grid, tid, colour_map)`` for each example and
version (tests/test_arc.py checks that), but each dihedral id's cell positions, EOS positions and pre-map colours are
computed once per task; a block of versions is then one fancy-indexed assignment. docs/reference-code.md 1.3
("Tokenisation"): input and output share the example's offset; the train split translates every example but one
(``no_aug_id``) per version, the test split translates nothing.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from trm_arc.canvas import CANVAS, COLOUR_OFFSET, EOS, SEQ_LEN
from trm_arc.transforms import dihedral

Pair = tuple[np.ndarray, np.ndarray]


class _TidLayout:
    """Cells and EOS cells of all 2E grids (input 0, output 0, input 1, ...) under one dihedral transform."""

    def __init__(self, pairs: Sequence[Pair], tid: int):
        grids = [dihedral(g, tid) for pair in pairs for g in pair]
        self.heights = np.array([g.shape[0] for g in grids])
        self.widths = np.array([g.shape[1] for g in grids])
        cell_grid, cell_local, cell_value, eos_grid, eos_local, eos_right = [], [], [], [], [], []
        for index, g in enumerate(grids):
            h, w = g.shape
            rows, cols = np.divmod(np.arange(h * w), w)
            cell_grid.append(np.full(h * w, index))
            cell_local.append(rows * CANVAS + cols)
            cell_value.append(np.ascontiguousarray(g).ravel())
            eos_grid.append(np.full(h + w, index))
            eos_local.append(np.concatenate([h * CANVAS + np.arange(w), np.arange(h) * CANVAS + w]))
            eos_right.append(np.concatenate([np.zeros(w, bool), np.ones(h, bool)]))
        self.cell_grid = np.concatenate(cell_grid)
        self.cell_example = self.cell_grid // 2
        self.cell_offset = self.cell_grid * SEQ_LEN + np.concatenate(cell_local)
        self.cell_value = np.concatenate(cell_value).astype(np.intp)
        self.eos_grid = np.concatenate(eos_grid)
        self.eos_example = self.eos_grid // 2
        self.eos_offset = self.eos_grid * SEQ_LEN + np.concatenate(eos_local)
        self.eos_right = np.concatenate(eos_right)
        # per example: the larger height / width of its input and output (they share one offset)
        self.max_height = np.maximum(self.heights[0::2], self.heights[1::2])
        self.max_width = np.maximum(self.widths[0::2], self.widths[1::2])


class TaskLayout:
    """Renders versions of one task's examples (one split's pairs) to token canvases."""

    def __init__(self, pairs: Sequence[Pair]):
        self.num_examples = len(pairs)
        self.by_tid = [_TidLayout(pairs, tid) for tid in range(8)]

    def draw_offsets(self, tids: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Random offsets (rows [V, E], cols [V, E]) for translated training examples; one example per version
        (its ``no_aug_id``) stays at (0, 0)."""
        count, examples = len(tids), self.num_examples
        max_h = np.stack([self.by_tid[t].max_height for t in range(8)])[tids]
        max_w = np.stack([self.by_tid[t].max_width for t in range(8)])[tids]
        rows = rng.integers(0, CANVAS - max_h + 1)
        cols = rng.integers(0, CANVAS - max_w + 1)
        keep = rng.integers(0, examples, size=count)
        rows[np.arange(count), keep] = 0
        cols[np.arange(count), keep] = 0
        return rows, cols

    def render(self, tids: np.ndarray, colour_maps: np.ndarray, rows: np.ndarray | None = None,
               cols: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(inputs [V, E, 900], labels [V, E, 900]) uint8 of the versions; offsets default to (0, 0)."""
        count, examples = len(tids), self.num_examples
        if rows is None:
            rows = np.zeros((count, examples), dtype=np.int64)
            cols = np.zeros((count, examples), dtype=np.int64)
        canvases = np.zeros((count, 2 * examples * SEQ_LEN), dtype=np.uint8)
        for tid in np.unique(tids):
            layout = self.by_tid[int(tid)]
            versions = np.flatnonzero(tids == tid)
            r, c = rows[versions], cols[versions]  # [n, E]
            shift = r * CANVAS + c
            line = versions[:, None]
            cells = layout.cell_offset[None, :] + shift[:, layout.cell_example]
            canvases[line, cells] = colour_maps[versions][:, layout.cell_value] + COLOUR_OFFSET
            eos_r, eos_c = r[:, layout.eos_example], c[:, layout.eos_example]
            fits = np.where(layout.eos_right[None, :],
                            eos_c + layout.widths[layout.eos_grid][None, :] < CANVAS,
                            eos_r + layout.heights[layout.eos_grid][None, :] < CANVAS)
            eos = layout.eos_offset[None, :] + shift[:, layout.eos_example]
            line_eos = np.broadcast_to(line, eos.shape)
            canvases[line_eos[fits], eos[fits]] = EOS
        canvases = canvases.reshape(count, examples, 2, SEQ_LEN)
        return canvases[:, :, 0], canvases[:, :, 1]

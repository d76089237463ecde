"""Trajectory pictures: the decoded answer after each supervision step, changed cells outlined, q_halt per step.

A PNG shows the puzzle, then one panel per step (and the known answer when given); a GIF shows the puzzle beside
one step per frame. The task draws each panel through its ``TaskSpec.draw`` hook (docs/plugins.md); a task
without one gets :func:`draw_tokens`, a square grid of token colours. :func:`outline_cells` is the highlight every
drawing uses, so the pictures of all tasks read the same way.
"""

from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from trm.errors import UserError
from trm.types import SolveContext

PICTURE_SUFFIXES = (".png", ".gif")
HIGHLIGHT = "#ff7f0e"  # changed cells: an orange outline, visible on light and dark cells
MAX_COLUMNS = 8
LEGEND = "(outlined: cells changed by the step)"
TITLE_LINE_INCHES = 0.2  # the height one more line of a figure title takes at fontsize 10


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def check_picture_path(path: Path, option: str = "--trajectory") -> Path:
    """``path`` if it ends in .png or .gif and its directory exists; else a one-line UserError."""
    path = Path(path)
    if path.suffix.lower() not in PICTURE_SUFFIXES:
        raise UserError(f"{option} {path}: expected a .png or .gif file name")
    if not path.parent.is_dir():
        raise UserError(f"{option} {path}: no such directory {path.parent}")
    return path


def grid_shape(length: int) -> tuple[int, int]:
    """(rows, cols) of a flat sequence: square when it is a square number, else one row."""
    side = math.isqrt(length)
    return (side, side) if side * side == length else (1, length)


def outline_cells(axes: Any, changed: Any, shape: tuple[int, int], *, colour: str = HIGHLIGHT) -> None:
    """Tint and outline every True cell of ``changed`` ([rows * cols], row-major) on an ``imshow``-style axes."""
    from matplotlib.patches import Rectangle

    if changed is None:
        return
    mask = np.asarray(changed, dtype=bool).reshape(shape)
    rows, cols = shape
    width = min(2.5, max(0.6, 12.0 / max(rows, cols)))  # thick on a 4x4 board, thin on a 30x30 canvas
    for r, c in zip(*np.nonzero(mask)):
        # a tint and an outline, above grid lines but below digits (text draws at zorder 3)
        axes.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor=colour, alpha=0.25, linewidth=0, zorder=2.4))
        axes.add_patch(Rectangle((c - 0.45, r - 0.45), 0.9, 0.9, fill=False, edgecolor=colour, linewidth=width,
                                 zorder=2.5))


def draw_tokens(axes: Any, tokens: Any, inputs: Any, changed: Any, context: SolveContext | None) -> None:
    """The fallback drawing: tokens as colours on a square grid (one row when the length is not square)."""
    flat = np.asarray(tokens).ravel()
    shape = grid_shape(len(flat))
    vocab = context.vocab_size if context is not None else int(flat.max()) + 1
    axes.imshow(flat.reshape(shape), cmap="tab20", vmin=0, vmax=max(vocab - 1, 1), interpolation="nearest")
    outline_cells(axes, changed, shape)


def _plain(axes: Any) -> None:
    axes.set_xticks([])
    axes.set_yticks([])


def _drawer(task: Any) -> Callable[..., None]:
    return task.draw if getattr(task, "draw", None) is not None else draw_tokens


def panels(inputs: Any, steps: Sequence[Any]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(tokens, changed) per step: a cell is changed when it differs from the step before (step 1: from the input)."""
    before = np.asarray(inputs).ravel()
    shown = []
    for tokens in steps:
        tokens = np.asarray(tokens).ravel()
        shown.append((tokens, tokens != before))
        before = tokens
    return shown


def fit_title(figure: Any, parts: Sequence[str], *, fontsize: float = 10, margin: float = 0.96) -> Any:
    """``figure.suptitle`` of ``parts`` that fits within ``margin`` of the figure's width: on one line when it fits,
    else one part a line, else each part wrapped (textwrap) until the widest line fits. Returns the title artist."""
    parts = [part for part in parts if part]
    title = figure.suptitle("   ".join(parts), fontsize=fontsize)
    room = figure.bbox.width * margin

    def fits() -> bool:
        return title.get_window_extent().width <= room  # measured with the figure's renderer

    if fits():
        return title
    title.set_text("\n".join(parts))
    width = max(len(part) for part in parts)
    while not fits() and width > 8:
        width = max(8, int(width * 0.9))
        title.set_text("\n".join(line for part in parts for line in textwrap.wrap(part, width)))
    return title


def step_title(step: int, q_halt: float, halted: bool) -> str:
    return f"step {step}{' (halt)' if halted else ''}\nq_halt {q_halt:+.2f}"


def draw_trajectory(path: Path, task: Any, context: SolveContext, inputs: Any, steps: Sequence[Any],
                    q_halt: Sequence[float], *, label: Any = None, title: str = "", max_steps: int | None = None,
                    fps: float = 1.5) -> Path:
    """Write the trajectory of one puzzle to ``path`` (.png: every step in one figure; .gif: a frame per step).

    ``steps`` [S, L] are the predictions after each supervision step, ``q_halt`` [S] the halting logits. The last
    step is marked "(halt)" when it came before ``max_steps``.
    """
    path = Path(path)
    plt = pyplot()
    draw = _drawer(task)
    shown = panels(inputs, steps)
    stopped_early = max_steps is not None and len(shown) < max_steps
    heading = title or f"{len(shown)} supervision step{'s' if len(shown) != 1 else ''}"
    temporary = path.with_name(f".{path.name}.partial-{os.getpid()}{path.suffix}")
    if path.suffix.lower() == ".gif":
        _write_gif(temporary, plt, draw, context, inputs, shown, q_halt, label, heading, stopped_early, fps)
    else:
        _write_png(temporary, plt, draw, context, inputs, shown, q_halt, label, heading, stopped_early)
    os.replace(temporary, path)
    return path


def _write_png(target: Path, plt: Any, draw: Callable[..., None], context: SolveContext, inputs: Any,
               shown: list, q_halt: Sequence[float], label: Any, heading: str, stopped_early: bool) -> None:
    count = 1 + len(shown) + (label is not None)
    columns = min(count, MAX_COLUMNS)
    rows = math.ceil(count / columns)
    figure, grid = plt.subplots(rows, columns, figsize=(2.3 * columns, 2.6 * rows + 0.5), squeeze=False)
    axes = list(grid.ravel())
    draw(axes[0], np.asarray(inputs).ravel(), None, None, context)
    axes[0].set_title("puzzle", fontsize=9)
    for index, (tokens, changed) in enumerate(shown):
        panel = axes[1 + index]
        draw(panel, tokens, np.asarray(inputs).ravel(), changed, context)
        last = index == len(shown) - 1
        panel.set_title(step_title(index + 1, float(q_halt[index]), last and stopped_early), fontsize=9)
    if label is not None:
        panel = axes[1 + len(shown)]
        draw(panel, np.asarray(label).ravel(), np.asarray(inputs).ravel(), None, context)
        panel.set_title("known answer", fontsize=9)
    for panel in axes:
        _plain(panel)
    for panel in axes[count:]:
        panel.axis("off")
    title = fit_title(figure, [heading, LEGEND], fontsize=10)
    extra = title.get_text().count("\n")  # a wrapped title gets the height of its further lines
    if extra:
        figure.set_size_inches(figure.get_figwidth(), figure.get_figheight() + extra * TITLE_LINE_INCHES)
    figure.tight_layout()
    figure.savefig(target, dpi=100, format="png")
    plt.close(figure)


def _write_gif(target: Path, plt: Any, draw: Callable[..., None], context: SolveContext, inputs: Any,
               shown: list, q_halt: Sequence[float], label: Any, heading: str, stopped_early: bool,
               fps: float) -> None:
    from matplotlib.animation import PillowWriter

    figure, (left, right) = plt.subplots(1, 2, figsize=(5.2, 3.2))
    writer = PillowWriter(fps=fps)
    heading = fit_title(figure, [heading], fontsize=10).get_text()  # wrapped to the frame's width
    with writer.saving(figure, str(target), dpi=100):
        for index, (tokens, changed) in enumerate(shown):
            left.clear()
            right.clear()
            draw(left, np.asarray(inputs).ravel(), None, None, context)
            left.set_title("puzzle", fontsize=9)
            draw(right, tokens, np.asarray(inputs).ravel(), changed, context)
            last = index == len(shown) - 1
            right.set_title(step_title(index + 1, float(q_halt[index]), last and stopped_early), fontsize=9)
            for panel in (left, right):
                _plain(panel)
            figure.suptitle(heading, fontsize=10)
            figure.tight_layout()
            writer.grab_frame()
        writer.grab_frame()  # the last step stays on screen a beat longer before the loop restarts
    plt.close(figure)


def numbered(path: Path, index: int, count: int) -> Path:
    """``out.png`` for a single puzzle, ``out-3.png`` for the third of several."""
    path = Path(path)
    return path if count == 1 else path.with_name(f"{path.stem}-{index + 1}{path.suffix}")

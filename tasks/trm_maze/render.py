"""Text pictures of mazes, and of a predicted path drawn against the question (and the label when known).

``render_maze`` draws one token sequence with the dataset's own characters (``#`` wall, ``.`` open, ``S``, ``G``,
``o`` path; ``?`` for anything else) so that spaces stay visible. ``render_prediction`` shows the question, the raw
prediction and a panel marking where the prediction goes wrong; its legend is printed under the grids.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trm_maze.grid import GOAL, OPEN, PATH, START, WALL, check_path, decode, side_of, shortest_distance

LEGEND = ("marks: o path cell also in the label, x predicted path cell not in the label, * label path cell missed, "
          "! other cell predicted wrong")


def render_maze(tokens: Any, info: Any = None) -> str:
    """One maze (question, answer or prediction tokens) as ``side`` lines of text; open cells shown as ``.``."""
    text = decode(tokens).replace(" ", ".")
    side = side_of(len(text))
    return "\n".join(text[row * side:(row + 1) * side] for row in range(side))


def _verdict(question: np.ndarray, prediction: np.ndarray) -> str:
    try:
        shortest = shortest_distance(question)
        connects, is_shortest = check_path(question, prediction, shortest=shortest)
    except ValueError as exc:
        return f"path: cannot be judged ({exc})"
    moves = int((prediction == PATH).sum()) + 1
    if is_shortest:
        return f"path: a shortest path ({shortest} moves)"
    if connects:
        return f"path: connects S to G but marks {moves - 1} cells (a shortest path has {shortest - 1})"
    return f"path: does not connect S to G (shortest is {shortest} moves)"


def render_prediction(question: Any, prediction: Any, label: Any = None) -> str:
    """Three panels side by side (question, raw prediction, marks), a verdict line above and a legend below.

    With a label, path cells are compared with the labelled path (``o`` agree, ``x`` extra, ``*`` missed); without
    one, a path cell is ``o`` when it lies on an open cell and ``x`` when it does not. ``!`` marks any other cell
    where the prediction differs from what it should be (the label, or else the question).
    """
    question = np.asarray(question).ravel()
    prediction = np.asarray(prediction).ravel()
    target = np.asarray(label).ravel() if label is not None else None
    side = side_of(len(question))
    chars = []
    for cell in range(len(question)):
        predicted = prediction[cell]
        if target is not None:
            wanted_path = target[cell] == PATH
        else:
            wanted_path = predicted == PATH and question[cell] == OPEN
        if predicted == PATH:
            chars.append("o" if wanted_path else "x")
        elif wanted_path:
            chars.append("*")
        elif predicted != (target[cell] if target is not None else question[cell]):
            chars.append("!")
        else:
            chars.append({WALL: "#", OPEN: ".", START: "S", GOAL: "G"}.get(int(question[cell]), "?"))
    marks = ["".join(chars[row * side:(row + 1) * side]) for row in range(side)]
    panels = [("question", render_maze(question).splitlines()), ("prediction", render_maze(prediction).splitlines()),
              ("marks", marks)]
    width = max(side, *(len(title) for title, _ in panels))
    lines = ["  ".join(title.ljust(width) for title, _ in panels).rstrip()]
    lines += ["  ".join(rows[row].ljust(width) for _, rows in panels).rstrip() for row in range(side)]
    header = _verdict(question, prediction)
    if target is not None:
        header = ("exact: yes; " if np.array_equal(prediction, target) else "exact: no; ") + header
    return "\n".join([header, *lines, LEGEND])

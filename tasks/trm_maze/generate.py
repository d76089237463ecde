"""An offline generator of hard mazes: square grids whose shortest S-to-G path is at least a chosen length.

Maze-Hard (docs/reference-code.md 1.2, data/maze/SOURCE.md) is 30x30 grids of scattered walls (28-45% of cells, no border)
whose shortest path is at least 109 moves ("difficulty exceeds 110" counting S and G). Its mazes came from Lehnert
et al.'s generator, which we do not have. Scattering walls at random almost never gives such long paths (measured
on 40 grids per density in 0.30-0.45: at most 2 of 40 had *any* pair of cells 109 moves apart, by double BFS sweep),
so this generator builds hardness in directly:

1. Scatter walls: each cell is a wall with probability ``wall_density``.
2. Pick S and G far apart by a double BFS sweep inside the component of a random open cell (S = the farthest cell
   from it, G = the farthest cell from S).
3. Harden: while the S-to-G distance is below ``min_path_length``, turn a random cell of the current shortest path
   into a wall. Adding a wall never shortens a path, and a cell whose removal would cut S from G is kept open and
   never tried again (it stays a cut cell as walls are added), so the distance rises until the target is met or no
   candidate is left (then the maze is discarded and a fresh one drawn).
4. Label with :func:`trm_maze.grid.solve` and verify with :func:`trm_maze.grid.verify_example` (the label is a
   BFS-shortest S-to-G path through open cells). Duplicates are skipped, also across splits
   (:class:`trm.heldout.Deduplicator`, exact: a test maze equal to a rotation of a training maze is not excluded, so
   that stores stay the same as before the helpers existed; at the default 30x30 such a pair is vanishingly rare).

Every draw comes from one ``numpy.random.Generator`` seeded by the caller, so a build is reproducible.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from trm.heldout import Deduplicator
from trm_maze.grid import GOAL, OPEN, START, WALL, bfs, solve, verify_example


def _draw_maze(rng: np.random.Generator, side: int, wall_density: float, min_path_length: int) -> np.ndarray | None:
    """One question grid (flat uint8 tokens) meeting the length target, or None when this draw failed."""
    cells = side * side
    walls = rng.random(cells) < wall_density
    open_cells = np.flatnonzero(~walls)
    if len(open_cells) < 2:
        return None
    seed_cell = int(rng.choice(open_cells))
    distance, _ = bfs(~walls, seed_cell, side)
    if distance.max() < 1:  # the random cell is isolated
        return None
    start = int(distance.argmax())
    distance, parent = bfs(~walls, start, side)
    goal = int(distance.argmax())
    cut_cells: set[int] = set()
    while distance[goal] < min_path_length:
        path = []
        cell = int(parent[goal])
        while cell != start:
            path.append(cell)
            cell = int(parent[cell])
        candidates = [cell for cell in path if cell not in cut_cells]
        if not candidates:
            return None
        cell = int(rng.choice(candidates))
        walls[cell] = True
        new_distance, new_parent = bfs(~walls, start, side)
        if new_distance[goal] < 0:
            walls[cell] = False
            cut_cells.add(cell)
        else:
            distance, parent = new_distance, new_parent
    question = np.where(walls, WALL, OPEN).astype(np.uint8)
    question[start], question[goal] = START, GOAL
    return question


def generate_mazes(
    rng: np.random.Generator,
    *,
    count: int,
    side: int,
    min_path_length: int,
    wall_density: float,
    seen: Deduplicator | set[bytes] | None = None,
    split: str = "train",
    max_failures: int = 1000,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``count`` distinct verified (question, answer) pairs of flat uint8 tokens.

    ``seen`` holds the questions already produced, a :class:`trm.heldout.Deduplicator` (pass the same one to every
    split, naming the ``split``, so that no maze is in two splits) or a set of question bytes; it is updated in
    place. ``max_failures`` consecutive failed draws raise ValueError: the target is
    out of reach for this size (the longest possible shortest path in an n x n grid is about n*n/2 moves).
    """
    if side < 2:
        raise ValueError(f"maze size must be at least 2, got {side}")
    seen = Deduplicator() if seen is None else seen
    as_bytes = isinstance(seen, set)
    produced = failures = 0
    while produced < count:
        question = _draw_maze(rng, side, wall_density, min_path_length)
        if question is None or (question.tobytes() if as_bytes else question) in seen:
            failures += 1
            if failures >= max_failures:
                raise ValueError(
                    f"could not generate a {side}x{side} maze with a shortest path of at least {min_path_length} "
                    f"moves in {max_failures} consecutive tries; lower min_path_length or wall_density"
                )
            continue
        failures = 0
        answer = solve(question)
        verify_example(question, answer)  # the label is a BFS-shortest path; never skipped
        if as_bytes:
            seen.add(question.tobytes())
        else:
            seen.add(question, split)
        produced += 1
        yield question, answer

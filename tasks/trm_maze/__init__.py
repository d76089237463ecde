"""The ``maze`` task plugin (Maze-Hard) and the ``maze_path`` evaluator.

Registered through the ``trm`` entry-point group (``maze = "trm_maze"``) exactly like a third-party plugin. Modules:
``grid`` (charset, tokens, BFS, path checks), ``dihedral`` (the 8 transforms), ``csv_source`` (the CSV format),
``generate`` (hard mazes with a minimum shortest path), ``build`` (writing the store), ``evaluator`` (``maze_path``)
and ``render`` (text pictures). docs/tasks/maze.md describes all of it; docs/reference-code.md 1.2, 1.3, 7 and 10.4 are the
specification.
"""

from __future__ import annotations

from typing import Any

from trm.hookspecs import hookimpl
from trm.types import EvaluatorSpec, TaskSpec
from trm_maze.options import MazeOptions, MazePathOptions


def _build(options: MazeOptions, writer: Any) -> None:
    from trm_maze.build import build

    build(options, writer)


def _dims(options: MazeOptions) -> Any:
    from trm_maze.build import dims

    return dims(options)


def _render(tokens: Any, info: Any) -> str:
    from trm_maze.render import render_maze

    return render_maze(tokens, info)


def _evaluator(options: MazePathOptions, context: Any) -> Any:
    from trm_maze.evaluator import build_evaluator

    return build_evaluator(options, context)


def _solving(name: str) -> Any:
    """A hook of trm_maze.solving, imported when first called (the plugin host must import quickly)."""
    def call(*args: Any) -> Any:
        from trm_maze import solving

        return getattr(solving, name)(*args)

    call.__name__ = name
    return call


@hookimpl
def trm_tasks():
    return [TaskSpec(
        name="maze",
        options_class=MazeOptions,
        build=_build,
        summary="Maze-Hard: 30x30 mazes from CSV or generated (shortest path >= N moves), optional dihedral x8",
        version="1",
        default_evaluators=("maze_path",),
        render=_render,
        dims=_dims,
        read_puzzles=_solving("read_puzzles"),
        check_answer=_solving("check_answer"),
        draw=_solving("draw"),
        canonical_input=_solving("canonical_input"),
    )]


@hookimpl
def trm_evaluators():
    return [EvaluatorSpec(
        name="maze_path",
        options_class=MazePathOptions,
        build=_evaluator,
        summary="mazes: exact accuracy, plus valid shortest path / connected rates, path IoU and cell accuracy",
    )]

"""The ``arc`` task plugin: ARC-AGI-1, ARC-AGI-2 and ConceptARC, and the ``arc_vote`` evaluator.

Registered through the ``trm`` entry-point group (``arc = "trm_arc"``) exactly like a third-party plugin. Modules:
``kaggle`` (reading the JSON), ``transforms`` (dihedral and colour maps), ``canvas`` (tokens, EOS border, crop),
``augment`` (choosing versions), ``layout`` (vectorised canvases), ``build`` (routing and writing the store),
``leakage`` (test answers among training examples), ``vote``/``evaluator``/``submission`` (scoring), ``commands``
(``trm arc ...``). docs/tasks/arc.md describes all of it; docs/reference-code.md 1.3, 7 and 10.4-10.7 are the specification.
"""

from __future__ import annotations

from typing import Any

from trm.hookspecs import hookimpl
from trm.types import EvaluatorSpec, TaskDims, TaskSpec
from trm_arc.canvas import SEQ_LEN, VOCAB_SIZE, render_canvas
from trm_arc.options import ArcOptions, ArcVoteOptions


def _build(options: ArcOptions, writer: Any) -> None:
    from trm_arc.build import build

    build(options, writer)


def _render(tokens: Any, info: Any) -> str:
    return render_canvas(tokens)


def _evaluator(options: ArcVoteOptions, context: Any) -> Any:
    from trm_arc.evaluator import build_evaluator

    return build_evaluator(options, context)


def _solving(name: str) -> Any:
    """A hook of trm_arc.solving, imported when first called (the plugin host must import quickly)."""
    def call(*args: Any) -> Any:
        from trm_arc import solving

        return getattr(solving, name)(*args)

    call.__name__ = name
    return call


@hookimpl
def trm_tasks():
    return [TaskSpec(
        name="arc",
        options_class=ArcOptions,
        build=_build,
        summary="ARC-AGI-1/2 + ConceptARC from Kaggle JSON: 30x30 canvases with EOS, dihedral x colour augmentation",
        version="1",
        default_evaluators=("arc_vote",),
        render=_render,
        dims=lambda options: TaskDims(vocab_size=VOCAB_SIZE, seq_len=SEQ_LEN, num_puzzle_identifiers=None),
        read_puzzles=_solving("read_puzzles"),
        combine=_solving("combine"),
        draw=_solving("draw"),
        canonical_input=_solving("canonical_input"),
    )]


@hookimpl
def trm_evaluators():
    return [EvaluatorSpec(
        name="arc_vote",
        options_class=ArcVoteOptions,
        build=_evaluator,
        summary="ARC: de-augment, vote across versions, pass@K per round and accumulated, Kaggle submission.json",
    )]


@hookimpl
def trm_commands(cli):
    from trm_arc.commands import arc_group

    cli.add_command(arc_group)

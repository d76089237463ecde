"""The training-depth curriculum: a shallower recursion (T, n) for the first part of training.

docs/training.md, "Depth curriculum". Deep supervision makes every optimizer step cost T x (n + 1) network calls;
early in training, when the network is still learning what a Sudoku row is, a shallow recursion learns nearly as
much per step at a fraction of the cost. The idea is CGAR's progressive depth curriculum (Qasim and Zhang,
"Curriculum-Guided Adaptive Recursion", arXiv 2511.08653). A recipe lists phases by the fraction of the run's
optimizer steps they last; after the last phase, and at every evaluation, the model's own ``h_cycles`` and
``l_cycles`` apply. The depth is a pure function of the step, so a resumed run continues with the right depth.
"""

from __future__ import annotations

from typing import Sequence

from trm.recipe import DepthPhase


def depth_at(step: int, total_steps: int, phases: Sequence[DepthPhase]) -> tuple[int, int] | None:
    """(T, n) for the optimizer step that follows ``step`` completed steps; None: the model's own depth."""
    for phase in phases:
        if step < phase.until * total_steps:
            return phase.h_cycles, phase.l_cycles
    return None

"""Solving puzzles one supervision step at a time: per-step trajectories, ``trm solve``'s engine.

Each batch starts from a fresh carry and runs supervision steps in eval mode with ``trm eval``'s stop rule
(:class:`trm.evaluate.StopRule`): a row stops at step ``s`` when ``s >= max_steps`` or, with adaptive halting, when
the halting strategy says halt (``act_q``: q_halt > 0; ``act_q_continue``: q_halt > q_continue; ``fixed``: never
early; or a confidence threshold). Its answer is its prediction at that step, the same as :func:`trm.evaluate.evaluate`
gives (tests/test_solve.py checks it). Unlike that continuous-batching loop, every step's prediction and halting
logits are kept, which is what the trajectory pictures draw.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import attrs
import numpy as np
import torch

from trm.errors import UserError
from trm.evaluate import stop_rule_for
from trm.recipe import Recipe
from trm.store import StoreInfo
from trm.trajectory import draw_trajectory
from trm.types import Puzzle, Solution, SolveContext


@attrs.frozen
class StepResults:
    """A batch run step by step. Arrays are NumPy, rows as given; ``S`` is the number of steps actually run."""

    preds: np.ndarray  # [S, B, L] argmax tokens after each step
    q_halt: np.ndarray  # [S, B] halting logits after each step
    q_continue: np.ndarray  # [S, B]
    steps: np.ndarray  # [B] the step at which each row stopped (1-based)

    def answers(self) -> np.ndarray:
        """[B, L] each row's prediction at its stopping step."""
        return self.preds[self.steps - 1, np.arange(len(self.steps))]

    def answer_q_halt(self) -> np.ndarray:
        """[B] each row's q_halt at its stopping step."""
        return self.q_halt[self.steps - 1, np.arange(len(self.steps))]


@torch.no_grad()
def run_steps(model: Any, inputs: Any, identifiers: Any, *, max_steps: int, halting: str = "adaptive",
              halt_threshold: float | None = None, device: torch.device | str | None = None) -> StepResults:
    """Run ``inputs`` [B, L] (with ``identifiers`` [B]) until every row has stopped; see the module docstring."""
    if max_steps < 1:
        raise UserError(f"--max-steps: must be >= 1 (got {max_steps})")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    tokens = torch.as_tensor(np.asarray(inputs), dtype=torch.int32, device=device)
    ids = torch.as_tensor(np.asarray(identifiers), dtype=torch.int32, device=device).reshape(-1)
    batch = {"inputs": tokens, "labels": torch.full(tokens.shape, -100, dtype=torch.int64, device=device),
             "puzzle_identifiers": ids}
    rule = stop_rule_for(model.halting, halting, max_steps, halt_threshold)
    was_training = model.training
    model.eval()
    try:
        carry = model.initial_carry(batch)
        done = torch.zeros(tokens.shape[0], dtype=torch.bool, device=device)
        steps = torch.zeros(tokens.shape[0], dtype=torch.int64, device=device)
        preds, q_halts, q_continues = [], [], []
        for step in range(1, max_steps + 1):
            carry, out = model(carry, batch, max_steps=max_steps)
            q_halt, q_continue = out["q_halt"].float(), out["q_continue"].float()
            preds.append(out["logits"].argmax(-1).to(torch.int16).cpu())
            q_halts.append(q_halt.cpu())
            q_continues.append(q_continue.cpu())
            stop = rule.stop(model.halting, out["steps"], q_halt, q_continue).to(torch.bool)
            steps = torch.where(stop & ~done, torch.full_like(steps, step), steps)
            done = done | stop
            if bool(done.all()):
                break
    finally:
        model.train(was_training)
    return StepResults(torch.stack(preds).numpy(), torch.stack(q_halts).numpy(), torch.stack(q_continues).numpy(),
                       steps.cpu().numpy())


@attrs.frozen
class Solved:
    """One puzzle's outcome: the task's combined answer and its representative row's trajectory (row 0)."""

    puzzle: Puzzle
    solution: Solution
    steps: int  # supervision steps row 0 used
    max_steps: int
    q_halt: float  # row 0's halting logit at its stopping step
    trajectory: np.ndarray  # [steps, L] row 0's prediction after each step
    trajectory_q_halt: np.ndarray  # [steps]
    mean_steps: float  # over all the puzzle's rows (ARC: its augmented versions)
    check: tuple[bool, str] | None  # the task's rule check of the answer
    matches_label: bool | None  # the answer equals the known answer, when one was given

    @property
    def confidence(self) -> float:
        return 1.0 / (1.0 + math.exp(-self.q_halt))

    @property
    def halted_early(self) -> bool:
        return self.steps < self.max_steps


def first_row(puzzle: Puzzle, preds: np.ndarray, q_halt: np.ndarray, context: SolveContext) -> Solution:
    """The default ``combine``: the first row's prediction is the answer."""
    return Solution(tokens=np.asarray(preds[0]), attempts=(np.asarray(preds[0]),))


def solve_puzzles(model: Any, puzzles: Sequence[Puzzle], task: Any, context: SolveContext, *, max_steps: int,
                  halting: str = "adaptive", halt_threshold: float | None = None, batch_size: int = 256,
                  progress: Callable[[Iterable, int], Iterable] | None = None) -> list[Solved]:
    """Solve ``puzzles`` in batches of ``batch_size`` rows (a puzzle's versions may span batches)."""
    if batch_size < 1:
        raise UserError(f"--batch-size: must be >= 1 (got {batch_size})")
    if not puzzles:
        return []
    for puzzle in puzzles:
        if puzzle.inputs.ndim != 2 or puzzle.inputs.shape[1] != context.seq_len:
            raise UserError(f"{puzzle.name}: the model takes {context.seq_len} cells, this puzzle has "
                            f"{puzzle.inputs.shape[-1]}")
    inputs = np.concatenate([p.inputs for p in puzzles])
    identifiers = np.concatenate([np.asarray(p.identifiers).reshape(-1) for p in puzzles])
    starts = np.cumsum([0] + [len(p.inputs) for p in puzzles])
    answers = np.zeros(inputs.shape, dtype=np.int64)
    q_final = np.zeros(len(inputs), dtype=np.float64)
    used = np.zeros(len(inputs), dtype=np.int64)
    trajectories: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    first_rows = {int(start): index for index, start in enumerate(starts[:-1])}
    batches = range(0, len(inputs), batch_size)
    for low in (progress(batches, len(batches)) if progress else batches):
        high = min(low + batch_size, len(inputs))
        result = run_steps(model, inputs[low:high], identifiers[low:high], max_steps=max_steps, halting=halting,
                           halt_threshold=halt_threshold)
        answers[low:high] = result.answers()
        q_final[low:high] = result.answer_q_halt()
        used[low:high] = result.steps
        for row in range(low, high):
            if row in first_rows:
                taken = int(result.steps[row - low])
                trajectories[first_rows[row]] = (result.preds[:taken, row - low].astype(np.int64),
                                                 result.q_halt[:taken, row - low].astype(np.float64))
    combine = task.combine or first_row
    solved = []
    for index, puzzle in enumerate(puzzles):
        low, high = int(starts[index]), int(starts[index + 1])
        solution = combine(puzzle, answers[low:high], q_final[low:high], context)
        check = task.check_answer(puzzle, solution.tokens) if task.check_answer is not None else None
        matches = None if puzzle.label is None else bool(np.array_equal(np.asarray(solution.tokens).ravel(),
                                                                         np.asarray(puzzle.label).ravel()))
        path, path_q = trajectories[index]
        solved.append(Solved(puzzle, solution, int(used[low]), max_steps, float(q_final[low]), path, path_q,
                             float(used[low:high].mean()), check, matches))
    return solved


# --------------------------------------------------------------------------------------------------------------
# Loading a model for solving
# --------------------------------------------------------------------------------------------------------------


def store_context(recipe: Recipe, info: StoreInfo) -> SolveContext:
    """The solving context of a run whose store is open (``trm eval --trajectories``, ``trm report``)."""
    return SolveContext(seq_len=info.seq_len, vocab_size=info.vocab_size,
                        identifier_names=info.identifier_names if info.num_puzzle_identifiers > 1 else None,
                        task_options=recipe.task.options, store_info=info)


def eval_trajectories(model: Any, split: Any, task: Any, context: SolveContext, count: int, directory: Path, *,
                      max_steps: int, halting: str = "fixed", halt_threshold: float | None = None, seed: int = 0,
                      ignore_label_id: int | None = 0,
                      candidates: int = 256, batch_size: int = 64, suffix: str = ".png") -> list[Path]:
    """Trajectory pictures of ``count`` test examples of ``split``, half of them answered right and half wrong
    where the split has both: up to ``candidates`` seeded random examples are solved, then picked from."""
    if count < 1:
        return []
    total = split.num_examples
    rng = np.random.Generator(np.random.PCG64([int(seed), 3]))
    rows = np.sort(rng.choice(total, size=min(total, max(candidates, count)), replace=False))
    puzzles = np.searchsorted(split.puzzle_indices, rows, side="right") - 1
    inputs = np.asarray(split.inputs[rows]).astype(np.int64)
    labels = np.asarray(split.labels[rows]).astype(np.int64)
    identifiers = np.asarray(split.puzzle_identifiers[puzzles]).astype(np.int64)
    runs = []
    for low in range(0, len(rows), batch_size):
        result = run_steps(model, inputs[low:low + batch_size], identifiers[low:low + batch_size],
                           max_steps=max_steps, halting=halting, halt_threshold=halt_threshold)
        runs.append(result)
    answers = np.concatenate([r.answers() for r in runs])
    scored = labels != ignore_label_id if ignore_label_id is not None else np.ones_like(labels, dtype=bool)
    correct = np.all((answers == labels) | ~scored, axis=1)
    right, wrong = list(np.flatnonzero(correct)), list(np.flatnonzero(~correct))
    want_right = min(len(right), max(count - len(wrong), (count + 1) // 2))
    chosen = [(k, True) for k in right[:want_right]] + [(k, False) for k in wrong[:count - want_right]]
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    names = context.identifier_names
    for number, (k, is_right) in enumerate(sorted(chosen), start=1):
        run = runs[k // batch_size]
        within = k % batch_size
        taken = int(run.steps[within])
        name = f"example {int(rows[k])}"
        if names is not None and 0 < identifiers[k] < len(names):
            name += f" ({names[int(identifiers[k])]})"
        path = directory / f"trajectory-{number:02d}-{'right' if is_right else 'wrong'}-example{int(rows[k])}{suffix}"
        draw_trajectory(path, task, context, inputs[k], run.preds[:taken, within], run.q_halt[:taken, within],
                        label=labels[k], max_steps=max_steps,
                        title=f"{name}: {'right' if is_right else 'wrong'} after {taken} of {max_steps} steps")
        written.append(path)
    return written

"""``trm solve RUN_DIR PUZZLE``: a trained model on a user's own puzzle(s), printed, checked and optionally drawn.

The engine is trm/solve.py, the pictures trm/trajectory.py, the model comes from :func:`trm.api.load`; the task plugin reads the puzzle, combines and checks
the answer and draws it (TaskSpec hooks, docs/plugins.md). docs/cli.md and docs/look.md describe the command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import click

from trm.cli.evaluate import check_halting_options, halting_options
from trm.errors import UserError
from trm.types import Puzzle, SolveContext
from trm.recipe import Recipe


@attrs.frozen
class Loaded:
    """A trained model ready to solve: the model, its recipe, its task plugin and the context for the task's hooks."""

    model: Any
    recipe: Recipe
    task: Any
    context: SolveContext
    checkpoint: Path


def load_for_solving(target: Path, *, device: str | None = None, use_ema: bool = True) -> Loaded:
    """A run directory, a ``checkpoints/step_N`` folder or a converted reference run, ready for :func:`solve_puzzles`."""
    import trm.api
    from trm.checkpoint import find_checkpoint
    from trm.plugins import registry

    checkpoint = find_checkpoint(Path(target))
    trained = trm.api.load(target, device=device or "cpu", use_ema=use_ema)
    recipe = trained.recipe
    task = registry("tasks").get(recipe.task.name)
    store_info = None
    store_path = Path(recipe.data.store)
    if store_path.exists():
        from trm.store import open_store

        try:
            store_info = open_store(store_path, expect_task=recipe.task.name).info
        except UserError:  # a store of another task or a damaged one: solving does not need it
            store_info = None
    identifiers = trained.identifiers
    if identifiers is None and store_info is not None:
        identifiers = store_info.identifier_names
    context = SolveContext(seq_len=trained.seq_len, vocab_size=int(trained.model.embed_tokens.weight.shape[0]),
                           identifier_names=identifiers, task_options=recipe.task.options, store_info=store_info)
    return Loaded(trained.model, recipe, task, context, checkpoint)


def default_max_steps(loaded: Loaded, max_steps: int | None) -> int:
    """``--max-steps`` or, as ``trm eval``, the recipe's ``eval.max_steps`` or else the trained maximum."""
    if max_steps is not None:
        if max_steps < 1:
            raise UserError(f"--max-steps: must be >= 1 (got {max_steps})")
        return int(max_steps)
    configured = getattr(loaded.recipe.eval, "max_steps", None)
    return int(configured if configured is not None else loaded.model.halting.max_steps)


def read_puzzles(loaded: Loaded, text: str) -> list[Puzzle]:
    """The task's reading of the PUZZLE argument; a task without ``read_puzzles`` cannot be solved from text."""
    if loaded.task.read_puzzles is None:
        raise UserError(f"task '{loaded.task.name}' does not read puzzles (its plugin has no read_puzzles hook); "
                        "use the Python API (trm.api) with token rows")
    puzzles = loaded.task.read_puzzles(text, loaded.context)
    if not puzzles:
        raise UserError(f"{text}: no puzzle found")
    return puzzles


def side_by_side(blocks: list[tuple[str, str]], gap: int = 4) -> str:
    """Text pictures next to each other under their titles."""
    split = [(title, text.splitlines() or [""]) for title, text in blocks]
    widths = [max(len(title), *(len(line) for line in lines)) for title, lines in split]
    height = max(len(lines) for _, lines in split)
    out = [(" " * gap).join(title.ljust(width) for (title, _), width in zip(split, widths)).rstrip()]
    for row in range(height):
        out.append((" " * gap).join((lines[row] if row < len(lines) else "").ljust(width)
                                    for (_, lines), width in zip(split, widths)).rstrip())
    return "\n".join(out)


def _render(task: Any, tokens: Any, context: Any) -> str:
    if task.render is None:
        return " ".join(str(int(t)) for t in list(tokens))
    return task.render(tokens, context.store_info)


def describe_steps(solved: Any, halting: str) -> str:
    how = "stopped early: the halting head said halt" if solved.halted_early else (
        "ran to the depth cap, the halting head never said halt" if halting == "adaptive" else "fixed depth")
    line = f"steps: {solved.steps} of {solved.max_steps} ({how}); halting confidence {solved.confidence:.3f} " \
           f"(q_halt {solved.q_halt:+.2f})"
    if len(solved.puzzle.inputs) > 1:
        line += f"; {len(solved.puzzle.inputs)} versions voted, mean {solved.mean_steps:.2f} steps"
    return line


def as_json(solved: Any, loaded: Any, trajectory: Path | None) -> dict[str, Any]:
    task, context = loaded.task, loaded.context
    return {
        "name": solved.puzzle.name,
        "puzzle": _render(task, solved.puzzle.inputs[0], context),
        "answer": _render(task, solved.solution.tokens, context),
        "answer_tokens": [int(t) for t in solved.solution.tokens],
        "attempts": [_render(task, attempt, context) for attempt in solved.solution.attempts],
        "steps": solved.steps,
        "max_steps": solved.max_steps,
        "stopped_early": solved.halted_early,
        "q_halt": solved.q_halt,
        "confidence": solved.confidence,
        "versions": len(solved.puzzle.inputs),
        "mean_steps": solved.mean_steps,
        "q_halt_per_step": [float(q) for q in solved.trajectory_q_halt],
        "valid": None if solved.check is None else solved.check[0],
        "validity": None if solved.check is None else solved.check[1],
        "matches_known_answer": solved.matches_label,
        "note": solved.solution.note or None,
        "trajectory": str(trajectory) if trajectory else None,
    }


def print_solved(solved: Any, loaded: Any, halting: str, heading: bool) -> None:
    task, context = loaded.task, loaded.context
    if heading:
        click.echo(f"== {solved.puzzle.name} ==")
    attempts = solved.solution.attempts
    if len(attempts) > 1:
        blocks = [("puzzle", _render(task, solved.puzzle.inputs[0], context))]
        blocks += [(f"attempt {k + 1}", _render(task, attempt, context)) for k, attempt in enumerate(attempts)]
    else:
        blocks = [("puzzle", _render(task, solved.puzzle.inputs[0], context)),
                  ("answer", _render(task, solved.solution.tokens, context))]
    click.echo(side_by_side(blocks))
    if solved.solution.note:
        click.echo(solved.solution.note)
    click.echo(describe_steps(solved, halting))
    if solved.check is not None:
        click.echo(f"valid: {'yes' if solved.check[0] else 'no'} ({solved.check[1]})")
    if solved.matches_label is not None:
        click.echo(f"known answer: {'matches' if solved.matches_label else 'differs'}")


@click.command("solve")
@click.argument("target", type=click.Path())
@click.argument("puzzle")
@halting_options
@click.option("--trajectory", type=click.Path(dir_okay=False), default=None,
              help="Draw the answer after every step to this .png or .gif (several puzzles: name-1.png, ...).")
@click.option("--json", "as_json_flag", is_flag=True, help="Print a machine-readable result instead of text.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True,
              help="Rows per batch (an ARC task's augmented versions count as rows).")
@click.option("--raw", is_flag=True, help="Use the live weights instead of the EMA weights.")
@click.option("--device", default=None, help="Torch device (default: cpu).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def solve(target: str, puzzle: str, halting: str | None, max_steps: int | None, halt_threshold: float | None,
          trajectory: str | None,
          as_json_flag: bool, batch_size: int, raw: bool, device: str | None, no_progress: bool) -> None:
    """Solve PUZZLE with the model of TARGET (a run directory, a checkpoints/step_N folder or a converted
    reference run) and print the puzzle, the answer, the steps used, the halting confidence and, where the task
    can check it, whether the answer is valid.

    \b
    PUZZLE is the task's:
      sudoku  an 81- (or 16-/36-) character string, '.' or '0' for blanks, or a file: one board per line,
              text rows, or a CSV source,question,answer,rating
      maze    a text file in the Maze-Hard characters (# wall, space or . open, S start, G goal), or a CSV
      arc     a task id the model was trained on, or a Kaggle-format task JSON of such a task
      other   what the task plugin's read_puzzles reads (see its docs; docs/plugins.md, TaskSpec)
    A file of several puzzles is solved in batches with a progress bar. Exit 2 when the model cannot take it.
    """
    from tqdm.auto import tqdm

    from trm.devices import resolve_device
    from trm.evaluate import eval_settings
    from trm.solve import solve_puzzles
    from trm.trajectory import check_picture_path, draw_trajectory, numbered

    check_halting_options(halting, halt_threshold)
    picture = check_picture_path(Path(trajectory)) if trajectory else None
    loaded = load_for_solving(Path(target), device=str(resolve_device(device, default="cpu")), use_ema=not raw)
    steps = default_max_steps(loaded, max_steps)
    halting, _, halt_threshold = eval_settings(loaded.recipe.eval, halting, steps, halt_threshold)
    puzzles = read_puzzles(loaded, puzzle)
    rows = sum(len(p.inputs) for p in puzzles)
    show = not no_progress and (len(puzzles) > 1 or rows > batch_size)

    def progress(batches: Any, total: int) -> Any:
        return tqdm(batches, total=total, desc="solve", disable=not show, leave=False, dynamic_ncols=True)

    results = solve_puzzles(loaded.model, puzzles, loaded.task, loaded.context, max_steps=steps, halting=halting,
                            halt_threshold=halt_threshold, batch_size=batch_size, progress=progress)
    drawn: list[Path | None] = []
    for index, solved in enumerate(results):
        if picture is None:
            drawn.append(None)
            continue
        path = numbered(picture, index, len(results))
        draw_trajectory(path, loaded.task, loaded.context, solved.puzzle.inputs[0], solved.trajectory,
                        solved.trajectory_q_halt, label=solved.puzzle.label, max_steps=steps,
                        title=f"{solved.puzzle.name}: {solved.steps} of {steps} steps ({halting} halting)")
        drawn.append(path)
    if as_json_flag:
        click.echo(json.dumps({"checkpoint": str(loaded.checkpoint), "task": loaded.task.name, "halting": halting,
                               "max_steps": steps, "puzzles": [as_json(s, loaded, p) for s, p in zip(results, drawn)]},
                              indent=2))
        return
    for solved, path in zip(results, drawn):
        print_solved(solved, loaded, halting, heading=len(results) > 1)
        if path is not None:
            click.echo(f"trajectory: {path}")
        if len(results) > 1:
            click.echo()
    if len(results) > 1:
        checked = [s.check[0] for s in results if s.check is not None]
        known = [s.matches_label for s in results if s.matches_label is not None]
        parts = [f"{len(results)} puzzles", f"mean {sum(s.steps for s in results) / len(results):.2f} steps"]
        if checked:
            parts.append(f"{sum(checked)} valid")
        if known:
            parts.append(f"{sum(known)} match the known answer")
        click.echo(", ".join(parts))

"""trm solve and its engine: the evaluation stop rule, reading/checking puzzles of every task, trajectory pictures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from trm.errors import UserError
from trm.solve import run_steps, solve_puzzles
from trm.types import Puzzle, SolveContext, TaskSpec
from trm_halting.strategies import ACTOptions, ACTQ, ACTQContinue, Fixed, FixedOptions


class ScriptedModel(torch.nn.Module):
    """Step s predicts token s everywhere; q_halt / q_continue per step come from a script whose column is the
    row's first input token (so a row keeps its script whichever batch it lands in)."""

    def __init__(self, halting, q_halt, q_continue=None):
        super().__init__()
        self.halting = halting
        self.q_halt = torch.tensor(q_halt, dtype=torch.float32)  # [S, B]
        self.q_continue = torch.zeros_like(self.q_halt) if q_continue is None else torch.tensor(q_continue)
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.calls = 0

    def initial_carry(self, batch):
        return 0

    def forward(self, carry, batch, max_steps=None):
        step = carry + 1
        rows, length = batch["inputs"].shape
        logits = torch.nn.functional.one_hot(torch.full((rows, length), step), num_classes=20).float()
        self.calls += 1
        column = batch["inputs"][:, 0].long()
        return step, {"logits": logits, "q_halt": self.q_halt[step - 1, column],
                      "q_continue": self.q_continue[step - 1, column],
                      "halted": torch.full((rows,), step >= max_steps), "steps": torch.full((rows,), step)}


def rows(count):
    return np.repeat(np.arange(count)[:, None], 2, axis=1)


def test_adaptive_rows_stop_at_their_first_halt_and_fixed_runs_to_max_steps():
    script = [[-1.0, 2.0, -1.0], [3.0, 1.0, -2.0], [1.0, 1.0, -3.0], [1.0, 1.0, -4.0]]
    model = ScriptedModel(ACTQ(ACTOptions(max_steps=4)), script)
    adaptive = run_steps(model, rows(3), np.zeros(3), max_steps=4, halting="adaptive", device="cpu")
    assert adaptive.steps.tolist() == [2, 1, 4]  # q_halt > 0 first at steps 2 and 1; row 3 never: max_steps
    assert adaptive.answers()[:, 0].tolist() == [2, 1, 4]  # each row's prediction at its own stopping step
    assert adaptive.answer_q_halt().tolist() == [3.0, 2.0, -4.0]
    fixed = run_steps(model, rows(3), np.zeros(3), max_steps=4, halting="fixed", device="cpu")
    assert fixed.steps.tolist() == [4, 4, 4] and fixed.preds.shape == (4, 3, 2)


def test_the_batch_stops_once_every_row_has_halted():
    model = ScriptedModel(ACTQ(ACTOptions(max_steps=16)), [[1.0, 1.0]] * 16)
    result = run_steps(model, rows(2), np.zeros(2), max_steps=16, device="cpu")
    assert model.calls == 1 and result.steps.tolist() == [1, 1] and result.preds.shape[0] == 1


def test_act_q_continue_halts_when_q_halt_exceeds_q_continue_and_fixed_never_early():
    script = [[-1.0, -1.0], [-0.5, -3.0]]
    cont = [[-2.0, 0.0], [0.0, 0.0]]
    strategy = ACTQContinue(ACTOptions(max_steps=2))
    result = run_steps(ScriptedModel(strategy, script, cont), rows(2), np.zeros(2), max_steps=2,
                       device="cpu")
    assert result.steps.tolist() == [1, 2]
    fixed = ScriptedModel(Fixed(FixedOptions(max_steps=3)), [[5.0]] * 3)
    assert run_steps(fixed, rows(1), np.zeros(1), max_steps=3, halting="adaptive", device="cpu").steps.tolist() == [3]
    with pytest.raises(UserError, match="halting mode"):
        run_steps(fixed, rows(1), np.zeros(1), max_steps=3, halting="sometimes", device="cpu")


def test_a_halt_threshold_asks_for_more_confidence():
    model = ScriptedModel(ACTQ(ACTOptions(max_steps=4)), [[0.5], [1.0], [3.0], [3.0]])
    default = run_steps(model, rows(1), np.zeros(1), max_steps=4, device="cpu")
    strict = run_steps(model, rows(1), np.zeros(1), max_steps=4, halt_threshold=0.9, device="cpu")
    assert (default.steps.tolist(), strict.steps.tolist()) == ([1], [3])  # sigmoid(3) = 0.95 > 0.9


def test_depth_beyond_training_runs_more_steps():
    model = ScriptedModel(ACTQ(ACTOptions(max_steps=2)), [[-1.0]] * 6)
    assert run_steps(model, rows(1), np.zeros(1), max_steps=6, device="cpu").steps.tolist() == [6]


def test_solve_puzzles_combines_rows_and_keeps_the_first_rows_trajectory():
    model = ScriptedModel(ACTQ(ACTOptions(max_steps=3)), [[-1.0, -1.0, 5.0], [2.0, -1.0, 5.0], [2.0, 2.0, 5.0]])
    seen = {}

    def combine(puzzle, preds, q_halt, context):
        from trm.types import Solution

        seen[puzzle.name] = (preds.copy(), q_halt.copy())
        return Solution(tokens=preds[-1], attempts=(preds[-1],))

    task = TaskSpec("t", object, lambda o, w: None, "t", combine=combine)
    context = SolveContext(seq_len=2, vocab_size=20, identifier_names=None, task_options=None)
    puzzles = [Puzzle("a", rows(2), np.zeros(2)), Puzzle("b", rows(3)[2:], np.zeros(1))]
    solved = solve_puzzles(model, puzzles, task, context, max_steps=3, batch_size=2)  # puzzle a spans one batch
    assert [s.steps for s in solved] == [2, 1]
    assert solved[0].trajectory[:, 0].tolist() == [1, 2] and solved[0].trajectory_q_halt.tolist() == [-1.0, 2.0]
    assert seen["a"][0][:, 0].tolist() == [2, 3] and solved[0].mean_steps == 2.5


# ---- Sudoku -----------------------------------------------------------------------------------------------------


def sudoku_context(size=4):
    return SolveContext(seq_len=size * size, vocab_size=11, identifier_names=None, task_options=None)


def test_sudoku_reads_inline_boards_text_rows_lines_and_csv(tmp_path):
    from trm_sudoku.solving import read_puzzles

    (board,) = read_puzzles("3..4.4.....1..3.", sudoku_context())
    assert board.inputs.tolist() == [[4, 1, 1, 5, 1, 5, 1, 1, 1, 1, 1, 2, 1, 1, 4, 1]]
    rows = tmp_path / "rows.txt"
    rows.write_text("3 . | . 4\n. 4 | . .\n----+----\n. . | . 1\n. . | 3 .\n")  # render's own picture reads back
    assert read_puzzles(str(rows), sudoku_context())[0].inputs.tolist() == board.inputs.tolist()
    lines = tmp_path / "lines.txt"
    lines.write_text("3..4.4.....1..3.\n\n3004040000010030\n")
    assert [p.name for p in read_puzzles(str(lines), sudoku_context())] == ["line 1", "line 3"]
    table = tmp_path / "puzzles.csv"
    table.write_text("source,question,answer,rating\nx,3..4.4.....1..3.,3214142323414132,0\n")
    (row,) = read_puzzles(str(table), sudoku_context())
    assert row.label.tolist() == [4, 3, 2, 5, 2, 5, 3, 4, 3, 4, 5, 2, 5, 2, 4, 3]


@pytest.mark.parametrize("text, message", [
    ("3..4.4.....1..3", "expected 16 cells for the model's 4x4 board, got 15"),
    ("3..4.4.....1..3x", "cell 16 is 'x'; expected a digit 1-4"),
    ("3..4.4.....1..35", "cell 16 is '5'"),
    ("missing/board.txt", "no such file"),
])
def test_sudoku_refuses_puzzles_the_model_cannot_take(text, message):
    from trm_sudoku.solving import read_puzzles

    with pytest.raises(UserError, match=message):
        read_puzzles(text, sudoku_context())


def test_sudoku_check_answer_applies_the_rules():
    from trm_sudoku.solving import check_answer, read_puzzles

    (puzzle,) = read_puzzles("3..4.4.....1..3.", sudoku_context())
    right = np.array([3, 2, 1, 4, 1, 4, 2, 3, 2, 3, 4, 1, 4, 1, 3, 2]) + 1
    assert check_answer(puzzle, right)[0] is True
    repeated = right.copy()
    repeated[1], repeated[2] = repeated[2], repeated[1]  # row 1 still fine, columns 2 and 3 repeat
    assert check_answer(puzzle, repeated) == (False, "column 2 repeats a digit")
    changed = right.copy()
    changed[[0, 1]] = changed[[1, 0]]
    assert "given digits were changed" in check_answer(puzzle, changed)[1]
    blank = right.copy()
    blank[5] = 1
    assert "not digits" in check_answer(puzzle, blank)[1]
    (impossible,) = read_puzzles("11..............", sudoku_context())  # row 1 gives 1 twice: nothing can be valid
    assert check_answer(impossible, right) == (False, "the puzzle itself breaks the rules: row 1 gives the digit 1 "
                                                      "twice, so it has no solution")


# ---- the command on a trained model ---------------------------------------------------------------------------


def solve_cli(*args):
    from click.testing import CliRunner

    from trm.cli import cli

    return CliRunner().invoke(cli, ["solve", *args], catch_exceptions=False)


def test_trm_solve_prints_the_answer_steps_confidence_and_validity(tiny_sudoku_run):
    result = solve_cli(str(tiny_sudoku_run), "3..4.4.....1..3.")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["puzzle", "answer"] and lines[1].startswith("3 . | . 4")
    assert any(line.startswith("steps: ") and "of 2" in line and "halting confidence" in line for line in lines)
    assert any(line.startswith("valid: yes") or line.startswith("valid: no") for line in lines)


def test_trm_solve_json_matches_the_python_api_with_the_same_stop_rule(tiny_sudoku_run):
    import trm.api

    result = solve_cli(str(tiny_sudoku_run), "3..4.4.....1..3.", "--json", "--max-steps", "5")
    assert result.exit_code == 0, result.output
    (solved,) = json.loads(result.stdout)["puzzles"]
    model = trm.api.load(tiny_sudoku_run, device="cpu")
    inputs = np.array([[4, 1, 1, 5, 1, 5, 1, 1, 1, 1, 1, 2, 1, 1, 4, 1]])
    for step in model.steps(inputs, max_steps=5):  # act_q: the first step whose q_halt > 0, else the last
        if step.q_halt[0] > 0 or step.step == 5:
            break
    assert solved["steps"] == step.step and solved["max_steps"] == 5
    assert solved["answer_tokens"] == step.predictions[0].tolist()
    assert solved["q_halt"] == pytest.approx(float(step.q_halt[0]), abs=1e-5)
    assert solved["valid"] in (True, False) and solved["stopped_early"] == (step.step < 5)
    evaluated = model.solve(inputs, halting="adaptive", max_steps=5)  # trm eval's continuous batching
    assert int(evaluated.steps[0]) == solved["steps"]
    assert np.asarray(evaluated.predictions)[0].tolist() == solved["answer_tokens"]
    fixed = json.loads(solve_cli(str(tiny_sudoku_run), "3..4.4.....1..3.", "--json", "--max-steps", "5",
                                 "--halting", "fixed").stdout)["puzzles"][0]
    assert fixed["steps"] == 5 and len(fixed["q_halt_per_step"]) == 5


def test_trm_solve_refuses_a_bad_puzzle_in_one_line_with_exit_2(tiny_sudoku_run):
    result = solve_cli(str(tiny_sudoku_run), "123456789")
    assert result.exit_code == 2
    assert result.output.strip() == "trm: error: puzzle: expected 16 cells for the model's 4x4 board, got 9"
    assert solve_cli(str(tiny_sudoku_run), "3..4.4.....1..3.", "--trajectory", "out.jpg").exit_code == 2


@pytest.mark.parametrize("device, message", [
    ("tpu", "--device 'tpu': not a device; expected e.g. cpu, cuda or cuda:1"),
    ("cuda", "--device cuda: CUDA is not available to this torch"),
])
def test_trm_solve_refuses_a_bad_device_in_one_line_with_exit_2(tiny_sudoku_run, monkeypatch, device, message):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    result = solve_cli(str(tiny_sudoku_run), "3..4.4.....1..3.", "--device", device)
    assert result.exit_code == 2, result.output
    assert result.output.strip().startswith(f"trm: error: {message}")
    assert "Traceback" not in result.output


def test_trm_solve_a_file_of_puzzles_in_batches(tiny_sudoku_run, tmp_path):
    from trm.store import open_store

    store = open_store(tiny_sudoku_run.parent / "store.zarr").split("test")
    boards = ["".join("." if t == 1 else str(t - 1) for t in row) for row in np.asarray(store.inputs[np.arange(10)])]
    (tmp_path / "ten.txt").write_text("\n".join(boards) + "\n")
    result = solve_cli(str(tiny_sudoku_run), str(tmp_path / "ten.txt"), "--batch-size", "3", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "== line 10 ==" in result.output and result.output.splitlines()[-1].startswith("10 puzzles, mean ")
    as_json = json.loads(solve_cli(str(tiny_sudoku_run), str(tmp_path / "ten.txt"), "--json").stdout)
    assert len(as_json["puzzles"]) == 10


def test_trm_solve_also_takes_a_checkpoint_directory(tiny_sudoku_run):
    checkpoint = sorted((tiny_sudoku_run / "checkpoints").glob("step_*"))[-1]
    result = solve_cli(str(checkpoint), "3..4.4.....1..3.", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["checkpoint"].endswith(checkpoint.name)


def _colour_pixels(path: Path, colour: tuple[int, int, int], tolerance: int = 12) -> int:
    from PIL import Image

    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return int((np.abs(pixels - np.array(colour)).max(axis=-1) <= tolerance).sum())


TINT = (255, 223, 195)  # the changed-cell tint: orange at alpha 0.25 over white


def test_trajectory_png_and_gif_draw_every_step_with_changed_cells_highlighted(tiny_sudoku_run, tmp_path):
    from PIL import Image

    png, gif = tmp_path / "t.png", tmp_path / "t.gif"
    for path in (png, gif):
        result = solve_cli(str(tiny_sudoku_run), "3..4.4.....1..3.", "--halting", "fixed", "--max-steps", "3",
                           "--trajectory", str(path))
        assert result.exit_code == 0 and f"trajectory: {path}" in result.output
    width, height = Image.open(png).size
    assert width > 2.5 * height  # puzzle + 3 steps side by side, one row
    assert _colour_pixels(png, TINT) > 500  # step 1 fills the blanks: they are changed cells
    assert Image.open(gif).n_frames >= 2


def test_a_task_without_a_draw_hook_gets_the_fallback_grid(tmp_path):
    from trm.trajectory import draw_trajectory

    task = TaskSpec("plain", object, lambda o, w: None, "a third-party task with no drawing")
    context = SolveContext(seq_len=9, vocab_size=4, identifier_names=None, task_options=None)
    steps = np.array([[1, 2, 3, 0, 1, 2, 3, 0, 1], [1, 2, 3, 3, 1, 2, 3, 0, 1]])
    path = draw_trajectory(tmp_path / "plain.png", task, context, np.zeros(9, dtype=int), steps, [0.5, 1.5])
    assert path.stat().st_size > 1000


# ---- Maze -------------------------------------------------------------------------------------------------------

MAZE = ["#####",
        "#S..#",
        "##.##",
        "#..G#",
        "#####"]


def maze_context():
    return SolveContext(seq_len=25, vocab_size=6, identifier_names=None, task_options=None)


def test_maze_reads_rows_and_checks_a_path(tmp_path):
    from trm_maze.grid import PATH, solve
    from trm_maze.solving import check_answer, read_puzzles

    (tmp_path / "m.txt").write_text("\n".join(MAZE) + "\n\n" + "\n".join(row.replace(".", " ") for row in MAZE))
    first, second = read_puzzles(str(tmp_path / "m.txt"), maze_context())
    assert first.inputs.tolist() == second.inputs.tolist()  # '.' and space are both open
    answer = solve(first.inputs[0])
    assert check_answer(first, answer) == (True, "a shortest path from S to G (4 moves)")
    broken = answer.copy()
    broken[np.flatnonzero(answer == PATH)[0]] = 2
    assert check_answer(first, broken)[0] is False


@pytest.mark.parametrize("rows, message", [
    (MAZE[:4] + ["####"], "has 5 characters, this one 4"),
    (MAZE[:3] + ["#.xG#", MAZE[4]], "character 'x' is not one of"),
    ([MAZE[0], "#...#"] + MAZE[2:], "exactly one S and one G"),
])
def test_maze_refuses_mazes_the_model_cannot_take(tmp_path, rows, message):
    from trm_maze.solving import read_puzzles

    (tmp_path / "bad.txt").write_text("\n".join(rows) + "\n")
    with pytest.raises(UserError, match=message):
        read_puzzles(str(tmp_path / "bad.txt"), maze_context())


def test_maze_canonical_form_identifies_the_dihedral_versions():
    from trm_maze.dihedral import transform_flat
    from trm_maze.grid import encode
    from trm_maze.solving import canonical_input

    maze = encode("".join(MAZE).replace(".", " "))
    forms = {canonical_input(transform_flat(maze, tid, 5)) for tid in range(8)}
    other = maze.copy()
    other[7] = 1  # a wall where an open cell was
    assert len(forms) == 1 and canonical_input(other) not in forms


# ---- ARC --------------------------------------------------------------------------------------------------------


def test_arc_combine_votes_over_de_augmented_versions():
    from trm_arc.canvas import grid_to_canvas
    from trm_arc.solving import combine
    from trm_arc.transforms import augment_grid

    answer = np.array([[1, 2], [3, 4]], dtype=np.uint8)
    versions = [(0, np.arange(10, dtype=np.uint8)), (1, np.array([0, 2, 1, 3, 4, 5, 6, 7, 8, 9], np.uint8)),
                (6, np.arange(10, dtype=np.uint8))]
    preds = [grid_to_canvas(augment_grid(answer, tid, cmap)) for tid, cmap in versions[:2]]
    preds.append(grid_to_canvas(np.array([[5]], dtype=np.uint8)))  # one dissenting version
    puzzle = Puzzle("t test 0", np.zeros((3, 900)), np.arange(1, 4), label=grid_to_canvas(answer), data=versions)
    solution = combine(puzzle, np.stack(preds), np.zeros(3), None)
    assert np.array_equal(solution.tokens, grid_to_canvas(answer))  # 2 votes beat 1 once both are undone
    assert np.array_equal(solution.attempts[1], grid_to_canvas(np.array([[5]], dtype=np.uint8)))
    assert "attempt 1 has 2, attempt 2 has 1 votes" in solution.note and "attempt 1 is right" in solution.note


def test_trm_solve_on_arc_knows_only_its_training_tasks(tiny_arc_run, tmp_path):
    from in_process import trm_in_process as trm  # trm solve in this process, as solve_cli above

    arc_dir, run = tiny_arc_run  # 2 steps on the tiny ARC subsets (conftest.py)
    by_id = trm("solve", str(run), "evalA", "--json", "--max-steps", "2")
    assert by_id.returncode == 0, by_id.stderr
    puzzles = json.loads(by_id.stdout)["puzzles"]
    assert [p["name"] for p in puzzles] == ["evalA test 0", "evalA test 1"]
    assert all(p["versions"] == 4 and len(p["attempts"]) == 2 for p in puzzles)
    assert all(p["matches_known_answer"] in (True, False) for p in puzzles)
    task = json.loads((arc_dir / "arc-agi_evaluation_challenges.json").read_text())["evalB"]
    (tmp_path / "evalB.json").write_text(json.dumps(task))
    by_file = trm("solve", str(run), str(tmp_path / "evalB.json"))
    assert by_file.returncode == 0 and "attempt 1" in by_file.stdout and "attempt 2" in by_file.stdout
    (tmp_path / "newtask.json").write_text(json.dumps(task))
    unknown = trm("solve", str(run), str(tmp_path / "newtask.json"))
    assert unknown.returncode == 2 and "only knows its training tasks' ids" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1
    picture = trm("solve", str(run), "trainA", "--trajectory", str(tmp_path / "arc.png"))
    assert picture.returncode == 0 and (tmp_path / "arc.png").stat().st_size > 1000


def test_a_third_party_task_reads_checks_and_draws_through_its_own_hooks(tmp_path):
    import importlib.util

    from conftest import REPO
    from trm.trajectory import draw_trajectory

    path = REPO / "docs" / "examples" / "trm-sorting" / "trm_sorting" / "__init__.py"
    spec = importlib.util.spec_from_file_location("sorting_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (task,) = module.trm_tasks()
    context = SolveContext(seq_len=4, vocab_size=11, identifier_names=None, task_options=None)
    (puzzle,) = task.read_puzzles("5093", context)
    assert task.check_answer(puzzle, np.array([1, 4, 6, 10]))[0] is True
    assert task.check_answer(puzzle, puzzle.inputs[0])[0] is False
    with pytest.raises(UserError, match="expected 4 digits"):
        task.read_puzzles("50a3", context)
    steps = np.array([[1, 6, 4, 10], [1, 4, 6, 10]])
    picture = draw_trajectory(tmp_path / "sorting.png", task, context, puzzle.inputs[0], steps, [-1.0, 2.0])
    assert _colour_pixels(picture, (255, 127, 14), tolerance=20) > 50  # the changed cells' outline
    assert _colour_pixels(picture, (253, 231, 37), tolerance=20) > 200  # viridis' yellow: digit 9 is drawn


def test_trm_solve_on_a_maze_file(tmp_path):
    from in_process import trm_in_process as trm  # the run and trm solve in this process

    from conftest import REPO
    from trm.store import open_store
    from trm_maze.render import render_maze

    recipe = tmp_path / "maze.yaml"
    recipe.write_text(
        f"extends: {REPO}/recipes/quickstart_4x4.yaml\n"
        "task: {name: maze, options: {source: generate, size: 8, min_path_length: 6, num_train: 40, num_test: 4}}\n"
        f"data: {{store: {tmp_path / 'maze.zarr'}, build_if_missing: true}}\n"
        "model: {hidden_size: 32, h_cycles: 1, l_cycles: 1, puzzle_emb_len: 1, puzzle_emb_dim: 32}\n"
        "backbone: {name: attention, options: {layers: 1, num_heads: 2}}\n"
        "train: {global_batch_size: 16, epochs: 100000, max_steps: 2, compile: 'off'}\n"
        "eval: {every: null, evaluators: null}\n")
    assert trm("run", str(recipe), "--run-dir", str(tmp_path / "run"), "--no-progress").returncode == 0
    test = open_store(tmp_path / "maze.zarr").split("test")
    maze = tmp_path / "maze.txt"
    maze.write_text(render_maze(np.asarray(test.inputs[[0]])[0]) + "\n")
    result = trm("solve", str(tmp_path / "run"), str(maze), "--trajectory", str(tmp_path / "maze.png"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split() == ["puzzle", "answer"]
    assert any(line.startswith("valid: ") for line in result.stdout.splitlines())
    assert (tmp_path / "maze.png").stat().st_size > 1000
    wrong_size = tmp_path / "small.txt"
    wrong_size.write_text("S.\n.G\n")
    refused = trm("solve", str(tmp_path / "run"), str(wrong_size))
    assert refused.returncode == 2 and "has 8 characters, this one 2" in refused.stderr


@pytest.mark.parametrize("command", ["eval", "solve"])
def test_a_halt_threshold_with_fixed_halting_is_refused_in_one_line(command, tmp_path):
    from click.testing import CliRunner

    from trm.cli import cli

    args = [command, str(tmp_path / "run"), *(["3..4.4.....1..3."] if command == "solve" else []),
            "--halting", "fixed", "--halt-threshold", "0.9"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "--halt-threshold 0.9: it applies to --halting adaptive only" in result.output


@pytest.fixture
def closed_figures(monkeypatch):
    """Every figure handed to pyplot.close, drawn first, so that its artists can be measured."""
    from trm.trajectory import pyplot

    plt = pyplot()
    figures, close = [], plt.close

    def recording_close(figure=None):
        figure.canvas.draw()
        title = figure._suptitle
        box = title.get_window_extent()  # measured before closing, while the figure has its Agg canvas
        figures.append((title.get_text(), box.x0, box.x1, figure.bbox.width))
        close(figure)

    monkeypatch.setattr(plt, "close", recording_close)
    return figures


def _title_inside(drawn) -> bool:
    _, left, right, width = drawn
    return left >= 0 and right <= width


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_the_trajectory_title_fits_the_figure_however_few_panels(steps, closed_figures, tmp_path):
    """A model that halts after one step drew two panels under a one-line title wider than the figure (cut on both
    sides); the title now wraps where it must, and wide figures keep it on one line."""
    from trm.trajectory import draw_trajectory

    task = TaskSpec("plain", object, lambda o, w: None, "a third-party task with no drawing")
    context = SolveContext(seq_len=16, vocab_size=6, identifier_names=None, task_options=None)
    trajectory = np.tile(np.arange(16) % 6, (steps, 1))
    draw_trajectory(tmp_path / "t.png", task, context, np.zeros(16, dtype=int), trajectory, [0.5] * steps,
                    max_steps=16, title=f"3..4.4.....1..3.: {steps} of 16 steps (adaptive halting)")
    (drawn,) = closed_figures
    assert _title_inside(drawn), drawn
    text = drawn[0]
    assert "cells changed by the step" in text and f"{steps} of 16 steps" in text.replace("\n", " ")
    assert ("\n" in text) == (steps == 1)  # two panels: too narrow for one line; four: wide enough


def test_the_trajectory_gif_title_fits_its_frame(closed_figures, tmp_path):
    from trm.trajectory import draw_trajectory

    task = TaskSpec("plain", object, lambda o, w: None, "a third-party task with no drawing")
    context = SolveContext(seq_len=9, vocab_size=4, identifier_names=None, task_options=None)
    draw_trajectory(tmp_path / "t.gif", task, context, np.zeros(9, dtype=int), np.ones((2, 9), dtype=int),
                    [0.5, 1.5], max_steps=16,
                    title="a-rather-long-file-name-of-puzzles.txt line 12: 2 of 16 steps (adaptive halting)")
    (drawn,) = closed_figures
    assert _title_inside(drawn), drawn

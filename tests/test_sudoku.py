"""The sudoku task: CSV reading, validity-preserving shuffles, the solver and generator, and a store build."""

from __future__ import annotations

import random

import numpy as np
import pytest

from conftest import SHARED_DATA
from trm.errors import UserError
from trm.store import open_store
from trm.store_write import build_store
from trm_sudoku import SudokuOptions, dims, trm_tasks
from trm_sudoku.augment import is_valid_solution, shuffle_boards
from trm_sudoku.csv_source import read_csv
from trm_sudoku.generate import generate_puzzles
from trm_sudoku.render import render
from trm_sudoku.solver import Solver

SUDOKU = trm_tasks()[0]
TRAIN_1K = SHARED_DATA / "sudoku" / "train_1k.csv"
HEADER = "source,question,answer,rating\n"
# A 9x9 puzzle from train_1k.csv (SOURCE.md quotes it) and its answer.
Q9 = "...7.2..5....95.8.19..8..67..4...6....79...2.26...1......5......39.....8....784.."
A9 = "846712935372695184195483267984237651517964823263851749728549316439126578651378492"


def digits(text: str) -> np.ndarray:
    return np.array([0 if ch == "." else int(ch) for ch in text], dtype=np.uint8)


def write_csv(path, rows):
    path.write_text(HEADER + "".join(f",{q},{a},{r}\n" for q, a, r in rows))
    return path


@pytest.mark.parametrize("size", [4, 6, 9])
def test_shuffles_keep_boards_valid_consistent_and_clue_counts(size):
    (puzzle, solution, _), = generate_puzzles(size, 1, seed=size)
    puzzle, solution = np.array(puzzle), np.array(solution)
    rng = np.random.default_rng(0)
    shuffled_q, shuffled_a = shuffle_boards(puzzle, solution, 200, rng, size)
    solver = Solver(size)
    for q, a in zip(shuffled_q, shuffled_a):
        assert is_valid_solution(a, size)
        clues = q != 0
        assert clues.sum() == (puzzle != 0).sum()
        assert (q[clues] == a[clues]).all()
    for q, a in zip(shuffled_q[:20], shuffled_a[:20]):  # the shuffled puzzle still has exactly that one solution
        assert solver.solve(q.tolist(), limit=2) == [a.tolist()]
    assert len({q.tobytes() for q in shuffled_q}) > 150  # the shuffles really differ


def test_transpose_only_for_square_boxes():
    """A 6x6 board's 2x3 boxes must never be transposed: row 0's first 3 cells always stay in one box row."""
    (puzzle, solution, _), = generate_puzzles(6, 1, seed=1)
    _, shuffled = shuffle_boards(np.array(puzzle), np.array(solution), 300, np.random.default_rng(1), 6)
    assert all(is_valid_solution(board, 6) for board in shuffled)


def test_real_rows_shuffle_validly():
    q, a = digits(Q9), digits(A9)
    shuffled_q, shuffled_a = shuffle_boards(q, a, 500, np.random.default_rng(3), 9)
    assert all(is_valid_solution(board) for board in shuffled_a)
    assert ((shuffled_q == 0) | (shuffled_q == shuffled_a)).all()
    assert ((shuffled_q != 0).sum(1) == (q != 0).sum()).all()


@pytest.mark.parametrize("size, count", [(4, 30), (6, 20), (9, 8)])
def test_generator_makes_distinct_puzzles_with_one_solution(size, count):
    made = list(generate_puzzles(size, count, seed=11))
    solver = Solver(size)
    assert len({tuple(p) for p, _, _ in made}) == count
    for puzzle, solution, guesses in made:
        assert solver.count_solutions(puzzle, limit=2) == 1
        assert solver.solve(puzzle) == [solution] and is_valid_solution(np.array(solution), size)
        assert all(c in (0, s) for c, s in zip(puzzle, solution)) and 0 in puzzle
        assert guesses == solver.rate(puzzle)
    # the same seed gives the same puzzles
    assert [p for p, _, _ in generate_puzzles(size, 3, seed=11)] == [p for p, _, _ in made[:3]]


def test_generator_difficulty_control():
    made = list(generate_puzzles(9, 3, seed=5, min_guesses=2))
    assert all(g >= 2 for _, _, g in made)
    with pytest.raises(ValueError, match="widen the difficulty range"):
        list(generate_puzzles(4, 2, seed=0, min_guesses=5, max_tries=20))


def test_solver_counts_guesses_and_multiple_solutions():
    solver = Solver(9)
    assert solver.solve(digits(Q9).tolist()) == [digits(A9).tolist()]
    assert solver.rate(digits(A9).tolist()) == 0
    empty = [0] * 81
    assert solver.count_solutions(empty, limit=2) == 2
    bad = digits(Q9).tolist()
    bad[0], bad[1] = 3, 3  # two 3s in row 0
    assert solver.solve(bad) == []


def test_read_csv_and_errors(tmp_path):
    good = write_csv(tmp_path / "good.csv", [(Q9, A9, 5), (Q9.replace(".", "0"), A9, 1)])
    rows = read_csv(good)
    assert rows.size == 9 and rows.questions.shape == (2, 81) and rows.ratings.tolist() == [5, 1]
    np.testing.assert_array_equal(rows.questions[0], rows.questions[1])
    assert len(read_csv(good, min_rating=3).questions) == 1
    with pytest.raises(UserError, match="disagrees with its clues"):
        read_csv(write_csv(tmp_path / "bad.csv", [(A9.replace("8", "1", 1), A9, 0)]))
    with pytest.raises(UserError, match="header"):
        (tmp_path / "nohead.csv").write_text(f"{Q9},{A9}\n")
        read_csv(tmp_path / "nohead.csv")
    with pytest.raises(UserError, match=r"bad.csv:2: question: expected a square Sudoku board, got 80 cells"):
        read_csv(write_csv(tmp_path / "bad.csv", [(Q9[:80], A9, 0)]))
    with pytest.raises(UserError, match=r"bad.csv:3: answer: expected 81 cells for a 9x9 Sudoku \(size=9\), got 80 "
                                        r"cells$"):
        read_csv(write_csv(tmp_path / "bad.csv", [(Q9, A9, 0), (Q9, A9[:80], 0)]), size=9)


def test_another_tasks_csv_names_the_expected_sudoku_size(tmp_path):
    maze = "# SGo" * 180  # a 30x30 maze row: 900 cells
    path = write_csv(tmp_path / "train.csv", [(maze, maze, 0)])
    with pytest.raises(UserError, match=r"train.csv:2: question: expected 81 cells for a 9x9 Sudoku \(size=9\), "
                                        r"got 900 cells; this looks like another task's file"):
        read_csv(path, size=9)
    four = "1234341221434321"
    with pytest.raises(UserError, match="boards are 4x4 but size=9; set size=4"):
        read_csv(write_csv(tmp_path / "four.csv", [(four, four, 0)]), size=9)


def test_train_only_source_file_notes_the_missing_test_split(tmp_path, capsys):
    write_csv(tmp_path / "train_1k.csv", [(Q9, A9, 5)] * 2)
    info = build_store(SUDOKU, SudokuOptions(source=str(tmp_path / "train_1k.csv"), num_aug=1), tmp_path / "s.zarr",
                       show_progress=False)
    assert set(info.splits) == {"train"}
    err = capsys.readouterr().err
    assert f"note: no test file found next to {tmp_path / 'train_1k.csv'}" in err
    assert "the store has no test split, so runs will not evaluate" in err


def test_build_from_csv_directory(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    write_csv(source / "train.csv", [(Q9, A9, 5)] * 4)
    write_csv(source / "test.csv", [(Q9, A9, 9)] * 3)
    options = SudokuOptions(source=str(source), num_aug=9, subsample_size=2, seed=4)
    info = build_store(SUDOKU, options, tmp_path / "s.zarr", show_progress=False)
    assert (info.vocab_size, info.seq_len, info.num_puzzle_identifiers) == (11, 81, 1) == tuple(
        getattr(dims(options), f) for f in ("vocab_size", "seq_len", "num_puzzle_identifiers"))
    store = open_store(tmp_path / "s.zarr", expect_task="sudoku")
    train, test = store.split("train"), store.split("test")
    assert (train.num_groups, train.num_puzzles, train.num_examples) == (2, 20, 20)
    assert (test.num_groups, test.num_examples) == (3, 3)
    assert (train.puzzle_identifiers == 0).all()
    inputs, labels = train.inputs[np.arange(20)], train.labels[np.arange(20)]
    np.testing.assert_array_equal(inputs[0], digits(Q9) + 1)  # version 0 is the original
    assert inputs.min() >= 1 and labels.min() >= 2 and labels.max() <= 10
    for x, y in zip(inputs, labels):
        assert is_valid_solution(y - 1) and ((x == 1) | (x == y)).all()
    with pytest.raises(UserError, match="size=9"):
        build_store(SUDOKU, SudokuOptions(source=str(source), size=4), tmp_path / "t.zarr", show_progress=False)


def test_build_generated_small_boards(tmp_path):
    options = SudokuOptions(source="generate", size=6, num_train=5, num_test=4, num_aug=3, seed=2)
    info = build_store(SUDOKU, options, tmp_path / "g.zarr", show_progress=False)
    assert info.seq_len == 36 and info.extras["board"] == {"size": 6, "box": [2, 3]}
    train = open_store(tmp_path / "g.zarr").split("train")
    assert train.num_examples == 5 * 4
    assert all(is_valid_solution(y - 1, 6) for y in train.labels[np.arange(20)])
    test_boards = {r.tobytes() for r in open_store(tmp_path / "g.zarr").split("test").inputs[np.arange(4)]}
    assert not test_boards & {r.tobytes() for r in train.inputs[np.arange(0, 20, 4)]}


def test_render():
    text = render(digits(Q9) + 1)
    lines = text.splitlines()
    assert len(lines) == 11 and lines[0] == ". . . | 7 . 2 | . . 5" and set(lines[3]) == {"-", "+"}
    assert render(np.array([2, 3, 4, 5, 1, 1, 1, 1, 0, 0, 0, 0, 2, 2, 2, 2])).splitlines()[0] == "1 2 | 3 4"


@pytest.mark.skipif(not TRAIN_1K.exists(), reason=f"real Sudoku data not found at {TRAIN_1K}")
def test_real_train_file_reads_and_shuffles():
    rows = read_csv(TRAIN_1K)
    assert rows.questions.shape == (1000, 81)
    clues = (rows.questions != 0).sum(1)
    assert clues.min() >= 17 and clues.max() <= 35
    rng = np.random.default_rng(0)
    for q, a in zip(rows.questions[:50], rows.answers[:50]):
        sq, sa = shuffle_boards(q, a, 20, rng)
        assert all(is_valid_solution(b) for b in sa) and ((sq == 0) | (sq == sa)).all()


def test_augment_and_data_info_commands(tmp_path):
    from click.testing import CliRunner

    from trm.cli import cli

    runner = CliRunner()
    out = tmp_path / "s.zarr"
    args = ["augment", "sudoku", "--source", "generate", "--out", str(out), "size=4", "num_train=3", "num_test=2",
            "num_aug=2", "--no-progress"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "3 groups, 9 puzzles, 9 examples" in result.output and "fingerprint" in result.output
    info = runner.invoke(cli, ["data", "info", str(out)])
    assert info.exit_code == 0 and "seq_len      16" in info.output
    assert '"vocab_size": 11' in runner.invoke(cli, ["data", "info", "--json", str(out)]).output
    again = runner.invoke(cli, args)
    assert again.exit_code == 2 and "already exists; pass --overwrite" in again.output
    assert runner.invoke(cli, args + ["--overwrite"]).exit_code == 0
    typo = runner.invoke(cli, ["augment", "sudoku", "--out", str(tmp_path / "t.zarr"), "num_agu=3"])
    assert typo.exit_code == 2 and "did you mean 'num_aug'" in typo.output
    twice = runner.invoke(cli, ["augment", "sudoku", "--source", "generate", "--out", str(tmp_path / "t.zarr"),
                                "source=generate"])
    assert twice.exit_code == 2 and "either --source or source=" in twice.output
    assert not (tmp_path / "t.zarr").exists()
    missing = runner.invoke(cli, ["data", "info", str(tmp_path / "nothing.zarr")])
    assert missing.exit_code == 2 and "dataset store not found" in missing.output


@pytest.mark.skipif(not (TRAIN_1K.parent / "test_rebuilt.csv").exists(), reason="real Sudoku data not found")
def test_build_from_the_real_files(tmp_path):
    """The real files give the documented counts (SOURCE.md): 1,000 training rows, 46,198 test rows."""
    options = SudokuOptions(source=str(TRAIN_1K.parent), train_file="train_1k.csv", test_file="test_rebuilt.csv",
                            num_aug=2, seed=0)
    info = build_store(SUDOKU, options, tmp_path / "real.zarr", show_progress=False)
    assert info.splits["train"]["num_examples"] == 3000 and info.splits["train"]["num_groups"] == 1000
    assert info.splits["test"]["num_examples"] == 46198
    test = open_store(tmp_path / "real.zarr").split("test")
    rows = test.labels[np.arange(0, 46198, 997)] - 1
    assert all(is_valid_solution(board) for board in rows)


def test_test_boards_found_among_training_versions_are_warned_about(tmp_path, capsys):
    source = tmp_path / "src"
    source.mkdir()
    write_csv(source / "train.csv", [(Q9, A9, 5)] * 2)
    write_csv(source / "test.csv", [(Q9, A9, 9)] * 3)
    build_store(SUDOKU, SudokuOptions(source=str(source), num_aug=2), tmp_path / "s.zarr", show_progress=False)
    assert ("warning: 3 of 3 test puzzles equal a training puzzle or one of its shuffles (num_aug), so their test "
            "scores are not held out") in capsys.readouterr().err
    other = tmp_path / "other"
    other.mkdir()
    write_csv(other / "train.csv", [(Q9, A9, 5)])
    write_csv(other / "test.csv", [(Q9.replace("4", ".", 1), A9, 9)])  # one clue fewer: another board
    build_store(SUDOKU, SudokuOptions(source=str(other), num_aug=0), tmp_path / "t.zarr", show_progress=False)
    assert "warning" not in capsys.readouterr().err

"""The maze task: grids and BFS, dihedral transforms, generator, CSV, store build, maze_path evaluator, renderer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA
from trm.errors import UserError
from trm.plugins import registry
from trm.store import open_store
from trm.store_write import build_store
from trm_maze import dihedral
from trm_maze.build import dims
from trm_maze.csv_source import read_csv
from trm_maze.evaluator import MazePathEvaluator, judge
from trm_maze.generate import generate_mazes
from trm_maze.grid import (
    OPEN, PATH, WALL, check_path, decode, encode, shortest_distance, solve, verify_example,
)
from trm_maze.options import MazeOptions, MazePathOptions
from trm_maze.render import render_maze, render_prediction

MAZE_DIR = SHARED_DATA / "maze"

# A 5x5 maze with two shortest paths (6 moves): around the wall block by the top or by the bottom.
SMALL = (
    "S    "
    " ### "
    " ### "
    " ### "
    "    G"
)


def test_tokens_round_trip_and_reference_ids():
    assert list(encode("# SGo")) == [1, 2, 3, 4, 5]
    assert decode(encode(SMALL)) == SMALL
    with pytest.raises(ValueError, match="'x'"):
        encode("S x G")


def test_solve_marks_a_shortest_path_with_the_maze_hard_tie_break():
    question = encode(SMALL)
    assert shortest_distance(question) == 8
    answer = solve(question)
    verify_example(question, answer)
    # From S the rule prefers down over right: the path runs down the left column, then along the bottom row.
    assert decode(answer) == "S    " "o### " "o### " "o### " "ooooG"


def test_check_path_distinguishes_shortest_connected_and_broken():
    question = encode(SMALL)
    top = encode("Soooo" " ###o" " ###o" " ###o" "    G")
    assert check_path(question, top) == (True, True)  # the other shortest path is valid too
    detour = encode("Soooo" "o###o" " ###o" " ###o" "    G")  # a stray cell: connected but not shortest
    assert check_path(question, detour) == (True, False)
    broken = encode("Soo o" " ###o" " ###o" " ###o" "    G")
    assert check_path(question, broken) == (False, False)
    on_wall = solve(question)
    on_wall[6] = PATH  # a path cell on a wall is never valid, even next to a correct path
    assert check_path(question, on_wall) == (False, False)


def test_verify_example_rejects_bad_labels():
    question = encode(SMALL)
    with pytest.raises(ValueError, match="moves but the shortest"):
        verify_example(question, encode("Soooo" "o###o" " ###o" " ###o" "    G"))
    with pytest.raises(ValueError, match="more than open cells"):
        verify_example(question, encode("S    " " ### " " ### " " ### " "   #G"))
    with pytest.raises(ValueError, match="one S and one G"):
        verify_example(encode("S    " * 5), encode("S    " * 5))


def test_dihedral_ids_match_the_reference_and_inverses_undo_them():
    grid = np.arange(12).reshape(3, 4)
    assert np.array_equal(dihedral.transform(grid, 1), np.rot90(grid))
    assert np.array_equal(dihedral.transform(grid, 6), grid.T)
    assert np.array_equal(dihedral.transform(grid, 7), np.fliplr(np.rot90(grid)))
    outputs = set()
    for tid in range(8):
        moved = dihedral.transform(grid, tid)
        assert np.array_equal(dihedral.inverse(moved, tid), grid)
        outputs.add(moved.tobytes() + bytes(moved.shape))
    assert len(outputs) == 8


def test_dihedral_transform_keeps_labels_shortest_paths():
    question = encode(SMALL)
    answer = solve(question)
    for tid in range(8):
        verify_example(dihedral.transform_flat(question, tid, 5), dihedral.transform_flat(answer, tid, 5))


@pytest.mark.parametrize("side,min_moves,density", [(30, 109, 0.35), (8, 12, 0.3)])
def test_generator_is_hard_valid_distinct_and_seeded(side, min_moves, density):
    count = 6 if side == 30 else 50
    seen: set[bytes] = set()
    pairs = list(generate_mazes(np.random.default_rng(3), count=count, side=side, min_path_length=min_moves,
                                wall_density=density, seen=seen))
    assert len(pairs) == count and len(seen) == count
    for question, answer in pairs:
        assert question.shape == (side * side,)
        distance = shortest_distance(question)  # independent BFS, not the generator's own bookkeeping
        assert distance >= min_moves
        verify_example(question, answer)
        assert int((answer == PATH).sum()) + 1 == distance
    again = list(generate_mazes(np.random.default_rng(3), count=count, side=side, min_path_length=min_moves,
                                wall_density=density))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(pairs, again))


def test_generator_refuses_an_impossible_target():
    with pytest.raises(ValueError, match="could not generate"):
        list(generate_mazes(np.random.default_rng(0), count=1, side=3, min_path_length=20, wall_density=0.2,
                            max_failures=20))


def _write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("source,question,answer,rating\n" + "".join(f",{q},{a},0\n" for q, a in rows))
    return path


def test_csv_errors_name_file_and_line(tmp_path):
    good = (SMALL, decode(solve(encode(SMALL))))
    bad = (SMALL, SMALL.replace("S", " "))
    path = _write_csv(tmp_path / "train.csv", [good, bad])
    with pytest.raises(UserError, match=r"train\.csv:3: .*more than open cells"):
        read_csv(path)
    questions, answers = read_csv(_write_csv(tmp_path / "ok.csv", [good, good]))
    assert questions.shape == (2, 25) and answers[0].max() == PATH


def _maze_task():
    return registry("tasks").get("maze")


def test_build_generated_store_and_read_it_back(tmp_path):
    options = MazeOptions(source="generate", size=8, min_path_length=10, wall_density=0.3, num_train=12,
                          num_test=5, seed=7, dihedral_aug=True)
    info = build_store(_maze_task(), options, tmp_path / "maze.zarr", show_progress=False)
    assert (info.vocab_size, info.seq_len, info.num_puzzle_identifiers) == (6, 64, 1)
    assert dims(options).seq_len == 64
    store = open_store(tmp_path / "maze.zarr", expect_task="maze")
    train, test = store.split("train"), store.split("test")
    assert (train.num_groups, train.num_puzzles, train.num_examples) == (12, 96, 96)
    assert (test.num_groups, test.num_puzzles) == (5, 5)
    assert set(np.asarray(train.puzzle_identifiers).tolist()) == {0}
    inputs, labels = np.asarray(train.inputs[np.arange(8)]), np.asarray(train.labels[np.arange(8)])
    for tid in range(8):  # the group holds the 8 dihedral versions, in id order
        assert np.array_equal(dihedral.transform_flat(inputs[tid], dihedral.INVERSE[tid], 8), inputs[0])
        verify_example(inputs[tid], labels[tid])
    for row in range(test.num_examples):
        verify_example(np.asarray(test.inputs[[row]])[0], np.asarray(test.labels[[row]])[0])
    again = build_store(_maze_task(), options, tmp_path / "again.zarr", show_progress=False)
    assert again.fingerprint == info.fingerprint  # seeded and deterministic


def test_build_from_csv_with_seeded_subsample(tmp_path):
    rows = []
    for question, answer in generate_mazes(np.random.default_rng(1), count=10, side=6, min_path_length=6,
                                           wall_density=0.25):
        rows.append((decode(question), decode(answer)))
    _write_csv(tmp_path / "train.csv", rows)
    _write_csv(tmp_path / "test.csv", rows[:3])
    options = MazeOptions(source=str(tmp_path), subsample_size=4, seed=5)
    info = build_store(_maze_task(), options, tmp_path / "csv.zarr", show_progress=False)
    assert info.splits["train"]["num_examples"] == 4 and info.splits["test"]["num_examples"] == 3
    from_file = build_store(_maze_task(), MazeOptions(source=str(tmp_path / "train.csv")), tmp_path / "file.zarr",
                            show_progress=False)  # a single file: test.csv beside it is the test split
    assert from_file.splits["train"]["num_examples"] == 10 and from_file.splits["test"]["num_examples"] == 3
    with pytest.raises(UserError, match="test_file"):
        build_store(_maze_task(), MazeOptions(source=str(tmp_path), test_file="nope.csv"), tmp_path / "y.zarr",
                    show_progress=False)
    with pytest.raises(UserError, match="neither a CSV file"):
        build_store(_maze_task(), MazeOptions(source=str(tmp_path / "missing")), tmp_path / "x.zarr",
                    show_progress=False)


def _batch(questions, labels, preds, valid=None):
    questions = np.stack(questions).astype(np.int32)
    return ({"inputs": questions, "labels": np.stack(labels).astype(np.int64),
             "puzzle_identifiers": np.zeros(len(questions), np.int32),
             "valid": np.ones(len(questions), bool) if valid is None else np.asarray(valid)},
            {"preds": np.stack(preds).astype(np.int32), "q_halt": np.zeros(len(questions), np.float32),
             "steps": np.full(len(questions), 16)})


def test_maze_path_evaluator_on_hand_made_cases(tmp_path):
    question = encode(SMALL)
    label = solve(question)  # down the left, along the bottom
    other_shortest = encode("Soooo" " ###o" " ###o" " ###o" "    G")
    wrong_cell = label.copy()
    wrong_cell[1] = PATH  # one stray path cell: connected, not shortest, not exact
    broken = label.copy()
    broken[5] = OPEN  # a hole in the path
    padding = label.copy()
    evaluator = MazePathEvaluator(MazePathOptions(render_failures=2))
    evaluator.update(*_batch([question] * 5, [label] * 5, [label, other_shortest, wrong_cell, broken, padding],
                             valid=[True, True, True, True, False]))
    metrics = evaluator.compute()
    assert metrics["count"] == 4
    assert metrics["exact_accuracy"] == pytest.approx(1 / 4)
    assert metrics["valid_path_rate"] == pytest.approx(2 / 4)  # the exact one and the other shortest path
    assert metrics["connected_rate"] == pytest.approx(3 / 4)
    assert 0 < metrics["path_iou"] < 1 and 0 < metrics["cell_accuracy"] < 1
    assert judge(question, label, label)["path_iou"] == 1.0
    written = evaluator.write(tmp_path)
    assert {p.name for p in written} == {"maze_path.json", "maze_path_examples.jsonl", "maze_path_failures.txt"}
    assert len((tmp_path / "maze_path_examples.jsonl").read_text().splitlines()) == 4
    # The trainer reuses one evaluator: the next pass starts afresh instead of mixing in the previous one.
    evaluator.update(*_batch([question], [label], [label]))
    assert evaluator.compute()["exact_accuracy"] == 1.0 and evaluator.compute()["count"] == 1


def test_maze_path_ignores_ignored_label_cells():
    question = encode(SMALL)
    label = solve(question).astype(np.int64)
    pred = label.copy()
    pred[6] = OPEN  # wrong, but that cell is not supervised
    label[6] = -100
    assert judge(question, label, pred)["exact"]


def test_renderers_show_the_maze_and_mark_mistakes():
    question = encode(SMALL)
    label = solve(question)
    assert render_maze(question).splitlines()[0] == "S...."
    stray = label.copy()
    stray[1] = PATH
    stray[6] = OPEN  # a wall predicted open
    text = render_prediction(question, stray, label)
    lines = text.splitlines()
    assert lines[0].startswith("exact: no; path: connects S to G but marks 8 cells")
    assert lines[1].split() == ["question", "prediction", "marks"]
    assert lines[2].split() == ["S....", "So...", "Sx..."]
    assert lines[3].split() == [".###.", "o.##.", "o!##."]
    missed = label.copy()
    missed[20] = OPEN
    assert "*" in render_prediction(question, missed, label)
    assert "does not connect" in render_prediction(question, missed)
    assert _maze_task().render(question, None) == render_maze(question)


@pytest.mark.skipif(not (MAZE_DIR / "train.csv").exists(), reason=f"real Maze-Hard CSVs absent from {MAZE_DIR}")
def test_real_maze_hard_csv_parses_and_labels_follow_the_tie_break():
    questions, answers = read_csv(MAZE_DIR / "test.csv")  # verify=True: every label is a BFS-shortest path
    assert questions.shape == (1000, 900)
    moves = (answers == PATH).sum(axis=1) + 1
    assert moves.min() == 109 and moves.max() == 153
    assert 0.35 < (questions == WALL).mean() < 0.39
    for question, answer in zip(questions[:100], answers[:100]):
        assert np.array_equal(solve(question), answer)


@pytest.mark.parametrize("name", ["maze_attn.yaml", "maze_small.yaml"])
def test_maze_recipes_validate_with_the_papers_numbers(name):
    from trm.config import load_recipe

    recipe = load_recipe(Path(__file__).resolve().parents[1] / "recipes" / name)
    assert recipe.task.name == "maze" and recipe.task.options.dihedral_aug is False
    assert [section.name for section in recipe.eval.evaluators] == ["maze_path"]
    if name == "maze_attn.yaml":  # docs/reference-code.md 8, Maze-Hard row
        assert (recipe.model.h_cycles, recipe.model.l_cycles) == (3, 4)
        assert (recipe.optim.lr, recipe.optim.puzzle_emb_lr) == (1e-4, 1e-4)
        assert (recipe.optim.weight_decay, recipe.optim.puzzle_emb_weight_decay) == (1.0, 1.0)
        assert (recipe.train.epochs, recipe.eval.every, recipe.train.global_batch_size) == (50000, 5000, 768)
        assert recipe.train.ema == 0.999 and recipe.backbone.options.positions == "rope"


def test_structure_options_rejects_a_typo():
    from trm.config import structure_options
    from trm.errors import RecipeError

    with pytest.raises(RecipeError, match="dihedral"):
        structure_options(MazeOptions, {"dihedral_augs": True})
    assert structure_options(MazeOptions, {"size": 8}).size == 8


def test_unreachable_generator_target_is_a_user_error(tmp_path):
    options = MazeOptions(source="generate", size=3, min_path_length=50, num_train=1, num_test=0)
    with pytest.raises(UserError, match="could not generate a 3x3 maze"):
        build_store(_maze_task(), options, tmp_path / "x.zarr", show_progress=False)
    assert not (tmp_path / "x.zarr").exists()


@pytest.mark.skipif(not (MAZE_DIR / "train.csv").exists(), reason=f"real Maze-Hard CSVs absent from {MAZE_DIR}")
def test_real_maze_hard_store_has_the_reference_layout(tmp_path):
    options = MazeOptions(source=str(MAZE_DIR), dihedral_aug=True)
    info = build_store(_maze_task(), options, tmp_path / "maze.zarr", show_progress=False)
    assert (info.vocab_size, info.seq_len, info.num_puzzle_identifiers) == (6, 900, 1)
    train = info.splits["train"]
    assert (train["num_groups"], train["num_puzzles"], train["num_examples"]) == (1000, 8000, 8000)
    assert (info.splits["test"]["num_groups"], info.splits["test"]["num_puzzles"]) == (1000, 1000)
    stats = info.extras["maze"]["splits"]
    assert stats["train"]["path_moves_min"] == 109 and stats["train"]["path_moves_mean"] == pytest.approx(114.06)

"""The ARC task plugin: transforms, canvas, augmentation, routing, leakage, voting, submission (docs/reference-code.md 1.3, 7).

Fast tests use tiny synthetic tasks written in the Kaggle layout. Tests on the real data skip when
/work/shared/data/arc (or $TRM_SHARED_DATA/arc) is absent; the full ARC-AGI-1 statistics check is marked slow.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import SHARED_DATA
from trm.plugins import registry
from trm.store import open_store
from trm.store_write import build_store
from trm.types import EvalContext
from trm_arc.augment import choose_versions, task_hash
from trm_arc.build import plan_build, plan_statistics
from trm_arc.canvas import CANVAS, EOS, PAD, crop_canvas, crop_canvases, grid_to_canvas
from trm_arc.evaluator import ArcVoteEvaluator
from trm_arc.kaggle import load_subset, write_subset
from trm_arc.layout import TaskLayout
from trm_arc.leakage import check_leakage
from trm_arc.options import ArcOptions, ArcVoteOptions
from trm_arc.submission import submission, validate_submission
from trm_arc.transforms import (augment_grid, deaugment_grid, dihedral, inverse_dihedral, parse_name,
                                random_colour_maps, version_name)
from trm_arc.vote import HeldOutTasks, VoteTable, grid_key, pass_at_k

from arc_tasks import make_task, rand_grid

ARC_DATA = SHARED_DATA / "arc"
needs_arc = pytest.mark.skipif(not (ARC_DATA / "arc-agi_training_challenges.json").is_file(),
                               reason=f"real ARC data not found at {ARC_DATA}")


# ---------------------------------------------------------------------------------------------------------------
# transforms and canvas
# ---------------------------------------------------------------------------------------------------------------

def test_dihedral_and_colour_maps_invert_for_all_ids():
    rng = np.random.default_rng(0)
    for trial in range(20):
        grid = rand_grid(rng, int(rng.integers(1, 31)), int(rng.integers(1, 31)))
        for tid in range(8):
            assert np.array_equal(inverse_dihedral(dihedral(grid, tid), tid), grid)
            colour_map = random_colour_maps(rng, 1)[0]
            assert colour_map[0] == 0 and sorted(colour_map) == list(range(10))
            augmented = augment_grid(grid, tid, colour_map)
            assert np.array_equal(deaugment_grid(augmented, tid, colour_map), grid)
            name = version_name("007bbfb7", tid, colour_map)
            task_id, parsed_tid, parsed_map = parse_name(name)
            assert (task_id, parsed_tid) == ("007bbfb7", tid) and np.array_equal(parsed_map, colour_map)


def test_dihedral_ids_are_the_reference_ones():
    grid = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert np.array_equal(dihedral(grid, 1), np.rot90(grid))
    assert np.array_equal(dihedral(grid, 6), grid.T)
    assert np.array_equal(dihedral(grid, 7), np.fliplr(np.rot90(grid)))
    assert len({dihedral(grid, t).tobytes() + bytes(dihedral(grid, t).shape) for t in range(8)}) == 8
    task_id, tid, colour_map = parse_name("007bbfb7")
    assert (task_id, tid) == ("007bbfb7", 0) and np.array_equal(colour_map, np.arange(10))
    assert version_name("007bbfb7", 3, np.array([0, 5, 2, 1, 4, 3, 8, 7, 6, 9])) == "007bbfb7|||t3|||0521438769"


@pytest.mark.parametrize("size", [(1, 1), (1, 30), (30, 1), (30, 30), (7, 13), (29, 29)])
def test_canvas_eos_and_crop_round_trip(size):
    rng = np.random.default_rng(sum(size))
    grid = rand_grid(rng, *size)
    canvas = grid_to_canvas(grid).reshape(CANVAS, CANVAS)
    h, w = size
    assert np.array_equal(canvas[:h, :w], grid + 2)
    if h < CANVAS:
        assert (canvas[h, :w] == EOS).all()
    if w < CANVAS:
        assert (canvas[:h, w] == EOS).all()
    if h < CANVAS and w < CANVAS:
        assert canvas[h, w] == PAD  # the corner of the L stays PAD
    assert (canvas == EOS).sum() == (w if h < CANVAS else 0) + (h if w < CANVAS else 0)
    assert np.array_equal(crop_canvas(canvas.ravel()), grid)


def test_crop_of_every_size_and_of_garbage():
    rng = np.random.default_rng(1)
    grids = [rand_grid(rng, h, w) for h in range(1, 31) for w in (1, 2, 15, 29, 30)]
    canvases = np.stack([grid_to_canvas(g) for g in grids])
    for grid, cropped in zip(grids, crop_canvases(canvases)):
        assert np.array_equal(grid, cropped)
    assert crop_canvas(np.zeros(900, np.uint8)).shape == (0, 0)  # nothing at the corner: an empty prediction
    ragged = np.full((CANVAS, CANVAS), 5, np.uint8)
    ragged[0, 10] = EOS  # first row 10 wide, the rest 30 wide: 29 rows x 30 beats 30 x 10 ... but must be anchored
    assert crop_canvas(ragged.ravel()).shape == (30, 10)
    ragged[3, :] = PAD  # now rows 0..2 x 10 = 30 cells; the max-area rule picks it
    assert crop_canvas(ragged.ravel()).shape == (3, 10)


def test_vectorised_layout_matches_per_grid_canvas():
    rng = np.random.default_rng(3)
    pairs = [(rand_grid(rng, int(rng.integers(1, 31)), int(rng.integers(1, 31))),
              rand_grid(rng, int(rng.integers(1, 31)), int(rng.integers(1, 31)))) for _ in range(4)]
    layout = TaskLayout(pairs)
    tids = rng.integers(0, 8, 40)
    maps = random_colour_maps(rng, 40)
    rows, cols = layout.draw_offsets(tids, rng)
    inputs, labels = layout.render(tids, maps, rows, cols)
    for v in range(40):
        assert ((rows[v] == 0) & (cols[v] == 0)).any()  # the untranslated no_aug example
        for e, (i, o) in enumerate(pairs):
            assert np.array_equal(inputs[v, e], grid_to_canvas(augment_grid(i, tids[v], maps[v]), rows[v, e], cols[v, e]))
            assert np.array_equal(labels[v, e], grid_to_canvas(augment_grid(o, tids[v], maps[v]), rows[v, e], cols[v, e]))
    plain_inputs, _ = layout.render(tids, maps)
    for e, (i, _) in enumerate(pairs):
        assert np.array_equal(crop_canvas(plain_inputs[0, e]), augment_grid(i, tids[0], maps[0]))


# ---------------------------------------------------------------------------------------------------------------
# augmentation
# ---------------------------------------------------------------------------------------------------------------

def test_versions_are_distinct_tasks_and_original_first():
    rng = np.random.default_rng(4)
    pairs = [(rand_grid(rng, 4, 5), rand_grid(rng, 3, 3)) for _ in range(3)]
    tids, maps = choose_versions(pairs, num_aug=50, retries_factor=5, rng=np.random.default_rng(0))
    assert len(tids) == 51 and tids[0] == 0 and np.array_equal(maps[0], np.arange(10))
    hashes = {task_hash([(augment_grid(i, t, m), augment_grid(o, t, m)) for i, o in pairs]) for t, m in zip(tids, maps)}
    assert len(hashes) == 51
    again = choose_versions(pairs, num_aug=50, retries_factor=5, rng=np.random.default_rng(0))
    assert np.array_equal(again[0], tids) and np.array_equal(again[1], maps)


def test_low_colour_tasks_are_capped_by_deduplication():
    # one non-black colour on an asymmetric grid: 8 dihedral x 9 colours = 72 distinct tasks, no more
    grid = np.array([[1, 0, 0], [1, 1, 0]], np.uint8)
    tids, _ = choose_versions([(grid, grid)], num_aug=1000, retries_factor=5, rng=np.random.default_rng(0))
    assert len(tids) == 72
    # a fully symmetric single-colour grid only has its 9 colourings
    flat = np.ones((2, 2), np.uint8)
    tids, _ = choose_versions([(flat, flat)], num_aug=1000, retries_factor=5, rng=np.random.default_rng(0))
    assert len(tids) == 9


# ---------------------------------------------------------------------------------------------------------------
# routing, store, identifiers
# ---------------------------------------------------------------------------------------------------------------

def test_routing_statistics(arc_dir):
    plan = plan_build(ArcOptions(source=str(arc_dir), num_aug=3))
    by_id = {t.task.task_id: t for t in plan.tasks}
    assert len(by_id["evalA"].train_pairs) == 2 and len(by_id["evalA"].test_pairs) == 2  # demos -> train
    assert len(by_id["trainA"].train_pairs) == 3 + 1 and not by_id["trainA"].test_pairs  # test pairs -> train
    assert len(by_id["Concept1"].train_pairs) == 2 + 3 and not by_id["Concept1"].test_pairs
    stats = plan_statistics(plan)
    assert stats["train_groups"] == 5 and stats["test_groups"] == 2
    assert stats["train_examples_per_epoch"] == 4 + 3 + 2 + 3 + 5
    no_demos = plan_statistics(plan_build(ArcOptions(source=str(arc_dir), num_aug=3, eval_demos_in_train=False)))
    assert no_demos["train_groups"] == 3 and no_demos["test_groups"] == 2


def test_store_build_routing_identifiers_and_extras(arc_dir, tmp_path):
    spec = registry("tasks").get("arc")
    out = tmp_path / "arc.zarr"
    info = build_store(spec, ArcOptions(source=str(arc_dir), num_aug=4), out, show_progress=False)
    store = open_store(out, expect_task="arc")
    train, test = store.split("train"), store.split("test")
    assert (info.vocab_size, info.seq_len) == (12, 900)
    assert train.num_groups == 5 and train.num_puzzles == 25 and test.num_groups == 2 and test.num_puzzles == 10
    names = info.identifier_names
    assert names[0] == "<blank>" and len(names) == info.num_puzzle_identifiers == 26
    for name in names[1:]:
        task_id, tid, colour_map = parse_name(name)
        assert task_id in {"trainA", "trainB", "evalA", "evalB", "Concept1"} and 0 <= tid < 8 and colour_map[0] == 0
    # test puzzles reuse the train identifiers of the same versions
    assert set(test.puzzle_identifiers.tolist()) <= set(train.puzzle_identifiers.tolist())
    # the test split is untranslated and holds the de-augmentable test inputs
    extras = info.extras
    assert set(extras["test_puzzles"]) == {"evalA", "evalB"} and extras["leakage"]["clean"]
    held_out = HeldOutTasks(extras["test_puzzles"])
    inputs = np.asarray(test.inputs[np.arange(test.num_examples)])
    for p, identifier in enumerate(test.puzzle_identifiers.tolist()):
        task_id, tid, colour_map = parse_name(names[identifier])
        for row in range(int(test.puzzle_indices[p]), int(test.puzzle_indices[p + 1])):
            original = deaugment_grid(crop_canvas(inputs[row]), tid, colour_map)
            assert grid_key(original) in held_out.slots_by_input[task_id]
    # translated training examples: input and output of an example share the offset
    labels = np.asarray(train.labels[np.arange(train.num_examples)]).reshape(-1, 30, 30)
    assert ((labels == EOS).sum(axis=(1, 2)) > 0).all() and (labels.max(axis=(1, 2)) >= 2).all()


def test_bad_source_is_a_user_error(tmp_path):
    from trm.errors import UserError

    with pytest.raises(UserError, match="not a directory"):
        plan_build(ArcOptions(source=str(tmp_path / "nope")))
    write_subset(tmp_path, "training", {"a": {"train": [{"input": [[1] * 31], "output": [[1]]}],
                                              "test": [{"input": [[1]], "output": [[1]]}]}})
    with pytest.raises(UserError, match="1..30"):
        load_subset(tmp_path, "training")
    with pytest.raises(UserError, match="unknown subset 'evaluation'.*known subsets: training"):
        plan_build(ArcOptions(source=str(tmp_path), subsets=["training"], test_subset="evaluation"))
    write_subset(tmp_path, "evaluation", {"b": {"train": [], "test": [{"input": [[1]], "output": [[1]]}]}})
    with pytest.raises(UserError, match="test_subset"):
        plan_build(ArcOptions(source=str(tmp_path), subsets=["training"], test_subset="evaluation"))


def test_hidden_subset_without_solutions(arc_dir):
    rng = np.random.default_rng(9)
    write_subset(arc_dir, "test", {"hidden1": make_task(rng, 2, 2)}, with_solutions=False)
    plan = plan_build(ArcOptions(source=str(arc_dir), num_aug=2, hidden_test_subset="test"))
    hidden = [t for t in plan.tasks if t.task.task_id == "hidden1"][0]
    assert all(o.shape == (1, 1) and o[0, 0] == 0 for _, o in hidden.test_pairs)  # the dummy output [[0]]
    tasks = HeldOutTasks({t.task_id: t.to_json() for t in plan.test_tasks})
    assert "hidden1" in tasks.task_ids and "hidden1" not in tasks.scored_tasks()


# ---------------------------------------------------------------------------------------------------------------
# leakage
# ---------------------------------------------------------------------------------------------------------------

def test_leakage_exact_and_augmented_are_flagged(arc_dir):
    evaluation = load_subset(arc_dir, "evaluation")
    inp, out = evaluation["evalA"].test[1]
    colour_map = np.array([0, 2, 1, 3, 4, 5, 6, 7, 9, 8], np.uint8)
    training = [("training", "copy", [(inp, out)]),
                ("concept", "rotated", [(augment_grid(inp, 3, colour_map), augment_grid(out, 3, colour_map))]),
                ("evaluation", "evalB", list(evaluation["evalB"].train))]
    report = check_leakage(training, list(evaluation.values()))
    assert not report.clean and report.leaked_test_tasks == ["evalA"] and report.leaked_test_pairs == 1
    assert {leak.kind for leak in report.leaks} == {"exact", "augmented"}
    assert "LEAKAGE" in "\n".join(report.lines())
    clean = check_leakage([("evaluation", "evalA", list(evaluation["evalA"].train))], list(evaluation.values()))
    assert clean.clean


# ---------------------------------------------------------------------------------------------------------------
# voting, evaluator, submission
# ---------------------------------------------------------------------------------------------------------------

def _puzzles():
    a, b, c = (np.full((2, 2), v, np.uint8) for v in (1, 2, 3))
    return {"t1": {"train": [], "test": [{"input": a.tolist(), "output": b.tolist()}]},
            "t2": {"train": [], "test": [{"input": b.tolist(), "output": c.tolist()},
                                         {"input": c.tolist(), "output": a.tolist()}]}}


def test_pass_at_k_counts_then_mean_confidence():
    tasks = HeldOutTasks(_puzzles())
    table = VoteTable()
    right_t1, wrong = grid_key(np.full((2, 2), 2, np.uint8)), grid_key(np.zeros((1, 1), np.uint8))
    for _ in range(3):
        table.add(("t1", 0), wrong, 0.1)
    for _ in range(2):
        table.add(("t1", 0), right_t1, 0.9)
    # t2 input 0: tie on count, the right answer has the higher mean confidence
    table.add(("t2", 0), grid_key(np.full((2, 2), 3, np.uint8)), 0.8)
    table.add(("t2", 0), wrong, 0.2)
    # t2 input 1: no votes at all (counts as wrong)
    scores = pass_at_k(table, tasks, [1, 2, 5])
    assert scores[1] == pytest.approx((0 + 0.5) / 2)  # t1 wrong at top-1; t2 1 of 2 inputs right
    assert scores[2] == pytest.approx((1 + 0.5) / 2)
    assert scores[5] == pytest.approx((1 + 0.5) / 2)


def test_submission_is_valid_with_missing_predictions():
    tasks = HeldOutTasks(_puzzles())
    table = VoteTable()
    table.add(("t2", 0), grid_key(np.full((2, 2), 3, np.uint8)), 0.5)
    table.add(("t2", 0), grid_key(np.zeros((0, 0), np.uint8)), 0.5)  # an empty crop is never an attempt
    data = submission(table, tasks, np.zeros((1, 1), np.uint8))
    assert validate_submission(json.loads(json.dumps(data)), tasks) == []
    assert data["t1"] == [{"attempt_1": [[0]], "attempt_2": [[0]]}]
    assert data["t2"][0]["attempt_1"] == [[3, 3], [3, 3]] == data["t2"][0]["attempt_2"]
    assert len(data["t2"]) == 2 and data["t2"][1]["attempt_1"] == [[0]]
    assert validate_submission({"t1": []}, tasks)  # misaligned / missing entries are caught


class _Info:
    def __init__(self, names, test_puzzles):
        self.identifier_names = names
        self.extras = {"test_puzzles": test_puzzles}


def _rows(grid_pairs, names, puzzles_rng):
    """Batch rows: (identifier, version name) -> augmented input canvas and a prediction canvas."""
    inputs, preds, ids = [], [], []
    for identifier, inp, pred in grid_pairs:
        _, tid, colour_map = parse_name(names[identifier])
        inputs.append(grid_to_canvas(augment_grid(inp, tid, colour_map)))
        preds.append(grid_to_canvas(augment_grid(pred, tid, colour_map)))
        ids.append(identifier)
    return np.stack(inputs), np.stack(preds), np.array(ids, np.int32)


def test_evaluator_deaugments_votes_and_accumulates(tmp_path):
    puzzles = _puzzles()
    names = ["<blank>", "t1", "t1|||t3|||0213456789", "t1|||t6|||0987654321", "t2", "t2|||t1|||0312456789"]
    evaluator = ArcVoteEvaluator(ArcVoteOptions(pass_at=[1, 2]), puzzles, names)
    a, b, c = (np.full((2, 2), v, np.uint8) for v in (1, 2, 3))
    wrong = np.array([[5]], np.uint8)
    # round 1: t1 gets 2 right votes (through two different augmentations) and 1 wrong; t2 input 0 right
    inputs, preds, ids = _rows([(1, a, b), (2, a, b), (3, a, wrong), (5, b, c)], names, None)
    batch = {"inputs": np.concatenate([inputs, np.zeros((1, 900), np.uint8)]),
             "labels": np.zeros((5, 900)), "puzzle_identifiers": np.concatenate([ids, [0]]),
             "valid": np.array([True] * 4 + [False])}
    outputs = {"preds": np.concatenate([preds, np.zeros((1, 900), np.uint8)]),
               "q_halt": np.zeros(5, np.float32), "steps": np.full(5, 16)}
    evaluator.update(batch, outputs)
    first = evaluator.compute()
    assert first["pass@1"] == pytest.approx((1 + 0.5) / 2) == first["pass@1_accumulated"]
    assert first["test_inputs_without_votes"] == 1 and first["unmatched_rows"] == 0
    # round 2: only wrong votes, 3 of them for t1: this round fails, the accumulated votes tie 2-3 -> wrong too,
    # but pass@2 keeps the right one among the top two
    inputs, preds, ids = _rows([(1, a, wrong), (2, a, wrong), (3, a, wrong)], names, None)
    evaluator.update({"inputs": inputs, "labels": np.zeros((3, 900)), "puzzle_identifiers": ids,
                      "valid": np.ones(3, bool)},
                     {"preds": preds, "q_halt": np.zeros(3, np.float32), "steps": np.full(3, 16)})
    second = evaluator.compute()
    assert second["pass@1"] == 0 and second["pass@2"] == 0  # t2 got no votes this round
    assert second["pass@1_accumulated"] == pytest.approx(0.5 / 2)
    assert second["pass@2_accumulated"] == pytest.approx((1 + 0.5) / 2)
    assert second["rounds_accumulated"] == 2
    written = evaluator.write(tmp_path)
    data = json.loads((tmp_path / "submission.json").read_text())
    assert validate_submission(data, evaluator.tasks) == [] and {p.name for p in written} == {"submission.json",
                                                                                              "votes.json"}
    assert data["t1"][0]["attempt_1"] == [[5]] and data["t1"][0]["attempt_2"] == b.tolist()


def test_evaluator_on_a_built_store_scores_the_labels_perfectly(arc_dir, tmp_path):
    spec = registry("tasks").get("arc")
    out = tmp_path / "arc.zarr"
    build_store(spec, ArcOptions(source=str(arc_dir), num_aug=5), out, show_progress=False)
    store = open_store(out)
    test = store.split("test")
    rows = np.arange(test.num_examples)
    labels = np.asarray(test.labels[rows]).astype(np.int64)
    example_ids = np.repeat(test.puzzle_identifiers, np.diff(test.puzzle_indices))
    evaluator = registry("evaluators").get("arc_vote").build(
        ArcVoteOptions(), EvalContext(store_info=store.info, split="test", output_dir=None))
    half = len(rows) // 2  # two global batches, as the training loop would send them
    for part in (slice(0, half), slice(half, None)):
        evaluator.update({"inputs": np.asarray(test.inputs[rows[part]]), "labels": labels[part],
                          "puzzle_identifiers": example_ids[part], "valid": np.ones(len(rows[part]), bool)},
                         {"preds": labels[part], "q_halt": np.zeros(len(rows[part]), np.float32),
                          "steps": np.full(len(rows[part]), 16)})
    metrics = evaluator.compute()
    assert metrics["pass@1"] == 1.0 and metrics["unmatched_rows"] == 0 and metrics["test_inputs_without_votes"] == 0
    assert metrics["mean_votes_per_input"] == pytest.approx(6)  # the original + 5 versions


# ---------------------------------------------------------------------------------------------------------------
# real data
# ---------------------------------------------------------------------------------------------------------------

@needs_arc
def test_real_subsets_load_with_the_documented_counts():
    expected = {"training": (400, 1302, 416), "evaluation": (400, 1363, 419), "training2": (1000, 3232, 1076),
                "evaluation2": (120, 358, 172), "concept": (160, 427, 480)}
    for subset, (tasks, demos, tests) in expected.items():
        loaded = load_subset(ARC_DATA, subset)
        assert (len(loaded), sum(len(t.train) for t in loaded.values()),
                sum(len(t.test) for t in loaded.values())) == (tasks, demos, tests)


@needs_arc
def test_real_training2_leaks_arc1_evaluation():
    options = ArcOptions(source=str(ARC_DATA), subsets=["training2", "evaluation"], num_aug=0)
    report = plan_build(options).leakage
    assert not report.clean and len(report.leaked_test_tasks) == 376
    assert len(report.shared_task_ids["training2"]) == 376


@needs_arc
@pytest.mark.slow
def test_real_arc1_statistics_match_the_reference():
    """docs/reference-code.md 1.3's table (replayed reference RNG): ours must agree within 1% (no data is written)."""
    stats = plan_statistics(plan_build(ArcOptions(source=str(ARC_DATA), num_aug=1000)))
    assert stats["train_groups"] == 960 and stats["test_groups"] == 400
    assert stats["train_examples_per_epoch"] == 3988
    reference = {"train_puzzles": 876_405, "train_examples": 3_633_410, "test_puzzles": 368_150,
                 "test_examples": 385_815, "num_puzzle_identifiers": 876_406, "tasks_not_full": 164}
    for key, value in reference.items():
        assert abs(stats[key] - value) <= 0.01 * value, (key, stats[key], value)

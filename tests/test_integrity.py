"""Evaluation integrity: trm eval --puzzle-ids blank|shuffled, --trajectories, and trm data check-leakage."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from trm.errors import UserError
from trm.integrity import ReplacedIdentifiers, check_store_leakage, identifier_mapping, metric_drop
from trm.store import SplitData


def test_shuffled_ids_map_every_training_id_to_another_training_id():
    train_ids = np.array([0, 3, 3, 5, 7, 9, 9])
    mapping = identifier_mapping("shuffled", 12, train_ids, seed=0)
    used = [3, 5, 7, 9]
    assert mapping[0] == 0
    assert all(int(mapping[i]) in used and int(mapping[i]) != i for i in used)  # a derangement of the used ids
    assert sorted(int(mapping[i]) for i in used) == used  # ... that is a permutation
    assert all(int(mapping[i]) in used for i in (1, 2, 11))  # ids seen only at test time get a training id
    assert torch.equal(mapping, identifier_mapping("shuffled", 12, train_ids, seed=0))  # seeded
    assert identifier_mapping("blank", 12, train_ids, seed=0).eq(0).all()


def test_shuffled_needs_two_training_ids():
    with pytest.raises(UserError, match="fewer than two puzzle identifiers"):
        identifier_mapping("shuffled", 1, np.zeros(10, dtype=int), seed=0)


class RecordingModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.seen = []

    def initial_carry(self, batch):
        return None

    def forward(self, carry, batch, **options):
        self.seen.append(batch["puzzle_identifiers"].tolist())
        return carry, {}


def test_the_wrapped_model_sees_replaced_ids_while_the_batch_keeps_the_real_ones():
    model = RecordingModel()
    wrapped = ReplacedIdentifiers(model, torch.tensor([0, 2, 1]))
    batch = {"puzzle_identifiers": torch.tensor([1, 2, 0], dtype=torch.int32)}
    wrapped(wrapped.initial_carry(batch), batch, max_steps=3)
    assert model.seen == [[2, 1, 0]] and batch["puzzle_identifiers"].tolist() == [1, 2, 0]
    wrapped.eval()
    assert wrapped.training is False and model.training is False  # everything else is the model's own


def test_metric_drop_is_normal_minus_replaced():
    assert metric_drop({"a/acc": 0.9, "eval/examples": 10.0}, {"a/acc": 0.25, "eval/examples": 10.0}) == \
        {"a/acc": pytest.approx(0.65)}


def test_trm_eval_puzzle_ids_blank_reports_the_drop_beside_the_normal_result(tiny_sudoku_run, tmp_path):
    from in_process import trm_in_process as trm  # the command in this process, not a subprocess

    out = tmp_path / "blank.json"
    result = trm("eval", str(tiny_sudoku_run), "--puzzle-ids", "blank", "--limit", "32", "--out", str(out),
                 "--no-progress")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[1].split() == ["metric", "normal", "blank", "ids", "drop"]
    report = json.loads(out.read_text())
    replaced = report["puzzle_ids"]
    assert replaced["mode"] == "blank"
    # Sudoku puzzles all have the blank id already: replacing it changes nothing, to the last digit (but the speed)
    speedless = lambda metrics: {k: v for k, v in metrics.items() if k != "eval/puzzles_per_s"}
    assert speedless(replaced["metrics"]) == speedless(report["metrics"])
    assert "eval/puzzles_per_s" not in replaced["drop"]
    assert replaced["drop"]["exact_match/exact_accuracy"] == 0.0
    refused = trm("eval", str(tiny_sudoku_run), "--puzzle-ids", "shuffled", "--no-progress")
    assert refused.returncode == 2 and "fewer than two puzzle identifiers" in refused.stderr


def test_trm_eval_trajectories_draws_right_and_wrong_examples(tiny_sudoku_run, tmp_path):
    from in_process import trm_in_process as trm  # the command in this process, not a subprocess

    out = tmp_path / "t.json"
    result = trm("eval", str(tiny_sudoku_run), "--trajectories", "3", "--limit", "16", "--out", str(out),
                 "--no-progress")
    assert result.returncode == 0, result.stderr[-2000:]
    pictures = [p for p in json.loads(out.read_text())["artefacts"] if p.endswith(".png")]
    assert len(pictures) == 3 and all("/trajectories/trajectory-0" in p for p in pictures)
    kinds = {p.rsplit("-", 2)[-2] for p in pictures}
    assert kinds and kinds <= {"right", "wrong"}  # the file names say how each example was answered


def split_of(rows: np.ndarray, ids: np.ndarray) -> SplitData:
    class Rows:
        def __init__(self, array):
            self.array, self.shape = array, array.shape

        def __getitem__(self, index):
            return self.array[index]

    count = len(rows)
    return SplitData("x", Rows(rows), Rows(rows), ids.astype(np.int32), np.arange(count + 1), np.arange(count + 1))


class FakeStore:
    def __init__(self, train, test, task="maze"):
        self.path, self.splits = "fake.zarr", {"train": train, "test": test}
        self.info = type("Info", (), {"task": task, "num_puzzle_identifiers": 1, "identifier_names": ["<blank>"]})()

    def has_split(self, name):
        return name in self.splits

    def split(self, name):
        return self.splits[name]


def test_leakage_finds_exact_and_augmented_copies_of_test_inputs():
    from trm_maze.dihedral import transform_flat
    from trm_maze.grid import encode
    from trm_maze.solving import canonical_input

    rng = np.random.default_rng(0)
    mazes = [encode("".join(rng.choice(list("# "), size=16))) for _ in range(4)]
    train = np.stack([mazes[0], transform_flat(mazes[1], 1, 4), mazes[2]])
    test = np.stack([mazes[0], mazes[1], mazes[3]])  # exact, rotated, new
    store = FakeStore(split_of(train, np.zeros(3)), split_of(test, np.zeros(3)))
    report = check_store_leakage(store, canonical_input)
    assert (report.exact, report.augmented, report.clean) == ((0,), (1,), False)
    assert "LEAKAGE" in report.lines()[1] and report.to_json()["augmented"] == 1
    exact_only = check_store_leakage(store, None)
    assert (exact_only.exact, exact_only.augmented) == ((0,), ())
    assert "no canonical form" in " ".join(exact_only.lines())
    clean = check_store_leakage(FakeStore(split_of(train[2:], np.zeros(1)), split_of(test[2:], np.zeros(1))),
                                canonical_input)
    assert clean.clean and "no test input occurs" in clean.lines()[1]


def test_trm_data_check_leakage_on_a_built_store(tiny_sudoku_run):
    from in_process import trm_in_process as trm  # the command in this process, not a subprocess

    store = tiny_sudoku_run.parent / "store.zarr"
    result = trm("data", "check-leakage", str(store), "--json", "--no-progress")
    report = json.loads(result.stdout)
    assert result.returncode == (0 if report["clean"] else 1)
    from trm.store import open_store

    opened = open_store(store)
    train = {bytes(r) for r in np.asarray(opened.split("train").inputs[np.arange(opened.split("train").num_examples)])}
    test = np.asarray(opened.split("test").inputs[np.arange(opened.split("test").num_examples)])
    assert report["exact"] == sum(bytes(r) in train for r in test)  # counted independently
    assert report["canonical_form"] is False  # Sudoku gives none: exact only, and the report says so
    missing = trm("data", "check-leakage", str(store.parent / "nope.zarr"))
    assert missing.returncode == 2 and "dataset store not found" in missing.stderr




def test_arc_canonical_form_finds_a_translated_rotated_recoloured_input():
    from trm_arc.canvas import grid_to_canvas
    from trm_arc.solving import canonical_input
    from trm_arc.transforms import augment_grid

    grid = np.array([[1, 2, 0], [3, 3, 0]], dtype=np.uint8)
    colours = np.array([0, 5, 6, 7, 1, 2, 3, 4, 8, 9], dtype=np.uint8)  # black fixed
    version = grid_to_canvas(augment_grid(grid, 3, colours), 4, 7)  # as a training version: moved on the canvas
    assert canonical_input(grid_to_canvas(grid)) == canonical_input(version)
    assert canonical_input(grid_to_canvas(np.array([[1, 2, 0], [3, 1, 0]], dtype=np.uint8))) != \
        canonical_input(version)


@pytest.mark.parametrize("override, mismatch", [("model.hidden_size=64", "size mismatch"),
                                                ("backbone.options.layers=3", "key")])
def test_trm_eval_refuses_an_override_that_reshapes_the_model_in_one_line(tiny_sudoku_run, override, mismatch):
    from in_process import trm_in_process as trm  # the command in this process, not a subprocess

    refused = trm("eval", str(tiny_sudoku_run), override, "--no-progress")
    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "the checkpoint's model does not fit the recipe" in refused.stderr and mismatch in refused.stderr
    assert "cannot change model.* or backbone.* settings" in refused.stderr

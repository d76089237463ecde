"""Training and evaluation loaders: epochs, packing, determinism, rank slices, exact resume, padding."""

from __future__ import annotations

import itertools

import attrs
import numpy as np
import pytest
import torch

from trm.data import EvalLoader, TrainLoader
from trm.errors import UserError
from trm.store import open_store
from trm.store_write import build_store
from trm.types import TaskSpec


@attrs.frozen
class Options:
    groups: int = 23
    seed: int = 0


def build(options, writer):
    """Group g has 1 + g % 3 versions; version v has 1 + (g + v) % 4 examples. Token 0 of a row encodes its
    group (so a batch tells which groups it visited); token 1 the version; token 2 the example number."""
    writer.set_vocabulary(vocab_size=256, seq_len=4)
    split = writer.split("train")
    for g in range(options.groups):
        puzzles = []
        for v in range(1 + g % 3):
            examples = 1 + (g + v) % 4
            rows = np.array([[g, v, e, 0] for e in range(examples)])
            labels = rows.copy()
            labels[:, 3] = np.arange(examples) % 2  # 0 marks an ignored label cell
            puzzles.append((writer.identifier(f"g{g}v{v}"), rows, labels))
        split.add_group(puzzles)
    test = writer.split("test")
    for g in range(options.groups):
        test.add_group([(0, np.array([[g, 0, 0, 1]]), np.array([[g, 0, 0, 1]]))])


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "toy.zarr"
    build_store(TaskSpec("toy", Options, build, "toy"), Options(), path, show_progress=False)
    return open_store(path)


def take(loader, count):
    return list(itertools.islice(iter(loader), count))


def test_batches_are_full_and_keep_puzzles_together(store):
    split = store.split("train")
    loader = TrainLoader(split, global_batch_size=16, seed=3)
    for batch in take(loader, 30):
        assert batch["inputs"].shape == (16, 4) and batch["inputs"].dtype == torch.int32
        assert batch["labels"].dtype == torch.int64 and batch["puzzle_identifiers"].dtype == torch.int32
        # labels equal to ignore_label_id (0) become -100
        assert set(batch["labels"][:, 3].tolist()) <= {-100, 1}
        rows = batch["inputs"].numpy()
        # identifiers match the puzzle each row came from
        names = store.info.identifier_names
        assert [names[i] for i in batch["puzzle_identifiers"].tolist()] == [f"g{g}v{v}" for g, v, _, _ in rows]
        # every puzzle except possibly the last one in the batch contributes all of its examples, in order
        keys = [(g, v) for g, v, _, _ in rows]
        runs = [list(group) for _, group in itertools.groupby(zip(keys, rows[:, 2]), key=lambda item: item[0])]
        for run in runs[:-1]:
            (g, v), _ = run[0]
            assert [e for _, e in run] == list(range(1 + (g + v) % 4))


def test_each_epoch_visits_every_group_once(store):
    split = store.split("train")
    loader = TrainLoader(split, global_batch_size=split.num_groups, seed=1)  # fits >= one epoch per batch
    visits: list[int] = []
    for _ in range(12):
        rows = loader.global_batch_rows()
        batch_groups = split.inputs[rows][:, 0]
        keys = [g for g, _ in itertools.groupby(batch_groups.tolist())]
        visits.extend(keys)
    epochs = int(loader.epoch)
    assert epochs >= 2
    # consecutive rows of one group visit collapse; check the first epochs are permutations of all groups
    first = visits[: split.num_groups]
    assert sorted(first) == list(range(split.num_groups))
    second = visits[split.num_groups: 2 * split.num_groups]
    assert sorted(second) == list(range(split.num_groups)) and second != first


def test_same_seed_same_batches_other_seed_differs(store):
    split = store.split("train")
    a = take(TrainLoader(split, global_batch_size=8, seed=5), 10)
    b = take(TrainLoader(split, global_batch_size=8, seed=5), 10)
    c = take(TrainLoader(split, global_batch_size=8, seed=6), 10)
    assert all(torch.equal(x["inputs"], y["inputs"]) for x, y in zip(a, b))
    assert not all(torch.equal(x["inputs"], y["inputs"]) for x, y in zip(a, c))


def test_two_ranks_get_disjoint_halves_of_the_global_batch(store):
    split = store.split("train")
    whole = take(TrainLoader(split, global_batch_size=12, seed=2), 6)
    rank0 = take(TrainLoader(split, global_batch_size=12, rank=0, world_size=2, seed=2), 6)
    rank1 = take(TrainLoader(split, global_batch_size=12, rank=1, world_size=2, seed=2), 6)
    for full, first, second in zip(whole, rank0, rank1):
        assert first["inputs"].shape == (6, 4)
        for key in ("inputs", "labels", "puzzle_identifiers"):
            assert torch.equal(torch.cat([first[key], second[key]]), full[key])
    with pytest.raises(UserError, match="not divisible"):
        TrainLoader(split, global_batch_size=13, world_size=2)


def test_state_round_trip_resumes_exactly(store):
    split = store.split("train")
    loader = TrainLoader(split, global_batch_size=8, seed=9)
    stream = iter(loader)
    for _ in range(7):
        next(stream)
    state = loader.state_dict()
    epoch = loader.epoch
    expected = [next(stream) for _ in range(9)]
    resumed = TrainLoader(split, global_batch_size=8, seed=9)
    resumed.load_state_dict(state)
    assert resumed.epoch == epoch
    got = take(resumed, 9)
    assert all(torch.equal(x["inputs"], y["inputs"]) for x, y in zip(expected, got))
    with pytest.raises(UserError, match="seed"):
        TrainLoader(split, global_batch_size=8, seed=1).load_state_dict(state)


def test_eval_loader_covers_every_example_once_with_padding(store):
    split = store.split("test")  # 23 examples
    seen = []
    for rank in (0, 1):
        loader = EvalLoader(split, global_batch_size=10, rank=rank, world_size=2)
        assert len(loader) == 3
        for batch in loader:
            assert batch["inputs"].shape == (5, 4) and batch["valid"].shape == (5,)
            valid = batch["valid"]
            seen.extend(batch["inputs"][valid][:, 0].tolist())
            assert (batch["labels"][~valid] == -100).all() and (batch["inputs"][~valid] == 0).all()
    assert sorted(seen) == list(range(23))


def test_eval_limit_is_a_fixed_seeded_subset(store):
    split = store.split("test")
    rows = lambda seed: [g for b in EvalLoader(split, global_batch_size=4, limit=7, seed=seed)
                         for g in b["inputs"][b["valid"]][:, 0].tolist()]
    assert len(rows(0)) == 7 and len(set(rows(0))) == 7
    assert rows(0) == rows(0) != rows(1)


def test_prefetch_gives_the_same_batches_and_state(store):
    split = store.split("train")
    threaded = TrainLoader(split, global_batch_size=8, seed=4, prefetch=3)
    plain = TrainLoader(split, global_batch_size=8, seed=4, prefetch=0)
    stream_t, stream_p = iter(threaded), iter(plain)
    for _ in range(5):
        assert torch.equal(next(stream_t)["inputs"], next(stream_p)["inputs"])
    # the thread has run ahead, but the state describes the batches handed out
    assert threaded.state_dict() == plain.state_dict() and threaded.epoch == plain.epoch
    resumed = TrainLoader(split, global_batch_size=8, seed=4)
    resumed.load_state_dict(threaded.state_dict())
    assert torch.equal(next(iter(resumed))["inputs"], next(stream_p)["inputs"])
    stream_t.close()


@pytest.mark.parametrize("kwargs, message", [({"batches": 0}, "--batches 0: expected an integer >= 1"),
                                             ({"batch_size": 0}, "--batch-size 0: expected an integer >= 1")])
def test_data_bench_rejects_counts_below_one(store, kwargs, message):
    from trm.bench_data import bench_loader

    with pytest.raises(UserError, match=message):
        bench_loader(store.path, **kwargs)


def test_data_bench_cli_rejects_zero_batches_and_describes_seed(store):
    from click.testing import CliRunner

    from trm.cli.data import data

    result = CliRunner().invoke(data, ["bench", str(store.path), "--batches", "0"])
    assert result.exit_code == 2 and "Invalid value for '--batches'" in result.output
    help_text = CliRunner().invoke(data, ["bench", "--help"]).output
    assert "--seed INTEGER" in help_text and "shuffling" in help_text

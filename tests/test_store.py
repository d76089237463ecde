"""The dataset store: writer -> reader round trip, validation of what tasks write, and refusal of bad stores."""

from __future__ import annotations

import json
import shutil

import attrs
import numpy as np
import pytest

from trm import store as store_module
from trm.errors import UserError
from trm.cli.data import describe
from trm.store import open_store
from trm.store_write import build_store
from trm.types import TaskSpec


@attrs.frozen
class ToyOptions:
    groups: int = 5
    versions: int = 3
    examples: int = 2
    seed: int = 7


def toy_groups(options: ToyOptions):
    """Deterministic toy content: group g, version v, example e holds tokens derived from (g, v, e)."""
    for g in range(options.groups):
        puzzles = []
        for v in range(options.versions):
            base = np.arange(6, dtype=np.int64)[None, :] + g + v + np.arange(options.examples)[:, None]
            puzzles.append((f"g{g}v{v}", base % 9 + 1, (base + 1) % 9 + 1))
        yield puzzles


def build_toy(options: ToyOptions, writer) -> None:
    writer.set_vocabulary(vocab_size=10, seq_len=6, pad_id=0, ignore_label_id=0, blank_token_id=1)
    writer.set_extra("note", {"hello": [1, 2]})
    train = writer.split("train")
    for group in toy_groups(options):
        train.add_group([(writer.identifier(name), x, y) for name, x, y in group])
    test = writer.split("test")
    test.add_group([(0, np.full((1, 6), 3), np.full((1, 6), 4))])


TOY = TaskSpec("toy", ToyOptions, build_toy, "a toy task", version="2")


def test_round_trip(tmp_path):
    options = ToyOptions()
    info = build_store(TOY, options, tmp_path / "toy.zarr", show_progress=False)
    assert info.task == "toy" and info.builder_version == "2" and info.seed == 7
    assert info.task_options == {"groups": 5, "versions": 3, "examples": 2, "seed": 7}
    assert (info.vocab_size, info.seq_len, info.pad_id, info.ignore_label_id, info.blank_token_id) == (10, 6, 0, 0, 1)
    assert info.num_puzzle_identifiers == 1 + 5 * 3
    assert info.identifier_names[:3] == ["<blank>", "g0v0", "g0v1"]
    assert info.extras == {"note": {"hello": [1, 2]}}
    store = open_store(tmp_path / "toy.zarr", expect_task="toy")
    train = store.split("train")
    assert (train.num_groups, train.num_puzzles, train.num_examples) == (5, 15, 30)
    assert train.mean_puzzle_examples == 2.0
    assert train.group_indices.tolist() == [0, 3, 6, 9, 12, 15]
    assert train.puzzle_indices.tolist() == list(range(0, 31, 2))
    assert train.puzzle_identifiers.tolist() == list(range(1, 16))
    expected_x = np.concatenate([x for group in toy_groups(options) for _, x, _ in group])
    expected_y = np.concatenate([y for group in toy_groups(options) for _, _, y in group])
    assert train.inputs.dtype == np.uint8
    np.testing.assert_array_equal(train.inputs[np.arange(30)], expected_x)
    np.testing.assert_array_equal(train.labels[::-1], expected_y[::-1])
    np.testing.assert_array_equal(train.inputs[7], expected_x[7])
    assert store.has_split("test") and store.split("test").num_examples == 1
    assert "groups" in describe(store) and info.fingerprint in describe(store)


def test_fingerprint_depends_on_content_only(tmp_path):
    a = build_store(TOY, ToyOptions(), tmp_path / "a.zarr", show_progress=False)
    b = build_store(TOY, ToyOptions(), tmp_path / "b.zarr", show_progress=False)
    c = build_store(TOY, ToyOptions(groups=4), tmp_path / "c.zarr", show_progress=False)
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_chunked_reads_match_whole_reads(tmp_path, monkeypatch):
    """Stores bigger than the whole-array budget are read through the chunk cache: same rows come back."""
    monkeypatch.setattr(store_module, "CHUNK_ROWS", 4)
    monkeypatch.setattr(store_module, "SHARD_ROWS", 8)
    build_store(TOY, ToyOptions(groups=20), tmp_path / "s.zarr", show_progress=False)
    split = open_store(tmp_path / "s.zarr").split("train")
    zarray = split.inputs._zarray
    chunked = store_module.RowArray(zarray, "x", whole_bytes=0, cache_bytes=3 * 4 * 6)
    assert chunked._fast is not None  # the direct shard reader, not zarr's slower path
    rows = np.random.default_rng(0).integers(0, split.num_examples, 200)
    rows[:2] = [0, split.num_examples - 1]  # the first row and the last one of the (partial) edge chunk
    np.testing.assert_array_equal(chunked[rows], np.asarray(zarray[:])[rows])
    assert len(chunked._cache) <= 3
    np.testing.assert_array_equal(split.inputs[5:37], np.asarray(zarray[5:37]))


def test_wide_vocabulary_uses_uint16(tmp_path):
    def task(options, writer):
        writer.set_vocabulary(vocab_size=1000, seq_len=3)
        writer.split("train").add_group([(0, np.array([[999, 0, 300]]), np.array([[1, 2, 3]]))])

    build_store(TaskSpec("wide", ToyOptions, task, "x"), ToyOptions(), tmp_path / "w.zarr", show_progress=False)
    split = open_store(tmp_path / "w.zarr").split("train")
    assert split.inputs.dtype == np.uint16 and split.inputs[0].tolist() == [999, 0, 300]
    chunked = store_module.RowArray(split.inputs._zarray, "x", whole_bytes=0)
    assert chunked[np.array([0])].tolist() == [[999, 0, 300]]


def test_refuses_to_overwrite_and_replaces_with_overwrite(tmp_path):
    out = tmp_path / "toy.zarr"
    build_store(TOY, ToyOptions(), out, show_progress=False)
    with pytest.raises(UserError, match="already exists"):
        build_store(TOY, ToyOptions(), out, show_progress=False)
    info = build_store(TOY, ToyOptions(groups=2), out, overwrite=True, show_progress=False)
    assert info.splits["train"]["num_groups"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["toy.zarr"]


def test_failed_build_leaves_nothing(tmp_path):
    def broken(options, writer):
        build_toy(options, writer)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        build_store(TaskSpec("toy", ToyOptions, broken, "x"), ToyOptions(), tmp_path / "t.zarr", show_progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad, message", [
    (lambda w, s: s.add_group([]), "at least one puzzle"),
    (lambda w, s: s.add_group([(0, np.zeros((1, 5)), np.zeros((1, 5)))]), "shape"),
    (lambda w, s: s.add_group([(0, np.full((1, 6), 10), np.zeros((1, 6), int))]), "outside"),
    (lambda w, s: s.add_group([(0, np.full((1, 6), -1), np.zeros((1, 6), int))]), "outside"),
    (lambda w, s: s.add_group([(0, np.zeros((1, 6)), np.zeros((1, 6)))]), "integers"),
    (lambda w, s: s.add_group([(5, np.zeros((1, 6), int), np.zeros((1, 6), int))]), "identifier 5"),
    (lambda w, s: s.add_group([(0, np.zeros((2, 6), int), np.zeros((1, 6), int))]), "differ"),
    (lambda w, s: w.split("train"), "already opened"),
    (lambda w, s: w.split("valid"), "unknown split"),
    (lambda w, s: w.set_extra("x", object()), "JSON"),
])
def test_writer_validates(tmp_path, bad, message):
    def task(options, writer):
        writer.set_vocabulary(vocab_size=10, seq_len=6)
        bad(writer, writer.split("train"))

    with pytest.raises(ValueError, match=message):
        build_store(TaskSpec("t", ToyOptions, task, "x"), ToyOptions(), tmp_path / "t.zarr", show_progress=False)


def _edit_meta(path, change):
    meta_file = path / "zarr.json"
    document = json.loads(meta_file.read_text())
    change(document["attributes"]["trm_dataset"])
    meta_file.write_text(json.dumps(document))


def test_open_refuses_bad_stores(tmp_path):
    good = tmp_path / "good.zarr"
    build_store(TOY, ToyOptions(), good, show_progress=False)

    with pytest.raises(UserError, match="not found"):
        open_store(tmp_path / "missing.zarr")
    with pytest.raises(UserError, match="built by task 'toy', expected task 'sudoku'"):
        open_store(good, expect_task="sudoku")

    version = tmp_path / "version.zarr"
    shutil.copytree(good, version)
    _edit_meta(version, lambda m: m.update(format_version=99))
    with pytest.raises(UserError, match="format version 99 is not supported"):
        open_store(version)

    foreign = tmp_path / "foreign.zarr"
    import zarr

    zarr.open_group(str(foreign), mode="w").create_array("x", data=np.zeros(3))
    with pytest.raises(UserError, match="not a trm dataset store"):
        open_store(foreign)

    partial = tmp_path / "partial.zarr"
    shutil.copytree(good, partial)
    _edit_meta(partial, lambda m: m.pop("complete"))
    with pytest.raises(UserError, match="interrupted build"):
        open_store(partial)

    range_bad = tmp_path / "range.zarr"
    shutil.copytree(good, range_bad)
    _edit_meta(range_bad, lambda m: m["splits"]["train"].update(token_max=12))
    with pytest.raises(UserError, match="outside the vocabulary"):
        open_store(range_bad)


def test_truncated_store_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "CHUNK_ROWS", 4)
    monkeypatch.setattr(store_module, "SHARD_ROWS", 8)
    good = tmp_path / "good.zarr"
    build_store(TOY, ToyOptions(groups=20), good, show_progress=False)

    missing_file = tmp_path / "missing_file.zarr"
    shutil.copytree(good, missing_file)
    sorted((missing_file / "train" / "labels" / "c").rglob("*"))[-1].unlink()
    with pytest.raises(UserError, match="truncated store"):
        open_store(missing_file).split("train")

    missing_split = tmp_path / "missing_split.zarr"
    shutil.copytree(good, missing_split)
    shutil.rmtree(missing_split / "test")
    with pytest.raises(UserError, match="split 'test' is listed"):
        open_store(missing_split)

    cut = tmp_path / "cut.zarr"
    shutil.copytree(good, cut)
    shard = sorted(f for f in (cut / "train" / "inputs" / "c").rglob("*") if f.is_file())[0]
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    split = open_store(cut).split("train")
    with pytest.raises(UserError, match="damaged"):
        split.inputs[np.arange(split.num_examples)]

    with pytest.raises(UserError, match="has no split 'valid'"):
        open_store(good).split("valid")


def test_unwritable_destination_fails_before_building(tmp_path):
    """A bad --out is reported at once, in one line, not as FileNotFoundError on the hidden partial directory."""
    def must_not_build(options, writer):
        raise AssertionError("built before checking the destination")

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(UserError, match=r"a-file/x.zarr: cannot create the store there .*expected a writable"):
        build_store(TaskSpec("toy", ToyOptions, must_not_build, "toy"), ToyOptions(), blocker / "x.zarr",
                    show_progress=False)
    assert list(tmp_path.iterdir()) == [blocker]

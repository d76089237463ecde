"""Store integrity and safe writes (issue 15): chunk checksums and a flip scan, `trm data verify` and `trm data
info`, format 1 stores, --overwrite that replaces only stores, interrupted builds, a full disk."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import attrs
import numpy as np
import pytest
from click.testing import CliRunner

from trm import store as store_module
from trm.cli import cli
from trm.errors import UserError
from trm.store import open_store
from trm.store_check import StoreDamaged, check_structure, verify_store
from trm.store import RowArray
from trm.store_write import build_store
from trm.types import TaskSpec


@attrs.frozen
class TinyOptions:
    groups: int = 3
    seed: int = 1


def build_tiny(options: TinyOptions, writer) -> None:
    writer.set_vocabulary(vocab_size=10, seq_len=3, pad_id=0, ignore_label_id=0, blank_token_id=1)
    writer.set_extra("note", [1, 2])
    train = writer.split("train")
    for g in range(options.groups):
        rows = (np.arange(6).reshape(2, 3) + g) % 8 + 2
        train.add_group([(writer.identifier(f"g{g}"), rows, (rows + 1) % 8 + 2)])
    writer.split("test").add_group([(0, np.array([[2, 3, 4]]), np.array([[5, 6, 7]]))])


TINY = TaskSpec("tiny", TinyOptions, build_tiny, "a tiny task", version="1")


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 2 rows, shards of 2 chunks: a store of a few hundred bytes with every kind of file."""
    monkeypatch.setattr(store_module, "CHUNK_ROWS", 2)
    monkeypatch.setattr(store_module, "SHARD_ROWS", 4)


@pytest.fixture
def tiny(tmp_path, small_chunks) -> Path:
    path = tmp_path / "tiny.zarr"
    build_store(TINY, TinyOptions(), path, show_progress=False)
    return path


def chunk_files(path: Path) -> list[Path]:
    return sorted(f for f in path.rglob("*") if f.is_file() and "c" in f.relative_to(path).parts)


class Readers:
    """The reads `trm run`, `trm eval` and `trm data bench` make of each array, by every path the reader has.

    The zarr arrays are opened once: the scan damages chunk files only, and every read goes back to them."""

    def __init__(self, path: Path):
        from trm.store import SPLIT_ARRAYS, _open_array

        self.path, self.info = path, open_store(path).info
        self.arrays = {name: {key: _open_array(path, f"{name}/{key}") for key in SPLIT_ARRAYS}
                       for name in self.info.splits}

    def read(self, array: str) -> None:
        from trm.store import split_from_arrays

        if array in ("identifier_names", "extras"):
            getattr(attrs.evolve(self.info), array)  # a fresh StoreInfo: these are cached once read
            return
        split_name, key = array.split("/")
        split = split_from_arrays(self.path, split_name, self.info, self.arrays[split_name])  # reads the index
        if key in ("inputs", "labels"):
            rows = getattr(split, key)
            rows[np.arange(len(rows))]  # whole-array path (small stores: the training and evaluation loaders)
            RowArray(rows._zarray, "x", whole_bytes=0)[np.arange(len(rows))]  # chunk-cache path (big stores)
            RowArray(rows._zarray, "x", whole_bytes=0)[0:len(rows)]  # sequential reads (evaluation of big stores)


def read_array_as_commands_do(path: Path, array: str) -> None:
    Readers(path).read(array)


def test_every_array_has_chunk_checksums(tiny):
    for meta_file in tiny.rglob("zarr.json"):
        meta = json.loads(meta_file.read_text())
        if meta["node_type"] != "array":
            continue
        codecs = meta["codecs"]
        inner = codecs[0]["configuration"]["codecs"] if codecs[0]["name"] == "sharding_indexed" else codecs
        assert inner[-1] == {"name": "crc32c"}, meta_file
    assert json.loads((tiny / "zarr.json").read_text())["attributes"]["trm_dataset"]["format_version"] == 2


def test_flip_scan_every_byte_of_every_chunk_file_is_refused(tiny):
    """Flip each byte of each chunk file in turn: every reader of that array and `trm data verify` refuse it."""
    files = chunk_files(tiny)
    assert len(files) == 14 and sum(f.stat().st_size for f in files) < 2000
    verify_store(open_store(tiny), show_progress=False)  # the intact store passes
    readers = Readers(tiny)
    for data_file in files:
        array = "/".join(data_file.relative_to(tiny).parts[:data_file.relative_to(tiny).parts.index("c")])
        original = data_file.read_bytes()
        for position in range(len(original)):
            damaged = bytearray(original)
            damaged[position] ^= 0xFF
            data_file.write_bytes(bytes(damaged))
            with pytest.raises(StoreDamaged, match=rf"damaged store: {array}"):
                verify_store(open_store(tiny), show_progress=False)
            with pytest.raises(UserError):
                readers.read(array)
            try:  # info reads no chunk data: it must refuse damaged shard indexes, and never crash
                check_structure(open_store(tiny))
            except StoreDamaged:
                pass
        data_file.write_bytes(original)
    verify_store(open_store(tiny), show_progress=False)


def test_verify_names_the_array_and_chunk(tiny):
    shard = tiny / "train" / "labels" / "c" / "1" / "0"
    damaged = bytearray(shard.read_bytes())
    damaged[3] ^= 0x01
    shard.write_bytes(bytes(damaged))
    result = CliRunner().invoke(cli, ["data", "verify", "--no-progress", str(tiny)])
    assert result.exit_code == 2
    assert "damaged store: train/labels chunk 2 (rows 4..6, file train/labels/c/1/0)" in result.output
    assert "checksum" in result.output and "Traceback" not in result.output


def test_verify_ok_and_detects_edited_metadata(tiny):
    ok = CliRunner().invoke(cli, ["data", "verify", "--no-progress", str(tiny)])
    assert ok.exit_code == 0 and "ok: 16 chunks" in ok.output and "fingerprint" in ok.output
    meta_file = tiny / "zarr.json"
    document = json.loads(meta_file.read_text())
    document["attributes"]["trm_dataset"]["pad_id"] = 1  # consistent JSON, but not what was built
    meta_file.write_text(json.dumps(document))
    edited = CliRunner().invoke(cli, ["data", "verify", "--no-progress", str(tiny)])
    assert edited.exit_code == 2 and "damaged store: fingerprint" in edited.output


def test_fingerprint_recomputed_for_groups_bigger_than_a_shard(tmp_path, small_chunks):
    """The writer hashes in flushes of whole shards; verify must follow the same blocks for any group sizes."""
    def task(options, writer):
        writer.set_vocabulary(vocab_size=10, seq_len=2)
        train = writer.split("train")
        for size in (1, 9, 3, 1, 4, 2):
            train.add_group([(0, np.full((size, 2), size), np.full((size, 2), 9 - size))])

    build_store(TaskSpec("t", TinyOptions, task, "x"), TinyOptions(), tmp_path / "s.zarr", show_progress=False)
    result = verify_store(open_store(tmp_path / "s.zarr"), show_progress=False)
    assert result["checksums"] and result["chunks"] == 2 * 10 + 3 + 2


@pytest.mark.parametrize("damage, message", [
    (lambda p: shutil.rmtree(p / "train" / "labels"), "train/labels: the array is missing"),
    (lambda p: (p / "train" / "inputs" / "c" / "1" / "0").unlink(), "train/inputs: 1 of 2 shard files"),
    (lambda p: (p / "test" / "puzzle_indices" / "c" / "0").unlink(), "test/puzzle_indices: chunk 0 is missing"),
    (lambda p: (p / "train" / "inputs" / "c" / "0" / "0").write_bytes(b"\0" * 80), "shard index fails its checksum"),
    (lambda p: _truncate(p / "train" / "inputs" / "c" / "0" / "0", 10), "shard file is truncated"),
    (lambda p: (p / "train" / "group_indices" / "zarr.json").write_text("{garbage"), "unreadable array metadata"),
    (lambda p: _edit_json(p / "train" / "inputs" / "zarr.json", lambda m: m.update(shape=[5, 3])), "shape [5, 3]"),
])
def test_info_checks_structure(tiny, damage, message):
    damage(tiny)
    result = CliRunner().invoke(cli, ["data", "info", str(tiny)])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_info_is_fast_and_reports_checksums(tiny):
    import time

    result = CliRunner().invoke(cli, ["data", "info", str(tiny)])
    assert result.exit_code == 0 and "crc32c on every chunk" in result.output
    started = time.perf_counter()
    check_structure(open_store(tiny))
    assert time.perf_counter() - started < 0.5


def _truncate(path: Path, size: int) -> None:
    path.write_bytes(path.read_bytes()[:size])


def _edit_json(path: Path, change) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def make_format_1(path: Path) -> None:
    """Rewrite a format 2 store the way trm wrote stores before chunk checksums (same content, same hashes)."""
    import zarr
    from zarr.codecs import ZstdCodec

    meta = json.loads((path / "zarr.json").read_text())["attributes"]["trm_dataset"]
    old = path.with_name(path.name + ".v1")
    root = zarr.open_group(str(old), mode="w")
    for node in sorted(p.parent.relative_to(path) for p in path.rglob("zarr.json") if p.parent != path):
        source = zarr.open(str(path / node), mode="r")
        if isinstance(source, zarr.Group):
            root.create_group(str(node)).attrs.update(dict(source.attrs))
        elif source.shards:
            target = root.create_array(str(node), shape=source.shape, dtype=source.dtype, chunks=source.chunks,
                                       shards=source.shards, compressors=ZstdCodec(level=3), fill_value=0)
            target[:] = source[:]
        else:
            root.create_array(str(node), data=source[:], chunks=source.chunks)
    root.attrs["trm_dataset"] = {**meta, "format_version": 1}
    shutil.rmtree(path)
    old.rename(path)


def test_format_1_store_still_works_with_a_note(tiny, capsys):
    fingerprint = open_store(tiny).info.fingerprint
    make_format_1(tiny)
    store_module._NOTED_UNCHECKED.clear()
    store = open_store(tiny)
    read_array_as_commands_do(tiny, "train/inputs")
    note = capsys.readouterr().err
    assert note.count("\n") == 1 and "no chunk checksums" in note and "--overwrite" in note
    info = CliRunner().invoke(cli, ["data", "info", str(tiny)])
    assert info.exit_code == 0 and "none (store format 1)" in info.output
    result = verify_store(store, show_progress=False)
    assert not result["checksums"] and result["fingerprint"] == fingerprint
    # Without checksums a flipped token is still caught by the recomputed content hash.
    shard = tiny / "train" / "inputs" / "c" / "0" / "0"
    index = np.frombuffer(shard.read_bytes()[-36:-4], dtype="<u8").reshape(2, 2)
    import numcodecs

    offset, nbytes = (int(v) for v in index[0])
    raw = shard.read_bytes()
    decoded = bytearray(numcodecs.Zstd().decode(raw[offset:offset + nbytes]))
    decoded[0] = (decoded[0] + 1) % 10  # a valid token, different from the built one
    chunk = numcodecs.Zstd(level=3).encode(bytes(decoded))
    assert len(chunk) == nbytes
    shard.write_bytes(raw[:offset] + chunk + raw[offset + nbytes:])
    with pytest.raises(StoreDamaged, match="train: its content does not match"):
        verify_store(open_store(tiny), show_progress=False)


# ---- safe overwrite ------------------------------------------------------------------------------------------


def augment(out: Path, *extra: str):
    return CliRunner().invoke(cli, ["augment", "sudoku", "--source", "generate", "--out", str(out), "size=4",
                                    "num_train=3", "num_test=2", "num_aug=1", "--no-progress", *extra])


@pytest.mark.parametrize("make", ["data_folder", "run_dir", "plain_file", "store_with_extra_file", "garbage_store"])
def test_overwrite_never_replaces_what_is_not_a_store(tmp_path, make):
    target = tmp_path / "target"
    if make == "plain_file":
        target.write_text("precious")
    else:
        target.mkdir()
        if make == "data_folder":
            (target / "raw.csv").write_text("precious")
            (target / "other.zarr").mkdir()
        elif make == "run_dir":
            (target / "recipe.yaml").write_text("precious")
            (target / "checkpoints").mkdir()
        elif make == "store_with_extra_file":
            assert augment(target).exit_code == 0
            (target / "notes.txt").write_text("precious")
        else:
            (target / "zarr.json").write_text("{not json")
    before = sorted((p.relative_to(tmp_path), p.read_bytes() if p.is_file() else None) for p in tmp_path.rglob("*"))
    for flags in ((), ("--overwrite",)):
        result = augment(target, *flags)
        assert result.exit_code == 2, result.output
        assert "not a trm dataset store" in result.output and "--overwrite" not in result.output
        assert len(result.output.strip().splitlines()) == 1
    after = sorted((p.relative_to(tmp_path), p.read_bytes() if p.is_file() else None) for p in tmp_path.rglob("*"))
    assert before == after


def test_overwrite_replaces_a_store_and_an_empty_directory_is_used(tmp_path):
    store = tmp_path / "s.zarr"
    assert augment(store).exit_code == 0
    again = augment(store)
    assert again.exit_code == 2 and "already exists; pass --overwrite to replace it" in again.output
    assert augment(store, "--overwrite").exit_code == 0
    empty = tmp_path / "empty.zarr"
    empty.mkdir()
    assert augment(empty).exit_code == 0 and open_store(empty).info.task == "sudoku"
    dot = CliRunner().invoke(cli, ["augment", "sudoku", "--source", "generate", "--out", ".", "--overwrite"])
    assert dot.exit_code == 2 and "name a new directory for the store" in dot.output


def test_run_dir_refuses_a_foreign_directory(tmp_path):
    from trm.cli.train import check_run_dir

    foreign = tmp_path / "data"
    foreign.mkdir()
    (foreign / "raw.csv").write_text("x")
    with pytest.raises(UserError, match="not empty and is not a trm run directory") as error:
        check_run_dir(foreign)
    assert "--overwrite" not in str(error.value)
    check_run_dir(tmp_path / "new")  # absent: fine
    (tmp_path / "empty").mkdir()
    check_run_dir(tmp_path / "empty")  # empty: fine
    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.yaml").write_text("x")
    (run / "metrics.jsonl").write_text("")
    check_run_dir(run)  # a run (stopped before its first checkpoint): trm run decides what to do with it


def test_trm_run_refuses_a_foreign_run_dir(tmp_path):
    foreign = tmp_path / "stuff"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("precious")
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "quickstart_4x4.yaml"
    result = CliRunner().invoke(cli, ["run", str(recipe), "--run-dir", str(foreign), "--no-progress"])
    assert result.exit_code == 2 and "is not a trm run directory" in result.output
    assert sorted(p.name for p in foreign.iterdir()) == ["keep.txt"]


# ---- interrupted builds, full disk ---------------------------------------------------------------------------


def test_interrupted_build_is_named_and_cleaned_by_the_next_build(tmp_path):
    out = tmp_path / "s.zarr"
    # A build killed outright: run one in a child process and kill it while the task is building.
    script = (
        "import os, signal, sys\n"
        "import numpy as np\n"
        "from trm.store_write import build_store\n"
        "from trm.types import TaskSpec\n"
        "def task(options, writer):\n"
        "    writer.set_vocabulary(vocab_size=4, seq_len=2)\n"
        "    writer.split('train').add_group([(0, np.ones((5000, 2), int), np.ones((5000, 2), int))])\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        f"build_store(TaskSpec('t', dict, task, 'x'), {{}}, {str(out)!r}, show_progress=False)\n"
    )
    killed = subprocess.run([sys.executable, "-c", script], env={**os.environ}, capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    (left,) = tmp_path.iterdir()
    assert left.name.startswith("s.zarr.partial-")
    with pytest.raises(UserError, match="interrupted build"):
        open_store(left)
    with pytest.raises(UserError, match=r"not found; an interrupted build left s\.zarr\.partial-\d+ beside it"):
        open_store(out)
    result = augment(out)
    assert result.exit_code == 0 and f"removed {left.name}, left by an interrupted build" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["s.zarr"]


def test_a_live_build_of_the_same_store_is_not_removed(tmp_path):
    out = tmp_path / "s.zarr"
    other = tmp_path / f"s.zarr.partial-{os.getppid()}"  # the parent process: alive
    other.mkdir()
    result = augment(out)
    assert result.exit_code == 2 and "another build of this store is running" in result.output
    assert other.exists() and not out.exists()


@pytest.mark.parametrize("existing", [False, True])
def test_disk_full_while_writing_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, existing):
    out = tmp_path / "s.zarr"
    if existing:
        assert augment(out).exit_code == 0
        before = sorted(p.relative_to(out) for p in out.rglob("*"))
    import zarr.storage._local as local

    real_put, calls = local._put, []

    def put(path, value, exclusive=False):
        calls.append(path)
        if len(calls) > 6:  # after a few files: the disk fills up in the middle of the build
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_put(path, value, exclusive=exclusive)

    monkeypatch.setattr(local, "_put", put)
    result = augment(out, "--overwrite")
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert "disk full while writing the store" in line and "partial build was removed" in line
    assert ("existing store is unchanged" in line) == existing
    assert [p.name for p in tmp_path.iterdir()] == (["s.zarr"] if existing else [])
    if existing:
        monkeypatch.setattr(local, "_put", real_put)
        assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
        verify_store(open_store(out), show_progress=False)


def test_data_info_starts_without_plugins_or_torch(tiny):
    """`trm data info` must take well under a second: it loads no plugin (and so no torch)."""
    code = ("import sys\nfrom trm.cli import main\ntry:\n    main(['data', 'info', sys.argv[1]])\nexcept SystemExit:\n"
            "    pass\nprint('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code, str(tiny)], capture_output=True, text=True)
    assert "crc32c on every chunk" in result.stdout and result.stdout.strip().endswith("False"), result.stderr


def test_loaders_refuse_a_damaged_chunk(tiny):
    """What `trm run` and `trm eval` iterate over: a flipped byte stops them with the store's one-line error."""
    from trm.data import EvalLoader, TrainLoader

    for split_name, make in (("train", lambda s: TrainLoader(s, global_batch_size=4, seed=0)),
                             ("test", lambda s: EvalLoader(s, global_batch_size=4))):
        shard = tiny / split_name / "inputs" / "c" / "0" / "0"
        original = shard.read_bytes()
        damaged = bytearray(original)
        damaged[1] ^= 0x10
        shard.write_bytes(bytes(damaged))
        with pytest.raises(UserError, match=rf"split '{split_name}' inputs: cannot read rows .* the store is damaged"):
            next(iter(make(open_store(tiny).split(split_name))))
        shard.write_bytes(original)

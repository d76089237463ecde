"""``trm data fetch``, ``fetch:`` sources in recipes and Hub checkpoints for ``trm convert reference``.

Every download is served by a local HTTP server on 127.0.0.1 (tests/http_fixture.py): the Hub through
``HF_ENDPOINT``, the GitHub archives through their URL variables. Fixture files are tiny and made here.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import attrs
import numpy as np
import pytest
from click.testing import CliRunner

from http_fixture import FixtureServer, start
from trm.cli import cli
from trm.errors import UserError
from trm.fetch import DATASETS, convert_archive, fetch, parse_fetch_source, resolve_source

REPO = Path(__file__).resolve().parents[1]
SUDOKU_CSV = (
    "source,question,answer,rating\n"
    ",...7.2..5....95.8.19..8..67..4...6....79...2.26...1......5......39.....8....784..,"
    "846712935372695184195483267984237651517964823263851749728549316439126578651378492,1\n"
    ",......2....42...79....9..54..7.4.9.....6...1713.......7..3....8.6...8..5..2.5.7..,"
    "978435261354261879621897354587142936249683517136579482795314628463728195812956743,9\n"
).encode()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def server():
    served = start(FixtureServer())
    yield served
    served.httpd.shutdown()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRM_DATA_ROOT", str(tmp_path / "data"))
    return tmp_path / "data" / "raw"


def pin(monkeypatch, name: str, digests: dict[str, str | None]) -> None:
    """Replace a dataset's pinned digests by those of the fixture files (the real ones name the real data)."""
    dataset = DATASETS[name]
    files = tuple(attrs.evolve(f, sha256=digests.get(f.name)) for f in dataset.source.files)
    monkeypatch.setitem(DATASETS, name, attrs.evolve(dataset, source=attrs.evolve(dataset.source, files=files)))


def serve_sudoku(server, monkeypatch, *, digest_ok: bool = True, etag: str | None = None) -> tuple[bytes, bytes]:
    source = DATASETS["sudoku-extreme"].source
    train, test = SUDOKU_CSV, SUDOKU_CSV.replace(b",1\n", b",2\n")
    server.add_hub_file(source.repo_id, source.revision, "train.csv", train, etag=etag)
    server.add_hub_file(source.repo_id, source.revision, "test.csv", test)
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    pin(monkeypatch, "sudoku-extreme", {"train.csv": sha(train) if digest_ok else "0" * 64, "test.csv": sha(test)})
    return train, test


# --------------------------------------------------------------------------------------------------------------
# ARC fixtures: repository zips laid out as GitHub serves them (<repo>-<commit>/...)
# --------------------------------------------------------------------------------------------------------------


def arc_task(seed: int, tests: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    grid = lambda: rng.integers(0, 10, size=(int(rng.integers(1, 5)), int(rng.integers(1, 5)))).tolist()  # noqa: E731
    return {"train": [{"input": grid(), "output": grid()} for _ in range(2)],
            "test": [{"input": grid(), "output": grid()} for _ in range(tests)]}


def make_zip(path: Path, top: str, files: dict[str, dict]) -> bytes:
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr(f"{top}/README.md", "fixture")
        for name, task in files.items():
            bundle.writestr(f"{top}/{name}", json.dumps(task))
    return path.read_bytes()


ARC1_TASKS = {"data/training/0a1b2c3d.json": arc_task(1), "data/training/00ff00ff.json": arc_task(2),
              "data/evaluation/e0e0e0e0.json": arc_task(3, tests=2), "data/evaluation/e1e1e1e1.json": arc_task(4)}
CONCEPT_TASKS = {"corpus/AboveBelow/AboveBelow1.json": arc_task(5, tests=3),
                 "corpus/Count/Count2.json": arc_task(6, tests=3)}


def serve_archive(server, monkeypatch, tmp_path, name: str, tasks: dict, **route) -> bytes:
    source = DATASETS[name].source
    body = make_zip(tmp_path / f"{name}.zip", f"{source.repo.split('/')[1]}-{source.commit}", tasks)
    server.add(f"/{name}.zip", body, **route)
    monkeypatch.setenv(source.url_env, f"{server.url}/{name}.zip")
    converted = tmp_path / f"{name}-expected"
    convert_archive(tmp_path / f"{name}.zip", source.subsets, converted)
    pin(monkeypatch, name, {f.name: sha((converted / f.name).read_bytes()) for f in source.files
                            if (converted / f.name).is_file()})
    return body


# --------------------------------------------------------------------------------------------------------------
# The registry and the names
# --------------------------------------------------------------------------------------------------------------


def test_every_dataset_is_pinned_and_listed_with_its_licence():
    for dataset in DATASETS.values():
        pinned = getattr(dataset.source, "revision", None) or getattr(dataset.source, "commit", None)
        assert pinned and len(pinned) == 40, dataset.name  # a full commit, not a branch
        assert all(f.sha256 and len(f.sha256) == 64 for f in dataset.source.files), dataset.name
        assert dataset.licence and dataset.size
    listed = CliRunner().invoke(cli, ["data", "fetch", "--list"])
    assert listed.exit_code == 0
    for name in ("sudoku-extreme", "maze-30x30-hard-1k", "arc-agi-1", "arc-agi-2", "concept-arc"):
        assert name in listed.output
    assert listed.output.count("licence:") == len(DATASETS) and "none stated" in listed.output
    rows = json.loads(CliRunner().invoke(cli, ["data", "fetch", "--list", "--json"]).output)
    assert {r["name"] for r in rows} == set(DATASETS)


def test_fetch_sources_are_parsed_with_clear_errors():
    assert [d.name for d in parse_fetch_source("fetch:arc-agi-2+concept-arc")] == ["arc-agi-2", "concept-arc"]
    with pytest.raises(UserError, match="unknown dataset 'sudoku-extrem' \\(did you mean 'sudoku-extreme'"):
        parse_fetch_source("fetch:sudoku-extrem")
    with pytest.raises(UserError, match="only ARC datasets"):
        parse_fetch_source("fetch:sudoku-extreme+maze-30x30-hard-1k")
    with pytest.raises(UserError, match="expected fetch:NAME"):
        parse_fetch_source("fetch:")
    result = CliRunner().invoke(cli, ["data", "fetch", "arc-agi-3"])
    assert result.exit_code == 2 and "unknown dataset 'arc-agi-3'" in result.output


# --------------------------------------------------------------------------------------------------------------
# The Hub (huggingface_hub against HF_ENDPOINT)
# --------------------------------------------------------------------------------------------------------------


def test_hub_dataset_is_downloaded_verified_and_cached(server, cache, monkeypatch):
    train, test = serve_sudoku(server, monkeypatch)
    result = CliRunner().invoke(cli, ["data", "fetch", "sudoku-extreme", "--no-progress"])
    assert result.exit_code == 0, result.output
    folder = cache / "sudoku-extreme"
    assert (folder / "train.csv").read_bytes() == train and (folder / "test.csv").read_bytes() == test
    manifest = json.loads((folder / "FETCHED.json").read_text())
    assert manifest["revision"] == DATASETS["sudoku-extreme"].source.revision
    assert manifest["files"]["train.csv"] == {"sha256": sha(train), "size": len(train), "verified": "pinned SHA-256"}
    assert not (cache / ".partial" / "sudoku-extreme").exists()
    served = len(server.requests)
    again = CliRunner().invoke(cli, ["data", "fetch", "sudoku-extreme"])
    assert again.exit_code == 0 and str(folder) in again.output
    assert len(server.requests) == served  # a cache hit asks nothing of the network
    assert CliRunner().invoke(cli, ["data", "fetch", "sudoku-extreme", "--verify"]).exit_code == 0
    (folder / "test.csv").write_bytes(test.replace(b"9", b"8"))  # same size: only --verify notices
    bad = CliRunner().invoke(cli, ["data", "fetch", "sudoku-extreme", "--verify"])
    assert bad.exit_code == 2 and "test.csv: SHA-256" in bad.output and "fetch sudoku-extreme again" in bad.output


def test_hub_checksum_failure_is_one_line_and_keeps_nothing(server, cache, monkeypatch):
    serve_sudoku(server, monkeypatch, digest_ok=False, etag="not-a-digest")  # found only after the download
    with pytest.raises(UserError) as error:
        fetch(DATASETS["sudoku-extreme"], show_progress=False)
    message = str(error.value)
    assert "\n" not in message and "train.csv has SHA-256" in message and "nothing was kept" in message
    assert not (cache / "sudoku-extreme").exists() and not (cache / ".partial" / "sudoku-extreme").exists()
    serve_sudoku(server, monkeypatch, digest_ok=False)  # the Hub's ETag already differs from the pin
    gets = sum(1 for method, _, _ in server.requests if method == "GET")
    with pytest.raises(UserError, match="the Hub serves train.csv at 58942f96baeb with SHA-256 .* nothing was "
                                        "downloaded$"):
        fetch(DATASETS["sudoku-extreme"], show_progress=False)
    assert sum(1 for method, _, _ in server.requests if method == "GET") == gets
    assert not (cache / "sudoku-extreme").exists()


def test_hub_etag_is_checked_when_no_digest_is_pinned(server, cache, monkeypatch):
    train, _ = serve_sudoku(server, monkeypatch, etag="1" * 64)  # the Hub announces another file's digest
    pin(monkeypatch, "sudoku-extreme", {})
    with pytest.raises(UserError, match="train.csv has SHA-256 .* but 1111111111111111... was expected"):
        fetch(DATASETS["sudoku-extreme"], show_progress=False)
    assert not (cache / "sudoku-extreme").exists()
    server.add_hub_file(DATASETS["sudoku-extreme"].source.repo_id, DATASETS["sudoku-extreme"].source.revision,
                        "train.csv", train)  # now the right ETag
    folder = fetch(DATASETS["sudoku-extreme"], show_progress=False)
    files = json.loads((folder / "FETCHED.json").read_text())["files"]
    assert files["train.csv"]["verified"] == "the Hub's LFS SHA-256 (ETag)"


def test_offline_fails_in_one_line_saying_what_and_where(cache, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    with pytest.raises(UserError) as error:
        fetch(DATASETS["maze-30x30-hard-1k"], show_progress=False)
    message = str(error.value)
    assert "\n" not in message and message.startswith("cannot download maze-30x30-hard-1k")
    assert "https://huggingface.co/datasets/sapientinc/maze-30x30-hard-1k/tree/549754de" in message
    assert f"into {cache / 'maze-30x30-hard-1k'}" in message
    assert not (cache / "maze-30x30-hard-1k").exists() and not (cache / ".partial" / "maze-30x30-hard-1k").exists()
    monkeypatch.setenv("TRM_FETCH_URL_ARC_AGI_2", "http://127.0.0.1:9/arc.zip")
    with pytest.raises(UserError, match=r"cannot download arc-agi-2 .*set TRM_FETCH_URL_ARC_AGI_2 to a local copy"):
        fetch(DATASETS["arc-agi-2"], show_progress=False)


def test_files_placed_by_hand_are_verified_and_used_offline(cache, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    folder = cache / "sudoku-extreme"
    folder.mkdir(parents=True)
    (folder / "train.csv").write_bytes(SUDOKU_CSV)
    (folder / "test.csv").write_bytes(SUDOKU_CSV)
    pin(monkeypatch, "sudoku-extreme", {"train.csv": sha(SUDOKU_CSV), "test.csv": "2" * 64})
    with pytest.raises(UserError, match="test.csv: SHA-256 .* is not the pinned 2222"):
        fetch(DATASETS["sudoku-extreme"], show_progress=False)
    pin(monkeypatch, "sudoku-extreme", {"train.csv": sha(SUDOKU_CSV), "test.csv": sha(SUDOKU_CSV)})
    assert fetch(DATASETS["sudoku-extreme"], show_progress=False) == folder
    assert json.loads((folder / "FETCHED.json").read_text())["files"]["test.csv"]["sha256"] == sha(SUDOKU_CSV)


# --------------------------------------------------------------------------------------------------------------
# Archives (plain HTTP with resume)
# --------------------------------------------------------------------------------------------------------------


def test_archive_becomes_kaggle_files_the_arc_task_reads(tmp_path):
    from trm_arc.kaggle import load_subset

    make_zip(tmp_path / "a.zip", "ARC-AGI-abc", ARC1_TASKS)
    written = convert_archive(tmp_path / "a.zip", DATASETS["arc-agi-1"].source.subsets, tmp_path / "out")
    assert sorted(written) == sorted(f.name for f in DATASETS["arc-agi-1"].source.files)
    evaluation = load_subset(tmp_path / "out", "evaluation")
    assert list(evaluation) == ["e0e0e0e0", "e1e1e1e1"]
    want = ARC1_TASKS["data/evaluation/e0e0e0e0.json"]
    assert [o.tolist() for _, o in evaluation["e0e0e0e0"].test] == [p["output"] for p in want["test"]]
    assert [i.tolist() for i, _ in evaluation["e0e0e0e0"].train] == [p["input"] for p in want["train"]]
    make_zip(tmp_path / "c.zip", "ConceptARC-x", CONCEPT_TASKS)
    convert_archive(tmp_path / "c.zip", DATASETS["concept-arc"].source.subsets, tmp_path / "out")
    assert list(load_subset(tmp_path / "out", "concept")) == ["AboveBelow1", "Count2"]


def test_interrupted_archive_transfer_resumes_with_a_range_request(server, cache, monkeypatch, tmp_path):
    body = serve_archive(server, monkeypatch, tmp_path, "arc-agi-1", ARC1_TASKS, cut_after=300)
    with pytest.raises(UserError, match=r"stopped after 300 bytes .*run the same command again to resume"):
        fetch(DATASETS["arc-agi-1"], show_progress=False)
    assert not (cache / "arc-agi-1").exists()  # nothing half-written where the data goes
    assert (cache / ".partial" / "arc-agi-1" / "archive.zip.part").stat().st_size == 300
    folder = fetch(DATASETS["arc-agi-1"], show_progress=False)
    assert server.requests[-1] == ("GET", "/arc-agi-1.zip", "bytes=300-")
    manifest = json.loads((folder / "FETCHED.json").read_text())
    assert manifest["archive"]["sha256"] == sha(body) and manifest["commit"] == DATASETS["arc-agi-1"].source.commit
    assert all(entry["verified"] == "pinned SHA-256" for entry in manifest["files"].values())
    assert not (cache / ".partial" / "arc-agi-1").exists()


def test_a_server_ignoring_range_restarts_the_transfer(server, cache, monkeypatch, tmp_path):
    serve_archive(server, monkeypatch, tmp_path, "arc-agi-1", ARC1_TASKS, cut_after=200, ignore_range=True)
    with pytest.raises(UserError, match="stopped after 200 bytes"):
        fetch(DATASETS["arc-agi-1"], show_progress=False)
    assert (fetch(DATASETS["arc-agi-1"], show_progress=False) / "arc-agi_training_challenges.json").is_file()


def test_archive_checksum_failure_keeps_nothing(server, cache, monkeypatch, tmp_path):
    serve_archive(server, monkeypatch, tmp_path, "arc-agi-1", ARC1_TASKS)
    pin(monkeypatch, "arc-agi-1", {f.name: "3" * 64 for f in DATASETS["arc-agi-1"].source.files})
    with pytest.raises(UserError) as error:
        fetch(DATASETS["arc-agi-1"], show_progress=False)
    assert "\n" not in str(error.value) and "but 3333333333333333... was expected" in str(error.value)
    assert not (cache / "arc-agi-1").exists() and not (cache / ".partial" / "arc-agi-1").exists()


def test_a_zip_that_is_not_the_repository_is_refused(server, cache, monkeypatch, tmp_path):
    serve_archive(server, monkeypatch, tmp_path, "arc-agi-1", {"other/x.json": arc_task(9)})
    with pytest.raises(UserError, match="has no tasks for arc-agi_training_challenges.json; nothing was kept"):
        fetch(DATASETS["arc-agi-1"], show_progress=False)
    assert not (cache / ".partial" / "arc-agi-1").exists()


# --------------------------------------------------------------------------------------------------------------
# Recipes: source: fetch:... with data.build_if_missing
# --------------------------------------------------------------------------------------------------------------


def test_recipe_fetch_source_goes_from_download_to_a_built_store(server, cache, monkeypatch, tmp_path):
    from trm.build import open_recipe_store
    from trm.config import load_recipe

    serve_archive(server, monkeypatch, tmp_path, "arc-agi-1", ARC1_TASKS)
    serve_archive(server, monkeypatch, tmp_path, "concept-arc", CONCEPT_TASKS)
    store = tmp_path / "arc.zarr"
    recipe = load_recipe(REPO / "recipes" / "arc1_attn.yaml",
                         (f"data.store={store}", "task.options.num_aug=2"))
    assert recipe.task.options.source == "fetch:arc-agi-1+concept-arc" and recipe.data.build_if_missing
    opened = open_recipe_store(recipe, show_progress=False)
    assert opened.info.splits["test"]["num_groups"] == 2  # the two evaluation tasks
    combined = cache / "arc-agi-1+concept-arc"
    assert opened.info.task_options["source"] == str(combined)
    assert sorted(p.name for p in combined.glob("*.json")) == sorted(
        [f.name for f in DATASETS["arc-agi-1"].source.files] + [f.name for f in DATASETS["concept-arc"].source.files]
        + ["FETCHED.json"])
    served = len(server.requests)
    assert resolve_source("fetch:arc-agi-1+concept-arc") == combined and len(server.requests) == served


def test_augment_accepts_a_fetch_source(server, cache, monkeypatch, tmp_path):
    serve_sudoku(server, monkeypatch)
    out = tmp_path / "s.zarr"
    result = CliRunner().invoke(cli, ["augment", "sudoku", "--source", "fetch:sudoku-extreme", "--out", str(out),
                                      "num_aug=1", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "train        2 groups, 4 puzzles" in result.output and "test         2 groups" in result.output


def test_paper_recipes_fetch_their_data_and_build_when_missing():
    from trm.config import load_recipe

    expected = {"sudoku_mlp": "fetch:sudoku-extreme", "sudoku_attn": "fetch:sudoku-extreme",
                "maze_attn": "fetch:maze-30x30-hard-1k", "arc1_attn": "fetch:arc-agi-1+concept-arc",
                "arc2_attn": "fetch:arc-agi-2+concept-arc"}
    for name, source in expected.items():
        recipe = load_recipe(REPO / "recipes" / f"{name}.yaml")
        assert recipe.task.options.source == source and recipe.data.build_if_missing, name
        parse_fetch_source(source)


def test_trm_run_offline_fails_in_one_line(tmp_path):
    env = {**os.environ, "TRM_DATA_ROOT": str(tmp_path / "data"), "HF_ENDPOINT": "http://127.0.0.1:9",
           "TRM_TRACKERS": "none"}
    result = subprocess.run([sys.executable, "-m", "trm", "run", str(REPO / "recipes" / "maze_attn.yaml"),
                             f"data.store={tmp_path / 'maze.zarr'}", "--run-dir", str(tmp_path / "run"),
                             "--no-progress"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("trm: error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert "cannot download maze-30x30-hard-1k" in errors[0] and str(tmp_path / "data" / "raw") in errors[0]
    assert not (tmp_path / "maze.zarr").exists()


# --------------------------------------------------------------------------------------------------------------
# Hub checkpoints for trm convert reference
# --------------------------------------------------------------------------------------------------------------


def test_hub_references_are_parsed():
    from trm.hub_checkpoints import parse_hub_ref

    ref = parse_hub_ref("hf:arcprize/trm_arc_prize_verification/arc_v1_public/step_518071@abc123")
    assert (ref.repo_id, ref.path, ref.revision) == ("arcprize/trm_arc_prize_verification",
                                                     "arc_v1_public/step_518071", "abc123")
    assert parse_hub_ref("hf:alphaXiv/trm-model-maze").path == "maze_hard_step_32550"  # its one known file
    with pytest.raises(UserError, match="which file of arcprize/trm_arc_prize_verification"):
        parse_hub_ref("hf:arcprize/trm_arc_prize_verification")
    with pytest.raises(UserError, match="expected hf:OWNER/REPO"):
        parse_hub_ref("hf:nothing")


def test_convert_reference_from_the_hub_checks_the_size_before_downloading(server, tmp_path):
    import torch

    from test_convert import PREFIX, fake_reference
    from trm.build import task_dims
    from trm.config import load_recipe

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        f"extends: {REPO / 'recipes' / 'quickstart_4x4.yaml'}\n"
        f"data: {{store: {tmp_path / 'absent.zarr'}}}\n"
        "model: {hidden_size: 32, h_cycles: 1, l_cycles: 1, puzzle_emb_len: 2, puzzle_emb_dim: 32}\n"
        "backbone: {name: attention, options: {layers: 1, num_heads: 4}}\n")
    dims, _ = task_dims(load_recipe(recipe))
    ids = dims.num_puzzle_identifiers or 1
    good, other = tmp_path / "good.pt", tmp_path / "other.pt"
    torch.save(fake_reference(32, dims.vocab_size, dims.seq_len + 2, 1, ids, heads_inner=256), good)
    torch.save(fake_reference(32, dims.vocab_size, dims.seq_len + 2, 3, ids, heads_inner=256), other)  # 3 layers
    commit = "c" * 40
    for name, path in (("good", good), ("other", other)):
        body = path.read_bytes()
        server.add(f"/someone/trm-tiny/resolve/main/{name}.pt", body,
                   headers={"X-Repo-Commit": commit, "ETag": f'"{sha(body)}"'})
    env = {**os.environ, "HF_ENDPOINT": server.url, "HF_HUB_CACHE": str(tmp_path / "hf")}

    def convert(ref: str, out: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "trm", "convert", "reference", ref, "--recipe", str(recipe),
                               "--out", str(tmp_path / out)], capture_output=True, text=True, env=env, timeout=300)

    refused = convert("hf:someone/trm-tiny/other.pt", "x")
    assert refused.returncode == 2 and "the checkpoint of another model" in refused.stderr
    assert "nothing was downloaded" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert server.hits("/someone/trm-tiny/resolve/main/other.pt") == 1  # the HEAD only
    assert [m for m, p, _ in server.requests if p.endswith("other.pt")] == ["HEAD"]
    done = convert("hf:someone/trm-tiny/good.pt", "converted")
    assert done.returncode == 0, done.stderr
    assert "as the recipe's model implies" in done.stdout
    from trm.api import load

    loaded = load(tmp_path / "converted")
    reference = torch.load(good, weights_only=True)
    assert torch.equal(loaded.model.puzzle_emb.weights, reference[PREFIX + "puzzle_emb.weights"])
    from trm.checkpoint import load_tree

    state = load_tree(next((tmp_path / "converted" / "checkpoints").rglob("state.json")).parent, "state")
    assert state["converted_from"] == f"hf:someone/trm-tiny/good.pt (commit {commit})"
    missing = convert("hf:someone/trm-tiny/absent.pt", "y")
    assert missing.returncode == 2 and "cannot read it from the Hub" in missing.stderr


def test_known_checkpoints_name_shipped_recipes():
    from trm.hub_checkpoints import KNOWN_CHECKPOINTS, default_recipe, parse_hub_ref
    from trm.recipe_catalog import find_recipe

    for known in KNOWN_CHECKPOINTS:
        ref = parse_hub_ref(f"hf:{known.repo_id}/{known.path}")
        if known.recipe is None:
            with pytest.raises(UserError, match="no recipe is known for this checkpoint; pass --recipe"):
                default_recipe(ref)
        else:
            assert default_recipe(ref) == known.recipe and find_recipe(known.recipe).path.is_file()

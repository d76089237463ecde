"""Public datasets by name: pinned sources, verified downloads and an atomic cache (``trm data fetch``).

Each dataset of :data:`DATASETS` names a pinned public source: a Hugging Face Hub dataset at a commit (downloaded
with ``huggingface_hub``, which honours ``HF_ENDPOINT``) or a GitHub repository at a commit (its zip archive,
downloaded over plain HTTP(S) with resume, then turned into the Kaggle JSON files the ``arc`` task reads). Files are
checked against pinned SHA-256 digests; a downloaded copy that differs is deleted and reported in one line.

Cache layout (docs/datasets.md): ``<data root>/raw/<name>/`` holds the files and ``FETCHED.json`` (what was fetched,
from where, the digests). The directory appears only once complete (staged under ``raw/.partial/`` and renamed), so
an interrupted fetch leaves no half-written dataset; an interrupted archive transfer is resumed with an HTTP Range
request next time. A second fetch of a complete dataset reads ``FETCHED.json`` and returns at once.

Recipes name these datasets as task sources: ``source: fetch:sudoku-extreme`` or ``fetch:arc-agi-2+concept-arc``
(several ARC datasets merged into one directory, ``raw/arc-agi-2+concept-arc/``); :func:`resolve_source` turns such
a source into the local directory, fetching what is missing. Nothing here runs at import time.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import sys
import time
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

import attrs

from trm.errors import UserError
from trm.store import data_root, publish_directory

FETCH_PREFIX = "fetch:"
MANIFEST = "FETCHED.json"
CHUNK = 1 << 20


def default_cache() -> Path:
    """Where fetched raw datasets land: ``<data root>/raw`` (the data root of trm.store: ``$TRM_DATA_ROOT``,
    ``trm --data-root DIR``, else ``./data``)."""
    return data_root() / "raw"


@attrs.frozen
class PinnedFile:
    """One file of a fetched dataset and what it must be (``sha256`` None: recorded on first download)."""

    name: str
    sha256: str | None = None
    size: int | None = None


@attrs.frozen
class HubSource:
    """Files of a Hugging Face Hub dataset repository at a pinned commit."""

    repo_id: str
    revision: str
    files: tuple[PinnedFile, ...]

    def describe(self) -> str:
        return f"https://huggingface.co/datasets/{self.repo_id} @ {self.revision[:12]}"

    def manual(self, folder: Path) -> str:
        names = " and ".join(f.name for f in self.files)
        return f"download {names} from https://huggingface.co/datasets/{self.repo_id}/tree/{self.revision} into {folder}"


@attrs.frozen
class ArchiveSource:
    """A GitHub repository at a pinned commit, as a zip archive; ``subsets`` maps a folder of one-task JSON files
    inside the archive (a glob below its top folder) to the Kaggle subset name it becomes."""

    repo: str
    commit: str
    url_env: str  # environment variable that replaces the URL (a mirror, or a local test server)
    subsets: tuple[tuple[str, str], ...]
    files: tuple[PinnedFile, ...]  # the Kaggle files written, with digests of their content

    @property
    def url(self) -> str:
        return os.environ.get(self.url_env) or f"https://github.com/{self.repo}/archive/{self.commit}.zip"

    def describe(self) -> str:
        return f"https://github.com/{self.repo} @ {self.commit[:12]}"

    def manual(self, folder: Path) -> str:
        return f"set {self.url_env} to a local copy of {self.url}"


@attrs.frozen
class Dataset:
    """A public dataset trm can fetch by name."""

    name: str
    title: str
    task: str  # the trm task that reads it
    licence: str
    size: str  # what the download costs, for `trm data fetch --list`
    source: HubSource | ArchiveSource
    note: str = ""


def _kaggle_files(*subsets: str, digests: dict[str, str]) -> tuple[PinnedFile, ...]:
    names = [f"arc-agi_{s}_{kind}.json" for s in subsets for kind in ("challenges", "solutions")]
    return tuple(PinnedFile(n, digests.get(n)) for n in names)


# Digests: the Hub files' SHA-256 (the Hub's LFS object ids) as pinned by other public projects for these commits;
# the ARC files' SHA-256 were computed from the pinned commits' task files with this module's converter.
DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset(
        name="sudoku-extreme", title="Sudoku-Extreme (HRM/TRM Sudoku benchmark)", task="sudoku",
        licence="none stated (the dataset card has no licence tag; puzzles are community collections)",
        size="roughly 0.7 GB, estimated from the row counts (train.csv 3,831,994 puzzles, test.csv 422,786)",
        source=HubSource("sapientinc/sudoku-extreme", "58942f96baeb572ca3127e2a9e9c70f330783d6b", (
            PinnedFile("train.csv", "64b46674db0148e0d73a16346dadeb2b1c00824d3fca3f85b2ae7037f6b4b38e"),
            PinnedFile("test.csv", "a2fd52aea23d331d5b4ee723c856236e838a9fb9a70e66f4e0e0cf26c338c6a8"),
        )),
        note="the paper trains on a 1,000-puzzle subsample of train.csv (task option subsample_size=1000)",
    ),
    Dataset(
        name="maze-30x30-hard-1k", title="Maze-Hard 30x30 (HRM/TRM maze benchmark)", task="maze",
        licence="none stated (no dataset card licence; HRM's builder code is Apache-2.0)",
        size="about 3.6 MB (train.csv 1,000 mazes, test.csv 1,000)",
        source=HubSource("sapientinc/maze-30x30-hard-1k", "549754de3d67eebe57b6b22c7d226b9412d55b07", (
            PinnedFile("train.csv", "25f9e39b5aee16967da41ba63b2d1d75cf608c2360d8a1419d827f9859dbafa0"),
            PinnedFile("test.csv", "5120d52088fb3f8036e62e90103808a79ba58847d8601f9451f40991b0903a62"),
        )),
    ),
    Dataset(
        name="arc-agi-1", title="ARC-AGI-1 public training + evaluation (subsets training, evaluation)", task="arc",
        licence="Apache-2.0 (Copyright 2019 Francois Chollet)",
        size="about 0.5 MB archive (800 tasks; 2.6 MB of JSON)",
        source=ArchiveSource(
            "fchollet/ARC-AGI", "399030444e0ab0cc8b4e199870fb20b863846f34", "TRM_FETCH_URL_ARC_AGI_1",
            (("data/training/*.json", "training"), ("data/evaluation/*.json", "evaluation")),
            _kaggle_files("training", "evaluation", digests={
                "arc-agi_training_challenges.json": "3ffd82f1d20b0701d7710290d5a409eada06c28f54804f65e004aaa662aad81c",
                "arc-agi_training_solutions.json": "131a8eaf96199b795a3c60d3be19b118847a0015ae7d8723cc01799642d16000",
                "arc-agi_evaluation_challenges.json": "56e9ec5017b8a0109fadba4651177cea9e6691ce7cd6bc21721d3dbf1cd8370a",
                "arc-agi_evaluation_solutions.json": "e97693b0899f8f3fcc87d58c3891329cad63ed054489f9b0d440329de0bb9945",
            })),
    ),
    Dataset(
        name="arc-agi-2", title="ARC-AGI-2 public training + evaluation (subsets training2, evaluation2)", task="arc",
        licence="Apache-2.0 (Copyright 2019 ARC Prize Foundation)",
        size="about 0.7 MB archive (1,120 tasks; 4.0 MB of JSON)",
        source=ArchiveSource(
            "arcprize/ARC-AGI-2", "fd80c5ad77abeb79c0a11e6bd07fd0d93afa0de3", "TRM_FETCH_URL_ARC_AGI_2",
            (("data/training/*.json", "training2"), ("data/evaluation/*.json", "evaluation2")),
            _kaggle_files("training2", "evaluation2", digests={
                "arc-agi_training2_challenges.json": "f2d25b16977e62b398d9b04111e302e859e9ba92dcc7abec4e5e4118f53f7a5c",
                "arc-agi_training2_solutions.json": "cdf36bf5c02601a60efa5036ebf64d56aa18cdd4b82366a67ce76bc8a33ff928",
                "arc-agi_evaluation2_challenges.json": "7074186958ebe492f81b9973a6192468825c02e1564aae4bb2554716f5b7976e",
                "arc-agi_evaluation2_solutions.json": "47404690a99fc6f3dab23b4e08e31808eca3d8ffcd13b8a9a1c1220e45844103",
            })),
        note="pinned at 2025-04-15, before upstream edited six evaluation tasks: the version the TRM paper used",
    ),
    Dataset(
        name="concept-arc", title="ConceptARC (16 concepts x 10 tasks; subset concept)", task="arc",
        licence="MIT (Copyright (c) 2024 Victor Vikram Odouard)",
        size="about 0.15 MB archive (160 tasks; 0.4 MB of JSON)",
        source=ArchiveSource(
            "victorvikram/ConceptARC", "b22ef526b4656679816b7811e78f55cc24d736d7", "TRM_FETCH_URL_CONCEPT_ARC",
            (("corpus/*/*.json", "concept"),),
            _kaggle_files("concept", digests={
                "arc-agi_concept_challenges.json": "299eeb1a2060a95d816be5ae331691a01532d3485e7b9b21ba08889fbed6239b",
                "arc-agi_concept_solutions.json": "1cf7c54baa4d34aa755d4330d6665a7b9d5777e6443c514bdd13044211aa7b2e",
            })),
    ),
)}


# --------------------------------------------------------------------------------------------------------------
# Looking datasets up
# --------------------------------------------------------------------------------------------------------------


def get_dataset(name: str) -> Dataset:
    from trm.errors import did_you_mean

    if name not in DATASETS:
        raise UserError(f"unknown dataset '{name}'{did_you_mean(name, list(DATASETS))} "
                        f"(known: {', '.join(DATASETS)}; `trm data fetch --list` describes them)")
    return DATASETS[name]


def parse_fetch_source(text: str) -> list[Dataset]:
    """The datasets of ``fetch:A[+B...]``; several must all be ARC datasets (they merge into one directory)."""
    body = text[len(FETCH_PREFIX):].strip()
    names = [part.strip() for part in body.split("+")]
    if not body or not all(names):
        raise UserError(f"source '{text}': expected fetch:NAME or fetch:NAME+NAME..., e.g. fetch:arc-agi-2+concept-arc")
    datasets = [get_dataset(name) for name in names]
    if len(set(names)) != len(names):
        raise UserError(f"source '{text}': a dataset is named twice")
    if len(datasets) > 1 and not all(isinstance(d.source, ArchiveSource) for d in datasets):
        raise UserError(f"source '{text}': only ARC datasets (arc-agi-1, arc-agi-2, concept-arc) can be combined")
    return datasets


def is_fetch_source(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(FETCH_PREFIX)


def resolve_source(source: str, *, cache: Path | None = None, show_progress: bool = True) -> Path:
    """The local directory of ``fetch:...`` (fetched and verified first if missing)."""
    datasets = parse_fetch_source(source)
    cache = Path(cache) if cache is not None else default_cache()
    folders = [fetch(d, cache=cache, show_progress=show_progress) for d in datasets]
    if len(folders) == 1:
        return folders[0]
    return _combine(datasets, folders, cache)


def resolve_task_options(options: Any, *, show_progress: bool = True) -> Any:
    """``options`` with a ``fetch:`` source replaced by the fetched directory (unchanged otherwise)."""
    if not attrs.has(type(options)) or "source" not in attrs.fields_dict(type(options)):
        return options
    if not is_fetch_source(options.source):
        return options
    return attrs.evolve(options, source=str(resolve_source(options.source, show_progress=show_progress)))


# --------------------------------------------------------------------------------------------------------------
# Fetching
# --------------------------------------------------------------------------------------------------------------


def cached(dataset: Dataset, cache: Path | None = None) -> Path | None:
    """The dataset's complete cache directory, or None (a quick check: the manifest and the files' sizes)."""
    folder = (Path(cache) if cache is not None else default_cache()) / dataset.name
    manifest = _read_manifest(folder)
    if manifest is None:
        return None
    files = manifest.get("files", {})
    for pinned in dataset.source.files:
        entry = files.get(pinned.name)
        path = folder / pinned.name
        if entry is None or not path.is_file() or path.stat().st_size != entry.get("size"):
            return None
        if pinned.sha256 is not None and entry.get("sha256") != pinned.sha256:
            return None  # fetched under an older pin
    return folder


def fetch(dataset: Dataset, *, cache: Path | None = None, show_progress: bool = True, verify: bool = False) -> Path:
    """Download, verify and cache ``dataset``; returns its directory. Instant when already cached (``verify``
    re-hashes the cached files first)."""
    cache = Path(cache) if cache is not None else default_cache()
    folder = cache / dataset.name
    hit = cached(dataset, cache)
    if hit is not None:
        if verify:
            verify_cached(dataset, hit)
        return hit
    with _lock(cache, dataset.name):
        hit = cached(dataset, cache)  # another process may have finished it while we waited
        if hit is not None:
            return hit
        if folder.exists() and _adopt(dataset, folder):  # files the user put there by hand
            return folder
        staging = cache / ".partial" / dataset.name
        staging.mkdir(parents=True, exist_ok=True)
        _say(f"fetching {dataset.name} from {dataset.source.describe()} into {folder}")
        try:
            if isinstance(dataset.source, HubSource):
                records = _fetch_hub(dataset, staging, folder, show_progress)
            else:
                records = _fetch_archive(dataset, staging, folder, show_progress)
        except BaseException:
            if staging.is_dir() and not any(p.is_file() for p in staging.rglob("*")):
                shutil.rmtree(staging, ignore_errors=True)  # nothing to resume from
            raise
        _write_manifest(staging / "out", dataset, records)
        publish_directory(staging / "out", folder)
        shutil.rmtree(staging, ignore_errors=True)
    _say(f"{dataset.name}: ready in {folder}")
    return folder


def verify_cached(dataset: Dataset, folder: Path) -> None:
    """Re-hash the cached files against the manifest and the pins; UserError naming the first that differs."""
    manifest = _read_manifest(folder) or {}
    for pinned in dataset.source.files:
        want = pinned.sha256 or manifest.get("files", {}).get(pinned.name, {}).get("sha256")
        got = sha256_file(folder / pinned.name)
        if want is not None and got != want:
            raise UserError(f"{folder / pinned.name}: SHA-256 {got[:16]}... differs from the expected {want[:16]}...; "
                            f"delete {folder} and fetch {dataset.name} again")


def _fetch_hub(dataset: Dataset, staging: Path, folder: Path, show_progress: bool) -> dict[str, dict]:
    source = dataset.source
    assert isinstance(source, HubSource)
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:  # pragma: no cover - huggingface_hub comes with accelerate
        raise UserError("fetching from the Hugging Face Hub needs the huggingface_hub package "
                        "(pip install huggingface_hub)") from None
    endpoint = os.environ.get("HF_ENDPOINT") or None  # read now: the library reads it once, at its import
    records = {}
    hub_dir = staging / "hub"
    paths = {}
    with _hub_progress(show_progress):
        for pinned in source.files:  # files stay in hub_dir until all are in: a rerun finds them there at once
            records[pinned.name], paths[pinned.name] = _fetch_hub_file(dataset, pinned, hub_dir, staging, folder,
                                                                       endpoint)
    (staging / "out").mkdir(parents=True, exist_ok=True)
    for name, path in paths.items():
        os.replace(path, staging / "out" / name)
    return records


@contextlib.contextmanager
def _hub_progress(show: bool) -> Iterator[None]:
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    if not show:
        disable_progress_bars()
    try:
        yield
    finally:
        if not show and not was_disabled:
            enable_progress_bars()


def _fetch_hub_file(dataset: Dataset, pinned: PinnedFile, hub_dir: Path, staging: Path, folder: Path,
                    endpoint: str | None) -> tuple[dict[str, Any], Path]:
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    source = dataset.source
    assert isinstance(source, HubSource)
    try:
        url = hf_hub_url(source.repo_id, pinned.name, repo_type="dataset", revision=source.revision,
                         endpoint=endpoint)
        meta = get_hf_file_metadata(url, endpoint=endpoint)
    except Exception as exc:  # noqa: BLE001 - network, HTTP and offline errors alike end in the same advice
        raise _offline_error(dataset, folder, _reason(exc)) from None
    hub_digest = (meta.etag or "").strip('"').lower()
    if pinned.sha256 is not None and _is_sha256(hub_digest) and hub_digest != pinned.sha256:
        raise UserError(f"{dataset.name}: the Hub serves {pinned.name} at {source.revision[:12]} with SHA-256 "
                        f"{hub_digest[:16]}... but {pinned.sha256[:16]}... is pinned; nothing was downloaded")
    try:
        path = Path(hf_hub_download(source.repo_id, pinned.name, repo_type="dataset", revision=source.revision,
                                    local_dir=hub_dir, endpoint=endpoint))
    except Exception as exc:  # noqa: BLE001 - as above; a partial file stays in the staging folder for resume
        raise _offline_error(dataset, folder, _reason(exc)) from None
    want = pinned.sha256 or (hub_digest if _is_sha256(hub_digest) else None)
    record = _check_file(dataset, path, want, staging)
    if pinned.sha256 is None:
        record["verified"] = ("the Hub's LFS SHA-256 (ETag)" if want is not None
                              else "recorded on first download (no digest pinned or served)")
    return record, path


def _fetch_archive(dataset: Dataset, staging: Path, folder: Path, show_progress: bool) -> dict[str, dict]:
    source = dataset.source
    assert isinstance(source, ArchiveSource)
    part = staging / "archive.zip.part"
    try:
        download_url(source.url, part, show_progress=show_progress, desc=dataset.name)
    except UserError:
        raise
    except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, refused or dropped connections
        if part.exists() and part.stat().st_size:
            raise UserError(f"{dataset.name}: the download from {source.url} stopped after "
                            f"{part.stat().st_size:,} bytes ({_reason(exc)}); run the same command again to "
                            f"resume it") from None
        raise _offline_error(dataset, folder, _reason(exc)) from None
    archive_digest = sha256_file(part)
    try:
        written = convert_archive(part, source.subsets, staging / "out")
    except (zipfile.BadZipFile, UserError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise UserError(f"{dataset.name}: the archive from {source.url} is not the expected repository "
                        f"({exc}); nothing was kept") from None
    records = {}
    for pinned in source.files:
        path = staging / "out" / pinned.name
        if pinned.name not in written:
            shutil.rmtree(staging, ignore_errors=True)
            raise UserError(f"{dataset.name}: the archive from {source.url} has no tasks for {pinned.name}; "
                            "nothing was kept")
        records[pinned.name] = _check_file(dataset, path, pinned.sha256, staging)
    records["_archive"] = {"url": source.url, "sha256": archive_digest, "size": part.stat().st_size}
    return records


def _check_file(dataset: Dataset, path: Path, want: str | None, staging: Path) -> dict[str, Any]:
    got = sha256_file(path)
    if want is not None and got != want:
        shutil.rmtree(staging, ignore_errors=True)
        raise UserError(f"{dataset.name}: {path.name} has SHA-256 {got[:16]}... but {want[:16]}... was expected "
                        f"(corrupted download or changed source); nothing was kept, fetch again to retry")
    return {"sha256": got, "size": path.stat().st_size,
            "verified": "pinned SHA-256" if want is not None else "recorded on first download"}


def _adopt(dataset: Dataset, folder: Path) -> bool:
    """Accept files placed in the cache directory by hand (offline machines) when they pass the pinned digests."""
    if not all((folder / f.name).is_file() for f in dataset.source.files):
        return False
    records = {}
    for pinned in dataset.source.files:
        got = sha256_file(folder / pinned.name)
        if pinned.sha256 is not None and got != pinned.sha256:
            raise UserError(f"{folder / pinned.name}: SHA-256 {got[:16]}... is not the pinned {pinned.sha256[:16]}... "
                            f"of {dataset.name} ({dataset.source.describe()}); remove it and fetch again")
        records[pinned.name] = {"sha256": got, "size": (folder / pinned.name).stat().st_size,
                                "verified": "pinned SHA-256" if pinned.sha256 else "recorded (placed by hand)"}
    _write_manifest(folder, dataset, records)
    _say(f"{dataset.name}: using the files already in {folder}")
    return True


def _offline_error(dataset: Dataset, folder: Path, reason: str) -> UserError:
    return UserError(f"cannot download {dataset.name} from {dataset.source.describe()} ({reason}); without "
                     f"internet, run `trm data fetch {dataset.name}` on a machine that has it and copy the folder "
                     f"to {folder}, or {dataset.source.manual(folder)}")


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "reason", None) or exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


# --------------------------------------------------------------------------------------------------------------
# HTTP with resume
# --------------------------------------------------------------------------------------------------------------


def download_url(url: str, part: Path, *, show_progress: bool = True, desc: str = "",
                 timeout: float = 60.0) -> Path:
    """Download ``url`` into ``part``, continuing a partial file with an HTTP Range request when one exists."""
    import urllib.error
    import urllib.request

    from tqdm.auto import tqdm

    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "trm-fetch", **({"Range": f"bytes={have}-"}
                                                                                 if have else {})})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the partial file is already whole (or bigger): start over
            part.unlink()
            return download_url(url, part, show_progress=show_progress, desc=desc, timeout=timeout)
        raise UserError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    with response:
        resumed = have > 0 and response.status == 206
        if not resumed:
            have = 0  # the server ignored the Range header: the whole file comes again
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        if resumed:
            _say(f"{desc}: resuming at {have:,} bytes")
        with open(part, "ab" if resumed else "wb") as handle, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, desc=desc or "download",
                disable=not show_progress, dynamic_ncols=True, leave=False) as bar:
            while True:
                chunk = response.read(CHUNK)
                if not chunk:
                    break
                handle.write(chunk)
                bar.update(len(chunk))
    if total is not None and part.stat().st_size != total:
        raise OSError(f"transfer ended after {part.stat().st_size:,} of {total:,} bytes (run again to resume)")
    return part


# --------------------------------------------------------------------------------------------------------------
# GitHub archives -> Kaggle JSON
# --------------------------------------------------------------------------------------------------------------


def convert_archive(archive: Path, subsets: tuple[tuple[str, str], ...], out: Path) -> list[str]:
    """Write ``arc-agi_<subset>_challenges.json`` / ``_solutions.json`` from the one-task JSON files of a
    repository zip (``{"train": [{input, output}...], "test": [{input, output}...]}``; the task id is the file's
    stem), tasks sorted by id. Returns the file names written."""
    grouped: dict[str, dict[str, dict]] = {subset: {} for _, subset in subsets}
    with zipfile.ZipFile(archive) as bundle:
        for member in sorted(bundle.namelist()):
            path = PurePosixPath(member)
            if len(path.parts) < 2 or member.endswith("/"):
                continue
            inner = PurePosixPath(*path.parts[1:])  # below the archive's top folder (<repo>-<commit>/)
            for pattern, subset in subsets:
                if inner.match(pattern) and len(inner.parts) == len(PurePosixPath(pattern).parts):
                    task_id = inner.stem
                    if task_id in grouped[subset]:
                        raise UserError(f"task id {task_id} appears twice in subset {subset}")
                    try:
                        grouped[subset][task_id] = json.loads(bundle.read(member).decode("utf-8"))
                    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                        raise UserError(f"{member}: not a JSON task ({exc})") from None
                    break
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for subset, tasks in grouped.items():
        if not tasks:
            continue
        challenges, solutions = {}, {}
        for task_id in sorted(tasks):
            task = tasks[task_id]
            if not isinstance(task, dict) or "train" not in task or "test" not in task:
                raise UserError(f"task {task_id}: expected 'train' and 'test' lists")
            challenges[task_id] = {"train": task["train"], "test": [{"input": p["input"]} for p in task["test"]]}
            solutions[task_id] = [p["output"] for p in task["test"]]
        for kind, content in (("challenges", challenges), ("solutions", solutions)):
            name = f"arc-agi_{subset}_{kind}.json"
            (out / name).write_text(json.dumps(content, separators=(",", ":")))
            written.append(name)
    return written


def _combine(datasets: list[Dataset], folders: list[Path], cache: Path) -> Path:
    """One directory holding the Kaggle files of several ARC datasets (copied: they are a few MB)."""
    name = "+".join(d.name for d in datasets)
    target = cache / name
    manifest = _read_manifest(target)
    sources = {d.name: (_read_manifest(f) or {}).get("files", {}) for d, f in zip(datasets, folders)}
    if manifest is not None and manifest.get("parts") == sources:
        return target
    staging = cache / ".partial" / f"{name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for dataset, folder in zip(datasets, folders):
        for pinned in dataset.source.files:
            shutil.copyfile(folder / pinned.name, staging / pinned.name)
    (staging / MANIFEST).write_text(json.dumps({"name": name, "parts": sources}, indent=2))
    publish_directory(staging, target)
    return target


# --------------------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text.lower())


def _read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _write_manifest(folder: Path, dataset: Dataset, records: dict[str, dict]) -> None:
    from trm import __version__

    source = dataset.source
    pin = {"repo_id": source.repo_id, "revision": source.revision} if isinstance(source, HubSource) else \
        {"repo": source.repo, "commit": source.commit}
    manifest = {"name": dataset.name, "source": source.describe(), **pin, "licence": dataset.licence,
                "files": {k: v for k, v in records.items() if not k.startswith("_")},
                **({"archive": records["_archive"]} if "_archive" in records else {}),
                "fetched": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "trm_version": __version__}
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{MANIFEST}.tmp"
    temporary.write_text(json.dumps(manifest, indent=2))
    os.replace(temporary, folder / MANIFEST)


@contextlib.contextmanager
def _lock(cache: Path, name: str) -> Iterator[None]:
    """One fetch of a dataset at a time (several processes of one launch may ask for it together)."""
    lock_dir = cache / ".partial"
    try:
        lock_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{cache}: cannot create the dataset cache there ({exc.strerror or exc}); "
                        f"set TRM_DATA_ROOT or pass --dir to a writable directory") from None
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks, fetches are not expected to race there
        yield
        return
    with open(lock_dir / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def describe_datasets() -> list[dict[str, str]]:
    """Rows of ``trm data fetch --list``."""
    rows = []
    for dataset in DATASETS.values():
        pinned = dataset.source.revision if isinstance(dataset.source, HubSource) else dataset.source.commit
        rows.append({"name": dataset.name, "title": dataset.title, "task": dataset.task,
                     "source": dataset.source.describe(), "revision": pinned, "licence": dataset.licence,
                     "size": dataset.size,
                     "files": ", ".join(f.name for f in dataset.source.files), "note": dataset.note})
    return rows


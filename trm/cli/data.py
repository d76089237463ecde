"""``trm augment`` (build a dataset store with a task plugin), ``trm data info|verify|bench|check-leakage`` (inspect,
check, measure) and ``trm data fetch`` (download public datasets by name; logic in trm/fetch.py).

The root group (trm/cli/__init__.py) imports ``augment`` and ``data`` lazily; docs/datasets.md and docs/cli.md describe them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import attrs
import click

from trm.errors import RecipeError, UserError


def parse_options(pairs: tuple[str, ...]) -> dict:
    """``key=value`` words -> mapping; values are YAML (``1e-4`` a float, ``null`` None, ``[1, 2]`` a list)."""
    from trm.config import parse_value

    mapping: dict = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"option {pair!r}: expected key=value, e.g. num_aug=1000")
        if key.strip() in mapping:
            raise UserError(f"option {key.strip()!r} is given twice")
        mapping[key.strip()] = parse_value(text)
    return mapping


def _with_hint(problem: str, pairs: tuple[str, ...]) -> str:
    from trm.config import GENERIC_QUOTE_HINT

    specific = quote_hint(problem, pairs)
    return problem.replace(GENERIC_QUOTE_HINT, "") + specific if specific else problem


def quote_hint(problem: str, pairs: tuple[str, ...]) -> str:
    """A hint for ``problem`` when YAML read a word meant as text as a number: ARC ids such as ``00576224`` are
    octal to YAML 1.1 (195732), ``12345678`` an int. Empty when ``problem`` is about something else."""
    import re

    match = re.search(r" options\.(\w+)(?:\[(\d+)\])?: expected str, got (?:int|float) ", problem)
    if match is None:
        return ""
    key, index = match.group(1), match.group(2)
    text = next((pair.partition("=")[2] for pair in pairs if pair.partition("=")[0].strip() == key), "")
    words = [word.strip() for word in text.strip().strip("[]").split(",")]
    word = words[int(index)] if index is not None and int(index) < len(words) else text.strip()
    quoted = f'["{word}"]' if index is not None else f'"{word}"'
    return f" (YAML reads {word} as a number; quote it, in quotes the shell keeps: '{key}={quoted}')"


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def describe(store: Any, *, seconds: float | None = None) -> str:
    """The summary ``trm augment`` prints at the end and ``trm data info`` prints for an existing store."""
    from trm.store import SPLIT_NAMES

    info = store.info
    lines = [f"store        {store.path}", f"task         {info.task} (builder version {info.builder_version})"]
    for name in sorted(info.splits, key=lambda s: SPLIT_NAMES.index(s) if s in SPLIT_NAMES else 9):
        c = info.splits[name]
        lines.append(f"{name:<12} {_count(c['num_groups'], 'group')}, {_count(c['num_puzzles'], 'puzzle')}, "
                     f"{_count(c['num_examples'], 'example')}")
    blank = f"blank {info.blank_token_id}" if info.blank_token_id is not None else "no blank token"
    size = store.size_bytes()
    lines += [
        f"vocabulary   {info.vocab_size} tokens (pad {info.pad_id}, ignored label {info.ignore_label_id}, {blank})",
        f"seq_len      {info.seq_len}",
        f"identifiers  {info.num_puzzle_identifiers:,} (including <blank>)",
        f"size on disk {size / 2**20:,.1f} MiB" if size >= 2**20 else f"size on disk {size / 2**10:,.1f} KiB",
        f"fingerprint  {info.fingerprint}",
        "checksums    " + ("crc32c on every chunk, checked on every read" if info.checksums else
                           "none (store format 1): rebuild it with `trm augment ... --overwrite` to add them"),
        f"seed         {info.seed}",
        f"created      {info.created}",
    ]
    took = seconds if seconds is not None else info.build_seconds
    if took is not None:
        lines.append(f"build time   {took:,.1f} s")
    extras = sorted(info.extras)
    lines.append(f"extras       {', '.join(extras) if extras else 'none'} (trm data info --json shows them)")
    return "\n".join(lines)


@click.command("augment", context_settings={"show_default": True})
@click.argument("task")
@click.argument("options", nargs=-1, metavar="[OPTION=VALUE]...")
@click.option("--source", default=None, help="Raw data: a file or directory, 'generate', or fetch:NAME (a dataset of "
              "`trm data fetch --list`, downloaded when missing); the task's `source` option.")
@click.option("--out", required=True, type=click.Path(), help="Store to write, e.g. data/sudoku.zarr.")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing trm store (atomically, once the new one is complete); never any other path.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def augment(task: str, options: tuple[str, ...], source: str | None, out: str, overwrite: bool,
            no_progress: bool) -> None:
    """Build the dataset store OUT with task TASK; OPTIONs set the task's options (`trm list tasks` shows them).

    \b
    Examples:
      trm augment sudoku --source generate --out data/sudoku-gen.zarr size=6 num_train=500
      trm augment maze --source fetch:maze-30x30-hard-1k --out data/maze-30x30-hard-1k.zarr
      trm augment sudoku --source /data/sudoku --out data/sudoku-1k.zarr \\
          train_file=train_1k.csv test_file=test_rebuilt.csv num_aug=1000
    """
    from trm.config import structure_options
    from trm.plugins import registry
    from trm.store import open_store
    from trm.store_write import build_store, check_target

    spec = registry("tasks").get(task)
    mapping = parse_options(options)
    if source is not None:
        if "source" in mapping:
            raise UserError("give the source once: either --source or source=...")
        if not attrs.has(spec.options_class) or "source" not in attrs.fields_dict(spec.options_class):
            raise UserError(f"task '{task}' has no `source` option; drop --source")
        mapping["source"] = source
    try:
        task_options = structure_options(spec.options_class, mapping, f"{task} options")
    except RecipeError as error:
        # `trm augment` knows the words typed, so its hint replaces the recipe loader's generic one
        raise RecipeError([_with_hint(problem, options) for problem in error.problems]) from None
    out_path = Path(out)
    check_target(out_path, overwrite=overwrite)  # before reading any source: a refused --out fails at once
    started = time.time()
    from trm.fetch import resolve_task_options

    task_options = resolve_task_options(task_options, show_progress=not no_progress)  # source: fetch:NAME
    build_store(spec, task_options, out_path, overwrite=overwrite, show_progress=not no_progress)
    click.echo(describe(open_store(out_path), seconds=time.time() - started))


@click.group("data")
def data() -> None:
    """Fetch public datasets; inspect, verify and measure dataset stores."""


@data.command("info")
@click.argument("store", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the metadata as JSON, the task's extras included.")
@click.option("--no-extras", is_flag=True, help="With --json: leave out the task's extras (ARC's hold its test puzzles).")
def info(store: str, as_json: bool, no_extras: bool) -> None:
    """Print the summary of STORE (splits, vocabulary, size on disk, fingerprint, the keys of the task's extras)
    after checking its structure: every array present with the shape the metadata says, every chunk file present,
    every shard index intact. Exit 2 naming the first problem. Reads no token data: `trm data verify` reads
    everything."""
    from trm.store import open_store
    from trm.store_check import check_structure

    opened = open_store(Path(store))
    check_structure(opened)
    if as_json:
        import json

        meta = attrs.asdict(opened.info, filter=lambda a, v: a.name != "path")
        meta.update(path=str(opened.path), size_bytes=opened.size_bytes(), checksums=opened.info.checksums)
        if not no_extras:
            meta["extras"] = opened.info.extras  # what the task recorded with set_extra (generator stats, ...)
        click.echo(json.dumps(meta, indent=2, default=str))
    else:
        click.echo(describe(opened))


@data.command("verify")
@click.argument("store", type=click.Path())
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def verify(store: str, no_progress: bool) -> None:
    """Read all of STORE: check every chunk's checksum and recompute the content fingerprint.

    Exit 0 when the store holds exactly what was built; exit 2 naming the first damaged array and chunk (or the
    split whose content differs) otherwise."""
    from trm.store import open_store
    from trm.store_check import verify_store

    opened = open_store(Path(store))
    result = verify_store(opened, show_progress=not no_progress)
    checked = (f"every chunk's checksum and the fingerprint {result['fingerprint']} match" if result["checksums"] else
               f"the fingerprint {result['fingerprint']} matches (store format 1: no chunk checksums)")
    click.echo(f"{opened.path}: ok: {result['chunks']:,} chunks, {result['bytes'] / 2**20:,.1f} MiB read in "
               f"{result['seconds']:.1f} s; {checked}")


@data.command("bench")
@click.argument("store", type=click.Path())
@click.option("--batch-size", type=click.IntRange(min=1), default=768, show_default=True, help="Global batch size.")
@click.option("--batches", type=click.IntRange(min=1), default=2000, show_default=True,
              help="Training batches to time.")
@click.option("--split", default="train", show_default=True, help="Split to sample.")
@click.option("--seed", default=0, show_default=True, help="Seed of the loader's shuffling (which batches are drawn).")
def bench(store: str, batch_size: int, batches: int, split: str, seed: int) -> None:
    """Measure the training loader on STORE: samples/s and host-memory growth."""
    from trm.bench_data import bench_loader

    results = bench_loader(Path(store), batch_size=batch_size, batches=batches, split=split, seed=seed)
    for key, value in results.items():
        if float(value).is_integer():  # counts such as train_batches
            click.echo(f"{key:<22} {int(value):,}")
        else:
            click.echo(f"{key:<22} {value:,.1f}" if abs(value) >= 10 else f"{key:<22} {value:.3f}")


@data.command("fetch")
@click.argument("names", nargs=-1, metavar="NAME...")
@click.option("--list", "as_list", is_flag=True, help="List the datasets that can be fetched (source, licence, size).")
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=None,
              help="Cache directory (default: $TRM_DATA_ROOT/raw, i.e. data/raw).")
@click.option("--verify", is_flag=True, help="Re-hash already cached files against the pinned digests.")
@click.option("--json", "as_json", is_flag=True, help="With --list: print the table as JSON.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def fetch_command(names: tuple[str, ...], as_list: bool, directory: str | None, verify: bool, as_json: bool,
                  no_progress: bool) -> None:
    """Download public datasets by NAME, verify them and cache them (instant when already cached).

    \b
    Examples:
      trm data fetch --list
      trm data fetch sudoku-extreme maze-30x30-hard-1k
      trm data fetch arc-agi-2 concept-arc --dir /data/raw
      trm data fetch arc-agi-2+concept-arc     # both, merged into one directory
    Recipes name them as task sources: `source: fetch:arc-agi-2+concept-arc`. See docs/datasets.md.
    """
    from trm.fetch import FETCH_PREFIX, describe_datasets, fetch, get_dataset, parse_fetch_source, resolve_source

    if as_list or not names:
        if not as_list:
            raise UserError("name at least one dataset, e.g. `trm data fetch sudoku-extreme` "
                            "(`trm data fetch --list` shows them)")
        rows = describe_datasets()
        if as_json:
            import json

            click.echo(json.dumps(rows, indent=2))
            return
        for row in rows:
            click.echo(f"{row['name']:<20} {row['title']}")
            for key in ("task", "source", "files", "licence", "size", "note"):
                if row[key]:
                    click.echo(f"{'':<20} {key + ':':<9}{row[key]}")
        return
    for name in names:  # every name checked before anything is downloaded
        parse_fetch_source(FETCH_PREFIX + name)
    cache = Path(directory) if directory else None
    for name in names:
        if "+" in name:  # ARC datasets merged into one directory, as a recipe's fetch:A+B source
            folder = resolve_source(FETCH_PREFIX + name, cache=cache, show_progress=not no_progress)
        else:
            folder = fetch(get_dataset(name), cache=cache, show_progress=not no_progress, verify=verify)
        click.echo(f"{name:<20} {folder}")


@data.command("check-leakage")
@click.argument("store", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--show", type=click.IntRange(min=0), default=10, show_default=True,
              help="Leaked test examples listed by name.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def check_leakage(store: str, as_json: bool, show: int, no_progress: bool) -> None:
    """Report test examples of STORE whose input also occurs among its training inputs: exactly, and up to the
    task's own augmentations when the task gives a canonical form (Maze: the 8 dihedral versions; ARC: dihedral
    versions and colour permutations, wherever the grid lies on the canvas). Exits 1 if any leaked, 0 if clean.

    For ARC's raw Kaggle files (whole test pairs, before building), see `trm arc check-leakage`.
    """
    import json

    from tqdm.auto import tqdm

    from trm.integrity import check_store_leakage
    from trm.plugins import registry
    from trm.store import open_store

    opened = open_store(Path(store))
    task = registry("tasks").get(opened.info.task)

    def progress(iterable: Any, total: int, desc: str) -> Any:
        return tqdm(iterable, total=total, desc=desc, disable=no_progress, leave=False, dynamic_ncols=True)

    report = check_store_leakage(opened, task.canonical_input, show=show, progress=progress)
    click.echo(json.dumps(report.to_json(), indent=1) if as_json else "\n".join(report.lines()))
    raise SystemExit(0 if report.clean else 1)

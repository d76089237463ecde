"""Test helpers for plugin authors: check a task and its evaluators against trm's contracts without training.

Each ``check_*`` function raises :class:`PluginCheckError` (an ``AssertionError``, so pytest shows it as a failed
test) with one line per problem found, and returns what it measured when everything holds. ``trm plugins check NAME``
runs all of them for an installed plugin; docs/plugins.md ("Testing a plugin") describes each check.

    from trm.testing import build_tiny_store, check_evaluator, check_options, check_render

    def test_my_task(tmp_path):
        store = build_tiny_store("my_task", tmp_path / "tiny.zarr", {"num_train": 20, "num_test": 10})
        check_render("my_task", store)
        check_evaluator("my_evaluator", store)
        check_options("my_task")
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Mapping, Sequence

import attrs
import numpy as np

from trm.errors import UserError
from trm.types import EvalContext, EvaluatorSpec, TaskDims, TaskSpec

__all__ = ["PluginCheckError", "build_tiny_store", "check_store", "check_evaluator", "check_render", "check_options",
           "evaluation_batches", "perfect_outputs", "corrupt_outputs"]

IGNORE_LABEL = -100
SCORE_WORDS = ("accuracy",)  # metrics named like this are scores: 1.0 for perfect predictions


class PluginCheckError(AssertionError):
    """A plugin broke a contract: ``problems`` holds one line each."""

    def __init__(self, what: str, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__(f"{what}: " + "; ".join(self.problems) if len(self.problems) == 1
                         else f"{what}:\n" + "\n".join(f"  - {p}" for p in self.problems))


def _spec(kind: str, spec_or_name: Any, host: Any = None) -> Any:
    if not isinstance(spec_or_name, str):
        return spec_or_name
    from trm.plugins import get_host

    return (host or get_host()).registry(kind).get(spec_or_name)


def _options(spec: Any, options: Any, path: str) -> Any:
    from trm.config import structure_options

    if options is None or isinstance(options, Mapping):
        return structure_options(spec.options_class, dict(options or {}), path)
    return options


# --------------------------------------------------------------------------------------------------------------
# Stores
# --------------------------------------------------------------------------------------------------------------


def build_tiny_store(task: str | TaskSpec, out: str | Path, options: Mapping[str, Any] | Any = None, *,
                     check: bool = True, host: Any = None) -> Any:
    """Build ``out`` with ``task`` (options given as a recipe's mapping, structured strictly) and open it.

    With ``check`` (the default) the store is then held to the store contract by :func:`check_store`. Returns the
    opened :class:`trm.store.Store`. Keep the options small: this is for tests.
    """
    from trm.store import open_store
    from trm.store_write import build_store

    spec = _spec("tasks", task, host)
    structured = _options(spec, options, f"$.task.options ({spec.name})")
    build_store(spec, structured, Path(out), overwrite=True, show_progress=False)
    store = open_store(Path(out), expect_task=spec.name)
    if check:
        check_store(store, spec, structured)
    return store


def _row_digests(split: Any) -> set[bytes]:
    inputs = np.asarray(split.inputs[np.arange(split.num_examples)])
    return {hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in inputs}


def check_store(store: Any, task: str | TaskSpec, options: Any = None, *, host: Any = None) -> dict[str, Any]:
    """Hold a built store to the store contract (docs/plugins.md, "The store contract").

    Checked: the store names the task and its ``version``; it has a ``train`` and a ``test`` split; ``dims(options)``
    (when the task has it) agrees with the store's vocabulary, grid length and identifier count; every split's rows,
    identifiers and offsets are readable and consistent. Returns ``{"test_inputs_seen_in_train": n}``: how many test
    inputs also occur in training (0 for a clean held-out split; reported, not enforced: some tasks share them).
    """
    spec = _spec("tasks", task, host)
    info = store.info
    problems = []
    if info.task != spec.name:
        problems.append(f"the store names task '{info.task}', expected '{spec.name}'")
    if info.builder_version != str(spec.version):
        problems.append(f"the store records builder version {info.builder_version!r}, the task says {spec.version!r}")
    for needed in ("train", "test"):
        if not store.has_split(needed):
            problems.append(f"no '{needed}' split (build must write 'train' and 'test' through writer.split(...))")
    if spec.dims is not None and options is not None:
        dims = spec.dims(options)
        if not isinstance(dims, TaskDims):
            problems.append(f"dims(options) returned {type(dims).__name__}, expected trm.types.TaskDims")
        else:
            for field, built in (("vocab_size", info.vocab_size), ("seq_len", info.seq_len),
                                 ("num_puzzle_identifiers", info.num_puzzle_identifiers)):
                promised = getattr(dims, field)
                if promised is not None and promised != built:
                    problems.append(f"dims(options).{field} is {promised} but the built store has {built}")
    for name in info.splits:
        split = store.split(name)
        counts = info.splits[name]
        if split.num_examples != counts["num_examples"] or len(split.puzzle_identifiers) != counts["num_puzzles"]:
            problems.append(f"split '{name}': its arrays disagree with its recorded counts")
        identifiers = np.asarray(split.puzzle_identifiers)
        if len(identifiers) and (identifiers.min() < 0 or identifiers.max() >= info.num_puzzle_identifiers):
            problems.append(f"split '{name}': puzzle identifiers outside [0, {info.num_puzzle_identifiers})")
    if problems:
        raise PluginCheckError(f"task '{spec.name}': store {store.path}", problems)
    shared = 0
    if store.has_split("train") and store.has_split("test"):
        shared = len(_row_digests(store.split("test")) & _row_digests(store.split("train")))
    return {"test_inputs_seen_in_train": shared}


# --------------------------------------------------------------------------------------------------------------
# Evaluators
# --------------------------------------------------------------------------------------------------------------


def evaluation_batches(store: Any, split: str = "test", *, batch_size: int = 64,
                       limit: int | None = 512) -> list[dict[str, np.ndarray]]:
    """The ``batch`` arrays an evaluator receives for ``split``: its examples in split order, read as ``trm run`` reads
    them, in chunks of ``batch_size`` (the first ``limit`` examples of a seeded subset when ``limit`` is given)."""
    from trm.evaluate import _RowReader, eval_rows

    rows = eval_rows(store.split(split), limit, 0)
    reader = _RowReader(store.split(split), rows, store.info.ignore_label_id, block=max(batch_size, 256))
    batches = []
    for low in range(0, len(rows), batch_size):
        inputs, labels, identifiers = reader.read(np.arange(low, min(low + batch_size, len(rows))))
        batches.append({"inputs": inputs, "labels": labels, "puzzle_identifiers": identifiers,
                        "valid": np.ones(len(inputs), dtype=bool)})
    return batches


def perfect_outputs(batch: Mapping[str, np.ndarray], vocab_size: int, wants: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Outputs of a model that is always right: the labels as predictions (the inputs where nothing is supervised)."""
    labels = np.asarray(batch["labels"])
    preds = np.where(labels == IGNORE_LABEL, np.asarray(batch["inputs"]), labels).astype(np.int64)
    return _outputs(preds, vocab_size, wants)


def corrupt_outputs(batch: Mapping[str, np.ndarray], vocab_size: int, wants: Sequence[str] = (),
                    seed: int = 0) -> dict[str, np.ndarray]:
    """:func:`perfect_outputs` with one supervised position of every row changed to another token."""
    rng = np.random.default_rng(seed)
    outputs = perfect_outputs(batch, vocab_size)
    preds, labels = outputs["preds"].copy(), np.asarray(batch["labels"])
    for row in range(len(preds)):
        supervised = np.flatnonzero(labels[row] != IGNORE_LABEL)
        if len(supervised):
            column = int(rng.choice(supervised))
            preds[row, column] = (preds[row, column] + 1 + rng.integers(0, max(vocab_size - 1, 1))) % vocab_size
            if preds[row, column] == labels[row, column]:
                preds[row, column] = (preds[row, column] + 1) % vocab_size
    return _outputs(preds, vocab_size, wants)


def _outputs(preds: np.ndarray, vocab_size: int, wants: Sequence[str]) -> dict[str, np.ndarray]:
    rows = len(preds)
    outputs = {"preds": preds, "q_halt": np.full(rows, 5.0, dtype=np.float32), "steps": np.ones(rows, dtype=np.int32)}
    if "probabilities" in wants:
        outputs["probabilities"] = np.eye(vocab_size, dtype=np.float32)[preds]
    if "confidences" in wants:
        outputs["confidences"] = np.ones(preds.shape, dtype=np.float32)
    return outputs


def _pass(spec: EvaluatorSpec, evaluator: Any, batches: list[dict[str, np.ndarray]], make_outputs: Any) -> dict[str, float]:
    for batch in batches:
        evaluator.update(batch, make_outputs(batch))
    metrics = evaluator.compute()
    if not isinstance(metrics, dict) or not all(isinstance(key, str) for key in metrics):
        raise PluginCheckError(f"evaluator '{spec.name}'", [f"compute() must return a dict of name -> float, got {metrics!r}"])
    try:
        return {key: float(value) for key, value in metrics.items()}
    except (TypeError, ValueError):
        raise PluginCheckError(f"evaluator '{spec.name}'", [f"compute() returned a value that is not a number: {metrics!r}"]) from None


def check_evaluator(evaluator: str | EvaluatorSpec, store: Any, options: Mapping[str, Any] | Any = None, *,
                    split: str = "test", scores: Sequence[str] | None = None, limit: int | None = 512,
                    output_dir: str | Path | None = None, host: Any = None) -> dict[str, dict[str, float]]:
    """Self-test an evaluator on ``store``: labels as predictions must score 100%, a corrupted copy less.

    One evaluator is built, as in a run, and fed three passes: the labels as predictions, a corrupted copy (one
    wrong position in every row), and the labels again. ``scores`` names the metrics that are scores (default: every
    metric whose name contains ``accuracy``). Each must be 1.0 in the perfect pass; in the corrupted pass none may
    be higher and at least one must be lower; the third pass must repeat the first (``compute()`` closes a pass;
    metrics named ``*accumulated*`` are exempt). ``compute()`` must return numbers, and ``write(directory)`` (into
    ``output_dir``, a temporary directory by default) paths of files that exist. Returns
    ``{"perfect": metrics, "corrupted": metrics}``.
    """
    import tempfile

    spec = _spec("evaluators", evaluator, host)
    structured = _options(spec, options, f"$.eval.evaluators.{spec.name}.options")
    wants = tuple(getattr(spec, "wants", ()))
    batches = evaluation_batches(store, split, limit=limit)
    vocab = store.info.vocab_size
    problems = []
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(output_dir) if output_dir is not None else Path(scratch)
        built = spec.build(structured, EvalContext(store_info=store.info, split=split, output_dir=directory,
                                                   store_path=Path(store.path)))
        perfect = _pass(spec, built, batches, lambda b: perfect_outputs(b, vocab, wants))
        written = built.write(directory) or []
        missing = [str(path) for path in written if not Path(path).exists()]
        if missing:
            problems.append(f"write() returned paths that do not exist: {', '.join(missing)}")
        corrupted = _pass(spec, built, batches, lambda b: corrupt_outputs(b, vocab, wants))
        again = _pass(spec, built, batches, lambda b: perfect_outputs(b, vocab, wants))
    chosen = list(scores) if scores is not None else [k for k in perfect if any(w in k for w in SCORE_WORDS)]
    if not chosen:
        problems.append(f"no metric is named like a score ({', '.join(SCORE_WORDS)}) among {sorted(perfect)}; "
                        "say which are scores with scores=[...] (trm plugins check --score NAME)")
    for key in chosen:
        if key not in perfect:
            problems.append(f"metric '{key}' is not reported (it reports {', '.join(sorted(perfect))})")
        elif not np.isclose(perfect[key], 1.0):
            problems.append(f"{key} is {perfect[key]:g} with the labels as predictions, expected 1")
        elif corrupted.get(key, -np.inf) > perfect[key] + 1e-9:
            problems.append(f"{key} rose from {perfect[key]:g} to {corrupted[key]:g} when predictions were corrupted")
    present = [key for key in chosen if key in perfect and key in corrupted]
    if present and all(corrupted[key] >= perfect[key] - 1e-9 for key in present):
        problems.append(f"no score fell when one position of every row was wrong "
                        f"({', '.join(f'{key} = {corrupted[key]:g}' for key in present)})")
    drifted = [key for key in perfect if "accumulated" not in key and key in again
               and not np.isclose(perfect[key], again[key], equal_nan=True)]
    if drifted:
        problems.append(f"the same predictions scored differently in a later pass ({', '.join(drifted)}): "
                        "compute() must close the pass so that the next update() starts afresh")
    if problems:
        raise PluginCheckError(f"evaluator '{spec.name}' on {store.path}", problems)
    return {"perfect": perfect, "corrupted": corrupted}


# --------------------------------------------------------------------------------------------------------------
# Rendering and options
# --------------------------------------------------------------------------------------------------------------


def check_render(task: str | TaskSpec, store: Any, *, count: int = 16, host: Any = None) -> list[str]:
    """Render a store's rows and arbitrary predictions: text comes back, and different rows never look the same.

    Inputs and labels of up to ``count`` test (else train) examples, and as many rows of random tokens (a model's
    predictions can hold any token), must each render to a non-empty ``str`` with ``render(tokens, store.info)``;
    two different token rows rendering to the same text lose information and fail. Returns the rendered texts.
    A task without ``render`` passes with nothing rendered.
    """
    spec = _spec("tasks", task, host)
    if spec.render is None:
        return []
    info = store.info
    split = store.split("test" if store.has_split("test") else "train")
    rows = np.arange(min(count, split.num_examples))
    rng = np.random.default_rng(0)
    sequences = [np.asarray(split.inputs[rows]), np.asarray(split.labels[rows]),
                 rng.integers(0, info.vocab_size, size=(len(rows), info.seq_len))]
    problems, texts, seen = [], [], {}
    for block, what in zip(sequences, ("an input", "a label", "a random prediction")):
        for row in block:
            try:
                text = spec.render(row, info)
            except Exception as exc:
                problems.append(f"render failed on {what} {row.tolist()}: {type(exc).__name__}: {exc}")
                continue
            if not isinstance(text, str) or not text.strip():
                problems.append(f"render returned {text!r} for {what}; expected non-empty text")
                continue
            key = tuple(int(t) for t in row)
            if text in seen and seen[text] != key:
                problems.append(f"render drew two different rows the same way: {list(seen[text])} and {list(key)}")
            seen.setdefault(text, key)
            texts.append(text)
    if problems:
        raise PluginCheckError(f"task '{spec.name}': render", problems[:10])
    return texts


_WRONG_VALUES: dict[type, Any] = {int: "not a number", float: "not a number", str: [1, 2], bool: [1, 2]}


def check_options(plugin: str | Any, kind: str = "tasks", *, host: Any = None) -> list[str]:
    """Check an options class: it is a frozen attrs class, its defaults are valid, and mistakes get clear messages.

    An unknown key must be refused with its path and a suggestion, and a value of the wrong type for each int, float,
    str or bool option must be refused with a message naming that option. Returns warnings that do not fail the
    check (options without ``metadata={"help": ...}``, required options).
    """
    from trm.config import structure_options

    spec = _spec(kind, plugin, host)
    cls = spec.options_class
    what = f"{KIND_NOUNS.get(kind, kind)} '{spec.name}': options {getattr(cls, '__name__', cls)}"
    if not attrs.has(cls):
        raise PluginCheckError(what, ["the options class must be an attrs class (@attrs.frozen)"])
    problems, warnings = [], []
    if not _is_frozen(cls):
        problems.append("the options class must be frozen (@attrs.frozen): options are shared and must not change")
    fields = attrs.fields(cls)
    required = [f.name for f in fields if f.default is attrs.NOTHING]
    if required:
        warnings.append(f"required options (no default): {', '.join(required)}")
    else:
        try:
            structure_options(cls, {}, "$.options")
        except UserError as exc:
            problems.append(f"the default options are refused: {exc}")
    warnings += [f"option '{f.name}' has no help (metadata={{'help': ...}}); trm list shows it" for f in fields
                 if not f.metadata.get("help")]
    if fields:
        near = fields[0].name + "x"
        try:
            structure_options(cls, {near: 1}, "$.options")
            problems.append(f"an unknown key '{near}' was accepted")
        except UserError as exc:
            if f"$.options.{near}" not in str(exc):
                problems.append(f"an unknown key '{near}' was refused without naming it: {exc}")
    import typing

    try:
        hints = typing.get_type_hints(cls)
    except Exception:
        hints = {}
    for field in fields:
        kind_of = hints.get(field.name, field.type)
        if kind_of not in _WRONG_VALUES:
            continue
        try:
            structure_options(cls, {field.name: _WRONG_VALUES[kind_of]}, "$.options")
            problems.append(f"option '{field.name}' ({kind_of.__name__}) accepted {_WRONG_VALUES[kind_of]!r}")
        except UserError as exc:
            if f"$.options.{field.name}" not in str(exc):
                problems.append(f"option '{field.name}': the wrong-type message does not name it: {exc}")
    if problems:
        raise PluginCheckError(what, problems)
    return warnings


KIND_NOUNS = {"tasks": "task", "evaluators": "evaluator", "backbones": "backbone", "halting": "halting strategy"}


def _is_frozen(cls: type) -> bool:
    from attr._make import _frozen_setattrs  # what @attrs.frozen installs; attrs has no public query for it

    return getattr(cls, "__setattr__", None) is _frozen_setattrs

"""The records plugins return, and the protocols of what they build.

Every registration hook (see ``trm.hookspecs``) returns an iterable of one of the frozen records below. A record
carries a ``name`` (what recipes and the CLI call it), an ``options_class`` (a frozen attrs class; the recipe's
``options:`` mapping is structured into it strictly, so a typo fails with the plugin's name in the message), a
``build`` callable and a one-line ``summary``.

The protocols say what the built objects must do. The core only ever calls what is written here, so a plugin that
honours these signatures works whatever it does inside.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Protocol, TypedDict, runtime_checkable

import attrs

if TYPE_CHECKING:  # torch and numpy are heavy; the plugin host must import quickly.
    import numpy as np
    import torch


@attrs.frozen
class NoOptions:
    """Options class for a plugin that takes none."""


# --------------------------------------------------------------------------------------------------------------
# Backbones: the network f applied recursively by the engine.
# --------------------------------------------------------------------------------------------------------------


# model.recompute's values (docs/recipes.md): what the fast path computes again in backward instead of keeping.
RECOMPUTE_CHOICES = ("auto", "none", "swiglu")
# model.fused_swiglu's values: the MLP-mixer's token SwiGLU through trm/fused_swiglu.py (auto: on CUDA with Triton).
FUSED_SWIGLU_CHOICES = ("auto", "on", "off")


@attrs.frozen
class BackboneShape:
    """What the engine tells a backbone about the tensors it will see."""

    hidden_size: int  # D
    seq_len: int  # S = grid length L + puzzle-embedding prefix P
    prefix_len: int  # P (16 in the paper's configurations)
    # True when the run uses the fast path (model.path, docs/engine.md): a backbone may then build a faster
    # implementation with the same parameters and forward arithmetic; ignoring it is always correct.
    fast: bool = False
    # Fast path only (model.recompute, docs/recipes.md): "auto" (the backbone's cheap recomputations), "none", or
    # "swiglu" (every SwiGLU's gate_up computed again in backward: less memory, more matmul work).
    recompute: str = attrs.field(default="auto", validator=attrs.validators.in_(RECOMPUTE_CHOICES))
    # Fast path only (model.fused_swiglu, resolved for the device by the engine): True when a backbone may run its
    # SwiGLUs through trm.fused_swiglu (the gating inside the gate/up matmul, Triton on CUDA).
    fused_swiglu: bool = False


@runtime_checkable
class Backbone(Protocol):
    """A shape-preserving network ``f``: ``forward(h[B, S, D]) -> [B, S, D]``.

    The engine computes ``f(h, injection)`` as ``backbone(h + injection)``: the injection is added once, before the
    first block (docs/reference-code.md 3.3). ``embed_positions`` lets a backbone with learned absolute positions act on the
    input embedding; backbones without them return ``x`` unchanged.
    """

    def forward(self, hidden: "torch.Tensor") -> "torch.Tensor": ...

    def embed_positions(self, x: "torch.Tensor") -> "torch.Tensor": ...


# The build layer sets ``fast_path`` (bool) on every built backbone, the value of ``BackboneShape.fast``; the engine
# reads it to pick the loss. A backbone need not define it.


@attrs.frozen
class BackboneSpec:
    """A backbone plugin: ``build(options, shape) -> torch.nn.Module`` honouring :class:`Backbone`."""

    name: str
    options_class: type
    build: Callable[[Any, BackboneShape], Any]
    summary: str


# --------------------------------------------------------------------------------------------------------------
# Halting strategies: when a sample stops and what the halting head learns.
# --------------------------------------------------------------------------------------------------------------


@runtime_checkable
class HaltingStrategy(Protocol):
    """When a sample's supervision stops, and the loss that trains the halting head.

    ``max_steps`` is N_sup (16 in the paper). ``uses_next_q`` asks the engine for an extra no-grad forward on the new
    carry so that ``loss`` receives a bootstrapped ``target_q_continue`` (HRM-style Q-learning).
    """

    max_steps: int
    uses_next_q: bool

    def should_halt(
        self, steps: "torch.Tensor", q_halt: "torch.Tensor", q_continue: "torch.Tensor", training: bool,
        max_steps: int,
    ) -> "torch.Tensor": ...

    def halt_logit(self, q_halt: "torch.Tensor", q_continue: "torch.Tensor") -> "torch.Tensor":
        """The halting decision as a logit [B]: halt when > 0. Adaptive evaluation stops an example there (or
        where ``sigmoid(logit)`` exceeds a chosen confidence); return ``-inf`` to never stop early."""
        ...

    def target_q_continue(
        self, next_q_halt: "torch.Tensor", next_q_continue: "torch.Tensor", is_last: "torch.Tensor"
    ) -> "torch.Tensor": ...

    def loss(
        self, q_halt: "torch.Tensor", q_continue: "torch.Tensor", correct: "torch.Tensor",
        target_q_continue: "torch.Tensor | None",
    ) -> "torch.Tensor": ...


@runtime_checkable
class HaltingStrategyExtras(Protocol):
    """Members a :class:`HaltingStrategy` may add; the core uses each one a strategy has, else the fallback below.

    * ``loss_terms``: the halting loss as named terms, each logged on its own (``q_halt_loss``, ...); without it the
      training step calls ``loss`` and logs it as ``halt_loss`` (trm/losses.py).
    * ``halt_rule``: a short text of the rule (``"q_halt > 0"``) for model summaries; ``?`` without it.
    * ``halt_logit`` (declared on :class:`HaltingStrategy`): a strategy written before it existed is evaluated at
      fixed depth, with a note (trm/evaluate.py).
    """

    halt_rule: str

    def loss_terms(
        self, q_halt: "torch.Tensor", q_continue: "torch.Tensor", correct: "torch.Tensor",
        target_q_continue: "torch.Tensor | None",
    ) -> "dict[str, torch.Tensor]": ...


@attrs.frozen
class HaltingSpec:
    """A halting plugin: ``build(options) -> HaltingStrategy``."""

    name: str
    options_class: type
    build: Callable[[Any], HaltingStrategy]
    summary: str


# --------------------------------------------------------------------------------------------------------------
# Tasks: raw puzzles -> a dataset store.
# --------------------------------------------------------------------------------------------------------------


@attrs.frozen
class TaskDims:
    """The model-facing sizes a task's options imply, known before the store is built (``trm recipe show``)."""

    vocab_size: int
    seq_len: int  # L, the grid length (the engine adds the puzzle-embedding prefix)
    num_puzzle_identifiers: int | None  # including the blank id 0; None when only a built store knows it


@attrs.frozen
class SolveContext:
    """What a task's solving hooks are told about the model they serve (``trm solve``, trajectories)."""

    seq_len: int  # L, the grid length the model takes
    vocab_size: int
    identifier_names: list[str] | None  # the checkpoint's puzzle-identifier names (index = identifier)
    task_options: Any  # the run recipe's task options (structured into the task's options class)
    store_info: Any = None  # trm.store.StoreInfo of the run's store when it exists here, else None


@attrs.frozen
class Puzzle:
    """One puzzle as the model takes it: one row, or one row per augmented version the task votes over."""

    name: str  # how messages and ``--json`` name it (e.g. ``line 3``, ``<task id> test 0``)
    inputs: "np.ndarray"  # [V, L] input tokens
    identifiers: "np.ndarray"  # [V] puzzle identifiers
    label: "np.ndarray | None" = None  # [L] the known answer tokens, when the source gives one
    data: Any = None  # the task's own data for ``combine`` (ARC: how to undo each version)


@attrs.frozen
class Solution:
    """A puzzle's answer: tokens shaped like an input row (what ``render``, ``check_answer`` and ``draw`` take)."""

    tokens: "np.ndarray"  # [L]
    attempts: tuple["np.ndarray", ...] = ()  # the ranked candidates, ``tokens`` first (ARC: its two attempts)
    row: int = 0  # the input row whose trajectory stands for the puzzle (the un-augmented one)
    note: str = ""  # one line shown under the answer (ARC: the votes behind it)


@attrs.frozen
class TaskSpec:
    """A task plugin (docs/plugins.md, "TaskSpec", is the reference for every field).

    ``build(options, writer)`` reads the raw source named in ``options`` and writes every split through ``writer``
    (a ``trm.store_write.DatasetWriter``; tasks never touch zarr). ``version`` is recorded in every store the task
    builds; change it whenever ``build`` would write different data for the same options, so that stores built by the
    old code are reported as stale. ``render(tokens, info)`` turns one sequence of tokens (inputs, labels or
    predictions, a 1-D integer array of length L) into text; ``info`` is the store's :class:`trm.store.StoreInfo`, or
    ``None`` when no store is at hand. ``default_evaluators`` are used when a recipe names none. ``dims(options) ->
    TaskDims`` tells the sizes a build would have, so a model can be summarised without a store.

    Optional hooks for looking at a model (``trm solve``, trajectory pictures, ``trm data check-leakage``;
    docs/plugins.md "Solving and drawing"):

    * ``read_puzzles(text, context) -> list[Puzzle]``: the user's PUZZLE argument (a puzzle written inline, or a
      path to a file of one or many) as model rows; a puzzle the model cannot take raises ``UserError``.
    * ``combine(puzzle, preds [V, L], q_halt [V], context) -> Solution``: one answer from the rows of a puzzle
      (default: the first row's prediction).
    * ``check_answer(puzzle, tokens [L]) -> (valid, reason) | None``: whether an answer obeys the puzzle's rules,
      without a known answer (Sudoku's rules, a maze's shortest path); None when it cannot be judged.
    * ``draw(axes, tokens [L], inputs [L] | None, changed [L] | None, context)``: draw one sequence on a
      matplotlib ``Axes``, given the puzzle's ``inputs`` when ``tokens`` is an answer (None when drawing the input
      itself), outlining the ``changed`` cells (without it pictures fall back to a square grid of token colours).
    * ``canonical_input(tokens [L]) -> bytes``: equal for two inputs iff one is an augmentation of the other (the
      leakage check compares test inputs with training inputs under it, besides exactly).
    """

    name: str
    options_class: type
    build: Callable[[Any, Any], None]
    summary: str
    version: str = "1"
    default_evaluators: tuple[str, ...] = ()
    render: Callable[[Any, Any], str] | None = None
    dims: Callable[[Any], TaskDims] | None = None
    read_puzzles: Callable[[str, SolveContext], list[Puzzle]] | None = None
    combine: Callable[[Puzzle, Any, Any, SolveContext], Solution] | None = None
    check_answer: Callable[[Puzzle, Any], "tuple[bool, str] | None"] | None = None
    draw: Callable[[Any, Any, Any, Any, SolveContext], None] | None = None
    canonical_input: Callable[[Any], bytes] | None = None


# --------------------------------------------------------------------------------------------------------------
# Evaluators: predictions -> metrics (and artefacts such as a Kaggle submission).
# --------------------------------------------------------------------------------------------------------------


@attrs.frozen
class EvalContext:
    """What an evaluator is told when it is built (docs/plugins.md, "EvalContext")."""

    store_info: Any  # trm.store.StoreInfo of the evaluated store (metadata, identifier names, extras, task options)
    split: str  # the evaluated split, "test" unless the recipe's eval.split or `trm eval --split` says otherwise
    output_dir: Path | None  # where artefacts go; None when nothing should be written
    store_path: Path | None = None  # the store's directory


@attrs.frozen
class ArrayField:
    """One documented entry of an evaluation batch or of the model outputs handed to ``Evaluator.update``."""

    name: str
    dtype: str  # NumPy dtype name
    shape: str  # in terms of B (examples in this update, at most one global batch), L (grid length), V (vocabulary)
    meaning: str
    optional: bool = False  # present only when an evaluator asks for it (EvaluatorSpec.wants)


BATCH_FIELDS: tuple[ArrayField, ...] = (
    ArrayField("inputs", "int32", "[B, L]", "the question's tokens"),
    ArrayField("labels", "int64", "[B, L]", "the answer's tokens; -100 where the position is not supervised "
               "(the store's ignore_label_id)"),
    ArrayField("puzzle_identifiers", "int32", "[B]", "the puzzle identifier of each example; its name is "
               "context.store_info.identifier_names[id]"),
    ArrayField("valid", "bool", "[B]", "True for every row today (batches are not padded); honour it anyway: "
               "rows where it is False are padding to skip"),
)
"""The keys of ``batch`` in ``Evaluator.update(batch, outputs)``: docs/plugins.md lists the same ones."""

OUTPUT_FIELDS: tuple[ArrayField, ...] = (
    ArrayField("preds", "int64", "[B, L]", "the predicted token of every position (argmax of the logits) at the "
               "step where the row halted"),
    ArrayField("q_halt", "float32", "[B]", "the halting head's logit at that step (> 0: the model believes it is "
               "done; a confidence for ranking answers)"),
    ArrayField("steps", "int32", "[B]", "supervision steps the row used (1 .. max_steps)"),
    ArrayField("probabilities", "float32", "[B, L, V]", "softmax of the logits at that step; only when the "
               "evaluator's spec says wants=(\"probabilities\",)", optional=True),
    ArrayField("confidences", "float32", "[B, L]", "probability of the predicted token (the maximum of "
               "probabilities); only when the evaluator's spec says wants=(\"confidences\",)", optional=True),
)
"""The keys of ``outputs`` in ``Evaluator.update(batch, outputs)``; the optional ones only on request."""

OPTIONAL_OUTPUTS: tuple[str, ...] = tuple(field.name for field in OUTPUT_FIELDS if field.optional)


class EvalBatch(TypedDict):
    """``batch`` of ``Evaluator.update``: NumPy arrays of one global batch (see :data:`BATCH_FIELDS`)."""

    inputs: "np.ndarray"
    labels: "np.ndarray"
    puzzle_identifiers: "np.ndarray"
    valid: "np.ndarray"


class EvalOutputs(TypedDict, total=False):
    """``outputs`` of ``Evaluator.update``; ``probabilities`` and ``confidences`` only when asked for."""

    preds: "np.ndarray"
    q_halt: "np.ndarray"
    steps: "np.ndarray"
    probabilities: "np.ndarray"
    confidences: "np.ndarray"


@runtime_checkable
class Evaluator(Protocol):
    """Accumulates predictions of one evaluation pass and turns them into metrics.

    ``update`` receives NumPy arrays for one *global* batch (every process sees the same gathered batch): ``batch``
    holds :data:`BATCH_FIELDS`, ``outputs`` holds :data:`OUTPUT_FIELDS` (the optional ones only when the spec's
    ``wants`` names them). ``compute`` returns flat ``name -> float`` metrics and closes the evaluation pass: an
    evaluator is built once per run, so the next ``update`` starts a new pass (metrics that deliberately accumulate
    across passes, like ARC's reference-style voting, must say so in their names). ``write`` stores the last pass's
    artefacts in ``directory`` and returns their paths.
    """

    def update(self, batch: Mapping[str, "np.ndarray"], outputs: Mapping[str, "np.ndarray"]) -> None: ...

    def compute(self) -> dict[str, float]: ...

    def write(self, directory: Path) -> list[Path]: ...


def _as_names(value: Any) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _check_wants(instance: Any, attribute: Any, value: tuple[str, ...]) -> None:
    unknown = [name for name in value if name not in OPTIONAL_OUTPUTS]
    if unknown:
        raise ValueError(f"EvaluatorSpec '{instance.name}': wants {unknown} are not outputs trm can add; expected "
                         f"some of {', '.join(OPTIONAL_OUTPUTS)}")


@attrs.frozen
class EvaluatorSpec:
    """An evaluator plugin: ``build(options, context) -> Evaluator`` (docs/plugins.md, "EvaluatorSpec").

    ``wants`` names the optional outputs (``"probabilities"``, ``"confidences"``) this evaluator needs; they cost
    memory and time, so trm computes them only when some evaluator of the pass asks.
    """

    name: str
    options_class: type
    build: Callable[[Any, EvalContext], Evaluator]
    summary: str
    wants: tuple[str, ...] = attrs.field(default=(), converter=_as_names, validator=_check_wants)


PluginRecord = BackboneSpec | HaltingSpec | TaskSpec | EvaluatorSpec
Records = Iterable[PluginRecord]


# --------------------------------------------------------------------------------------------------------------
# The kinds of plugin: the one table the host, the CLI and the docs' checks read.
# --------------------------------------------------------------------------------------------------------------


@attrs.frozen
class PluginKind:
    """One kind of plugin: its name (as ``trm list KIND`` and recipes say it), its registration hook (in
    ``trm.hookspecs``), the noun messages use and the record class every item the hook returns must be."""

    name: str
    hook: str
    noun: str
    record: type


PLUGIN_KINDS: tuple[PluginKind, ...] = (
    PluginKind("backbones", "trm_backbones", "backbone", BackboneSpec),
    PluginKind("tasks", "trm_tasks", "task", TaskSpec),
    PluginKind("halting", "trm_halting_strategies", "halting strategy", HaltingSpec),
    PluginKind("evaluators", "trm_evaluators", "evaluator", EvaluatorSpec),
)

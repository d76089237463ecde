"""The recipe schema: one frozen attrs class per recipe section, and :class:`Recipe`, the whole recipe.

These are plain data with their validators (ranges, choices, a puzzle vector that fits its prefix); they import
nothing heavy, so ``trm --help`` stays fast. Reading a recipe (YAML, ``extends``, overrides, plugin options, every
problem at once) is trm/config.py's; docs/recipes.md is the reference for every key. A plugin section's ``options``
are a mapping here and the plugin's own options instance once the recipe is loaded.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import attrs


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@attrs.frozen
class PluginSection:
    """A plugin chosen by name, with options for that plugin's own options class."""

    name: str = attrs.field(metadata=_help("registered name of the plugin (see `trm list ...`)"))
    options: Any = attrs.field(factory=dict, metadata=_help("options of that plugin (see `trm list ...`)"))


@attrs.frozen
class DataConfig:
    store: str = attrs.field(metadata=_help(
        "the zarr dataset store: a path, relative ones under the data root (TRM_DATA_ROOT, default ./data)"))
    build_if_missing: bool = attrs.field(
        default=False, metadata=_help("build the store from the task options when it does not exist yet (new runs only)")
    )
    match_task_options: bool = attrs.field(
        default=True, metadata=_help("refuse a store built with other task options than task.options; false: "
                                     "train on it anyway (the differences are recorded in the run's history.jsonl)")
    )


# Range checks: a value outside its range is a recipe problem that `trm recipe validate` reports with its path,
# not a ZeroDivisionError, a hang or a silently empty run later.
_at_least_one = attrs.validators.ge(1)  # counts: "must be >= 1" reads better than "must be > 0"
_non_negative = attrs.validators.ge(0)
_fraction = attrs.validators.and_(attrs.validators.ge(0), attrs.validators.le(1))


def _maybe(validator: Any) -> Any:
    """``validator`` for a key that may also be null."""
    return attrs.validators.optional(validator)


def _open_unit_interval(_instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not 0 < value < 1:
        raise ValueError(f"must be > 0 and < 1 (got {value})")


def _betas(_instance: Any, _attribute: attrs.Attribute, value: tuple[float, float]) -> None:
    if not all(0 <= beta < 1 for beta in value):
        raise ValueError(f"each beta must be >= 0 and < 1 (got {list(value)})")


@attrs.frozen
class OptimConfig:
    name: Literal["adam_atan2", "adamw", "muon"] = attrs.field(
        default="adam_atan2", metadata=_help("dense optimizer: adam_atan2 (the reference's), adamw (the paper's text) "
                                             "or muon (Muon on the backbone's matrices, adam_atan2 on the rest; "
                                             "not the paper's)")
    )
    lr: float = attrs.field(
        default=1e-4, validator=_non_negative,
        metadata=_help("dense learning rate after warm-up (with muon: of the non-matrix parameters)")
    )
    betas: tuple[float, float] = attrs.field(default=(0.9, 0.95), validator=_betas, metadata=_help("Adam betas"))
    weight_decay: float = attrs.field(
        default=1.0, validator=_non_negative,
        metadata=_help("decoupled weight decay of every dense parameter (with muon: of the non-matrix ones)")
    )
    # Muon (trm/muon.py) for the backbone's weight matrices when name is muon; lr, betas and weight_decay above
    # then apply to the other dense parameters. 0.02 and 0.95 are Keller Jordan's defaults for his update scale.
    muon_lr: float = attrs.field(
        default=0.02, validator=_non_negative,
        metadata=_help("Muon learning rate of the backbone's weight matrices after warm-up (name: muon)"),
    )
    muon_momentum: float = attrs.field(
        default=0.95, validator=attrs.validators.and_(_non_negative, attrs.validators.lt(1)),
        metadata=_help("Muon's Nesterov momentum mu, in [0, 1) (name: muon)"),
    )
    # 0.005: at muon_lr 0.02 the per-step shrink lr x wd is 1e-4, the paper's (lr 1e-4 x weight_decay 1.0);
    # weight_decay 1.0 itself would shrink the matrices by 2% a step.
    muon_weight_decay: float = attrs.field(
        default=0.005, validator=_non_negative,
        metadata=_help("decoupled weight decay of the Muon matrices: W <- W (1 - muon_lr x this) (name: muon)"),
    )
    puzzle_emb_lr: float = attrs.field(
        default=1e-4, validator=_non_negative, metadata=_help("sign-SGD learning rate of the puzzle embeddings")
    )
    puzzle_emb_weight_decay: float = attrs.field(
        default=1.0, validator=_non_negative,
        metadata=_help("decoupled decay of the puzzle-embedding rows a batch touches"),
    )
    warmup_steps: int = attrs.field(
        default=2000, validator=_non_negative, metadata=_help("linear warm-up steps (every optimizer)")
    )
    schedule: Literal["constant", "cosine"] = attrs.field(
        default="constant", metadata=_help("after warm-up: constant (the reference) or cosine to lr_min_ratio")
    )
    lr_min_ratio: float = attrs.field(
        default=1.0, validator=_fraction, metadata=_help("final LR / base LR for the cosine schedule, in [0, 1]")
    )


def _fraction_below_one(_instance: object, _attribute: attrs.Attribute, value: float) -> None:
    if not 0 < value < 1:
        raise ValueError(f"must be > 0 and < 1: a fraction of the run's optimizer steps (got {value})")


@attrs.frozen
class DepthPhase:
    """One phase of ``train.depth_curriculum`` (trm/curriculum.py): until ``until`` x the run's optimizer steps,
    train with T = ``h_cycles`` and n = ``l_cycles``."""

    until: float = attrs.field(validator=_fraction_below_one,
                               metadata=_help("end of the phase as a fraction of the run's optimizer steps, 0 < until < 1"))
    h_cycles: int = attrs.field(validator=attrs.validators.ge(1), metadata=_help("T during the phase"))
    l_cycles: int = attrs.field(validator=attrs.validators.ge(1), metadata=_help("n during the phase"))


def check_phases(phases: Sequence[DepthPhase]) -> None:
    """Raise ValueError unless the phases end in increasing order."""
    ends = [phase.until for phase in phases]
    if any(later <= earlier for earlier, later in zip(ends, ends[1:])):
        raise ValueError(f"phases must end in increasing order of 'until' (got {ends})")


@attrs.frozen
class TrainConfig:
    global_batch_size: int = attrs.field(
        default=768, validator=_at_least_one,
        metadata=_help("examples per optimizer step, over all processes and accumulation steps"),
    )
    per_device_batch_size: int | None = attrs.field(
        default=None, validator=_maybe(_at_least_one),
        metadata=_help("examples per process per forward; default global / processes (no accumulation)"),
    )
    epochs: int = attrs.field(
        default=50000, validator=_at_least_one,
        metadata=_help("passes over the groups (one version of each per epoch)"),
    )
    max_steps: int | None = attrs.field(
        default=None, validator=_maybe(_at_least_one), metadata=_help("stop after this many optimizer steps")
    )
    ema: float | None = attrs.field(  # 1 would freeze the EMA copy at initialisation
        default=0.999, validator=_maybe(attrs.validators.and_(_non_negative, attrs.validators.lt(1))),
        metadata=_help("EMA rate of the dense weights, in [0, 1); null disables"),
    )
    compile: Literal["auto", "on", "off"] = attrs.field(
        default="auto", metadata=_help("torch.compile the supervision step: auto = on CUDA only")
    )
    seed: int = attrs.field(  # NumPy's seeding (accelerate's set_seed) takes 0 <= seed < 2**32
        default=0, validator=attrs.validators.and_(_non_negative, attrs.validators.lt(2**32)),
        metadata=_help("seed of initialisation, sampling and exploration"),
    )
    log_every: int = attrs.field(
        default=50, validator=_at_least_one, metadata=_help("optimizer steps between metric log lines")
    )
    checkpoint_every: int | None = attrs.field(
        default=None, validator=_maybe(_at_least_one),
        metadata=_help("optimizer steps between checkpoints; default: at every evaluation"),
    )
    keep_checkpoints: int | None = attrs.field(
        default=3, validator=_maybe(_at_least_one),
        metadata=_help("checkpoints kept: the latest N, plus the best by the first evaluator's first metric; "
                       "null keeps all"),
    )
    depth_curriculum: list[DepthPhase] = attrs.field(
        factory=list, metadata=_help("shallower recursion early in training: phases {until, h_cycles, l_cycles}, "
                                     "until = fraction of the run's optimizer steps; then the model's own T and n "
                                     "(docs/training.md, \"Depth curriculum\")"),
    )

    @depth_curriculum.validator
    def _phases_in_order(self, _attribute: attrs.Attribute, value: list[DepthPhase]) -> None:
        check_phases(value)


@attrs.frozen
class EvalConfig:
    every: int | None = attrs.field(  # 0 is refused rather than read as null: say null to mean "only at the end"
        default=5000, validator=_maybe(_at_least_one),
        metadata=_help("epochs between evaluations (>= 1); null: only at the end"),
    )
    evaluators: list[PluginSection] | None = attrs.field(
        default=None, metadata=_help("evaluators (names or {name, options}); default: the task's")
    )
    split: str = attrs.field(default="test", metadata=_help("split of the store to evaluate"))
    limit: int | None = attrs.field(
        default=None, validator=_maybe(_at_least_one),
        metadata=_help("evaluate a fixed random subset of this many examples"),
    )
    batch_size: int | None = attrs.field(
        default=None, validator=_maybe(_at_least_one), metadata=_help("global evaluation batch; default: training's")
    )
    max_steps: int | None = attrs.field(
        default=None, validator=_maybe(_at_least_one),
        metadata=_help("the depth cap (adaptive) or the depth (fixed) at evaluation; may exceed training's "
                       "(test-time depth); default: the halting strategy's max_steps"),
    )
    halting: str = attrs.field(
        default="adaptive", validator=attrs.validators.in_(("adaptive", "fixed")),
        metadata=_help("adaptive: each example stops when the halting rule says so (or at max_steps); fixed: "
                       "every example runs max_steps (the paper's evaluation)"),
    )
    halt_threshold: float | None = attrs.field(
        default=None, validator=_maybe(_open_unit_interval),
        metadata=_help("adaptive only: stop when the halting confidence sigmoid(halt logit) exceeds this "
                       "(0 < p < 1); null: the strategy's own rule (p = 0.5)"),
    )
    final_whole_split: bool = attrs.field(
        default=False, metadata=_help("the final evaluation (at the end of `trm run`) uses the whole split even when "
                                      "eval.limit makes the periodic ones use a subset"),
    )


@attrs.frozen
class RunConfig:
    dir: str = attrs.field(default="runs", metadata=_help("parent directory of run directories"))
    name: str | None = attrs.field(default=None, metadata=_help("run directory name; default: recipe name + time"))


@attrs.frozen
class ModelConfig:
    """The recipe's ``model:`` section: sizes of the recursion and the loss (docs/reference-code.md 3.1)."""

    hidden_size: int = attrs.field(default=512, validator=attrs.validators.ge(1), metadata={"help": "D: width of x, y and z"})
    h_cycles: int = attrs.field(default=3, validator=attrs.validators.ge(1),
                                metadata={"help": "T in the paper: cycles per supervision step (T - 1 without grad)"})
    l_cycles: int = attrs.field(default=6, validator=attrs.validators.ge(1),
                                metadata={"help": "n in the paper: latent updates z <- f(z, y + x) per cycle"})
    puzzle_emb_len: int = attrs.field(default=16, validator=attrs.validators.ge(0),
                                      metadata={"help": "P: prefix slots before the grid; the puzzle vector fills the first ones"})
    puzzle_emb_dim: int = attrs.field(default=512, validator=attrs.validators.ge(0),
                                      metadata={"help": "width of the learned per-puzzle vector; 0 disables it"})
    forward_dtype: str = attrs.field(
        default="auto", validator=attrs.validators.in_(("auto", "bfloat16", "float32")),
        metadata={"help": "compute dtype: auto = bfloat16 on CUDA, float32 on CPU; weights stay fp32"})
    loss: str = attrs.field(default="stablemax", validator=attrs.validators.in_(("stablemax", "softmax")),
                            metadata={"help": "token loss: stablemax (the reference's, in fp64) or softmax"})
    halt_loss_weight: float = attrs.field(default=0.5, validator=attrs.validators.ge(0),
                                          metadata={"help": "weight of the halting loss beside the token loss"})
    path: str = attrs.field(
        default="auto", validator=attrs.validators.in_(("auto", "fast", "faithful")),
        metadata={"help": "faithful: the paper code's arithmetic exactly; fast: the same model with less saved for "
                          "backward and a float32 loss (docs/engine.md); auto: fast on CUDA, faithful elsewhere"})

    recompute: str = attrs.field(
        default="auto", validator=attrs.validators.in_(("auto", "none", "swiglu")),  # = trm.types.RECOMPUTE_CHOICES
        metadata={"help": "fast path only (ignored by the faithful path): what backward computes again instead of "
                          "keeping. auto: the MLP-mixer's token SwiGLU (H200, Sudoku-MLP: 0.50x the faithful "
                          "path's memory at its speed); none: fastest; swiglu: every SwiGLU's gate_up (least "
                          "memory, slowest); docs/performance.md"})
    fused_swiglu: str = attrs.field(
        default="off", validator=attrs.validators.in_(("auto", "on", "off")),  # = trm.types.FUSED_SWIGLU_CHOICES
        metadata={"help": "fast path only: the MLP-mixer's token SwiGLU with its gating inside the gate/up matmul "
                          "(one Triton kernel forward and one backward, keeping only the input). off (default): "
                          "torch's kernels; auto: the Triton kernels on CUDA when Triton is installed; on: the "
                          "same, an error where they cannot run; docs/engine.md"})

    @puzzle_emb_dim.validator
    def _fits_the_prefix(self, _attribute: attrs.Attribute, value: int) -> None:
        # The vector is laid out over the P prefix slots of width D; checked here so that `trm recipe validate`
        # reports it, not the model build. Skipped while D or P are themselves out of range (reported already).
        slots = self.puzzle_emb_len * self.hidden_size
        if self.hidden_size > 0 and self.puzzle_emb_len >= 0 and value > slots:
            raise ValueError(f"'puzzle_emb_dim' must be <= puzzle_emb_len x hidden_size = {self.puzzle_emb_len} x "
                             f"{self.hidden_size} = {slots} (got {value})")


@attrs.frozen
class Recipe:
    """A whole recipe: the task, its store, the backbone and halting plugins, and the settings of each phase."""

    task: PluginSection = attrs.field(metadata=_help("the task plugin and its build options"))
    data: DataConfig = attrs.field(metadata=_help("where the dataset store lives"))
    backbone: PluginSection = attrs.field(metadata=_help("the network f and its options"))
    halting: PluginSection = attrs.field(
        factory=lambda: PluginSection("act_q"), metadata=_help("halting strategy and its options")
    )
    model: ModelConfig = attrs.field(factory=ModelConfig, metadata=_help("the recursion"))
    optim: OptimConfig = attrs.field(factory=OptimConfig, metadata=_help("optimizers and LR schedule"))
    train: TrainConfig = attrs.field(factory=TrainConfig, metadata=_help("training loop"))
    eval: EvalConfig = attrs.field(factory=EvalConfig, metadata=_help("evaluation"))
    run: RunConfig = attrs.field(factory=RunConfig, metadata=_help("run directory"))
    plugins: list[str] = attrs.field(factory=list, metadata=_help("one-off plugin .py files (relative to recipe)"))
    description: str = attrs.field(default="", metadata=_help("free text shown by `trm recipe show`"))

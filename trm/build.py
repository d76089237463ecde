"""From a validated recipe to live objects: the store, the task's sizes, the backbone, halting strategy and model;
a trained model from a checkpoint (:func:`model_from_checkpoint`: the one place weights are loaded into a model);
and everything a training run is made of (:func:`build_run`: the :class:`RunParts` the Trainer receives).

Shared by ``trm run``, ``trm eval``, ``trm solve``, ``trm recipe show``, ``trm convert`` and the Python API, so that
every path builds and loads the model the same way. Plugins are looked up by name here, at build time; nothing here runs inside the training step.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import attrs
import torch
from accelerate.utils import set_seed

from trm import distributed
from trm.checkpoint import load_weights, read_checkpoint
from trm.data import BatchPlan, TrainLoader, plan_batches
from trm.engine import TinyRecursiveModel, model_summary
from trm.errors import PluginError, UserError
from trm.fetch import resolve_task_options
from trm.optim import EMA, SparseSignSGD, build_optimizers
from trm.plugins import get_host, registry
from trm.recipe import ModelConfig, Recipe
from trm.store import Store, open_store
from trm.store_write import build_store
from trm.types import BackboneShape, HaltingStrategy, TaskDims

if TYPE_CHECKING:
    from accelerate import Accelerator


def open_recipe_store(recipe: Recipe, *, build: bool = True, show_progress: bool = True) -> Store:
    """The recipe's dataset store, built first from the task options when missing and ``data.build_if_missing``."""
    path = Path(recipe.data.store)
    if not path.exists():
        if not (build and recipe.data.build_if_missing):
            # data.build_if_missing is the remedy only where a store may be built (trm run); elsewhere it is not
            alternative = " or set data.build_if_missing: true" if build else ""
            raise UserError(
                f"{path}: dataset store not found; build it with `trm augment {recipe.task.name} --out {path} ...`"
                f"{alternative}"
            )
        task = registry("tasks").get(recipe.task.name)
        options = resolve_task_options(recipe.task.options, show_progress=show_progress)  # source: fetch:NAME
        print(f"building the dataset store {path} from task '{task.name}' (data.build_if_missing)", flush=True)
        build_store(task, options, path, show_progress=show_progress)
    store = open_store(path, expect_task=recipe.task.name)
    _note_other_builder_version(store)
    return store


_noted: set[str] = set()


def _note_other_builder_version(store: Store) -> None:
    """Say once per store when the installed task's ``version`` differs from the one that built it (plugins.md)."""
    info = store.info
    if str(store.path) in _noted or not distributed.is_main() or info.task not in registry("tasks"):
        return
    installed = str(registry("tasks").get(info.task).version)
    if installed != info.builder_version:
        _noted.add(str(store.path))
        print(f"note: {store.path} was built by version {info.builder_version} of task '{info.task}', the installed "
              f"one is version {installed}; it is used as it is, rebuild it with `trm augment {info.task} --out "
              f"{store.path} --overwrite ...` to get the new version's data", file=sys.stderr, flush=True)


def task_dims(recipe: Recipe) -> tuple[TaskDims, str]:
    """Vocabulary, grid length and identifier count: from the store when it exists, else from the task's options."""
    path = Path(recipe.data.store)
    if path.exists():
        store = open_recipe_store(recipe, build=False)
        info = store.info
        return info.dims, f"store {path}"
    task = registry("tasks").get(recipe.task.name)
    if task.dims is None:
        raise UserError(f"{path}: store not built and task '{task.name}' cannot tell its sizes without it")
    dims = task.dims(recipe.task.options)
    if not isinstance(dims, TaskDims):
        owner = registry("tasks").owner(task.name)
        raise PluginError(f"plugin {get_host().describe(owner)}: task '{task.name}': dims(options) returned "
                          f"{type(dims).__name__}, expected trm.types.TaskDims")
    return dims, f"task '{task.name}' options (store not built yet)"


def build_halting(recipe: Recipe) -> HaltingStrategy:
    return registry("halting").get(recipe.halting.name).build(recipe.halting.options)


def uses_fast_path(path: str, device: torch.device) -> bool:
    """``model.path``: ``auto`` is the fast path on CUDA and the faithful one elsewhere (docs/engine.md)."""
    return path == "fast" or (path == "auto" and device.type == "cuda")


def uses_fused_swiglu(setting: str, fast: bool, device: torch.device) -> bool:
    """``model.fused_swiglu`` for a model built on ``device``: ``auto`` is on for the fast path on CUDA when Triton
    is installed; ``on`` there too, and a :class:`UserError` for a fast path elsewhere; the faithful path ignores it,
    as it ignores ``model.recompute`` (docs/engine.md, F4)."""
    from trm import fused_swiglu

    if not fast or setting == "off":
        return False
    possible = device.type == "cuda" and fused_swiglu.AVAILABLE
    if setting == "on" and not possible:
        why = f"it runs on CUDA only (this model is built on {device.type})" if device.type != "cuda" else \
            "Triton is not installed (it comes with torch's CUDA builds)"
        raise UserError(f"model.fused_swiglu: on, but {why}; use auto or off")
    return possible


def build_model(recipe: Recipe, dims: TaskDims, *, dtype: torch.dtype | None = None,
                path: str | None = None) -> TinyRecursiveModel:
    """The TinyRecursiveModel of ``recipe`` for a task of ``dims`` (created on the current default device).

    ``path`` overrides ``model.path`` (``trm bench --compare`` builds both).
    """
    model_cfg = recipe.model
    device = torch.get_default_device()
    fast = uses_fast_path(path or model_cfg.path, device)
    shape = BackboneShape(
        hidden_size=model_cfg.hidden_size,
        seq_len=dims.seq_len + model_cfg.puzzle_emb_len,
        prefix_len=model_cfg.puzzle_emb_len,
        fast=fast,
        recompute=model_cfg.recompute,
        fused_swiglu=uses_fused_swiglu(model_cfg.fused_swiglu, fast, device),
    )
    try:  # settings that are valid alone but not together (e.g. heads not dividing the width) surface here
        backbone = registry("backbones").get(recipe.backbone.name).build(recipe.backbone.options, shape)
        backbone.fast_path = fast
        return TinyRecursiveModel(
            model_cfg,
            backbone,
            build_halting(recipe),
            vocab_size=dims.vocab_size,
            seq_len=dims.seq_len,
            num_puzzle_identifiers=dims.num_puzzle_identifiers or 1,
            dtype=dtype if dtype is not None else forward_dtype(model_cfg.forward_dtype, torch.device("cpu")),
        )
    except ValueError as exc:
        raise UserError(f"model/backbone settings do not fit together: {exc}") from None


def forward_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto`` is bfloat16 on CUDA and float32 elsewhere (the reference computes in bf16 on GPU)."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"bfloat16": torch.bfloat16, "float32": torch.float32}[name]


def recipe_summary(recipe: Recipe) -> list[str]:
    """The model summary printed by ``trm recipe show``: built on the meta device, so no memory is used."""
    dims, source = task_dims(recipe)
    with torch.device("meta"):
        model = build_model(recipe, dims, dtype=torch.float32)
    lines = [f"sizes from {source}: vocabulary {dims.vocab_size}, grid length {dims.seq_len}"]
    lines += model_summary(model)
    if dims.num_puzzle_identifiers is None:
        lines.append("puzzle identifiers: known once the store is built (the table above assumes 1 row)")
    return lines


def load_trained_model(checkpoint: Path, recipe: Recipe, dims: TaskDims, device: torch.device, *,
                       use_ema: bool = True) -> tuple[TinyRecursiveModel, dict[str, Any]]:
    """The recipe's model with the checkpoint's weights (EMA ones written over the live ones when asked)."""
    parts = read_checkpoint(checkpoint, map_location=device)
    return model_from_checkpoint(parts, recipe, dims, device, use_ema=use_ema, source=checkpoint), parts


def model_from_checkpoint(parts: dict[str, Any], recipe: Recipe, dims: TaskDims, device: torch.device, *,
                          use_ema: bool = True, source: Path = Path("checkpoint")) -> TinyRecursiveModel:
    """Build the recipe's model on ``device`` from read checkpoint ``parts``, in eval mode (EMA weights if asked).
    Weights that do not fit the recipe (an override of its shape) are a :class:`UserError` naming ``source``."""
    with torch.device(device):
        model = build_model(recipe, dims, dtype=forward_dtype(recipe.model.forward_dtype, device))
    load_weights(model, parts["model"], source,
                 "overrides of a trained model cannot change model.* or backbone.* settings that shape its weights")
    if use_ema and parts["ema"] is not None:
        with torch.no_grad():
            params = dict(model.named_parameters())
            for name, value in parts["ema"].items():
                params[name].copy_(value)
    model.eval()
    return model


def assemble(config: ModelConfig, backbone: str, backbone_options: Any = None, halting: str = "act_q",
             halting_options: Any = None, *, vocab_size: int, seq_len: int, num_puzzle_identifiers: int = 1,
             dtype: torch.dtype = torch.float32, fast: bool = False) -> TinyRecursiveModel:
    """A model from plugin names and options (an options instance or a dict of keyword arguments).

    A convenience for benchmarks, tests and notebooks; ``trm run`` builds from a recipe (:func:`build_model`).
    """
    def options_of(spec: Any, options: Any) -> Any:
        if options is None or isinstance(options, dict):
            return spec.options_class(**(options or {}))
        return options

    backbone_spec = registry("backbones").get(backbone)
    halting_spec = registry("halting").get(halting)
    shape = BackboneShape(hidden_size=config.hidden_size, seq_len=seq_len + config.puzzle_emb_len,
                          prefix_len=config.puzzle_emb_len, fast=fast, recompute=config.recompute,
                          fused_swiglu=uses_fused_swiglu(config.fused_swiglu, fast, torch.get_default_device()))
    network = backbone_spec.build(options_of(backbone_spec, backbone_options), shape)
    network.fast_path = fast
    strategy = halting_spec.build(options_of(halting_spec, halting_options))
    return TinyRecursiveModel(config, network, strategy, vocab_size=vocab_size, seq_len=seq_len,
                              num_puzzle_identifiers=num_puzzle_identifiers, dtype=dtype)


def checkpoint_dims(parts: dict[str, Any], recipe: Recipe) -> TaskDims:
    """The task sizes read checkpoint ``parts`` were written for: the ones it records, else (checkpoints that record
    none) the table sizes of its weights, with the grid length from the recipe's store or task options."""
    state = parts["state"] or {}
    if isinstance(state, dict) and state.get("dims"):
        return TaskDims(**state["dims"])
    weights = parts["model"]
    known, _ = task_dims(recipe)
    table = weights.get("puzzle_emb.weights")
    return TaskDims(weights["embed_tokens.weight"].shape[0], known.seq_len, table.shape[0] if table is not None else 1)


# Graphs torch keeps per compiled code object (so per model class): (training, evaluation) x the depth-curriculum
# phases x the batch shapes, with room to spare; past torch's default of 8 the model would run eagerly (with only a
# logged warning).
RECOMPILE_LIMIT = 32


def compiled_for(model: torch.nn.Module, setting: str, device: torch.device, *,
                 backend: str | Callable[..., Any] = "inductor") -> Any:
    """``model`` under torch.compile when ``train.compile`` says so (auto: on CUDA only), else ``model`` itself.

    Training and ``trm eval`` both call the model through this, so an evaluation of a checkpoint runs the same
    compiled kernels as the run's own evaluations and gets the same numbers (docs/engine.md, "Compilation").
    Shapes are static: by default a second batch shape (the evaluation batch after the training one) would make
    torch compile a graph for any batch size, whose kernels round differently from the static graph a fresh
    ``trm eval`` compiles, and later training phases would run that dynamic graph too. ``backend`` is
    torch.compile's (tests pass a tracing one).
    """
    if setting == "on" or (setting == "auto" and device.type == "cuda"):
        config = torch._dynamo.config
        name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"  # torch < 2.7
        setattr(config, name, max(getattr(config, name), RECOMPILE_LIMIT))
        return torch.compile(model, dynamic=False, backend=backend)
    return model


@attrs.frozen
class RunParts:
    """What one training run is made of, built once by :func:`build_run` and handed to the Trainer."""

    store: Store
    dims: TaskDims
    plan: BatchPlan  # how the global batch spreads over processes and accumulation steps
    dtype: torch.dtype  # the compute dtype
    model: TinyRecursiveModel
    step_model: Callable[..., Any]  # what the training step calls: the model, compiled when train.compile says so
    dense_opt: torch.optim.Optimizer
    sparse_opt: SparseSignSGD | None  # sign-SGD for the puzzle-embedding table, when the model has one
    ema: EMA | None
    loader: TrainLoader  # this process's share of the training batches


def build_run(recipe: Recipe, accelerator: Accelerator, *, build_store: bool = True,
              show_progress: bool = True) -> RunParts:
    """The parts of a training run of ``recipe`` on ``accelerator``'s processes, the same weights on every process.

    The batch plan comes first (a batch that does not divide fails before any store is built); the main process
    opens the store first, building it when missing and ``build_store`` (a resume never builds: a store rebuilt
    now could differ from the one the run trained on), and the others open it once it is there.
    """
    train = recipe.train
    plan = plan_batches(train.global_batch_size, accelerator.num_processes, train.per_device_batch_size)
    with accelerator.main_process_first():
        store = open_recipe_store(recipe, build=build_store and accelerator.is_main_process,
                                  show_progress=show_progress)
    dims = store.info.dims
    set_seed(train.seed)  # same seed on every process: identical initial weights without a broadcast
    dtype = forward_dtype(recipe.model.forward_dtype, accelerator.device)
    with torch.device(accelerator.device):
        model = build_model(recipe, dims, dtype=dtype)
    model.train()
    # Exploration draws must differ between processes (the reference seeds torch with seed + rank).
    torch.manual_seed(train.seed + accelerator.process_index)
    dense_opt, sparse_opt = build_optimizers(model, recipe.optim)
    ema = EMA(model, train.ema) if train.ema is not None else None
    loader = TrainLoader(store.split("train"), global_batch_size=plan.global_batch, rank=accelerator.process_index,
                         world_size=accelerator.num_processes, seed=train.seed,
                         ignore_label_id=store.info.ignore_label_id)
    return RunParts(store=store, dims=dims, plan=plan, dtype=dtype, model=model,
                    step_model=compiled_for(model, train.compile, accelerator.device), dense_opt=dense_opt,
                    sparse_opt=sparse_opt, ema=ema, loader=loader)

"""``trm eval``: load a run's checkpoint (EMA weights by default) and evaluate it on a store split."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs
import torch

from trm.build import build_model, forward_dtype, open_recipe_store
from trm.checkpoint import find_checkpoint, read_checkpoint
from trm.config import load_recipe
from trm.errors import UserError
from trm.evaluate import build_evaluators, evaluate
from trm.plugins import get_host
from trm.types import TaskDims


def run_dir_of(checkpoint: Path) -> Path:
    """The run directory a checkpoint belongs to (``RUN/checkpoints/step_N`` -> ``RUN``)."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint


def load_trained_model(checkpoint: Path, recipe: Any, dims: TaskDims, device: torch.device, *, use_ema: bool = True) -> Any:
    """The recipe's model with the checkpoint's weights (EMA ones written over the live ones when asked)."""
    parts = read_checkpoint(checkpoint, map_location=device)
    return model_from_checkpoint(parts, recipe, dims, device, use_ema=use_ema), parts


def model_from_checkpoint(parts: dict[str, Any], recipe: Any, dims: TaskDims, device: torch.device, *,
                          use_ema: bool = True) -> Any:
    """Build the recipe's model on ``device`` from read checkpoint ``parts``, in eval mode (EMA weights if asked)."""
    with torch.device(device):
        model = build_model(recipe, dims, dtype=forward_dtype(recipe.model.forward_dtype, device))
    model.load_state_dict(parts["model"])
    if use_ema and parts["ema"] is not None:
        with torch.no_grad():
            params = dict(model.named_parameters())
            for name, value in parts["ema"].items():
                params[name].copy_(value)
    model.eval()
    return model


def check_eval_options(*, max_steps: int | None, limit: int | None, batch_size: int | None,
                       out: Path | None) -> None:
    """Refuse bad ``trm eval`` options before any loading: counts below 1, an --out in a missing directory."""
    for option, value in (("--max-steps", max_steps), ("--limit", limit), ("--batch-size", batch_size)):
        if value is not None and value < 1:  # 0 used to fall back to the recipe's value, negatives ran 0 steps
            raise UserError(f"{option}: must be >= 1 (got {value})")
    if out is not None and not out.parent.is_dir():  # found only after the whole evaluation otherwise
        raise UserError(f"--out {out}: no such directory {out.parent}")


def evaluate_checkpoint(target: Path, overrides: tuple[str, ...], *, split: str | None, max_steps: int | None,
                        limit: int | None, batch_size: int | None, use_ema: bool, allow_other_store: bool,
                        show_progress: bool, out: Path | None) -> tuple[dict[str, float], Path, list[Path]] | None:
    from accelerate import Accelerator

    check_eval_options(max_steps=max_steps, limit=limit, batch_size=batch_size, out=out)
    checkpoint = find_checkpoint(target)
    run_dir = run_dir_of(checkpoint)
    saved = run_dir / "recipe.yaml"
    if not saved.exists():
        raise UserError(f"{run_dir}: no recipe.yaml beside the checkpoint; evaluate a run directory written by trm run")
    recipe = load_recipe(saved, overrides)
    if split is not None or limit is not None or batch_size is not None or max_steps is not None:
        recipe = attrs.evolve(recipe, eval=attrs.evolve(
            recipe.eval,
            split=split if split is not None else recipe.eval.split,
            limit=limit if limit is not None else recipe.eval.limit,
            batch_size=batch_size if batch_size is not None else recipe.eval.batch_size,
            max_steps=max_steps if max_steps is not None else recipe.eval.max_steps,
        ))
    from trm.train import cpu_processes

    accelerator = Accelerator(cpu=cpu_processes())
    store = open_recipe_store(recipe, build=False)
    info = store.info
    dims = TaskDims(info.vocab_size, info.seq_len, info.num_puzzle_identifiers)
    model, parts = load_trained_model(checkpoint, recipe, dims, accelerator.device, use_ema=use_ema)
    trained_on = parts["state"]["fingerprint"]
    if trained_on != info.fingerprint and not allow_other_store:
        raise UserError(
            f"{checkpoint}: trained on a dataset with fingerprint {trained_on}, but {recipe.data.store} has "
            f"{info.fingerprint}; pass --allow-other-store to evaluate on it anyway"
        )
    if not store.has_split(recipe.eval.split):
        raise UserError(f"{recipe.data.store}: has no '{recipe.eval.split}' split")
    step = int(parts["state"]["step"])
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    artefacts = run_dir / "eval" / f"trm-eval-step_{step}-{stamp}"
    evaluators = build_evaluators(recipe, store, artefacts)
    steps = recipe.eval.max_steps if recipe.eval.max_steps is not None else model.halting.max_steps
    batch = recipe.eval.batch_size if recipe.eval.batch_size is not None else recipe.train.global_batch_size
    metrics = evaluate(model, store.split(recipe.eval.split), evaluators, accelerator=accelerator,
                       global_batch_size=batch, max_steps=steps,
                       limit=recipe.eval.limit, seed=recipe.train.seed, ignore_label_id=info.ignore_label_id,
                       pad_id=info.pad_id, show_progress=show_progress)
    if not accelerator.is_main_process:
        return None
    written: list[Path] = []
    for _, evaluator in evaluators:
        written += [Path(path) for path in evaluator.write(artefacts) or []]
    report = {"checkpoint": str(checkpoint), "step": step, "split": recipe.eval.split, "max_steps": steps,
              "limit": recipe.eval.limit, "weights": "ema" if use_ema and parts["ema"] is not None else "live",
              "store": str(recipe.data.store), "processes": accelerator.num_processes, "metrics": metrics, "artefacts": [str(path) for path in written]}
    out = out or run_dir / f"eval-step_{step}-{recipe.eval.split}-{stamp}.json"
    temporary = out.with_name(f".{out.name}.partial-{os.getpid()}")
    temporary.write_text(json.dumps(report, indent=2))
    os.replace(temporary, out)
    get_host().pm.hook.trm_after_eval(recipe=recipe, run_dir=run_dir, step=step, metrics=metrics)
    return metrics, out, written

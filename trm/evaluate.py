"""Evaluation: run every test example through the model, feed the task's evaluators, report flat metrics.

As in the reference (REFERENCE.md sections 4 and 7) each evaluation batch starts from a fresh carry and is run for
``max_steps`` supervision steps (16 by default; more is test-time depth). A row's prediction is the one of the step
at which it first halted; with the paper's halting strategies that is the last step, since halting is only learned
for training. Every process sees the gathered global batch, so evaluators behave the same in one process and in many.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from trm.plugins import registry
from trm.types import EvalContext


def build_evaluators(recipe: Any, store: Any, output_dir: Path | None) -> list[tuple[str, Any]]:
    """(name, evaluator) for the recipe's evaluators, or the task's defaults when the recipe names none."""
    from trm.config import PluginSection, structure_options

    sections = recipe.eval.evaluators
    if sections is None:
        task = registry("tasks").get(recipe.task.name)
        sections = [PluginSection(name) for name in task.default_evaluators]
    built = []
    for section in sections:
        spec = registry("evaluators").get(section.name)
        options = section.options
        if isinstance(options, dict):
            options = structure_options(spec.options_class, options, f"$.eval.evaluators.{section.name}.options")
        context = EvalContext(store_info=store.info, split=recipe.eval.split, output_dir=output_dir,
                              store_path=Path(recipe.data.store))
        built.append((section.name, spec.build(options, context)))
    return built


def _gather(accelerator: Any, tensor: torch.Tensor) -> np.ndarray:
    if accelerator is not None and accelerator.num_processes > 1:
        tensor = accelerator.gather(tensor.contiguous())
    return tensor.cpu().numpy()


@torch.no_grad()
def evaluate(
    model: Any,
    split: Any,
    evaluators: list[tuple[str, Any]],
    *,
    accelerator: Any,
    global_batch_size: int,
    max_steps: int,
    limit: int | None = None,
    seed: int = 0,
    ignore_label_id: int | None = 0,
    pad_id: int = 0,
    show_progress: bool = True,
) -> dict[str, float]:
    """One pass over ``split``; returns ``{"<evaluator>/<metric>": value, "eval/mean_steps": ...}``."""
    from trm.data import EvalLoader

    rank = accelerator.process_index if accelerator is not None else 0
    world = accelerator.num_processes if accelerator is not None else 1
    device = accelerator.device if accelerator is not None else torch.device("cpu")
    loader = EvalLoader(split, global_batch_size=global_batch_size, rank=rank, world_size=world, limit=limit,
                        seed=seed, ignore_label_id=ignore_label_id, pad_id=pad_id)
    was_training = model.training
    model.eval()
    steps_sum, rows = 0.0, 0
    bar = tqdm(total=len(loader), desc="eval", disable=not show_progress or rank != 0, leave=False, dynamic_ncols=True)
    try:
        for batch in loader:
            batch = {key: value.to(device, non_blocking=True) for key, value in batch.items()}
            valid = batch.pop("valid")
            carry = model.initial_carry(batch)
            done = torch.zeros_like(valid)
            preds = torch.zeros_like(batch["labels"])
            q_halt = torch.zeros(valid.shape, dtype=torch.float32, device=device)
            steps = torch.zeros(valid.shape, dtype=torch.int32, device=device)
            for _ in range(max_steps):
                carry, out = model(carry, batch, max_steps=max_steps)
                newly = out["halted"] & ~done
                preds = torch.where(newly[:, None], out["logits"].argmax(-1).to(preds.dtype), preds)
                q_halt = torch.where(newly, out["q_halt"].float(), q_halt)
                steps = torch.where(newly, out["steps"].to(torch.int32), steps)
                done = done | out["halted"]
                if bool(done.all()):
                    break
            arrays = {name: _gather(accelerator, tensor) for name, tensor in
                      (("inputs", batch["inputs"]), ("labels", batch["labels"]),
                       ("puzzle_identifiers", batch["puzzle_identifiers"]), ("valid", valid))}
            outputs = {name: _gather(accelerator, tensor) for name, tensor in
                       (("preds", preds), ("q_halt", q_halt), ("steps", steps))}
            for _, evaluator in evaluators:
                evaluator.update(arrays, outputs)
            mask = arrays["valid"].astype(bool)
            steps_sum += float(outputs["steps"][mask].sum())
            rows += int(mask.sum())
            bar.update(1)
    finally:
        bar.close()
        model.train(was_training)
    metrics: dict[str, float] = {}
    for name, evaluator in evaluators:
        for key, value in evaluator.compute().items():
            metrics[f"{name}/{key}"] = float(value)
    metrics["eval/mean_steps"] = steps_sum / rows if rows else math.nan
    metrics["eval/examples"] = float(rows)
    return metrics


def format_table(metrics: dict[str, float]) -> str:
    """A small two-column table of metrics for the terminal."""
    width = max((len(key) for key in metrics), default=6)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  ------"]
    for key, value in metrics.items():
        shown = f"{value:.4f}" if isinstance(value, float) and not float(value).is_integer() else f"{value:g}"
        lines.append(f"{key:<{width}}  {shown}")
    return "\n".join(lines)

"""The Python API: load a trm checkpoint and run supervision steps on your own batch.

    import trm.api
    solver = trm.api.load("runs/sudoku-mlp/")            # a run directory or a checkpoints/step_N folder
    for step in solver.steps(inputs, puzzle_identifiers, max_steps=16):
        print(step.step, step.predictions[0], step.q_halt[0])

docs/python-api.md has the full description. Evaluation semantics are those of ``trm eval`` (docs/reference-code.md 4): the
model is in eval mode, every row starts from the fixed init vectors, the halting head's logits are reported but only
``max_steps`` (which may exceed the trained maximum: test-time depth) ends the recursion.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import attrs
import numpy as np
import torch

from trm.build import checkpoint_dims, model_from_checkpoint
from trm.checkpoint import find_checkpoint, read_checkpoint
from trm.config import load_recipe
from trm.engine import TinyRecursiveModel
from trm.errors import UserError
from trm.evaluate import MemorySplit, eval_settings, evaluate
from trm.recipe import Recipe


@attrs.frozen
class StepOutput:
    """One supervision step's outputs for the whole batch (tensors on the CPU, logits in fp32)."""

    step: int  # 1-based
    logits: torch.Tensor  # [B, L, V]
    q_halt: torch.Tensor  # [B] halting logit: > 0 means the model believes its answer is complete
    q_continue: torch.Tensor  # [B]

    @property
    def predictions(self) -> torch.Tensor:
        """[B, L] argmax tokens."""
        return self.logits.argmax(-1)


@attrs.frozen
class Solution:
    """Each row's answer where its supervision stopped (NumPy arrays)."""

    predictions: np.ndarray  # [B, L] tokens at the row's stopping step
    steps: np.ndarray  # [B] supervision steps the row used
    q_halt: np.ndarray  # [B] halting logit at that step (> 0: the model believes its answer is complete)

    @property
    def confidence(self) -> np.ndarray:
        """sigmoid(q_halt): the halting head's confidence that the answer is complete."""
        return 1.0 / (1.0 + np.exp(-self.q_halt))


class TrainedModel:
    """A loaded model with its recipe and puzzle-identifier names."""

    def __init__(self, model: TinyRecursiveModel, recipe: Recipe, identifiers: list[str] | None,
                 device: torch.device):
        self.model, self.recipe, self.identifiers, self.device = model, recipe, identifiers, device

    @property
    def seq_len(self) -> int:
        return self.model.seq_len

    def identifier(self, name: str) -> int:
        """The puzzle identifier of an (augmented) puzzle name, as in the dataset's identifier list."""
        if self.identifiers is None:
            raise UserError("this checkpoint carries no identifier names")
        try:
            return self.identifiers.index(name)
        except ValueError:
            raise UserError(f"no puzzle named {name!r} among the checkpoint's {len(self.identifiers)} identifiers") from None

    def _batch(self, inputs: Any, puzzle_identifiers: Any) -> dict[str, torch.Tensor]:
        tokens = torch.as_tensor(np.asarray(inputs), dtype=torch.int32)
        if tokens.dim() == 1:
            tokens = tokens[None]
        if tokens.dim() != 2 or tokens.shape[1] != self.seq_len:
            raise UserError(f"inputs must have shape [batch, {self.seq_len}], got {tuple(tokens.shape)}")
        if puzzle_identifiers is None:
            ids = torch.zeros(tokens.shape[0], dtype=torch.int32)
        else:
            ids = torch.as_tensor(np.asarray(puzzle_identifiers), dtype=torch.int32).reshape(-1)
        if ids.shape[0] != tokens.shape[0]:
            raise UserError(f"{ids.shape[0]} puzzle identifiers for {tokens.shape[0]} inputs")
        return {"inputs": tokens.to(self.device), "labels": torch.full(tokens.shape, -100, device=self.device),
                "puzzle_identifiers": ids.to(self.device)}

    @torch.no_grad()
    def steps(self, inputs: Any, puzzle_identifiers: Sequence[int] | Any = None, *,
              max_steps: int | None = None) -> Iterator[StepOutput]:
        """Yield the outputs of supervision steps 1..max_steps (default: the trained maximum) on ``inputs`` [B, L]."""
        limit = max_steps or self.model.halting.max_steps
        batch = self._batch(inputs, puzzle_identifiers)
        self.model.eval()
        carry = self.model.initial_carry(batch)
        for step in range(1, limit + 1):
            carry, out = self.model(carry, batch, max_steps=limit)
            yield StepOutput(step, out["logits"].float().cpu(), out["q_halt"].cpu(), out["q_continue"].cpu())

    def solve(self, inputs: Any, puzzle_identifiers: Sequence[int] | Any = None, *, halting: str | None = None,
              max_steps: int | None = None, halt_threshold: float | None = None, batch_size: int = 256) -> Solution:
        """Each row's answer with adaptive halting (stop when the halting rule says so, at ``max_steps`` at the
        latest) or ``halting="fixed"`` (exactly ``max_steps``), through ``trm eval``'s continuous batching.

        Each of ``halting``, ``max_steps`` and ``halt_threshold`` left at None is the run's ``eval`` setting, as in
        ``trm eval`` and ``trm solve``, so the three give the same answers."""
        halting, max_steps, halt_threshold = eval_settings(getattr(self.recipe, "eval", None), halting, max_steps,
                                                           halt_threshold)
        batch = self._batch(inputs, puzzle_identifiers)
        split = MemorySplit(batch["inputs"].cpu().numpy(), np.full(tuple(batch["inputs"].shape), -100, np.int64),
                            batch["puzzle_identifiers"].cpu().numpy())
        kept: list[dict[str, np.ndarray]] = []
        evaluate(self.model, split, [], accelerator=None, global_batch_size=min(batch_size, split.num_examples),
                 max_steps=max_steps, halting=halting, halt_threshold=halt_threshold, ignore_label_id=None,
                 show_progress=False, device=self.device, on_examples=lambda _, outputs: kept.append(outputs))
        return Solution(np.concatenate([k["preds"] for k in kept]), np.concatenate([k["steps"] for k in kept]),
                        np.concatenate([k["q_halt"] for k in kept]))

    def run(self, inputs: Any, puzzle_identifiers: Sequence[int] | Any = None, *,
            max_steps: int | None = None) -> list[StepOutput]:
        """Every step's outputs, as a list (see :meth:`steps`)."""
        return list(self.steps(inputs, puzzle_identifiers, max_steps=max_steps))


def load(path: str | Path, *, device: str | torch.device | None = None, use_ema: bool = True) -> TrainedModel:
    """Load a run directory (its latest checkpoint) or a ``checkpoints/step_N`` directory.

    ``use_ema`` writes the EMA weights over the live ones when the checkpoint has them (what evaluation uses).
    ``device`` defaults to CUDA when available; the compute dtype follows the recipe (auto: bf16 on CUDA).
    """

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    checkpoint = find_checkpoint(Path(path))
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint
    recipe_path = run_dir / "recipe.yaml"
    if not recipe_path.exists():
        raise UserError(f"{run_dir}: no recipe.yaml beside the checkpoint")
    recipe = load_recipe(recipe_path)
    parts = read_checkpoint(checkpoint, map_location="cpu")
    model = model_from_checkpoint(parts, recipe, checkpoint_dims(parts, recipe), device, use_ema=use_ema,
                                  source=checkpoint)
    return TrainedModel(model, recipe, parts.get("identifiers"), device)

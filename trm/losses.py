"""Token losses and the ACT loss with its metrics (docs/reference-code.md 5).

* stablemax cross-entropy: s(v) = v + 1 for v >= 0, 1 / (1 - v) for v < 0; log p = log(s(v_label) / sum_j s(v_j)),
  computed in fp64 as the reference does (its default for every task);
* softmax cross-entropy in fp32 as the alternative;
* each sequence's token losses are averaged over its supervised tokens (every sequence weighs the same), then
  summed over the batch; the halting strategy's terms (summed) are added with weight 0.5. The trainer divides the
  total by the *global* batch size.

Metrics are 0-dim tensors summed over rows, so that they can be summed over processes and accumulation steps
before the trainer divides them: ``count`` (rows that halted on this call and have supervised tokens),
``accuracy``, ``exact_accuracy``, ``q_halt_accuracy`` and ``steps`` over those rows; the losses over all rows.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from trm.kernels import stablemax_cross_entropy_fp32

IGNORE_LABEL_ID = -100


def _stablemax_s(x: torch.Tensor, epsilon: float = 1e-30) -> torch.Tensor:
    return torch.where(x < 0, 1 / (1 - x + epsilon), x + 1)


def log_stablemax(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    s = _stablemax_s(logits)
    return torch.log(s / s.sum(dim=dim, keepdim=True))


def stablemax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token loss [..., L] in fp64; 0 where ``mask`` is False."""
    logprobs = log_stablemax(logits.to(torch.float64))
    safe = torch.where(mask, labels, 0).long()
    picked = logprobs.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return -torch.where(mask, picked, 0)


def softmax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token loss [..., L] in fp32; 0 where ``mask`` is False."""
    safe = torch.where(mask, labels, IGNORE_LABEL_ID).long()
    flat = F.cross_entropy(logits.to(torch.float32).flatten(0, -2), safe.flatten(), ignore_index=IGNORE_LABEL_ID,
                           reduction="none")
    return flat.view(labels.shape)


TOKEN_LOSSES = {"stablemax": stablemax_cross_entropy, "softmax": softmax_cross_entropy,
                "stablemax_fp32": stablemax_cross_entropy_fp32}


def token_loss_name(loss: str, fast: bool) -> str:
    """The token loss a run computes: the fast path takes stablemax in float32 (docs/engine.md)."""
    return "stablemax_fp32" if fast and loss == "stablemax" else loss


def halting_terms(halting: Any, q_halt: torch.Tensor, q_continue: torch.Tensor, correct: torch.Tensor,
                  target_q_continue: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """The strategy's named loss terms (``loss_terms``), or its single ``loss`` as ``halt_loss``."""
    if hasattr(halting, "loss_terms"):
        return halting.loss_terms(q_halt, q_continue, correct, target_q_continue)
    return {"halt_loss": halting.loss(q_halt, q_continue, correct, target_q_continue)}


def act_loss(outputs: dict[str, torch.Tensor], halting: Any, *, loss_type: str = "stablemax",
             halt_loss_weight: float = 0.5) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(total loss summed over the batch, metrics summed over rows) of one supervision step's ``outputs``."""
    logits, labels = outputs["logits"], outputs["labels"]
    mask = labels != IGNORE_LABEL_ID
    with torch.no_grad():
        counts = mask.sum(-1)
        divisor = counts.clamp_min(1)
        token_correct = mask & (logits.argmax(-1) == labels)
        seq_correct = token_correct.sum(-1) == counts  # exact correctness of the current prediction
        valid = outputs["halted"] & (counts > 0)
        metrics = {
            "count": valid.sum(),
            "accuracy": torch.where(valid, token_correct.sum(-1) / divisor, 0).sum(),
            "exact_accuracy": (valid & seq_correct).sum(),
            "q_halt_accuracy": (valid & ((outputs["q_halt"] >= 0) == seq_correct)).sum(),
            "steps": torch.where(valid, outputs["steps"], 0).sum(),
        }
    token_loss = TOKEN_LOSSES[loss_type](logits, labels, mask)
    lm_loss = (token_loss / divisor.unsqueeze(-1)).sum()
    terms = halting_terms(halting, outputs["q_halt"], outputs["q_continue"], seq_correct,
                          outputs.get("target_q_continue"))
    total = lm_loss
    if terms:
        total = total + halt_loss_weight * sum(terms.values())
    metrics["lm_loss"] = lm_loss.detach()
    metrics.update({name: value.detach() for name, value in terms.items()})
    return total, metrics

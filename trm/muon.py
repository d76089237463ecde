"""Muon for the recursive network's weight matrices, AdamATan2 for every other dense parameter (``optim.name: muon``).

Muon (MomentUm Orthogonalized by Newton-Schulz; Keller Jordan, "Muon: An optimizer for hidden layers in neural
networks", 2024, https://kellerjordan.github.io/posts/muon/ and github.com/KellerJordan/Muon) keeps a Nesterov
momentum of each 2-D weight's gradient and replaces it by the nearest semi-orthogonal matrix (all singular values
about 1), computed with five iterations of a quintic Newton-Schulz polynomial, before taking the step. It is meant for
hidden matrices only: embeddings, output heads, biases and other non-matrix parameters keep an Adam-type optimizer.
nano-trm and URM train TRM this way; it is **not** the paper's optimizer (docs/engine.md, "Optimizers").

This module holds Muon's own arithmetic and the parameter partition; :class:`trm.optim.Muon` is the one
``torch.optim.Optimizer`` that runs it beside AdamATan2 (it lives in trm/optim.py beside AdamATan2, whose update
its other groups share, so that this module imports no optimizer and the import graph has no circle).

The hidden matrices are the weights of the linear layers inside ``model.backbone`` (attention: qkv_proj, o_proj,
the SwiGLU projections; mlp_mixer: the token- and channel-mixing projections). Everything else that is trained
(token embedding, lm_head, q_head weight and bias, a learned position table) gets AdamATan2's update
(:func:`trm.optim.adam_atan2_group_step`, the same arithmetic as ``optim.name: adam_atan2``). The puzzle-embedding
table is a buffer and keeps SparseSignSGD; ``y_init`` / ``z_init`` are untrained buffers.

Update scale: ``max(1, rows / cols) ** 0.5`` (Keller Jordan's rule), so a learning rate transfers across matrix
shapes; see :func:`muon_scale`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trm.layers import CastedLinear

# The quintic's coefficients from Keller Jordan's write-up: chosen to push singular values in (0, 1] up to about
# [0.7, 1.2] in five steps as fast as possible, rather than converge exactly to 1 (which costs more iterations and
# does not train better).
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5


@torch.no_grad()
def orthogonalise(update: torch.Tensor, steps: int = NS_STEPS) -> torch.Tensor:
    """The Newton-Schulz approximation of ``U V^T`` for ``update = U S V^T`` (a 2-D tensor), in ``update``'s dtype.

    bf16 on CUDA (the iteration is stable in bf16 and the matmuls are the cost), float32 on the CPU (no fast bf16
    matmul there). A tall matrix is transposed first so the Gram matrix ``X X^T`` is the small side.
    """
    if update.ndim != 2:
        raise ValueError(f"Muon orthogonalises 2-D matrices, got shape {tuple(update.shape)}")
    a, b, c = NS_COEFFICIENTS
    x = update.to(torch.bfloat16 if update.is_cuda else torch.float32)
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    x = x / (x.norm() + 1e-7)  # spectral norm <= Frobenius norm <= 1: inside the polynomial's basin
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    if tall:
        x = x.T
    return x.to(update.dtype)


def muon_scale(shape: torch.Size | tuple[int, ...]) -> float:
    """``max(1, rows / cols) ** 0.5`` (rows = fan-out, cols = fan-in; Keller Jordan's rule).

    An orthogonalised [rows, cols] matrix has RMS ``1 / sqrt(max(rows, cols))``; the factor brings every shape to
    ``1 / sqrt(cols)`` = 1 / sqrt(fan-in), the RMS whose effect on the layer's output does not depend on the shape.
    Chosen over Moonshot's ``0.2 sqrt(max(rows, cols))`` ("Muon is Scalable for LLM Training", 2025), which matches
    AdamW's update RMS so that AdamW's lr and decay can be reused: here the other groups run AdamATan2 (whose update
    RMS is not AdamW's) and ``optim.muon_lr`` is its own key, with the 0.02 that Keller Jordan's rule was tuned at.
    """
    rows, cols = shape[0], shape[1]
    return max(1.0, rows / cols) ** 0.5


def hidden_matrices(model: nn.Module) -> list[nn.Parameter]:
    """The trainable weight matrices of the linear layers in ``model.backbone``: what Muon updates."""
    backbone = getattr(model, "backbone", None)
    if backbone is None:
        raise ValueError("optim.name muon needs a model with a backbone (the recursive network)")
    return [module.weight for module in backbone.modules()
            if isinstance(module, (CastedLinear, nn.Linear)) and module.weight.requires_grad and module.weight.ndim == 2]


def muon_param_groups(model: nn.Module, *, muon: dict[str, Any], adam: dict[str, Any]) -> list[dict[str, Any]]:
    """Two groups over every trainable parameter once: ``kind`` muon (hidden matrices) and adam (the rest)."""
    matrices = hidden_matrices(model)
    chosen = {id(p) for p in matrices}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in chosen]
    groups = [{**muon, "params": matrices, "kind": "muon"}, {**adam, "params": rest, "kind": "adam"}]
    return [group for group in groups if group["params"]]


@torch.no_grad()
def muon_group_step(optimizer: torch.optim.Optimizer, group: dict[str, Any]) -> None:
    """One Muon update of ``group`` (keys ``params``, ``lr``, ``momentum``, ``weight_decay``), its momentum buffers
    kept in ``optimizer.state``.

    Per matrix W with gradient G: ``M <- mu M + (1 - mu) G``; ``U = (1 - mu) G + mu M`` (Nesterov);
    ``W <- W (1 - lr wd) - lr s(W) NS5(U)`` with ``s`` from :func:`muon_scale`.
    """
    lr, wd, mu = group["lr"], group["weight_decay"], group["momentum"]
    for p in group["params"]:
        if p.grad is None:
            continue
        state = optimizer.state[p]
        if not state:
            state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        buffer = state["momentum_buffer"]
        buffer.lerp_(p.grad, 1.0 - mu)
        update = p.grad.lerp(buffer, mu)  # Nesterov: look ahead along the momentum
        if wd != 0:
            p.mul_(1.0 - lr * wd)  # decoupled, before the step, as AdamATan2 does
        p.add_(orthogonalise(update), alpha=-lr * muon_scale(p.shape))

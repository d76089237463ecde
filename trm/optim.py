"""Optimizers and the learning-rate schedule (docs/reference-code.md 6).

* :class:`AdamATan2` in pure PyTorch, matching the fused ``adam_atan2`` package the reference imports: decoupled
  decay applied first, no epsilon, ``atan2(m_hat, sqrt(v_hat))`` with a = b = 1 (so the update is bounded and
  scale-invariant). AdamW (``torch.optim.AdamW``, the paper text's choice) is the alternative.
* :class:`Muon` (``optim.name: muon``): Muon (trm/muon.py) on the backbone's weight matrices and AdamATan2's update
  (:func:`adam_atan2_group_step`) on the other dense parameters, in one optimizer; not the paper's optimizer.
* :class:`SparseSignSGD` for the puzzle-embedding table: per-example gradients of the batch's rows are gathered
  over processes, summed per identifier, and only touched rows move: ``w <- w (1 - lr wd) - lr sign(g)``.
* :class:`EMA`: the exponential moving average of the dense weights (docs/reference-code.md 5: rate 0.999, evaluation
  on the averaged weights).
* :func:`lr_at`: linear warm-up from step 1, then constant (the reference: ``lr_min_ratio`` 1.0) or cosine.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

import torch

from trm import distributed
from trm.errors import UserError
from trm.muon import muon_group_step, muon_param_groups


class AdamATan2(torch.optim.Optimizer):
    """Adam with ``atan2`` in place of ``m / (sqrt(v) + eps)``; decoupled weight decay on every parameter.

    Per element, with t the step count: ``p <- p (1 - lr wd)``; ``m <- b1 m + (1 - b1) g``;
    ``v <- b2 v + (1 - b2) g^2``; ``p <- p - lr atan2(m / (1 - b1^t), sqrt(v) / sqrt(1 - b2^t))``.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.95),
                 weight_decay: float = 0.0):
        if lr < 0 or weight_decay < 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"invalid AdamATan2 settings lr={lr}, betas={betas}, weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            adam_atan2_group_step(self, group)
        return loss


@torch.no_grad()
def adam_atan2_group_step(optimizer: torch.optim.Optimizer, group: dict[str, Any]) -> None:
    """One AdamATan2 update of ``group`` (keys ``params``, ``lr``, ``betas``, ``weight_decay``), its moments kept in
    ``optimizer.state``; shared by :class:`AdamATan2` and the non-matrix groups of :class:`Muon`."""
    params = [p for p in group["params"] if p.grad is not None]
    if not params:
        return
    lr, wd = group["lr"], group["weight_decay"]
    beta1, beta2 = group["betas"]
    grads, exp_avgs, exp_avg_sqs = [], [], []
    for p in params:
        state = optimizer.state[p]
        if not state:
            state["step"] = torch.tensor(0.0)  # on the CPU: reading it never waits for the GPU
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        grads.append(p.grad)
        exp_avgs.append(state["exp_avg"])
        exp_avg_sqs.append(state["exp_avg_sq"])
    step = float(optimizer.state[params[0]]["step"])
    if wd != 0:
        torch._foreach_mul_(params, 1.0 - lr * wd)  # decoupled decay first, as the fused kernel does
    torch._foreach_lerp_(exp_avgs, grads, 1.0 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1.0 - beta2)
    bias1, bias2_sqrt = 1.0 - beta1**step, math.sqrt(1.0 - beta2**step)
    for p, m, v in zip(params, exp_avgs, exp_avg_sqs):
        p.add_(torch.atan2(m / bias1, v.sqrt() / bias2_sqrt), alpha=-lr)


class Muon(torch.optim.Optimizer):
    """``optim.name: muon``: Muon (trm/muon.py) on groups whose ``kind`` is ``muon``, AdamATan2 on ``adam`` groups.

    Every group carries ``base_lr``, the rate after warm-up, which trm/train.py's schedule scales into ``lr`` step
    by step; a resumed run keeps the base rates of the recipe it is resumed with (as the other optimizers follow
    ``optim.lr``), not the checkpoint's.
    """

    def __init__(self, param_groups: Iterable[dict[str, Any]]):
        groups = list(param_groups)
        for group in groups:
            kind = group.get("kind")
            if kind == "muon":
                if not 0.0 <= group["momentum"] < 1.0:
                    raise ValueError(f"invalid Muon momentum {group['momentum']}")
                bad = [tuple(p.shape) for p in group["params"] if p.ndim != 2]
                if bad:
                    raise ValueError(f"Muon groups take 2-D matrices only, got shapes {bad[:3]}")
            elif kind == "adam":
                if not all(0.0 <= beta < 1.0 for beta in group["betas"]):
                    raise ValueError(f"invalid AdamATan2 betas {group['betas']}")
            else:
                raise ValueError(f"a Muon param group's kind is muon or adam, got {kind!r}")
            if group["lr"] < 0 or group["weight_decay"] < 0:
                raise ValueError(f"invalid lr {group['lr']} or weight_decay {group['weight_decay']}")
            group.setdefault("base_lr", group["lr"])
        super().__init__(groups, {})

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            if group["kind"] == "adam":
                adam_atan2_group_step(self, group)
            else:
                muon_group_step(self, group)
        return loss

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        base = [group["base_lr"] for group in self.param_groups]
        super().load_state_dict(state_dict)
        for group, rate in zip(self.param_groups, base):
            group["base_lr"] = rate


@torch.no_grad()
def sign_sgd_rows(weights: torch.Tensor, ids: torch.Tensor, grads: torch.Tensor, lr: float, weight_decay: float) -> None:
    """Sum ``grads`` [N, dim] per identifier and apply sign-SGD with decoupled decay to the touched rows only.

    Fixed shapes and no host synchronisation (no ``unique``): each identifier elects one representative row through
    a scatter (whichever write wins), gradients are summed onto representatives, and every duplicate row then
    computes and writes the same new value.
    """
    ids = ids.long()
    rows = torch.arange(ids.shape[0], device=ids.device)
    representative_of_id = torch.empty(weights.shape[0], dtype=torch.long, device=ids.device)
    representative_of_id[ids] = rows
    representative = representative_of_id[ids]
    summed = torch.zeros_like(grads).index_add_(0, representative, grads)[representative]
    updated = weights[ids] * (1.0 - lr * weight_decay) - lr * torch.sign(summed).to(weights.dtype)
    weights[ids] = updated


class SparseSignSGD:
    """Sign-SGD for :class:`trm.engine.PuzzleEmbedding`, correct in one process and in many.

    ``step`` takes the per-example gradients the embedding collected since the last step (one entry per backward),
    all-gathers them with their identifiers when ``torch.distributed`` runs with more than one process (every rank
    then applies the identical update to its full copy of the table), and updates the touched rows.
    ``param_groups[0]["lr"]`` is set by the schedule like any optimizer's.
    """

    def __init__(self, embedding: Any, lr: float, weight_decay: float):
        self.embedding = embedding
        self.param_groups = [{"params": [embedding.weights], "lr": lr, "weight_decay": weight_decay}]

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.embedding.take_pending()

    @torch.no_grad()
    def step(self) -> None:
        pending = self.embedding.take_pending()
        if not pending:
            return
        ids = torch.cat([entry[0] for entry in pending])
        grads = torch.cat([entry[1] for entry in pending])
        ids, grads = distributed.all_gather_rows(ids), distributed.all_gather_rows(grads)  # as is with one process
        group = self.param_groups[0]
        sign_sgd_rows(self.embedding.weights, ids, grads, group["lr"], group["weight_decay"])

    def state_dict(self) -> dict[str, Any]:
        # Sign-SGD keeps no state; the table itself is saved with the model (it is a buffer).
        return {"param_groups": [{"lr": g["lr"], "weight_decay": g["weight_decay"]} for g in self.param_groups]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for group, saved in zip(self.param_groups, state["param_groups"]):
            group["lr"], group["weight_decay"] = saved["lr"], saved["weight_decay"]


def build_optimizers(model: torch.nn.Module, optim_config: Any) -> tuple[torch.optim.Optimizer, SparseSignSGD | None]:
    """The dense optimizer over every trainable parameter, and sign-SGD for the puzzle table when there is one."""
    params = [p for p in model.parameters() if p.requires_grad]
    betas = tuple(optim_config.betas)
    if optim_config.name == "adam_atan2":
        dense = AdamATan2(params, lr=optim_config.lr, betas=betas, weight_decay=optim_config.weight_decay)
    elif optim_config.name == "adamw":
        dense = torch.optim.AdamW(params, lr=optim_config.lr, betas=betas, weight_decay=optim_config.weight_decay,
                                  foreach=True)
    elif optim_config.name == "muon":
        dense = Muon(muon_param_groups(
            model,
            muon=dict(lr=optim_config.muon_lr, momentum=optim_config.muon_momentum,
                      weight_decay=optim_config.muon_weight_decay),
            adam=dict(lr=optim_config.lr, betas=betas, weight_decay=optim_config.weight_decay)))
    else:
        raise ValueError(f"unknown optimizer {optim_config.name!r}; expected adam_atan2, adamw or muon")
    embedding = getattr(model, "puzzle_emb", None)
    sparse = (SparseSignSGD(embedding, lr=optim_config.puzzle_emb_lr, weight_decay=optim_config.puzzle_emb_weight_decay)
              if embedding is not None else None)
    return dense, sparse


def lr_at(step: int, base_lr: float, *, warmup_steps: int, total_steps: int, schedule: str = "constant",
          min_ratio: float = 1.0) -> float:
    """Learning rate at ``step`` (counted from 1): linear warm-up, then constant or cosine to ``min_ratio``."""
    if step < warmup_steps:
        return base_lr * step / max(1, warmup_steps)
    if schedule == "constant":
        return base_lr
    if schedule != "cosine":
        raise ValueError(f"unknown schedule {schedule!r}; expected constant or cosine")
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * (min_ratio + max(0.0, (1 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))))


class EMA:
    """Exponential moving average of the dense (trainable) parameters; the puzzle embeddings are not averaged."""

    def __init__(self, model: torch.nn.Module, rate: float):
        self.rate = rate
        self.params = {name: p for name, p in model.named_parameters() if p.requires_grad and "puzzle_emb" not in name}
        self.shadow = {name: p.detach().clone() for name, p in self.params.items()}

    @torch.no_grad()
    def update(self) -> None:
        names = list(self.params)
        torch._foreach_lerp_([self.shadow[n] for n in names], [self.params[n].detach() for n in names], 1.0 - self.rate)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Within the block the model holds the EMA weights; the live ones come back afterwards."""
        live = {name: p.detach().clone() for name, p in self.params.items()}
        with torch.no_grad():
            for name, p in self.params.items():
                p.copy_(self.shadow[name])
        try:
            yield
        finally:
            with torch.no_grad():
                for name, p in self.params.items():
                    p.copy_(live[name])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.shadow) - set(state)
        if missing:
            raise UserError(f"checkpoint EMA lacks {sorted(missing)[:3]}...: it was written for another model")
        for name in self.shadow:
            self.shadow[name].copy_(state[name])

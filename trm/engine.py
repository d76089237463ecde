"""The recursion engine: input embedding, the x/y/z recursion, the heads, the carry and one ACT supervision step.

Cites docs/reference-code.md 3 (model) and 4 (ACT). The engine knows no backbone and no halting rule by name (trm/build.py looks them up): ``backbone`` is
any shape-preserving module (``forward(h[B, S, D]) -> [B, S, D]`` plus ``embed_positions``), ``halting`` any
:class:`trm.types.HaltingStrategy`.

One call of :meth:`TinyRecursiveModel.forward` is **one supervision step for every row**:

1. rows whose sample halted on the previous call take the new batch's row, and their y and z restart from the
   fixed random vectors ``y_init`` / ``z_init`` (``torch.where``: shapes never change, so torch.compile is happy);
2. x = sqrt(D) * [puzzle-embedding prefix; token embeddings];
3. T cycles of (n updates ``z <- f(z, y + x)``, then ``y <- f(y, z)``), the first T - 1 cycles without gradients;
4. logits = lm_head(y) on the grid positions, (q_halt, q_continue) = q_head(y[:, 0]);
5. the halting strategy decides which rows halted; y and z are detached into the new carry.

``docs/engine.md`` lists every deliberate difference from the paper's code.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import nn

from trm import moved
from trm.layers import CastedEmbedding, CastedLinear, trunc_normal_
from trm.puzzle_embedding import PuzzleEmbedding
from trm.recipe import ModelConfig
from trm.types import HaltingStrategy


class Carry(NamedTuple):
    """What persists between supervision steps: latents, step counters and the data each row holds."""

    y: torch.Tensor  # [B, S, D] the answer latent (z_H in the reference)
    z: torch.Tensor  # [B, S, D] the reasoning latent (z_L)
    steps: torch.Tensor  # int32 [B] supervision steps taken by the row's current sample
    halted: torch.Tensor  # bool [B]; a halted row takes fresh data on the next call
    inputs: torch.Tensor  # [B, L]
    labels: torch.Tensor  # [B, L]
    puzzle_identifiers: torch.Tensor  # [B]

    def to(self, device: torch.device | str) -> "Carry":
        return Carry(*(tensor.to(device) for tensor in self))


class TinyRecursiveModel(nn.Module):
    """Embedding, recursion and heads around a backbone ``f``; ``forward`` is one ACT supervision step."""

    def __init__(self, config: ModelConfig, backbone: nn.Module, halting: HaltingStrategy, *, vocab_size: int, seq_len: int,
                 num_puzzle_identifiers: int, dtype: torch.dtype):
        super().__init__()
        hidden, prefix = config.hidden_size, config.puzzle_emb_len
        if config.puzzle_emb_dim > prefix * hidden:
            raise ValueError(f"puzzle_emb_dim {config.puzzle_emb_dim} does not fit in puzzle_emb_len {prefix} "
                             f"slots of hidden_size {hidden}")
        self.config, self.halting, self.dtype = config, halting, dtype
        # (T, n) while training under a depth curriculum (trm/curriculum.py); None: the config's. Evaluation always
        # uses the config's depth. A change makes torch.compile build one more graph per phase.
        self.train_depth: tuple[int, int] | None = None
        self.fast_path = bool(getattr(backbone, "fast_path", False))  # set by build_model; reported, and picks the loss
        self.vocab_size, self.seq_len, self.prefix_len = vocab_size, seq_len, prefix
        self.embed_scale = math.sqrt(hidden)
        self.embed_tokens = CastedEmbedding(vocab_size, hidden, init_std=1.0 / self.embed_scale, cast_to=dtype)
        self.puzzle_emb = (PuzzleEmbedding(num_puzzle_identifiers, config.puzzle_emb_dim, dtype)
                           if config.puzzle_emb_dim > 0 else None)
        self.backbone = backbone
        self.lm_head = CastedLinear(hidden, vocab_size)
        self.q_head = CastedLinear(hidden, 2, bias=True)  # row 0: q_halt, row 1: q_continue
        with torch.no_grad():  # start by predicting "do not halt" firmly: sigmoid(-5) ~ 0.007
            self.q_head.weight.zero_()
            self.q_head.bias.fill_(-5.0)
        # Fixed, never-trained starting points of y and z, shared by every sample and position (docs/reference-code.md 3.5).
        self.register_buffer("y_init", trunc_normal_(torch.empty(hidden), std=1.0).to(dtype))
        self.register_buffer("z_init", trunc_normal_(torch.empty(hidden), std=1.0).to(dtype))

    # ---- pieces of one step -----------------------------------------------------------------------------------
    def embed_input(self, inputs: torch.Tensor, puzzle_identifiers: torch.Tensor) -> torch.Tensor:
        """x [B, P + L, D] = sqrt(D) * [prefix; tokens]; only the first dim values of the prefix are learned."""
        tokens = self.embed_tokens(inputs)
        batch, hidden = inputs.shape[0], self.config.hidden_size
        if self.puzzle_emb is not None:
            vector = self.puzzle_emb(puzzle_identifiers)
            vector = nn.functional.pad(vector, (0, self.prefix_len * hidden - vector.shape[-1]))
            prefix = vector.view(batch, self.prefix_len, hidden)
        else:
            prefix = tokens.new_zeros(batch, self.prefix_len, hidden)
        x = self.backbone.embed_positions(torch.cat((prefix, tokens), dim=1))
        return self.embed_scale * x

    def recurse(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, *, grad_last_cycle: bool = True
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """T cycles of n latent updates then one answer update; only the last cycle keeps gradients."""
        f = self.backbone  # f(h, injection) = backbone(h + injection): the injection is added once, before block 1
        h_cycles, l_cycles = self.config.h_cycles, self.config.l_cycles  # T, n
        if self.training and self.train_depth is not None:
            h_cycles, l_cycles = self.train_depth
        with torch.no_grad():
            for _ in range(h_cycles - 1):
                injection = y + x  # y is fixed during the n latent updates: add it to x once per cycle
                for _ in range(l_cycles):  # n
                    z = f(z + injection)
                y = f(y + z)  # the answer update sees z only, not x: that is how one f tells its two jobs apart
        with torch.set_grad_enabled(grad_last_cycle and torch.is_grad_enabled()):
            injection = y + x
            for _ in range(l_cycles):
                z = f(z + injection)
            y = f(y + z)
        return y, z

    def heads(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = self.lm_head(y[:, self.prefix_len:])  # grid positions only
        q = self.q_head(y[:, 0]).to(torch.float32)  # the first prefix slot
        return logits, q[..., 0], q[..., 1]

    # ---- the carry and one supervision step ---------------------------------------------------------------------
    def initial_carry(self, batch: dict[str, torch.Tensor]) -> Carry:
        """A carry in which every row is halted, so the first call fills every row from its batch."""
        inputs = batch["inputs"]
        rows, device = inputs.shape[0], inputs.device
        if self.puzzle_emb is not None and self.training:
            # Evaluation batches (often larger) must not resize the training sink: that would recompile the step.
            self.puzzle_emb.prepare(rows)
        latent = torch.zeros(rows, self.prefix_len + self.seq_len, self.config.hidden_size, dtype=self.dtype,
                             device=device)
        return Carry(
            y=latent, z=latent.clone(),
            steps=torch.zeros(rows, dtype=torch.int32, device=device),
            halted=torch.ones(rows, dtype=torch.bool, device=device),
            inputs=torch.zeros_like(inputs),
            labels=torch.full_like(batch["labels"], -100),
            puzzle_identifiers=torch.zeros_like(batch["puzzle_identifiers"]),
        )

    def forward(self, carry: Carry, batch: dict[str, torch.Tensor], *, max_steps: int | None = None
                ) -> tuple[Carry, dict[str, torch.Tensor]]:
        limit = self.halting.max_steps if max_steps is None else max_steps
        fresh = carry.halted
        inputs = torch.where(fresh[:, None], batch["inputs"], carry.inputs)
        labels = torch.where(fresh[:, None], batch["labels"], carry.labels)
        ids = torch.where(fresh, batch["puzzle_identifiers"], carry.puzzle_identifiers)
        y = torch.where(fresh[:, None, None], self.y_init, carry.y)
        z = torch.where(fresh[:, None, None], self.z_init, carry.z)
        steps = torch.where(fresh, torch.zeros_like(carry.steps), carry.steps) + 1

        x = self.embed_input(inputs, ids)
        y, z = self.recurse(x, y, z)
        logits, q_halt, q_continue = self.heads(y)
        halted = self.halting.should_halt(steps, q_halt.detach(), q_continue.detach(), self.training, limit)

        outputs = {"logits": logits, "q_halt": q_halt, "q_continue": q_continue, "halted": halted, "steps": steps,
                   "inputs": inputs, "labels": labels, "puzzle_identifiers": ids}
        if self.training and self.halting.uses_next_q:
            # HRM's bootstrapped Q target: one more (gradient-free) supervision step from the new carry.
            with torch.no_grad():
                next_y, _ = self.recurse(x, y, z, grad_last_cycle=False)
                _, next_q_halt, next_q_continue = self.heads(next_y)
            outputs["target_q_continue"] = self.halting.target_q_continue(next_q_halt, next_q_continue, steps >= limit)
        new_carry = Carry(y.detach(), z.detach(), steps, halted, inputs, labels, ids)
        return new_carry, outputs


# ---- reporting ----------------------------------------------------------------------------------------------------
def dense_parameter_count(model: nn.Module) -> int:
    """Trainable nn.Parameters: what the paper and the reference's log count (the puzzle table is a buffer)."""
    return sum(p.numel() for p in model.parameters())


def model_summary(model: TinyRecursiveModel) -> list[str]:
    """Lines for ``trm recipe show`` and the start of a run: counts, table size and the recursion's shape."""
    cfg = model.config
    calls = cfg.h_cycles * (cfg.l_cycles + 1)
    lines = [
        f"backbone: {type(model.backbone).__name__} ({sum(p.numel() for p in model.backbone.parameters()):,} parameters)",
        f"dense parameters: {dense_parameter_count(model):,}",
    ]
    if model.puzzle_emb is not None:
        rows, dim = model.puzzle_emb.weights.shape
        lines.append(f"puzzle-embedding table: {rows:,} rows x {dim} = {rows * dim:,} values "
                     f"({rows * dim * 4 / 1e6:,.1f} MB fp32)")
    else:
        lines.append("puzzle-embedding table: none (puzzle_emb_dim = 0)")
    halting = model.halting
    lines += [
        f"sequence: {model.prefix_len} prefix slots + {model.seq_len} grid positions, vocabulary {model.vocab_size}, "
        f"hidden size {cfg.hidden_size}",
        f"recursion: T={cfg.h_cycles} cycles x (n={cfg.l_cycles} latent updates + 1 answer update) = {calls} network "
        f"calls per supervision step, gradients through the last {cfg.l_cycles + 1}",
        f"halting: {type(halting).__name__} ({getattr(halting, 'halt_rule', '?')}), at most {halting.max_steps} "
        f"supervision steps in training",
        f"path: {'fast' if model.fast_path else 'faithful'} (model.path: {cfg.path})",
    ]
    return lines


def __getattr__(name: str) -> Any:  # assemble moved to trm/build.py (trm/moved.py)
    return moved.resolve(__name__, name)

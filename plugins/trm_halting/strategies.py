"""Halting strategies: when a sample's deep supervision stops, and what trains the halting head.

docs/reference-code.md 4 (ACT) and 5 (losses). ``steps`` passed to ``should_halt`` already counts the step just taken, so a
sample halts at the latest when ``steps >= max_steps``. At evaluation (``training=False``) only that limit applies,
and the engine passes the evaluation's ``max_steps``, which may exceed the trained one (test-time depth).

* ``act_q`` (TRM default, ``no_ACT_continue``): halt when ``q_halt > 0``; the halting head learns by BCE against
  the exact correctness of the current prediction.
* ``act_q_continue`` (HRM's Q-learning): halt when ``q_halt > q_continue``; ``q_continue`` learns by BCE against
  the bootstrapped target ``sigmoid(next q_halt)`` on the last step, else ``sigmoid(max(next q_halt, next
  q_continue))``, from an extra no-grad forward on the new carry. The reference's TRM path crashes here
  (docs/reference-code.md 10.7); this one follows HRM's working code.
* ``fixed``: always ``max_steps`` supervision steps; the halting head gets no loss.

``halt_logit(q_halt, q_continue)`` is each strategy's halting decision as one logit (halt when > 0): adaptive
evaluation (trm/evaluate.py) stops an example there, or where ``sigmoid(logit)`` exceeds a chosen confidence.

Exploration (both ACT strategies, training only): every call, each sample draws ``min_steps = [rand < p] *
randint{2..max_steps}`` afresh and may not halt before it (docs/reference-code.md 4, step 4). Random numbers come from
``torch.rand`` on the tensors' device, so the compiled step needs no host synchronisation.
"""

from __future__ import annotations

import math

import attrs
import torch
import torch.nn.functional as F

from trm.hookspecs import hookimpl
from trm.types import HaltingSpec


def _at_least_one(instance, attribute, value) -> None:
    if value < 1:
        raise ValueError(f"'{attribute.name}' must be >= 1 (got {value})")


def _probability(instance, attribute, value) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"'{attribute.name}' must be in [0, 1] (got {value})")


_at_least_one.description = ">= 1"  # shown by `trm list halting` (trm.cli.plugins.describe_validator)
_probability.description = "in [0, 1]"


@attrs.frozen
class ACTOptions:
    max_steps: int = attrs.field(default=16, validator=_at_least_one,
                                 metadata={"help": "N_sup: supervision steps after which a sample always halts"})
    exploration_prob: float = attrs.field(
        default=0.1, validator=_probability,
        metadata={"help": "chance per step that a sample draws a minimum step count in 2..max_steps"})


@attrs.frozen
class FixedOptions:
    max_steps: int = attrs.field(default=16, validator=_at_least_one,
                                 metadata={"help": "supervision steps every sample takes"})


def _exploration_floor(steps: torch.Tensor, probability: float, max_steps: int) -> torch.Tensor:
    """Per sample: 0 with probability 1 - p, else a uniform draw from 2..max_steps (redrawn every call)."""
    explore = torch.rand(steps.shape, device=steps.device) < probability
    floor = torch.randint(2, max_steps + 1, steps.shape, device=steps.device, dtype=steps.dtype)
    return torch.where(explore, floor, torch.zeros_like(floor))


class ACTQ:
    """Halt when q_halt > 0 (training); BCE of q_halt against exact correctness."""

    uses_next_q = False
    halt_rule = "q_halt > 0"

    def __init__(self, options: ACTOptions):
        self.max_steps = options.max_steps
        self.exploration_prob = options.exploration_prob

    def halt_logit(self, q_halt: torch.Tensor, q_continue: torch.Tensor) -> torch.Tensor:
        """The halting decision as a logit: halt when > 0 (here q_halt itself)."""
        return q_halt

    def _wants_halt(self, q_halt: torch.Tensor, q_continue: torch.Tensor) -> torch.Tensor:
        return self.halt_logit(q_halt, q_continue) > 0

    def should_halt(self, steps: torch.Tensor, q_halt: torch.Tensor, q_continue: torch.Tensor, training: bool,
                    max_steps: int) -> torch.Tensor:
        halted = steps >= max_steps
        # The reference learns to halt only when more than one step is allowed; evaluation runs to max_steps.
        if training and max_steps > 1:
            halted = halted | self._wants_halt(q_halt, q_continue)
            halted = halted & (steps >= _exploration_floor(steps, self.exploration_prob, max_steps))
        return halted

    def target_q_continue(self, next_q_halt: torch.Tensor, next_q_continue: torch.Tensor,
                          is_last: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(torch.where(is_last, next_q_halt, torch.maximum(next_q_halt, next_q_continue)))

    def loss_terms(self, q_halt: torch.Tensor, q_continue: torch.Tensor, correct: torch.Tensor,
                   target_q_continue: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Named halting-loss terms, each summed over the batch (the trainer divides by the global batch)."""
        return {"q_halt_loss": F.binary_cross_entropy_with_logits(q_halt, correct.to(q_halt.dtype), reduction="sum")}

    def loss(self, q_halt: torch.Tensor, q_continue: torch.Tensor, correct: torch.Tensor,
             target_q_continue: torch.Tensor | None) -> torch.Tensor:
        return sum(self.loss_terms(q_halt, q_continue, correct, target_q_continue).values())


class ACTQContinue(ACTQ):
    """HRM's Q-learning: halt when q_halt > q_continue; q_continue regresses on the bootstrapped target."""

    uses_next_q = True
    halt_rule = "q_halt > q_continue"

    def halt_logit(self, q_halt: torch.Tensor, q_continue: torch.Tensor) -> torch.Tensor:
        """Halt when q_halt > q_continue: the logit of that comparison is their difference."""
        return q_halt - q_continue

    def loss_terms(self, q_halt, q_continue, correct, target_q_continue):
        terms = super().loss_terms(q_halt, q_continue, correct, target_q_continue)
        if target_q_continue is not None:  # absent at evaluation, where no next-step forward is run
            terms["q_continue_loss"] = F.binary_cross_entropy_with_logits(
                q_continue, target_q_continue.to(q_continue.dtype), reduction="sum")
        return terms


class Fixed:
    """Every sample runs exactly ``max_steps`` supervision steps; nothing trains the halting head."""

    uses_next_q = False
    halt_rule = "steps >= max_steps"

    def __init__(self, options: FixedOptions):
        self.max_steps = options.max_steps

    def should_halt(self, steps, q_halt, q_continue, training, max_steps):
        return steps >= max_steps

    def halt_logit(self, q_halt, q_continue):
        """Never halts early: adaptive evaluation of a fixed-depth model runs to the cap."""
        return torch.full_like(q_halt, -math.inf)

    def target_q_continue(self, next_q_halt, next_q_continue, is_last):
        raise NotImplementedError("the fixed strategy does not bootstrap q_continue")

    def loss_terms(self, q_halt, q_continue, correct, target_q_continue):
        return {}

    def loss(self, q_halt, q_continue, correct, target_q_continue):
        return q_halt.new_zeros(())


@hookimpl
def trm_halting_strategies() -> list[HaltingSpec]:
    return [
        HaltingSpec("act_q", ACTOptions, ACTQ,
                    "halt when q_halt > 0, with exploration; BCE against exact correctness (the TRM default)"),
        HaltingSpec("act_q_continue", ACTOptions, ACTQContinue,
                    "HRM-style Q-learning: halt when q_halt > q_continue; bootstrapped q_continue target"),
        HaltingSpec("fixed", FixedOptions, Fixed, "always max_steps supervision steps; no halting loss"),
    ]

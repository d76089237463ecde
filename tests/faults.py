"""Fault injection for the interruption tests: the trm CLI, with a signal sent to this process right after one
optimizer step, so that a run stops at an exact point between its checkpoints.

    python tests/faults.py STEP SIGNAL trm-arguments...
    python -m torch.distributed.run --nproc_per_node 2 tests/faults.py STEP SIGNAL trm-arguments...

SIGNAL is KILL, INT (Ctrl-C) or TERM (a scheduler's stop). The fault wraps ``Trainer.train_step`` here, in the
tests; trm itself has no fault switch.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's trm, as `python -m trm` from it

from trm import train  # noqa: E402
from trm.cli import main  # noqa: E402


def install(step: int, signum: int) -> None:
    """Send ``signum`` to this process as soon as the Trainer has taken optimizer step ``step``."""
    original = train.Trainer.train_step

    def train_step(self: train.Trainer, batch: dict) -> dict:
        metrics = original(self, batch)
        if self.step == step:
            os.kill(os.getpid(), signum)
        return metrics

    train.Trainer.train_step = train_step


if __name__ == "__main__":
    step, name, *arguments = sys.argv[1:]
    install(int(step), getattr(signal, "SIG" + name.upper()))
    main(arguments)

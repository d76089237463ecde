"""Tiny synthetic ARC tasks, shared by the ARC tests (the ``arc_dir`` fixture in conftest.py writes them to disk)."""

from __future__ import annotations

import numpy as np


def rand_grid(rng, h=None, w=None, colours=10):
    h = h or int(rng.integers(1, 8))
    w = w or int(rng.integers(1, 8))
    return rng.integers(0, colours, size=(h, w)).astype(np.uint8)


def make_task(rng, demos=2, tests=1):
    return {"train": [{"input": rand_grid(rng).tolist(), "output": rand_grid(rng).tolist()} for _ in range(demos)],
            "test": [{"input": rand_grid(rng).tolist(), "output": rand_grid(rng).tolist()} for _ in range(tests)]}

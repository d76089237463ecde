"""Tiny trained runs shared by the tests of solving, trajectories, reports, integrity checks and ARC voting (trained
once per session through the conftest fixtures; a few seconds on a CPU)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO

TINY_SUDOKU = """
extends: {repo}/recipes/quickstart_4x4.yaml
task: {{name: sudoku, options: {{source: generate, size: 4, num_train: 300, num_test: 64, num_aug: 2, seed: 0}}}}
data: {{store: {store}, build_if_missing: true}}
model: {{hidden_size: 32, h_cycles: 2, l_cycles: 2, puzzle_emb_len: 1, puzzle_emb_dim: 32}}
backbone: {{name: attention, options: {{layers: 1, num_heads: 2}}}}
train: {{global_batch_size: 32, epochs: 100000, max_steps: 40, log_every: 5, compile: off}}
optim: {{warmup_steps: 5}}
eval: {{every: null, limit: 64, batch_size: 64}}
"""


def trm(*args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    environment = {**os.environ, "TRM_TRACKERS": "none", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "trm", *args], capture_output=True, text=True, env=environment,
                          cwd=cwd or REPO, timeout=timeout)


def train_tiny_sudoku(folder: Path) -> Path:
    """A 4x4 Sudoku run of 40 optimizer steps (its store beside it); returns the run directory."""
    recipe = folder / "tiny-sudoku.yaml"
    recipe.write_text(TINY_SUDOKU.format(repo=REPO, store=folder / "store.zarr"))
    run = folder / "run"
    result = trm("run", str(recipe), "--run-dir", str(run), "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    return run


TINY_ARC = """
extends: {repo}/recipes/arc_small.yaml
task: {{name: arc, options: {{source: {arc_dir}, subsets: [training, evaluation, concept], test_subset: evaluation,
                             task_ids: null, num_aug: 3, seed: 1}}}}
data: {{store: {store}, build_if_missing: true}}
model: {{hidden_size: 32, h_cycles: 1, l_cycles: 1, puzzle_emb_len: 1, puzzle_emb_dim: 32}}
backbone: {{name: attention, options: {{layers: 1, num_heads: 2}}}}
train: {{global_batch_size: 8, max_steps: 2, compile: 'off'}}
eval: {{every: null, batch_size: 6}}
"""  # eval batch 6: the last window is padded, and each of two processes gets 3 rows


def train_tiny_arc(folder: Path, arc_dir: Path) -> Path:
    """An ARC run of 2 optimizer steps on the tasks in ``arc_dir`` (its store beside it); returns the run directory."""
    recipe = folder / "arc_tiny.yaml"
    recipe.write_text(TINY_ARC.format(repo=REPO, arc_dir=arc_dir, store=folder / "arc.zarr"))
    run = folder / "run"
    result = trm("run", str(recipe), "--run-dir", str(run), "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    return run

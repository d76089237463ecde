"""Shared fixtures: fresh plugin hosts, fake plugins, and the location of the shared real data."""

from __future__ import annotations

import os
from pathlib import Path

import attrs
import pytest

from trm import plugins
from trm.hookspecs import hookimpl
from trm.types import BackboneSpec, EvaluatorSpec, HaltingSpec, TaskDims, TaskSpec

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TRM_SHARED_DATA", REPO.parent / "shared" / "data"))


@attrs.frozen
class FakeOptions:
    width: int = attrs.field(default=4, metadata={"help": "how wide"})
    mode: str = attrs.field(default="a", metadata={"help": "which mode"})


class FakePlugin:
    """A plugin object providing one record of every kind, all named 'fake'."""

    @hookimpl
    def trm_backbones(self):
        return [BackboneSpec("fake", FakeOptions, lambda options, shape: None, "a fake backbone")]

    @hookimpl
    def trm_tasks(self):
        return [TaskSpec("fake", FakeOptions, lambda options, writer: None, "a fake task",
                         dims=lambda options: TaskDims(5, 4, 1))]

    @hookimpl
    def trm_halting_strategies(self):
        return [HaltingSpec("fake", FakeOptions, lambda options: None, "a fake halting strategy")]

    @hookimpl
    def trm_evaluators(self):
        return [EvaluatorSpec("fake", FakeOptions, lambda options, context: None, "a fake evaluator")]


@pytest.fixture
def empty_host():
    """A plugin host with no entry points loaded."""
    return plugins.PluginHost(load_entry_points=False, warn=False)


@pytest.fixture
def fake_host(empty_host):
    empty_host.register(FakePlugin(), "fake-plugin")
    return empty_host


@pytest.fixture
def fresh_global_host(monkeypatch):
    """Reset the process-wide host before and after a test that changes the environment switches."""
    plugins.reset_host()
    yield
    plugins.reset_host()


def write_arc_dir(folder: Path) -> Path:
    """ARC subsets of tiny tasks in the Kaggle layout: training (2 tasks), evaluation (2 tasks, one with 2 test
    inputs), concept (1); always the same tasks."""
    import numpy as np

    from arc_tasks import make_task
    from trm_arc.kaggle import write_subset

    rng = np.random.default_rng(7)
    write_subset(folder, "training", {"trainA": make_task(rng, 3), "trainB": make_task(rng, 2)})
    write_subset(folder, "evaluation", {"evalA": make_task(rng, 2, 2), "evalB": make_task(rng, 3, 1)})
    write_subset(folder, "concept", {"Concept1": make_task(rng, 2, 3)})
    return folder


@pytest.fixture
def arc_dir(tmp_path):
    """The tiny ARC subsets of :func:`write_arc_dir`, in the test's own folder."""
    return write_arc_dir(tmp_path)


@pytest.fixture(scope="session")
def tiny_sudoku_run(tmp_path_factory):
    """A trained 4x4 Sudoku run (40 steps), shared by the solve, report and integrity tests."""
    from tiny_runs import train_tiny_sudoku

    return train_tiny_sudoku(tmp_path_factory.mktemp("tiny-sudoku"))


@pytest.fixture(scope="session")
def tiny_arc_run(tmp_path_factory):
    """(ARC folder, run directory): a 2-step run on the tiny ARC subsets of ``arc_dir``, shared by the trm solve and
    arc_vote tests (a test that writes into the run directory copies it first)."""
    from tiny_runs import train_tiny_arc

    folder = tmp_path_factory.mktemp("tiny-arc")
    return folder / "arc", train_tiny_arc(folder, write_arc_dir(folder / "arc"))

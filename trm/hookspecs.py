"""Hook specifications: everything a trm plugin can provide or observe, grouped by the phase that calls them.

1. **Registration** (``trm_backbones``, ``trm_tasks``, ``trm_halting_strategies``, ``trm_evaluators``): called once
   per plugin host, when the registry of that kind is first needed (trm.types.PLUGIN_KINDS is the table of kinds).
   Each implementation is called on its own through pluggy (so ``TRM_TRACE_HOOKS=1`` shows it) and returns an
   iterable of the kind's record; a wrong return value or a duplicate name is reported naming the plugin.
2. **The command line and recipes** (``trm_commands``, ``trm_recipe_dirs``): ``trm_commands`` once when the CLI
   starts, ``trm_recipe_dirs`` whenever recipes are listed or looked up by name.
3. **A run's lifecycle** (``trm_before_run``, ``trm_after_eval``, ``trm_after_run``): observers, called on the main
   process at run and evaluation boundaries, never inside the compiled training step; every implementation is
   called (no ``firstresult``) and results are ignored. An exception ends the command with one line naming the
   plugin (trm/errors.py, trm/eval_guard.py).

No hook is called with positional arguments: implementations may take any subset of a hook's parameters, by name
(pluggy's rule). Pattern: simonw/llm and datasette (``register_*`` hooks returning records), pytest (project-
prefixed, typed, documented specs). docs/plugins.md has one heading per hook; tests/test_hooks.py checks that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import click
import pluggy

from trm.recipe import Recipe
from trm.types import BackboneSpec, EvaluatorSpec, HaltingSpec, TaskSpec

PROJECT = "trm"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --------------------------------------------------------------------------------------------------------------
# 1. Registration: what a plugin provides, gathered into one registry per kind
# --------------------------------------------------------------------------------------------------------------


@hookspec
def trm_backbones() -> Iterable[BackboneSpec]:
    """Register backbones: the shape-preserving networks ``f`` the engine applies recursively.

    Returns an iterable of :class:`trm.types.BackboneSpec`. Called once, when the backbone registry is built
    (``trm list backbones``, recipe validation, ``trm run``).
    """


@hookspec
def trm_tasks() -> Iterable[TaskSpec]:
    """Register tasks: builders that turn raw puzzles into a dataset store, plus a renderer and default evaluators.

    Returns an iterable of :class:`trm.types.TaskSpec`. Called once, when the task registry is built
    (``trm augment``, ``trm list tasks``, recipe validation).
    """


@hookspec
def trm_halting_strategies() -> Iterable[HaltingSpec]:
    """Register halting strategies: when a sample stops being supervised and how the halting head is trained.

    Returns an iterable of :class:`trm.types.HaltingSpec`. Called once, when the halting registry is built.
    """


@hookspec
def trm_evaluators() -> Iterable[EvaluatorSpec]:
    """Register evaluators: objects that turn one evaluation pass's predictions into metrics and artefacts.

    Returns an iterable of :class:`trm.types.EvaluatorSpec`. Called once, when the evaluator registry is built.
    """


# --------------------------------------------------------------------------------------------------------------
# 2. The command line and recipes
# --------------------------------------------------------------------------------------------------------------


@hookspec
def trm_commands(cli: click.Group) -> None:
    """Add commands to the ``trm`` command line.

    ``cli`` is the top-level click group; call ``cli.command()`` or ``cli.add_command()`` on it. Returns nothing.
    Called once when the CLI starts, after the built-in commands exist (a plugin may not replace them).
    """


@hookspec
def trm_recipe_dirs() -> Iterable[str | Path]:
    """Ship recipes: folders of recipe files (``NAME.yaml``; names starting with ``_`` are bases, not listed).

    Returns an iterable of folder paths, usually one folder inside the plugin's package shipped as package data.
    Its recipes are listed by ``trm recipes`` and run by name (``trm run NAME`` or ``trm run PLUGIN:NAME``).
    Called whenever a recipe is looked up by name or listed.
    """


# --------------------------------------------------------------------------------------------------------------
# 3. A run's lifecycle: observers on the main process
# --------------------------------------------------------------------------------------------------------------


@hookspec
def trm_before_run(recipe: Recipe, run_dir: Path) -> None:
    """Observe the start of a training run.

    ``recipe`` is the validated :class:`trm.recipe.Recipe`; ``run_dir`` the run directory (already holding
    ``recipe.yaml``). Returns nothing. Called on the main process, before the first training step, also on resume.
    """


@hookspec
def trm_after_run(recipe: Recipe, run_dir: Path, metrics: dict[str, float]) -> None:
    """Observe the end of a training run.

    ``metrics`` holds the last evaluation's results (empty when none ran). Returns nothing. Called on the main
    process after the final checkpoint is written.
    """


@hookspec
def trm_after_eval(recipe: Recipe, run_dir: Path, step: int, metrics: dict[str, float]) -> None:
    """Observe the results of one evaluation pass.

    ``step`` is the training step evaluated (optimizer steps so far); ``metrics`` the flat results of every
    evaluator, prefixed with the evaluator's name. Returns nothing. Called on the main process after each
    evaluation, during ``trm run`` and by ``trm eval``.
    """

"""``trm plugins check NAME``: hold an installed plugin's tasks and evaluators to trm's contracts (trm/testing.py).

For each task: its options (defaults valid, clear messages for mistakes), a tiny store built with it and checked
against the store contract, its renderer; then every evaluator of the plugin and the task's default evaluators,
self-tested on that store. One line per check; exit 1 if any failed. docs/plugins.md ("Testing a plugin").
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable

import click

from trm.errors import UserError


def _targets(name: str, task_name: str | None, host: Any) -> tuple[list[Any], list[Any], str]:
    """(tasks, evaluators, what NAME is) for a plugin name, a task name or an evaluator name."""
    tasks_reg, evals_reg = host.registry("tasks"), host.registry("evaluators")
    if name in host.info:
        tasks = [rec for rec in tasks_reg.records() if tasks_reg.owner(rec.name) == name]
        evaluators = [rec for rec in evals_reg.records() if evals_reg.owner(rec.name) == name]
        what = f"plugin {host.describe(name)}"
    elif name in tasks_reg:
        tasks, evaluators, what = [tasks_reg.get(name)], [], f"task '{name}'"
    elif name in evals_reg:
        tasks, evaluators, what = [], [evals_reg.get(name)], f"evaluator '{name}'"
    else:
        from trm.plugins import did_you_mean

        known = sorted(set(host.info) | set(tasks_reg.names()) | set(evals_reg.names()))
        raise UserError(f"'{name}' is no installed plugin, task or evaluator{did_you_mean(name, known)}; "
                        "`trm plugins` lists the plugins")
    if task_name is not None:
        tasks = [tasks_reg.get(task_name)]
    if not tasks and evaluators:
        raise UserError(f"{what} registers no task, so its evaluators need a store: name a task with --task TASK")
    if not tasks and not evaluators:
        raise UserError(f"{what} registers no task and no evaluator: there is nothing to check")
    return tasks, evaluators, what


@click.command("check")
@click.argument("name")
@click.argument("options", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--task", "task_name", default=None, help="Build the tiny store with this task (default: the plugin's own).")
@click.option("--score", "scores", multiple=True, help="A metric that is a score (1 for perfect predictions); "
              "default: every metric named *accuracy*. Repeat for several.")
@click.option("--keep", type=click.Path(file_okay=False), default=None, help="Build the tiny store(s) in this directory "
              "and keep them (default: a temporary directory).")
def check(name: str, options: tuple[str, ...], task_name: str | None, scores: tuple[str, ...], keep: str | None) -> None:
    """Check plugin (or task, or evaluator) NAME against trm's contracts, without training.

    \b
    For each task: option validation messages, a tiny store built with the KEY=VALUE options (as for
    `trm augment`; keep them small) and checked against the store contract, and a render round trip.
    Then each evaluator of the plugin and each of the task's default evaluators: the labels given as
    predictions must score 1 and a corrupted copy less. Exit 1 if a check fails.
    """
    from trm import testing
    from trm.cli_data import parse_options
    from trm.plugins import get_host

    host = get_host()
    tasks, evaluators, what = _targets(name, task_name, host)
    mapping = parse_options(options)
    failures = 0

    def run(label: str, step: Callable[[], Any]) -> Any:
        nonlocal failures
        try:
            result = step()
        except testing.PluginCheckError as exc:
            failures += 1
            click.echo(f"FAIL  {label}")
            for problem in exc.problems:
                click.echo(f"      - {problem}")
            return None
        except UserError:
            raise
        except Exception as exc:  # the plugin's own bug: a failed check, and the others still run
            from trm.plugins import blame

            failures += 1
            culprit = blame(exc)
            where = f" at {culprit.location()}" if culprit is not None else ""
            click.echo(f"FAIL  {label}")
            click.echo(f"      - raised {type(exc).__name__}: {exc}{where}")
            return None
        click.echo(f"ok    {label}")
        return result

    click.echo(f"checking {what}")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(keep) if keep else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for task in tasks:
            warnings = run(f"task '{task.name}': options", lambda: testing.check_options(task))
            for warning in warnings or []:
                click.echo(f"      note: {warning}")
            out = folder / f"{task.name}.zarr"
            store = run(f"task '{task.name}': builds a tiny store{f' ({out})' if keep else ''}",
                        lambda: testing.build_tiny_store(task, out, mapping, check=False))
            if store is None:
                continue
            click.echo(f"      {_store_line(store)}")
            contract = run(f"task '{task.name}': the store contract",
                           lambda: testing.check_store(store, task, _structured(task, mapping)))
            if contract and contract["test_inputs_seen_in_train"]:
                click.echo(f"      note: {contract['test_inputs_seen_in_train']} test input(s) also occur in training")
            run(f"task '{task.name}': render", lambda: testing.check_render(task, store))
            chosen = list(evaluators) + [host.registry("evaluators").get(e) for e in task.default_evaluators
                                         if e not in {spec.name for spec in evaluators}]
            for spec in chosen:
                run(f"evaluator '{spec.name}': options", lambda: testing.check_options(spec, "evaluators"))
                result = run(f"evaluator '{spec.name}' on the '{task.name}' store: labels score 1, a corrupted copy less",
                             lambda: testing.check_evaluator(spec, store, scores=list(scores) or None))
                if result:
                    shown = ", ".join(f"{k} {result['perfect'][k]:g} -> {result['corrupted'][k]:g}"
                                      for k in result["perfect"] if k in result["corrupted"])
                    click.echo(f"      {shown}")
    if failures:
        click.echo(f"{failures} check(s) failed")
        raise SystemExit(1)
    click.echo("all checks passed")


def _structured(task: Any, mapping: dict) -> Any:
    from trm.config import structure_options

    return structure_options(task.options_class, mapping, f"$.task.options ({task.name})")


def _store_line(store: Any) -> str:
    info = store.info
    counts = ", ".join(f"{name} {split['num_examples']} examples" for name, split in sorted(info.splits.items()))
    return f"vocabulary {info.vocab_size}, grid length {info.seq_len}, {counts}"

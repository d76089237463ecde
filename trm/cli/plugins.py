"""``trm plugins``, ``trm plugins check NAME`` and ``trm list KIND``: what is installed, and whether it holds to
trm's contracts (trm/testing.py).

``trm plugins check`` takes, for each task: its options (defaults valid, clear messages for mistakes), a tiny store
built with it and checked against the store contract, its renderer; then every evaluator of the plugin and the task's
default evaluators, self-tested on that store. One line per check; exit 1 if any failed. docs/plugins.md ("Testing a
plugin").
"""

from __future__ import annotations

import json
import tempfile
import typing
from pathlib import Path
from typing import Any, Callable

import attrs
import click

from trm.errors import UserError
from trm.types import PLUGIN_KINDS

# --------------------------------------------------------------------------------------------------------------
# trm plugins
# --------------------------------------------------------------------------------------------------------------


@click.group("plugins", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--recipe", "recipe", type=click.Path(dir_okay=False), help="Also load the one-off plugin files this recipe names.")
@click.pass_context
def plugins_command(ctx: click.Context, as_json: bool, recipe: str | None) -> None:
    """List every loaded plugin: distribution, version and the hooks it implements (and any that failed).

    `trm plugins check NAME` tests a plugin's tasks and evaluators against trm's contracts.
    """
    from trm.plugins import get_host

    if ctx.invoked_subcommand is not None:
        return
    host = get_host()
    if recipe:
        from trm.config import load_plugin_files
        from trm.recipe_catalog import resolve_recipe

        load_plugin_files(resolve_recipe(recipe, host), host)
    rows = [
        {
            "name": info.name,
            "module": info.module,
            "origin": info.origin,
            "distribution": info.distribution,
            "version": info.version,
            "hooks": host.hooks_of(info.name),
        }
        for info in sorted(host.info.values(), key=lambda i: i.name)
    ]
    failed = [attrs.asdict(f) for f in sorted(host.failed.values(), key=lambda f: f.name)]
    if as_json:
        click.echo(json.dumps({"plugins": rows, "failed": failed}, indent=2))
        return
    if not rows:
        click.echo("no plugins loaded")
    shown = [(row, f"{row['distribution']} {row['version']}" if row["distribution"] else row["origin"]) for row in rows]
    # columns as wide as their longest entry (two spaces apart), so that a long name or distribution stays apart
    name_width = max([16, *(len(row["name"]) + 1 for row in rows), *(len(row["name"]) + 1 for row in failed)])
    dist_width = max([16, *(len(dist) + 1 for _, dist in shown)])
    for row, dist in shown:
        click.echo(f"{row['name']:<{name_width}} {dist:<{dist_width}} {row['module']}")
        click.echo(f"{'':<{name_width}} hooks: {', '.join(row['hooks'])}")
    for row in failed:
        click.echo(f"{row['name']:<{name_width}} FAILED: {row['error']}")




# --------------------------------------------------------------------------------------------------------------
# trm list KIND
# --------------------------------------------------------------------------------------------------------------


def type_name(annotation: Any) -> str:
    """A short readable name for a field's type (``int | None``, ``'rope' | 'none'``)."""
    if isinstance(annotation, str):
        return annotation
    if annotation is type(None):
        return "null"
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " | ".join(type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    return getattr(annotation, "__name__", str(annotation))


def describe_validator(validator: Any) -> str | None:
    """The range or choices an attrs validator enforces, in words (``>= 1``, ``one of 4, 6, 9``), or None.

    attrs' own validators (``ge``/``gt``/``le``/``lt``, ``in_``, ``and_``, ``optional``) are read; a plugin's own
    function can say what it enforces in a ``description`` attribute.
    """
    if validator is None:
        return None
    inner = getattr(validator, "validator", None)  # attrs.validators.optional
    if inner is not None and type(validator).__name__ == "_OptionalValidator":
        text = describe_validator(inner)
        return f"{text}, or null" if text else None
    parts = getattr(validator, "_validators", None)  # attrs.validators.and_
    if parts is not None:
        texts = [describe_validator(part) for part in parts]
        return ", ".join(text for text in texts if text) or None
    if hasattr(validator, "compare_op") and hasattr(validator, "bound"):
        return f"{validator.compare_op} {validator.bound}"
    options = getattr(validator, "options", None)  # attrs.validators.in_
    if options is not None and type(validator).__name__ == "_InValidator":
        return "one of " + ", ".join(str(option) for option in options)
    return getattr(validator, "description", None)


def _allowed(field: attrs.Attribute, annotation: Any) -> str | None:
    text = describe_validator(field.validator)
    if text and text.startswith("one of") and typing.get_origin(annotation) is typing.Literal:
        return None  # the type shows the choices already
    return text


def describe_options(options_class: type) -> list[dict[str, Any]]:
    """One entry per option of a plugin's options class: name, type, default and help."""
    if not attrs.has(options_class):
        return []
    try:
        hints = typing.get_type_hints(options_class)
    except Exception:  # unresolvable annotations: show them as written
        hints = {}
    described = []
    for field in attrs.fields(options_class):
        default = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory() if not default.takes_self else "(computed)"
        if default is attrs.NOTHING:
            default = "(required)"
        described.append(
            {
                "name": field.name,
                "type": type_name(hints.get(field.name, field.type)),
                "default": default,
                "allowed": _allowed(field, hints.get(field.name, field.type)),
                "help": field.metadata.get("help", ""),
            }
        )
    return described


@click.command("list")
@click.argument("kind", type=click.Choice([kind.name for kind in PLUGIN_KINDS]))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def list_command(kind: str, as_json: bool) -> None:
    """List the installed backbones, tasks, halting strategies or evaluators with every option: its type (a
    Literal's choices), default, allowed values (ranges, choices) and help."""
    from trm.plugins import registry

    reg = registry(kind)
    entries = [
        {"name": rec.name, "summary": rec.summary, "plugin": reg.owner(rec.name), "options": describe_options(rec.options_class)}
        for rec in reg.records()
    ]
    if as_json:
        click.echo(json.dumps(entries, indent=2, default=str))
        return
    if not entries:
        click.echo(f"no {kind} installed")
    for entry in entries:
        click.echo(f"{entry['name']}  ({entry['plugin']})")
        click.echo(f"    {entry['summary']}")
        for option in entry["options"]:
            allowed = f"  ({option['allowed']})" if option.get("allowed") else ""
            click.echo(f"    - {option['name']}: {option['type']} = {option['default']!r}{allowed}")
            if option["help"]:
                click.echo(f"        {option['help']}")
        click.echo()


# --------------------------------------------------------------------------------------------------------------
# trm plugins check NAME
# --------------------------------------------------------------------------------------------------------------


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
        from trm.errors import did_you_mean

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
    from trm.cli.data import parse_options
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


plugins_command.add_command(check)

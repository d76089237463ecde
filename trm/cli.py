"""The ``trm`` command line (click). Each command parses its arguments and delegates; docs/cli.md is the reference.

Commands whose machinery is heavy (training, datasets, conversion, benchmarks) live in their own ``trm.cli_*``
modules and are imported only when used, so ``trm --help`` and ``trm plugins`` stay fast. Plugins add commands
through the ``trm_commands`` hook. A :class:`~trm.errors.UserError` anywhere ends the command with its message on one
line (a recipe's problems one per line), exit code 2 and no traceback; any other exception raised in a plugin's code
ends it with one line naming the plugin, its distribution and the error, exit code 3 (trm/errors.py). ``TRM_DEBUG=1``
adds the full traceback.
"""

from __future__ import annotations

import importlib
import json
import sys
import traceback
import typing
from typing import Any

import attrs
import click

from trm import __version__
from trm.errors import EXIT_PLUGIN_BUG, RecipeError, UserError, debug_enabled

# name -> "module:attribute" of commands imported on first use
LAZY_COMMANDS = {
    "new": "trm.scaffold:new",
    "run": "trm.cli_train:run",
    "eval": "trm.cli_train:eval_command",
    "augment": "trm.cli_data:augment",
    "data": "trm.cli_data:data",
    "convert": "trm.cli_convert:convert",
    "bench": "trm.cli_bench:bench",
    "runs": "trm.cli_runs:runs",
    "solve": "trm.cli_solve:solve",
    "report": "trm.cli_report:report",
}


def _traceback_if_debugging(exc: BaseException) -> None:
    if debug_enabled():
        click.echo("".join(traceback.format_exception(exc)).rstrip(), err=True)


def report_user_error(exc: UserError) -> None:
    """Print a user's mistake without a traceback: one line, or one line per recipe problem.

    A plugin from another distribution than trm is named first, so that a message its author wrote is placed.
    """
    from trm.plugins import blame

    _traceback_if_debugging(exc)
    if isinstance(exc, RecipeError):
        for problem in exc.problems:
            click.echo(problem, err=True)
        click.echo(f"trm: {len(exc.problems)} problem(s) found", err=True)
        return
    culprit = blame(exc, follow_chain=False)
    prefix = f"{culprit.describe()}: " if culprit is not None and culprit.plugin.distribution != "trm" else ""
    click.echo(f"trm: error: {prefix}{exc}", err=True)


def report_plugin_bug(exc: BaseException) -> bool:
    """Print a plugin's exception as one line (with the traceback under TRM_DEBUG); False when no plugin raised it."""
    from trm.plugins import blame

    culprit = blame(exc)
    if culprit is None:
        return False
    _traceback_if_debugging(exc)
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    error = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    hint = "" if debug_enabled() else "; TRM_DEBUG=1 prints the traceback"
    click.echo(f"trm: error: bug in {culprit.describe()} at {culprit.location()}: {error} (an error in the plugin's "
               f"code, not in your input{hint})", err=True)
    return True


class TrmGroup(click.Group):
    """A click group with lazily imported commands and one-line user errors."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY_COMMANDS and name not in self.commands:
            module_name, attribute = LAZY_COMMANDS[name].split(":")
            try:
                command = getattr(importlib.import_module(module_name), attribute)
            except (ImportError, AttributeError) as exc:
                command = _unavailable(name, f"{type(exc).__name__}: {exc}")
            self.commands[name] = command
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as exc:
            report_user_error(exc)
            ctx.exit(exc.exit_code)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if not report_plugin_bug(exc):
                raise  # trm's own bug: the traceback is what its developers need
            ctx.exit(EXIT_PLUGIN_BUG)


def _unavailable(name: str, reason: str) -> click.Command:
    @click.command(name=name, context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def command(args: tuple[str, ...]) -> None:
        raise click.ClickException(f"'trm {name}' is not available in this installation: {reason}")

    command.help = f"(unavailable: {reason})"
    return command


@click.group(cls=TrmGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="trm")
@click.option("--data-root", "data_root", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Folder relative data.store paths are under (sets TRM_DATA_ROOT; default ./data).")
def cli(data_root: str | None) -> None:
    """trm: Tiny Recursive Models for recursive reasoning on puzzles.

    \b
    Typical session:
      trm recipes                      # the shipped recipes
      trm run quickstart               # a shipped recipe by name (or a path: trm run recipes/quickstart.yaml)
      trm eval runs/quickstart-<time> --max-steps 32

    Exit codes: 2 a mistake in your input, 3 a bug in a plugin (TRM_DEBUG=1 shows the traceback), 1 a bug in trm.

    Docs: docs/index.md. Environment: TRM_DATA_ROOT: the folder relative data.store paths are under (default
    ./data; docs/datasets.md). TRM_LOAD_PLUGINS, TRM_DISABLE_PLUGINS, TRM_TRACE_HOOKS, TRM_DEBUG (docs/plugins.md);
    TRM_TRACKERS: where trm run logs metrics besides metrics.jsonl: auto (TensorBoard when installed, the default),
    none, or a comma list such as tensorboard,wandb (docs/training.md). TRM_NUM_THREADS: CPU threads for torch
    (default: the cores free at start; docs/training.md).
    """
    from trm.threads import configure_threads

    configure_threads()
    if data_root is not None:  # an environment variable, so that accelerate's worker processes see it too
        import os

        os.environ["TRM_DATA_ROOT"] = data_root


# --------------------------------------------------------------------------------------------------------------
# trm plugins
# --------------------------------------------------------------------------------------------------------------


@cli.group("plugins", invoke_without_command=True)
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
    for row in rows:
        dist = f"{row['distribution']} {row['version']}" if row["distribution"] else row["origin"]
        click.echo(f"{row['name']:<16} {dist:<16} {row['module']}")
        click.echo(f"{'':<16} hooks: {', '.join(row['hooks'])}")
    for row in failed:
        click.echo(f"{row['name']:<16} FAILED: {row['error']}")


def _add_plugins_check() -> None:
    from trm.cli_plugins import check  # light: the heavy imports happen when the command runs

    plugins_command.add_command(check)


_add_plugins_check()


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


@cli.command("list")
@click.argument("kind", type=click.Choice(["backbones", "tasks", "halting", "evaluators"]))
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
# trm recipe show|validate
# --------------------------------------------------------------------------------------------------------------


@cli.command("recipes")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (name, origin, path, description) instead of a table.")
def recipes_command(as_json: bool) -> None:
    """List the shipped recipes: trm's own and those installed plugins ship. Run one with `trm run NAME`."""
    from trm.recipe_catalog import shipped_recipes

    found = shipped_recipes()
    if as_json:
        click.echo(json.dumps([{"name": r.name, "origin": r.origin, "qualified": r.qualified, "path": str(r.path),
                                "description": r.description} for r in found], indent=2))
        return
    if not found:
        click.echo("no shipped recipes found")
        return
    names = {r.name: [x.origin for x in found if x.name == r.name] for r in found}
    width = max(len(r.name if len(names[r.name]) == 1 or r.origin == "trm" else r.qualified) for r in found)
    for r in found:
        shown = r.name if len(names[r.name]) == 1 or r.origin == "trm" else r.qualified
        click.echo(f"{shown:<{width}}  {r.origin:<10}  {r.description or '-'}")
    click.echo("\nrun one with `trm run NAME`; see it with `trm recipe show NAME`; copy it from the path in --json")


@cli.group("recipe")
def recipe_group() -> None:
    """Inspect recipes: print the fully resolved recipe, or only validate it. RECIPE is a path or a shipped
    recipe's name (`trm recipes`)."""


OVERRIDES_HELP = "key=value overrides (dotted paths, values parsed as YAML), e.g. optim.lr=3e-4 train.epochs=10"


@recipe_group.command("validate")
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
def recipe_validate(recipe: str, overrides: tuple[str, ...]) -> None:
    """Validate RECIPE (with OVERRIDES): report every problem with its path, exit 2 if any. The model is
    then built on the meta device (no memory), which catches settings that are valid alone but not together."""
    import torch

    from trm.build import build_model, task_dims
    from trm.config import load_recipe
    from trm.errors import UserError

    from trm.recipe_catalog import resolve_recipe

    resolved = load_recipe(resolve_recipe(recipe), overrides)
    try:
        dims, _ = task_dims(resolved)
    except UserError:  # sizes unknown until the store is built: nothing more to check
        dims = None
    if dims is not None:
        try:
            with torch.device("meta"):
                build_model(resolved, dims, dtype=torch.float32)
        except UserError as exc:
            raise UserError(f"{recipe}: {exc}") from None
    click.echo(f"{recipe}: ok")


@recipe_group.command("show")
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option("--no-summary", is_flag=True, help="Do not build the model to print its summary.")
def recipe_show(recipe: str, overrides: tuple[str, ...], no_summary: bool) -> None:
    """Print RECIPE fully resolved (extends and OVERRIDES applied), then a model summary."""
    from trm.config import dump_recipe, load_recipe
    from trm.recipe_catalog import resolve_recipe

    resolved = load_recipe(resolve_recipe(recipe), overrides)
    click.echo(dump_recipe(resolved).rstrip())
    if not no_summary:
        from trm.build import recipe_summary

        click.echo("# model")
        for line in recipe_summary(resolved):
            click.echo(f"# {line}")


recipe_validate.help = (recipe_validate.help or "") + "\n\nOVERRIDES: " + OVERRIDES_HELP
recipe_show.help = (recipe_show.help or "") + "\n\nOVERRIDES: " + OVERRIDES_HELP


# --------------------------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------------------------


def _add_plugin_commands() -> None:
    from trm.plugins import get_host

    builtin = set(cli.commands) | set(LAZY_COMMANDS)
    before = dict(cli.commands)
    try:
        get_host().pm.hook.trm_commands(cli=cli)
    except UserError:
        raise
    except Exception as exc:  # a broken plugin command must not take the whole CLI down
        from trm.plugins import blame

        culprit = blame(exc)
        who = f"{culprit.describe()}'s trm_commands hook ({culprit.location()})" if culprit else "a plugin's trm_commands hook"
        click.echo(f"trm: warning: {who} failed and its commands are missing: {type(exc).__name__}: {exc}", err=True)
    for name in list(cli.commands):
        if name in builtin and cli.commands[name] is not before.get(name):
            click.echo(f"trm: warning: a plugin tried to replace the built-in command '{name}'; ignored", err=True)
            if name in before:
                cli.commands[name] = before[name]
            else:
                del cli.commands[name]


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    words = sys.argv[1:] if argv is None else list(argv)
    if words and words[0] in set(cli.commands) | set(LAZY_COMMANDS):
        # A built-in command: plugins load when it asks for them (registry()), not up front, so that commands
        # needing none (trm data info) start without importing every plugin and torch.
        cli.main(args=argv, prog_name="trm")
        return
    try:
        _add_plugin_commands()
    except UserError as exc:
        report_user_error(exc)
        sys.exit(exc.exit_code)
    cli.main(args=argv, prog_name="trm")

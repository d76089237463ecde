"""The ``trm`` command line (click): the root group and its error handling; docs/cli.md is the reference.

Every command lives in a module of this package, one per command group (``trm.cli.train`` for ``trm run``,
``trm.cli.data`` for ``trm data`` and ``trm augment``, ...), imported only when used, so ``trm --help`` and
``trm plugins`` stay fast. Each command parses its arguments and delegates to the core; nothing outside this
package imports it. Plugins add commands through the ``trm_commands`` hook.

A :class:`~trm.errors.UserError` anywhere ends the command with its message on one line (a recipe's problems one per
line), exit code 2 and no traceback; any other exception raised in a plugin's code ends it with one line naming the
plugin, its distribution and the error, exit code 3 (trm/errors.py). ``TRM_DEBUG=1`` adds the full traceback.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from typing import Any

import click

from trm import __version__
from trm.errors import EXIT_PLUGIN_BUG, RecipeError, UserError, debug_enabled

# name -> "module:attribute" of commands imported on first use
LAZY_COMMANDS = {
    "plugins": "trm.cli.plugins:plugins_command",
    "list": "trm.cli.plugins:list_command",
    "recipes": "trm.cli.recipes:recipes_command",
    "recipe": "trm.cli.recipes:recipe_group",
    "new": "trm.cli.new:new",
    "run": "trm.cli.train:run",
    "eval": "trm.cli.evaluate:eval_command",
    "augment": "trm.cli.data:augment",
    "data": "trm.cli.data:data",
    "convert": "trm.cli.convert:convert",
    "bench": "trm.cli.bench:bench",
    "runs": "trm.cli.runs:runs",
    "solve": "trm.cli.solve:solve",
    "report": "trm.cli.report:report",
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

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        """click's main, with a usage mistake (a bad option value, a missing argument) told in one line.

        click would print the usage, a hint and the message on three lines; trm's other errors are one line
        naming what was wrong, and so are these (the command's --help is named in the line)."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as error:
            words = list(sys.argv[1:] if args is None else args)
            named = next((word for word in words if not word.startswith("-")), None)  # the command, if any
            where = (f"; see `{error.ctx.command_path} --help`" if error.ctx is not None else
                     f"; see `trm {named} --help`" if named in self.list_commands(click.Context(self)) else
                     "; see `trm --help`")
            message = " ".join(error.format_message().split()).rstrip(".")  # click lists choices on lines
            click.echo(f"trm: error: {message}{where}", err=True)
            sys.exit(error.exit_code)
        except click.ClickException as error:
            error.show()
            sys.exit(error.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

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


TENSOR_COMMANDS = {"run", "eval", "solve", "bench", "convert", "report", "arc"}  # the commands whose CPU speed depends on threads


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

    # Sampling the busy cores costs 0.25 s: only the commands that compute with torch pay it.
    configure_threads(measure=click.get_current_context().invoked_subcommand in TENSOR_COMMANDS)
    if data_root is not None:  # an environment variable, so that accelerate's worker processes see it too
        import os

        os.environ["TRM_DATA_ROOT"] = data_root


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

"""``trm new task NAME [DIR]``: write a working, pip-installable task plugin package (the files: trm/scaffold.py)."""

from __future__ import annotations

import click

from trm.scaffold import scaffold_task


@click.group("new")
def new() -> None:
    """Start a new plugin package from a working example."""


@new.command("task")
@click.argument("name")
@click.argument("directory", required=False, type=click.Path(file_okay=False))
def new_task(name: str, directory: str | None) -> None:
    """Write a pip-installable task plugin called NAME into DIRECTORY (default: ./trm-NAME).

    \b
    It works as it is (a small generated task with augmentation, an evaluator, a CPU recipe, tests):
      pip install -e DIRECTORY && trm run NAME:cpu
    then replace the example task with yours (docs/plugins.md, "Starting a new task").

    NAME: lower-case letters, digits and '_', starting with a letter (it becomes the package trm_NAME); not a
    Python keyword and not the name of an installed task.
    """
    written = scaffold_task(name, directory)
    root = written[0].parent
    click.echo(f"wrote the task plugin '{name}' to {root}:")
    for path in written:
        click.echo(f"  {path}")
    click.echo("next:")
    click.echo(f"  pip install -e {root}")
    click.echo(f"  trm plugins check {name}")
    click.echo(f"  trm run {name}:cpu")

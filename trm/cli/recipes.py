"""``trm recipes``, ``trm recipe show`` and ``trm recipe validate``: the shipped recipes, and one recipe resolved."""

from __future__ import annotations

import inspect
import json

import click

# --------------------------------------------------------------------------------------------------------------
# trm recipe show|validate
# --------------------------------------------------------------------------------------------------------------


@click.command("recipes")
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


@click.group("recipe")
def recipe_group() -> None:
    """Inspect recipes: print the fully resolved recipe, or only validate it. RECIPE is a path or a shipped
    recipe's name (`trm recipes`)."""


OVERRIDES_HELP = "key=value overrides (dotted paths, values parsed as YAML), e.g. optim.lr=3e-4 train.epochs=10"


@recipe_group.command("validate")
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
def recipe_validate(recipe: str, overrides: tuple[str, ...]) -> None:
    """Validate RECIPE (with OVERRIDES): report every problem with its path, exit 2 if any.

    The model is then built on the meta device (no memory), which catches settings that are valid alone but not
    together."""
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


# cleandoc first: click dedents a docstring only when it formats it whole, and this one gets a paragraph added
recipe_validate.help = inspect.cleandoc(recipe_validate.help or "") + "\n\nOVERRIDES: " + OVERRIDES_HELP
recipe_show.help = inspect.cleandoc(recipe_show.help or "") + "\n\nOVERRIDES: " + OVERRIDES_HELP

"""``trm convert``: bring checkpoints from elsewhere into trm's format (logic in trm/convert.py)."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("convert")
def convert() -> None:
    """Convert checkpoints written by other code into trm run directories."""


@convert.command("reference")
@click.argument("checkpoint")
@click.argument("overrides", nargs=-1)
@click.option("--recipe", "recipe", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="The trm recipe describing the same model (sizes, backbone, task): a file or a shipped recipe's "
                   "name; optional for the known Hub checkpoints (docs/convert.md).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run directory to create (recipe.yaml + checkpoints/step_0).")
@click.option("--identifiers", "identifiers", type=click.Path(dir_okay=False, path_type=Path),
              help="The reference dataset's identifiers.json (id -> augmented puzzle name), kept with the weights.")
def reference(checkpoint: str, overrides: tuple[str, ...], recipe: Path | None, out: Path,
              identifiers: Path | None) -> None:
    """Convert CHECKPOINT, a state dict saved by the paper's code (TinyRecursiveModels), for RECIPE.

    CHECKPOINT is a file or a Hugging Face Hub reference hf:OWNER/REPO[/PATH][@REVISION]; a Hub
    file's size is checked against RECIPE's model before it is downloaded (into huggingface_hub's cache).

    \b
    Every weight, the puzzle-embedding table and the fixed init vectors carry over;
    optimizer state does not exist in such files. Evaluate the result with
    `trm eval OUT` (add --allow-other-store when the store was not the one of OUT's
    recipe at conversion time). See docs/convert.md.

    OVERRIDES: key=value overrides of RECIPE (dotted paths, values parsed as YAML), e.g. model.hidden_size=256.
    """
    from trm.convert import convert_reference

    path = convert_reference(checkpoint, recipe, out, identifiers=identifiers, overrides=overrides)
    click.echo(f"wrote {path}")

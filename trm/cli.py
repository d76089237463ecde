"""Placeholder replaced by the lead shortly."""
import click


@click.group()
def cli() -> None:
    """trm"""


def main() -> None:
    cli()

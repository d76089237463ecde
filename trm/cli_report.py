"""``trm report RUN_DIR``: the run's self-contained HTML report (trm/report.py builds it)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("run_dir", type=click.Path())
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="HTML file to write (default: RUN_DIR/report.html).")
@click.option("--trajectories", type=click.IntRange(min=0), default=2, show_default=True,
              help="Sample trajectories shown: the latest trm eval --trajectories pictures, else drawn now from "
                   "the latest checkpoint when the run's store is here (0: none).")
def report(run_dir: str, out: str | None, trajectories: int) -> None:
    """Write one self-contained HTML page about RUN_DIR: the run, learning curves, evaluation results, the depth
    curve when there is one, sample trajectories and the recipe. Images and styles are inline, so the file opens
    anywhere without a network."""
    from trm.report import build_report

    written = build_report(Path(run_dir), Path(out) if out else None, trajectories=trajectories)
    click.echo(f"report: {written}")

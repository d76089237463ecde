"""``trm runs``: a table of the run directories under a folder, read from their files only (no torch, no store).

For each directory holding a ``recipe.yaml``: the last logged optimizer step and epoch, the latest complete
checkpoint, and the last evaluation's headline metric (exact accuracy, or ARC's pass@2), so that runs can be
compared and an interrupted one spotted (its checkpoint is behind its last logged step).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

# The metric shown, in order of preference: the paper's numbers for each task family.
HEADLINE = ("arc_vote/pass@2", "maze_path/exact_accuracy", "exact_match/exact_accuracy")


def headline(metrics: dict[str, Any]) -> str:
    """``name=value`` of the most telling metric of an evaluation record, or '-'."""
    keys = [key for key in HEADLINE if key in metrics]
    keys += sorted(key for key in metrics if key.endswith("exact_accuracy") and key not in keys)
    if not keys:  # a plugin's evaluator with metrics of its own names (board_accuracy, ...): its first one
        keys = [key for key in metrics if "/" in key and not key.startswith("eval/") and not key.endswith("/examples")
                and isinstance(metrics[key], (int, float))][:1]
    if not keys:
        return "-"
    value = metrics[keys[0]]
    return f"{keys[0]}={value:.4f}" if isinstance(value, (int, float)) else f"{keys[0]}={value}"


def describe_run(directory: Path) -> dict[str, Any]:
    """What the files of one run directory say about it."""
    from trm.logs import read_metrics  # skips a line cut by a crash

    metrics_path = directory / "metrics.jsonl"
    records = read_metrics(metrics_path) if metrics_path.exists() else []
    train = [r for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval"]
    latest = directory / "checkpoints" / "latest"
    checkpoint = latest.read_text().strip() if latest.exists() else None
    if checkpoint is not None and not (directory / "checkpoints" / checkpoint / "COMPLETE").exists():
        checkpoint = None
    return {
        "run": directory.name,
        "step": train[-1]["step"] if train else 0,
        "epoch": train[-1].get("epoch") if train else None,
        "checkpoint": checkpoint,
        "eval_step": evals[-1]["step"] if evals else None,
        "eval": headline(evals[-1]) if evals else "-",
    }


@click.command("runs")
@click.argument("folder", default="runs", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
def runs(folder: Path, as_json: bool) -> None:
    """List the run directories in FOLDER (default: runs): last logged step and epoch, latest complete
    checkpoint, and the last evaluation's headline metric (exact accuracy; ARC: pass@2)."""
    from trm.errors import UserError

    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder of runs")
    rows = [describe_run(d) for d in sorted(folder.iterdir()) if (d / "recipe.yaml").is_file()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"{folder}: no run directories (folders with a recipe.yaml)")
        return
    width = max(len(r["run"]) for r in rows)
    click.echo(f"{'run':<{width}}  {'step':>8}  {'epoch':>9}  {'checkpoint':<12}  last evaluation")
    for r in rows:
        epoch = f"{r['epoch']:.1f}" if isinstance(r["epoch"], (int, float)) else "-"
        evaluation = f"step {r['eval_step']}: {r['eval']}" if r["eval_step"] is not None else "-"
        click.echo(f"{r['run']:<{width}}  {r['step']:>8,}  {epoch:>9}  {r['checkpoint'] or '-':<12}  {evaluation}")

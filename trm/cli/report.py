"""``trm report RUN_DIR``: one self-contained HTML page about a run (no network: images and styles are inline).

Sections: the run (task, steps, checkpoint), learning curves (drawn from metrics.jsonl), evaluation results (the
in-training evaluations and every ``trm eval`` report in the run directory, with the puzzle-identifier check when
one was run), the depth curve (accuracy against supervision steps, from ``trm eval`` reports at several depths, and
any depth-curve pictures in the run directory), sample trajectories (pictures ``trm eval --trajectories`` wrote,
else drawn now when the run's store is here) and the resolved recipe.
"""

from __future__ import annotations

import base64
import html
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import click

from trm.errors import UserError

STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1180px;
       color: #1d1d1f; background: #ffffff; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; border-bottom: 1px solid #ddd; padding-bottom: 4px;
margin-top: 28px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; } th { background: #f4f4f6; }
td.key, th.key { text-align: left; font-family: Menlo, Consolas, monospace; }
pre { background: #f6f8fa; border: 1px solid #e1e4e8; padding: 10px; font-size: 12px; overflow: auto; }
img { max-width: 100%; display: block; margin: 8px 0; border: 1px solid #eee; }
.note { color: #666; font-size: 13px; } .meta td { text-align: left; }
"""


def _image(path_or_bytes: Path | bytes, alt: str, element_id: str | None = None) -> str:
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    kind = "gif" if data[:3] == b"GIF" else "png"
    ident = f' id="{element_id}"' if element_id else ""
    return f'<img{ident} alt="{html.escape(alt)}" src="data:image/{kind};base64,{base64.b64encode(data).decode()}">'


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}" if value.is_integer() else f"{value:.4f}"
    return html.escape(str(value))


def _table(rows: list[dict[str, Any]], keys: list[str]) -> str:
    head = "".join(f'<th class="{"key" if k == "metric" else ""}">{html.escape(k)}</th>' for k in keys)
    body = "".join("<tr>" + "".join(f'<td class="{"key" if k == "metric" else ""}">{_format(row.get(k, ""))}</td>'
                                    for k in keys) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _metric_table(columns: dict[str, dict[str, Any]]) -> str:
    """Metrics down, one column per named result."""
    keys = list(dict.fromkeys(k for metrics in columns.values() for k in metrics))
    rows = [{"metric": key, **{name: metrics.get(key, "") for name, metrics in columns.items()}} for key in keys]
    return _table(rows, ["metric", *columns])


def _eval_reports(run_dir: Path) -> list[dict[str, Any]]:
    reports = []
    for path in sorted(run_dir.glob("eval-*.json")):
        try:
            report = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(report, dict) and isinstance(report.get("metrics"), dict):
            report["_file"] = path.name
            reports.append(report)
    return reports


def _headline(metrics: dict[str, Any]) -> str | None:
    """The metric a depth curve plots: the first exact accuracy / pass@1 / rate the results have."""
    for suffix in ("exact_accuracy", "pass@1", "accuracy", "rate"):
        for key in metrics:
            if key.endswith(suffix) and isinstance(metrics[key], (int, float)):
                return key
    return None


def _depth_curve(reports: list[dict[str, Any]], target: Path) -> Path | None:
    """Accuracy against max_steps when the run has ``trm eval`` reports of one checkpoint at >= 2 depths."""
    from trm.trajectory import pyplot

    by_checkpoint: dict[tuple, dict[int, dict]] = {}
    for report in reports:
        # step_cap is the depth asked for (older reports called it max_steps); adaptive runs stop earlier
        depth = report.get("step_cap", report.get("max_steps"))
        if depth is None or report.get("halting", "fixed") != "fixed":
            continue
        key = (report.get("step"), report.get("split"), report.get("limit"))
        by_checkpoint.setdefault(key, {})[int(depth)] = report["metrics"]
    curves = {key: depths for key, depths in by_checkpoint.items() if len(depths) >= 2}
    if not curves:
        return None
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(6, 3.6))
    for (step, split, limit), depths in sorted(curves.items(), key=lambda item: str(item[0])):
        metric = _headline(next(iter(depths.values())))
        if metric is None:
            continue
        points = sorted((depth, metrics.get(metric)) for depth, metrics in depths.items()
                        if isinstance(metrics.get(metric), (int, float)))
        axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=f"step {step} {split}: {metric}")
    axes.set_xscale("log", base=2)
    axes.set_xlabel("supervision steps (max_steps)")
    axes.set_ylabel("accuracy")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(target, dpi=90)
    plt.close(figure)
    return target


def _trajectory_pictures(run_dir: Path, limit: int) -> list[Path]:
    found = sorted((run_dir / "eval").glob("*/trajectories/*.png")) if (run_dir / "eval").is_dir() else []
    found += sorted((run_dir / "eval").glob("*/trajectories/*.gif")) if (run_dir / "eval").is_dir() else []
    newest = {}
    for path in found:  # the newest evaluation's pictures
        newest.setdefault(path.parent, []).append(path)
    if not newest:
        return []
    latest = max(newest, key=lambda folder: folder.stat().st_mtime)
    return sorted(newest[latest])[:limit]


def _draw_trajectories(run_dir: Path, count: int, directory: Path) -> tuple[list[Path], str]:
    """Trajectories drawn now from the run's latest checkpoint, or ([], why not)."""
    from trm.cli.solve import load_for_solving
    from trm.solve import eval_trajectories

    try:
        loaded = load_for_solving(run_dir)
    except UserError as exc:
        return [], f"no trajectories: {exc}"
    info = loaded.context.store_info
    split = getattr(loaded.recipe.eval, "split", "test")
    halting = getattr(loaded.recipe.eval, "halting", "fixed")
    if info is None or split not in info.splits:
        return [], (f"no trajectories: the run's store {loaded.recipe.data.store} (split '{split}') is not here; "
                    "draw them where it is with trm eval --trajectories N")
    from trm.store import open_store

    store = open_store(Path(loaded.recipe.data.store))
    steps = loaded.recipe.eval.max_steps or loaded.model.halting.max_steps
    pictures = eval_trajectories(loaded.model, store.split(split), loaded.task, loaded.context, count, directory,
                                 max_steps=int(steps), halting=halting,
                                 halt_threshold=getattr(loaded.recipe.eval, "halt_threshold", None),
                                 seed=loaded.recipe.train.seed, ignore_label_id=info.ignore_label_id, candidates=64)
    return pictures, f"drawn for this report from {loaded.checkpoint.name} ({halting} halting, at most {steps} steps)"


def build_report(run_dir: Path, out: Path | None = None, *, trajectories: int = 2) -> Path:
    """Write the report of ``run_dir`` to ``out`` (default RUN_DIR/report.html) and return its path."""
    from trm.logs import plot_curves, read_metrics

    run_dir = Path(run_dir)
    recipe_path = run_dir / "recipe.yaml"
    if not run_dir.is_dir() or not recipe_path.is_file():
        raise UserError(f"{run_dir}: not a run directory (no recipe.yaml); give a directory written by trm run")
    out = Path(out) if out is not None else run_dir / "report.html"
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: no such directory {out.parent}")
    metrics_path = run_dir / "metrics.jsonl"
    records = read_metrics(metrics_path) if metrics_path.exists() else []
    train = [r for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval"]
    reports = _eval_reports(run_dir)
    recipe_text = recipe_path.read_text()
    parts = [f"<h1>trm run report: {html.escape(run_dir.resolve().name)}</h1>"]
    checkpoints = sorted((run_dir / "checkpoints").glob("step_*"), key=lambda p: int(p.name.split("_")[-1])) \
        if (run_dir / "checkpoints").is_dir() else []
    meta = [("run directory", str(run_dir)),
            ("optimizer steps logged", train[-1]["step"] if train else "none"),
            ("latest checkpoint", checkpoints[-1].name if checkpoints else "none"),
            ("evaluations", f"{len(evals)} during training, {len(reports)} by trm eval")]
    parts.append('<table class="meta">' + "".join(f"<tr><th>{html.escape(k)}</th><td>{_format(v)}</td></tr>"
                                                  for k, v in meta) + "</table>")
    with tempfile.TemporaryDirectory(prefix="trm-report-") as scratch:
        scratch_dir = Path(scratch)
        parts.append("<h2>Learning curves</h2>")
        curves = plot_curves(metrics_path, scratch_dir / "curves.png") if records else None
        if curves is not None:
            parts.append(_image(curves, "learning curves", "curves"))
        else:
            parts.append('<p class="note">no metrics.jsonl records to draw</p>')

        parts.append("<h2>Evaluation results</h2>")
        if evals:
            columns = {f"step {r['step']}": {k: v for k, v in r.items() if k not in ("kind", "step", "epoch", "wall_s")}
                       for r in evals[-6:]}
            parts.append('<p class="note">during training (the last six evaluations)</p>' + _metric_table(columns))
        for report in reports:
            depth = report.get("step_cap", report.get("max_steps"))
            title = (f"{report['_file']}: step {report.get('step')}, split {report.get('split')}, "
                     f"{report.get('halting', 'fixed')} halting, max_steps {depth}, {report.get('weights', '')} "
                     "weights")
            columns = {"result": report["metrics"]}
            replaced = report.get("puzzle_ids")
            if isinstance(replaced, dict):
                columns[f"{replaced.get('mode')} puzzle ids"] = replaced.get("metrics", {})
                columns["drop"] = replaced.get("drop", {})
            parts.append(f'<p class="note">{html.escape(title)}</p>' + _metric_table(columns))
        if not evals and not reports:
            parts.append('<p class="note">no evaluation yet (trm eval RUN_DIR writes one)</p>')

        parts.append("<h2>Depth curve</h2>")
        depth = _depth_curve(reports, scratch_dir / "depth.png")
        pictures = sorted(p for p in run_dir.rglob("*depth*.png") if "checkpoints" not in p.parts)
        if depth is not None:
            parts.append('<p class="note">from trm eval reports of one checkpoint at several fixed --max-steps</p>'
                         + _image(depth, "accuracy against supervision steps", "depth"))
        for picture in pictures:  # trm eval --depth-curve writes depth_curve.png beside depth_curve.json
            parts.append(f'<p class="note">{html.escape(str(picture.relative_to(run_dir)))}</p>'
                         + _image(picture, picture.name))
            table = picture.with_suffix(".json")
            rows = json.loads(table.read_text()).get("rows") if table.is_file() else None
            if isinstance(rows, list) and rows and isinstance(rows[0], dict):
                parts.append(_table(rows, list(rows[0])))
        if depth is None and not pictures:
            parts.append('<p class="note">no depth curve: evaluate one checkpoint at several depths '
                         '(trm eval RUN_DIR --max-steps N for a few N) to draw one</p>')

        parts.append("<h2>Sample trajectories</h2>")
        shown = _trajectory_pictures(run_dir, trajectories) if trajectories > 0 else []
        why = "from the latest trm eval --trajectories"
        if trajectories and not shown:
            shown, why = _draw_trajectories(run_dir, trajectories, scratch_dir / "trajectories")
        if shown:
            parts.append(f'<p class="note">{html.escape(why)}</p>')
            for index, picture in enumerate(shown):
                parts.append(_image(picture, picture.stem, "trajectory" if index == 0 else None))
        else:
            parts.append(f'<p class="note">{html.escape(why if trajectories else "not asked for (--trajectories 0)")}</p>')

        parts.append("<h2>Recipe</h2>")
        parts.append(f"<pre>{html.escape(recipe_text)}</pre>")
    page = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>trm report {html.escape(run_dir.name)}"
            f"</title><style>{STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
    temporary = out.with_name(f".{out.name}.partial-{os.getpid()}")
    temporary.write_text(page, encoding="utf-8")
    os.replace(temporary, out)
    return out


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
    written = build_report(Path(run_dir), Path(out) if out else None, trajectories=trajectories)
    click.echo(f"report: {written}")

"""Run logs: ``metrics.jsonl`` (one JSON object per line, train and eval records), the learning-curve PNG, and the
experiment trackers ``TRM_TRACKERS`` chooses."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from trm.errors import UserError


class MetricsLog:
    """Append-only JSONL file, flushed per line so a killed run loses nothing it reported."""

    def __init__(self, path: Path, *, enabled: bool = True):
        self.path, self.enabled = Path(path), enabled

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        with self.path.open("a") as handle:
            handle.write(json.dumps(clean) + "\n")
            handle.flush()

    def truncate_after(self, step: int) -> None:
        """Drop records past ``step`` (a resumed run redoes them), atomically."""
        if not self.enabled or not self.path.exists():
            return
        kept = [line for line in self.path.read_text().splitlines() if line.strip() and _step(line) <= step]
        temporary = self.path.with_name(f".{self.path.name}.partial-{os.getpid()}")
        temporary.write_text("".join(line + "\n" for line in kept))
        os.replace(temporary, self.path)


def _step(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (json.JSONDecodeError, TypeError, ValueError):
        return 1 << 62  # a torn last line (killed mid-write) is dropped


def read_metrics(path: Path) -> list[dict[str, Any]]:
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def plot_curves(metrics_path: Path, png_path: Path) -> Path | None:
    """Loss and accuracy against steps (train and eval) as a PNG; None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    records = read_metrics(metrics_path) if Path(metrics_path).exists() else []
    train = [r for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval"]
    figure, (loss_axis, acc_axis) = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        steps = [r["step"] for r in train]
        for key in ("lm_loss", "q_halt_loss"):
            loss_axis.plot(steps, [r.get(key) for r in train], label=f"train {key}")
        for key in ("accuracy", "exact_accuracy"):
            acc_axis.plot(steps, [r.get(key) for r in train], label=f"train {key}", alpha=0.7)
    for key in sorted({k for r in evals for k in r if k.endswith("accuracy") or k.endswith("rate") or "pass@" in k}):
        points = [(r["step"], r[key]) for r in evals if r.get(key) is not None]
        if points:
            acc_axis.plot(*zip(*points), marker="o", label=f"eval {key}")
    loss_axis.set_xlabel("optimizer step"), loss_axis.set_ylabel("loss"), loss_axis.set_yscale("log")
    acc_axis.set_xlabel("optimizer step"), acc_axis.set_ylabel("accuracy"), acc_axis.set_ylim(0, 1.02)
    for axis in (loss_axis, acc_axis):
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7)
    figure.tight_layout()
    temporary = png_path.with_name(f".{png_path.name}.partial-{os.getpid()}.png")
    figure.savefig(temporary, dpi=90)
    plt.close(figure)
    os.replace(temporary, png_path)
    return png_path


def chosen_trackers() -> list[str]:
    """The experiment trackers ``TRM_TRACKERS`` names (``auto``: TensorBoard when installed), for the Accelerator."""
    chosen = [name.strip() for name in os.environ.get("TRM_TRACKERS", "auto").split(",") if name.strip()]
    if chosen == ["auto"]:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            return []
        return ["tensorboard"]
    from accelerate.utils import LoggerType

    known = sorted(kind.value for kind in LoggerType if kind.value != "all")
    unknown = [name for name in chosen if name not in known and name not in ("none", "auto")]
    if unknown:
        raise UserError(f"TRM_TRACKERS: unknown tracker {', '.join(map(repr, unknown))}; expected auto, none or a "
                        f"comma-separated list of {', '.join(known)}")
    return [name for name in chosen if name not in ("none", "auto")]

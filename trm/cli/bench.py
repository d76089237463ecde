"""``trm bench``: time compiled training steps of the paper's configurations (logic in trm/bench.py)."""

from __future__ import annotations

from pathlib import Path

import click

from trm.types import FUSED_SWIGLU_CHOICES, RECOMPUTE_CHOICES


@click.command("bench")
@click.option("--config", "names", multiple=True, metavar="NAME",
              help="sudoku-mlp, sudoku-att, arc-att or maze-att, or a paper recipe's name such as arc2_attn (repeatable; default: all four).")
@click.option("--tiny", is_flag=True, help="Small versions of the configurations (runs on a CPU in seconds).")
@click.option("--device", default=None, help="Device, e.g. cpu, cuda or cuda:1 (default: cuda when available, else cpu).")
@click.option("--steps", type=click.IntRange(min=1), default=30, show_default=True, help="Timed steps (the median is reported).")
@click.option("--warmup", type=click.IntRange(min=0), default=6, show_default=True, help="Untimed steps first (compilation happens here).")
@click.option("--compile/--no-compile", "compile_model", default=None,
              help="torch.compile the supervision step (default: on CUDA only).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Override every configuration's batch size.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write results as JSON.")
@click.option("--profile", "profile_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also profile 3 steps per configuration; write DIR/profile_<config>-<path>.txt (kernels by device time).")
@click.option("--compare", is_flag=True,
              help="Time the faithful and the fast path of each configuration in this process; print both, the "
                   "speedup, the memory ratio and the memory each holds for backward (--out: one object per "
                   "configuration).")
@click.option("--path", "path", type=click.Choice(["auto", "fast", "faithful"]), default="auto", show_default=True,
              help="Engine path without --compare (auto: fast on CUDA, faithful elsewhere; docs/engine.md).")
@click.option("--recompute", "recompute", multiple=True, type=click.Choice(RECOMPUTE_CHOICES),
              help="The fast path's model.recompute (what backward computes again instead of keeping); repeat to "
                   "time several, each against one faithful measurement with --compare. Default: auto.")
@click.option("--fused-swiglu", "fused_swiglu", multiple=True, type=click.Choice(FUSED_SWIGLU_CHOICES),
              help="The fast path's model.fused_swiglu (the MLP-mixer's token SwiGLU as one Triton kernel, CUDA "
                   "only); repeat to time several (every pair with --recompute). Default: off, the recipes' default.")
def bench(names: tuple[str, ...], tiny: bool, device: str | None, steps: int, warmup: int, compile_model: bool | None,
          batch_size: int | None, out: Path | None, profile_dir: Path | None, compare: bool, path: str,
          recompute: tuple[str, ...], fused_swiglu: tuple[str, ...]) -> None:
    """Benchmark training steps: forward through one ACT step, loss, backward, sign-SGD and
    dense optimizer steps, metrics synced to the host. Batches: 768 (Sudoku), 192 (ARC/Maze;
    ARC with an 876,406-row puzzle table). Prints ms/step, samples/s, peak memory, TFLOP/s."""
    from trm.bench import run_bench

    run_bench(names=names, tiny=tiny, device=device, steps=steps, warmup=warmup, compile_model=compile_model,
              batch_size=batch_size, out=out, profile_dir=profile_dir, echo=click.echo, compare=compare, path=path,
              recompute=recompute, fused_swiglu=fused_swiglu)

"""Training-step benchmark of the paper's four configurations (``trm bench``).

One timed step is what the reference's training loop does per batch (PERFORMANCE.md): one ACT supervision step
through the (compiled) engine, the loss, backward of loss / batch, the sparse sign-SGD step on the puzzle table,
the dense optimizer step, and the metrics copied to the host (one synchronisation). The carry persists across
steps as in training, and every batch holds random tokens (never zeros). After ``warmup`` steps (compilation
happens there) each of ``steps`` steps is timed after its host synchronisation; the median is reported. On CUDA
the peak memory is the timed steps' (the peak statistics are reset after warm-up, whose compilation allocates too),
and ``held_for_backward_gib`` is what the allocator holds between a step's start and its backward: the tensors
forward keeps for backward plus the outputs, the part of the peak that ``model.recompute`` changes.

FLOPs per step are counted once with ``torch.utils.flop_counter`` on the meta device (matmuls and attention, forward
of all T(n+1) calls plus backward of the last n+1), so the estimate follows the model actually built rather than a
formula; it matches docs/reference-code.md 11 for the paper's configurations.
"""

from __future__ import annotations

import gc
import itertools
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import attrs
import torch

from trm.build import assemble, compiled_for, uses_fast_path, uses_fused_swiglu
from trm.devices import resolve_device
from trm.errors import UserError
from trm.types import FUSED_SWIGLU_CHOICES, RECOMPUTE_CHOICES
from trm.losses import act_loss, token_loss_name
from trm.optim import build_optimizers
from trm.recipe import ModelConfig, OptimConfig


@attrs.frozen
class BenchConfig:
    name: str
    backbone: str
    backbone_options: dict
    vocab_size: int
    seq_len: int  # L, without the prefix
    l_cycles: int  # n
    num_puzzle_identifiers: int
    batch_size: int
    hidden_size: int = 512
    h_cycles: int = 3  # T
    puzzle_emb_len: int = 16
    max_steps: int = 16


PAPER_CONFIGS = [
    BenchConfig("sudoku-mlp", "mlp_mixer", {}, 11, 81, 6, 1, 768),
    BenchConfig("sudoku-att", "attention", {"num_heads": 8}, 11, 81, 6, 1, 768),
    BenchConfig("arc-att", "attention", {"num_heads": 8}, 12, 900, 4, 876_406, 192),
    BenchConfig("maze-att", "attention", {"num_heads": 8}, 6, 900, 4, 1, 192),
]

# The recipes' names for the same configurations, so `trm bench --config arc2_attn` works too.
RECIPE_ALIASES = {"sudoku_mlp": "sudoku-mlp", "sudoku_attn": "sudoku-att", "arc1_attn": "arc-att",
                  "arc2_attn": "arc-att", "maze_attn": "maze-att"}

TINY_CONFIGS = [  # same shapes of computation, small enough for a CPU test
    attrs.evolve(c, name=c.name + "-tiny", hidden_size=64, puzzle_emb_len=2, h_cycles=2, l_cycles=2,
                 seq_len=16 if c.seq_len == 81 else 36, batch_size=8,
                 num_puzzle_identifiers=min(c.num_puzzle_identifiers, 1000),
                 backbone_options={"num_heads": 4} if c.backbone == "attention" else {})
    for c in PAPER_CONFIGS
]


# The paper's optimizer settings (docs/reference-code.md 8), with the ARC puzzle-embedding LR.
PAPER_OPTIM = OptimConfig(lr=1e-4, weight_decay=0.1, puzzle_emb_lr=1e-2, puzzle_emb_weight_decay=0.1)


def build(config: BenchConfig, device: torch.device, dtype: torch.dtype, fast: bool = False,
          recompute: str = "auto", fused_swiglu: str = "off") -> Any:
    model_config = ModelConfig(hidden_size=config.hidden_size, h_cycles=config.h_cycles, l_cycles=config.l_cycles,
                               puzzle_emb_len=config.puzzle_emb_len, puzzle_emb_dim=config.hidden_size,
                               recompute=recompute, fused_swiglu=fused_swiglu)
    with torch.device(device):
        return assemble(model_config, config.backbone, config.backbone_options, "act_q",
                        {"max_steps": config.max_steps, "exploration_prob": 0.1}, vocab_size=config.vocab_size,
                        seq_len=config.seq_len, num_puzzle_identifiers=config.num_puzzle_identifiers, dtype=dtype,
                        fast=fast)


def random_batch(config: BenchConfig, device: torch.device, generator: torch.Generator) -> dict[str, torch.Tensor]:
    shape = (config.batch_size, config.seq_len)
    inputs = torch.randint(1, config.vocab_size, shape, generator=generator, dtype=torch.int32)
    labels = torch.randint(1, config.vocab_size, shape, generator=generator)
    ids = torch.randint(0, config.num_puzzle_identifiers, (config.batch_size,), generator=generator, dtype=torch.int32)
    return {"inputs": inputs.to(device), "labels": labels.to(device), "puzzle_identifiers": ids.to(device)}


def count_step_flops(config: BenchConfig) -> float:
    """Matmul + attention FLOPs of one training step (forward and backward), counted on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    one = attrs.evolve(config, batch_size=1, num_puzzle_identifiers=1)
    model = build(one, torch.device("meta"), torch.float32)
    model.train()
    batch = {"inputs": torch.ones(1, one.seq_len, dtype=torch.int32, device="meta"),
             "labels": torch.ones(1, one.seq_len, dtype=torch.long, device="meta"),
             "puzzle_identifiers": torch.zeros(1, dtype=torch.int32, device="meta")}
    counter = FlopCounterMode(display=False)
    with counter:
        _, outputs = model(model.initial_carry(batch), batch)
        loss, _ = act_loss(outputs, model.halting)
        loss.backward()
    model.puzzle_emb.take_pending()
    return float(counter.get_total_flops()) * config.batch_size


def bench_one(config: BenchConfig, *, device: torch.device, steps: int, warmup: int, compile_model: bool,
              dtype: torch.dtype | None = None, profile_dir: Path | None = None, fast: bool = False,
              recompute: str = "auto", fused_swiglu: str = "off") -> dict[str, Any]:
    """Time ``steps`` training steps of ``config`` after ``warmup``; returns one result row. With ``profile_dir``,
    a few more steps run under ``torch.profiler`` and their kernel-time table goes to ``profile_<name>.txt``.
    ``recompute`` and ``fused_swiglu`` are the fast path's ``model.recompute`` and ``model.fused_swiglu``."""
    torch.manual_seed(0)
    cuda = device.type == "cuda"
    dtype = dtype or (torch.bfloat16 if cuda else torch.float32)
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    model = build(config, device, dtype, fast=fast, recompute=recompute, fused_swiglu=fused_swiglu)
    fused = uses_fused_swiglu(fused_swiglu, fast, device) and config.backbone == "mlp_mixer"
    model.train()
    loss_type = token_loss_name("stablemax", fast)
    dense, sparse = build_optimizers(model, PAPER_OPTIM)
    step_model = compiled_for(model, "on", device) if compile_model else model
    generator = torch.Generator().manual_seed(0)
    batches = [random_batch(config, device, generator) for _ in range(4)]
    carry = model.initial_carry(batches[0])

    held = []  # bytes allocated between the step's start and its backward: what forward keeps for backward

    def train_step(index: int) -> list[float]:
        nonlocal carry
        before = torch.cuda.memory_allocated(device) if cuda else 0
        carry, outputs = step_model(carry, batches[index % len(batches)])
        loss, metrics = act_loss(outputs, model.halting, loss_type=loss_type)
        if cuda:  # the allocator's own count, read on the host: no synchronisation
            held.append(torch.cuda.memory_allocated(device) - before)
        (loss / config.batch_size).backward()
        if sparse is not None:
            sparse.step()
        dense.step()
        dense.zero_grad(set_to_none=True)
        values = torch.stack([v.float() for v in metrics.values()]).tolist()  # the one host sync per step
        if not math.isfinite(values[list(metrics).index("lm_loss")]):  # a fast step that computes NaN is no result
            raise RuntimeError(f"{config.name}: the loss is not finite at benchmark step {index}")
        return values

    started = time.perf_counter()
    for index in range(warmup):
        train_step(index)
    warmup_s = time.perf_counter() - started
    # The peak is the steady training step's: compilation and autotuning during warm-up allocate too.
    peak_warmup = None
    if cuda:
        torch.cuda.synchronize(device)
        peak_warmup = torch.cuda.max_memory_allocated(device) / 2**30
        torch.cuda.reset_peak_memory_stats(device)
    held.clear()
    times = []
    for index in range(warmup, warmup + steps):
        begin = time.perf_counter()
        train_step(index)
        if cuda:
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - begin)
    median = statistics.median(times)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None
    profile = None
    if profile_dir is not None:
        label = (f"{config.name}-{'fast' if fast else 'faithful'}" + (f"-{recompute}" if fast and recompute != "auto" else "")
                 + ("-fused" if fused else ""))
        profile = Path(profile_dir) / f"profile_{label}.txt"
        write_profile(profile, label, train_step, warmup + steps, cuda)
    parameters = sum(p.numel() for p in model.parameters())
    flops = count_step_flops(config)
    return {
        "config": config.name, "backbone": config.backbone, "batch_size": config.batch_size,
        "seq_len": config.seq_len + config.puzzle_emb_len, "T": config.h_cycles, "n": config.l_cycles,
        "puzzle_identifiers": config.num_puzzle_identifiers,
        "dense_parameters": parameters,
        "ms_per_step": median * 1e3, "ms_mean": statistics.fmean(times) * 1e3, "ms_min": min(times) * 1e3, "ms_max": max(times) * 1e3,
        "samples_per_s": config.batch_size / median,
        "peak_memory_gib": peak,  # over the timed steps (with warmup 0, the first step's compilation too)
        "peak_with_warmup_gib": max(peak, peak_warmup) if cuda else None,
        "held_for_backward_gib": max(held) / 2**30 if held else None,
        "tflop_per_step": flops / 1e12, "tflop_per_s": flops / median / 1e12,
        "warmup_s": warmup_s, "steps": steps, "warmup": warmup, "compiled": compile_model,
        "dtype": str(dtype).split(".")[-1], "path": "fast" if fast else "faithful",
        "recompute": recompute if fast else None,
        "fused_swiglu": fused,  # model.fused_swiglu in effect (the MLP-mixer's token SwiGLU through Triton)
        "profile": str(profile) if profile is not None else None,
    }


def write_profile(path: Path, name: str, train_step: Any, first_index: int, cuda: bool, steps: int = 3) -> None:
    """Run ``steps`` more training steps under the profiler; write the operators and kernels sorted by self device
    time (CPU time on a CPU). The table's totals cover all ``steps`` steps."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        started = time.perf_counter()
        for index in range(first_index, first_index + steps):
            train_step(index)
        if cuda:
            torch.cuda.synchronize()
        wall_ms = (time.perf_counter() - started) / steps * 1e3
    table = prof.key_averages().table(sort_by="self_cuda_time_total" if cuda else "self_cpu_time_total",
                                      row_limit=60, max_name_column_width=100)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{name}: {steps} profiled steps, {wall_ms:.1f} ms/step under the profiler "
                    f"(divide the totals below by {steps})\n{table}\n")


def release(device: torch.device) -> None:
    """Free the last configuration before the next (compiled code and cached blocks), so that each peak-memory
    figure is the configuration's own. A leaked ARC table once added 1.8 GB to the Maze figure; the leak itself
    was a hook cycle in ``PuzzleEmbedding``, fixed there and tested in tests/test_engine.py."""
    torch._dynamo.reset()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def environment(device: torch.device) -> dict[str, Any]:
    info = {"torch": torch.__version__, "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def _setting(row: dict[str, Any]) -> str:
    """The recompute column: model.recompute, with "+fused" when the fused SwiGLU ran."""
    return (row.get("recompute") or "-") + ("+fused" if row.get("fused_swiglu") else "")


def format_table(rows: list[dict[str, Any]]) -> str:
    header = f"{'config':<16} {'recompute':>9} {'batch':>5} {'ms/step':>9} {'samples/s':>10} {'peak GiB':>9} {'TFLOP/step':>10} {'TFLOP/s':>8}"
    lines = [header, "-" * len(header)]
    for r in rows:
        memory = f"{r['peak_memory_gib']:.1f}" if r["peak_memory_gib"] is not None else "-"
        lines.append(f"{r['config']:<16} {_setting(r):>9} {r['batch_size']:>5} {r['ms_per_step']:>9.1f} {r['samples_per_s']:>10,.0f} "
                     f"{memory:>9} {r['tflop_per_step']:>10.3g} {r['tflop_per_s']:>8.3g}")
    return "\n".join(lines)


def compare_row(faithful: dict[str, Any], fast: dict[str, Any]) -> dict[str, Any]:
    """One configuration measured on both paths in the same process: the ratios ``trm bench --compare`` reports."""
    memory_ratio = (fast["peak_memory_gib"] / faithful["peak_memory_gib"]
                    if fast["peak_memory_gib"] and faithful["peak_memory_gib"] else None)
    return {
        "config": faithful["config"], "batch_size": faithful["batch_size"], "recompute": fast["recompute"],
        "fused_swiglu": fast["fused_swiglu"],
        "faithful_ms": faithful["ms_per_step"], "faithful_ms_min": faithful["ms_min"],
        "fast_ms": fast["ms_per_step"], "fast_ms_min": fast["ms_min"],
        "faithful_samples_per_s": faithful["samples_per_s"], "fast_samples_per_s": fast["samples_per_s"],
        "speedup": faithful["ms_per_step"] / fast["ms_per_step"],
        "faithful_peak_gib": faithful["peak_memory_gib"], "fast_peak_gib": fast["peak_memory_gib"],
        "memory_ratio": memory_ratio,
        "faithful_held_gib": faithful["held_for_backward_gib"], "fast_held_gib": fast["held_for_backward_gib"],
        "faithful": faithful, "fast": fast,
    }


def format_compare_table(rows: list[dict[str, Any]]) -> str:
    header = (f"{'config':<16} {'recompute':>9} {'batch':>5} {'faithful ms (min)':>18} {'fast ms (min)':>15} {'speedup':>8} "
              f"{'samples/s faithful':>18} {'fast':>8} {'peak GiB faithful':>17} {'fast':>6} {'memory':>7} "
              f"{'held GiB faithful':>17} {'fast':>6}")
    lines = [header, "-" * len(header)]
    for r in rows:
        gib = lambda v: f"{v:.1f}" if v is not None else "-"  # noqa: E731
        ratio = f"{r['memory_ratio']:.2f}x" if r["memory_ratio"] is not None else "-"
        lines.append(f"{r['config']:<16} {_setting(r):>9} {r['batch_size']:>5} "
                     f"{r['faithful_ms']:>9.1f} ({r['faithful_ms_min']:>6.1f}) {r['fast_ms']:>7.1f} ({r['fast_ms_min']:>5.1f}) "
                     f"{r['speedup']:>7.2f}x {r['faithful_samples_per_s']:>18,.0f} {r['fast_samples_per_s']:>8,.0f} "
                     f"{gib(r['faithful_peak_gib']):>17} {gib(r['fast_peak_gib']):>6} {ratio:>7} "
                     f"{gib(r['faithful_held_gib']):>17} {gib(r['fast_held_gib']):>6}")
    return "\n".join(lines)


def _profile_note(row: dict[str, Any]) -> str:
    return f"; profile: {row['profile']}" if row.get("profile") else ""


def run_bench(*, names: tuple[str, ...] = (), tiny: bool = False, device: str | None = None, steps: int = 30,
              warmup: int = 6, compile_model: bool | None = None, batch_size: int | None = None,
              out: Path | None = None, profile_dir: Path | None = None, echo: Any = print, compare: bool = False,
              path: str = "auto", recompute: tuple[str, ...] = ("auto",),
              fused_swiglu: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Benchmark the chosen configurations (all four by default); print a table; write JSON to ``out``.

    ``path`` picks the engine path (auto: fast on CUDA); ``compare`` times the faithful and the fast path of each
    configuration one after the other in this process and reports their ratios. ``recompute`` lists the fast
    path's ``model.recompute`` settings to time, ``fused_swiglu`` its ``model.fused_swiglu`` settings (every pair of
    the two is timed): with ``compare``, each against the one faithful measurement.
    """
    chosen = TINY_CONFIGS if tiny else PAPER_CONFIGS
    by_name = {c.name.removesuffix("-tiny"): c for c in chosen}
    names = tuple(RECIPE_ALIASES.get(n, n) for n in names)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise UserError(f"unknown benchmark config(s) {', '.join(unknown)}; choose from {', '.join(by_name)} "
                        f"(or a paper recipe's name: {', '.join(RECIPE_ALIASES)})")
    configs = [by_name[n] for n in names] if names else chosen
    recompute = tuple(dict.fromkeys((recompute,) if isinstance(recompute, str) else recompute)) or ("auto",)
    wrong = [r for r in recompute if r not in RECOMPUTE_CHOICES]
    if wrong:
        raise UserError(f"--recompute {wrong[0]}: expected one of {', '.join(RECOMPUTE_CHOICES)}")
    fused_swiglu = (tuple(dict.fromkeys((fused_swiglu,) if isinstance(fused_swiglu, str) else fused_swiglu))
                    or (attrs.fields(ModelConfig).fused_swiglu.default,))
    wrong = [f for f in fused_swiglu if f not in FUSED_SWIGLU_CHOICES]
    if wrong:
        raise UserError(f"--fused-swiglu {wrong[0]}: expected one of {', '.join(FUSED_SWIGLU_CHOICES)}")
    settings = list(itertools.product(recompute, fused_swiglu))
    # Every mistake is caught here, before minutes of benchmarking, not when the results are written.
    for option, value, least in (("--steps", steps, 1), ("--warmup", warmup, 0), ("--batch-size", batch_size, 1)):
        if value is not None and value < least:
            raise UserError(f"{option} {value}: expected an integer >= {least}")
    if out is not None and not Path(out).parent.is_dir():
        raise UserError(f"--out {out}: directory {Path(out).parent} does not exist")
    if profile_dir is not None:
        try:
            Path(profile_dir).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserError(f"--profile {profile_dir}: cannot create the directory ({error.strerror})") from None
    if batch_size is not None:
        configs = [attrs.evolve(c, batch_size=batch_size) for c in configs]
    target = resolve_device(device)
    defaults = ("auto", attrs.fields(ModelConfig).fused_swiglu.default)
    chosen = ([("--recompute", r) for r in recompute if r != defaults[0]]
              + [("--fused-swiglu", f) for f in fused_swiglu if f != defaults[1]])
    if not compare and not uses_fast_path(path, target) and chosen:
        option, value = chosen[0]
        raise UserError(f"{option} {value}: it sets the fast path, and --path {path} runs the faithful one "
                        f"here; add --path fast or --compare")
    if "on" in fused_swiglu:  # refused before anything is timed, as a recipe's model.fused_swiglu: on would be
        uses_fused_swiglu("on", True, target)
    compile_model = target.type == "cuda" if compile_model is None else compile_model
    rows = []
    for config in configs:
        if compare:
            faithful = bench_one(config, device=target, steps=steps, warmup=warmup, compile_model=compile_model,
                                 profile_dir=profile_dir, fast=False)
            release(target)
            echo(f"{config.name} (faithful): {faithful['ms_per_step']:.1f} ms/step{_profile_note(faithful)}")
            for setting, fused in settings:
                fast = bench_one(config, device=target, steps=steps, warmup=warmup, compile_model=compile_model,
                                 profile_dir=profile_dir, fast=True, recompute=setting, fused_swiglu=fused)
                release(target)
                echo(f"{config.name} (fast, recompute={_setting(fast)}): {fast['ms_per_step']:.1f} ms/step"
                     f"{_profile_note(fast)}")
                rows.append(compare_row(faithful, fast))
            continue
        fast = uses_fast_path(path, target)
        for setting, fused in settings if fast else [defaults]:
            rows.append(bench_one(config, device=target, steps=steps, warmup=warmup, compile_model=compile_model,
                                  profile_dir=profile_dir, fast=fast, recompute=setting, fused_swiglu=fused))
            release(target)
            shown = f"{rows[-1]['path']}, recompute={_setting(rows[-1])}" if fast else rows[-1]["path"]
            echo(f"{config.name} ({shown}): {rows[-1]['ms_per_step']:.1f} ms/step{_profile_note(rows[-1])}")
    echo(format_compare_table(rows) if compare else format_table(rows))
    if out is not None:
        Path(out).write_text(json.dumps({"environment": environment(target), "results": rows}, indent=2))
        echo(f"wrote {out}")
    return rows

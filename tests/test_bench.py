"""`trm bench`: the tiny CPU path end to end, and the FLOP estimates of the paper configurations (docs/reference-code.md 11)."""

import json

import pytest

from in_process import trm_in_process
from trm.bench import PAPER_CONFIGS, count_step_flops, run_bench


def test_tiny_bench_runs_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    result = trm_in_process("bench", "--tiny", "--config", "sudoku-mlp", "--config", "arc-att", "--steps", "2",
                            "--warmup", "1", "--out", str(out))  # the command, in this process
    assert result.returncode == 0, result.stderr
    assert "ms/step" in result.stdout and "TFLOP/s" in result.stdout
    data = json.loads(out.read_text())
    rows = data["results"]
    assert [r["config"] for r in rows] == ["sudoku-mlp-tiny", "arc-att-tiny"]
    for row in rows:
        assert row["ms_per_step"] > 0 and row["samples_per_s"] > 0 and row["tflop_per_step"] > 0
        assert row["steps"] == 2 and row["compiled"] is False
    assert data["environment"]["device"] == "cpu"


def test_profile_writes_a_table_per_configuration(tmp_path):
    rows = run_bench(names=("maze-att",), tiny=True, steps=1, warmup=1, profile_dir=tmp_path / "prof", echo=lambda _: None)
    text = (tmp_path / "prof" / "profile_maze-att-tiny-faithful.txt").read_text()  # on the CPU auto = faithful
    assert len(rows) == 1 and text.startswith("maze-att-tiny-faithful: 3 profiled steps")
    assert "aten::mm" in text or "aten::addmm" in text or "aten::bmm" in text  # the matmuls show up by name


def test_recipe_names_select_their_configuration():
    rows = run_bench(names=("maze_attn",), tiny=True, steps=1, warmup=0, echo=lambda _: None)
    assert [row["config"] for row in rows] == ["maze-att-tiny"]


def test_unknown_config_is_a_user_error():
    result = trm_in_process("bench", "--tiny", "--config", "chess")
    assert result.returncode == 2 and "unknown benchmark config" in result.stderr


@pytest.mark.parametrize("config,tflop", [("sudoku-mlp", 32.8), ("sudoku-att", 36.6), ("arc-att", 76.4)])
def test_flop_counts_match_the_reference_estimates(config, tflop):
    chosen = next(c for c in PAPER_CONFIGS if c.name == config)
    assert abs(count_step_flops(chosen) / 1e12 - tflop) < 0.1


@pytest.mark.parametrize("kwargs, message", [
    ({"out": "/nonexistent/x.json"}, "--out /nonexistent/x.json: directory /nonexistent does not exist"),
    ({"steps": 0}, "--steps 0: expected an integer >= 1"),
    ({"batch_size": 0}, "--batch-size 0: expected an integer >= 1"),
    ({"device": "gpu"}, "--device 'gpu': not a device"),
    ({"profile_dir": "/proc/x/prof"}, "--profile /proc/x/prof: cannot create the directory"),
    ({"recompute": ("sometimes",)}, "--recompute sometimes: expected one of auto, none, swiglu"),
    ({"recompute": "swiglu", "path": "faithful"}, "--recompute swiglu: it sets the fast path, and --path faithful"),
    ({"fused_swiglu": ("sometimes",)}, "--fused-swiglu sometimes: expected one of auto, on, off"),
    ({"fused_swiglu": ("off", "auto"), "path": "faithful"},
     "--fused-swiglu auto: it sets the fast path, and --path faithful"),
    ({"fused_swiglu": ("on",), "device": "cpu", "path": "fast"}, "model.fused_swiglu: on, but it runs on CUDA only"),
])
def test_mistakes_fail_before_any_benchmark_runs(kwargs, message, monkeypatch):
    from trm import bench as bench_module
    from trm.errors import UserError

    monkeypatch.setattr(bench_module, "bench_one", lambda *a, **k: pytest.fail("the benchmark ran"))
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        run_bench(tiny=True, echo=lambda _: None, **kwargs)


def test_cuda_without_cuda_is_one_line(monkeypatch):
    from trm.devices import resolve_device
    from trm.errors import UserError

    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(UserError, match="--device cuda: CUDA is not available"):
        resolve_device("cuda")
    assert resolve_device("cpu").type == "cpu"


@pytest.mark.parametrize("args, option", [(["--steps", "0"], "--steps"), (["--batch-size", "0"], "--batch-size"),
                                          (["--warmup", "-1"], "--warmup")])
def test_cli_rejects_counts_below_one(args, option):
    from click.testing import CliRunner

    from trm.cli import cli

    result = CliRunner().invoke(cli, ["bench", "--tiny", *args])
    assert result.exit_code == 2 and f"Invalid value for '{option}'" in result.output


def test_compare_times_both_paths_and_reports_their_ratios(tmp_path):
    import json

    out = tmp_path / "compare.json"
    rows = run_bench(names=("sudoku-mlp",), tiny=True, steps=1, warmup=0, compare=True, out=out,
                     profile_dir=tmp_path / "prof", echo=lambda _: None)
    row = json.loads(out.read_text())["results"][0]
    for key in ("config", "faithful_ms", "fast_ms", "speedup", "faithful_peak_gib", "fast_peak_gib", "memory_ratio"):
        assert key in row
    assert row["faithful"]["path"] == "faithful" and row["fast"]["path"] == "fast"
    assert row["speedup"] == pytest.approx(row["faithful_ms"] / row["fast_ms"])
    assert rows[0]["config"] == "sudoku-mlp-tiny"
    assert {p.name for p in (tmp_path / "prof").iterdir()} == {"profile_sudoku-mlp-tiny-faithful.txt",
                                                               "profile_sudoku-mlp-tiny-fast.txt"}


def test_compare_times_each_recompute_setting_against_one_faithful_run(tmp_path):
    import json

    out, lines = tmp_path / "compare.json", []
    run_bench(names=("sudoku-mlp",), tiny=True, steps=1, warmup=0, compare=True, out=out,
              recompute=("none", "swiglu", "none"), echo=lines.append)
    rows = json.loads(out.read_text())["results"]
    assert [r["recompute"] for r in rows] == ["none", "swiglu"] and [r["fast"]["recompute"] for r in rows] == ["none", "swiglu"]
    assert rows[0]["faithful"] == rows[1]["faithful"], "one faithful measurement for both settings"
    assert sum("(faithful)" in line for line in lines) == 1
    assert any("recompute=swiglu" in line for line in lines)
    table = lines[-2]
    assert "recompute" in table.splitlines()[0] and "swiglu" in table.splitlines()[-1]

"""`trm bench`: the tiny CPU path end to end, and the FLOP estimates of the paper configurations (REFERENCE.md 11)."""

import json
import subprocess
import sys

import pytest

from trm.bench import PAPER_CONFIGS, count_step_flops, run_bench


def test_tiny_bench_runs_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "trm", "bench", "--tiny", "--config", "sudoku-mlp", "--config",
                             "arc-att", "--steps", "2", "--warmup", "1", "--out", str(out)],
                            capture_output=True, text=True, timeout=600)
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
    text = (tmp_path / "prof" / "profile_maze-att-tiny.txt").read_text()
    assert len(rows) == 1 and text.startswith("maze-att-tiny: 3 profiled steps")
    assert "aten::mm" in text or "aten::addmm" in text or "aten::bmm" in text  # the matmuls show up by name


def test_unknown_config_is_a_user_error():
    result = subprocess.run([sys.executable, "-m", "trm", "bench", "--tiny", "--config", "chess"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "unknown benchmark config" in result.stderr


@pytest.mark.parametrize("config,tflop", [("sudoku-mlp", 32.8), ("sudoku-att", 36.6), ("arc-att", 76.4)])
def test_flop_counts_match_the_reference_estimates(config, tflop):
    chosen = next(c for c in PAPER_CONFIGS if c.name == config)
    assert abs(count_step_flops(chosen) / 1e12 - tflop) < 0.1

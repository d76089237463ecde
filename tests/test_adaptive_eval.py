"""Adaptive halting with continuous batching (trm/evaluate.py): per-example results equal evaluating each example
alone, refill in split order, every example exactly once, batches larger than the split, depth beyond training's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trm.build import assemble
from trm.engine import ModelConfig
from trm.errors import UserError
from trm.evaluate import MemorySplit as ArraySplit, StopRule, evaluate, stop_rule_for


class Recorder:
    """An evaluator that keeps every example it is handed, in order."""

    def __init__(self) -> None:
        self.chunks: list[tuple[dict, dict]] = []

    def update(self, batch, outputs) -> None:
        self.chunks.append(({k: np.array(v) for k, v in batch.items()}, {k: np.array(v) for k, v in outputs.items()}))

    def compute(self) -> dict[str, float]:
        return {"seen": float(sum(len(b["inputs"]) for b, _ in self.chunks))}

    def joined(self, key: str, where: str = "outputs") -> np.ndarray:
        index = 1 if where == "outputs" else 0
        return np.concatenate([chunk[index][key] for chunk in self.chunks])


def tiny_model(halting: str = "act_q", max_steps: int = 4, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    config = ModelConfig(hidden_size=32, h_cycles=2, l_cycles=1, puzzle_emb_len=1, puzzle_emb_dim=32)
    options = {"max_steps": max_steps} if halting == "fixed" else {"max_steps": max_steps, "exploration_prob": 0.0}
    model = assemble(config, "attention", {"num_heads": 4, "layers": 1}, halting, options, vocab_size=6, seq_len=9,
                     num_puzzle_identifiers=5)
    with torch.no_grad():  # a random halting head, so that examples stop after different numbers of steps
        model.q_head.weight.normal_(0, 0.3)
        model.q_head.bias.zero_()
        model.puzzle_emb.weights.normal_(0, 1)
    return model.eval()


def tiny_split(count: int, seed: int = 1) -> ArraySplit:
    rng = np.random.default_rng(seed)
    inputs = rng.integers(1, 6, size=(count, 9)).astype(np.uint8)
    labels = rng.integers(1, 6, size=(count, 9)).astype(np.uint8)
    ids = rng.integers(0, 5, size=count).astype(np.int32)
    return ArraySplit(inputs, labels, ids)


def run(model, split, *, batch: int, halting: str = "adaptive", max_steps: int | None = None,
        threshold: float | None = None) -> tuple[Recorder, dict]:
    recorder = Recorder()
    metrics = evaluate(model, split, [("rec", recorder)], accelerator=None, global_batch_size=batch,
                       max_steps=max_steps, halting=halting, halt_threshold=threshold, show_progress=False)
    return recorder, metrics


def test_each_example_gets_what_it_gets_alone():
    model, split = tiny_model(max_steps=6), tiny_split(37)
    together, metrics = run(model, split, batch=8)
    steps = together.joined("steps")
    assert len(set(steps.tolist())) >= 3, f"the test needs examples stopping at different steps, got {set(steps)}"
    for row in range(split.num_examples):
        alone, _ = run(model, ArraySplit(split.inputs[row:row + 1], split.labels[row:row + 1],
                                         split.puzzle_identifiers[row:row + 1]), batch=1)
        assert alone.joined("steps")[0] == steps[row], row
        np.testing.assert_array_equal(alone.joined("preds")[0], together.joined("preds")[row])
        np.testing.assert_allclose(alone.joined("q_halt")[0], together.joined("q_halt")[row], rtol=1e-5, atol=1e-6)
    assert metrics["eval/examples"] == 37
    assert metrics["eval/mean_steps"] == pytest.approx(steps.mean())
    assert metrics["eval/max_steps"] == steps.max()


def test_evaluators_get_every_example_once_in_split_order():
    model, split = tiny_model(max_steps=6), tiny_split(50)
    recorder, _ = run(model, split, batch=7)
    np.testing.assert_array_equal(recorder.joined("inputs", "batch"), split.inputs.astype(np.int32))
    np.testing.assert_array_equal(recorder.joined("puzzle_identifiers", "batch"), split.puzzle_identifiers)
    assert all(len(chunk[0]["inputs"]) <= 7 for chunk in recorder.chunks)  # at most one global batch per update
    assert recorder.joined("valid", "batch").all()


def test_a_batch_larger_than_the_split():
    model, split = tiny_model(max_steps=5), tiny_split(3)
    big, _ = run(model, split, batch=64)
    small, _ = run(model, split, batch=1)
    np.testing.assert_array_equal(big.joined("steps"), small.joined("steps"))
    np.testing.assert_array_equal(big.joined("preds"), small.joined("preds"))


def test_fixed_depth_and_depth_beyond_training():
    model, split = tiny_model(max_steps=3), tiny_split(11)
    recorder, metrics = run(model, split, batch=4, halting="fixed", max_steps=9)  # 3x the trained maximum
    assert (recorder.joined("steps") == 9).all()
    assert metrics["eval/mean_steps"] == 9 and metrics["eval/p90_steps"] == 9
    # The prediction of a fixed-depth evaluation is that of the last step: compare with stepping by hand.
    batch = {"inputs": torch.from_numpy(split.inputs.astype(np.int32)),
             "labels": torch.from_numpy(split.labels.astype(np.int64)),
             "puzzle_identifiers": torch.from_numpy(split.puzzle_identifiers)}
    with torch.no_grad():
        carry = model.initial_carry(batch)
        for _ in range(9):
            carry, out = model(carry, batch, max_steps=9)
    np.testing.assert_array_equal(recorder.joined("preds"), out["logits"].argmax(-1).numpy())


def test_adaptive_cap_beyond_training_lets_examples_run_longer():
    model, split = tiny_model(max_steps=2), tiny_split(30)
    capped, _ = run(model, split, batch=8, max_steps=2)
    deeper, _ = run(model, split, batch=8, max_steps=12)
    assert capped.joined("steps").max() == 2
    assert deeper.joined("steps").max() > 2
    # An example that stopped before the cap stops at the same step with a deeper cap.
    early = capped.joined("steps") < 2
    np.testing.assert_array_equal(deeper.joined("steps")[early], capped.joined("steps")[early])


def test_threshold_and_strategy_rules():
    model = tiny_model(max_steps=8)
    q_halt = torch.tensor([-1.0, 0.5, 2.0])
    q_continue = torch.tensor([0.0, 1.0, 0.0])
    steps = torch.tensor([1, 1, 1])
    assert StopRule("adaptive", 8).stop(model.halting, steps, q_halt, q_continue).tolist() == [False, True, True]
    # sigmoid(0.5) = 0.62, sigmoid(2) = 0.88: a confidence of 0.8 keeps the second row going.
    assert StopRule("adaptive", 8, 0.8).stop(model.halting, steps, q_halt, q_continue).tolist() == [False, False, True]
    assert StopRule("fixed", 8).stop(model.halting, steps, q_halt, q_continue).tolist() == [False, False, False]
    assert StopRule("fixed", 1).stop(model.halting, steps, q_halt, q_continue).tolist() == [True, True, True]
    hrm = tiny_model("act_q_continue", max_steps=8)
    assert StopRule("adaptive", 8).stop(hrm.halting, steps, q_halt, q_continue).tolist() == [False, False, True]
    fixed = tiny_model("fixed", max_steps=8)
    assert StopRule("adaptive", 8).stop(fixed.halting, steps, q_halt, q_continue).tolist() == [False, False, False]
    with pytest.raises(UserError, match="threshold"):
        StopRule("adaptive", 8, 1.5)


def test_a_higher_threshold_never_stops_earlier():
    model, split = tiny_model(max_steps=6), tiny_split(40)
    default, _ = run(model, split, batch=8)
    strict, _ = run(model, split, batch=8, threshold=0.9)
    assert (strict.joined("steps") >= default.joined("steps")).all()
    assert (strict.joined("steps") > default.joined("steps")).any()


def test_a_strategy_without_halt_logit_falls_back_to_fixed(capsys):
    class Old:  # a third-party strategy written before adaptive evaluation
        max_steps = 5

    rule = stop_rule_for(Old(), "adaptive", None)
    assert rule.mode == "fixed" and rule.max_steps == 5
    assert "halt_logit" in capsys.readouterr().out


def test_python_api_solve_matches_the_evaluation():
    from trm.api import TrainedModel

    model, split = tiny_model(max_steps=6), tiny_split(12)
    recorder, _ = run(model, split, batch=5)
    solved = TrainedModel(model, None, None, torch.device("cpu")).solve(split.inputs, split.puzzle_identifiers,
                                                                         batch_size=5)
    np.testing.assert_array_equal(solved.steps, recorder.joined("steps"))
    np.testing.assert_array_equal(solved.predictions, recorder.joined("preds"))
    assert ((solved.confidence > 0.5) | (solved.steps == 6)).all()


def test_python_api_solve_defaults_to_the_runs_eval_settings():
    # trm eval and trm solve take halting, max_steps and halt_threshold from the run's eval section; so must the API,
    # or one model gives two answers depending on how it is called.
    from types import SimpleNamespace

    from trm.api import TrainedModel

    model, split = tiny_model(max_steps=6), tiny_split(40)
    strict, _ = run(model, split, batch=8, threshold=0.9)
    with_threshold = SimpleNamespace(eval=SimpleNamespace(halting="adaptive", max_steps=None, halt_threshold=0.9))
    solved = TrainedModel(model, with_threshold, None, torch.device("cpu")).solve(
        split.inputs, split.puzzle_identifiers, batch_size=8)
    np.testing.assert_array_equal(solved.steps, strict.joined("steps"))
    plain = TrainedModel(model, with_threshold, None, torch.device("cpu")).solve(
        split.inputs, split.puzzle_identifiers, batch_size=8, halt_threshold=0.5)
    assert (solved.steps > plain.steps).any()  # the recipe's threshold was applied, not the plain rule
    fixed = SimpleNamespace(eval=SimpleNamespace(halting="fixed", max_steps=3, halt_threshold=None))
    steps = TrainedModel(model, fixed, None, torch.device("cpu")).solve(split.inputs, split.puzzle_identifiers).steps
    assert (steps == 3).all()


def test_trm_eval_halting_options_and_depth_curve(tmp_path):
    """`trm eval --halting fixed|adaptive` and `--depth-curve` on a tiny trained run: the results JSON fields, the
    fixed depth honoured, and the curve's table and picture."""
    import json

    from in_process import trm_in_process  # the commands in this process: nothing here is about the process
    from test_train import write_recipe

    recipe = write_recipe(tmp_path, steps=12)
    run_dir = tmp_path / "run"
    done = trm_in_process("run", str(recipe), "--run-dir", str(run_dir), "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    fixed = trm_in_process("eval", str(run_dir), "--halting", "fixed", "--max-steps", "5", "--no-progress",
                           "--out", str(tmp_path / "fixed.json"))
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    report = json.loads((tmp_path / "fixed.json").read_text())
    assert report["halting"] == "fixed" and report["step_cap"] == 5
    assert report["mean_steps"] == 5 and report["p90_steps"] == 5 and report["max_steps"] == 5
    assert report["puzzles_per_s"] > 0 and "eval/puzzles_per_s" in fixed.stdout
    adaptive = trm_in_process("eval", str(run_dir), "--halting", "adaptive", "--max-steps", "5", "--halt-threshold",
                              "0.6", "--no-progress", "--out", str(tmp_path / "adaptive.json"))
    assert adaptive.returncode == 0, adaptive.stderr[-3000:]
    report = json.loads((tmp_path / "adaptive.json").read_text())
    assert report["halting"] == "adaptive" and report["halt_threshold"] == 0.6 and 1 <= report["mean_steps"] <= 5
    curve = trm_in_process("eval", str(run_dir), "--depth-curve", "1,2,4", "--no-progress", "--out-dir",
                           str(tmp_path / "curve"))
    assert curve.returncode == 0, curve.stderr[-3000:]
    rows = json.loads((tmp_path / "curve" / "depth_curve.json").read_text())["rows"]
    assert [(r["halting"], r["depth"]) for r in rows] == [("fixed", 1), ("fixed", 2), ("fixed", 4), ("adaptive", 4)]
    assert [r["mean_steps"] for r in rows[:3]] == [1, 2, 4]
    assert (tmp_path / "curve" / "depth_curve.csv").read_text().count("\n") == 5
    png = tmp_path / "curve" / "depth_curve.png"
    assert png.exists() == ("picture: " + str(png) in curve.stdout)
    bad = trm_in_process("eval", str(run_dir), "--depth-curve", "1,x")
    assert bad.returncode == 2 and "step counts" in bad.stderr and "Traceback" not in bad.stderr
    # trm eval calls the model as training did: compiled when the run's train.compile says so (auto: CUDA only).
    from trm.cli.evaluate import load_evaluation
    from trm.distributed import make_accelerator
    from trm.evaluate import is_compiled

    for setting, expected in (("on", True), ("off", False), ("auto", torch.cuda.is_available())):
        loaded = load_evaluation(run_dir, (f"train.compile={setting}",), accelerator=make_accelerator(), split=None,
                                 limit=None, batch_size=None, use_ema=True, allow_other_store=False)
        assert is_compiled(loaded.step_model) == expected and not is_compiled(loaded.model), setting


class CountingModel(torch.nn.Module):
    """Counts the calls and batch sizes of the model it wraps (attributes such as halting pass through)."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner, self.calls = inner, []

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.inner, name)

    @torch.compiler.disable  # counted eagerly: a traced list append would guard on the list's length
    def count(self, rows: int) -> None:
        self.calls.append(rows)

    def forward(self, carry, batch, max_steps=None):
        self.count(batch["inputs"].shape[0])
        return self.inner(carry, batch, max_steps=max_steps)


def test_a_compiled_model_gives_the_same_results_and_is_warmed_up_once_untimed():
    from trm.evaluate import is_compiled
    from trm.integrity import ReplacedIdentifiers

    model, split = tiny_model(max_steps=6), tiny_split(21)

    def calls_of(wrapped, counting, **options):
        counting.calls.clear()
        recorder, metrics = run(wrapped, split, batch=8, **options)
        return recorder, metrics, list(counting.calls)

    eager = CountingModel(model)
    plain, plain_metrics, plain_calls = calls_of(eager, eager)
    counting = CountingModel(model)
    compiled = torch.compile(counting, backend="eager")  # tracing only: no C++ compiler needed on the CPU
    assert is_compiled(compiled) and not is_compiled(model) and not is_compiled(eager)
    assert is_compiled(ReplacedIdentifiers(compiled, torch.arange(5))), "a wrapper must not hide the compilation"
    first, metrics, first_calls = calls_of(compiled, counting)
    for key in ("steps", "preds"):
        np.testing.assert_array_equal(first.joined(key), plain.joined(key))
    assert metrics["eval/mean_steps"] == plain_metrics["eval/mean_steps"]
    # The uncompiled model shrinks its batch once the split is exhausted; the compiled one keeps its shape and
    # takes one more (warm-up) step, before the clock starts.
    assert min(plain_calls) < 8 and set(first_calls) == {8}
    assert len(first_calls) == len(plain_calls) + 1
    _, _, second_calls = calls_of(compiled, counting)
    assert len(second_calls) == len(plain_calls), "the same shape and cap again: no second warm-up"
    deeper, _, deeper_calls = calls_of(compiled, counting, max_steps=7)
    expected, _, expected_calls = calls_of(eager, eager, max_steps=7)
    np.testing.assert_array_equal(deeper.joined("steps"), expected.joined("steps"))
    assert len(deeper_calls) == len(expected_calls) + 1, "a new step cap is a new graph: warmed up again"


def test_the_compiled_model_keeps_static_shapes_from_training_to_evaluation():
    # A run trains at one batch shape and evaluates at another; trm eval sees only the second. Both must get the
    # same static graph for the evaluation shape (a dynamic-batch graph rounds differently on the GPU).
    from trm.build import compiled_for

    graphs = []

    def recording(graph_module, example_inputs):
        graphs.append(["dynamic" if isinstance(i, torch.SymInt) else "static" for i in example_inputs])
        return graph_module.forward

    torch._dynamo.reset()
    try:
        model, split = tiny_model(max_steps=3), tiny_split(10)
        compiled = compiled_for(model, "on", torch.device("cpu"), backend=recording)
        batch = {"inputs": torch.as_tensor(split.inputs[:6]).long(), "labels": torch.as_tensor(split.labels[:6]).long(),
                 "puzzle_identifiers": torch.as_tensor(split.puzzle_identifiers[:6]).long()}
        model.train()
        carry = model.initial_carry(batch)
        compiled(carry, batch)  # a training-shaped call, with gradients
        model.eval()
        run(compiled, split, batch=8)  # the evaluation batch: another shape
    finally:
        torch._dynamo.reset()
    assert len(graphs) >= 2 and all(kind == "static" for graph in graphs for kind in graph), graphs


def test_the_depth_curve_picture_labels_its_x_ticks_with_the_depths(monkeypatch, tmp_path):
    """The log x axis said 10^0, 2x10^0, 3x10^0, 4x10^0 for depths 1,2,4: its ticks are now the depths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from trm.cli.evaluate import plot_depth_curve

    labels, close = [], plt.close

    def recording_close(figure=None):
        figure.canvas.draw()
        for axes in figure.axes:
            labels.append(([t.get_text() for t in axes.get_xticklabels()],
                           [t.get_text() for t in axes.get_xticklabels(minor=True) if t.get_text()]))
        close(figure)

    monkeypatch.setattr(plt, "close", recording_close)
    rows = [{"halting": "fixed", "depth": depth, "metric": "exact_match/exact_accuracy", "value": 0.1 * depth,
             "mean_steps": depth, "p90_steps": depth, "puzzles_per_s": 100 / depth, "examples": 8}
            for depth in (1, 2, 4)]
    rows.append({"halting": "adaptive", "depth": 4, "metric": "exact_match/exact_accuracy", "value": 0.35,
                 "mean_steps": 2.6, "p90_steps": 4, "puzzles_per_s": 40, "examples": 8})
    assert plot_depth_curve(rows, tmp_path / "curve.png") == tmp_path / "curve.png"
    assert labels == [(["1", "2", "4"], []), (["1", "2", "4"], [])]


@pytest.mark.parametrize("value, shown", [("1,x,4", "'x' is not a whole number"), ("0,4", "step counts >= 1")])
def test_a_bad_depth_curve_names_the_option_and_the_value(value, shown, tmp_path):
    from click.testing import CliRunner

    from trm.cli import cli

    result = CliRunner().invoke(cli, ["eval", str(tmp_path), "--depth-curve", value])
    assert result.exit_code == 2, result.output
    assert "--depth-curve" in result.output and repr(value) in result.output and shown in result.output
    assert "Traceback" not in result.output


def test_describe_evaluation_says_the_checkpoint_weights_split_and_stop_rule():
    from trm.cli.evaluate import describe_evaluation

    report = {"checkpoint": "runs/x/checkpoints/step_1125", "weights": "ema", "split": "test", "halting": "adaptive",
              "step_cap": 16, "halt_threshold": 0.9, "metrics": {"eval/examples": 500.0}}
    assert describe_evaluation(report) == ("checkpoint runs/x/checkpoints/step_1125 (EMA weights), split 'test', "
                                           "500 examples: adaptive halting (halt when confidence > 0.9), at most 16 steps")
    plain = {**report, "halt_threshold": None, "weights": "live"}
    assert describe_evaluation(plain).endswith("(live weights), split 'test', 500 examples: adaptive halting "
                                               "(halt by the halting strategy's rule), at most 16 steps")
    fixed = {**report, "halting": "fixed", "halt_threshold": None, "step_cap": 1}
    assert describe_evaluation(fixed).endswith("500 examples: fixed 1 step")


def test_trm_eval_says_what_it_evaluated_and_a_missing_split_lists_the_splits(tiny_sudoku_run, tmp_path):
    """The first line names the checkpoint, weights, split, examples and stop rule actually used; a fixed-depth
    report records no threshold (the recipe's 0.95 is for adaptive halting); a split the store lacks is named
    with the ones it has, before the model is loaded."""
    import json

    from in_process import trm_in_process as trm  # the command in this process: its output is the same

    checkpoint = sorted((tiny_sudoku_run / "checkpoints").glob("step_*"))[-1]
    fixed = trm("eval", str(tiny_sudoku_run), "--halting", "fixed", "--max-steps", "3", "--limit", "16",
                "--no-progress", "--out", str(tmp_path / "fixed.json"))
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    assert fixed.stdout.splitlines()[0] == (f"checkpoint {checkpoint} (EMA weights), split 'test', 16 examples: "
                                            "fixed 3 steps")
    report = json.loads((tmp_path / "fixed.json").read_text())
    assert report["halting"] == "fixed" and report["step_cap"] == 3 and report["halt_threshold"] is None
    assert {"puzzles_per_s", "mean_steps", "p90_steps", "max_steps", "step_cap"} <= set(report)
    adaptive = trm("eval", str(tiny_sudoku_run), "--limit", "16", "--no-progress", "--out", str(tmp_path / "a.json"))
    assert adaptive.returncode == 0, adaptive.stderr[-3000:]
    report = json.loads((tmp_path / "a.json").read_text())
    assert adaptive.stdout.splitlines()[0] == (
        f"checkpoint {checkpoint} (EMA weights), split 'test', 16 examples: adaptive halting (halt when confidence "
        f"> {report['halt_threshold']:g}), at most {report['step_cap']} steps")
    assert report["halt_threshold"] == 0.95  # the recipe's eval.halt_threshold (recipes/quickstart_4x4.yaml)
    missing = trm("eval", str(tiny_sudoku_run), "--split", "validation", "--no-progress")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "has no 'validation' split (it has: test, train)" in missing.stderr

"""What `trm run` promises when things go wrong (docs/reliability.md, "Runs and checkpoints").

Each test injects one fault into a tiny CPU run: an evaluator or hook that raises, a metric that is not a number,
out of memory on an evaluation batch, a damaged test split, a second writer, a stale lock, resume overrides that
would change the model, a store built with other options, a vanished store, damaged checkpoint files, a full disk.
Faults come from a one-off plugin file (FAULTS below) switched by environment variables, so that the same run
directory can then be resumed without the fault.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from in_process import trm_in_process
from test_train import assert_same_records, eval_records, train_records, trm, write_recipe
from trm.checkpoint import find_checkpoint, prune_checkpoints, read_checkpoint, write_checkpoint
from trm.errors import UserError
from trm.run_lock import RunLock
from trm.train import best_evaluated_step

FAULTS = '''
import os
import attrs
import torch
from trm.hookspecs import hookimpl
from trm.types import EvaluatorSpec

def _armed(kind, step=None):
    if os.environ.get("TRM_TEST_FAULT") != kind:
        return False
    at = os.environ.get("TRM_TEST_FAULT_STEP")
    return at is None or step is None or int(at) == step

class Faulty:
    def update(self, batch, outputs):
        if _armed("update"):
            raise RuntimeError("evaluator bug")
    def compute(self):
        if _armed("compute"):
            return {"score": "high"}
        return {"score": 1.0}
    def write(self, directory):
        return []

@attrs.frozen
class _Options:
    pass

@hookimpl
def trm_evaluators():
    return [EvaluatorSpec(name="faulty", options_class=_Options, build=lambda options, context: Faulty(),
                          summary="test evaluator that fails on demand")]

@hookimpl
def trm_after_eval(recipe, run_dir, step, metrics):
    if _armed("hook", step):
        raise ValueError(f"hook broke at step {step}")

from trm.engine import TinyRecursiveModel
_forward = TinyRecursiveModel.forward
def _forward_or_oom(self, *args, **kwargs):
    if not self.training and _armed("oom"):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
    return _forward(self, *args, **kwargs)
TinyRecursiveModel.forward = _forward_or_oom
'''

FAULTY = ("eval.evaluators=[exact_match, faulty]",)


def faulty_recipe(tmp_path: Path, steps: int = 6) -> Path:
    """The tiny recipe with the FAULTS plugin file (absolute: the run's saved recipe.yaml names it too)."""
    (tmp_path / "faults.py").write_text(FAULTS)
    return write_recipe(tmp_path, steps=steps, extra=f"plugins: [{tmp_path / 'faults.py'}]\n")


def trm_here(*args, env: dict | None = None):
    """``trm ARGS`` in this process (tests/in_process.py), with TinyRecursiveModel.forward put back afterwards: the
    FAULTS file replaces it when it is loaded, which a subprocess would forget on exit."""
    from trm.engine import TinyRecursiveModel

    forward = TinyRecursiveModel.forward
    try:
        return trm_in_process(*args, env=env)
    finally:
        TinyRecursiveModel.forward = forward


def one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr and len(lines) == 1, result.stderr[-3000:]
    return lines[0]


def complete_checkpoints(run: Path) -> list[str]:
    return sorted((p.name for p in (run / "checkpoints").glob("step_*")), key=lambda name: int(name[5:]))


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """One tiny complete run (2 steps, evaluated at the end, FAULTS loaded but unarmed) that tests copy."""
    root = tmp_path_factory.mktemp("base")
    run = root / "run"
    result = trm("run", str(faulty_recipe(root, steps=2)), *FAULTY, "--run-dir", str(run), "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    return run


def copy_run(base_run: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    return run


# ---- item 2: no training lost to evaluation ------------------------------------------------------------------


def test_final_evaluator_failure_keeps_the_checkpoint_and_resume_reruns_the_evaluation(base_run, tmp_path):
    run = copy_run(base_run, tmp_path)
    failed = trm_here("run", "--resume", str(run), "train.max_steps=3", "--no-progress",
                      env={"TRM_TEST_FAULT": "update"})
    assert failed.returncode == 3  # the fault is a bug in the (test's) plugin, not the user's input
    line = one_line(failed)
    assert line.startswith("trm: error: bug in plugin ")
    assert "evaluation at step 3 failed in evaluator 'faulty' (update): RuntimeError: evaluator bug" in line
    assert "checkpoint of step 3 is kept" in line and f"trm run --resume {run}" in line
    assert complete_checkpoints(run) == ["step_2", "step_3"] and [r["step"] for r in eval_records(run)] == [2]
    evaluated = trm_here("eval", str(run), "--no-progress")  # a complete run whose final evaluation failed
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert json.loads(sorted(run.glob("eval-step_3-*.json"))[-1].read_text())["step"] == 3
    resumed = trm_here("run", "--resume", str(run), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "final evaluation did not finish; running it again" in resumed.stdout
    assert [r["step"] for r in eval_records(run)] == [2, 3] and len(train_records(run)) == 3
    again = trm_here("run", "--resume", str(run), "--no-progress")
    assert again.returncode == 0 and "the run is complete (3/3 optimizer steps)" in again.stdout
    assert [r["step"] for r in eval_records(run)] == [2, 3]  # no evaluation logged twice
    saved, history = (run / "recipe.yaml").read_text(), (run / "history.jsonl").read_text()
    shorter = trm_here("run", "--resume", str(run), "train.max_steps=2", "--no-progress")  # trains nothing
    assert shorter.returncode == 0 and "the run is complete (3/2 optimizer steps)" in shorter.stdout
    assert "recipe.yaml and history.jsonl left unchanged" in shorter.stdout
    assert (run / "recipe.yaml").read_text() == saved and (run / "history.jsonl").read_text() == history


def test_failing_hook_in_a_mid_run_evaluation_resumes_exactly_and_logs_each_evaluation_once(tmp_path):
    # 64 training groups / batch 32: an epoch is 2 steps, so eval.every=1 evaluates at steps 2 and 4, then at 5.
    recipe = faulty_recipe(tmp_path, steps=5)
    every = (*FAULTY, "eval.every=1", f"data.store={tmp_path / 'small.zarr'}", "task.options.num_train=64",
             "task.options.num_test=32")
    straight = trm_here("run", str(recipe), *every, "--run-dir", str(tmp_path / "straight"), "--no-progress")
    assert straight.returncode == 0, straight.stderr[-3000:]
    run = tmp_path / "run"
    failed = trm_here("run", str(recipe), *every, "--run-dir", str(run), "--no-progress",
                      env={"TRM_TEST_FAULT": "hook", "TRM_TEST_FAULT_STEP": "2"})
    assert failed.returncode == 3  # a bug in the hook's plugin
    line = one_line(failed)
    assert "evaluation at step 2 failed in hook trm_after_eval: ValueError: hook broke at step 2" in line
    assert "continues training" in line and complete_checkpoints(run) == ["step_2"] and not eval_records(run)
    resumed = trm_here("run", "--resume", str(run), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "the evaluation at step 2 did not finish last time; running it again" in resumed.stdout
    assert [r["step"] for r in eval_records(run)] == [r["step"] for r in eval_records(tmp_path / "straight")]
    assert [r["step"] for r in eval_records(run)] == [2, 4, 5]
    assert_same_records(train_records(run), train_records(tmp_path / "straight"))
    assert_same_records(eval_records(run), eval_records(tmp_path / "straight"))


@pytest.mark.parametrize("fault, expected, code", [
    # A metric that is no number breaks the evaluator contract: the plugin's bug, exit 3 (docs/plugins.md).
    ("compute", "failed in evaluator 'faulty' (compute): compute() returned score='high' (str), expected a number",
     3),
    ("oom", "failed: out of memory on an evaluation batch (lower eval.batch_size", 2),
])
def test_non_numeric_metric_and_out_of_memory_are_one_line_with_the_checkpoint_kept(base_run, tmp_path, fault,
                                                                                      expected, code):
    run = copy_run(base_run, tmp_path)
    failed = trm_here("run", "--resume", str(run), "train.max_steps=3", "--no-progress",
                      env={"TRM_TEST_FAULT": fault})
    assert failed.returncode == code and expected in one_line(failed)
    assert complete_checkpoints(run)[-1] == "step_3"
    evaluated = trm_here("eval", str(run), "--no-progress", env={"TRM_TEST_FAULT": fault})  # trm eval: the same
    assert evaluated.returncode == code and expected in one_line(evaluated)
    assert "the run directory is unchanged" in evaluated.stderr


def test_damaged_test_split_fails_the_evaluation_not_the_training(base_run, tmp_path):
    shared = Path(yaml.safe_load((base_run / "recipe.yaml").read_text())["data"]["store"])
    store = tmp_path / "damaged.zarr"
    shutil.copytree(shared, store)
    chunks = [chunk for chunk in (store / "test" / "inputs" / "c").rglob("*") if chunk.is_file()]
    assert chunks
    for chunk in chunks:
        chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])  # truncated shards
    recipe, run = write_recipe(tmp_path, steps=2), tmp_path / "run"
    failed = trm_here("run", str(recipe), f"data.store={store}", "--run-dir", str(run), "--no-progress")
    assert failed.returncode == 2
    assert "evaluation at step 2 failed" in one_line(failed) and complete_checkpoints(run) == ["step_2"]


# ---- item 4: one writer per run directory -------------------------------------------------------------------


def test_second_writer_is_refused_and_a_stale_lock_is_taken_over(base_run, tmp_path):
    run = copy_run(base_run, tmp_path)
    assert not (run / "trm.lock").exists()  # released at the end of the run
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from trm.run_lock import RunLock
        RunLock({str(run)!r}).acquire()
        print("locked", flush=True)
        time.sleep(120)
        """)], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        refused = trm_here("run", "--resume", str(run), "train.max_steps=3", "--no-progress")
        assert refused.returncode == 2
        assert f"{run}: in use by process {holder.pid} on {socket.gethostname()}" in one_line(refused)
    finally:
        holder.kill()
        holder.wait()
    assert (run / "trm.lock").exists()  # a SIGKILLed holder leaves its file: a stale lock
    taken = trm_here("run", "--resume", str(run), "train.max_steps=3", "--no-progress")
    assert taken.returncode == 0, taken.stderr[-3000:]
    assert f"taking over the lock of process {holder.pid} on {socket.gethostname()}" in taken.stderr
    assert "which is no longer running" in taken.stderr and not (run / "trm.lock").exists()


def test_lock_in_process_refuses_a_second_holder_and_names_foreign_hosts(tmp_path):
    first = RunLock(tmp_path)
    first.acquire()
    with pytest.raises(UserError, match=f"in use by process {os.getpid()} on"):
        RunLock(tmp_path).acquire()
    first.release()
    assert not (tmp_path / "trm.lock").exists()
    (tmp_path / "trm.lock").write_text(json.dumps({"pid": 1, "host": "elsewhere.example", "since": "then"}))
    with pytest.raises(UserError, match="cannot be checked from this host; if that process is gone, remove"):
        RunLock(tmp_path).acquire()
    (tmp_path / "trm.lock").write_text(json.dumps({"pid": 2**22 + 12345, "host": socket.gethostname()}))
    with RunLock(tmp_path):  # a dead PID on this host: taken over
        assert json.loads((tmp_path / "trm.lock").read_text())["pid"] == os.getpid()


# ---- item 5: resumes are recorded, the model and data are not changed ------------------------------------------


@pytest.mark.parametrize("override", ["model.l_cycles=5", "halting.options.max_steps=3", "task.options.num_train=10",
                                      "data.store=elsewhere.zarr", "backbone.options.positions=learned",
                                      "model={hidden_size: 32}"])
def test_resume_overrides_that_change_the_model_or_data_are_refused(tmp_path, override):
    from trm.config import load_recipe
    from trm.run_history import check_resume_overrides

    recipe = write_recipe(tmp_path)
    overrides = (override, "train.max_steps=9")
    with pytest.raises(UserError, match=r"^--resume RUN: " + override.replace("{", ".").replace("}", ".") +
                       ": a resumed run cannot change (model|halting|task|data|backbone)"):
        check_resume_overrides(Path("RUN"), load_recipe(recipe), load_recipe(recipe, overrides), overrides)
    same = ("model.l_cycles=2", "train.max_steps=9", "eval.limit=8")
    check_resume_overrides(Path("RUN"), load_recipe(recipe), load_recipe(recipe, same), same)  # no change: allowed


def test_resume_overrides_are_recorded_in_recipe_and_history(base_run, tmp_path):
    run = copy_run(base_run, tmp_path)
    refused = trm_here("run", "--resume", str(run), "model.l_cycles=5", "train.max_steps=3", "--no-progress")
    assert refused.returncode == 2
    assert "model.l_cycles=5: a resumed run cannot change model.*" in one_line(refused)
    assert yaml.safe_load((run / "recipe.yaml").read_text())["model"]["l_cycles"] == 2
    longer = trm_here("run", "--resume", str(run), "train.max_steps=3", "model.l_cycles=2",
                      "--no-progress")  # no change
    assert longer.returncode == 0, longer.stderr[-3000:]
    assert yaml.safe_load((run / "recipe.yaml").read_text())["train"]["max_steps"] == 3
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [(h["event"], h["step"], h["overrides"]) for h in history] == [
        ("start", 0, list(FAULTY)), ("resume", 2, ["train.max_steps=3", "model.l_cycles=2"])]
    assert all(h["time"] and h["trm_version"] and h["host"] for h in history)


# ---- item 6: the store matches the recipe ----------------------------------------------------------------------


def test_store_built_with_other_task_options_is_refused_or_accepted_and_recorded(base_run, tmp_path):
    recipe = write_recipe(tmp_path, steps=1)  # the store base_run built, with num_train=2000
    refused = trm_here("run", str(recipe), "task.options.num_train=1999", "--run-dir", str(tmp_path / "run"),
                       "--no-progress")
    assert refused.returncode == 2
    assert "built with other task options than the recipe's (num_train: store 2000, recipe 1999)" in one_line(refused)
    assert not (tmp_path / "run").exists()  # a start that fails leaves no run directory
    accepted = trm_here("run", str(recipe), "task.options.num_train=1999", "data.match_task_options=false",
                        "--run-dir", str(tmp_path / "run"), "--no-progress")
    assert accepted.returncode == 0, accepted.stderr[-3000:]
    assert "training on it anyway (data.match_task_options: false)" in accepted.stdout
    start = json.loads((tmp_path / "run" / "history.jsonl").read_text().splitlines()[0])
    assert start["store_task_options_differ"] == {"num_train": [2000, 1999]}


def test_resume_never_builds_a_missing_store(base_run, tmp_path):
    run = copy_run(base_run, tmp_path)
    saved = yaml.safe_load((run / "recipe.yaml").read_text())
    store = tmp_path / "vanished.zarr"
    saved["data"]["store"] = str(store)  # the run's store, gone (build_if_missing is true in this recipe)
    (run / "recipe.yaml").write_text(yaml.safe_dump(saved))
    resumed = trm_here("run", "--resume", str(run), "train.max_steps=3", "--no-progress")
    assert resumed.returncode == 2
    assert f"{store}: dataset store not found; a resumed run never builds its store" in one_line(resumed)
    assert not store.exists()


# ---- item 7: damaged checkpoints, a full disk, a missing EMA file ------------------------------------------------


def _checkpoint(tmp_path: Path, step: int = 5) -> Path:
    return write_checkpoint(tmp_path, step, model_state={"w": torch.zeros(3)}, ema_state={"w": torch.ones(3)},
                            optim_state={"dense": {"m": torch.zeros(2)}}, state={"step": step}, identifiers=["a", "b"])


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("file, damage, expected", [
    ("model.safetensors", lambda p: p.unlink(), "checkpoint file missing"),
    ("model.safetensors", lambda p: p.write_bytes(b""), "damaged checkpoint file (empty)"),
    ("ema.safetensors", _truncate, "damaged checkpoint file (SafetensorError"),
    ("optim.safetensors", lambda p: p.write_bytes(b"\xff" * 8 + b"garbage"), "damaged checkpoint file (SafetensorError"),
    ("state.json", lambda p: p.write_text("{not json"), "damaged checkpoint file (JSONDecodeError"),
    ("identifiers.json.gz", lambda p: p.write_bytes(b"not gzip at all"), "damaged checkpoint file (BadGzipFile"),
    ("identifiers.json.gz", _truncate, "damaged checkpoint file (truncated"),
])
def test_damaged_checkpoint_files_are_named_in_one_line(tmp_path, file, damage, expected):
    checkpoint = _checkpoint(tmp_path)
    damage(checkpoint / file)
    with pytest.raises(UserError) as caught:
        read_checkpoint(checkpoint)
    assert str(caught.value).startswith(f"{checkpoint / file}: {expected}"), str(caught.value)
    assert "\n" not in str(caught.value)


def test_disk_full_while_writing_a_checkpoint_removes_the_partial_files(tmp_path, monkeypatch):
    _checkpoint(tmp_path, step=5)
    import trm.checkpoint as checkpoint_module

    real = checkpoint_module.save_file
    calls = []

    def full_disk(tensors, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:  # the model file is written, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        return real(tensors, path, *args, **kwargs)

    monkeypatch.setattr(checkpoint_module, "save_file", full_disk)
    with pytest.raises(UserError) as caught:
        _checkpoint(tmp_path, step=9)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'checkpoints' / 'step_9'}: cannot write the checkpoint (No space left")
    assert "partial files are removed and the last complete checkpoint, step_5, is kept" in message
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest", "step_5"]
    assert find_checkpoint(tmp_path).name == "step_5"


def test_trm_eval_says_a_missing_ema_file_on_stdout_and_names_a_damaged_one(base_run, tmp_path):
    run = copy_run(base_run, tmp_path)
    (run / "checkpoints" / "step_2" / "ema.safetensors").unlink()
    result = trm_here("eval", str(run), "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ema.safetensors: it is missing" in result.stdout and "evaluating the live weights" in result.stdout
    model = run / "checkpoints" / "step_2" / "model.safetensors"
    _truncate(model)
    damaged = trm_here("eval", str(run), "--no-progress")
    assert damaged.returncode == 2 and one_line(damaged).startswith(f"trm: error: {model}: damaged checkpoint file")


# ---- item 8: tidiness -----------------------------------------------------------------------------------------


def test_a_start_that_fails_leaves_no_run_directory(tmp_path):
    recipe = write_recipe(tmp_path, steps=2, extra=f"plugins: [{tmp_path / 'broken.py'}]\n")
    (tmp_path / "broken.py").write_text("from trm.hookspecs import hookimpl\n@hookimpl\ndef trm_before_run(recipe, run_dir):\n"
                                        "    raise RuntimeError('before_run broke')\n")
    result = trm_here("run", str(recipe), "--run-dir", str(tmp_path / "run"), "--no-progress")
    assert result.returncode != 0 and "before_run broke" in result.stderr
    assert not (tmp_path / "run").exists()


def test_keep_checkpoints_keeps_the_latest_and_the_best(tmp_path):
    recipe, run = write_recipe(tmp_path, steps=4, ckpt=1), tmp_path / "run"
    kept = trm_here("run", str(recipe), "train.keep_checkpoints=2", "--run-dir", str(run), "--no-progress")
    assert kept.returncode == 0, kept.stderr[-3000:]
    assert complete_checkpoints(run) == ["step_3", "step_4"]
    for step in (1, 2, 3, 4):
        _checkpoint(tmp_path, step=step)
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"kind": "train", "step": 1, "lm_loss": 1.0},
        {"kind": "eval", "step": 1, "epoch": 0.1, "x/exact_accuracy": 0.2, "x/cell_accuracy": 0.9},
        {"kind": "eval", "step": 2, "epoch": 0.2, "x/exact_accuracy": 0.5, "x/cell_accuracy": 0.1},
        {"kind": "eval", "step": 3, "epoch": 0.3, "x/exact_accuracy": None, "x/cell_accuracy": 1.0},
        {"kind": "eval", "step": 4, "epoch": 0.4, "x/exact_accuracy": 0.4, "x/cell_accuracy": 0.0},
    ]))
    from trm.logs import read_metrics

    best = best_evaluated_step(read_metrics(tmp_path / "metrics.jsonl"))
    assert best == 2
    removed = prune_checkpoints(tmp_path / "checkpoints", 1, {best})
    assert sorted(p.name for p in removed) == ["step_1", "step_3"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*")) == ["step_2", "step_4"]
    assert best_evaluated_step([]) is None


def test_store_option_comparison_accepts_the_same_directory_and_a_fetched_source(tmp_path):
    from trm.run_history import _option_differences

    (tmp_path / "raw").mkdir()
    same = {"source": str(tmp_path / "raw"), "seed": 0}
    spelled = {"source": str(tmp_path / "." / "raw"), "seed": 0}
    assert _option_differences(same, spelled) == {}
    fetched = {"source": "/cache/trm/sudoku-extreme", "seed": 0}  # the store records where fetch:NAME resolved to
    assert _option_differences(fetched, {"source": "fetch:sudoku-extreme", "seed": 0}) == {}
    assert _option_differences(same, {"source": str(tmp_path / "other"), "seed": 1}) == {
        "seed": (0, 1), "source": (str(tmp_path / "raw"), str(tmp_path / "other"))}

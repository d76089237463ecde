"""The ARC task's command-line side: `trm arc stats` and `check-leakage`, `trm augment arc` mistakes, and arc_vote
through `trm eval` on one and on two processes."""

from __future__ import annotations

import json
from pathlib import Path

from trm.plugins import registry
from trm.store import open_store
from trm.store_write import build_store
from trm_arc.kaggle import write_subset
from trm_arc.options import ArcOptions


def test_misspelt_subset_is_named_first_with_a_suggestion(arc_dir):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "trm", "arc", "check-leakage", "--source", str(arc_dir),
                             "--subsets", "training,evalution", "--test-subset", "evaluation"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"trm: error: arc: unknown subset 'evalution' (did you mean 'evaluation'?): no "
        f"arc-agi_evalution_challenges.json in {arc_dir} (known subsets: concept, evaluation, training)"]


def test_unquoted_numeric_task_id_says_to_quote_it(arc_dir, tmp_path):
    from click.testing import CliRunner

    from trm.cli import cli

    result = CliRunner().invoke(cli, ["augment", "arc", "--source", str(arc_dir), "--out", str(tmp_path / "x.zarr"),
                                      "task_ids=[00576224]"])
    assert result.exit_code == 2 and not (tmp_path / "x.zarr").exists()
    assert "got int 195732 (YAML reads 00576224 as a number; quote it" in result.output
    assert """'task_ids=["00576224"]'""" in result.output

def test_leakage_command_exit_codes(arc_dir):
    from click.testing import CliRunner

    from trm_arc.commands import arc_group

    runner = CliRunner()
    result = runner.invoke(arc_group, ["check-leakage", "--source", str(arc_dir)])
    assert result.exit_code == 0, result.output
    raw = json.loads((arc_dir / "arc-agi_evaluation_challenges.json").read_text())
    solutions = json.loads((arc_dir / "arc-agi_evaluation_solutions.json").read_text())
    leaked = {"train": [{"input": raw["evalB"]["test"][0]["input"], "output": solutions["evalB"][0]}],
              "test": [{"input": [[1]], "output": [[2]]}]}
    write_subset(arc_dir, "training2", {"evalB": leaked})
    result = runner.invoke(arc_group, ["check-leakage", "--source", str(arc_dir),
                                       "--subsets", "training2,evaluation", "--test-subset", "evaluation"])
    assert result.exit_code == 1 and "LEAKAGE" in result.output and "training2" in result.output

def test_stats_and_store_leakage_commands(arc_dir, tmp_path):
    from click.testing import CliRunner

    from trm_arc.commands import arc_group

    runner = CliRunner()
    result = runner.invoke(arc_group, ["stats", "--source", str(arc_dir), "--num-aug", "3"])
    assert result.exit_code == 0, result.output
    lines = dict(line.split(None, 1) for line in result.output.strip().splitlines())
    assert lines["train_groups"] == "5" and lines["test_groups"] == "2"
    out = tmp_path / "arc.zarr"
    build_store(registry("tasks").get("arc"), ArcOptions(source=str(arc_dir), num_aug=2), out, show_progress=False)
    result = runner.invoke(arc_group, ["check-leakage", str(out), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["clean"] is True


def test_stats_of_a_store_uses_its_recorded_options_unless_a_flag_is_given(arc_dir, tmp_path):
    from click.testing import CliRunner

    from trm_arc.commands import arc_group

    out = tmp_path / "arc.zarr"
    build_store(registry("tasks").get("arc"), ArcOptions(source=str(arc_dir), num_aug=2), out, show_progress=False)
    built = open_store(out).info.splits["train"]

    def stats(*args):
        result = CliRunner().invoke(arc_group, ["stats", str(out), *args])
        assert result.exit_code == 0, result.output
        return dict(line.split(None, 1) for line in result.output.strip().splitlines())

    recorded = stats()  # num_aug=2 from the store, not the 1000 of a build from scratch
    assert int(recorded["train_puzzles"]) == built["num_puzzles"] and int(recorded["train_groups"]) == 5
    assert int(stats("--num-aug", "0")["train_puzzles"]) == 5
    assert stats("--test-subset", "")["test_groups"] == "0"


def test_arc_command_help_is_sentence_case():
    from click.testing import CliRunner

    from trm_arc.commands import arc_group

    for name, command in arc_group.commands.items():
        for param in command.params:
            if isinstance(param, __import__("click").Option) and param.help:
                assert param.help[0].isupper() and param.help.endswith("."), (name, param.name, param.help)
    assert CliRunner().invoke(arc_group, ["stats", "--help"]).exit_code == 0


def test_arc_vote_evaluation_is_the_same_on_one_and_two_processes(tiny_arc_run, tmp_path):
    """arc_vote in many processes: each scores its shard, the votes are gathered, and the metrics and the
    submission equal a one-process evaluation of the same checkpoint."""
    import os
    import shutil
    import subprocess
    import sys

    from conftest import REPO

    # The shared 2-step run (conftest.py; its eval batch of 6 pads the last window and gives each process 3 rows),
    # copied: the evaluations write into the run directory.
    run = tmp_path / "run"
    shutil.copytree(tiny_arc_run[1], run)
    env = {**os.environ, "TRM_TRACKERS": "none", "OMP_NUM_THREADS": "1"}

    def call(*args: str, processes: int = 1) -> subprocess.CompletedProcess:
        launch = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes)] if processes > 1
                  else [sys.executable])
        result = subprocess.run([*launch, "-m", "trm", *args], capture_output=True, text=True, env=env, cwd=REPO,
                                timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    reports = []
    for processes in (1, 2):
        out = tmp_path / f"eval{processes}.json"
        call("eval", str(run), "--out", str(out), "--no-progress", processes=processes)
        reports.append(json.loads(out.read_text()))
    one, two = reports
    assert (one["processes"], two["processes"]) == (1, 2)
    votes = {k: v for k, v in one["metrics"].items() if k.startswith("arc_vote/")}
    assert votes and votes == {k: v for k, v in two["metrics"].items() if k.startswith("arc_vote/")}
    assert votes["arc_vote/test_inputs_without_votes"] == 0 and votes["arc_vote/scored_tasks"] == 2
    submissions = [json.loads(next(Path(p) for p in r["artefacts"] if p.endswith("submission.json")).read_text())
                   for r in reports]
    assert submissions[0] == submissions[1]
    assert {task: len(entries) for task, entries in submissions[0].items()} == {"evalA": 2, "evalB": 1}
    assert all(set(entry) == {"attempt_1", "attempt_2"} for entries in submissions[0].values() for entry in entries)

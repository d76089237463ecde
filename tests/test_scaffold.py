"""`trm new task`: the scaffolded package installs with pip, passes `trm plugins check` and its own tests, trains and
evaluates; a plugin's errors in an installed distribution are attributed to it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from plugin_venv import PluginVenv
from trm.cli import cli


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory):
    """(venv, package directory): `trm new task takuzu DIR` then `pip install -e DIR` in a fresh venv."""
    root = tmp_path_factory.mktemp("scaffold")
    venv = PluginVenv(root / "venv")
    package = root / "trm-takuzu"
    made = venv.trm("new", "task", "takuzu", str(package))
    assert made.returncode == 0, made.stderr
    venv.pip_install_editable(package)
    return venv, package


def test_new_task_writes_a_package(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["new", "task", "my_task"])
    assert result.exit_code == 0, result.output
    root = Path("trm-my-task")
    for name in ("pyproject.toml", "README.md", "trm_my_task/__init__.py", "trm_my_task/task.py",
                 "trm_my_task/evaluator.py", "trm_my_task/recipes/cpu.yaml", "tests/test_my_task.py"):
        assert (root / name).is_file(), name
    assert 'my_task = "trm_my_task"' in (root / "pyproject.toml").read_text()
    assert "pip install -e trm-my-task" in result.output and "trm run my_task:cpu" in result.output


def test_new_task_refuses_bad_names_and_occupied_directories(tmp_path):
    runner = CliRunner()
    bad = runner.invoke(cli, ["new", "task", "My-Task", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "task name 'My-Task': expected lower-case letters" in bad.output
    keyword = runner.invoke(cli, ["new", "task", "class", str(tmp_path / "y")])
    assert keyword.exit_code == 2 and "task name 'class': a Python keyword" in keyword.output
    taken = runner.invoke(cli, ["new", "task", "sudoku", str(tmp_path / "z")])
    assert taken.exit_code == 2 and "task name 'sudoku': an installed task has it already" in taken.output
    assert not any((tmp_path / d).exists() for d in ("x", "y", "z"))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    occupied = runner.invoke(cli, ["new", "task", "ok", str(tmp_path / "full")])
    assert occupied.exit_code == 2 and "already exists and is not an empty directory" in occupied.output
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_scaffold_is_registered_and_passes_plugins_check(scaffolded):
    venv, _ = scaffolded
    check = venv.trm("plugins", "check", "takuzu", "size=5", "num_train=30", "num_test=10", "num_aug=3")
    assert check.returncode == 0, check.stdout + check.stderr
    lines = check.stdout.splitlines()
    assert lines[0] == "checking plugin 'takuzu' (trm-takuzu 0.1.0)"  # found through its entry point
    assert "FAIL" not in check.stdout and lines[-1] == "all checks passed"
    assert "ok    evaluator 'takuzu' on the 'takuzu' store: labels score 1, a corrupted copy less" in lines


def test_scaffold_own_tests_pass(scaffolded):
    venv, package = scaffolded
    result = venv.run("-m", "pytest", "-q", "-p", "no:cacheprovider", str(package / "tests"), cwd=package)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "5 passed" in result.stdout


def test_scaffold_recipe_trains_and_evaluates_briefly(scaffolded, tmp_path):
    """The shipped recipe from another directory, cut to a few steps (the slow test below runs it whole)."""
    venv, package = scaffolded
    result = venv.trm("run", "takuzu:cpu", "train.max_steps=4", "--no-progress",
                      "--run-dir", str(tmp_path / "run"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    evaluations = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
                   if json.loads(line)["kind"] == "eval"]
    assert evaluations and 0.0 <= evaluations[-1]["takuzu/cell_accuracy"] <= 1.0
    assert (tmp_path / "run" / "eval" / "step_4" / "takuzu_failures.txt").is_file()


@pytest.mark.slow
def test_scaffold_recipe_runs_out_of_the_box(scaffolded, tmp_path):
    """Exactly what the docs promise: `pip install -e DIR && trm run NAME:cpu`, and the file itself too."""
    venv, package = scaffolded
    result = venv.trm("run", str(package / "trm_takuzu" / "recipes" / "cpu.yaml"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert re.search(r"takuzu/cell_accuracy\s+0\.\d+", result.stdout)
    assert "run complete: 400 optimizer steps" in result.stdout


def test_errors_of_an_installed_plugin_name_it(scaffolded, tmp_path):
    venv, package = scaffolded
    user = venv.trm("augment", "takuzu", "--out", str(tmp_path / "a.zarr"), "source=csv", "num_train=5", "num_test=5")
    assert user.returncode == 2
    assert user.stderr.strip() == ("trm: error: plugin 'takuzu' (trm-takuzu 0.1.0): task 'takuzu': source 'csv' is "
                                   "not known; expected 'generate'")
    task = package / "trm_takuzu" / "task.py"
    original = task.read_text()
    try:  # the install is editable: a bug planted in the source is what trm runs
        task.write_text(original.replace('    side = options.size\n', '    side = options.size\n'
                                         '    raise KeyError("planted")\n'))
        bug = venv.trm("augment", "takuzu", "--out", str(tmp_path / "b.zarr"), "num_train=5", "num_test=5")
        lines = bug.stderr.strip().splitlines()
        assert bug.returncode == 3 and len(lines) == 1, bug.stderr
        assert lines[0].startswith("trm: error: bug in plugin 'takuzu' (trm-takuzu 0.1.0) at trm_takuzu/task.py:")
        assert "in build: KeyError: 'planted'" in lines[0] and "TRM_DEBUG=1" in lines[0]
        assert not (tmp_path / "b.zarr").exists()  # the atomic build left nothing behind
    finally:
        task.write_text(original)


def test_scaffold_readme_links_nothing_and_says_what_to_change(tmp_path):
    """The README names trm without a placeholder link, lists what each file holds of the example, and says that
    `trm solve` needs the solving fields the scaffold does not write."""
    result = CliRunner().invoke(cli, ["new", "task", "my_task", str(tmp_path / "pkg")])
    assert result.exit_code == 0, result.output
    readme = (tmp_path / "pkg" / "README.md").read_text()
    assert "](" not in readme and "github.com" not in readme and "A trm task plugin" in readme
    for item in ("`trm_my_task/task.py`", "VOCAB_SIZE", "`dims`", "options.size * options.size",
                 "changed_cell_accuracy", "`tests/test_my_task.py`", "life_step", "`trm_my_task/recipes/cpu.yaml`",
                 "density"):
        assert item in readme, item
    assert "read_puzzles" in readme and "check_answer" in readme and "draw" in readme
    assert "__" not in readme.replace("__init__", "")  # every placeholder filled
    init = (tmp_path / "pkg" / "trm_my_task" / "__init__.py").read_text()
    assert "read_puzzles" not in init  # what the README and docs/plugins.md say: the scaffold cannot be solved as is

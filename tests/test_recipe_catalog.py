"""Shipped recipes (trm recipes, run by name, the trm_recipe_dirs hook, the wheel) and the data root."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from trm import cli as cli_module
from trm.config import DATA_ROOT_ENV, data_root, load_recipe, resolve_store_path
from trm.errors import UserError
from trm.hookspecs import hookimpl
from trm.recipe_catalog import builtin_recipe_dir, find_recipe, resolve_recipe, shipped_recipes

from conftest import REPO
from in_process import trm_in_process


class RecipePlugin:
    """A plugin shipping one folder of recipes."""

    def __init__(self, folder):
        self.folder = folder

    @hookimpl
    def trm_recipe_dirs(self):
        return [self.folder]


def plugin_folder(tmp_path: Path, name: str = "cpu") -> Path:
    folder = tmp_path / "shipped"
    folder.mkdir(exist_ok=True)
    (folder / "_base.yaml").write_text("train: {epochs: 3}\n")
    (folder / f"{name}.yaml").write_text(f"extends: _base.yaml\ndescription: a plugin's {name} recipe\n"
                                         "task: {name: sudoku}\ndata: {store: mine.zarr}\n"
                                         "backbone: {name: attention}\n")
    return folder


def test_builtin_recipes_are_found_in_the_checkout_and_listed():
    assert builtin_recipe_dir() == REPO / "recipes"
    names = {r.name for r in shipped_recipes()}
    assert {"quickstart", "sudoku_mlp", "maze_small"} <= names
    assert "_base" not in names  # a base for extends, not a recipe
    assert find_recipe("quickstart").path == REPO / "recipes" / "quickstart.yaml"
    assert find_recipe("trm:quickstart.yaml").path == REPO / "recipes" / "quickstart.yaml"
    result = CliRunner().invoke(cli_module.cli, ["recipes"])
    assert result.exit_code == 0 and "quickstart" in result.output and "trm run NAME" in result.output
    listed = json.loads(CliRunner().invoke(cli_module.cli, ["recipes", "--json"]).output)
    assert {"name": "quickstart", "origin": "trm", "qualified": "trm:quickstart",
            "path": str(REPO / "recipes" / "quickstart.yaml")}.items() <= next(
        r for r in listed if r["name"] == "quickstart").items()


def test_a_recipe_argument_is_a_path_first_then_a_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quickstart").write_text("# a file of that name wins")
    assert resolve_recipe("quickstart") == Path("quickstart")
    assert resolve_recipe("sudoku_mlp") == REPO / "recipes" / "sudoku_mlp.yaml"
    assert resolve_recipe("recipes/quickstart.yaml") == Path("recipes/quickstart.yaml")  # a path: never a name
    with pytest.raises(UserError, match=r"quickstrt: no such recipe file, and no shipped recipe of that name "
                                        r"\(did you mean 'quickstart'\?\) \(`trm recipes` lists them\)"):
        resolve_recipe("quickstrt")


def test_hook_trm_recipe_dirs(tmp_path, fresh_global_host, monkeypatch, capsys):
    from trm import plugins

    host = plugins.get_host()
    host.register(RecipePlugin(plugin_folder(tmp_path)), "mytask")
    ours = next(r for r in shipped_recipes(host) if r.origin == "mytask")
    assert (ours.name, ours.qualified, ours.description) == ("cpu", "mytask:cpu", "a plugin's cpu recipe")
    assert find_recipe("cpu", host).path == find_recipe("mytask:cpu", host).path == tmp_path / "shipped" / "cpu.yaml"
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path / "root"))
    recipe = load_recipe(resolve_recipe("mytask:cpu", host))  # extends is relative to the shipped file
    assert recipe.train.epochs == 3 and recipe.data.store == str(tmp_path / "root" / "mine.zarr")
    result = CliRunner().invoke(cli_module.cli, ["recipes"])
    assert "cpu" in result.output and "mytask" in result.output
    # a second plugin shipping the same name makes the bare name ambiguous; trm's own names always win
    other = tmp_path / "other"
    other.mkdir()
    (other / "cpu.yaml").write_text("description: another\n")
    (other / "quickstart.yaml").write_text("description: not trm's\n")
    host.register(RecipePlugin(other), "othertask")
    with pytest.raises(UserError, match=r"shipped by several plugins \(mytask:cpu, othertask:cpu\)"):
        find_recipe("cpu", host)
    assert find_recipe("othertask:cpu", host).path == other / "cpu.yaml"
    assert find_recipe("quickstart", host).origin == "trm"
    # a bad answer is a warning, not a crash of every command
    class Broken:
        @hookimpl
        def trm_recipe_dirs(self):
            return [42, tmp_path / "missing"]

    host.register(Broken(), "broken")
    assert find_recipe("mytask:cpu", host)
    err = capsys.readouterr().err
    assert "plugin broken's trm_recipe_dirs returned int 42, not a folder path; ignored" in err
    assert "recipe folder" in err and "does not exist; ignored" in err


def test_data_root_rules(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    assert data_root() == tmp_path / "data"
    assert resolve_store_path("x.zarr") == tmp_path / "data" / "x.zarr"
    assert resolve_store_path("data/x.zarr") == tmp_path / "data" / "x.zarr"  # recipes written before the root
    assert resolve_store_path("./x.zarr") == tmp_path / "x.zarr"
    assert resolve_store_path("../x.zarr") == tmp_path.parent / "x.zarr"
    assert resolve_store_path("/abs/x.zarr") == Path("/abs/x.zarr")
    monkeypatch.setenv(DATA_ROOT_ENV, "stores")
    assert resolve_store_path("sub/x.zarr") == tmp_path / "stores" / "sub" / "x.zarr"
    assert resolve_store_path("data/x.zarr") == tmp_path / "stores" / "x.zarr"
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path / "elsewhere"))
    recipe = load_recipe(REPO / "recipes" / "quickstart.yaml", ["data.store=mine.zarr"])
    assert recipe.data.store == str(tmp_path / "elsewhere" / "mine.zarr")


def test_data_root_option_sets_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    result = CliRunner().invoke(cli_module.cli, ["--data-root", str(tmp_path / "r"), "recipe", "show", "quickstart",
                                                 "--no-summary", "data.store=s.zarr"])
    assert result.exit_code == 0, result.output
    assert f"store: {tmp_path / 'r' / 's.zarr'}" in result.output
    os.environ.pop(DATA_ROOT_ENV, None)  # CliRunner does not isolate os.environ writes made by the command


def test_shipped_recipe_runs_from_any_directory_and_eval_works_from_another(tmp_path):
    """`trm run NAME` in one folder, `trm eval RUN` from another: the run recorded the absolute store path."""
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir()
    second.mkdir()
    small = ["task.options.num_train=40", "task.options.num_test=16", "task.options.num_aug=1", "train.epochs=1",
             "train.global_batch_size=16", "model.hidden_size=16", "model.puzzle_emb_dim=16", "eval.every=null",
             "train.compile=off", "--run-dir", "run", "--no-progress"]
    result = trm_in_process("run", "quickstart", *small, cwd=first)  # in this process, from that folder
    assert result.returncode == 0, result.stderr
    assert "an epoch = every group fetched once, of which only rows replacing halted samples are trained" in result.stdout
    saved = (first / "run" / "recipe.yaml").read_text()
    assert f"store: {first / 'data'}" in saved  # under ./data of the folder it ran in, recorded absolute
    evaluated = trm_in_process("eval", str(first / "run"), "--no-progress", cwd=second)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "exact_match/exact_accuracy" in evaluated.stdout
    assert not (second / "data").exists()


def test_every_package_is_listed_for_the_wheel():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {"trm"} | {init.parent.name for folder in ("plugins", "tasks") for init in (REPO / folder).glob("*/__init__.py")}
    found |= {"trm." + init.parent.name for init in (REPO / "trm").glob("*/__init__.py")}
    assert found | {"trm.recipes"} == listed
    assert config["package-dir"]["trm.recipes"] == "recipes" and config["package-data"]["trm.recipes"] == ["*.yaml"]


@pytest.mark.slow
def test_the_wheel_ships_the_recipes(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "-w", str(tmp_path), "--no-deps", "-q"],
                   check=True, timeout=600)
    wheel = next(tmp_path.glob("trm-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for recipe in (REPO / "recipes").glob("*.yaml"):
        assert f"trm/recipes/{recipe.name}" in names
    assert "trm/recipe_catalog.py" in names and "trm_sudoku/__init__.py" in names

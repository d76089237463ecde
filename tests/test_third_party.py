"""A task plugin defined outside trm: an installed package, and a one-off file named in a recipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO

EXAMPLE = REPO / "docs" / "examples" / "trm-sorting"


def trm(*args, env):
    return subprocess.run([sys.executable, "-m", "trm", *args], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=300)


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(EXAMPLE)],
        capture_output=True, text=True, timeout=300,
    )
    if result.returncode != 0:
        pytest.fail(f"installing the example plugin failed: {result.stderr[-2000:]}")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")]))
    return env


def test_installed_package_appears_in_plugins(installed_example):
    result = trm("plugins", "--json", env=installed_example)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)["plugins"]}
    assert rows["sorting"]["distribution"] == "trm-sorting"
    assert rows["sorting"]["version"] == "0.1.0"
    assert rows["sorting"]["hooks"] == ["trm_tasks"]


def test_installed_package_is_usable_by_name(installed_example, tmp_path):
    recipe = tmp_path / "sorting.yaml"
    recipe.write_text(textwrap.dedent(f"""
        extends: {REPO / 'recipes' / 'quickstart_4x4.yaml'}
        task: {{name: sorting, options: {{length: 6}}}}
        data: {{store: {tmp_path / 'sorting.zarr'}}}
    """))
    result = trm("recipe", "validate", str(recipe), env=installed_example)
    assert result.returncode == 0, result.stderr
    listing = trm("list", "tasks", "--json", env=installed_example)
    assert "sorting" in [entry["name"] for entry in json.loads(listing.stdout)]


def test_one_off_file_plugin_named_in_a_recipe(tmp_path):
    (tmp_path / "my_task.py").write_text((EXAMPLE / "trm_sorting" / "__init__.py").read_text()
                                         .replace('name="sorting"', 'name="sorting_file"'))
    recipe = tmp_path / "proto.yaml"
    recipe.write_text(textwrap.dedent(f"""
        extends: {REPO / 'recipes' / 'quickstart_4x4.yaml'}
        plugins: [my_task.py]
        task: {{name: sorting_file, options: {{length: 5}}}}
        data: {{store: {tmp_path / 'proto.zarr'}}}
    """))
    env = dict(os.environ)
    result = trm("recipe", "show", str(recipe), "--no-summary", env=env)
    assert result.returncode == 0, result.stderr
    assert "name: sorting_file" in result.stdout


def test_one_off_file_plugin_appears_in_plugins(tmp_path):
    (tmp_path / "my_task.py").write_text((EXAMPLE / "trm_sorting" / "__init__.py").read_text()
                                         .replace('name="sorting"', 'name="sorting_file"'))
    recipe = tmp_path / "proto.yaml"
    recipe.write_text("plugins: [my_task.py]\n")
    result = trm("plugins", "--json", "--recipe", str(recipe), env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)["plugins"]}
    assert rows[str(tmp_path / "my_task.py")]["origin"] == "file"
    assert rows[str(tmp_path / "my_task.py")]["hooks"] == ["trm_tasks"]

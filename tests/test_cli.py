"""The command line as a user meets it: real subprocesses, exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO


def trm(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "trm", *args], capture_output=True, text=True, env=env,
                          cwd=cwd or REPO, timeout=300)


def test_help_lists_the_main_commands():
    result = trm("--help")
    assert result.returncode == 0
    for command in ("run", "eval", "augment", "plugins", "list", "recipe", "data", "convert"):
        assert command in result.stdout


def test_plugins_json_lists_builtins_with_distribution_and_hooks():
    result = trm("plugins", "--json")
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    assert set(listing) == {"plugins", "failed"}
    for row in listing["plugins"]:
        assert row["distribution"] == "trm" and row["hooks"]


@pytest.mark.parametrize("kind", ["backbones", "tasks", "halting", "evaluators"])
def test_list_kinds(kind):
    result = trm("list", kind, "--json")
    assert result.returncode == 0, result.stderr
    for entry in json.loads(result.stdout):
        assert entry["summary"]
        for option in entry["options"]:
            assert set(option) == {"name", "type", "default", "help"}


def test_validate_reports_three_mistakes_exit_2_no_traceback(tmp_path):
    recipe = tmp_path / "broken.yaml"
    recipe.write_text(textwrap.dedent("""
        extends: {base}
        optim: {{lrr: 1e-4}}
        train: {{epochs: many}}
        backbone: {{name: atention}}
    """).format(base=REPO / "recipes" / "sudoku_attn.yaml"))
    result = trm("recipe", "validate", str(recipe))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{recipe}: $.optim.lrr: unknown key (did you mean 'lr'?)" in result.stderr
    assert f"{recipe}: $.train.epochs: expected int, got str 'many'" in result.stderr
    assert f"{recipe}: $.backbone.name: unknown backbone 'atention' (did you mean 'attention'?)" in result.stderr


def test_user_error_is_one_line(tmp_path):
    result = trm("recipe", "validate", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"trm: error: {tmp_path / 'nope.yaml'}: recipe not found"


def test_every_shipped_recipe_validates():
    from trm.config import load_recipe

    recipes = sorted(p for p in (REPO / "recipes").glob("*.yaml") if not p.name.startswith("_"))
    assert recipes
    for recipe in recipes:
        load_recipe(recipe)  # raises RecipeError listing every problem

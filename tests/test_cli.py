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


def test_every_command_and_option_has_help():
    """--help of every command, the plugins' commands included, explains each option (docs/cli.md is the long form)."""
    import click

    from trm.cli import cli

    missing = []

    def walk(command, path):
        if isinstance(command, click.Group):
            context = click.Context(command)
            for name in command.list_commands(context):
                walk(command.get_command(context, name), [*path, name])
        if not (command.help or command.short_help):
            missing.append(" ".join(path))
        missing.extend(f"{' '.join(path)} {param.opts[0]}" for param in command.params
                       if isinstance(param, click.Option) and not param.help and param.name != "help")

    walk(cli, ["trm"])
    assert not missing, f"without help: {missing}"


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
            assert set(option) == {"name", "type", "default", "allowed", "help"}


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


def test_help_names_the_environment_switches():
    result = trm("--help")
    for name in ("TRM_LOAD_PLUGINS", "TRM_DISABLE_PLUGINS", "TRM_TRACE_HOOKS", "TRM_TRACKERS", "tensorboard,wandb"):
        assert name in result.stdout


def test_validate_reports_out_of_range_values_one_clean_line_each():
    recipe = REPO / "recipes" / "quickstart_4x4.yaml"
    result = trm("recipe", "validate", str(recipe), "eval.every=-1", "train.global_batch_size=0",
                 "model.forward_dtype=float64", "model.hidden_size=-64")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [  # the values came from the command line, so the problems say so
        "command line, override 'model.hidden_size=-64': $.model.hidden_size: must be >= 1 (got -64)",
        "command line, override 'model.forward_dtype=float64': $.model.forward_dtype: must be one of auto, bfloat16, "
        "float32 (got 'float64')",
        "command line, override 'train.global_batch_size=0': $.train.global_batch_size: must be >= 1 (got 0)",
        "command line, override 'eval.every=-1': $.eval.every: must be >= 1 (got -1)",
        "trm: 4 problem(s) found",
    ]


def test_plugin_option_validator_is_one_clean_line(tmp_path):
    result = trm("augment", "sudoku", "--source", "generate", "--out", str(tmp_path / "x.zarr"), "size=5")
    assert result.returncode == 2 and "Attribute(" not in result.stderr
    assert "sudoku options.size: must be one of 4, 6, 9 (got 5)" in result.stderr.splitlines()


@pytest.mark.parametrize(("option", "value"), [("--max-steps", "-3"), ("--max-steps", "0"), ("--batch-size", "0"),
                                               ("--limit", "0")])
def test_eval_refuses_counts_below_one(tmp_path, option, value):
    result = trm("eval", str(tmp_path), option, value)  # checked before the run directory is even looked at
    assert result.returncode == 2 and "Traceback" not in result.stderr
    # trm.cli.evaluate's own message, or click's IntRange usage error where the option declares the range
    assert f"{option}: must be >= 1 (got {value})" in result.stderr or (
        f"'{option}': {value} is not in the range x>=1" in result.stderr)


def test_eval_refuses_an_out_file_in_a_missing_directory(tmp_path):
    out = tmp_path / "missing" / "x.json"
    result = trm("eval", str(tmp_path), "--out", str(out))
    assert result.returncode == 2
    assert result.stderr.strip() == f"trm: error: --out {out}: no such directory {out.parent}"


def test_validate_builds_the_model_to_catch_settings_that_do_not_fit_together():
    result = trm("recipe", "validate", str(REPO / "recipes/quickstart_4x4.yaml"), "backbone.options.num_heads=3")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "hidden_size 64 is not divisible by num_heads 3" in result.stderr

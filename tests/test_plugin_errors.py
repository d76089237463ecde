"""A plugin's exception ends the command in one line naming the plugin: exit 2 for a UserError, 3 for a bug;
TRM_DEBUG=1 adds the traceback; a run ended by an evaluator's bug keeps its checkpoint and `trm eval` re-runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import click
import pytest
from click.testing import CliRunner

import trm
from trm import cli as cli_module
from trm import plugins
from trm.errors import EXIT_PLUGIN_BUG, EXIT_USER_ERROR, UserError
from trm.hookspecs import hookimpl
from trm.plugins import PluginInfo, blame
from trm.types import BackboneShape, BackboneSpec, NoOptions

from conftest import REPO


def broken_build(options, shape):
    return {}["missing"]  # a plugin bug: KeyError


class BrokenBackbones:
    @hookimpl
    def trm_backbones(self):
        return [BackboneSpec("broken", NoOptions, broken_build, "raises KeyError when built")]


class Commands:
    @hookimpl
    def trm_commands(self, cli):
        @cli.command("explode")
        def explode():
            """Raise a plugin bug."""
            raise ZeroDivisionError("division by zero in a plugin")

        @cli.command("complain")
        def complain():
            """Report a user's mistake."""
            raise trm.UserError("widgets.yaml: 'size' must be positive")


def test_user_error_is_exported_for_plugins():
    assert trm.UserError is UserError and UserError.exit_code == EXIT_USER_ERROR == 2 and EXIT_PLUGIN_BUG == 3


def test_blame_names_the_plugin_whose_code_raised(empty_host):
    empty_host.register(BrokenBackbones(), "broken-plugin",
                        PluginInfo("broken-plugin", "test_plugin_errors", "trm-broken", "1.2", "entry point"))
    spec = empty_host.registry("backbones").get("broken")
    with pytest.raises(KeyError) as caught:
        spec.build(NoOptions(), BackboneShape(8, 4, 1))
    culprit = blame(caught.value, empty_host)
    assert culprit.describe() == "plugin 'broken-plugin' (trm-broken 1.2)"
    assert culprit.function == "broken_build" and culprit.location().startswith("test_plugin_errors.py:")


def test_blame_is_none_for_trm_s_own_code(fake_host):
    with pytest.raises(UserError) as caught:  # trm's registry raises; the plugin (in conftest) is not involved
        fake_host.registry("backbones").get("nope")
    assert blame(caught.value, fake_host) is None


@pytest.fixture
def cli_with_plugin_commands(monkeypatch, empty_host):
    empty_host.register(Commands(), "gadgets", PluginInfo("gadgets", "test_plugin_errors", "trm-gadgets", "0.3",
                                                          "entry point"))
    monkeypatch.setattr(plugins, "_host", empty_host)
    original = dict(cli_module.cli.commands)
    cli_module._add_plugin_commands()
    yield cli_module.cli
    cli_module.cli.commands.clear()
    cli_module.cli.commands.update(original)


def test_a_plugin_bug_is_one_line_and_exit_3(cli_with_plugin_commands, monkeypatch):
    monkeypatch.delenv("TRM_DEBUG", raising=False)
    result = CliRunner().invoke(cli_with_plugin_commands, ["explode"])
    assert result.exit_code == 3
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("trm: error: bug in plugin 'gadgets' (trm-gadgets 0.3) at test_plugin_errors.py:")
    assert "in explode: ZeroDivisionError: division by zero in a plugin" in lines[0]
    assert "TRM_DEBUG=1 prints the traceback" in lines[0]


def test_trm_debug_adds_the_traceback(cli_with_plugin_commands, monkeypatch):
    monkeypatch.setenv("TRM_DEBUG", "1")
    result = CliRunner().invoke(cli_with_plugin_commands, ["explode"])
    assert result.exit_code == 3
    assert "Traceback (most recent call last)" in result.output and 'raise ZeroDivisionError(' in result.output
    assert result.output.strip().splitlines()[-1].startswith("trm: error: bug in plugin 'gadgets'")


def test_a_plugin_user_error_names_the_plugin_and_exits_2(cli_with_plugin_commands, monkeypatch):
    monkeypatch.delenv("TRM_DEBUG", raising=False)
    result = CliRunner().invoke(cli_with_plugin_commands, ["complain"])
    assert result.exit_code == 2
    assert result.output.strip() == "trm: error: plugin 'gadgets' (trm-gadgets 0.3): widgets.yaml: 'size' must be positive"


BAD_EVALUATOR = '''
import os
from trm.hookspecs import hookimpl
from trm.types import EvaluatorSpec, NoOptions

class Flaky:
    def update(self, batch, outputs):
        if os.environ.get("FLAKY_FAILS"):
            raise ValueError("boom in update")
    def compute(self):
        return {"calls_accuracy": 1.0}
    def write(self, directory):
        return []

@hookimpl
def trm_evaluators():
    return [EvaluatorSpec("flaky", NoOptions, lambda options, context: Flaky(), "fails when FLAKY_FAILS is set")]
'''


def test_an_evaluator_bug_at_the_end_of_a_run_keeps_the_run(tmp_path):
    (tmp_path / "flaky.py").write_text(BAD_EVALUATOR)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(textwrap.dedent(f"""
        extends: {REPO / 'recipes' / 'quickstart_4x4.yaml'}
        plugins: [flaky.py]
        task: {{name: sudoku, options: {{source: generate, size: 4, num_train: 40, num_test: 20, num_aug: 0}}}}
        data: {{store: {tmp_path / 'store.zarr'}, build_if_missing: true}}
        model: {{hidden_size: 32, h_cycles: 2, l_cycles: 2, puzzle_emb_len: 4, puzzle_emb_dim: 32}}
        backbone: {{name: attention, options: {{layers: 1, num_heads: 2}}}}
        train: {{global_batch_size: 16, epochs: 1000, max_steps: 3, log_every: 1, compile: off}}
        eval: {{every: null, evaluators: [flaky]}}
    """))
    env = {**os.environ, "TRM_TRACKERS": "none", "FLAKY_FAILS": "1"}
    env.pop("TRM_DEBUG", None)
    run_dir = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "trm", "run", str(recipe), "--run-dir", str(run_dir),
                             "--no-progress"], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 3, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(f"trm: error: bug in plugin '{tmp_path / 'flaky.py'}' (file) at flaky.py:")
    assert "in evaluator 'flaky' (update): ValueError: boom in update" in error
    assert "the checkpoint of step 3 is kept" in error
    assert (run_dir / "checkpoints").is_dir(), "the training was lost: no checkpoint before the final evaluation"
    assert f"`trm eval {run_dir}`" in result.stderr
    env.pop("FLAKY_FAILS")
    again = subprocess.run([sys.executable, "-m", "trm", "eval", str(run_dir), "--no-progress"], capture_output=True,
                           text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "flaky/calls_accuracy" in again.stdout


def test_a_registration_hook_that_raises_is_a_plugin_bug_exit_3(monkeypatch, empty_host):
    class Raising:
        @hookimpl
        def trm_backbones(self):
            raise RuntimeError("boom")

    empty_host.register(Raising(), "raising")
    monkeypatch.setattr(plugins, "_host", empty_host)
    result = CliRunner().invoke(cli_module.cli, ["list", "backbones"])
    assert result.exit_code == 3
    assert result.output.strip() == ("trm: error: plugin 'raising': trm_backbones() failed: RuntimeError: boom "
                                     "(TRM_DISABLE_PLUGINS=raising skips the plugin)")


def test_a_hook_with_arguments_its_spec_lacks_is_skipped_and_named(empty_host):
    class WrongSignature:
        @hookimpl
        def trm_tasks(self, cli):  # trm_tasks takes no arguments
            return []

    empty_host.register(WrongSignature(), "wrong-signature")
    assert empty_host.pm.get_plugin("wrong-signature") is None
    error = empty_host.failed["wrong-signature"].error
    assert "trm_tasks" in error and "cli" in error and "\n" not in error


@pytest.mark.parametrize("fields, message", [
    ({"build": "build"}, "task 'bad' has build=str 'build', expected a function"),
    ({"default_evaluators": "exact_match"}, "default_evaluators='exact_match', expected a tuple of names, e.g. ('exact_match',)"),
    ({"render": 3}, "render=int 3, expected a function"),
    ({"options_class": type("Plain", (), {})}, "expected an attrs class (or trm.types.NoOptions)"),
])
def test_a_task_record_with_a_wrong_field_is_named_at_registration(monkeypatch, empty_host, fields, message):
    from trm.types import TaskSpec

    spec = {"name": "bad", "options_class": NoOptions, "build": lambda options, writer: None, "summary": "bad"}
    spec.update(fields)

    class BadTask:
        @hookimpl
        def trm_tasks(self):
            return [TaskSpec(**spec)]

    empty_host.register(BadTask(), "bad-task")
    monkeypatch.setattr(plugins, "_host", empty_host)
    result = CliRunner().invoke(cli_module.cli, ["list", "tasks"])
    assert result.exit_code == 3, result.output
    assert result.output.strip().startswith("trm: error: plugin 'bad-task': trm_tasks(): ")
    assert message in result.output


def test_dims_that_return_no_task_dims_name_the_plugin(monkeypatch, empty_host, tmp_path):
    from types import SimpleNamespace

    from trm.build import task_dims
    from trm.errors import PluginError
    from trm.types import TaskSpec

    class TupleDims:
        @hookimpl
        def trm_tasks(self):
            return [TaskSpec("tuple-dims", NoOptions, lambda options, writer: None, "dims returns a tuple",
                             dims=lambda options: (5, 16, 1))]

    empty_host.register(TupleDims(), "tuple-dims-plugin")
    monkeypatch.setattr(plugins, "_host", empty_host)
    recipe = SimpleNamespace(data=SimpleNamespace(store=str(tmp_path / "none.zarr")),
                             task=SimpleNamespace(name="tuple-dims", options=NoOptions()))
    with pytest.raises(PluginError, match=r"plugin 'tuple-dims-plugin'.*dims\(options\) returned tuple, "
                                          r"expected trm.types.TaskDims"):
        task_dims(recipe)


def test_an_evaluator_build_that_returns_no_evaluator_names_the_plugin(monkeypatch, empty_host):
    from types import SimpleNamespace

    from trm.errors import PluginError
    from trm.evaluate import build_evaluators
    from trm.recipe import PluginSection
    from trm.types import EvaluatorSpec

    class NoneEvaluator:
        @hookimpl
        def trm_evaluators(self):
            return [EvaluatorSpec("nothing", NoOptions, lambda options, context: None, "builds None")]

    empty_host.register(NoneEvaluator(), "none-evaluator")
    monkeypatch.setattr(plugins, "_host", empty_host)
    recipe = SimpleNamespace(eval=SimpleNamespace(evaluators=[PluginSection("nothing")], split="test"),
                             data=SimpleNamespace(store="s.zarr"))
    with pytest.raises(PluginError, match=r"plugin 'none-evaluator': evaluator 'nothing': build\(\) returned "
                                          r"NoneType, expected an Evaluator"):
        build_evaluators(recipe, SimpleNamespace(info=None), None)

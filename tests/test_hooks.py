"""Every hook is documented in docs/plugins.md with its exact signature and has a ``test_hook_<name>`` test.

The registration and command hooks are tested here; the lifecycle hooks (trm_before_run, trm_after_run,
trm_after_eval) are tested with the training loop in tests/test_train.py.
"""

from __future__ import annotations

import re

import click
from click.testing import CliRunner

from trm import cli as cli_module
from trm import hookspecs, plugins
from trm.hookspecs import hookimpl

from conftest import REPO


def hook_names() -> list[str]:
    return sorted(name for name in dir(hookspecs) if name.startswith("trm_"))


def signature_of(name: str) -> str:
    """``name(arg: type, ...) -> type`` from the spec's (string) annotations."""
    function = getattr(hookspecs, name)
    annotations = dict(function.__annotations__)
    returns = annotations.pop("return")
    arguments = ", ".join(f"{arg}: {kind}" for arg, kind in annotations.items())
    return f"{name}({arguments}) -> {returns}"


def test_every_hook_is_documented_with_its_signature():
    text = (REPO / "docs" / "plugins.md").read_text()
    headings = set(re.findall(r"^### `(.+)`$", text, flags=re.M))
    for name in hook_names():
        assert signature_of(name) in headings, f"docs/plugins.md lacks the heading ### `{signature_of(name)}`"


def test_every_hook_has_a_test():
    source = "\n".join(path.read_text() for path in (REPO / "tests").glob("test_*.py"))
    for name in hook_names():
        assert f"def test_hook_{name}(" in source, f"no test_hook_{name} in tests/"


def test_every_hook_has_a_docstring():
    for name in hook_names():
        doc = getattr(hookspecs, name).__doc__ or ""
        assert "Returns" in doc and "Called" in doc, name


def test_hook_trm_backbones(fake_host):
    assert fake_host.registry("backbones").get("fake").summary == "a fake backbone"


def test_hook_trm_tasks(fake_host):
    assert fake_host.registry("tasks").get("fake").dims(None).vocab_size == 5


def test_hook_trm_halting_strategies(fake_host):
    assert fake_host.registry("halting").get("fake").summary == "a fake halting strategy"


def test_hook_trm_evaluators(fake_host):
    assert fake_host.registry("evaluators").get("fake").summary == "a fake evaluator"


def test_hook_trm_commands(monkeypatch, empty_host):
    class AddsCommand:
        @hookimpl
        def trm_commands(self, cli):
            @cli.command("hello-plugin")
            def hello():
                """Say hello."""
                click.echo("hello from a plugin")

            @cli.command("plugins")  # trying to replace a built-in is refused
            def impostor():
                click.echo("impostor")

    empty_host.register(AddsCommand(), "adds-command")
    monkeypatch.setattr(plugins, "_host", empty_host)
    original = dict(cli_module.cli.commands)
    try:
        cli_module._add_plugin_commands()
        runner = CliRunner()
        assert runner.invoke(cli_module.cli, ["hello-plugin"]).output == "hello from a plugin\n"
        assert "impostor" not in runner.invoke(cli_module.cli, ["plugins"]).output
    finally:
        cli_module.cli.commands.clear()
        cli_module.cli.commands.update(original)

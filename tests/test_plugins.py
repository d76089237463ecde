"""The plugin host: loading, registries, errors on unknown and duplicate names, env switches, file plugins."""

from __future__ import annotations

import pytest

from trm import plugins
from trm.errors import UserError
from trm.hookspecs import hookimpl
from trm.types import BackboneSpec

from conftest import FakeOptions, FakePlugin


def test_registry_finds_records_by_name(fake_host):
    for kind in plugins.KINDS:
        reg = fake_host.registry(kind)
        assert reg.names() == ["fake"]
        assert reg.get("fake").name == "fake"
        assert reg.owner("fake") == "fake-plugin"


def test_unknown_name_lists_installed_and_suggests(fake_host):
    with pytest.raises(UserError) as err:
        fake_host.registry("backbones").get("fak")
    message = str(err.value)
    assert "unknown backbone 'fak'" in message
    assert "did you mean 'fake'?" in message
    assert "installed: fake" in message


def test_duplicate_name_names_both_owners(fake_host):
    class Other:
        @hookimpl
        def trm_backbones(self):
            return [BackboneSpec("fake", FakeOptions, lambda o, s: None, "another")]

    fake_host.register(Other(), "other-plugin")
    with pytest.raises(UserError) as err:
        fake_host.registry("backbones")
    assert "'fake-plugin'" in str(err.value) and "'other-plugin'" in str(err.value)


def test_hook_typo_is_refused_and_reported(empty_host):
    class Typo:
        @hookimpl
        def trm_backbone(self):  # missing 's'
            return []

    empty_host.register(Typo(), "typo")
    assert "typo" in empty_host.failed
    assert "trm_backbones" in empty_host.failed["typo"].error
    assert empty_host.pm.get_plugin("typo") is None


def test_failed_import_is_skipped_and_named_on_use(empty_host):
    empty_host.failed["broken"] = plugins.FailedPlugin("broken", "pkg.broken", "pkg", "1.0", "ImportError: boom")
    with pytest.raises(UserError) as err:
        empty_host.registry("tasks").get("broken")
    assert "failed to import: ImportError: boom" in str(err.value)


def test_env_load_and_disable(monkeypatch):
    monkeypatch.setenv(plugins.ENV_LOAD, "")
    assert plugins.PluginHost(warn=False).info == {}
    monkeypatch.delenv(plugins.ENV_LOAD)
    everything = set(plugins.PluginHost(warn=False).info) | set(plugins.PluginHost(warn=False).failed)
    assert everything, "the built-in entry points are declared"
    victim = sorted(everything)[0]
    monkeypatch.setenv(plugins.ENV_DISABLE, victim)
    host = plugins.PluginHost(warn=False)
    assert victim not in host.info and victim not in host.failed


def test_env_trace_prints_hook_calls(monkeypatch, capsys):
    monkeypatch.setenv(plugins.ENV_TRACE, "1")
    host = plugins.PluginHost(load_entry_points=False)
    host.register(FakePlugin(), "fake-plugin")
    host.registry("tasks")  # registration goes through pluggy's hook caller, so the trace shows it
    assert "trm_tasks" in capsys.readouterr().err


def test_file_plugin(tmp_path, empty_host):
    path = tmp_path / "my_plugin.py"
    path.write_text(
        "from trm.hookspecs import hookimpl\n"
        "from trm.types import HaltingSpec, NoOptions\n"
        "@hookimpl\n"
        "def trm_halting_strategies():\n"
        "    return [HaltingSpec('from_file', NoOptions, lambda o: None, 'prototype')]\n"
    )
    name = empty_host.load_file(path)
    assert empty_host.info[name].origin == "file"
    assert empty_host.registry("halting").get("from_file").summary == "prototype"


def test_file_plugin_errors(tmp_path, empty_host):
    with pytest.raises(UserError, match="plugin file not found"):
        empty_host.load_file(tmp_path / "missing.py")
    bad = tmp_path / "bad.py"
    bad.write_text("import does_not_exist_anywhere\n")
    with pytest.raises(UserError, match="failed to import: ModuleNotFoundError"):
        empty_host.load_file(bad)


def test_a_plugin_without_hookimpl_markers_is_reported(tmp_path, empty_host):
    """pluggy skips unmarked functions silently; trm names the function that lacks the decorator."""
    path = tmp_path / "unmarked.py"
    path.write_text(
        "from trm.types import HaltingSpec, NoOptions\n"
        "def trm_halting_strategies():\n"
        "    return [HaltingSpec('unmarked', NoOptions, lambda o: None, 'never seen')]\n"
    )
    with pytest.raises(UserError, match=r"implements no trm hook: its trm_halting_strategies lacks the @hookimpl"):
        empty_host.load_file(path)
    assert "unmarked" not in empty_host.registry("halting")
    empty = tmp_path / "empty_plugin.py"
    empty.write_text("x = 1\n")
    with pytest.raises(UserError, match="no trm_\\* function decorated with @hookimpl"):
        empty_host.load_file(empty)

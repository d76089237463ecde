"""The plugin host: a pluggy manager fed from the ``trm`` entry-point group, and name registries built from it.

Built-in plugins (``plugins/trm_*``, ``tasks/trm_*``) are declared under ``[project.entry-points.trm]`` exactly as a
third-party package would declare its own, so they have no privileges. A plugin that fails to import is reported on
stderr and skipped; a recipe that names something it would have provided fails with that import error.

Environment switches (documented in docs/plugins.md):

* ``TRM_LOAD_PLUGINS=a,b``: load only these entry points (an empty value loads none);
* ``TRM_DISABLE_PLUGINS=a,b``: skip these entry points;
* ``TRM_TRACE_HOOKS=1``: print every hook call and its result to stderr (pluggy's tracing).

:func:`blame` finds the plugin whose code raised an exception (the innermost traceback frame in one of its modules), so
that the CLI can report a plugin's bug in one line naming the plugin and its distribution (trm/errors.py).

Patterned on simonw/llm's ``plugins.py`` and datasette's plugin host.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, Callable

import attrs
import pluggy

from trm import hookspecs
from trm.errors import PluginError, UserError, did_you_mean
from trm.types import PLUGIN_KINDS, PluginKind

ENTRY_POINT_GROUP = "trm"
ENV_LOAD = "TRM_LOAD_PLUGINS"
ENV_DISABLE = "TRM_DISABLE_PLUGINS"
ENV_TRACE = "TRM_TRACE_HOOKS"

# kind name -> its row of trm.types.PLUGIN_KINDS (the one table of plugin kinds)
KINDS: dict[str, PluginKind] = {kind.name: kind for kind in PLUGIN_KINDS}


@attrs.frozen
class PluginInfo:
    """Where a loaded plugin came from."""

    name: str
    module: str
    distribution: str | None
    version: str | None
    origin: str  # "entry point", "file" or "registered"


@attrs.frozen
class FailedPlugin:
    """A plugin that could not be loaded, and why."""

    name: str
    module: str
    distribution: str | None
    version: str | None
    error: str


def _env_names(variable: str) -> set[str] | None:
    value = os.environ.get(variable)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


class Registry:
    """Name -> record for one kind of plugin, with clear errors on unknown and duplicate names."""

    def __init__(self, kind: str, host: "PluginHost"):
        self.kind = kind
        self._spec = KINDS[kind]
        self.noun = self._spec.noun
        self._host = host
        self._records: dict[str, Any] = {}
        self._owners: dict[str, str] = {}
        for owner, call in host.implementations(self._spec.hook):
            for record in self._records_of(owner, self._spec.hook, call):
                self._add(record, owner)

    def _records_of(self, owner: str, hook_name: str, hook: Callable[[], Any]) -> list[Any]:
        """What plugin ``owner``'s registration hook returns, checked: a list of the kind's record class.

        A wrong return value would otherwise surface as an AttributeError deep inside a later command, naming
        neither the plugin nor the hook."""
        expected = self._spec.record
        who = f"plugin {self._host.describe(owner)}: {hook_name}()"
        try:
            result = hook()
        except UserError:
            raise
        except Exception as exc:  # a plugin's bug: say whose, in one line
            raise PluginError(f"{who} failed: {type(exc).__name__}: {exc} ({ENV_DISABLE}={owner} skips the plugin)"
                              ) from exc
        if result is None:
            return []
        if isinstance(result, (str, bytes, dict)) or not hasattr(result, "__iter__"):
            raise PluginError(f"{who} returned {_kind_of(result)}, expected a list of {expected.__name__}")
        records = list(result)
        for index, record in enumerate(records):
            if not isinstance(record, expected):
                raise PluginError(f"{who} returned {_kind_of(record)} as item {index}, expected {expected.__name__}")
            if not isinstance(record.name, str) or not record.name:
                raise PluginError(f"{who}: item {index} has name {record.name!r}, expected a non-empty string")
            if not isinstance(record.options_class, type) or not attrs.has(record.options_class):
                raise PluginError(f"{who}: {self.noun} '{record.name}' has options_class {record.options_class!r}, "
                                f"expected an attrs class (or trm.types.NoOptions)")
            self._check_fields(who, record)
        return records

    def _check_fields(self, who: str, record: Any) -> None:
        """Each field of a record has the kind its annotation names: a function where a function is called later
        (``build``, ``render``, ...), a tuple of names where names are read (``default_evaluators``), so that a
        wrong value is reported here, naming the field, not as a TypeError inside a later command."""
        for field in attrs.fields(type(record)):
            value, annotation = getattr(record, field.name), str(field.type)
            if value is None:
                continue
            if annotation.startswith("Callable") and not callable(value):
                raise PluginError(f"{who}: {self.noun} '{record.name}' has {field.name}={_kind_of(value)}, "
                                  f"expected a function")
            if annotation.startswith("tuple[str") and not (
                    isinstance(value, (tuple, list)) and all(isinstance(item, str) for item in value)):
                hint = f", e.g. ({value!r},)" if isinstance(value, str) else ""  # a string would be split in letters
                raise PluginError(f"{who}: {self.noun} '{record.name}' has {field.name}={value!r}, expected a tuple "
                                  f"of names{hint}")

    def _add(self, record: Any, owner: str) -> None:
        name = record.name
        if name in self._records:
            raise UserError(
                f"{self.noun} '{name}' is registered twice: by plugin {self._host.describe(self._owners[name])} "
                f"and by plugin {self._host.describe(owner)}; disable one with {ENV_DISABLE}"
            )
        self._records[name] = record
        self._owners[name] = owner

    def names(self) -> list[str]:
        return sorted(self._records)

    def owner(self, name: str) -> str:
        return self._owners[name]

    def records(self) -> list[Any]:
        return [self._records[name] for name in self.names()]

    def __contains__(self, name: str) -> bool:
        return name in self._records

    def get(self, name: str) -> Any:
        """The record called ``name``; a :class:`UserError` naming what is installed when there is none."""
        if name in self._records:
            return self._records[name]
        failed = self._host.failed
        if name in failed:
            broken = failed[name]
            raise UserError(f"{self.noun} '{name}' is unavailable: plugin '{broken.name}' failed to import: {broken.error}")
        installed = ", ".join(self.names()) or "none"
        message = f"unknown {self.noun} '{name}'{did_you_mean(name, self.names())} (installed: {installed})"
        if failed:
            message += "; plugins that failed to import: " + "; ".join(f"'{f.name}': {f.error}" for f in failed.values())
        raise UserError(message)


def _check_load_names(only: set[str], installed: set[str], modules: dict[str, str]) -> None:
    """A name in TRM_LOAD_PLUGINS that no installed plugin has is refused: ignoring it would leave the plugin out
    and make a recipe that needs it fail with "unknown task", blaming the recipe for the environment."""
    for name in sorted(only - installed):
        if name in modules:
            hint = f" ('{name}' is the module of plugin '{modules[name]}'; {ENV_LOAD} takes plugin names)"
        else:
            hint = did_you_mean(name, sorted(installed))
        raise UserError(f"{ENV_LOAD}: no installed trm plugin is named '{name}'{hint} "
                        f"(installed: {', '.join(sorted(installed)) or 'none'})")


def _only_result(caller: Any, **kwargs: Any) -> Any:
    results = caller(**kwargs)  # pluggy leaves None results out
    return results[0] if results else None


def _kind_of(value: Any) -> str:
    return "None" if value is None else f"{type(value).__name__} {value!r:.60}"


class PluginHost:
    """One pluggy manager with the entry-point plugins loaded, plus one-off plugin files and registries."""

    def __init__(self, *, load_entry_points: bool = True, warn: bool = True):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.info: dict[str, PluginInfo] = {}
        self.failed: dict[str, FailedPlugin] = {}
        self._registries: dict[str, Registry] = {}
        self._warn = warn
        if os.environ.get(ENV_TRACE, "").strip() not in ("", "0"):
            self.pm.trace.root.setwriter(sys.stderr.write)
            self.pm.enable_tracing()
        if load_entry_points:
            self._load_entry_points()

    # ---- loading ------------------------------------------------------------------------------------------
    def _load_entry_points(self) -> None:
        only, disabled = _env_names(ENV_LOAD), _env_names(ENV_DISABLE) or set()
        seen: set[tuple[str, str]] = set()
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if (ep.name, ep.value) in seen:  # an editable install can list the same entry point twice
                continue
            seen.add((ep.name, ep.value))
            if (only is not None and ep.name not in only) or ep.name in disabled:
                continue
            dist = getattr(ep, "dist", None)
            dist_name, version = (dist.metadata["Name"], dist.version) if dist is not None else (None, None)
            try:
                module = ep.load()
            except Exception as exc:  # any import-time failure of a plugin must not take trm down
                self._fail(ep.name, ep.value, dist_name, version, f"{type(exc).__name__}: {exc}")
                continue
            self.register(module, ep.name, PluginInfo(ep.name, ep.value, dist_name, version, "entry point"))
        if only:
            _check_load_names(only, {name for name, _ in seen}, {value.partition(":")[0]: name for name, value in seen})

    def _fail(self, name: str, module: str, dist: str | None, version: str | None, error: str) -> None:
        self.failed[name] = FailedPlugin(name, module, dist, version, error)
        if self._warn:
            print(f"trm: warning: plugin '{name}' ({module}) failed to load and was skipped: {error}", file=sys.stderr)

    def register(self, plugin: Any, name: str, info: PluginInfo | None = None) -> None:
        """Register ``plugin`` (a module or object with ``@hookimpl`` functions) under ``name``.

        A plugin implementing a ``trm_*`` hook that has no specification (a typo) is refused and reported.
        """
        if self.pm.get_plugin(name) is not None:
            raise UserError(f"two plugins are named '{name}': {self.describe(name)} and {getattr(plugin, '__name__', plugin)}")
        try:
            self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:  # e.g. a hook implementation with arguments the spec lacks
            info = info or PluginInfo(name, getattr(plugin, "__name__", str(plugin)), None, None, "registered")
            self._fail(name, info.module, info.distribution, info.version,
                       "; ".join(line.strip() for line in str(exc).splitlines() if line.strip()))
            return
        unknown = [caller.name for caller in self.pm.get_hookcallers(plugin) or () if not caller.has_spec()]
        if unknown:
            self.pm.unregister(name=name)
            known = [n for n in dir(hookspecs) if n.startswith("trm_")]
            detail = ", ".join(f"'{n}'{did_you_mean(n, known)}" for n in unknown)
            info = info or PluginInfo(name, getattr(plugin, "__name__", str(plugin)), None, None, "registered")
            self._fail(name, info.module, info.distribution, info.version, f"implements unknown hook {detail}")
            return
        if not self.pm.get_hookcallers(plugin):
            # pluggy ignores a function without the marker, so an undecorated trm_tasks() would vanish without a word
            self.pm.unregister(name=name)
            bare = sorted(n for n in dir(plugin) if n.startswith("trm_") and callable(getattr(plugin, n, None)))
            why = (f"its {', '.join(bare)} lack{'s' if len(bare) == 1 else ''} the @hookimpl decorator "
                   "(from trm.hookspecs import hookimpl)" if bare else
                   "it has no trm_* function decorated with @hookimpl (docs/plugins.md lists the hooks)")
            info = info or PluginInfo(name, getattr(plugin, "__name__", str(plugin)), None, None, "registered")
            self._fail(name, info.module, info.distribution, info.version, f"implements no trm hook: {why}")
            return
        self.info[name] = info or PluginInfo(name, getattr(plugin, "__name__", str(plugin)), None, None, "registered")
        self._registries.clear()

    def load_file(self, path: Path) -> str:
        """Load a one-off plugin from a single ``.py`` file (for prototyping without packaging); returns its name."""
        path = Path(path).resolve()
        name = str(path)
        if self.pm.get_plugin(name) is not None:
            return name
        if not path.is_file():
            raise UserError(f"{path}: plugin file not found")
        spec = importlib.util.spec_from_file_location(f"trm_file_plugin_{path.stem}", path)
        module: ModuleType = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        try:
            spec.loader.exec_module(module)  # type: ignore[union-attr]
        except Exception as exc:
            raise UserError(f"{path}: plugin file failed to import: {type(exc).__name__}: {exc}") from exc
        self.register(module, name, PluginInfo(name, str(path), None, None, "file"))
        if name in self.failed:
            raise UserError(f"{path}: {self.failed[name].error}")
        return name

    # ---- queries ------------------------------------------------------------------------------------------
    def describe(self, name: str) -> str:
        info = self.info.get(name)
        if info is None or info.distribution is None:
            return f"'{name}'"
        return f"'{name}' ({info.distribution} {info.version})"

    def implementations(self, hook_name: str) -> list[tuple[str, Callable[..., Any]]]:
        """(plugin name, a call of that plugin's implementation alone) for every implementation of ``hook_name``.

        Each call goes through pluggy's hook caller (a subset of one plugin), so ``TRM_TRACE_HOOKS`` shows it, and
        returns that implementation's result (``None`` for none); an exception is the implementation's own. Callers
        use it where a result must be traced to its plugin (duplicate names, a bad return value).
        """
        impls = getattr(self.pm.hook, hook_name).get_hookimpls()
        calls = []
        for impl in impls:
            alone = self.pm.subset_hook_caller(hook_name, remove_plugins=[i.plugin for i in impls if i is not impl])
            calls.append((impl.plugin_name, functools.partial(_only_result, alone)))
        return calls

    def hooks_of(self, name: str) -> list[str]:
        plugin = self.pm.get_plugin(name)
        return sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or ())

    def registry(self, kind: str) -> Registry:
        if kind not in KINDS:
            raise UserError(f"unknown plugin kind '{kind}'{did_you_mean(kind, list(KINDS))} (expected one of {', '.join(KINDS)})")
        if kind not in self._registries:
            self._registries[kind] = Registry(kind, self)
        return self._registries[kind]


_host: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide plugin host, created on first use."""
    global _host
    if _host is None:
        _host = PluginHost()
    return _host


def reset_host() -> None:
    """Forget the process-wide host (tests; after changing the environment switches)."""
    global _host
    _host = None


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide pluggy manager (entry-point plugins loaded)."""
    return get_host().pm


def registry(kind: str) -> Registry:
    """The registry of ``kind`` (backbones, tasks, halting, evaluators) of the process-wide host."""
    return get_host().registry(kind)


# --------------------------------------------------------------------------------------------------------------
# Attributing an exception to the plugin that raised it
# --------------------------------------------------------------------------------------------------------------


@attrs.frozen
class Blame:
    """The plugin an exception came from, and the innermost line of its code on the way."""

    plugin: PluginInfo
    filename: str
    lineno: int
    function: str

    def describe(self) -> str:
        """``plugin 'sorting' (trm-sorting 0.1.0)`` (the distribution is left out for a file plugin)."""
        where = f"{self.plugin.distribution} {self.plugin.version}" if self.plugin.distribution else self.plugin.origin
        return f"plugin '{self.plugin.name}' ({where})"

    def location(self) -> str:
        """``trm_sorting/__init__.py:31 in build``: the path from the plugin's package (or file) on."""
        path = Path(self.filename)
        parts = path.parts
        top = self.plugin.module.split(".")[0].split(":")[0]
        shown = str(Path(*parts[parts.index(top):])) if top in parts[:-1] else path.name
        return f"{shown}:{self.lineno} in {self.function}"


def _plugin_modules(host: PluginHost) -> list[tuple[str, PluginInfo]]:
    """(module name prefix, plugin) for every registered plugin, longest prefix first."""
    found = []
    for name, info in host.info.items():
        plugin = host.pm.get_plugin(name)
        if plugin is None:
            continue
        module = plugin.__name__ if isinstance(plugin, ModuleType) else type(plugin).__module__
        if module in ("builtins", "__main__") or module == "trm" or module.startswith("trm."):
            continue
        found.append((module, info))
        top = module.split(".")[0]
        if top != module:  # a plugin's helper modules (trm_maze.evaluator beside trm_maze) are its code too
            found.append((top, info))
    return sorted(found, key=lambda item: -len(item[0]))


def _frames(traceback: TracebackType | None) -> list[TracebackType]:
    frames = []
    while traceback is not None:
        frames.append(traceback)
        traceback = traceback.tb_next
    return frames


def blame(exc: BaseException, host: PluginHost | None = None, *, follow_chain: bool = True) -> Blame | None:
    """The plugin whose code raised ``exc`` (or the exception it was raised from), or None when no plugin is involved.

    The innermost traceback frame that belongs to a plugin's module decides: a plugin that hands the writer a wrongly
    shaped array is to blame even though the writer raised. ``host`` defaults to the process-wide one;
    ``follow_chain`` also searches the exceptions ``exc`` was raised from (``raise ... from``, or inside ``except``).
    """
    host = host or _host
    if host is None:
        return None
    modules = _plugin_modules(host)
    if not modules:
        return None
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for frame in reversed(_frames(current.__traceback__)):
            module = frame.tb_frame.f_globals.get("__name__", "")
            for prefix, info in modules:
                if module == prefix or module.startswith(prefix + "."):
                    code = frame.tb_frame.f_code
                    return Blame(info, code.co_filename, frame.tb_lineno, code.co_name)
        current = (current.__cause__ or current.__context__) if follow_chain else None
    return None

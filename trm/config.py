"""Recipes: YAML files structured strictly into frozen attrs classes, with every problem reported at once.

A recipe names its plugins in sections ``{name, options}``; each plugin's options are structured into that plugin's
own options class. ``extends:`` pulls in a base recipe (path relative to the recipe file); ``key=value`` overrides on
the command line set dotted paths, values parsed as YAML. Unknown keys, wrong types and unknown plugin names are
collected into one :class:`~trm.errors.RecipeError`, one line each, such as
``recipes/x.yaml: $.optim.lrr: unknown key (did you mean 'lr'?)``.

Structuring is cattrs (the attrs project's converter) with strict scalar hooks: PyYAML's YAML 1.1 resolver reads
``1e-4`` as a string, so the loader here adds a float resolver, and an int field refuses ``2.5`` and ``"2"`` rather
than coercing them. docs/recipes.md is the reference for every key below.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import attrs
import yaml
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError

from trm.errors import RecipeError, UserError
from trm.plugins import PluginHost, get_host
from trm.recipe import (DataConfig, EvalConfig, ModelConfig, OptimConfig, PluginSection, Recipe, RunConfig,
                        TrainConfig)
from trm.structuring import (GENERIC_QUOTE_HINT, describe, explain, make_converter, recipe_to_dict, structure,
                             structure_options)
from trm.store import DATA_ROOT_ENV, data_root, resolve_store_path
from trm.textfiles import read_utf8

# The schema classes live in trm/recipe.py; they are named here too, where recipes are loaded.
__all__ = ["Recipe", "PluginSection", "DataConfig", "ModelConfig", "OptimConfig", "TrainConfig", "EvalConfig", "RunConfig",
           "RecipeError", "load_recipe", "data_root", "resolve_store_path", "DATA_ROOT_ENV", "parse_value", "structure_options", "dump_recipe", "recipe_to_dict",
           "explain", "GENERIC_QUOTE_HINT"]  # the last two: re-exported from trm.structuring


# --------------------------------------------------------------------------------------------------------------
# YAML with floats written the way people write them.
# --------------------------------------------------------------------------------------------------------------


class RecipeLoader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` and ``5E3`` as floats (YAML 1.2 behaviour) and refuses duplicate keys.

    PyYAML keeps the last of two equal keys without a word, so a recipe listing ``lr`` twice would train with
    whichever came second; here that is an error naming the line of each.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, _value in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` keys may be overridden on purpose
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    earlier = first_line.get(key)
                except TypeError:  # an unhashable key: SafeConstructor reports it below
                    continue
                if earlier is not None:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first given on line {earlier})", key_node.start_mark)
                first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_value(text: str) -> Any:
    """A command-line value parsed as YAML (``1e-4`` -> 0.0001, ``[a, b]`` -> list, ``off`` -> 'off')."""
    try:
        value = yaml.load(text, Loader=RecipeLoader)  # noqa: S506 - RecipeLoader is a SafeLoader
    except yaml.YAMLError as exc:
        raise UserError(f"cannot parse value {text!r} as YAML: {str(exc).splitlines()[0]}") from exc
    # YAML 1.1 turns on/off/yes/no into booleans; in a recipe only true/false mean booleans.
    if isinstance(value, bool) and text.strip().lower() not in ("true", "false"):
        return text.strip()
    return value


def _read_yaml(path: Path) -> dict[str, Any]:
    text = read_utf8(path, "recipe")
    try:
        data = yaml.load(text, Loader=RecipeLoader)  # noqa: S506
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}: invalid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: a recipe must be a mapping of sections, got {type(data).__name__}")
    return data




# --------------------------------------------------------------------------------------------------------------
# Structuring (the strict hooks and messages are in trm/structuring.py) and plugin sections.
# --------------------------------------------------------------------------------------------------------------


def _plugin_section_hook(value: Any, _type: Any) -> PluginSection:
    if isinstance(value, str):  # `evaluators: [exact_match]` is shorthand for [{name: exact_match}]
        return PluginSection(value)
    if not isinstance(value, dict):
        raise TypeError(f"expected a mapping {{name, options}} or a name, got {describe(value)}")
    return _section_converter.structure(value, PluginSection)


converter = make_converter()
_section_converter = make_converter()  # structures PluginSection itself (no shorthand recursion)
_section_converter.register_structure_hook(
    PluginSection,
    lambda value, _t: PluginSection(**_check_section_keys(value)),
)
converter.register_structure_hook(PluginSection, _plugin_section_hook)
_section_list = converter.get_structure_hook(list[PluginSection])


def _plugin_list_hook(value: Any, type_: Any) -> list[PluginSection]:
    if isinstance(value, str):  # `evaluators: exact_match` is one evaluator, not a list of its letters
        value = [value]
    elif not isinstance(value, list):
        raise TypeError(f"expected a list of names or {{name, options}} mappings, got {describe(value)}")
    return _section_list(value, type_)


converter.register_structure_hook_func(lambda type_: type_ == list[PluginSection], _plugin_list_hook)


def _check_section_keys(value: dict) -> dict:
    problems = []
    for key in value:
        if key not in ("name", "options"):
            problems.append(ForbiddenExtraKeysError("", PluginSection, {key}))
    if "name" not in value:
        raise ValueError("required key 'name' missing")
    if not isinstance(value["name"], str):
        raise TypeError(f"'name' must be a string, got {describe(value['name'])}")
    options = value.get("options", {})
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise TypeError(f"'options' must be a mapping, got {describe(options)}")
    if problems:
        raise ClassValidationError("extra keys", problems, PluginSection)
    return {"name": value["name"], "options": options}


def _structure(data: Any, cls: type, path: str) -> tuple[Any, list[str]]:
    return structure(data, cls, path, converter)


def dump_recipe(recipe: Recipe) -> str:
    """The fully resolved recipe as YAML (what every run saves as ``recipe.yaml``)."""
    return yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False, default_flow_style=None, width=120)


# --------------------------------------------------------------------------------------------------------------
# extends, overrides, plugin sections.
# --------------------------------------------------------------------------------------------------------------

_PLUGIN_SECTIONS = ("task", "backbone", "halting")


def _merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """Deep merge; a plugin section whose ``name`` changes replaces the base's (its options belong to another plugin)."""
    merged = dict(base)
    for key, value in child.items():
        old = merged.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            if "name" in value and "name" in old and value["name"] != old["name"]:
                merged[key] = value
            else:
                merged[key] = _merge(old, value)
        else:
            merged[key] = value
    return merged


def _resolve_extends(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve() if path.exists() else path
    if path in chain:
        raise UserError(f"{chain[0]}: 'extends' forms a cycle: {' -> '.join(str(p) for p in chain + (path,))}")
    data = _read_yaml(path)
    base_name = data.pop("extends", None)
    if base_name is None:
        return data
    if not isinstance(base_name, str):
        raise UserError(f"{path}: $.extends: expected a file name, got {describe(base_name)}")
    base_path = (path.parent / base_name)
    if not base_path.exists():
        raise UserError(f"{path}: $.extends: base recipe '{base_name}' not found (looked at {base_path})")
    return _merge(_resolve_extends(base_path, chain + (path,)), data)


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``data`` with each ``dotted.path=value`` set (value parsed as YAML); a bad override is a UserError."""
    data = _merge({}, data)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"override {item!r}: expected key=value, e.g. optim.lr=3e-4")
        parts = key.strip().split(".")
        node = data
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise UserError(f"override {item!r}: $.{where} is {describe(child)}, not a mapping")
            node[part] = child = dict(child)
            node = child
        node[parts[-1]] = parse_value(text)
    return data


def _validate_plugins(recipe: Recipe, host: PluginHost) -> tuple[Recipe, list[str]]:
    problems: list[str] = []
    kinds = {"task": "tasks", "backbone": "backbones", "halting": "halting"}
    changes: dict[str, Any] = {}
    for section, kind in kinds.items():
        chosen: PluginSection = getattr(recipe, section)
        resolved, errors = _resolve_section(chosen, kind, f"$.{section}", host)
        problems += errors
        changes[section] = resolved
    if recipe.eval.evaluators is not None:
        evaluators = []
        for index, chosen in enumerate(recipe.eval.evaluators):
            resolved, errors = _resolve_section(chosen, "evaluators", f"$.eval.evaluators[{index}]", host)
            problems += errors
            evaluators.append(resolved)
        changes["eval"] = attrs.evolve(recipe.eval, evaluators=evaluators)
    return attrs.evolve(recipe, **changes), problems


def _resolve_section(chosen: PluginSection, kind: str, path: str, host: PluginHost) -> tuple[PluginSection, list[str]]:
    try:
        record = host.registry(kind).get(chosen.name)
    except UserError as exc:
        return chosen, [f"{path}.name: {exc}"]
    options, problems = _structure(chosen.options, record.options_class, f"{path}.options")
    return PluginSection(chosen.name, options if options is not None else chosen.options), problems


def _load_files(path: Path, data: Mapping[str, Any], host: PluginHost) -> None:
    for file_name in data.get("plugins") or []:
        if isinstance(file_name, str):
            host.load_file((path.parent / file_name) if not Path(file_name).is_absolute() else Path(file_name))


def load_plugin_files(path: str | Path, host: PluginHost | None = None) -> None:
    """Load the one-off plugin files a recipe (and its bases) names, without validating the rest."""
    _load_files(Path(path), _resolve_extends(Path(path)), host or get_host())


# --------------------------------------------------------------------------------------------------------------
# The data root: where relative data.store paths live.
# --------------------------------------------------------------------------------------------------------------

def with_resolved_store(recipe: Recipe) -> Recipe:
    """``recipe`` with ``data.store`` made absolute (what a run records, so ``trm eval`` works from anywhere)."""
    store = str(resolve_store_path(recipe.data.store))
    if store == recipe.data.store:
        return recipe
    return attrs.evolve(recipe, data=attrs.evolve(recipe.data, store=store))


def load_recipe(path: str | Path, overrides: Sequence[str] = (), *, host: PluginHost | None = None) -> Any:
    """Read, merge, override, structure and validate a recipe; :class:`RecipeError` lists every problem at once.

    ``data.store`` comes back absolute (:func:`resolve_store_path`).
    """
    path = Path(path)
    host = host or get_host()
    data = apply_overrides(_resolve_extends(path), overrides)
    _load_files(path, data, host)
    recipe, problems = _structure(data, Recipe, "$")
    if recipe is not None:
        recipe, plugin_problems = _validate_plugins(recipe, host)
        problems += plugin_problems
    else:  # still report unknown plugin names of an otherwise broken recipe
        problems += _plugin_name_problems(data, host)
    if problems:
        raise RecipeError([_attribute(problem, path, overrides) for problem in problems])
    return _with_absolute_plugin_files(with_resolved_store(recipe), path)


def _with_absolute_plugin_files(recipe: Recipe, path: Path) -> Recipe:
    """``plugins:`` file names made absolute (they are relative to the recipe), so that the copy of the recipe a
    run records finds them from the run directory too."""
    files = getattr(recipe, "plugins", None)
    if not files:
        return recipe
    absolute = [name if Path(name).is_absolute() else os.path.abspath(path.parent / name) for name in files]
    return recipe if absolute == list(files) else attrs.evolve(recipe, plugins=absolute)


def _attribute(problem: str, path: Path, overrides: Sequence[str]) -> str:
    """``problem`` prefixed with where the bad value came from: the last command-line override setting its key (or
    a section above it), else the recipe file. Blaming the file for a typo made on the command line sends the user
    looking for a key that is not in it."""
    where = problem.partition(": ")[0]
    for item in reversed(overrides):
        key = "$." + item.partition("=")[0].strip()
        if where == key or (where.startswith(key) and where[len(key)] in ".["):
            return f"command line, override {item!r}: {problem}"
        if problem.startswith(f"{where}: unknown key") and key.startswith(where) and key[len(where)] == ".":
            return f"command line, override {item!r}: {problem}"  # the override created the misspelt section
    section = where[2:].partition(".")[0] if where.startswith("$.") else ""
    if where.startswith(f"$.{section}.options"):
        for item in reversed(overrides):
            if item.partition("=")[0].strip() == f"{section}.name":
                # the file's options belong to the plugin it names, not to the one the command line chose
                return (f"{path}: {problem}; the override {item!r} changed the {section} but not the file's "
                        f"{section}.options, written for the other one: replace them too, e.g. "
                        f"'{section}.options={{}}'")
    return f"{path}: {problem}"


def _plugin_name_problems(data: Mapping[str, Any], host: PluginHost) -> list[str]:
    problems = []
    kinds = {"task": "tasks", "backbone": "backbones", "halting": "halting"}
    for section, kind in kinds.items():
        value = data.get(section)
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            try:
                record = host.registry(kind).get(value["name"])
            except UserError as exc:
                problems.append(f"$.{section}.name: {exc}")
                continue
            options = value.get("options") or {}
            if isinstance(options, dict):  # a non-mapping is reported already, by the section's structuring
                problems += _structure(options, record.options_class, f"$.{section}.options")[1]
    evaluators = data.get("eval", {}).get("evaluators") if isinstance(data.get("eval"), dict) else None
    evaluators = [evaluators] if isinstance(evaluators, str) else evaluators  # one bare name, as structured
    for index, value in enumerate(evaluators if isinstance(evaluators, list) else []):
        name, options = (value, {}) if isinstance(value, str) else (
            (value.get("name"), value.get("options") or {}) if isinstance(value, dict) else (None, None))
        if not isinstance(name, str):
            continue  # reported by the structuring of eval
        try:
            record = host.registry("evaluators").get(name)
        except UserError as exc:
            problems.append(f"$.eval.evaluators[{index}].name: {exc}")
            continue
        if isinstance(options, dict):
            problems += _structure(options, record.options_class, f"$.eval.evaluators[{index}].options")[1]
    return problems

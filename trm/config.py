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
from typing import Any, Literal, Mapping, Sequence

import attrs
import yaml
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError

from trm.errors import RecipeError, UserError
from trm.plugins import PluginHost, get_host
from trm.structuring import (GENERIC_QUOTE_HINT, describe, explain, make_converter, recipe_to_dict, structure,
                             structure_options)
from trm.store import DATA_ROOT_ENV, DEFAULT_DATA_ROOT, data_root, resolve_store_path  # noqa: F401  (named here too)
from trm.textfiles import read_utf8

__all__ = ["Recipe", "RecipeError", "load_recipe", "data_root", "resolve_store_path", "DATA_ROOT_ENV", "parse_value", "structure_options", "dump_recipe", "recipe_to_dict",
           "explain", "GENERIC_QUOTE_HINT"]  # the last two: re-exported from trm.structuring


def _help(text: str) -> dict[str, str]:
    return {"help": text}


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
# The recipe classes.
# --------------------------------------------------------------------------------------------------------------


@attrs.frozen
class PluginSection:
    """A plugin chosen by name, with options for that plugin's own options class."""

    name: str = attrs.field(metadata=_help("registered name of the plugin (see `trm list ...`)"))
    options: Any = attrs.field(factory=dict, metadata=_help("options of that plugin (see `trm list ...`)"))


@attrs.frozen
class DataConfig:
    store: str = attrs.field(metadata=_help(
        "the zarr dataset store: a path, relative ones under the data root (TRM_DATA_ROOT, default ./data)"))
    build_if_missing: bool = attrs.field(
        default=False, metadata=_help("build the store from the task options when it does not exist yet (new runs only)")
    )
    match_task_options: bool = attrs.field(
        default=True, metadata=_help("refuse a store built with other task options than task.options; false: "
                                     "train on it anyway (the differences are recorded in the run's history.jsonl)")
    )


# Range checks: a value outside its range is a recipe problem that `trm recipe validate` reports with its path,
# not a ZeroDivisionError, a hang or a silently empty run later.
_at_least_one = attrs.validators.ge(1)  # counts: "must be >= 1" reads better than "must be > 0"
_non_negative = attrs.validators.ge(0)
_fraction = attrs.validators.and_(attrs.validators.ge(0), attrs.validators.le(1))


def _maybe(validator: Any) -> Any:
    """``validator`` for a key that may also be null."""
    return attrs.validators.optional(validator)


def _open_unit_interval(_instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not 0 < value < 1:
        raise ValueError(f"must be > 0 and < 1 (got {value})")


def _betas(_instance: Any, _attribute: attrs.Attribute, value: tuple[float, float]) -> None:
    if not all(0 <= beta < 1 for beta in value):
        raise ValueError(f"each beta must be >= 0 and < 1 (got {list(value)})")


@attrs.frozen
class OptimConfig:
    name: Literal["adam_atan2", "adamw"] = attrs.field(
        default="adam_atan2", metadata=_help("dense optimizer: adam_atan2 (the reference's) or adamw (the paper's text)")
    )
    lr: float = attrs.field(
        default=1e-4, validator=_non_negative, metadata=_help("dense learning rate after warm-up")
    )
    betas: tuple[float, float] = attrs.field(default=(0.9, 0.95), validator=_betas, metadata=_help("Adam betas"))
    weight_decay: float = attrs.field(
        default=1.0, validator=_non_negative, metadata=_help("decoupled weight decay of every dense parameter")
    )
    puzzle_emb_lr: float = attrs.field(
        default=1e-4, validator=_non_negative, metadata=_help("sign-SGD learning rate of the puzzle embeddings")
    )
    puzzle_emb_weight_decay: float = attrs.field(
        default=1.0, validator=_non_negative,
        metadata=_help("decoupled decay of the puzzle-embedding rows a batch touches"),
    )
    warmup_steps: int = attrs.field(
        default=2000, validator=_non_negative, metadata=_help("linear warm-up steps (both optimizers)")
    )
    schedule: Literal["constant", "cosine"] = attrs.field(
        default="constant", metadata=_help("after warm-up: constant (the reference) or cosine to lr_min_ratio")
    )
    lr_min_ratio: float = attrs.field(
        default=1.0, validator=_fraction, metadata=_help("final LR / base LR for the cosine schedule, in [0, 1]")
    )


@attrs.frozen
class TrainConfig:
    global_batch_size: int = attrs.field(
        default=768, validator=_at_least_one,
        metadata=_help("examples per optimizer step, over all processes and accumulation steps"),
    )
    per_device_batch_size: int | None = attrs.field(
        default=None, validator=_maybe(_at_least_one),
        metadata=_help("examples per process per forward; default global / processes (no accumulation)"),
    )
    epochs: int = attrs.field(
        default=50000, validator=_at_least_one,
        metadata=_help("passes over the groups (one version of each per epoch)"),
    )
    max_steps: int | None = attrs.field(
        default=None, validator=_maybe(_at_least_one), metadata=_help("stop after this many optimizer steps")
    )
    ema: float | None = attrs.field(  # 1 would freeze the EMA copy at initialisation
        default=0.999, validator=_maybe(attrs.validators.and_(_non_negative, attrs.validators.lt(1))),
        metadata=_help("EMA rate of the dense weights, in [0, 1); null disables"),
    )
    compile: Literal["auto", "on", "off"] = attrs.field(
        default="auto", metadata=_help("torch.compile the supervision step: auto = on CUDA only")
    )
    seed: int = attrs.field(  # NumPy's seeding (accelerate's set_seed) takes 0 <= seed < 2**32
        default=0, validator=attrs.validators.and_(_non_negative, attrs.validators.lt(2**32)),
        metadata=_help("seed of initialisation, sampling and exploration"),
    )
    log_every: int = attrs.field(
        default=50, validator=_at_least_one, metadata=_help("optimizer steps between metric log lines")
    )
    checkpoint_every: int | None = attrs.field(
        default=None, validator=_maybe(_at_least_one),
        metadata=_help("optimizer steps between checkpoints; default: at every evaluation"),
    )
    keep_checkpoints: int | None = attrs.field(
        default=3, validator=_maybe(_at_least_one),
        metadata=_help("checkpoints kept: the latest N, plus the best by the first evaluator's first metric; "
                       "null keeps all"),
    )


@attrs.frozen
class EvalConfig:
    every: int | None = attrs.field(  # 0 is refused rather than read as null: say null to mean "only at the end"
        default=5000, validator=_maybe(_at_least_one),
        metadata=_help("epochs between evaluations (>= 1); null: only at the end"),
    )
    evaluators: list[PluginSection] | None = attrs.field(
        default=None, metadata=_help("evaluators (names or {name, options}); default: the task's")
    )
    split: str = attrs.field(default="test", metadata=_help("split of the store to evaluate"))
    limit: int | None = attrs.field(
        default=None, validator=_maybe(_at_least_one),
        metadata=_help("evaluate a fixed random subset of this many examples"),
    )
    batch_size: int | None = attrs.field(
        default=None, validator=_maybe(_at_least_one), metadata=_help("global evaluation batch; default: training's")
    )
    max_steps: int | None = attrs.field(
        default=None, validator=_maybe(_at_least_one),
        metadata=_help("the depth cap (adaptive) or the depth (fixed) at evaluation; may exceed training's "
                       "(test-time depth); default: the halting strategy's max_steps"),
    )
    halting: str = attrs.field(
        default="adaptive", validator=attrs.validators.in_(("adaptive", "fixed")),
        metadata=_help("adaptive: each example stops when the halting rule says so (or at max_steps); fixed: "
                       "every example runs max_steps (the paper's evaluation)"),
    )
    halt_threshold: float | None = attrs.field(
        default=None, validator=_maybe(_open_unit_interval),
        metadata=_help("adaptive only: stop when the halting confidence sigmoid(halt logit) exceeds this "
                       "(0 < p < 1); null: the strategy's own rule (p = 0.5)"),
    )


@attrs.frozen
class RunConfig:
    dir: str = attrs.field(default="runs", metadata=_help("parent directory of run directories"))
    name: str | None = attrs.field(default=None, metadata=_help("run directory name; default: recipe name + time"))


def _model_config_class() -> type:
    from trm.engine import ModelConfig  # torch is imported only when a recipe is loaded

    return ModelConfig


def _recipe_class() -> type:
    """The Recipe class, built on first use so that ``trm --help`` does not import torch."""
    global Recipe
    if Recipe is not None:
        return Recipe

    @attrs.frozen
    class _Recipe:
        task: PluginSection = attrs.field(metadata=_help("the task plugin and its build options"))
        data: DataConfig = attrs.field(metadata=_help("where the dataset store lives"))
        backbone: PluginSection = attrs.field(metadata=_help("the network f and its options"))
        halting: PluginSection = attrs.field(
            factory=lambda: PluginSection("act_q"), metadata=_help("halting strategy and its options")
        )
        model: _model_config_class() = attrs.field(factory=_model_config_class(), metadata=_help("the recursion"))
        optim: OptimConfig = attrs.field(factory=OptimConfig, metadata=_help("optimizers and LR schedule"))
        train: TrainConfig = attrs.field(factory=TrainConfig, metadata=_help("training loop"))
        eval: EvalConfig = attrs.field(factory=EvalConfig, metadata=_help("evaluation"))
        run: RunConfig = attrs.field(factory=RunConfig, metadata=_help("run directory"))
        plugins: list[str] = attrs.field(factory=list, metadata=_help("one-off plugin .py files (relative to recipe)"))
        description: str = attrs.field(default="", metadata=_help("free text shown by `trm recipe show`"))

    _Recipe.__name__ = _Recipe.__qualname__ = "Recipe"
    Recipe = _Recipe
    return Recipe


Recipe: Any = None  # filled by _recipe_class()


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


def dump_recipe(recipe: Any) -> str:
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


def _validate_plugins(recipe: Any, host: PluginHost) -> tuple[Any, list[str]]:
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

def with_resolved_store(recipe: Any) -> Any:
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
    recipe, problems = _structure(data, _recipe_class(), "$")
    if recipe is not None:
        recipe, plugin_problems = _validate_plugins(recipe, host)
        problems += plugin_problems
    else:  # still report unknown plugin names of an otherwise broken recipe
        problems += _plugin_name_problems(data, host)
    if problems:
        raise RecipeError([_attribute(problem, path, overrides) for problem in problems])
    return _with_absolute_plugin_files(with_resolved_store(recipe), path)


def _with_absolute_plugin_files(recipe: Any, path: Path) -> Any:
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

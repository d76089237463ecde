"""Shipped recipes: trm's own and those plugins ship, found by name (``trm run quickstart``, ``trm recipes``).

trm's recipes are the ``recipes/`` folder of the repository; a wheel installs them as package data in
``trm/recipes/`` (pyproject.toml), so ``trm run quickstart`` works in a plain ``pip install trm`` too. A plugin ships
its own the same way: a folder of YAML files in its package (package data) returned by the ``trm_recipe_dirs`` hook
(docs/plugins.md, "Shipping recipes"). In every folder, ``NAME.yaml`` is the recipe ``NAME``; files whose name
starts with ``_`` are bases for ``extends:`` and are not listed.

A recipe argument is a path when such a file exists, otherwise a name: ``NAME`` (trm's own recipe first, then a
plugin's when exactly one plugin ships that name) or ``ORIGIN:NAME`` (``trm:quickstart``, ``mytask:cpu``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import attrs
import yaml

from trm.errors import UserError

BUILTIN = "trm"
SUFFIXES = (".yaml", ".yml")


@attrs.frozen
class ShippedRecipe:
    """One recipe a package ships: its name, who ships it, the file, and the recipe's ``description``."""

    name: str
    origin: str  # "trm" or the plugin's name
    path: Path
    description: str

    @property
    def qualified(self) -> str:
        return f"{self.origin}:{self.name}"


def builtin_recipe_dir() -> Path | None:
    """trm's own recipe folder: ``trm/recipes`` in an installed wheel, the repository's ``recipes/`` in a checkout."""
    import trm

    package = Path(trm.__file__).resolve().parent
    installed = package / "recipes"
    if installed.is_dir():
        return installed
    checkout = package.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "recipes").is_dir():
        return checkout / "recipes"
    return None


def _plugin_dirs(host: Any) -> list[tuple[str, Path]]:
    """(plugin name, folder) for every folder the ``trm_recipe_dirs`` hook returns; bad answers are warned about."""
    import sys

    folders = []
    for owner, call in host.implementations("trm_recipe_dirs"):
        try:
            answer = call()
        except Exception as exc:  # a broken plugin must not hide the other recipes
            print(f"trm: warning: plugin {owner}'s trm_recipe_dirs failed: {type(exc).__name__}: {exc}",
                  file=sys.stderr)
            continue
        if isinstance(answer, (str, os.PathLike)):
            answer = [answer]
        for item in answer or ():
            if not isinstance(item, (str, os.PathLike)):
                print(f"trm: warning: plugin {owner}'s trm_recipe_dirs returned {type(item).__name__} {item!r}, "
                      "not a folder path; ignored", file=sys.stderr)
                continue
            folder = Path(item)
            if not folder.is_dir():
                print(f"trm: warning: plugin {owner}'s recipe folder {folder} does not exist; ignored",
                      file=sys.stderr)
                continue
            folders.append((owner, folder))
    return folders


def recipe_dirs(host: Any = None) -> list[tuple[str, Path]]:
    """(origin, folder) of every recipe folder: trm's first, then the plugins' in registration order."""
    from trm.plugins import get_host

    folders = []
    builtin = builtin_recipe_dir()
    if builtin is not None:
        folders.append((BUILTIN, builtin))
    return folders + _plugin_dirs(host or get_host())


def _description(path: Path) -> str:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return f"(unreadable: {type(exc).__name__})"
    text = data.get("description", "") if isinstance(data, dict) else ""
    return " ".join(str(text).split())


def shipped_recipes(host: Any = None) -> list[ShippedRecipe]:
    """Every shipped recipe, trm's first, each origin's sorted by name."""
    found = []
    for origin, folder in recipe_dirs(host):
        files = sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES and not p.name.startswith("_"))
        found += [ShippedRecipe(p.stem, origin, p, _description(p)) for p in files if p.is_file()]
    return found


def find_recipe(name: str, host: Any = None) -> ShippedRecipe:
    """The shipped recipe ``NAME`` or ``ORIGIN:NAME``; a UserError saying what exists when there is none."""
    from trm.errors import did_you_mean

    origin, sep, stem = name.rpartition(":")
    for suffix in SUFFIXES:
        stem = stem[: -len(suffix)] if stem.endswith(suffix) else stem
    recipes = shipped_recipes(host)
    matches = [r for r in recipes if r.name == stem and (not sep or r.origin == origin)]
    if not sep and len(matches) > 1:
        builtin = [r for r in matches if r.origin == BUILTIN]
        if builtin:
            return builtin[0]
        names = ", ".join(r.qualified for r in matches)
        raise UserError(f"recipe '{name}' is shipped by several plugins ({names}); name one of them")
    if matches:
        return matches[0]
    known = sorted({r.name for r in recipes} | {r.qualified for r in recipes})
    hint = did_you_mean(stem if not sep else name, known)
    raise UserError(f"{name}: no such recipe file, and no shipped recipe of that name{hint} "
                    "(`trm recipes` lists them)")


def is_name(argument: str) -> bool:
    """Whether a recipe argument can only be a name (no folder part)."""
    return "/" not in argument and os.sep not in argument


def resolve_recipe(argument: str | os.PathLike, host: Any = None) -> Path:
    """The recipe file ``argument`` means: the path itself when that file exists, else a shipped recipe's file."""
    path = Path(argument).expanduser()
    if path.exists() or not is_name(str(argument)):
        return path  # a missing path with a folder part is reported as "recipe not found" by the loader
    return find_recipe(str(argument), host).path

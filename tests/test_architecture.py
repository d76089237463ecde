"""The import graph keeps the shape docs/architecture.md draws: layers that import only downward, no circles, the
command line as the one face that nothing imports, and at most seven floors.

The graph is read from the source (every ``import trm...`` and ``from trm... import ...``, inside functions too), with
``trm/cli/`` counted as one room, as the docs draw it. ``python tests/test_architecture.py`` prints each floor.
"""

from __future__ import annotations

import ast
import functools
import sys
from pathlib import Path

TRM = Path(__file__).resolve().parent.parent / "trm"
MAX_FLOORS = 7


def _room(path: Path) -> str:
    relative = path.relative_to(TRM.parent).as_posix()
    return "trm/cli/" if relative.startswith("trm/cli/") else relative


def _file_of(module: str) -> Path | None:
    parts = module.split(".")
    candidate = TRM.parent.joinpath(*parts)
    if candidate.with_suffix(".py").is_file():
        return candidate.with_suffix(".py")
    if (candidate / "__init__.py").is_file():
        return candidate / "__init__.py"
    return None


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "trm")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == "trm":
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names
                         if _file_of(f"{node.module}.{alias.name}") is not None)
    return found


@functools.cache
def graph() -> dict[str, set[str]]:
    """room -> rooms it imports (``trm/__init__.py``, a face that only hands names on, is left out)."""
    edges: dict[str, set[str]] = {}
    for path in sorted(TRM.rglob("*.py")):
        if path == TRM / "__init__.py":
            continue
        room = _room(path)
        targets = edges.setdefault(room, set())
        for module in _imports(path):
            target = _file_of(module)
            if target is not None and target != TRM / "__init__.py" and _room(target) != room:
                targets.add(_room(target))
    return edges


def floors() -> dict[str, int]:
    """Floor 1 imports no other room; every room stands one floor above the highest room it imports."""
    edges, floor = graph(), {}

    def height(room: str, path: tuple[str, ...] = ()) -> int:
        if room in path:
            raise AssertionError(f"import circle: {' -> '.join((*path[path.index(room):], room))}")
        if room not in floor:
            floor[room] = 1 + max((height(t, (*path, room)) for t in edges[room]), default=0)
        return floor[room]

    for room in edges:
        height(room)
    return floor


def test_no_import_circles():
    floors()  # raises naming the circle


def test_nothing_below_the_command_line_imports_it():
    for room, targets in graph().items():
        if room not in ("trm/cli/", "trm/__main__.py"):
            assert "trm/cli/" not in targets, f"{room} imports trm.cli: the core must not know its commands"


def test_the_engine_knows_no_plugin_by_name():
    assert not graph()["trm/engine.py"] & {"trm/plugins.py", "trm/build.py", "trm/config.py"}


def test_at_most_seven_floors():
    assert max(floors().values()) <= MAX_FLOORS, sorted(floors().items(), key=lambda item: -item[1])


if __name__ == "__main__":
    by_floor: dict[int, list[str]] = {}
    for room, level in floors().items():
        by_floor.setdefault(level, []).append(room)
    for level in sorted(by_floor, reverse=True):
        print(f"floor {level}: {', '.join(sorted(by_floor[level]))}")
    sys.exit(0)

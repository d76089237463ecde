"""Public names that moved to another module, and where they live now (docs/plugins.md, "Compatibility").

A module that lost a public name resolves it here from its ``__getattr__``, so code written against the earlier docs
keeps working with a :class:`DeprecationWarning` that says what to import instead. The new home is imported by name
when the old name is used: the module that lost the name need not import, or even sit above, its new home.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

# (old module, name) -> the module the name lives in now
MOVED: dict[tuple[str, str], str] = {
    ("trm.store", "DatasetWriter"): "trm.store_write",
    ("trm.store", "SplitWriter"): "trm.store_write",
    ("trm.store", "build_store"): "trm.store_write",
    ("trm.engine", "assemble"): "trm.build",
}


def resolve(module: str, name: str) -> Any:
    """``name`` of ``module`` from its new home, with a DeprecationWarning; AttributeError when it never moved."""
    new_home = MOVED.get((module, name))
    if new_home is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    warnings.warn(f"{module}.{name} is deprecated: import it from {new_home} (from {new_home} import {name})",
                  DeprecationWarning, stacklevel=3)
    return getattr(importlib.import_module(new_home), name)

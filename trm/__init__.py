"""trm: Tiny Recursive Models for recursive reasoning on puzzles (Jolicoeur-Martineau, 2025, arXiv 2510.04871).

The core package. It knows no task, backbone or halting rule by name: those arrive as pluggy plugins
(see ``trm.hookspecs`` and docs/plugins.md).
"""

__version__ = "0.1.0"

from trm.errors import UserError  # noqa: E402  (light: plugins raise it to report a user's mistake)

__all__ = ["UserError", "__version__"]

"""Errors, and how trm ends on one: a user's mistake (exit 2) or a bug in a plugin (exit 3), each as one line.

Plugin code reports a user's mistake (a bad option value, a missing file, a malformed puzzle) by raising
:class:`UserError` (exported as ``trm.UserError``) with a message that names the file, key or value and says what was
expected. Any other exception escaping a plugin is treated as a bug in that plugin: trm prints one line naming the
plugin, its distribution and the error, and exits with :data:`EXIT_PLUGIN_BUG`. ``TRM_DEBUG=1`` prints the full
traceback as well, for both kinds. docs/plugins.md ("Errors") is the reference. :func:`did_you_mean` adds the
close spelling to a message about an unknown name.
"""

from __future__ import annotations

import difflib
import os

EXIT_USER_ERROR = 2
EXIT_PLUGIN_BUG = 3
ENV_DEBUG = "TRM_DEBUG"


class UserError(Exception):
    """A mistake in the user's input (a file, a key, a value): the message names it and says what was expected."""

    exit_code = EXIT_USER_ERROR


class PluginError(UserError):
    """A plugin broke its contract, found by trm (a registration hook returning the wrong thing, say): one line naming
    the plugin, exit code :data:`EXIT_PLUGIN_BUG`. Plugin code itself never raises it; it raises :class:`UserError`
    for a user's mistake and lets its bugs raise as they are."""

    exit_code = EXIT_PLUGIN_BUG


class RecipeError(UserError):
    """Every problem found in a recipe, reported at once: ``problems`` holds one line each."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def debug_enabled() -> bool:
    """True when ``TRM_DEBUG`` asks for full tracebacks (any value but empty or ``0``)."""
    return os.environ.get(ENV_DEBUG, "").strip() not in ("", "0")


def did_you_mean(name: str, candidates: list[str] | tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` when a close candidate exists, else an empty string."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""

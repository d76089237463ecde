"""Errors a user can cause. The CLI prints them as one line, without a traceback, and exits 2."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input (a file, a key, a value): the message names it and says what was expected."""

    exit_code = 2


class RecipeError(UserError):
    """Every problem found in a recipe, reported at once: ``problems`` holds one line each."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))

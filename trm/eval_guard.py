"""Evaluation failures as one line: which part failed (an evaluator, a hook, the data, memory) and what survives.

Every evaluation that ``trm run`` and ``trm eval`` make goes through :func:`evaluation_guard`. Inside it, the parts
that belong to plugins are tagged: evaluators are wrapped by :func:`guard_evaluators` (their ``update``, ``compute``
and ``write`` calls, and ``compute``'s values, which must be numbers), and other plugin calls run in
:func:`part` blocks, such as ``with part("hook trm_after_eval"): ...``. Whatever is raised inside the guard (except
Ctrl-C and SystemExit) leaves it as one :class:`EvaluationFailed`: the CLI prints its message on one line and exits
with its code. This is the one place that turns evaluation exceptions into messages; attribution of plugin errors
to their distributions can be added here.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from trm.errors import EXIT_PLUGIN_BUG, PluginError, UserError


class EvaluationFailed(UserError):
    """An evaluation that raised. ``what`` names the failing part; ``cause`` is the original exception."""

    def __init__(self, message: str, *, what: str, cause: BaseException):
        super().__init__(message)
        self.what, self.cause = what, cause


class _PartFailed(Exception):
    """An exception raised inside a named part of an evaluation (internal to this module)."""

    def __init__(self, what: str, cause: BaseException):
        super().__init__(what)
        self.what, self.cause = what, cause


@contextlib.contextmanager
def part(what: str) -> Iterator[None]:
    """Exceptions raised in the block are blamed on ``what`` (e.g. "hook trm_after_eval") by the guard."""
    try:
        yield
    except _PartFailed:
        raise
    except Exception as exc:
        raise _PartFailed(what, exc) from exc


class ContractBroken(TypeError):
    """An evaluator returned what its protocol forbids (found by trm, so no plugin frame is in the traceback):
    reported as the plugin's bug, exit 3."""


class _GuardedEvaluator:
    """An evaluator whose calls are blamed on it by name, and whose ``compute`` must return numbers."""

    def __init__(self, name: str, evaluator: Any):
        self._name, self._evaluator = name, evaluator

    def update(self, batch: Any, outputs: Any) -> None:
        with part(f"evaluator '{self._name}' (update)"):
            self._evaluator.update(batch, outputs)

    def compute(self) -> dict[str, float]:
        with part(f"evaluator '{self._name}' (compute)"):
            values = self._evaluator.compute()
            if not isinstance(values, dict):
                raise ContractBroken(f"compute() returned {type(values).__name__}, expected a dict of metric name -> "
                                     "number")
            for key, value in values.items():
                if isinstance(value, (str, bytes)) or not _is_number(value):
                    raise ContractBroken(f"compute() returned {key}={value!r} ({type(value).__name__}), expected a "
                                         "number")
        return values

    def write(self, directory: Any) -> Any:
        with part(f"evaluator '{self._name}' (write)"):
            return self._evaluator.write(directory)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._evaluator, name)


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError, RuntimeError):  # RuntimeError: a tensor of several elements
        return False
    return True


def guard_evaluators(evaluators: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """``evaluators`` with each one wrapped so that its failures name it."""
    return [(name, evaluator if isinstance(evaluator, _GuardedEvaluator) else _GuardedEvaluator(name, evaluator))
            for name, evaluator in evaluators]


def _is_out_of_memory(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or (isinstance(exc, RuntimeError) and "out of memory" in str(exc))


def describe_failure(exc: BaseException) -> tuple[str, str]:
    """(what failed, the error in a few words) for an exception raised inside :func:`evaluation_guard`."""
    what, cause = ("the evaluation", exc)
    if isinstance(exc, _PartFailed):
        what, cause = exc.what, exc.cause
    if _is_out_of_memory(cause):
        return what, "out of memory on an evaluation batch (lower eval.batch_size, or trm eval --batch-size)"
    if isinstance(cause, (UserError, ContractBroken)):
        return what, str(cause)
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return what, f"{type(cause).__name__}: {text}" if text else type(cause).__name__


@contextlib.contextmanager
def evaluation_guard(where: str, after: str) -> Iterator[None]:
    """Turn any failure in the block into one :class:`EvaluationFailed` line.

    ``where`` says which evaluation (e.g. "evaluation at step 600"), ``after`` what survives and how to go on.
    """
    try:
        yield
    except EvaluationFailed:
        raise
    except Exception as exc:  # noqa: BLE001 - the point: no failure of an evaluation loses the run
        what, detail = describe_failure(exc)
        cause = exc.cause if isinstance(exc, _PartFailed) else exc
        blame = "" if what == "the evaluation" else f" in {what}"
        culprit = _plugin_bug(cause)
        if culprit is not None:  # a plugin's own bug, not the user's input: say whose, exit 3 (docs/plugins.md)
            failed = EvaluationFailed(
                f"bug in {culprit.describe()} at {culprit.location()}: {where} failed{blame}: {detail} (an error in "
                f"the plugin's code, not in your input); {after}", what=what, cause=cause)
            failed.exit_code = EXIT_PLUGIN_BUG
            raise failed from None
        failed = EvaluationFailed(f"{where} failed{blame}: {detail}; {after}", what=what, cause=cause)
        if isinstance(cause, (PluginError, ContractBroken)):  # a plugin broke its contract: its bug, exit 3
            failed.exit_code = EXIT_PLUGIN_BUG
        raise failed from None


def _plugin_bug(cause: BaseException) -> Any:
    """The plugin whose code raised ``cause`` when it is a bug there (not a user error, not out of memory)."""
    if isinstance(cause, UserError) or _is_out_of_memory(cause):
        return None
    from trm.plugins import blame

    return blame(cause)

"""``trm ARGS`` called in the test process (click's CliRunner), answered like ``subprocess.run``.

A ``python -m trm`` subprocess spends about 4 s importing torch and its compiler before it does anything; a test
that is not about the process itself (signals, several processes, a lock held by another process) calls the command
here instead, where those imports are already done. The command goes through the same ``TrmGroup.main`` as the
console script (its one-line errors and exit codes), named trm, with a plugin host of its own (as a new process
has: a recipe's ``plugins:`` files are loaded into it and forgotten afterwards); Python warnings are printed to the
command's stderr under Python's default filters, as a fresh process would print them (not collected by pytest); an
exception that trm does not handle propagates into the test (a subprocess would print its traceback and exit 1).

What a plugin file does to other modules when it is imported stays done in this process: a test whose plugin file
patches trm (the fault plugins of tests/test_reliability_runs.py) undoes that itself.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import warnings
from pathlib import Path

from conftest import REPO

# Python's filters without -W or -X dev (the one for __main__ left out: no __main__ code runs here), first match first.
FRESH_PROCESS_FILTERS = [("ignore", DeprecationWarning), ("ignore", PendingDeprecationWarning),
                         ("ignore", ImportWarning), ("ignore", ResourceWarning)]


@contextlib.contextmanager
def working_directory(folder: Path):
    """``contextlib.chdir`` (Python 3.11+), for Python 3.10 too."""
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


@contextlib.contextmanager
def warnings_as_in_a_fresh_process():
    """Warnings go to ``sys.stderr`` (the command's, under CliRunner), filtered as in a new Python process."""
    with warnings.catch_warnings():
        warnings.resetwarnings()
        for action, category in reversed(FRESH_PROCESS_FILTERS):  # filterwarnings puts each one first
            warnings.filterwarnings(action, category=category)

        def show(message, category, filename, lineno, file=None, line=None):
            sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

        warnings.showwarning = show
        yield


def trm_in_process(*args, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``trm ARGS`` here; returns a CompletedProcess (returncode, stdout, stderr) as the subprocess helpers do."""
    import torch
    from click.testing import CliRunner

    from trm import plugins
    from trm.cli import cli

    words = [str(arg) for arg in args]
    threads = torch.get_num_threads()  # trm sets torch's thread count for its commands: this process's is kept
    host = plugins._host  # the command gets a new process-wide host (made on first use), this process keeps its own
    plugins.reset_host()
    try:
        with working_directory(cwd or REPO), warnings_as_in_a_fresh_process():
            result = CliRunner().invoke(cli, words, env={"TRM_TRACKERS": "none", **(env or {})}, prog_name="trm",
                                        catch_exceptions=False)
    finally:
        torch.set_num_threads(threads)
        plugins._host = host
    return subprocess.CompletedProcess(["trm", *words], result.exit_code, result.stdout, result.stderr)

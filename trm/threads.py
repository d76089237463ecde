"""How many CPU threads torch uses when nobody said (docs/training.md, "CPU threads").

torch starts one intra-op thread per core. When another process already keeps cores busy, those threads wait on
each other: on a shared 2-core machine a CPU run was measured 4x slower with torch's default than with one thread.
So, unless ``TRM_NUM_THREADS`` or ``OMP_NUM_THREADS`` is set, trm uses the cores that are free when it starts
(cores available to the process minus those other processes keep busy, divided among the processes of a
multi-process launch), and at least one. Busy cores are measured over a quarter of a second from /proc/stat on
Linux; elsewhere the 1-minute load average stands in (it lags: right after another job ends it still counts it).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Mapping

from trm.errors import UserError


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def chosen_threads(environ: Mapping[str, str] = os.environ, *, cores: int | None = None,
                   load: float | None = None, measure: bool = True) -> tuple[int | None, str]:
    """(threads to set or None to leave torch alone, why); ``measure=False`` reads the load average instead of
    sampling /proc/stat for a quarter of a second (for commands that do no tensor work)."""
    if environ.get("TRM_NUM_THREADS"):
        text = environ["TRM_NUM_THREADS"]
        try:
            threads = int(text)
        except ValueError:
            raise UserError(f"TRM_NUM_THREADS: expected a whole number of threads >= 1 (got {text!r})") from None
        if threads < 1:
            raise UserError(f"TRM_NUM_THREADS: expected a whole number of threads >= 1 (got {text!r})")
        return threads, "TRM_NUM_THREADS"
    if environ.get("OMP_NUM_THREADS"):
        return None, "OMP_NUM_THREADS"
    cores = cores if cores is not None else _available_cores()
    if load is None:
        load = busy_cores() if measure else load_average()
    processes = max(1, int(environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    free = max(1, round(cores - load))
    return max(1, min(cores // processes, free)), f"{cores} cores, {load:.1f} busy"


def _cpu_times(path: str = "/proc/stat") -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot, or None where /proc/stat is missing."""
    try:
        with open(path) as handle:
            fields = [int(value) for value in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_cores(seconds: float = 0.25, path: str = "/proc/stat") -> float:
    """Cores other processes keep busy now: /proc/stat sampled over ``seconds``; else the 1-minute load average."""
    before = _cpu_times(path)
    if before is not None:
        time.sleep(seconds)
        after = _cpu_times(path)
        if after is not None and after[1] > before[1]:
            return (after[0] - before[0]) / (after[1] - before[1]) * (os.cpu_count() or 1)
    return load_average()


def load_average() -> float:
    """The 1-minute load average (0 where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


_chosen_because = "torch's default"  # set by configure_threads, shown in trm run's plan


def thread_source() -> str:
    """Why torch has the thread count it has, for the run's plan: the variable that set it, or how trm chose."""
    return _chosen_because


def configure_threads(environ: Mapping[str, str] = os.environ, *, measure: bool = True) -> int | None:
    """Apply :func:`chosen_threads` to torch (imported or not yet); returns the count set, if any."""
    global _chosen_because
    threads, why = chosen_threads(environ, measure=measure)
    _chosen_because = why if why.endswith("NUM_THREADS") else f"chosen from {why}; TRM_NUM_THREADS overrides"
    if threads is None:
        return None
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    else:  # torch reads it when first imported; --help never imports torch
        os.environ["OMP_NUM_THREADS"] = str(threads)
    return threads

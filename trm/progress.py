"""Progress bars: tqdm on a terminal, periodic plain lines everywhere else (log files, CI, ``nohup``, pipes).

tqdm redraws its bar with carriage returns, which a terminal overwrites in place but a log file keeps: a long
training leaves megabytes of one "line" that ``tail`` and ``grep`` cannot read. When stderr is not a terminal, the
bar here writes one ordinary line when it starts, then one every :data:`LINE_INTERVAL_S` seconds, then one with
the final count when it closes. Every progress bar of trm (training, evaluation, store builds) comes from
:func:`progress_bar`.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Iterable

from tqdm.std import tqdm as _std_tqdm

__all__ = ["LINE_INTERVAL_S", "progress_bar", "PlainLineProgress"]

LINE_INTERVAL_S = 30.0  # often enough to see a run is alive, rare enough that a day of training is ~3,000 lines

_PLAIN_FORMAT = "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
_PLAIN_FORMAT_NO_TOTAL = "{desc}: {n_fmt} [{elapsed}, {rate_fmt}{postfix}]"


class PlainLineProgress(_std_tqdm):
    """A tqdm bar that writes whole lines (no carriage returns, no cursor movement), at most one per ``interval``
    seconds, plus the final state when closed."""

    def __init__(self, *args: Any, interval: float = LINE_INTERVAL_S, **kwargs: Any):
        self._interval = interval
        self._last_line: float | None = None
        self._shown: tuple[int | float, str] | None = None  # (count, postfix) of the last line written
        total = kwargs.get("total")
        if total is None and args and hasattr(args[0], "__len__"):
            total = len(args[0])
        kwargs.setdefault("bar_format", _PLAIN_FORMAT if total else _PLAIN_FORMAT_NO_TOTAL)
        kwargs.setdefault("ascii", True)
        kwargs.setdefault("mininterval", min(interval, 0.1))  # tqdm's own gate must not be the slower one
        super().__init__(*args, **kwargs)

    def _write_line(self) -> None:
        self.fp.write(f"{self}\n")
        self.fp.flush()
        self._last_line = time.monotonic()
        self._shown = (self.n, self.postfix or "")

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg is not None:  # tqdm clearing the bar ('') or its "(more hidden)" marker: nothing to redraw in a log
            return False
        if self._last_line is not None and time.monotonic() - self._last_line < self._interval:
            return True
        self._write_line()
        return True

    def clear(self, nolock: bool = False) -> None:
        """Nothing to erase: lines already written stay."""

    def close(self) -> None:
        if not self.disable and self._last_line is not None and self._shown != (self.n, self.postfix or ""):
            self._write_line()  # the final count, unless the last line already said it
        self.leave = False  # tqdm's own closing would redraw the bar with a carriage return
        super().close()


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
                 disable: bool = False, leave: bool = True, initial: int = 0, unit: str = "it",
                 interval: float = LINE_INTERVAL_S) -> Any:
    """A progress bar on stderr: tqdm's redrawn bar on a terminal, plain lines every ``interval`` s otherwise.

    ``disable`` gives a silent bar (same API, no output); ``leave=False`` removes a terminal bar when done.
    """
    stream = sys.stderr
    if disable or _is_terminal(stream):
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, disable=disable, leave=leave, initial=initial, unit=unit,
                    dynamic_ncols=True, file=stream)
    return PlainLineProgress(iterable, total=total, desc=desc, initial=initial, unit=unit, file=stream,
                             interval=interval)

"""One writer per run directory: ``RUN/trm.lock`` names the process that trains in it (PID and host).

The lock is an exclusive ``flock`` on ``RUN/trm.lock``, held for as long as the process runs, so the kernel frees it
when the process dies however it dies; the file's JSON (pid, host, start time, command) is what a refused second
writer is told. A file left by a process that died (its PID gone from this host, or reused by another process) is
taken over with a note. A lock written on another host is not second-guessed: that process cannot be checked from
here, so the message says to remove the file once it is known to be gone. Only the main process of a multi-process
run takes the lock (the others write nothing into the run directory but what the main process tells them to).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from trm.errors import UserError

LOCK_NAME = "trm.lock"


def _process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (field 22 of /proc/PID/stat): tells a reused PID apart. None off Linux."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[-1].split()[19]


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    now = _process_start(pid)
    return start is None or now is None or now == start


class RunLock:
    """The lock of one run directory; :meth:`acquire` takes it or raises :class:`UserError`, :meth:`release` frees it."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        for _ in range(5):  # retried when the file is replaced between open and flock
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read(fd)
                os.close(fd)
                raise UserError(f"{self.run_dir}: in use by {_who(holder)}; one trm process at a time may write a "
                                f"run directory (wait for it to finish, or stop it first)") from None
            except OSError as exc:  # e.g. ENOLCK on a file system without locks
                os.close(fd)
                raise UserError(f"{self.path}: cannot lock the run directory ({exc.strerror})") from None
            try:
                same_file = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same_file = False
            if not same_file:  # the previous holder removed the file while we opened it: take the new one
                os.close(fd)
                continue
            holder = _read(fd)
            if holder is not None:
                self._check_left_over(fd, holder)
            me = {"pid": os.getpid(), "host": socket.gethostname(), "pid_start": _process_start(os.getpid()),
                  "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "command": " ".join(["trm", *sys.argv[1:]])}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
            os.fsync(fd)
            self._fd = fd
            return
        raise UserError(f"{self.path}: the lock file keeps changing; is another trm process starting in this run?")

    def _check_left_over(self, fd: int, holder: dict[str, Any]) -> None:
        """A lock file nobody holds: left by a process that died, or written on another host (cannot be checked)."""
        if holder.get("_unreadable"):
            return  # written by no trm (ours are whole JSON), and nobody holds it
        host, pid = holder.get("host"), holder.get("pid")
        if host != socket.gethostname():
            os.close(fd)
            raise UserError(f"{self.run_dir}: locked by {_who(holder)}, which cannot be checked from this host; "
                            f"if that process is gone, remove {self.path} and try again")
        if isinstance(pid, int) and _alive(pid, holder.get("pid_start")) and pid != os.getpid():
            # Alive but not holding the lock: a file system whose locks do not reach this process; trust the PID.
            os.close(fd)
            raise UserError(f"{self.run_dir}: in use by {_who(holder)}; one trm process at a time may write a run "
                            "directory (wait for it to finish, or stop it first)")
        print(f"note: {self.path}: taking over the lock of {_who(holder)}, which is no longer running", file=sys.stderr, flush=True)

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still holding it: nobody takes a lock on the removed file
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _read(fd: int) -> dict[str, Any] | None:
    data = os.pread(fd, 65536, 0)
    if not data.strip():
        return None
    try:
        value = json.loads(data)
    except ValueError:
        return {"_unreadable": True}
    return value if isinstance(value, dict) else {"_unreadable": True}


def _who(holder: dict[str, Any] | None) -> str:
    if not holder or holder.get("_unreadable"):
        return "another process (its lock file is unreadable)"
    since = f", since {holder['since']}" if holder.get("since") else ""
    command = f" ({holder['command']})" if holder.get("command") else ""
    return f"process {holder.get('pid')} on {holder.get('host')}{command}{since}"



"""Processes the local stack starts, recorded so that exactly those are stopped.

A pid file holds the PID and the process's start time (from /proc), so a PID that the
kernel has since reused for some other program is never mistaken for ours.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; the fields after it are fixed.
    fields = stat[stat.rfind(")") + 2 :].split()
    if fields and fields[0] == "Z":  # a zombie has exited already
        return None
    return fields[19] if len(fields) > 19 else None


@dataclass(frozen=True)
class Recorded:
    pid: int
    start_time: str

    def alive(self) -> bool:
        return _start_time(self.pid) == self.start_time


def read_pidfile(path: Path) -> Recorded | None:
    """The process recorded in `path`, if the file exists and is well formed."""
    try:
        data = json.loads(path.read_text())
        return Recorded(pid=int(data["pid"]), start_time=str(data["start_time"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def running(path: Path) -> Recorded | None:
    """The recorded process if it is still the one we started, else None."""
    recorded = read_pidfile(path)
    return recorded if recorded and recorded.alive() else None


def spawn(
    args: Sequence[str],
    *,
    pidfile: Path,
    logfile: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> Recorded:
    """Start `args` in its own session, output appended to `logfile`, and record it."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    account = pwd.getpwnam(user) if user else None
    with logfile.open("ab") as log:
        proc = subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,  # Ctrl-C in the terminal must not reach the stack
            user=account.pw_uid if account else None,
            group=account.pw_gid if account else None,
            extra_groups=[] if account else None,
        )
    start = None
    for _ in range(100):
        start = _start_time(proc.pid)
        if start is not None or proc.poll() is not None:
            break
        time.sleep(0.01)
    recorded = Recorded(pid=proc.pid, start_time=start or "")
    pidfile.write_text(
        json.dumps({"pid": recorded.pid, "start_time": recorded.start_time, "args": list(args)})
    )
    return recorded


def exited_early(recorded: Recorded) -> bool:
    """True when a process we just started is gone (reaping it if it is our child)."""
    try:
        pid, _ = os.waitpid(recorded.pid, os.WNOHANG)
        if pid == recorded.pid:
            return True
    except ChildProcessError:
        pass
    return not recorded.alive()


def stop(pidfile: Path, *, timeout: float = 30.0) -> bool:
    """Stop the process recorded in `pidfile`: SIGTERM, then SIGKILL after `timeout`.

    Returns True if a running process was stopped. The pid file is removed either way.
    """
    recorded = running(pidfile)
    stopped = False
    if recorded:
        _signal(recorded.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while recorded.alive() and time.monotonic() < deadline:
            _reap(recorded.pid)
            time.sleep(0.1)
        if recorded.alive():
            _signal(recorded.pid, signal.SIGKILL)
            while recorded.alive():
                _reap(recorded.pid)
                time.sleep(0.05)
        stopped = True
    pidfile.unlink(missing_ok=True)
    return stopped


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)

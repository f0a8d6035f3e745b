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

# The processes this Python process started, kept so that they are reaped when they end
# (and so the interpreter does not warn about running children it forgot).
_children: dict[int, subprocess.Popen[bytes]] = {}


def _start_time(pid: int, *, zombies: bool = False) -> str | None:
    """The start time of `pid` from /proc, or None if there is no such (live) process.

    A multi-threaded process whose main thread has ended shows as a zombie while its other
    threads still run, so waiting for a process to end must count zombies (zombies=True).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; the fields after it are fixed.
    fields = stat[stat.rfind(")") + 2 :].split()
    if fields and fields[0] == "Z" and not zombies:
        return None
    return fields[19] if len(fields) > 19 else None


@dataclass(frozen=True)
class Recorded:
    pid: int
    start_time: str

    def alive(self) -> bool:
        return _start_time(self.pid) == self.start_time

    def gone(self) -> bool:
        """True once the process has ended and been reaped (if it was our child)."""
        _reap(self.pid)
        return _start_time(self.pid, zombies=True) != self.start_time


def children(pid: int) -> list[Recorded]:
    """The live processes whose parent is `pid` (a PostgreSQL postmaster's backends: after
    the postmaster is killed they end on their own, and a new one cannot start beside them)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 19 and fields[1] == str(pid) and fields[0] != "Z":
            found.append(Recorded(pid=int(entry.name), start_time=fields[19]))
    return found


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
    _children[proc.pid] = proc
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
    _reap(recorded.pid)
    return not recorded.alive()


def exit_status(recorded: Recorded) -> str:
    """How a child of ours ended, as far as we know: for messages."""
    child = _children.get(recorded.pid)
    code = child.returncode if child is not None else None
    if code is None:
        return "it is no longer running"
    return f"killed by signal {-code}" if code < 0 else f"exit code {code}"


def stop(pidfile: Path, *, timeout: float = 30.0) -> bool:
    """Stop the process recorded in `pidfile`: SIGTERM, then SIGKILL after `timeout`.

    Returns True if a running process was stopped. The pid file is removed either way.
    """
    recorded = read_pidfile(pidfile)
    stopped = False
    if recorded and not recorded.alive():
        _reap(recorded.pid)  # it ended on its own: collect it if it was our child
    elif recorded:
        _signal(recorded.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while not recorded.gone() and time.monotonic() < deadline:
            time.sleep(0.1)
        if not recorded.gone():
            _signal(recorded.pid, signal.SIGKILL)
            while not recorded.gone():
                time.sleep(0.05)
        stopped = True
    pidfile.unlink(missing_ok=True)
    return stopped


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    child = _children.get(pid)
    if child is not None:
        child.poll()  # kept after it ends: exit_status reads its return code
        return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)

"""The embedded local stack: Kafka, Kafka Connect with Debezium, PostgreSQL and MariaDB,
started from real binaries on one machine, without Docker.

`up` is idempotent: it starts only what is not running, waits until every part serves
clients, and if anything fails it stops what this call started, so nothing is left
half-done. `down` stops exactly the processes the stack recorded, by PID.
"""

from __future__ import annotations

import os
import pwd
import shutil
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from seam.errors import StackError
from seam.settings import StackSettings
from seam.stack import jars, prereqs, process
from seam.stack.databases import MariaDb, Postgres
from seam.stack.kafka import Broker, Connect
from seam.stack.part import Part, StackPaths, port_open, service_user

PART_NAMES = ("postgres", "mariadb", "kafka", "connect")
READY_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class PartStatus:
    name: str
    state: str  # running | starting | stopped | stale | foreign
    pid: int | None
    endpoint: str
    log: Path
    note: str | None = None


class LocalStack:
    """The local stack living in `settings.dir`."""

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.paths = StackPaths(settings.dir)

    # -- building the parts -------------------------------------------------------------

    def _parts(self, *, resolve: bool, names: Collection[str] = PART_NAMES) -> list[Part]:
        """The parts named in `names`, in start order. With resolve=False no program or jar
        is looked up, which is all that status, logs and down need; with resolve=True only
        those the named parts run."""
        s, p = self.settings, self.paths
        programs = prereqs.find_programs(names if resolve else ())
        layout = (
            jars.ensure_jars(s.cache_dir)
            if resolve and {"kafka", "connect"} & set(names)
            else jars.JarLayout(Path(), Path())
        )
        parts: list[Part] = [
            Postgres(s, p, programs.postgres_bin),
            MariaDb(s, p, programs.mariadbd, programs.mariadb_install_db),
            Broker(s, p, layout, programs.java),
            Connect(s, p, layout, programs.java),
        ]
        return [part for part in parts if part.name in names]

    def _check_directory(self) -> None:
        root = self.settings.dir
        if root.exists() and root.stat().st_uid != os.geteuid() and os.geteuid() != 0:
            raise StackError(
                f"the stack directory {root} belongs to user '{_user_name(root.stat().st_uid)}', not to you",
                hint="choose your own directory with --stack-dir or SEAM_STACK_DIR",
            )
        if service_user():
            # The databases run as an unprivileged account, which must be able to reach their files.
            existing = [d for d in (root, *root.parents) if d.exists()]
            blocked = [d for d in existing if not d.stat().st_mode & 0o001]
            if blocked:
                raise StackError(
                    f"the databases run as '{service_user()}', who cannot enter {blocked[-1]} on the way to "
                    f"the stack directory {root}",
                    hint="choose a stack directory outside private home directories, e.g. --stack-dir /var/lib/seam/stack",
                )
        try:
            for sub in ("data", "logs", "run"):
                (root / sub).mkdir(parents=True, exist_ok=True)
            if service_user():
                for d in (root, root / "data", root / "run"):
                    d.chmod(d.stat().st_mode | 0o711)
        except OSError as exc:
            raise StackError(
                f"cannot create the stack directory {root}: {exc.strerror}",
                hint="choose a writable directory with --stack-dir or SEAM_STACK_DIR",
            ) from None

    # -- the commands -------------------------------------------------------------------

    def up(
        self,
        on_event: Callable[[str], None] = lambda _msg: None,
        *,
        only: Collection[str] | None = None,
    ) -> list[str]:
        """Start what is not running (of every part, or of those named in `only`) and wait
        until it is ready.

        Returns the names of the parts this call started. On failure, stops those again.
        """
        names = selected_parts(only)
        self._check_directory()
        if only is not None and "connect" in names and "kafka" not in only:
            on_event("connect keeps its state in Kafka: kafka is started too")
        on_event("checking prerequisites and the jar cache")
        parts = self._parts(resolve=True, names=names)
        started: list[Part] = []
        ready: list[Part] = []
        try:
            for part in parts:
                if part.running():
                    continue
                if part.pidfile.exists():
                    on_event(f"{part.name}: removing the record of a process that is gone")
                    process.stop(part.pidfile)
                part.check_ports_free()
                part.initialise()
                if isinstance(part, Connect):
                    # Connect stores its state in Kafka: the broker must serve first.
                    brokers = [p for p in parts if isinstance(p, Broker) and p not in ready]
                    ready.extend(self._wait_ready(brokers, on_event))
                on_event(f"{part.name}: starting")
                part.start()
                started.append(part)
            self._wait_ready([p for p in parts if p not in ready], on_event)
            for part in parts:
                try:
                    part.after_ready()
                except Exception as exc:  # a driver error while setting up a database
                    raise StackError(
                        f"setting up the local {part.name} failed: {exc}",
                        hint=f"see: seam stack logs {part.name}",
                    ) from exc
        except BaseException:
            for part in reversed(started):
                process.stop(part.pidfile)
            raise
        return [p.name for p in started]

    def _wait_ready(self, parts: Sequence[Part], on_event: Callable[[str], None]) -> list[Part]:
        pending = list(parts)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while pending:
            for part in list(pending):
                recorded = process.read_pidfile(part.pidfile)
                if recorded is None or process.exited_early(recorded):
                    status = process.exit_status(recorded) if recorded else "no record of it"
                    raise StackError(
                        f"the local {part.name} exited while starting ({status}): "
                        f"{_last_lines(part.logfile)}",
                        hint=f"see the whole log with: seam stack logs {part.name}",
                    )
                if part.ready():
                    on_event(f"{part.name}: ready at {part.endpoint()}")
                    pending.remove(part)
            if pending and time.monotonic() > deadline:
                names = ", ".join(p.name for p in pending)
                raise StackError(
                    f"the local {names} did not become ready within {READY_TIMEOUT_S:.0f} s",
                    hint=f"see: seam stack logs {pending[0].name}",
                )
            if pending:
                time.sleep(0.2)
        return list(parts)

    def down(self, *, only: Iterable[str] | None = None, wipe: bool = False) -> list[str]:
        """Stop the stack's processes (all, or the parts named in `only`), newest part first.

        With wipe=True the whole stack directory is deleted afterwards. Returns the names of
        the parts that were running and are now stopped.
        """
        wanted = set(PART_NAMES if only is None else known_parts(only))
        stopped = [
            part.name
            for part in reversed(self._parts(resolve=False))
            if part.name in wanted and process.stop(part.pidfile)
        ]
        if wipe:
            shutil.rmtree(self.settings.dir, ignore_errors=True)
        return stopped

    def status(self) -> list[PartStatus]:
        result = []
        for part in self._parts(resolve=False):
            recorded = process.read_pidfile(part.pidfile)
            note = None
            serving = [] if recorded else self._serving(part)
            if serving:
                # Nothing started from this directory, but the configured ports answer:
                # another stack (another --stack-dir) or another program serves them.
                state = "foreign"
                note = "not started from this directory; something serves " + ", ".join(
                    f"{self.settings.host}:{port}" for port in serving
                )
            elif recorded is None:
                state = "stopped"
            elif not recorded.alive():
                state = "stale"
            else:
                state = "running" if part.ready() else "starting"
            result.append(
                PartStatus(
                    name=part.name,
                    state=state,
                    pid=recorded.pid if recorded and recorded.alive() else None,
                    endpoint=part.endpoint(),
                    log=part.logfile,
                    note=note,
                )
            )
        return result

    def _serving(self, part: Part) -> list[int]:
        """The part's ports on which something accepts connections."""
        return [port for port in part.ports().values() if port_open(self.settings.host, port)]

    def recorded(self, name: str) -> process.Recorded | None:
        """The process of part `name` as this stack recorded it (PID and start time), while
        it is still that process; None when it does not run. For whoever must signal a part
        itself (the fault-injection tests kill -9 it) without ever hitting a reused PID."""
        (part,) = self._parts(resolve=False, names=known_parts([name]))
        return part.running()

    def log_file(self, name: str) -> Path:
        known_parts([name])
        return self.paths.log(name)


def selected_parts(only: Iterable[str] | None) -> list[str]:
    """The parts `only` names, in start order (all when None), with Kafka for Connect: it
    keeps its configs, offsets and status there."""
    if only is None:
        return list(PART_NAMES)
    wanted = set(known_parts(only))
    if "connect" in wanted:
        wanted.add("kafka")
    return [name for name in PART_NAMES if name in wanted]


def known_parts(names: Iterable[str]) -> list[str]:
    """`names`, each checked to be a part of the local stack (and at least one)."""
    names = list(names)
    unknown = [n for n in names if n not in PART_NAMES]
    if unknown or not names:
        what = ", ".join(repr(n) for n in unknown)
        raise StackError(
            f"the local stack has no part {what}" if unknown else "no part named",
            hint=f"choose among: {', '.join(PART_NAMES)}",
        )
    return names


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _last_lines(path: Path, count: int = 3) -> str:
    try:
        lines = [
            line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()
        ]
    except OSError:
        return "(no log)"
    return " | ".join(lines[-count:]) or "(empty log)"

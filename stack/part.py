"""What every part of the local stack (broker, Connect, PostgreSQL, MariaDB) provides."""

from __future__ import annotations

import errno
import os
import socket
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from seam.errors import StackError
from seam.settings import StackSettings
from seam.stack import process

# Databases refuse to run as root; when seam runs as root they run as this account.
SERVICE_USER = "nobody"


def service_user() -> str | None:
    return SERVICE_USER if os.geteuid() == 0 else None


@dataclass(frozen=True)
class StackPaths:
    """Where the stack keeps each part's data, log and pid file, under one directory."""

    root: Path

    def data(self, part: str) -> Path:
        return self.root / "data" / part

    def log(self, part: str) -> Path:
        return self.root / "logs" / f"{part}.log"

    def pidfile(self, part: str) -> Path:
        return self.root / "run" / f"{part}.pid"

    def run(self, part: str) -> Path:
        """A private directory for sockets and generated config files."""
        return self.root / "run" / part


class Part(ABC):
    """One process of the stack. Subclasses say how to initialise, start and probe it."""

    name: str

    def __init__(self, settings: StackSettings, paths: StackPaths) -> None:
        self.settings = settings
        self.paths = paths

    @property
    def pidfile(self) -> Path:
        return self.paths.pidfile(self.name)

    @property
    def logfile(self) -> Path:
        return self.paths.log(self.name)

    @abstractmethod
    def ports(self) -> dict[str, int]:
        """The ports this part listens on, by the setting that chooses them."""

    @abstractmethod
    def endpoint(self) -> str:
        """How a client reaches this part, secrets masked."""

    def initialise(self) -> None:  # noqa: B027 - most parts need no first-run step
        """Create the part's data directory on the first run; must be safe to re-run."""

    @abstractmethod
    def start(self) -> process.Recorded:
        """Start the process (data already initialised, ports checked)."""

    @abstractmethod
    def ready(self) -> bool:
        """True once the part serves clients. Must return quickly and never raise."""

    def after_ready(self) -> None:  # noqa: B027 - most parts need no set-up once up
        """Idempotent set-up that needs the running process (databases, users)."""

    def running(self) -> process.Recorded | None:
        return process.running(self.pidfile)

    def check_ports_free(self) -> None:
        for setting, port in self.ports().items():
            if port_in_use(self.settings.host, port):
                env = f"SEAM_STACK_{setting.upper()}"
                raise StackError(
                    f"port {port} on {self.settings.host}, which the local {self.name} needs, is already "
                    "in use by another program",
                    hint=f"stop that program, or choose a free port with stack.{setting} in seam.toml or {env}",
                )


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False

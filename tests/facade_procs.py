"""Real processes for the facade's tests and benchmark: test upstreams and `seam facade run`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[1]
# One capability shadowing GET /items/{id} (format with legacy= and new= URLs).
SHADOW_ROUTES = """\
legacy: {{url: '{legacy}'}}
new: {{svc: '{new}'}}
capabilities:
  details:
    entity: thing
    requests: ["GET /items/{{id}}"]
    mode: shadow
    shadow: {{wait_ms: 300}}
"""


class Proc:
    """A process answering HTTP on a free port, stopped (killed if need be) by close()."""

    def __init__(self, args: list[str], log: Path, health: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [a.replace("{port}", str(self.port)) for a in args]
        self.log = log
        self.health = health
        self.client = httpx.Client(base_url=self.url, timeout=30)
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.args,
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=out,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                self.client.get(self.health)
                return
            except httpx.TransportError:
                time.sleep(0.02)
        raise AssertionError(f"{self.args} did not answer in 30s: {self.log.read_text()}")

    def signal(self, signum: int, timeout: float = 20) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        return self.process.wait(timeout)

    def close(self) -> None:
        self.client.close()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


class Upstream(Proc):
    def __init__(self, name: str, folder: Path) -> None:
        super().__init__(
            [sys.executable, "-m", "tests.http_upstream", "{port}", name],
            folder / f"upstream-{name}.log",
            "/_control_missing",
        )

    def put(self, key: str, item: dict[str, Any]) -> None:
        self.client.put(f"/items/{key}", json=item).raise_for_status()

    def control(self, **values: Any) -> None:
        self.client.post("/_control", json=values).raise_for_status()


class Facade(Proc):
    def __init__(self, routes: Path, state: Path, *extra: str) -> None:
        super().__init__(
            [
                sys.executable,
                "-m",
                "seam.cli.main",
                "facade",
                "run",
                str(routes),
                "--port",
                "{port}",
                "--state",
                str(state),
                *extra,
            ],
            routes.parent / "facade.log",
            "/_seam/health",
        )

    def status(self) -> dict[str, Any]:
        answer: dict[str, Any] = self.client.get("/_seam/status").json()
        return answer


def seam(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "seam.cli.main", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def wait_until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.05)

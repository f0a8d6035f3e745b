"""Fixtures shared by every tier.

Integration tests run against the real local stack. By default the test session starts a
private one (its own directory and free ports, so it never meets a stack the developer
runs), points SEAM_CONFIG at it so `seam` commands run by tests use it too, and stops and
deletes it at the end. Set SEAM_TEST_STACK=reuse to run against endpoints that are already up
(the settings from SEAM_CONFIG / SEAM_* variables, or the local stack's defaults).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from seam.settings import Settings, StackSettings, load_settings


def start_transform_worker(
    pipeline: Path,
    instance: str,
    *options: str,
    capture_stdout: bool = True,
    stdout: IO[bytes] | None = None,
    stderr: IO[bytes] | None = None,
) -> subprocess.Popen[bytes]:
    """`seam transform run PIPELINE --instance-id INSTANCE OPTIONS...` in its own process,
    as an operator runs it (stderr always captured, for the failure message: to a pipe, or
    to `stderr`, a file, for a worker that runs long; `stdout` likewise)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "seam.cli.main",
            "transform",
            "run",
            str(pipeline),
            "--instance-id",
            instance,
            *options,
        ],
        stdout=stdout or (subprocess.PIPE if capture_stdout else subprocess.DEVNULL),
        stderr=stderr or subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def private_stack_config(root: Path) -> Path:
    """A seam.toml for a stack in `root` on free ports; returns its path."""
    ports = {name: free_port() for name in StackSettings().ports()}
    lines = [
        "[stack]",
        f'dir = "{root / "stack"}"',
        *(f"{k} = {v}" for k, v in ports.items()),
        # The secured paths (SASL/SCRAM, TLS, Connect basic auth) are tested on this same
        # stack: the extra listeners cost the broker nothing measurable, a second stack ~1 min.
        "secure_listeners = true",
        "connect_basic_auth = true",
    ]
    config = root / "seam.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The fault tier kills and restarts the parts of the session's private stack: it runs
    # after every other test of the session (the sort is stable: the rest keep their order).
    items.sort(key=lambda item: item.get_closest_marker("faults") is not None)


@pytest.fixture(scope="session")
def stack() -> Iterator[Settings]:
    """Settings whose endpoints reach a running local stack."""
    if os.environ.get("SEAM_TEST_STACK") == "reuse":
        yield load_settings()
        return
    from seam.stack.local import LocalStack

    # /var/tmp rather than /tmp-in-home: the databases may run as an unprivileged user.
    root = Path(tempfile.mkdtemp(prefix="seam-test-", dir="/var/tmp"))
    root.chmod(0o755)
    config = private_stack_config(root)
    settings = load_settings(config_file=config)
    local = LocalStack(settings.stack)
    previous = os.environ.get("SEAM_CONFIG")
    os.environ["SEAM_CONFIG"] = str(config)
    try:
        local.up()
        yield settings
    finally:
        local.down()
        if previous is None:
            os.environ.pop("SEAM_CONFIG", None)
        else:
            os.environ["SEAM_CONFIG"] = previous
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Factory of names no other test uses: topics, groups, connectors, tables."""

    def make(prefix: str) -> str:
        return f"{prefix}_{uuid.uuid4().hex[:10]}"

    return make

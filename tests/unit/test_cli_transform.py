"""`seam transform replay --delete-old` asks first: on a terminal it prompts; without one
(a script, CI) it fails naming --yes. No broker is reached in either case unless the answer
is yes (the broker given is unreachable)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from seam.cli.main import app
from seam.errors import SeamError
from seam.legacy_db.files import folder

pytestmark = pytest.mark.unit

CATALOG = folder("pipelines") / "catalog.yaml"
NO_BROKER = ("--kafka", "127.0.0.1:1")


def test_delete_old_without_a_terminal_names_yes() -> None:
    result = CliRunner().invoke(
        app, [*NO_BROKER, "transform", "replay", str(CATALOG), "--delete-old"], input="y\n"
    )
    assert result.exit_code == 1
    error = result.exception
    assert isinstance(error, SeamError)
    assert error.message.startswith("Delete catalog.product-events, ")
    assert error.message.endswith("stdin is not a terminal")
    assert error.hint == "pass --yes to confirm without a prompt"


def _answer(answer: bytes) -> tuple[int, str, str]:
    """`seam transform replay --delete-old` on a terminal, answering `answer`."""
    main, terminal = pty.openpty()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "seam.cli.main",
            *NO_BROKER,
            "transform",
            "replay",
            str(CATALOG),
            "--delete-old",
            "--broker-timeout",
            "1",
        ],
        stdin=terminal,
        stdout=terminal,
        stderr=subprocess.PIPE,
    )
    os.close(terminal)
    shown = b""
    deadline = time.monotonic() + 30
    try:
        while b"[y/N]" not in shown and time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 1)
            if ready:
                shown += os.read(main, 4096)
        os.write(main, answer)
        _out, err = proc.communicate(timeout=60)
    finally:
        os.close(main)
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, shown.decode(), err.decode()


def test_delete_old_on_a_terminal_asks() -> None:
    code, shown, err = _answer(b"n\n")
    assert "Delete catalog.product-events, catalog.products-latest" in shown
    assert code == 1
    assert "cannot reach Kafka" not in err  # refused: nothing was touched

    code, _shown, err = _answer(b"y\n")
    assert code == 1
    # Went on to delete, and the unreachable broker is said as such, not as a busy group.
    assert "error: cannot reach Kafka at 127.0.0.1:1" in err
    assert "deleting consumer group" in err
    assert "stop every worker" not in err
    assert "Traceback" not in err

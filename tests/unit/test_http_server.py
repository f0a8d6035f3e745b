"""seam.http_server: a port taken is one clear error, and a start hook's failure stops the
server and reaches the caller (loopback sockets only)."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from seam.errors import ConfigError
from seam.http_server import run_asgi

pytestmark = pytest.mark.unit


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    raise AssertionError("no request is sent in these tests")


def test_a_port_in_use_is_one_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}") as raised:
            run_asgi(_app, "127.0.0.1", port)
    assert "--port" in (raised.value.hint or "")


def test_a_failing_start_hook_stops_the_server_and_is_raised() -> None:
    seen: list[str] = []

    def hook(url: str) -> None:
        seen.append(url)
        raise RuntimeError("the image could not start")

    with pytest.raises(RuntimeError, match="the image could not start"):
        run_asgi(_app, "127.0.0.1", 0, on_started=hook)
    assert seen == ["http://127.0.0.1:0"]

"""The one way seam runs an HTTP server (a service, the facade, the example's legacy app):
uvicorn until SIGTERM or Ctrl-C, with one clear error when it cannot listen.

uvicorn owns the signals: it stops accepting, lets requests in flight finish (at most
`GRACE_S`) and returns, then raises the signal it stopped on again. SIGTERM must then end
the process through the callers' `finally` blocks with status 0 (a clean stop: a service
writes its snapshot), not kill it. A port taken is found before uvicorn starts, since
uvicorn logs its own error and exits with status 3 instead of returning.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Final, Literal

from seam.errors import ConfigError

GRACE_S: Final = 3


def run_asgi(
    app: Any,
    host: str,
    port: int,
    *,
    on_started: Callable[[str], None] | None = None,
    lifespan: Literal["on", "off"] = "off",
    own_headers: bool = True,
) -> None:
    """Serve `app` on host:port until stopped. `on_started(url)` runs in a thread once the
    server listens (answers may already come in); if it raises, the server stops and the
    error is raised here. `own_headers=False` leaves out uvicorn's Date and Server headers
    (a proxy passes its upstream's through instead)."""
    import uvicorn

    check_port(host, port)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=GRACE_S,
        lifespan=lifespan,
        server_header=own_headers,
        date_header=own_headers,
    )
    server = uvicorn.Server(config)
    failed: list[BaseException] = []

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.01)
        if not server.started or on_started is None:
            return
        try:
            on_started(f"http://{host}:{port}")
        except BaseException as exc:  # raised again below, in the caller's thread
            failed.append(exc)
            server.should_exit = True

    announcer = threading.Thread(target=announce, name="seam-http-start", daemon=True)
    announcer.start()
    previous = signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        server.run()
    except SystemExit:
        if server.started:
            raise
        # uvicorn exits (3) when it cannot bind: the port was taken after the check.
    finally:
        server.should_exit = True
        announcer.join(30)
        signal.signal(signal.SIGTERM, previous)
    if failed:
        raise failed[0]
    if not server.started:
        raise cannot_listen(host, port)


def check_port(host: str, port: int) -> None:
    """One clear error for a port in use or an address not of this machine."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(infos[0][4])
    except OSError:
        raise cannot_listen(host, port) from None


def cannot_listen(host: str, port: int) -> ConfigError:
    return ConfigError(
        f"cannot listen on {host}:{port} (in use, or not an address of this machine)",
        hint="pass another --port, or stop what listens there",
    )


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)

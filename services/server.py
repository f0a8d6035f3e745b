"""Run a service: serve HTTP with uvicorn, load and tail the image, stop on a signal.

The HTTP server starts first, so /health and /ready (503) answer while the snapshot loads
and the image catches up. uvicorn owns the signals: on SIGTERM or SIGINT it stops accepting,
lets requests in flight finish (at most `GRACE_S`) and returns; the image then stops
tailing and writes its snapshot. A failure to start the image (Kafka unreachable, the topic
missing) stops the server and is raised as the SeamError it was.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import Final

from seam.errors import ConfigError, SeamError
from seam.services.runtime import Service

GRACE_S: Final = 3


def serve(
    service: Service,
    host: str,
    port: int,
    *,
    started: Callable[[str], None] | None = None,
) -> None:
    """Serve `service` on host:port until stopped."""
    import uvicorn

    from seam.services.app import create_asgi

    config = uvicorn.Config(
        create_asgi(service),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=GRACE_S,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    failed: list[BaseException] = []

    def start_image() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.01)
        if server.should_exit:
            return
        try:
            service.start()
        except BaseException as exc:  # raised again below, in the main thread
            failed.append(exc)
            server.should_exit = True
            return
        if started is not None:
            started(f"http://{host}:{port}")

    starter = threading.Thread(target=start_image, name="seam-serve-start", daemon=True)
    starter.start()
    # uvicorn raises the signal it stopped on again once it has shut down: SIGTERM must then
    # end the process through `finally` (stop tailing, write the snapshot), not kill it.
    previous = signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        server.run()
    finally:
        server.should_exit = True
        starter.join(30)
        service.stop()
        signal.signal(signal.SIGTERM, previous)
    if failed:
        error = failed[0]
        if isinstance(error, SeamError):
            raise error
        raise SeamError(
            f"the service could not start: {type(error).__name__}: {error}",
            hint="check the Kafka settings and that the latest topic exists",
        )
    if not server.started:
        raise ConfigError(
            f"cannot listen on {host}:{port} (in use, or not an address of this machine)",
            hint="pass another --port, or stop what listens there",
        )


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)

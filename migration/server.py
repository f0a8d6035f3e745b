"""Run the facade with uvicorn until SIGTERM or Ctrl-C.

uvicorn owns the signals: it stops accepting, lets requests in flight finish (at most
`GRACE_S`), runs the facade's shutdown (stop the shadow, close the upstream pools, write the
last status) and returns.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Final

from seam.errors import ConfigError
from seam.migration.facade import Facade

GRACE_S: Final = 3


def run_facade(
    facade: Facade, host: str, port: int, *, started: Callable[[str], None] | None = None
) -> None:
    import uvicorn

    config = uvicorn.Config(
        facade,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=GRACE_S,
        lifespan="on",
        # the upstream's own Date and Server headers pass through, not a second pair
        server_header=False,
        date_header=False,
    )
    server = uvicorn.Server(config)
    facade.url = f"http://{host}:{port}"
    original_startup = server.startup

    async def startup(sockets: object = None) -> None:
        await original_startup(sockets=sockets)  # type: ignore[arg-type]
        if server.started and started is not None:
            started(facade.url)

    server.startup = startup  # type: ignore[method-assign]
    # uvicorn raises the signal it stopped on again once it has shut down: SIGTERM then ends
    # the process with status 0, as a clean stop.
    previous = signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not server.started:
        raise ConfigError(
            f"cannot listen on {host}:{port} (in use, or not an address of this machine)",
            hint="pass another --port, or stop what listens there",
        )


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)

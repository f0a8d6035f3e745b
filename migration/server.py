"""Run the facade (`seam.http_server`) until SIGTERM or Ctrl-C.

On a stop the server lets requests in flight finish, then runs the facade's shutdown
(lifespan: stop the shadow, close the upstream pools, write the last status).
"""

from __future__ import annotations

from collections.abc import Callable

from seam.http_server import run_asgi
from seam.migration.facade import Facade


def run_facade(
    facade: Facade, host: str, port: int, *, started: Callable[[str], None] | None = None
) -> None:
    facade.url = f"http://{host}:{port}"
    # The upstream's own Date and Server headers pass through, not a second pair.
    run_asgi(facade, host, port, on_started=started, lifespan="on", own_headers=False)

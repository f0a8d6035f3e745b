"""Run a service: serve HTTP (`seam.http_server`), load and tail the image, stop on a signal.

The HTTP server starts first, so /health and /ready (503) answer while the snapshot loads
and the image catches up. On SIGTERM or SIGINT the server stops (requests in flight finish);
the image then stops tailing and writes its snapshot. A failure to start the image (Kafka
unreachable, the topic missing) stops the server and is raised as the SeamError it was.
"""

from __future__ import annotations

from collections.abc import Callable

from seam.errors import SeamError
from seam.http_server import run_asgi
from seam.services.runtime import Service


def serve(
    service: Service,
    host: str,
    port: int,
    *,
    started: Callable[[str], None] | None = None,
) -> None:
    """Serve `service` on host:port until stopped."""
    from seam.services.app import create_asgi

    def start_image(url: str) -> None:
        service.start()
        if started is not None:
            started(url)

    try:
        run_asgi(create_asgi(service), host, port, on_started=start_image)
    except (SeamError, SystemExit, KeyboardInterrupt):
        raise
    except Exception as error:
        raise SeamError(
            f"the service could not start: {type(error).__name__}: {error}",
            hint="check the Kafka settings and that the latest topic exists",
        ) from error
    finally:
        service.stop()

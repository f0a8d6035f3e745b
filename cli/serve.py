"""`seam serve SERVICE_FILE`: a memory image of a declared entity, served over HTTP.

Heavy modules (FastAPI, uvicorn, confluent_kafka) are imported inside the command.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from seam.cli.context import settings

SERVICE = typer.Argument(..., help="Service file (YAML), e.g. services/orders.yaml.")


def serve(
    ctx: typer.Context,
    service_file: Path = SERVICE,
    port: int | None = typer.Option(None, "--port", help="Port (default: the service file's)."),
    host: str | None = typer.Option(None, "--host", help="Address to listen on."),
    rebuild: bool = typer.Option(
        False, "--rebuild", help="Ignore the snapshot file: load the topic from offset 0."
    ),
    snapshot: Path | None = typer.Option(
        None, "--snapshot", help="Snapshot file (default: the service file's)."
    ),
) -> None:
    """Load an entity's latest topic into memory, keep it current, serve it over HTTP
    (OpenAPI docs at /docs). Ctrl-C or SIGTERM stops it and writes its snapshot."""
    from seam.services.runtime import Service
    from seam.services.server import serve as run
    from seam.services.service_file import load_service

    spec = load_service(service_file)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    service = Service(spec, settings(ctx).kafka, rebuild=rebuild, snapshot_path=snapshot)
    where_host = host or spec.host
    where_port = spec.port if port is None else port

    def started(url: str) -> None:
        typer.echo(
            f"serving {spec.entity} from {spec.topic} on {url} ({service.note.detail}); "
            f"docs: {url}/docs; Ctrl-C stops",
            err=True,
        )

    run(service, where_host, where_port, started=started)

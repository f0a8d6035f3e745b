"""`seam dashboard`: one web page that shows the whole migration, live.

Heavy modules (starlette, uvicorn, confluent_kafka) are imported inside the command.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from seam.cli import migrate
from seam.cli.context import settings


def dashboard(
    ctx: typer.Context,
    file: Path | None = typer.Option(
        None,
        "--file",
        "-f",
        help="A dashboard file (YAML): pipelines, services, slots, facade, parity "
        "(see legacy_db/dashboard.yaml).",
    ),
    pipelines: list[Path] = typer.Option(
        [], "--pipeline", help="A transform pipeline file to show (repeatable)."
    ),
    services: list[str] = typer.Option(
        [], "--service", help="A `seam serve` service URL to show (repeatable)."
    ),
    slots: list[str] = typer.Option(
        [],
        "--slots",
        help="A PostgreSQL database (settings name or URL) whose replication slots to show "
        "(repeatable).",
    ),
    facade: str | None = typer.Option(
        None, "--facade", help="A running facade's URL (default: the status it recorded)."
    ),
    state: Path | None = migrate.STATE,
    port: int = typer.Option(8760, "--port", help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    interval: float = typer.Option(
        2.0, "--interval", min=0.5, help="Seconds between two collections (whatever the tabs)."
    ),
    allow_actions: bool = typer.Option(
        False,
        "--allow-actions",
        help="Let the page pause/resume connectors, restart failed tasks, change a route's "
        "mode and run parity (each asks first and is logged).",
    ),
) -> None:
    """Serve the migration dashboard: connectors and slots, pipelines, services, the
    facade's capabilities, and charts of the last hour. Read-only unless --allow-actions."""
    from seam.dashboard.actions import Actions
    from seam.dashboard.app import create_app
    from seam.dashboard.collect import Collector
    from seam.dashboard.config import DashboardConfig, load_dashboard
    from seam.http_server import run_asgi

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = load_dashboard(file) if file is not None else DashboardConfig()
    config = config.extended(pipelines=pipelines, services=services, slots=slots, facade=facade)
    directory = migrate.state_option(state)
    config_settings = settings(ctx)
    collector = Collector(config_settings, config, directory, interval_s=interval)
    actions = Actions(config_settings, config, directory) if allow_actions else None
    app = create_app(collector, actions)

    def started(url: str) -> None:
        typer.echo(
            f"dashboard on {url} ({'actions allowed' if allow_actions else 'read-only'}; "
            f"migration directory {directory}); Ctrl-C stops",
            err=True,
        )

    collector.start()
    try:
        run_asgi(app, host, port, on_started=started)
    finally:
        collector.stop()

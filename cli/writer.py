"""`seam migrate writer WRITES_FILE`: apply the writes moved to the new side to the legacy
database (seam.migration.writer), exactly once, tagged so the transform knows them."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import typer

from seam.cli import migrate
from seam.cli.context import settings
from seam.cli.render import OUTPUT, Output, print_json
from seam.errors import ConfigError, SeamError


@migrate.app.command("writer")
def writer(
    ctx: typer.Context,
    writes_file: Path = typer.Argument(..., help="The writes file, e.g. migration/writes.yaml."),
    database: str | None = typer.Option(
        None,
        "--database",
        "-d",
        help="The legacy database: a \\[databases] name or a URL (default: the writes file's).",
    ),
    until_caught_up: bool = typer.Option(
        False,
        "--until-caught-up",
        help="Stop once every event committed to the history so far is applied.",
    ),
    batch_size: int = typer.Option(
        500, "--batch-size", min=1, help="Events read (and applied in one transaction) at most."
    ),
    output: Output = OUTPUT,
) -> None:
    """Apply the new side's events to the legacy database, exactly once.

    Reads the pipeline's history topic, takes the events of this writer's origin and applies
    each with the writes file's SQL; the position is kept in the legacy database, in the same
    transaction. Ctrl-C or SIGTERM stops it after the transaction at hand; it resumes where
    it stopped.
    """
    from confluent_kafka import KafkaException

    from seam.migration.writer import Writer
    from seam.migration.writes import load_writes

    spec = load_writes(writes_file)
    name = database or spec.database
    if name is None:
        raise ConfigError(
            f"{writes_file}: no legacy database named",
            hint="pass --database NAME_OR_URL, or add 'database: <name>' to the writes file",
        )
    config = settings(ctx)
    run = Writer(
        spec,
        config.kafka,
        config.database_url(name),
        say=lambda text: typer.echo(text, err=True),
        batch_size=batch_size,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_args: stop.set())
    typer.echo(
        f"writer {spec.name}: applying the events of origin {spec.name} from "
        f"{run.topic} to the legacy database ({run.flavour}); Ctrl-C stops",
        err=True,
    )
    try:
        report = run.run(stop, until_caught_up=until_caught_up)
    except KafkaException as exc:
        raise SeamError(
            f"writer {spec.name}: Kafka failed: {exc.args[0] if exc.args else exc}",
            hint="check the broker (seam stack status), then run the writer again: it resumes "
            "at the first event not applied",
        ) from None
    if output is Output.json:
        print_json(report.as_dict())
    else:
        typer.echo(
            f"writer {spec.name}: {report.applied} applied, {report.rejected} rejected "
            f"(kept in seam_writer_rejects), {report.others} of other origins passed over, in "
            f"{report.transactions} transactions, {report.seconds:.1f}s"
        )

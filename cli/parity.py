"""`seam migrate parity PIPELINE`: does the new side hold what the legacy table holds?

Registered on `seam migrate` (cli/migrate.py). Exit codes for CI: 0 clean, 1 differences,
2 could not compare (a side could not be read or brought to the cut). The result is recorded
in the migration directory as parity/<entity>.json (what `seam migrate status` shows).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import typer

from seam.cli import migrate
from seam.cli.context import settings
from seam.cli.render import OUTPUT, Output, print_json, print_table
from seam.errors import ConfigError, SeamError

CLEAN: Final = 0
DIFFERENT: Final = 1
CANNOT_COMPARE: Final = 2
SHOWN: Final = 20  # differences listed in text output


@migrate.app.command("parity")
def parity(
    ctx: typer.Context,
    pipeline: Path = typer.Argument(
        ..., help="The declared pipeline of the entity (its transform's pipeline file)."
    ),
    database: str = typer.Option(
        ...,
        "--database",
        "-d",
        help="The legacy database: a database name from the settings, or a URL.",
    ),
    service: str | None = typer.Option(
        None,
        "--service",
        help="A memory image to compare too (`seam serve`), e.g. http://127.0.0.1:8080.",
    ),
    sink: str | None = typer.Option(
        None,
        "--sink",
        help="A JDBC sink's table to compare too: its spec file (kind: jdbc-sink) or its "
        "connector's name.",
    ),
    wait: float = typer.Option(
        60.0, "--wait", help="Seconds each side may take to reach the cut.", min=0.1
    ),
    rechecks: int = typer.Option(
        2, "--rechecks", help="Newer cuts a differing key is checked at before it counts.", min=0
    ),
    repair: bool = typer.Option(
        False,
        "--repair",
        help="Ask the connector (--connector) for an incremental snapshot of the differing "
        "keys' rows, wait for them, and check them again.",
    ),
    connector: str | None = typer.Option(
        None, "--connector", help="The Debezium connector that captures the entity's table."
    ),
    state: Path | None = migrate.STATE,
    output: Output = OUTPUT,
) -> None:
    """Compare the legacy table with the entity's latest topic and the service's store.

    The legacy table is read through the pipeline's declared cleaning; the latest topic,
    a memory image (--service) and a JDBC sink's table (--sink) are compared with it, all
    cut at one source position. Exit codes: 0 clean, 1 differences, 2 could not compare.
    """
    from seam.migration.parity import ParityCheck
    from seam.migration.state import MigrationStore
    from seam.transforms.pipeline_file import load_pipeline

    if repair and connector is None:
        raise ConfigError(
            "--repair needs the connector that captures the table",
            hint="pass --connector NAME (`seam connectors status` lists them)",
        )
    store = MigrationStore(migrate.state_option(state))
    spec = load_pipeline(pipeline)
    entity = spec.declaration.entity.name if spec.declaration is not None else spec.name
    try:
        config = settings(ctx)
        check = ParityCheck(
            spec,
            config.kafka,
            config.database_url(database),
            service_url=service,
            wait_s=wait,
            rechecks=rechecks,
            say=(lambda text: typer.echo(text, err=True)) if output is Output.text else _quiet,
            settings=config,
            repair_connector=connector if repair else None,
            sink=sink,
        )
        report = check.run()
    except SeamError as exc:
        # No verdict: recorded as such (a stale clean record must not stand), exit code 2.
        from datetime import UTC, datetime

        store.write(
            f"parity/{entity}.json",
            {
                "entity": entity,
                "clean": False,
                "compared": False,
                "error": exc.message,
                "finished_at": datetime.now(UTC)
                .isoformat(timespec="seconds")
                .replace("+00:00", "Z"),
                "position": None,
                "differing": None,
                "counts": {},
                "differences": [],
            },
        )
        typer.secho(f"error: could not compare: {exc.message}", err=True, fg=typer.colors.RED)
        if exc.hint:
            typer.secho(f"  fix: {exc.hint}", err=True)
        raise typer.Exit(CANNOT_COMPARE) from None
    record = {**report.as_json(), "compared": True, "pipeline": str(pipeline)}
    store.write(f"parity/{entity}.json", record)
    if output is Output.json:
        print_json(record)
    else:
        _show(record)
    raise typer.Exit(CLEAN if report.clean else DIFFERENT)


def _quiet(_text: str) -> None:
    return None


def _show(record: dict[str, Any]) -> None:
    counts = record["counts"]
    verdict = "clean" if record["clean"] else f"{record['differing']} keys differ"
    typer.echo(f"{record['entity']} at {record['position']}: {verdict}")
    typer.echo("counts: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    repaired = record.get("repair")
    if repaired:
        typer.echo(
            f"repair: asked {repaired['connector']} to snapshot {repaired['keys']} keys again; "
            f"{repaired['repaired']} now agree"
        )
    if record["settled"]:
        typer.echo(f"{record['settled']} keys differed at the first cut and agreed at a later one")
    rows = []
    for diff in record["differences"][:SHOWN]:
        fields = diff.get("fields") or {}
        shown = "; ".join(
            f"{name}: {values.get('legacy')!r} != {values.get(diff['side'])!r}"
            for name, values in fields.items()
        )
        rows.append([diff["key"], diff["side"], diff["reason"], shown or diff["detail"]])
    if rows:
        print_table("differences", ["key", "side", "reason", "detail"], rows)
    if len(record["differences"]) > SHOWN or record["differing"] > len(record["differences"]):
        typer.echo("(more in --output json and the record)")

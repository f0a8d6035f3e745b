"""`seam migrate parity PIPELINE`: does the new side hold what the legacy table holds?

Registered on `seam migrate` (cli/migrate.py). Exit codes for CI: 0 clean, 1 differences,
2 could not compare (a side could not be read or brought to the cut). The result is recorded
in the migration directory as parity/<entity>.json (what `seam migrate status` shows).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import typer

from seam.cli import migrate
from seam.cli.context import settings
from seam.cli.render import OUTPUT, Output, print_json, print_table
from seam.errors import ConfigError, SeamError

if TYPE_CHECKING:
    from seam.migration.state import MigrationStore
    from seam.settings import Settings
    from seam.transforms.pipeline_file import PipelineSpec

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
    from seam.migration.state import MigrationStore
    from seam.transforms.pipeline_file import load_pipeline

    if repair and connector is None:
        raise ConfigError(
            "--repair needs the connector that captures the table",
            hint="pass --connector NAME (`seam connectors status` lists them)",
        )
    store = MigrationStore(migrate.state_option(state))
    spec = load_pipeline(pipeline)  # a bad file is the usual error (exit 1), not exit 2
    try:
        record = check_and_record(
            settings(ctx),
            store,
            spec,
            pipeline,
            database,
            service=service,
            sink=sink,
            wait=wait,
            rechecks=rechecks,
            repair_connector=connector if repair else None,
            say=(lambda text: typer.echo(text, err=True)) if output is Output.text else _quiet,
        )
    except SeamError as exc:
        typer.secho(f"error: could not compare: {exc.message}", err=True, fg=typer.colors.RED)
        if exc.hint:
            typer.secho(f"  fix: {exc.hint}", err=True)
        raise typer.Exit(CANNOT_COMPARE) from None
    if output is Output.json:
        print_json(record)
    else:
        _show(record)
    raise typer.Exit(CLEAN if record["clean"] else DIFFERENT)


def check_and_record(
    config: Settings,
    store: MigrationStore,
    spec: PipelineSpec,
    pipeline: Path,
    database: str,
    *,
    service: str | None = None,
    sink: str | None = None,
    wait: float = 60.0,
    rechecks: int = 2,
    repair_connector: str | None = None,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the parity check of the entity of `spec` (read from `pipeline`) and record its result as
    parity/<entity>.json (what `seam migrate status`, cutover and the dashboard read). A
    check that could not compare is recorded as such (a stale clean record must not stand)
    and its SeamError raised again."""
    from datetime import UTC, datetime

    from seam.migration.parity import ParityCheck

    entity = spec.declaration.entity.name if spec.declaration is not None else spec.name
    try:
        check = ParityCheck(
            spec,
            config.kafka,
            config.database_url(database),
            service_url=service,
            wait_s=wait,
            rechecks=rechecks,
            say=say or _quiet,
            settings=config,
            repair_connector=repair_connector,
            sink=sink,
        )
        report = check.run()
    except SeamError as exc:
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
        raise
    record = {**report.as_json(), "compared": True, "pipeline": str(pipeline)}
    store.write(f"parity/{entity}.json", record)
    return record


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

"""`seam legacy ...`: the example's commands (seed the catalog, run its application, export
its pipeline files), plugged into the `seam` command through the entry-point group
`seam.commands` (pyproject.toml), so the toolkit's CLI never imports the example.

Heavy imports (SQLAlchemy, the drivers) happen inside the commands so `seam --help` stays fast.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import typer

from seam.cli.context import CliState, settings
from seam.cli.render import OUTPUT, Output
from seam.errors import ConfigError

app = typer.Typer(
    help="The example legacy product catalog: seed it, run its workload and its app, "
    "export its pipeline files.",
    no_args_is_help=True,
)

_DATABASE_HELP = (
    "Database: a name from the settings (postgres, mariadb, or one under \\[databases]) or a URL "
    "(postgresql://... or mysql://...)."
)


def _rate(text: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:/s)?\s*", text)
    if not match:
        raise ConfigError(
            f"--rate: expected operations per second like 10 or 10/s, got {text!r}",
            hint="use 0 for as fast as possible",
        )
    return float(match[1])


@app.command()
def seed(
    ctx: typer.Context,
    database: str = typer.Option("postgres", "--database", "-d", help=_DATABASE_HELP),
    products: int = typer.Option(10_000, "--products", "-n", min=0, help="Number of products."),
    seed: int = typer.Option(1, "--seed", help="Random seed: same seed and size, same data."),
    drop: bool = typer.Option(False, "--drop", help="Drop existing catalog tables first."),
    keep_existing: bool = typer.Option(
        False, "--keep-existing", help="Leave an existing catalog as it is and succeed."
    ),
    output: Output = OUTPUT,
) -> None:
    """Create the catalog schema and fill it with deterministic, warty data (bulk load)."""
    from seam.cli.render import print_json, print_mapping, print_table
    from seam.legacy_db.seed import CatalogExistsError
    from seam.legacy_db.seed import seed as run_seed

    url = settings(ctx).database_url(database)
    try:
        report = run_seed(url, products=products, seed=seed, drop=drop)
    except CatalogExistsError as exc:
        if not keep_existing:
            raise
        typer.echo(f"kept: {exc.message}")
        return
    if output is Output.json:
        print_json(report.as_dict())
        return
    data = report.as_dict()
    print_table(None, ["table", "rows"], [(t, f"{n:,}") for t, n in report.rows.items()])
    print_mapping(
        {
            "database": report.database,
            "dropped": ", ".join(report.dropped) or "-",
            "seconds": f"{report.seconds:.2f}",
            "rows/s": f"{data['rows_per_second']:,}",
            "products/s": f"{data['products_per_second']:,}",
        }
    )
    for note in report.notes:
        typer.echo(f"note: {note}")


@app.command()
def workload(
    ctx: typer.Context,
    database: str = typer.Option("postgres", "--database", "-d", help=_DATABASE_HELP),
    rate: str = typer.Option("10/s", "--rate", help="Target operations per second (0: flat out)."),
    duration: float | None = typer.Option(None, "--duration", help="Run for this many seconds."),
    count: int | None = typer.Option(None, "--count", help="Run this many operations."),
    seed: int = typer.Option(1, "--seed", help="Random seed of the operation mix."),
    report_file: Path | None = typer.Option(
        None, "--report", help="Write every operation to this file as JSON lines."
    ),
    via: str = typer.Option(
        "sql", "--via", help="sql: write the database directly; http: through the legacy app."
    ),
    app_url: str | None = typer.Option(
        None,
        "--app-url",
        help="The legacy app's URL (with --via http), e.g. http://127.0.0.1:8790.",
    ),
    output: Output = OUTPUT,
) -> None:
    """Play the legacy application: inserts, price changes, renames, deletes, ...

    By SQL, or over HTTP through `seam legacy app` (--via http --app-url URL).
    """
    from seam.cli.render import print_json, print_mapping, print_table
    from seam.legacy_db.workload import Via, run_workload

    if via == "sql":
        if app_url is not None:
            raise ConfigError(
                "--app-url is for --via http", hint="add --via http, or drop --app-url"
            )
        url = settings(ctx).database_url(database)
    elif via == "http":
        if app_url is None:
            raise ConfigError(
                "--via http needs --app-url", hint="start `seam legacy app` and pass its URL"
            )
        url = app_url
    else:
        raise ConfigError(f"--via: expected sql or http, got {via!r}")
    mode: Via = "sql" if via == "sql" else "http"
    target = _rate(rate)
    if report_file is not None:
        try:
            log = report_file.open("w", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--report: cannot write {report_file}: {exc.strerror}") from None
        with log:
            report = run_workload(
                url,
                rate=target,
                duration=duration,
                count=count,
                seed=seed,
                via=mode,
                log=log,
                keep_operations=False,
            )
    else:
        report = run_workload(
            url,
            rate=target,
            duration=duration,
            count=count,
            seed=seed,
            via=mode,
            keep_operations=False,
        )
    summary = report.summary()
    if output is Output.json:
        print_json(summary)
        return
    print_table(None, ["operation", "count"], list(report.counts.items()))
    print_mapping(
        {
            "database": report.database,
            "via": report.via,
            "total": report.total,
            "seconds": f"{report.seconds:.2f}",
            "rate": f"{report.achieved_rate:.1f}/s (target {target:g}/s)",
            "report": str(report_file) if report_file else "-",
        }
    )


@app.command("app")
def legacy_app(
    ctx: typer.Context,
    database: str = typer.Option("postgres", "--database", "-d", help=_DATABASE_HELP),
    port: int = typer.Option(8790, "--port", min=0, max=65535, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
) -> None:
    """Run the catalog's legacy application: HTTP over the catalog database.

    Warts and all (legacy_db/README.md, A1..A8). Ctrl-C or SIGTERM stops it.
    """
    from seam.legacy_db.app import serve
    from seam.secrets import mask_url

    url = settings(ctx).database_url(database)

    def started(where: str) -> None:
        typer.echo(f"legacy app over {mask_url(url)} on {where}; Ctrl-C stops", err=True)

    serve(url, host, port, started=started)


@app.command()
def export(
    directory: Path = typer.Argument(..., help="Folder to write the example's files to."),
    force: bool = typer.Option(False, "--force", help="Overwrite files that differ."),
    output: Output = OUTPUT,
) -> None:
    """Write the example's pipeline files, event schemas and connector specs to DIRECTORY.

    Then, e.g.: seam transform check DIRECTORY/pipelines/catalog.yaml;
    seam transform check-schemas DIRECTORY/schemas; seam connectors plan DIRECTORY/connectors.
    """
    from seam.cli.render import print_json
    from seam.legacy_db.files import FOLDERS
    from seam.legacy_db.files import export as write

    written = write(directory, force=force)
    if output is Output.json:
        print_json({"directory": str(directory), "files": written})
        return
    for folder in FOLDERS:
        count = sum(1 for p in written if p.startswith(folder + "/"))
        typer.echo(f"{directory / folder}: {count} files")


@app.command()
def strangle(
    ctx: typer.Context,
    database: str = typer.Option("postgres", "--database", "-d", help=_DATABASE_HELP),
    pipeline: Path | None = typer.Option(
        None,
        "--pipeline",
        help="The catalog's pipeline (default: the example's, catalog-mariadb.yaml for "
        "--database mariadb, else catalog.yaml).",
    ),
    service: Path | None = typer.Option(
        None, "--service", help="The service file (default: the example's services/catalog.yaml)."
    ),
    routes: Path | None = typer.Option(
        None, "--routes", help="The routes file (default: the example's migration/routes.yaml)."
    ),
    state: Path = typer.Option(
        Path(".seam/strangle"),
        "--state",
        help="The walkthrough's migration directory (emptied at each run), logs included.",
    ),
    facade_port: int = typer.Option(8701, "--facade-port", min=1, max=65535),
    app_port: int = typer.Option(8791, "--app-port", min=1, max=65535),
    service_port: int = typer.Option(8781, "--service-port", min=1, max=65535),
    metrics_port: int = typer.Option(
        8771, "--metrics-port", min=1, max=65535, help="The transform's metrics (own_write count)."
    ),
    rate: float = typer.Option(25.0, "--rate", min=1, help="The workload's operations/s."),
    min_compared: int = typer.Option(
        100, "--min-compared", min=1, help="Shadow comparisons cutover asks for."
    ),
    reads: int = typer.Option(300, "--reads", min=10, help="Product reads at split 10%."),
    commands: int = typer.Option(
        5, "--commands", min=1, max=50, help="Renames, and as many reprices, sent as commands."
    ),
    stack_up: bool = typer.Option(
        True, "--stack-up/--no-stack-up", help="Run `seam stack up` first (starts what is not up)."
    ),
) -> None:
    """Walk the catalog's product details from the legacy app to the new service: legacy,
    shadow, split 10% and 100%, parity, cutover (refused, then accepted), new; then move
    rename and reprice to the new service's commands, written back to legacy, and parity again.

    Starts the transform, `seam serve`, the legacy app, the facade and the writer, and stops them when
    it ends, fails or is interrupted. Run after `bash scripts/quickstart.sh`; again at will.
    """
    from seam.legacy_db.files import folder
    from seam.legacy_db.strangle import Options, run

    if pipeline is None:
        name = "catalog-mariadb.yaml" if database == "mariadb" else "catalog.yaml"
        pipeline = folder("pipelines") / name
    root = ctx.find_root().obj
    if isinstance(root, CliState) and root.config_file is not None:
        os.environ["SEAM_CONFIG"] = str(root.config_file)  # the children read it too
    options = Options(
        settings=settings(ctx),
        database=database,
        pipeline=pipeline,
        service=service or folder("services") / "catalog.yaml",
        routes=routes or folder("migration") / "routes.yaml",
        state=state.resolve(),
        facade_port=facade_port,
        app_port=app_port,
        service_port=service_port,
        metrics_port=metrics_port,
        rate=rate,
        min_compared=min_compared,
        reads=reads,
        commands=commands,
        stack_up=stack_up,
    )
    for given in (options.pipeline, options.service, options.routes):
        if not given.is_file():
            raise ConfigError(f"{given}: no such file", hint="give the path of an existing file")
    run(options, lambda line: typer.echo(line))

"""`seam facade run ROUTES` and the route commands of `seam migrate` (route, rollback,
status), which drive the facade through the migration directory.

Heavy modules (uvicorn, httpx) are imported inside the commands.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer

from seam.cli import migrate
from seam.cli.context import settings
from seam.errors import ConfigError

app = typer.Typer(help="The facade: a reverse proxy in front of legacy and new services.")

ROUTES = typer.Argument(..., help="Routes file (YAML): the legacy app, new sides, capabilities.")
ROUTES_OPTION = typer.Option(
    None, "--routes", help="The routes file, to check the capability name against."
)


@app.command("run")
def run(
    ctx: typer.Context,
    routes_file: Path = ROUTES,
    port: int = typer.Option(8700, "--port", help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    state: Path | None = migrate.STATE,
) -> None:
    """Serve the routes file's capabilities: legacy, new, split N% or shadow.

    The routes file and `seam migrate route` changes are reloaded while it runs.
    SIGTERM or Ctrl-C stops it.
    """
    from seam.migration.facade import Facade
    from seam.migration.server import run_facade

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # httpx logs every request at INFO: on the request path, and it would log query strings
    logging.getLogger("httpx").setLevel(logging.WARNING)
    directory = migrate.state_option(state)
    facade = Facade(
        routes_file, directory, database_url=lambda name: settings(ctx).database_url(name)
    )

    def started(url: str) -> None:
        modes = ", ".join(f"{n} {m}" for n, m in facade.live.modes.items()) or "none"
        typer.echo(
            f"facade on {url} in front of {facade.live.routes.legacy_url} "
            f"(capabilities: {modes}; state: {directory}); Ctrl-C stops",
            err=True,
        )

    run_facade(facade, host, port, started=started)


def capabilities(directory: Path, routes_file: Path | None) -> dict[str, dict[str, Any]]:
    """Capability name -> its routes file's `mode` and `entity`, from --routes, else from
    what the last facade run with this migration directory recorded."""
    from seam.migration.facade import STATUS_FILE
    from seam.migration.routes import load_routes
    from seam.migration.state import MigrationStore

    if routes_file is not None:
        return {
            c.name: {"mode": str(c.mode), "entity": c.entity}
            for c in load_routes(routes_file).capabilities
        }
    status = MigrationStore(directory).read(STATUS_FILE)
    if not isinstance(status, dict):
        raise ConfigError(
            f"no facade has run with the migration directory {directory}, so its "
            "capabilities are unknown",
            hint="pass --routes ROUTES_FILE, or --state DIR of the running facade",
        )
    return {
        name: {"mode": str(c.get("mode")), "entity": c.get("entity")}
        for name, c in status.get("capabilities", {}).items()
    }


def _known(directory: Path, routes_file: Path | None) -> dict[str, str]:
    """Capability name -> the mode its routes file gives (see `capabilities`)."""
    return {name: c["mode"] for name, c in capabilities(directory, routes_file).items()}


def check_capability(capability: str, known: Mapping[str, object]) -> None:
    if capability not in known:
        from seam.keys import closest

        near = closest(capability, tuple(known))
        raise ConfigError(
            f"no capability named '{capability}' (known: {', '.join(sorted(known)) or 'none'})",
            hint=f"did you mean '{near}'?" if near else "name a capability of the routes file",
        )


@migrate.app.command("route")
def route(
    capability: str = typer.Argument(..., help="The capability, as the routes file names it."),
    mode: str | None = typer.Option(
        None, "--mode", help="legacy, new, shadow or split (with --percent)."
    ),
    percent: float | None = typer.Option(
        None, "--percent", min=0, max=100, help="For --mode split: the share sent to new."
    ),
    clear: bool = typer.Option(
        False, "--clear", help="Forget the set mode: the routes file's mode applies again."
    ),
    routes_file: Path | None = ROUTES_OPTION,
    state: Path | None = migrate.STATE,
) -> None:
    """Set a capability's mode (legacy, new, split N%, shadow).

    The running facade takes the mode up within a second, and a restarted one keeps it.
    """
    from seam.migration.modes import clear_override, read_override, write_override
    from seam.migration.routes import parse_mode
    from seam.migration.state import MigrationStore

    directory = migrate.state_option(state)
    check_capability(capability, _known(directory, routes_file))
    store = MigrationStore(directory)
    if clear:
        gone = clear_override(store, capability)
        typer.echo(
            f"{capability}: " + ("the routes file's mode applies" if gone else "no mode was set")
        )
        return
    if mode is None:
        raise ConfigError(
            "--mode is missing", hint="pass --mode legacy|new|shadow|split, or --clear"
        )
    text = (
        f"split {percent:g}%" if mode.strip().lower() == "split" and percent is not None else mode
    )
    if mode.strip().lower() == "split" and percent is None:
        raise ConfigError("--mode split needs --percent N", hint="e.g. --mode split --percent 10")
    if mode.strip().lower() != "split" and percent is not None:
        raise ConfigError(f"--percent goes with --mode split, not {mode}", hint="drop --percent")
    parsed = parse_mode(text)
    if parsed is None:
        raise ConfigError(
            f"--mode {mode}: not a mode", hint="pass --mode legacy, new, shadow or split"
        )
    record = write_override(store, capability, parsed, read_override(store, capability))
    typer.echo(f"{capability}: {record['previous'] or 'routes file mode'} -> {record['mode']}")


@migrate.app.command("rollback")
def rollback(
    capability: str = typer.Argument(..., help="The capability to send back to legacy."),
    routes_file: Path | None = ROUTES_OPTION,
    state: Path | None = migrate.STATE,
) -> None:
    """Send every request of a capability to legacy again, in one step."""
    from seam.migration.modes import read_override, write_override
    from seam.migration.routes import Mode
    from seam.migration.state import MigrationStore

    directory = migrate.state_option(state)
    known = _known(directory, routes_file)
    check_capability(capability, known)
    store = MigrationStore(directory)
    previous = read_override(store, capability)
    write_override(store, capability, Mode("legacy"), previous)
    typer.echo(f"{capability}: {previous or known[capability]} -> legacy")


@migrate.app.command("status")
def status(
    facade_url: str | None = typer.Option(
        None, "--facade", help="A running facade's URL (default: its last recorded status)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    window: str = typer.Option(
        "1h", "--window", help="The window of the shadow mismatch rate shown: 30m, 1h, 2d."
    ),
    state: Path | None = migrate.STATE,
) -> None:
    """Each capability's mode, traffic, mismatch rate, parity and last cutover.

    Traffic is counted per side, and the shadow mismatch rate both since the facade
    started and over the window.
    """
    from seam.migration.cutover import parse_window
    from seam.migration.facade import STATUS_FILE
    from seam.migration.state import MigrationStore
    from seam.migration.status import capability_rows, fetch_status

    span = parse_window(window)
    directory = migrate.state_option(state)
    store = MigrationStore(directory)
    report: Any
    if facade_url:
        report = fetch_status(facade_url)
    else:
        report = store.read(STATUS_FILE)
        if report is None:
            raise ConfigError(
                f"no facade has recorded its status in {directory}",
                hint="start one (seam facade run ROUTES --state DIR), pass --facade URL, "
                "or --state DIR of the facade",
            )
    rows = capability_rows(store, report, span)
    if as_json:
        typer.echo(json.dumps({"updated_at": report.get("updated_at"), "capabilities": rows}))
        return
    typer.echo(f"facade status as of {report.get('updated_at')} ({report.get('routes')})")
    for row in rows:
        typer.echo(_line(row))


def _line(row: dict[str, Any]) -> str:
    requests = row["requests"]
    shadow = row["shadow"]
    rate = row["mismatch_rate"]
    shown = "no comparison yet" if rate is None else f"{rate:.2%} mismatched"
    parity = row["parity"]
    if not row["entity"]:
        parity_text = "parity: no entity named"
    elif not isinstance(parity, dict):
        parity_text = f"parity ({row['entity']}): never run"
    else:
        verdict = "clean" if parity.get("clean") else f"{parity.get('differing', '?')} differing"
        parity_text = (
            f"parity ({row['entity']}): {verdict} at {parity.get('position')}, "
            f"{parity.get('finished_at')}"
        )
    windowed = row["window"]
    window_rate = windowed["mismatch_rate"]
    window_text = (
        f"last {windowed['span']}: "
        + ("no comparison" if window_rate is None else f"{window_rate:.2%} mismatched")
        + f" of {windowed['compared']} compared"
    )
    cutover = row["cutover"]
    cutover_text = (
        "never cut over"
        if cutover is None
        else f"cut over to new by {cutover['by']} at {cutover['at']}"
    )
    return (
        f"{row['capability']}: {row['mode']} ({row['mode_from']}); requests legacy "
        f"{requests.get('legacy', 0)}, new {requests.get('new', 0)}; shadow {shown} "
        f"({shadow.get('match', 0)} match, {shadow.get('mismatch', 0)} mismatch, "
        f"{shadow.get('unsettled', 0)} unsettled, {shadow.get('error', 0)} error, "
        f"{shadow.get('skipped', 0)} skipped; {window_text}); {parity_text}; {cutover_text}"
    )

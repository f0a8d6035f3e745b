"""`seam connectors ...`: provision and operate Debezium connectors from declarative specs.

Heavy modules (requests, sqlalchemy, rich, yaml) are imported inside the commands so that
`seam --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from seam.cli.context import settings
from seam.cli.render import OUTPUT, Output

if TYPE_CHECKING:
    from seam.connectors.client import ConnectClient

app = typer.Typer(
    help="Provision and operate Debezium connectors from declarative specs.",
    no_args_is_help=True,
)
offsets_app = typer.Typer(help="Show or reset a connector's source offsets.", no_args_is_help=True)
app.add_typer(offsets_app, name="offsets")


SPECS = typer.Argument(..., help="Spec files (YAML) or directories of them.", show_default=False)


def _client(ctx: typer.Context, **kwargs: Any) -> ConnectClient:
    from seam.connectors.client import ConnectClient

    return ConnectClient.from_settings(settings(ctx), **kwargs)


@app.command()
def render(
    ctx: typer.Context,
    specs: list[Path] = SPECS,
    output: Output = OUTPUT,
) -> None:
    """Show the Connect config each spec expands to (secrets masked)."""
    from seam.cli.render import print_json, print_mapping
    from seam.connectors.render import render as render_spec
    from seam.connectors.spec import load_specs

    rendered = [render_spec(spec, settings(ctx)) for spec in load_specs(specs)]
    if output is Output.json:
        print_json([{"name": r.name, "config": r.masked()} for r in rendered])
        return
    for index, item in enumerate(rendered):
        if index:
            typer.echo("")
        typer.secho(f"# {item.name}  ({item.spec.source})", bold=True)
        print_mapping(item.masked())


def _render_all(ctx: typer.Context, specs: list[Path]) -> list[Any]:
    from seam.connectors.render import render as render_spec
    from seam.connectors.spec import load_specs

    return [render_spec(spec, settings(ctx)) for spec in load_specs(specs)]


def _print_plan(plan: Any) -> None:
    symbols = {"create": "+", "update": "~", "delete": "-", "unchanged": "=", "orphan": "?"}
    colours = {"create": "green", "update": "yellow", "delete": "red", "orphan": "magenta"}
    for action in plan.actions:
        label = {
            "orphan": "orphan (managed by seam, no spec; --prune deletes it)",
        }.get(action.kind, action.kind)
        typer.secho(
            f"{symbols[action.kind]} {action.name}: {label}",
            fg=colours.get(action.kind),
            bold=action.kind != "unchanged",
        )
        if action.kind == "update":
            for change in action.changes:
                if change.old is None:
                    typer.echo(f"    + {change.key} = {change.new}")
                elif change.new is None:
                    typer.echo(f"    - {change.key} (was {change.old})")
                else:
                    typer.echo(f"    ~ {change.key}: {change.old} -> {change.new}")
    pending = len(plan.pending)
    typer.echo(
        f"{pending} change(s) pending" if pending else "no changes: the cluster matches the specs"
    )


@app.command()
def plan(
    ctx: typer.Context,
    specs: list[Path] = SPECS,
    prune: bool = typer.Option(
        False, "--prune", help="Count managed connectors without a spec as deletions."
    ),
    exit_code: bool = typer.Option(
        False, "--exit-code", help="Exit 2 when changes are pending, 0 when none."
    ),
    output: Output = OUTPUT,
) -> None:
    """Compare the specs with the Connect cluster: create / update (field diff) / delete."""
    from seam.cli.render import print_json
    from seam.connectors.plan import make_plan

    rendered = _render_all(ctx, specs)
    result = make_plan(rendered, _client(ctx).list_connectors(expand=True), prune=prune)
    if output is Output.json:
        print_json(result.as_dict())
    else:
        _print_plan(result)
    if exit_code and result.has_changes:
        raise typer.Exit(2)


def _print_preflight(reports: list[Any]) -> None:
    for report in reports:
        typer.secho(f"# {report.connector} ({report.flavour})", bold=True)
        for check in report.checks:
            colour: str | None
            if check.ok:
                mark, colour = ("fixed" if check.fixed else "ok"), "green"
            else:
                mark = {"error": "FAIL", "warning": "warn", "info": "info"}[check.severity]
                colour = {"error": "red", "warning": "yellow", "info": None}[check.severity]
            detail = check.detail if not check.ok or check.fixed else ""
            typer.secho(
                f"  [{mark:>5}] {check.name}" + (f": {detail}" if detail else ""), fg=colour
            )
            if not check.ok and check.severity != "info":
                if check.why:
                    typer.echo(f"          why: {check.why}")
                if check.fix:
                    typer.echo(f"          fix: {check.fix}")


def _add_clash_checks(ctx: typer.Context, rendered: list[Any], reports: list[Any]) -> None:
    """Add to each report whether the connector would share a slot, server id, topic prefix
    or signal table with another spec or a live connector (skipped when Connect is down)."""
    from seam.connectors.client import RetryPolicy
    from seam.connectors.errors import ConnectError
    from seam.connectors.plan import find_clashes
    from seam.connectors.readiness.model import Check

    try:
        client = _client(ctx, timeout=5.0, retries=RetryPolicy(attempts=2))
        live = {
            name: (entry.get("info") or {}).get("config") or {}
            for name, entry in client.list_connectors(expand=True).items()
        }
    except ConnectError as exc:
        live = {}
        reason = f"checked among these specs only: {exc.message}"
    else:
        reason = ""
    clashes = find_clashes(rendered, live)
    for report in reports:
        mine = [c for c in clashes if c.connector == report.connector]
        report.checks.append(
            Check(
                "unique slot, server id, topic prefix, signal table, sink table",
                not mine and not reason,
                "; ".join(c.describe() for c in mine) or reason,
                severity="error" if mine else "info",
                why="a second connector on the same slot, server id, topics, signal table or "
                "sink table breaks the first (and deleting one can drop the other's slot)",
                fix="; ".join(dict.fromkeys(c.fix for c in mine)) or None,
            )
        )


@app.command()
def preflight(
    ctx: typer.Context,
    specs: list[Path] = SPECS,
    output: Output = OUTPUT,
) -> None:
    """Check each spec's database is ready for CDC, as the spec's CDC user.

    Every failed check says why it matters and how to fix it; `seam connectors prepare`
    applies the fixes seam can make.
    """
    from seam.cli.render import print_json
    from seam.connectors.readiness.preflight import run_preflight

    rendered = _render_all(ctx, specs)
    reports = [run_preflight(r, settings(ctx)) for r in rendered]
    _add_clash_checks(ctx, rendered, reports)
    if output is Output.json:
        print_json([r.as_dict() for r in reports])
    else:
        _print_preflight(reports)
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


def _print_prepare_plan(prepared: list[Any]) -> int:
    """The statements prepare would run and what it leaves to a person; the statement count."""
    count = 0
    for item in prepared:
        report = item.planned
        typer.secho(f"# {report.connector} ({report.flavour}) on {item.database}", bold=True)
        fixable, blocked = report.fixable, report.blocked
        for check in fixable:
            typer.secho(f"  ~ {check.name}: {check.detail}", fg="yellow")
            for statement in check.statements:
                typer.echo(f"      {statement.shown()};")
                count += 1
        for check in blocked:
            typer.secho(f"  ! {check.name}: {check.detail}", fg="red")
            typer.echo(f"      not applied ({check.manual}): {check.fix}")
        if not fixable and not blocked:
            typer.echo("  nothing to do: the database is ready for this connector")
    return count


@app.command()
def prepare(
    ctx: typer.Context,
    specs: list[Path] = SPECS,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    output: Output = OUTPUT,
) -> None:
    """Make each spec's database ready for CDC: fix what preflight finds (idempotent).

    Runs preflight's checks as the settings' database user (an owner or administrator) and
    shows the statements that fix the failing ones: the CDC user and its grants, seam's
    heartbeat and signal tables, the publication, replica identities. After confirmation it
    runs them and checks again. What needs a server restart, a superuser or a change to
    the spec is shown and left alone; the command then exits 1.
    """
    from seam.cli.interact import confirm
    from seam.cli.render import print_json
    from seam.connectors.readiness import prepare as readiness

    rendered = _render_all(ctx, specs)
    planned = [readiness.plan(r, settings(ctx)) for r in rendered]
    quiet = output is Output.json
    count = sum(len(c.statements) for p in planned for c in p.planned.fixable)
    if not quiet:
        _print_prepare_plan(planned)
    if count and not yes:
        confirm(f"Run these {count} statement(s)?")
    # Each connector is planned again right before its fixes run: an earlier one's fixes
    # (a shared CDC user, a shared publication) may have done part of its work.
    done = [
        readiness.apply(r, settings(ctx)) if count else p
        for r, p in zip(rendered, planned, strict=True)
    ]
    reports = [d.report for d in done]
    if quiet:
        print_json([d.as_dict() for d in done])
    else:
        applied = sum(len(d.applied) for d in done)
        if applied:
            typer.secho(f"applied {applied} statement(s); checked again:", fg="green")
            _print_preflight(reports)
    if not all(r.ok for r in reports):
        if not quiet:
            typer.secho(
                "error: not ready for CDC: see the failed checks above and their fixes",
                fg="red",
                err=True,
            )
        raise typer.Exit(1)


@app.command()
def apply(
    ctx: typer.Context,
    specs: list[Path] = SPECS,
    prune: bool = typer.Option(
        False, "--prune", help="Delete managed connectors that have no spec."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Validate and preflight, change nothing."
    ),
    wait: bool = typer.Option(False, "--wait", help="Wait until connectors and tasks are RUNNING."),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds to wait with --wait."),
    skip_preflight: bool = typer.Option(
        False, "--skip-preflight", help="Do not check the databases first."
    ),
    fix: bool = typer.Option(
        False, "--fix", help="Prepare the databases first (as `seam connectors prepare --yes`)."
    ),
    keep_slots: bool = typer.Option(
        False, "--keep-slots", help="When pruning, keep the PostgreSQL slots."
    ),
    output: Output = OUTPUT,
) -> None:
    """Make the cluster match the specs: validate + preflight everything first, then apply."""
    from seam.cli.render import print_json
    from seam.connectors.plan import apply_plan, make_plan

    client = _client(ctx)
    rendered = _render_all(ctx, specs)
    the_plan = make_plan(rendered, client.list_connectors(expand=True), prune=prune)
    quiet = output is Output.json
    if not quiet:
        _print_plan(the_plan)
    result = apply_plan(
        the_plan,
        client,
        settings(ctx),
        dry_run=dry_run,
        preflight=not skip_preflight,
        fix=fix,
        wait=wait,
        wait_timeout=timeout,
        drop_slots=not keep_slots,
        on_progress=None if quiet else (lambda msg: typer.secho(f"... {msg}", dim=True)),
    )
    if quiet:
        print_json(result.as_dict())
        return
    for report in result.preflight:
        for check in report.warnings:
            typer.secho(
                f"warning: {report.connector}: {check.name}: {check.detail} (fix: {check.fix})",
                fg="yellow",
            )
    for note in result.notes:
        typer.secho(f"note: {note}", fg="yellow")
    if dry_run:
        typer.echo("dry run: validation and preflight passed; nothing changed")
        return
    for name in result.applied:
        state = result.states.get(name)
        typer.secho(f"applied {name}" + (f": {state}" if state else ""), fg="green")
    for name in result.deleted:
        typer.secho(f"deleted {name}", fg="red")


def _state_hint(row: Any) -> str:
    if row.health is None:
        return ""
    if row.health.retrying:
        return " (retrying)"
    if row.health.database_reachable is False:
        return " (database unreachable from here)"
    return ""


@app.command()
def status(
    ctx: typer.Context,
    names: list[str] = typer.Argument(None, help="Connectors (default: all).", show_default=False),
    output: Output = OUTPUT,
) -> None:
    """Connector and task states, workers, topics and slots; exit 1 if anything FAILED.

    Each connector's database is asked too: the slot of a STOPPED/PAUSED connector and the
    WAL it retains, and whether a RUNNING connector is really connected (Connect shows
    RUNNING while Debezium retries after losing its database).
    """
    from seam.connectors.client import RetryPolicy
    from seam.connectors.operate import statuses

    # Interactive: answer fast, retry a refused connection only once.
    client = _client(ctx, timeout=5.0, retries=RetryPolicy(attempts=2))
    rows = statuses(client, names or None, settings=settings(ctx))
    failed = any(r.failed for r in rows)
    if output is Output.json:
        from seam.cli.render import print_json

        print_json([r.as_dict() for r in rows])
        if failed:
            raise typer.Exit(1)
        return
    if not rows:
        typer.echo("no connectors")
        return
    from seam.cli.render import print_table
    from seam.connectors.health import human_bytes

    def slot(r: Any) -> str:
        info = r.health.slot if r.health else None
        if not info:
            return "-"
        if info.get("exists") is False:
            return f"{info['slot']} (missing)"
        activity = "active" if info["active"] else "inactive"
        return f"{info['slot']} ({activity}, {human_bytes(info['retained_bytes'])})"

    print_table(
        None,
        ["connector", "state", "tasks", "worker", "slot"],
        [
            (
                r.name + ("" if r.managed else " (unmanaged)"),
                r.state + _state_hint(r),
                r.tasks_summary,
                r.worker,
                slot(r),
            )
            for r in rows
        ],
    )
    for r in rows:
        # Topic names are long: one line each, never cut to fit a table cell.
        typer.echo(f"{r.name}: topics: {', '.join(r.topics) or '-'}")
        for note in r.health.notes if r.health else []:
            typer.secho(f"{r.name}: {note}", fg="yellow")
        for failure in r.failures:
            typer.secho(f"{r.name}: FAILED: {failure}", fg="red", err=True)
    if failed:
        names_failed = [r.name for r in rows if r.failed]
        typer.secho(
            f"error: {', '.join(names_failed)} FAILED",
            fg="red",
            err=True,
        )
        typer.echo(
            f"  fix: remove the cause above, then `seam connectors restart --failed "
            f"{' '.join(names_failed)}`",
            err=True,
        )
        raise typer.Exit(1)


def _known(client: ConnectClient, names: list[str]) -> dict[str, Any]:
    """The live connectors; unknown names are one clear error with the closest existing name."""
    from seam.connectors.operate import require_connectors

    live = client.list_connectors(expand=True)
    require_connectors(live, names, client.base_url)
    return live


def _simple(ctx: typer.Context, names: list[str], verb: str, output: Output) -> None:
    client = _client(ctx)
    _known(client, names)
    for name in names:
        getattr(client, verb)(name)
    if output is Output.json:
        from seam.cli.render import print_json

        print_json({"action": verb, "connectors": names})
    else:
        for name in names:
            typer.echo(f"{verb} requested: {name}")


NAMES = typer.Argument(..., help="Connector names.", show_default=False)


@app.command()
def pause(ctx: typer.Context, names: list[str] = NAMES, output: Output = OUTPUT) -> None:
    """Pause connectors (tasks stay assigned, no records flow)."""
    _simple(ctx, names, "pause", output)


@app.command()
def resume(ctx: typer.Context, names: list[str] = NAMES, output: Output = OUTPUT) -> None:
    """Resume paused or stopped connectors."""
    _simple(ctx, names, "resume", output)


@app.command()
def stop(ctx: typer.Context, names: list[str] = NAMES, output: Output = OUTPUT) -> None:
    """Stop connectors (tasks shut down; needed before offsets can be changed)."""
    _simple(ctx, names, "stop", output)


@app.command()
def restart(
    ctx: typer.Context,
    names: list[str] = NAMES,
    failed: bool = typer.Option(False, "--failed", help="Restart only FAILED connectors/tasks."),
    output: Output = OUTPUT,
) -> None:
    """Restart connectors and their tasks."""
    client = _client(ctx)
    _known(client, names)
    results = [client.restart(n, include_tasks=True, only_failed=failed) for n in names]
    if output is Output.json:
        from seam.cli.render import print_json

        print_json(results)
    else:
        for name in names:
            typer.echo(f"restart requested: {name}" + (" (failed only)" if failed else ""))


@app.command()
def delete(
    ctx: typer.Context,
    names: list[str] = NAMES,
    keep_slot: bool = typer.Option(
        False, "--keep-slot", help="Keep the PostgreSQL replication slot."
    ),
    output: Output = OUTPUT,
) -> None:
    """Delete connectors; a PostgreSQL connector's slot is dropped too (it would retain WAL)."""
    from seam.connectors.plan import delete_connector

    client = _client(ctx)
    live = _known(client, names)
    notes = [
        delete_connector(
            client,
            settings(ctx),
            n,
            (live[n].get("info") or {}).get("config"),
            drop_slot=not keep_slot,
        )
        for n in names
    ]
    if output is Output.json:
        from seam.cli.render import print_json

        print_json({"deleted": names, "notes": [n for n in notes if n]})
        return
    for name, note in zip(names, notes, strict=True):
        typer.echo(f"deleted {name}")
        if note:
            typer.secho(f"note: {note}", fg="yellow")


@offsets_app.command("show")
def offsets_show(
    ctx: typer.Context, name: str = typer.Argument(..., show_default=False), output: Output = OUTPUT
) -> None:
    """The connector's committed source offsets (LSN / binlog position)."""
    from seam.cli.render import print_json

    client = _client(ctx)
    _known(client, [name])
    offsets = client.offsets(name)
    if output is Output.json:
        print_json(offsets)
        return
    entries = offsets.get("offsets", [])
    if not entries:
        typer.echo(f"{name}: no offsets committed")
        return
    from seam.cli.render import print_table

    def flat(mapping: Any) -> str:
        if not isinstance(mapping, dict):
            return str(mapping)
        return ", ".join(f"{k}={v}" for k, v in sorted(mapping.items()))

    print_table(
        None,
        ["partition", "key", "value"],
        [
            (flat(entry.get("partition")), key, value)
            for entry in entries
            for key, value in sorted((entry.get("offset") or {}).items())
        ],
    )


@offsets_app.command("reset")
def offsets_reset(
    ctx: typer.Context,
    name: str = typer.Argument(..., show_default=False),
    keep_slot: bool = typer.Option(
        False, "--keep-slot", help="PostgreSQL: keep the replication slot."
    ),
    resume_after: bool = typer.Option(False, "--resume", help="Resume the connector afterwards."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    output: Output = OUTPUT,
) -> None:
    """Stop the connector and reset its offsets: it takes a NEW SNAPSHOT on the next start."""
    from seam.cli.interact import confirm
    from seam.connectors.operate import reset_offsets

    client = _client(ctx)
    _known(client, [name])
    if not yes:
        confirm(
            f"Reset the offsets of '{name}'? It will stop, and re-snapshot every captured table when resumed"
            + ("" if keep_slot else " (its PostgreSQL slot is dropped)")
        )
    result = reset_offsets(
        client, settings(ctx), name, drop_slot=not keep_slot, resume=resume_after
    )
    if output is Output.json:
        from seam.cli.render import print_json

        print_json(result.as_dict())
        return
    for note in result.notes:
        typer.echo(note)
    typer.echo(
        "resumed"
        if result.resumed
        else f"the connector is STOPPED; start it with `seam connectors resume {name}`"
    )


@app.command()
def snapshot(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Connector.", show_default=False),
    tables: list[str] = typer.Argument(
        ..., help="Tables to re-snapshot (schema.table or table).", show_default=False
    ),
    output: Output = OUTPUT,
) -> None:
    """Ad-hoc incremental snapshot: the connector re-emits the tables' rows (op=r) while streaming."""
    from seam.connectors.operate import snapshot_tables

    result = snapshot_tables(_client(ctx), settings(ctx), name, tables)
    if output is Output.json:
        from seam.cli.render import print_json

        print_json(result)
    else:
        typer.echo(
            f"snapshot signal {result['signal_id']} sent to {name} for {', '.join(result['data-collections'])}"
        )


@app.command()
def slots(
    ctx: typer.Context,
    database: str = typer.Option(
        "postgres", "--database", "-d", help="Settings name or URL of a PostgreSQL database."
    ),
    sample: float = typer.Option(
        0.0,
        "--sample",
        min=0.0,
        help="Read the slots twice, SECONDS apart, to see which grow (default: compare with "
        "the reading of the previous run, kept in the user's state directory).",
    ),
    output: Output = OUTPUT,
) -> None:
    """PostgreSQL replication slots: retained WAL, growth, and which connector reads each.

    A slot is flagged when it is inactive (nobody reads it: it retains WAL), when the WAL it
    retains grew since the last reading without its position moving, when it retains 256 MiB
    or more, and when its WAL is at risk.
    """
    from seam.connectors.errors import ConnectError
    from seam.connectors.health import human_bytes, slots_report

    try:
        live = _client(ctx, timeout=3.0).list_connectors(expand=True)
    except ConnectError:
        live = {}  # slots are a database matter: show them even when Connect is down
    rows = slots_report(settings(ctx), database, live, sample_s=sample)
    if output is Output.json:
        from seam.cli.render import print_json

        print_json([r.as_dict() for r in rows])
        return
    if not rows:
        typer.echo("no replication slots")
        return
    from seam.cli.render import print_table

    def growth(r: Any) -> str:
        if r.growth_bytes is None:
            return "-"
        sign = "+" if r.growth_bytes >= 0 else "-"
        return f"{sign}{human_bytes(abs(r.growth_bytes))} in {r.growth_seconds:.0f} s"

    print_table(
        None,
        ["slot", "database", "active", "retained", "growth", "connector", "status"],
        [
            (
                r.slot.name,
                r.slot.database,
                "yes" if r.slot.active else "no",
                human_bytes(r.slot.retained_bytes),
                growth(r),
                r.connector or "-",
                "ok" if r.ok else "WARN",
            )
            for r in rows
        ],
    )
    for r in rows:
        for warning in r.warnings:
            typer.secho(f"warning: slot {r.slot.name}: {warning}", fg="yellow")

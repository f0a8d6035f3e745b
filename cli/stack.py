"""`seam stack ...`: run the embedded local stack (Kafka, Connect with Debezium, PostgreSQL, MariaDB)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, replace

import typer

from seam.cli import render
from seam.cli.context import settings

app = typer.Typer(
    help="Run the embedded local CDC stack without Docker: Kafka, Kafka Connect with Debezium, "
    "PostgreSQL and MariaDB.",
    no_args_is_help=True,
)


def _stack(ctx: typer.Context):  # type: ignore[no-untyped-def]
    from seam.stack.local import LocalStack

    return LocalStack(settings(ctx).stack)


def _show_status(ctx: typer.Context, output: render.Output) -> None:
    rows = _stack(ctx).status()
    if output is render.Output.json:
        render.print_json([asdict(r) for r in rows])
        return
    render.print_table(
        f"local stack in {settings(ctx).stack.dir}",
        ["part", "state", "pid", "endpoint"],
        [(r.name, r.state, r.pid or "", r.endpoint) for r in rows],
        keep=("part", "endpoint"),
    )
    for r in rows:
        if r.note:
            typer.secho(f"{r.name}: {r.note}", fg="yellow")


ONLY_HELP = "Comma-separated parts (postgres, mariadb, kafka, connect); all when omitted."


def _only(value: str | None) -> list[str] | None:
    return None if value is None else [n.strip() for n in value.split(",") if n.strip()]


@app.command()
def up(
    ctx: typer.Context,
    only: str = typer.Option(
        None,
        "--only",
        help=ONLY_HELP + " With your own database: --only kafka,connect (connect brings kafka).",
    ),
    secure_listeners: bool = typer.Option(
        False,
        "--secure-listeners",
        help="The broker also listens with SASL/SCRAM (stack.kafka_sasl_port) and TLS with client "
        "certificates (stack.kafka_ssl_port); user 'seam', password 'seam-local', certificates in "
        "the stack's tls/ directory. Same as stack.secure_listeners = true.",
    ),
    connect_basic_auth: bool = typer.Option(
        False,
        "--connect-basic-auth",
        help="Connect's REST API asks for basic auth (user 'seam', password 'seam-local'). "
        "Same as stack.connect_basic_auth = true.",
    ),
    output: render.Output = render.OUTPUT,
) -> None:
    """Start every part that is not running and wait until all are ready."""
    from seam.stack.local import LocalStack

    began = time.monotonic()
    stack_settings = settings(ctx).stack
    if secure_listeners or connect_basic_auth:
        stack_settings = replace(
            stack_settings,
            secure_listeners=stack_settings.secure_listeners or secure_listeners,
            connect_basic_auth=stack_settings.connect_basic_auth or connect_basic_auth,
        )
    stack = LocalStack(stack_settings)
    started = stack.up(on_event=lambda msg: typer.echo(msg, err=True), only=_only(only))
    took = time.monotonic() - began
    typer.echo(
        f"started {', '.join(started) if started else 'nothing (all running)'} in {took:.1f} s",
        err=True,
    )
    _show_status(ctx, output)


@app.command()
def down(
    ctx: typer.Context,
    only: str = typer.Option(None, "--only", help=ONLY_HELP),
    wipe: bool = typer.Option(False, "--wipe", help="Also delete all the stack's data."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before wiping."),
) -> None:
    """Stop the processes the stack started. Data is kept unless --wipe is given."""
    from seam.errors import StackError

    stack = _stack(ctx)
    if wipe and only is not None:
        raise StackError(
            "--wipe deletes the data of every part, it cannot go with --only",
            hint="stop the parts with --only, or everything with --wipe",
        )
    if wipe and not yes:
        from seam.cli.interact import confirm

        confirm(f"Delete all data in {stack.settings.dir}?")
    stopped = stack.down(only=_only(only), wipe=wipe)
    typer.echo(f"stopped {', '.join(stopped) if stopped else 'nothing (none was running)'}")
    if wipe:
        typer.echo(f"deleted {stack.settings.dir}")


@app.command()
def status(ctx: typer.Context, output: render.Output = render.OUTPUT) -> None:
    """Show each part's state and endpoint."""
    _show_status(ctx, output)


@app.command()
def logs(
    ctx: typer.Context,
    part: str = typer.Argument(None, help="postgres, mariadb, kafka or connect; all when omitted."),
    lines: int = typer.Option(40, "--lines", "-n", help="How many of the last lines to show."),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Keep printing new lines (one part only)."
    ),
) -> None:
    """Show the end of each part's log."""
    from seam.errors import StackError
    from seam.stack.local import PART_NAMES

    if lines < 0:
        raise StackError(
            f"--lines must be 0 or more, got {lines}",
            hint="for example: seam stack logs connect -n 100",
        )
    stack = _stack(ctx)
    names = [part] if part else list(PART_NAMES)
    if follow and len(names) != 1:
        raise StackError(
            "--follow needs one part", hint="for example: seam stack logs connect --follow"
        )
    for name in names:
        path = stack.log_file(name)
        if len(names) > 1:
            typer.secho(f"==> {name} ({path}) <==", bold=True)
        if not path.exists():
            typer.echo("(no log yet)")
            continue
        with path.open(errors="replace") as fh:
            for line in deque(fh, maxlen=lines):
                typer.echo(line.rstrip("\n"))
            while follow:
                line = fh.readline()
                if line:
                    typer.echo(line.rstrip("\n"))
                else:
                    try:
                        time.sleep(0.3)
                    except KeyboardInterrupt:
                        return

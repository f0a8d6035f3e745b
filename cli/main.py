"""The `seam` command: one typer sub-app per noun, and the one boundary that turns
seam's errors into a clear line on stderr and a non-zero exit code."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from seam import __version__
from seam.cli import connectors, legacy, stack, streams, transform
from seam.cli.context import CliState
from seam.errors import SeamError

app = typer.Typer(
    name="seam",
    help="Change-data-capture toolkit for moving off a legacy database one capability at a time.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(stack.app, name="stack")
app.add_typer(legacy.app, name="legacy")
app.add_typer(connectors.app, name="connectors")
app.add_typer(streams.app, name="streams")
app.add_typer(transform.app, name="transform")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"seam {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None,
        "--config",
        envvar="SEAM_CONFIG",
        help="Config file (TOML). Default: ./seam.toml if present.",
    ),
    kafka: str | None = typer.Option(None, "--kafka", help="Kafka bootstrap servers."),
    connect_url: str | None = typer.Option(None, "--connect-url", help="Kafka Connect REST URL."),
    stack_dir: Path | None = typer.Option(None, "--stack-dir", help="Local stack data directory."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version."
    ),
) -> None:
    overrides: dict[str, dict[str, Any]] = {
        "kafka": {"bootstrap_servers": kafka},
        "connect": {"url": connect_url},
        "stack": {"dir": stack_dir},
    }
    ctx.obj = CliState(config_file=config, overrides=overrides)


def main() -> None:
    """Entry point of the `seam` console script."""
    try:
        app()
    except SeamError as exc:
        typer.secho(f"error: {exc.message}", err=True, fg=typer.colors.RED)
        if exc.hint:
            typer.secho(f"  fix: {exc.hint}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()

"""The `seam` command: one typer sub-app per noun, and the one boundary that turns
seam's errors into a clear line on stderr and a non-zero exit code.

Nouns beyond the toolkit's come from plugins: every entry point of the group `seam.commands`
(an installed package's metadata, e.g. `legacy = "seam.legacy_db.cli:app"` in pyproject.toml)
names a typer app added under the entry point's name. A plugin that fails to load costs its
own noun only: the noun stays listed, and using it says why it failed and how to fix it.
"""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Final

import typer

from seam import __version__
from seam.cli import connectors, dashboard, history, migrate, serve, stack, streams, transform
from seam.cli import cutover as _cutover  # noqa: F401 - registers `seam migrate cutover`
from seam.cli import facade as facade_cli  # also adds its commands to `seam migrate`
from seam.cli import parity as _parity  # noqa: F401 - registers `seam migrate parity`
from seam.cli import writer as _writer  # noqa: F401 - registers `seam migrate writer`
from seam.cli.context import CliState
from seam.errors import ConfigError, SeamError

PLUGIN_GROUP: Final = "seam.commands"

app = typer.Typer(
    name="seam",
    help="Change-data-capture toolkit for moving off a legacy database one capability at a time.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(stack.app, name="stack")
app.add_typer(connectors.app, name="connectors")
app.add_typer(streams.app, name="streams")
app.add_typer(transform.app, name="transform")
app.add_typer(history.app, name="history")
app.add_typer(migrate.app, name="migrate")
app.add_typer(facade_cli.app, name="facade")
app.command("serve")(serve.serve)
app.command("dashboard")(dashboard.dashboard)


def _add_broken(root: typer.Typer, entry: EntryPoint, error: str) -> None:
    """A stand-in for a plugin that did not load: listed, and it says why when used."""

    def fail() -> None:
        raise ConfigError(
            f"the command plugin '{entry.name}' ({entry.value}) failed to load: {error}",
            hint=f"reinstall the package that provides it (its entry point in group "
            f"{PLUGIN_GROUP}), or fix the error above",
        )

    root.command(
        entry.name,
        help=f"(not available: the plugin {entry.value} failed to load)",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        add_help_option=False,
    )(fail)


def add_plugins(root: typer.Typer, plugins: list[EntryPoint] | None = None) -> None:
    """Add the typer app of every `seam.commands` entry point under its name (a plugin that
    fails to load: a stand-in that reports the failure when used). A toolkit noun keeps its
    name."""
    taken = {group.name for group in root.registered_groups}
    taken |= {c.name or getattr(c.callback, "__name__", "") for c in root.registered_commands}
    found = plugins if plugins is not None else list(entry_points(group=PLUGIN_GROUP))
    for entry in sorted(found, key=lambda e: e.name):
        if entry.name in taken:
            continue
        taken.add(entry.name)
        try:
            plugin = entry.load()
            if not isinstance(plugin, typer.Typer):
                raise TypeError(f"expected a typer.Typer, got {type(plugin).__name__}")
        except Exception as exc:  # any import error of someone else's package
            _add_broken(root, entry, f"{type(exc).__name__}: {exc}")
            continue
        root.add_typer(plugin, name=entry.name)


add_plugins(app)


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

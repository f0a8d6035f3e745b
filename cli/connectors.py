"""`seam connectors ...`: provision and operate Debezium connectors from declarative specs.

Heavy modules (requests, sqlalchemy, rich, yaml) are imported inside the commands so that
`seam --help` stays fast.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from seam.cli.context import settings

if TYPE_CHECKING:
    from seam.connectors.client import ConnectClient

app = typer.Typer(
    help="Provision and operate Debezium connectors from declarative specs.",
    no_args_is_help=True,
)
offsets_app = typer.Typer(help="Show or reset a connector's source offsets.", no_args_is_help=True)
app.add_typer(offsets_app, name="offsets")


class Output(StrEnum):
    text = "text"
    json = "json"


SPECS = typer.Argument(..., help="Spec files (YAML) or directories of them.", show_default=False)
OUTPUT = typer.Option(Output.text, "--output", "-o", help="Output format.")


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

"""`seam connectors ...` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="connectors commands.", no_args_is_help=True)

"""`seam transform ...` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="transform commands.", no_args_is_help=True)

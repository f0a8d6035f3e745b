"""`seam legacy ...` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="legacy commands.", no_args_is_help=True)

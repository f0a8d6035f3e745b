"""`seam streams ...` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="streams commands.", no_args_is_help=True)

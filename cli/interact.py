"""How the connectors and stack commands ask and lay out, without losing anything.

- `confirm`: a question that needs a person. Without a terminal on stdin (a script, CI, a
  pipe) nobody can answer: fail at once with the flag that confirms instead of hanging or
  aborting with a bare "Aborted!".
- `print_fitting`: a table when it fits the terminal, otherwise one block per row, so that
  no identifier (connector, topic, slot, path) is ever cut to fit 80 columns.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from typing import Any

import typer

from seam.errors import SeamError


def confirm(question: str, *, flag: str = "--yes") -> None:
    """Ask `question`; a "no" aborts (exit 1), no terminal is an error naming `flag`."""
    if not sys.stdin.isatty():
        raise SeamError(
            f"{question.rstrip('?')}: this needs a confirmation, and stdin is not a terminal",
            hint=f"pass {flag} to confirm without a prompt",
        )
    if not typer.confirm(question, default=False):
        typer.echo("nothing done", err=True)
        raise typer.Exit(1)


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def print_fitting(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """`print_table` when every cell fits the terminal's width whole; one block per row if not."""
    from seam.cli.render import print_table

    cells = [[_cell(v) for v in row] for row in rows]
    widths = [
        max([len(column), *(max(map(len, c[i].splitlines() or [""])) for c in cells)])
        for i, column in enumerate(columns)
    ]
    # rich pads each cell by one space either side and draws one separator between columns.
    natural = sum(widths) + 3 * len(columns)
    if not sys.stdout.isatty() or natural <= shutil.get_terminal_size().columns:
        print_table(title, columns, cells)
        return
    if title:
        typer.secho(title, bold=True)
    label = max(len(c) for c in columns[1:]) if len(columns) > 1 else 0
    for row in cells:
        typer.secho(row[0], bold=True)
        for column, value in zip(columns[1:], row[1:], strict=True):
            typer.echo(f"  {column.ljust(label)}  {value}")

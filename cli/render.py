"""How the CLI shows things. Library code returns data; only this layer prints."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any

import typer


class Output(StrEnum):
    text = "text"
    json = "json"


# Every command that shows data takes this option.
OUTPUT = typer.Option(Output.text, "--output", "-o", help="Output format: text or json.")


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str, sort_keys=False))


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console = Console()
    if not console.is_terminal:  # piped output: never cut a value to fit 80 columns
        console = Console(width=1000)
    console.print(table)


def print_mapping(data: Mapping[str, Any]) -> None:
    width = max((len(k) for k in data), default=0)
    for key, value in data.items():
        typer.echo(f"{key.ljust(width)}  {value}")

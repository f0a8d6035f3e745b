"""How the CLI shows things. Library code returns data; only this layer prints."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any, Final

import typer


class Output(StrEnum):
    text = "text"
    json = "json"


# Every command that shows data takes this option.
OUTPUT = typer.Option(Output.text, "--output", "-o", help="Output format: text or json.")


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str, sort_keys=False))


# Padding either side of a cell and the rule between two columns, as the table draws them.
_CELL_PADDING: Final = 2
_RULE: Final = 1
_FOLD_MIN: Final = 4  # the narrowest a column that may fold gets (or its whole text)
_NUMBER: Final = re.compile(r"[-+]?[\d,._]+%?")


# Headers of columns that hold identifiers (or lists of them), kept whole by print_table.
IDENTIFIER_COLUMNS: Final = frozenset(
    {"topic", "topics", "connector", "connectors", "group", "slot", "table", "schema", "database"}
)


def _overhead(count: int) -> int:
    return _CELL_PADDING * count + _RULE * (count - 1)


def column_widths(
    columns: Sequence[str], rows: Sequence[Sequence[str]], keep: Collection[int], width: int
) -> list[int]:
    """The width of each column for a table `width` cells wide, or wider when the columns in
    `keep` need it (the terminal then wraps the lines: nothing is cut).

    A column in `keep` holds identifiers (topics, connectors, groups, ...) or a ", " list
    of them: it is never narrower than its longest identifier, so none is cut or broken in
    two. The other columns give way: first down to their longest word (they wrap at spaces),
    then, if that is not enough, they fold (never inside a number).
    """
    from rich.cells import cell_len

    def widest_line(text: str) -> int:
        return max((cell_len(line) for line in text.splitlines()), default=0)

    def widest(texts: Iterable[str], separator: str) -> int:
        # For ", " lists the comma stays with its item.
        most = 0
        for text in texts:
            for line in text.splitlines():
                items = line.split(separator)
                for j, item in enumerate(items):
                    most = max(most, cell_len(item) + (j < len(items) - 1) * len(separator.strip()))
        return most

    count = len(columns)
    cells = [[row[i] for row in rows] for i in range(count)]
    natural = [max(widest_line(columns[i]), *map(widest_line, cells[i]), 1) for i in range(count)]
    names = [max(widest(cells[i], ", "), 1) for i in range(count)]
    words = [min(natural[i], max(widest([columns[i], *cells[i]], " "), 1)) for i in range(count)]
    # A number folded in two reads as two numbers: it keeps its width.
    numbers = [
        max((cell_len(c) for c in cells[i] if _NUMBER.fullmatch(c)), default=0)
        for i in range(count)
    ]
    hard = [
        names[i] if i in keep else max(min(natural[i], _FOLD_MIN), numbers[i]) for i in range(count)
    ]
    soft = [names[i] if i in keep else words[i] for i in range(count)]
    current = hard
    spare = width - _overhead(count) - sum(current)
    for target in (soft, natural):  # give way in stages: whole words first, then all
        wants = [max(0, t - c) for t, c in zip(target, current, strict=True)]
        need = sum(wants)
        if need <= spare:
            current = [c + w for c, w in zip(current, wants, strict=True)]
            spare -= need
            continue
        if spare > 0:
            share = [spare * w // need for w in wants]
            for i in sorted(range(count), key=lambda i: wants[i] - share[i], reverse=True)[
                : spare - sum(share)
            ]:
                share[i] += 1  # what the rounding left, to the columns that want most
            current = [c + g for c, g in zip(current, share, strict=True)]
        break
    return current


def print_table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    keep: Collection[str] | None = None,
) -> None:
    """A table for people. The columns named in `keep` hold identifiers and are never cut,
    whatever the terminal's width (see `column_widths`); by default the first column and
    every column whose header names identifiers (topic, connector, group, slot, ...)."""
    from rich.console import Console
    from rich.table import Table

    cells = [["" if v is None else str(v) for v in row] for row in rows]
    if keep is None:
        keep_at = {0} | {i for i, c in enumerate(columns) if c in IDENTIFIER_COLUMNS}
    else:
        keep_at = {columns.index(c) for c in keep}
    console = Console()
    if not console.is_terminal:  # piped output: never cut a value to fit 80 columns
        console = Console(width=1000)
    widths = column_widths(columns, cells, keep_at, console.width)
    needed = sum(widths) + _overhead(len(columns))
    if needed > console.width:  # identifiers wider than the terminal: it wraps, nothing is cut
        console = Console(width=needed)
    table = Table(title=title, title_justify="left", show_edge=False, header_style="bold")
    for column, w in zip(columns, widths, strict=True):
        table.add_column(column, width=w, overflow="fold")
    for row in cells:
        table.add_row(*row)
    console.print(table)


def print_mapping(data: Mapping[str, Any]) -> None:
    width = max((len(k) for k in data), default=0)
    for key, value in data.items():
        typer.echo(f"{key.ljust(width)}  {value}")

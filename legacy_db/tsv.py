"""Rows as tab-separated text: the input format PostgreSQL's COPY (text format) and
MySQL/MariaDB's LOAD DATA (default FIELDS/LINES options) share.

Both read `\\N` as NULL and undo the backslash escapes `\\\\`, `\\t`, `\\n`, `\\r`, so
escaping exactly those four characters makes every string round-trip on both.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from seam.legacy_db.generator import (
    NULL,
    Row,
)

_ESCAPES: Final = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _field(value: object) -> str:
    if value is None:
        return NULL
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    return str(value)


def encode_rows(rows: Iterable[Row]) -> bytes:
    """The rows as UTF-8 TSV, one line each, ready for COPY or LOAD DATA."""
    field = _field
    return "".join(["\t".join([field(v) for v in row]) + "\n" for row in rows]).encode("utf-8")


def decode_line(line: str) -> list[str | None]:
    """One TSV line back to its fields: the inverse of `encode_rows`."""
    out: list[str | None] = []
    for raw in line.rstrip("\n").split("\t"):
        if raw == NULL:
            out.append(None)
            continue
        if "\\" not in raw:
            out.append(raw)
            continue
        chars: list[str] = []
        i = 0
        while i < len(raw):
            ch = raw[i]
            if ch == "\\" and i + 1 < len(raw):
                chars.append({"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}[raw[i + 1]])
                i += 2
            else:
                chars.append(ch)
                i += 1
        out.append("".join(chars))
    return out

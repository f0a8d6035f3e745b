"""Source log positions of domain events, and the positions a user names, made comparable.

An event's provenance carries its change's place in the legacy database's log
(`seam.transforms.provenance`): PostgreSQL `lsn` (an integer) and `tx_id`; MySQL/MariaDB
`binlog_file`, `binlog_pos`, `binlog_row` and `gtid`. A user names a position as

* a PostgreSQL LSN: `0/16B3748` (as `pg_current_wal_lsn()` prints it) or the integer
  Debezium reports (`23803720`), compared numerically with each change's own LSN (events
  carry no commit LSN). Per key that is commit order, since a row's next change waits for
  the commit of the last; a change written before the position by a transaction that
  committed after it counts as before it;
* a binlog position: `mysql-bin.000003:1234` or `mysql-bin.000003:1234:2` (with the row),
  compared as (file number, position, row): `.000010` comes after `.000009`, whatever the
  text says. Without a row it is a binlog coordinate as `SHOW MASTER STATUS` prints it after
  a commit: the point where the next event starts, so the events before it count, not one
  that starts there; with a row it names that event's row, which counts (copy an event's
  `file:pos:row` from a timeline to include it);
* a GTID: MariaDB's `domain-server-sequence` (`0-1-42`), compared by sequence within the
  domain; MySQL's `uuid:N` (or a set's last interval, `uuid:1-42`), by N within the uuid.

Per key, the history topic holds a key's events in the order of the source log (one
partition, written in order), and so does the index; these positions pick where to cut it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from seam.errors import SeamError
from seam.transforms.redelivery import gtid_parts

Kind = Literal["lsn", "binlog", "gtid"]

_BINLOG_NUMBER: Final = re.compile(r"\.([0-9]+)\Z")
_PG_TEXT: Final = re.compile(r"\A([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})\Z")
_BINLOG_TEXT: Final = re.compile(r"\A(.*\.[0-9]+):([0-9]+)(?::([0-9]+))?\Z")
# A binlog position named without a row: before any row of an event that starts there.
BEFORE_ROWS: Final = -1


class PositionError(SeamError):
    """A position the user gave that names no log position seam knows."""


@dataclass(frozen=True, slots=True)
class Position:
    """A comparable place in one source log: `kind` says which; `order` is compared as a
    tuple (lsn,), (file number, pos, row) or (sequence,) within `stream` (the GTID's domain
    or server uuid; '' otherwise)."""

    kind: Kind
    order: tuple[int, ...]
    stream: str = ""
    text: str = ""


def binlog_number(file: str) -> int | None:
    """The number of a binlog file name (`mysql-bin.000003` -> 3), or None."""
    found = _BINLOG_NUMBER.search(file)
    return int(found.group(1)) if found else None


def gtid_position(gtid: str) -> Position | None:
    """A MariaDB or MySQL GTID as a position, or None when it is neither."""
    text = gtid.strip()
    parts = gtid_parts(text)
    if parts is None:
        return None
    return Position("gtid", (parts[1],), parts[0], text)


def parse_position(text: str) -> Position:
    """The position a user named (see the module's docstring); PositionError otherwise."""
    value = text.strip()
    if value.isascii() and value.isdigit():
        return Position("lsn", (int(value),), text=value)
    found = _PG_TEXT.match(value)
    if found:
        return Position(
            "lsn", ((int(found.group(1), 16) << 32) | int(found.group(2), 16),), text=value
        )
    gtid = gtid_position(value)
    if gtid is not None:
        return gtid
    found = _BINLOG_TEXT.match(value)
    if found:
        number = binlog_number(found.group(1))
        if number is not None:
            row = int(found.group(3)) if found.group(3) is not None else BEFORE_ROWS
            return Position("binlog", (number, int(found.group(2)), row), text=value)
    raise PositionError(
        f"'{text}' is not a source position",
        hint="give a PostgreSQL LSN (0/16B3748, or the integer in an event's provenance), a "
        "binlog position (mysql-bin.000003:1234[:row]) or a GTID (0-1-42, or uuid:42)",
    )


def event_positions(position: Mapping[str, Any]) -> tuple[Position | None, Position | None]:
    """An event's provenance `position` as (log position, GTID position), each None when the
    event has none (a snapshot row of an incremental snapshot has no LSN; a binlog event
    without GTIDs has no GTID)."""
    lsn = position.get("lsn")
    if type(lsn) is int:
        return Position("lsn", (lsn,)), None
    file, pos, row = (
        position.get("binlog_file"),
        position.get("binlog_pos"),
        position.get("binlog_row"),
    )
    log: Position | None = None
    if type(file) is str and type(pos) is int:
        number = binlog_number(file)
        if number is not None:
            log = Position("binlog", (number, pos, row if type(row) is int else 0))
    gtid = position.get("gtid")
    return log, gtid_position(gtid) if type(gtid) is str else None


def describe(position: Mapping[str, Any]) -> str:
    """An event's position in one short line, each part as `parse_position` takes it:
    `lsn 0/16B3748 tx 751` or `mysql-bin.000003:1234:1 gtid 0-1-42`."""
    parts: list[str] = []
    lsn = position.get("lsn")
    if type(lsn) is int:
        parts.append(f"lsn {lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}")
    if position.get("tx_id") is not None:
        parts.append(f"tx {position['tx_id']}")
    if position.get("binlog_file") is not None:
        text = f"{position['binlog_file']}:{position.get('binlog_pos')}"
        if position.get("binlog_row") is not None:
            text += f":{position['binlog_row']}"  # as `--position` takes it back
        parts.append(text)
    if position.get("gtid"):
        parts.append(f"gtid {position['gtid']}")
    return " ".join(parts) or "-"


__all__ = [
    "BEFORE_ROWS",
    "Position",
    "PositionError",
    "binlog_number",
    "describe",
    "event_positions",
    "gtid_position",
    "parse_position",
]

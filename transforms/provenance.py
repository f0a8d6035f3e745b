"""Where a change comes from, as plain JSON data: the provenance a domain event carries.

`provenance(change)` names the source database, connector, table, log position (PostgreSQL
lsn/txId, MySQL/MariaDB binlog file/pos/row/GTID), source time, snapshot flag, and the raw
record's topic/partition/offset. Stages that make events (the built-in events stage, user
stages) call it; it depends on nothing but the decoded change.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

from seam.changes import ChangeEvent


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a 'Z', microseconds only when there are any."""
    text = moment.astimezone(UTC).replace(tzinfo=None).isoformat()
    return text + "Z"


_PG_POSITION: Final = (("lsn", "lsn"), ("txId", "tx_id"), ("sequence", "sequence"))
_BINLOG_POSITION: Final = (
    ("file", "binlog_file"),
    ("pos", "binlog_pos"),
    ("row", "binlog_row"),
    ("gtid", "gtid"),
    ("server_id", "server_id"),
)


# Below this many microseconds since the epoch (about the year 2096) a float number of
# seconds still resolves every microsecond exactly, so integer arithmetic gives the very same
# time as `ChangeEvent.source_time` (which goes through a float) at a fraction of the cost.
_EXACT_US: Final = 4_000_000_000_000_000
_EPOCH: Final = datetime(1970, 1, 1)


def source_ts(change: ChangeEvent) -> str | None:
    """When the change happened, as ISO 8601 UTC text ('...Z'), or None when unknown."""
    ns = change.source_ts_ns
    if ns is None:
        return None
    us = ns // 1000
    if 0 <= us < _EXACT_US:
        return (_EPOCH + timedelta(microseconds=us)).isoformat() + "Z"
    ts = change.source_time
    return iso_utc(ts) if ts is not None else None


def provenance(change: ChangeEvent) -> dict[str, Any]:
    """Where the change comes from, as plain JSON data (the position with the field names
    of `seam.streams.decode.SourcePosition`)."""
    source = change.source
    fields = _PG_POSITION if "lsn" in source or "txId" in source else _BINLOG_POSITION
    position: dict[str, Any] = {}
    for field_name, out_name in fields:
        value = source.get(field_name)
        if value is not None and type(value) in (int, str):
            position[out_name] = value
    db = source.get("db")
    name = source.get("name")
    connector = source.get("connector")
    raw = change.raw
    return {
        "source_db": db if type(db) is str else None,
        "connector": connector if type(connector) is str else None,
        "server_name": name if type(name) is str else None,
        "table": change.table.qualified if change.table is not None else None,
        "position": position,
        "source_ts": source_ts(change),
        "snapshot": source.get("snapshot") not in (None, False, "false"),
        "topic": raw.topic,
        "partition": raw.partition,
        "offset": raw.offset,
    }

"""What the worker publishes for one source record, whichever path computed it.

A `Publication` is the encoded result of one record that did not go to the dead-letter
topic: the history records (key, event JSON, headers), the latest-topic write (key, state
JSON or None for a tombstone) and, when there is no event, the reason counted for it.
`publication()` encodes the Python stages' outcome; a compiled fast path
(`seam.transforms.fast_path`) returns the same shape, byte for byte.

Keys: a history record is keyed by the event's field that the pipeline declares
(`outputs.history.key`), else by the item's `latest_key` (the entity's key, which the stage
that made the event sets): all events of one entity then stay ordered in one partition.
The latest-topic write is keyed by `latest_key`.

Source headers: every history record and latest-topic write of a change carries where and
when the change happened in the legacy database, so a consumer (the memory-image service)
knows how far behind the source it is without decoding the value:

* `seam-source-ts-ms`: the source block's time in milliseconds since the epoch, as decimal
  text (Debezium's `source.ts_ms`: the commit time; the read time in a snapshot);
* `seam-source-position`: the change's log position written as a service's `?after=`
  takes it (`seam.services.position`): `lsn:<X/Y>` (PostgreSQL, the change's LSN) or
  `binlog:<file>:<position>` (MySQL/MariaDB).

A header is left out when the source block lacks what it is made of. The compiled engine
(transforms/native) writes the same bytes; the parity tests compare the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, NamedTuple

import orjson

from seam.changes import json_default, timestamp_ns
from seam.transforms.pipeline import Produced

Headers = list[tuple[str, bytes]]

SOURCE_TS_HEADER: Final = "seam-source-ts-ms"
SOURCE_POSITION_HEADER: Final = "seam-source-position"


class Publication(NamedTuple):
    history: list[tuple[bytes, bytes, Headers]]
    latest: tuple[bytes, bytes | None] | None
    note: str | None  # why there is no event (None when there are events)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=json_default)


def event_headers(event: dict[str, Any]) -> Headers:
    return [
        ("seam.event_type", str(event.get("event_type")).encode()),
        ("seam.event_id", str(event.get("event_id")).encode()),
        ("seam.schema_version", str(event.get("schema_version")).encode()),
    ]


def lsn_text(lsn: int) -> str:
    """A PostgreSQL LSN as PostgreSQL writes it (`pg_current_wal_lsn()::text`): X/Y in hex."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def source_position_text(source: Mapping[str, Any]) -> str | None:
    """The position of a change's source block as `?after=` takes it, or None."""
    if source.get("connector") == "postgresql":
        lsn = source.get("lsn")
        return f"lsn:{lsn_text(lsn)}" if type(lsn) is int and lsn >= 0 else None
    file, pos = source.get("file"), source.get("pos")
    if type(file) is str and file and type(pos) is int:
        return f"binlog:{file}:{pos}"
    return None


def source_headers(source: Mapping[str, Any]) -> Headers:
    """The source headers (module doc) of a change with this source block."""
    headers: Headers = []
    ns = timestamp_ns(source)
    if ns is not None:
        headers.append((SOURCE_TS_HEADER, str(ns // 1_000_000).encode()))
    position = source_position_text(source)
    if position is not None:
        headers.append((SOURCE_POSITION_HEADER, position.encode()))
    return headers


def publication(outcome: Produced, history_key: str | None = None) -> Publication:
    """The records of `outcome`; `history_key`: the event field that keys history records
    (the pipeline's `outputs.history.key`), else each item's `latest_key`."""
    history = []
    latest_item = None
    for item in outcome.items:
        event = item.event
        if event is not None:
            fallback = item.latest_key or ""
            key = str(event.get(history_key, fallback) if history_key else fallback).encode()
            history.append((key, dumps(event), event_headers(event)))
        if item.latest_key is not None:
            latest_item = item
    latest = None
    if latest_item is not None:
        state = latest_item.state
        latest = (str(latest_item.latest_key).encode(), None if state is None else dumps(state))
    return Publication(history, latest, None if history else outcome.zero_reason or "no event")

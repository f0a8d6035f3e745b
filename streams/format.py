"""Text forms of change events for people and for pipes. Pure functions: the CLI prints.

Typed values (`seam.streams.types`) print exactly: a Decimal with its scale (`19.90`), dates,
times and timestamps in ISO 8601 (an aware one with its offset), a timedelta as an ISO 8601
duration (`P3DT4H5M6.5S`), a UUID as its text, bytes as hex with a `0x` prefix in text
(base64 in JSON, as Kafka Connect writes them), and a `Raw` value, one seam could not type,
marked: `raw:'B88='` in text (and a line saying why), `{"raw": ..., "why": ...}` in JSON.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Final

import orjson

from seam.changes import (
    UNAVAILABLE,
    ChangeEvent,
    ControlRecord,
    Op,
    Raw,
    RawRecord,
    RecordKind,
    Undecodable,
    decimal_text,
    event_as_dict,
    json_default,
)
from seam.streams.decode import decode_key, json_object
from seam.streams.history import UNKNOWN, HistoryEntry
from seam.streams.types import NOT_READ, duration_text
from seam.text import plural

_OP_LABEL: Final = {
    Op.CREATE: "insert",
    Op.UPDATE: "update",
    Op.DELETE: "delete",
    Op.READ: "snapshot",
    Op.TRUNCATE: "truncate",
    Op.MESSAGE: "message",
    Op.TOMBSTONE: "tombstone",
}
MAX_VALUE: Final = 60


def value_text(value: Any, limit: int = MAX_VALUE) -> str:
    """A column value, short: strings quoted and cut, bytes as hex (0x...), times and
    durations in ISO 8601, a value seam could not type as `raw:` and the value as sent."""
    if value is UNAVAILABLE:
        return "(unavailable: not sent by Debezium)"
    if value is UNKNOWN:
        return "?"
    if value is NOT_READ:
        return "(not read: not typed)"
    if type(value) is Raw:
        return "raw:" + value_text(value.value, limit)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return duration_text(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        text = "0x" + value.hex()
    elif isinstance(value, str):
        text = repr(value)
    else:
        text = orjson.dumps(value, default=json_default).decode()
    return _cut(text, limit)


def key_text(key: Mapping[str, Any]) -> str:
    if not key:
        return "(no key)"
    return " ".join(f"{k}={value_text(v, 40)}" for k, v in key.items())


def _time_text(ts_ms: int | None) -> str:
    if ts_ms is None:
        return "-"
    moment = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def event_time_ms(event: ChangeEvent) -> int | None:
    ns = event.source_ts_ns
    return ns // 1_000_000 if ns is not None else event.timestamp_ms


def header_line(event: ChangeEvent) -> str:
    table = event.table.qualified if event.table else event.topic
    parts = [
        _OP_LABEL[event.op],
        table,
        key_text(event.key),
        _time_text(event_time_ms(event)),
    ]
    if event.position is not None:
        parts.append(event.position.describe())
    parts.append(f"[{event.topic} p{event.partition}@{event.offset}]")
    return "  ".join(parts)


def _row_inline(row: Mapping[str, Any], limit: int = 30) -> str:
    return ", ".join(f"{k}={value_text(v, limit)}" for k, v in row.items())


def event_text(event: ChangeEvent) -> str:
    """One block: a header line, then what changed (updates: before → after of the changed
    columns only; snapshot rows on one compact line)."""
    lines = [header_line(event)]
    if event.op is Op.READ and event.after is not None:
        lines.append("    " + _row_inline(event.after))
    elif event.op is Op.CREATE and event.after is not None:
        lines.extend(f"    + {k} = {value_text(v)}" for k, v in event.after.items())
    elif event.op is Op.UPDATE and event.after is not None:
        changed = event.changed
        if changed is None:
            lines.append("    (no before image: REPLICA IDENTITY DEFAULT; values now)")
            lines.extend(
                f"    ~ {k} = {value_text(v)}"
                for k, v in event.after.items()
                if v is not UNAVAILABLE and k not in event.key
            )
        elif not changed:
            lines.append("    (no column changed)")
        else:
            before = event.before or {}
            for column in changed:
                old = before.get(column, UNKNOWN)
                new = event.after.get(column, UNKNOWN)
                lines.append(f"    ~ {column}: {value_text(old)} → {value_text(new)}")
    elif event.op is Op.DELETE and event.before is not None:
        if event.key_only:
            sent = {k: v for k, v in event.before.items() if v is not UNAVAILABLE}
            lines.append(
                f"    - {_row_inline(sent)}  (only the key was sent: REPLICA IDENTITY DEFAULT;"
                " the other columns are unknown)"
            )
        else:
            lines.append("    - " + _row_inline(event.before))
    elif event.op is Op.MESSAGE and event.message is not None:
        lines.append(
            f"    prefix={event.message.prefix!r} content={value_text(event.message.content)}"
        )
    lines.extend(_raw_lines(event))
    lines.extend(_header_lines(event.raw))
    return "\n".join(lines)


def _raw_lines(event: ChangeEvent) -> list[str]:
    """Why each value shown as raw: could not be typed (once per column)."""
    why: dict[str, str] = {}
    for row in (event.after, event.before, event.key):
        for column, value in (row or {}).items():
            if type(value) is Raw and column not in why:
                why[column] = value.why or "not typed"
    return [f"    raw {column}: {reason}" for column, reason in why.items()]


def _json_value(obj: Any) -> Any:
    """`default=` for the JSON form: typed values (see the module docstring), then
    `json_default` (Decimal, bytes as base64, UNAVAILABLE)."""
    if type(obj) is Raw:
        return {"raw": obj.value, "why": obj.why}
    if obj is NOT_READ:
        return {"not_read": True}
    if isinstance(obj, timedelta):
        return duration_text(obj)
    return json_default(obj)


def _header_lines(raw: RawRecord) -> list[str]:
    """The record's headers, whole: a dead letter's seam.stage and seam.reason among them."""
    return [f"    header {name}: {_header_text(value)}" for name, value in raw.headers]


def _where(raw: RawRecord) -> str:
    return f"[{raw.topic} p{raw.partition}@{raw.offset}]"


def control_text(item: ControlRecord) -> str:
    """A record of another kind than a row change, by kind: what identifies it, when, and
    for schema changes the DDL."""
    payload, kind = item.payload, item.kind
    parts = [kind.value]
    detail = ""
    if kind is RecordKind.HEARTBEAT:
        key = decode_key(item.raw.key) or {}
        parts.append(str(key.get("serverName", "")))
    elif kind in (RecordKind.TRANSACTION_BEGIN, RecordKind.TRANSACTION_END):
        parts.append(f"id={item.transaction_id}")
        count = payload.get("event_count")
        if kind is RecordKind.TRANSACTION_END and type(count) is int:
            tables = ", ".join(
                f"{c.get('data_collection')} {c.get('event_count')}"
                for c in payload.get("data_collections") or ()
                if isinstance(c, dict)
            )
            parts.append(plural(count, "event") + (f" ({tables})" if tables else ""))
    else:  # schema change or schema history
        parts.append(str(payload.get("databaseName") or "-"))
        ddl = payload.get("ddl")
        if isinstance(ddl, str) and ddl:
            detail = "\n    " + _cut(ddl, 500)
    parts.extend((_time_text(item.time_ms), _where(item.raw)))
    lines = ["  ".join(parts) + detail, *_header_lines(item.raw)]
    return "\n".join(lines)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}…({len(text)} chars)"


def undecodable_text(item: Undecodable) -> str:
    if isinstance(item, ControlRecord):
        return control_text(item)
    raw = item.raw
    doc = json_object(raw.value)
    if doc is not None:
        # JSON that is not a Debezium change event (seam's domain events, latest states,
        # any service's records): shown as the JSON it is.
        body = orjson.dumps(doc, option=orjson.OPT_INDENT_2, default=json_default).decode()
        lines = [
            f"record  {_where(raw)}  key={_bytes_text(raw.key)}",
            *_header_lines(raw),
            *("    " + line for line in body.splitlines()),
        ]
        return "\n".join(lines)
    lines = [
        f"undecodable  {_where(raw)}  {item.reason}",
        f"    key={_bytes_text(raw.key)} value={_bytes_text(raw.value)}",
        *_header_lines(raw),
    ]
    return "\n".join(lines)


def _bytes_text(data: bytes | None) -> str:
    if data is None:
        return "null"
    try:
        text = data.decode()
    except UnicodeDecodeError:
        text = "0x" + data.hex()
    return text if len(text) <= 80 else text[:79] + f"…({len(data)} bytes)"


def _blob(data: dict[str, Any], name: str, blob: bytes | None) -> None:
    """`blob` into `data` exactly: as `name` (UTF-8 text, or None) or `name_b64`."""
    if blob is None:
        data[name] = None
        return
    try:
        data[name] = blob.decode()
    except UnicodeDecodeError:
        data[f"{name}_b64"] = base64.b64encode(blob).decode()


def _coordinates(raw: RawRecord) -> dict[str, Any]:
    return {
        "topic": raw.topic,
        "partition": raw.partition,
        "offset": raw.offset,
        "timestamp_ms": raw.timestamp_ms,
    }


def event_json(item: ChangeEvent | Undecodable) -> str:
    """One JSON object on one line. Every form keeps the record's key and its headers."""
    raw = item.raw
    data: dict[str, Any]
    if isinstance(item, ChangeEvent):
        data = event_as_dict(item)
    elif isinstance(item, ControlRecord):
        data = {"kind": item.kind.value, **_coordinates(raw)}
        key = decode_key(raw.key)
        if key is not None:
            data["key"] = key
        else:
            _blob(data, "key", raw.key)
        if item.transaction_id is not None:
            data["transaction_id"] = item.transaction_id
        data["value"] = item.payload
    else:
        data = _coordinates(raw)
        _blob(data, "key", raw.key)
        doc = json_object(raw.value)
        if doc is not None:  # not a change event, but JSON: the record as it is
            data["value"] = doc
        else:
            data["undecodable"] = item.reason
            _blob(data, "value", raw.value)
    if raw.headers:
        data["headers"] = {name: _header_text(v) for name, v in raw.headers}
    # Raw is a dataclass: passed through to _json_value, which marks it.
    return orjson.dumps(data, default=_json_value, option=orjson.OPT_PASSTHROUGH_DATACLASS).decode()


def raw_json(raw: RawRecord) -> str:
    """The exact key and value: as UTF-8 text when they are, else base64 (`key_b64`)."""
    data: dict[str, Any] = {
        "topic": raw.topic,
        "partition": raw.partition,
        "offset": raw.offset,
        "timestamp": raw.timestamp_ms,
    }
    _blob(data, "key", raw.key)
    _blob(data, "value", raw.value)
    if raw.headers:
        data["headers"] = {name: _header_text(v) for name, v in raw.headers}
    return orjson.dumps(data).decode()


def _header_text(value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        return value.decode()
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(value).decode()


def history_text(entry: HistoryEntry) -> str:
    event = entry.event
    head = f"{_time_text(event_time_ms(event))}  {_OP_LABEL[event.op]:<9}"
    if event.position is not None:
        head += f"  {event.position.describe()}"
    head += f"  [p{event.partition}@{event.offset}]"
    lines = [head]
    if entry.full_row:
        lines.append("    " + _row_inline({c.column: c.new for c in entry.changes}))
    elif event.op in (Op.CREATE, Op.READ, Op.UPDATE):
        if not entry.changes:
            lines.append("    (no column changed)")
        for change in entry.changes:
            lines.append(
                f"    ~ {change.column}: {value_text(change.old)} → {value_text(change.new)}"
            )
    elif event.op is Op.DELETE:
        lines.append("    row deleted")
    elif event.op is Op.TOMBSTONE:
        lines.append("    tombstone (lets compaction drop the key)")
    return "\n".join(lines)

"""The one Debezium change-event decoder of seam (the types it makes: `seam.changes`;
the column values it converts: `seam.streams.values`).

`decode(RawRecord) -> ChangeEvent | Undecodable` is a pure function: it never raises and
never does I/O. The transform workers and the `seam streams` commands both use it.

What it understands (Debezium 2.x/3.x, JsonConverter):

* values with an embedded schema (`{"schema": ..., "payload": ...}`) and bare payloads;
  keys likewise;
* every operation: c, u, d, r (snapshot), t (truncate), m (logical decoding message), and
  the tombstone (a null value) that follows a delete;
* decimals in all three encodings. With a schema: base64 big-endian two's-complement bytes
  scaled by the schema's `scale` parameter (`decimal.handling.mode=precise`), and the
  `io.debezium.data.VariableScaleDecimal` struct `{"scale": s, "value": base64}` (NUMERIC
  without a scale) both become `Decimal`. Without a schema the struct is still recognised
  (Debezium rows hold no other struct of that exact shape) and becomes `Decimal`, but a
  decimal that arrives as a string stays a string: a plain string (`decimal.handling.mode=
  string`) and a base64 string (`precise`) cannot be told from a text column without the
  schema, and the caller may know the column type;
* time: io.debezium.time.{Date, Time, MicroTime, NanoTime, Timestamp, MicroTimestamp,
  NanoTimestamp, ZonedTimestamp, ZonedTime, IsoDate, IsoTime, IsoTimestamp} and
  org.apache.kafka.connect.data.{Date, Time, Timestamp} become `date`/`time`/`datetime`
  when a schema says so (without a schema they stay the integers or strings Debezium
  sent, unless the caller passes the table's column types: see "Records without a
  schema" below). Timestamps without a zone are naive datetimes, zoned ones are aware. Nanosecond
  values are truncated to microseconds (Python's resolution). A value Python cannot hold
  (PostgreSQL's `24:00:00`, `infinity`, MySQL's negative TIME) is kept as sent;
* plain `bytes` columns become `bytes` when a schema says so;
* the unavailable-value placeholder `__debezium_unavailable_value` (an unchanged TOASTed
  column, also its base64 form for binary columns and `[placeholder]` for arrays) becomes
  the sentinel `UNAVAILABLE`, which is never reported as a changed column;
* a PostgreSQL delete that carries only the key (see "Key-only deletes" below): its other
  columns become `UNAVAILABLE` too, never values.

Debezium records that are not change events are classified (`ControlRecord`, with its
`RecordKind`): heartbeats, transaction BEGIN/END records (`provide.transaction.metadata`),
schema-change records (`include.schema.changes`) and schema-history records. Anything else
(binary garbage, truncated JSON, JSON that is not a Debezium record, an envelope with a
schema and no payload, a row change without a table) becomes `Undecodable` with the reason
and the raw record. A tombstone is a null value, as Kafka Connect writes one
(`JsonConverter` writes no envelope for a null value; versions before KAFKA-3832 wrote
`{"schema":null,"payload":null}`, also read as a tombstone).

Records without a schema
------------------------
`decode(record, types)` with `seam.streams.types.TableTypes` (column types read from the
source database by `seam.connectors.columns.table_types`, and the connector's encoding
settings) types every column of a bare record: exact `Decimal`, `date`, `time`, naive or
aware `datetime`, `timedelta`, `bytes`, `UUID`, parsed JSON, typed arrays, or
`seam.changes.Raw` where the type cannot be known (see `seam.streams.types`). Without
`types` a bare record's values stay as sent, as described above.

Key-only deletes
----------------
With `REPLICA IDENTITY DEFAULT` (or `USING INDEX`) PostgreSQL sends a delete's old row with
the identity columns only, and Debezium fills every other column in as if it had been NULL:
null for a nullable column, and for a NOT NULL one its schema default or the zero of its type
("", 0, false, the epoch, zero bytes...). The record says nothing else about it, so the rule
is: a `postgresql` delete whose key columns (the record key) are in `before` and whose every
other column holds such a fill-in is key-only, and those other columns are `UNAVAILABLE`.
With an embedded schema the fill-in is checked per column (null when the column is optional;
its default or a zero when it is not); without one, null or a zero of any type. A REPLICA
IDENTITY FULL delete of a row whose non-key columns really are all NULL or zero is then
reported as unknown, which is less than it could say but never false. Not recognised: a
NOT NULL column whose DEFAULT Debezium parsed, without an embedded schema (its fill-in looks
like a value), and the non-key identity columns of `USING INDEX`. `seam connectors prepare`
sets REPLICA IDENTITY FULL (on a spec's `replica_identity_full:` tables and key-less ones),
which sends the whole old row.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import fields
from typing import TYPE_CHECKING, Any, Final

import orjson

from seam.changes import (
    UNAVAILABLE,
    ChangeEvent,
    ControlRecord,
    LogicalMessage,
    Op,
    RawRecord,
    RecordKind,
    TableRef,
    Undecodable,
    timestamp_ns,
)
from seam.streams.values import (
    NO_DEFAULT,
    PROBE_PLACEHOLDER,
    PROBE_PLACEHOLDER_B64,
    PROBE_SCALE,
    Converters,
    apply_converters,
    envelope_converters,
    is_zero_fill,
    key_converters,
    mark_unavailable,
)

if TYPE_CHECKING:
    from seam.streams.types import TableTypes

__all__ = ["decode", "decode_key", "json_object"]


_OPS: Final = {op.value: op for op in Op}


def _key_only(
    before: Mapping[str, Any], key: Mapping[str, Any], converters: Converters | None
) -> bool:
    """Whether a PostgreSQL delete's `before` carries only the key (module docstring)."""
    if not key or any(column not in before for column in key):
        return False
    others = [column for column in before if column not in key]
    if not others:
        return False
    for column in others:
        value = before[column]
        if value is None:
            continue  # Debezium's fill-in for a nullable column (and for any, without schema)
        if converters is not None and column in converters.columns:
            optional, default = converters.columns[column]
            if optional:
                return False  # an optional column's fill-in is null: this is a value
            if default is not NO_DEFAULT and value == default:
                continue
        if not is_zero_fill(value):
            return False
    return True


def _table_from_topic(topic: str) -> TableRef | None:
    parts = topic.split(".")
    if len(parts) >= 3:
        return TableRef(namespace=parts[-2], name=parts[-1])
    return None


def json_object(data: bytes | None) -> dict[str, Any] | None:
    """`data` as a JSON object, or None when it is absent or not one."""
    if data is None:
        return None
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return doc if type(doc) is dict else None


def decode_key(key: bytes | None) -> dict[str, Any] | None:
    """The primary key of a Debezium record key (with or without schema), or None when the
    key is absent or is not a JSON object."""
    doc = json_object(key)
    if key is None or doc is None:
        return None
    if len(doc) == 2 and "payload" in doc and "schema" in doc:
        schema, payload = doc["schema"], doc["payload"]
        if type(payload) is not dict:
            return None
        if type(schema) is dict:
            converters = key_converters(key, schema)
            if converters:
                apply_converters(payload, converters)
        if PROBE_SCALE in key:
            mark_unavailable(payload, scale_structs=True)
        return payload
    if PROBE_SCALE in key:
        mark_unavailable(doc, scale_structs=True)
    return doc


def _tombstone(record: RawRecord) -> ChangeEvent | Undecodable:
    key = decode_key(record.key)
    if key is None:
        what = "no key" if record.key is None else "a key that is not a JSON object"
        return Undecodable(reason=f"null value with {what}: not a Debezium tombstone", raw=record)
    return ChangeEvent(
        Op.TOMBSTONE,
        _table_from_topic(record.topic),
        key,
        None,
        None,
        _NO_SOURCE,
        None,
        None,
        record,
    )


_NO_SOURCE: Final[Mapping[str, Any]] = {}


_TABLE_CACHE_LIMIT: Final = 2048
_tables: dict[tuple[Any, Any, Any], TableRef] = {}


def _table(source: Mapping[str, Any]) -> TableRef | None:
    name = source.get("table")
    if type(name) is not str or not name:
        return None
    db = source.get("db")
    namespace = source.get("schema") if "schema" in source else db
    ident = (namespace, name, db)
    found = _tables.get(ident)
    if found is None:
        if len(_tables) >= _TABLE_CACHE_LIMIT:
            _tables.clear()
        found = _tables[ident] = TableRef(
            namespace if type(namespace) is str and namespace else None,
            name,
            db if type(db) is str else None,
        )
    return found


# A frozen dataclass's __init__ sets every field with a global lookup and a call of
# object.__setattr__ each (~2 us for the ten fields of a ChangeEvent, a fifth of decoding a
# typical record). The slots' own descriptors set the very same fields for a fraction of
# that: the result is the same frozen object, as if built by ChangeEvent(...).
_new_object = object.__new__
_SET_CHANGE_EVENT: Final = tuple(getattr(ChangeEvent, f).__set__ for f in ChangeEvent.__slots__)
assert tuple(f.name for f in fields(ChangeEvent)) == ChangeEvent.__slots__


def _change_event(
    op: Op,
    table: TableRef | None,
    key: dict[str, Any],
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    source: Mapping[str, Any],
    capture_ts_ns: int | None,
    transaction: Mapping[str, Any] | None,
    raw: RawRecord,
    message: LogicalMessage | None,
) -> ChangeEvent:
    """`ChangeEvent(op, table, ...)`, faster (see above)."""
    event = _new_object(ChangeEvent)
    s_op, s_table, s_key, s_before, s_after, s_source, s_ts, s_tx, s_raw, s_msg = _SET_CHANGE_EVENT
    s_op(event, op)
    s_table(event, table)
    s_key(event, key)
    s_before(event, before)
    s_after(event, after)
    s_source(event, source)
    s_ts(event, capture_ts_ns)
    s_tx(event, transaction)
    s_raw(event, raw)
    s_msg(event, message)
    return event


def decode(record: RawRecord, types: TableTypes | None = None) -> ChangeEvent | Undecodable:
    """Decode one Debezium record. Never raises: what is not a change event comes back as
    `Undecodable` with the reason.

    `types` (`seam.streams.types.TableTypes`, read from the source database with
    `seam.connectors.columns`) types the columns of a record that carries no schema: each
    column becomes its exact Python value, or `Raw` when seam cannot type it. A record with an
    embedded schema is typed by its schema; a table `types` does not hold is left as sent."""
    try:
        return _decode(record, types)
    except Exception as exc:  # a shape no check above foresaw: still not the caller's crash
        return Undecodable(
            reason=f"malformed Debezium event: {type(exc).__name__}: {exc}", raw=record
        )


def _control(record: RawRecord, payload: dict[str, Any]) -> ControlRecord | None:
    """The kind of Debezium record `payload` is when it is not a change event, judged by the
    fields Debezium writes for each (see tests/corpus for real ones), else None."""
    kind = None
    if "ddl" in payload:
        if type(payload.get("source")) is dict and "databaseName" in payload:
            # The history topic is written by Debezium itself (no converter), with positions.
            kind = RecordKind.SCHEMA_HISTORY if "position" in payload else RecordKind.SCHEMA_CHANGE
    elif payload.get("status") in ("BEGIN", "END"):
        if type(payload.get("id")) is str and "event_count" in payload:
            begin = payload["status"] == "BEGIN"
            kind = RecordKind.TRANSACTION_BEGIN if begin else RecordKind.TRANSACTION_END
    elif len(payload) == 1 and type(payload.get("ts_ms")) is int:
        # {"ts_ms": ...} alone is a heartbeat only under the heartbeat's key {"serverName"}.
        key = decode_key(record.key)
        if key is not None and len(key) == 1 and type(key.get("serverName")) is str:
            kind = RecordKind.HEARTBEAT
    if kind is None:
        return None
    return ControlRecord(f"{kind.value} record, not a change event", record, kind, payload)


# Row changes name their table; a logical decoding message (op=m) has none.
_NEED_TABLE: Final = frozenset({Op.CREATE, Op.UPDATE, Op.DELETE, Op.READ, Op.TRUNCATE})


def _decode(record: RawRecord, types: TableTypes | None) -> ChangeEvent | Undecodable:
    value = record.value
    if value is None:
        return _tombstone(record)
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Undecodable(reason=f"value is not JSON ({exc})", raw=record)
    if type(doc) is not dict:
        return Undecodable(reason=f"value is JSON {type(doc).__name__}, not an object", raw=record)

    converters: Converters | None = None
    if "payload" in doc and "schema" in doc and len(doc) == 2:
        payload = doc["payload"]
        schema = doc["schema"]
        if payload is None:
            if schema is None:  # a null value as JsonConverter wrote it before KAFKA-3832
                return _tombstone(record)
            return Undecodable(
                reason="envelope with a schema but a null payload: not a Debezium record "
                "(Kafka Connect writes a tombstone as a null value)",
                raw=record,
            )
        if type(payload) is not dict:
            return Undecodable(reason="payload is not a JSON object", raw=record)
        if type(schema) is dict:
            converters = envelope_converters(value, schema)
    else:
        payload = doc

    op = _OPS.get(payload.get("op"))  # type: ignore[arg-type]
    source = payload.get("source")
    if op is None or op is Op.TOMBSTONE or type(source) is not dict:
        if op is None:
            control = _control(record, payload)
            if control is not None:
                return control
        keys = ", ".join(sorted(str(k) for k in payload)[:8])
        return Undecodable(
            reason=f"not a Debezium change event: no valid 'op' and 'source' (keys: {keys})",
            raw=record,
        )

    before = payload.get("before")
    after = payload.get("after")
    if (before is not None and type(before) is not dict) or (
        after is not None and type(after) is not dict
    ):
        return Undecodable(reason="'before' or 'after' is not a JSON object", raw=record)
    table = _table(source)
    if table is None and op in _NEED_TABLE:
        return Undecodable(
            reason=f"{op.name.lower()} event without a table (no 'table' in its source block)",
            raw=record,
        )

    key = decode_key(record.key)
    if key is None:
        key = {}
    if (
        op is Op.DELETE
        and before is not None
        and source.get("connector") == "postgresql"
        and _key_only(before, key, converters)
    ):
        for column in before:
            if column not in key:
                before[column] = UNAVAILABLE

    # Placeholders and variable-scale structs only when the bytes say they may be there.
    # With a schema, variable-scale structs are converted by the schema's converters.
    scale_structs = converters is None and PROBE_SCALE in value
    if scale_structs or PROBE_PLACEHOLDER in value or PROBE_PLACEHOLDER_B64 in value:
        if before is not None:
            mark_unavailable(before, scale_structs)
        if after is not None:
            mark_unavailable(after, scale_structs)
    if converters is not None and converters.row:
        if before is not None:
            apply_converters(before, converters.row)
        if after is not None:
            apply_converters(after, converters.row)
    elif converters is None and types is not None and table is not None:
        types.apply(table, before, after, key)

    message = None
    if op is Op.MESSAGE:
        body = payload.get("message")
        if type(body) is dict:
            content = body.get("content")
            message = LogicalMessage(
                prefix=str(body.get("prefix") or ""),
                content=base64.b64decode(content) if type(content) is str else b"",
            )

    transaction = payload.get("transaction")
    return _change_event(
        op,
        table,
        key,
        before,
        after,
        source,
        timestamp_ns(payload),
        transaction if type(transaction) is dict else None,
        record,
        message,
    )

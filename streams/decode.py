"""The one Debezium change-event decoder of seam.

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
  sent). Timestamps without a zone are naive datetimes, zoned ones are aware. Nanosecond
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
import binascii
import contextlib
import enum
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final

import orjson

if TYPE_CHECKING:  # the decoder must import without confluent_kafka being loaded
    import confluent_kafka

__all__ = [
    "UNAVAILABLE",
    "UNAVAILABLE_PLACEHOLDER",
    "ChangeEvent",
    "ControlRecord",
    "LogicalMessage",
    "Op",
    "RawRecord",
    "RecordKind",
    "Snapshot",
    "SourcePosition",
    "TableRef",
    "Undecodable",
    "decimal_text",
    "decode",
    "decode_key",
    "event_as_dict",
    "json_default",
    "transaction_block_id",
]

UNAVAILABLE_PLACEHOLDER: Final = "__debezium_unavailable_value"
_PLACEHOLDER_B64: Final = base64.b64encode(UNAVAILABLE_PLACEHOLDER.encode()).decode()
# Cheap byte probes: rows are only scanned for placeholders / variable-scale structs when
# the raw bytes contain one of these, which keeps the common path free of per-column work.
_PROBE_PLACEHOLDER: Final = UNAVAILABLE_PLACEHOLDER.encode()
_PROBE_PLACEHOLDER_B64: Final = _PLACEHOLDER_B64.rstrip("=").encode()
_PROBE_SCALE: Final = b'{"scale":'


class _Unavailable:
    """The value of a column Debezium did not send: an unchanged TOASTed value, or a column
    of a key-only delete (REPLICA IDENTITY DEFAULT)."""

    __slots__ = ()
    _instance: _Unavailable | None = None

    def __new__(cls) -> _Unavailable:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNAVAILABLE"

    def __reduce__(self) -> str:
        return "UNAVAILABLE"


UNAVAILABLE: Final = _Unavailable()


class Op(enum.Enum):
    """What happened to the row. `READ` (alias `SNAPSHOT`) is a row read by a snapshot."""

    CREATE = "c"
    UPDATE = "u"
    DELETE = "d"
    READ = "r"
    SNAPSHOT = "r"
    TRUNCATE = "t"
    MESSAGE = "m"
    TOMBSTONE = "tombstone"


_OPS: Final = {op.value: op for op in Op}


class Snapshot(enum.Enum):
    """The `source.snapshot` marker: where the event sits in a snapshot."""

    FALSE = "false"
    TRUE = "true"
    FIRST = "first"
    LAST = "last"
    INCREMENTAL = "incremental"
    FIRST_IN_DATA_COLLECTION = "first_in_data_collection"
    LAST_IN_DATA_COLLECTION = "last_in_data_collection"


_SNAPSHOTS: Final[dict[Any, Snapshot]] = {
    **{s.value: s for s in Snapshot},
    True: Snapshot.TRUE,
    False: Snapshot.FALSE,
    None: Snapshot.FALSE,
}


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One Kafka record as it came off the wire; the decoder's input."""

    key: bytes | None
    value: bytes | None
    topic: str = ""
    partition: int = 0
    offset: int = -1
    timestamp_ms: int | None = None
    headers: tuple[tuple[str, bytes | None], ...] = ()

    @classmethod
    def from_message(cls, msg: confluent_kafka.Message) -> RawRecord:
        """Wrap a confluent_kafka message (one with no error)."""
        ts_type, ts = msg.timestamp()
        sent = msg.headers()
        offset = msg.offset()
        key, value = msg.key(), msg.value()
        headers: tuple[tuple[str, bytes | None], ...] = ()
        if sent:  # most records carry none (None): no tuple built from a generator
            headers = tuple(
                (name, v.encode() if isinstance(v, str) else v)
                for name, v in (sent.items() if isinstance(sent, dict) else sent)
            )
        return cls(  # positional: keywords cost a frozen dataclass several times more
            key.encode() if isinstance(key, str) else key,
            value.encode() if isinstance(value, str) else value,
            msg.topic() or "",
            msg.partition() or 0,
            offset if offset is not None else -1,
            ts if ts_type != 0 else None,  # 0 = TIMESTAMP_NOT_AVAILABLE
            headers,
        )


@dataclass(frozen=True, slots=True)
class TableRef:
    """The captured table. `namespace` is the PostgreSQL schema or the MySQL database.

    A table is identified by `namespace` and `name`, as Debezium names it (`schema.table`
    within its connector's database, `database.table` for MySQL): two refs are equal when
    those are. `database` (PostgreSQL's database) is detail a tombstone cannot know, having no
    source block, so it does not take part in equality.
    """

    namespace: str | None
    name: str
    database: str | None = field(default=None, compare=False)

    @property
    def qualified(self) -> str:
        return f"{self.namespace}.{self.name}" if self.namespace else self.name

    def __str__(self) -> str:
        return self.qualified


@dataclass(frozen=True, slots=True)
class SourcePosition:
    """Where the change sits in the source database's log."""

    lsn: int | None = None  # PostgreSQL
    tx_id: int | None = None  # PostgreSQL
    sequence: str | None = None  # PostgreSQL: '["last committed lsn","lsn"]'
    binlog_file: str | None = None  # MySQL / MariaDB
    binlog_pos: int | None = None
    binlog_row: int | None = None
    gtid: str | None = None
    server_id: int | None = None

    def describe(self) -> str:
        """A short human form: `lsn=26687920 txId=751` or `seam-bin.000001:2827 row 1`."""
        if self.binlog_file is not None:
            text = f"{self.binlog_file}:{self.binlog_pos}"
            if self.binlog_row:
                text += f" row {self.binlog_row}"
            if self.gtid:
                text += f" gtid={self.gtid}"
            return text
        parts = []
        if self.lsn is not None:
            parts.append(f"lsn={self.lsn}")
        if self.tx_id is not None:
            parts.append(f"txId={self.tx_id}")
        if not parts and self.sequence:  # incremental snapshot rows carry no lsn
            parts.append(f"sequence={self.sequence}")
        return " ".join(parts) or "-"


@dataclass(frozen=True, slots=True)
class LogicalMessage:
    """The body of an `op=m` event (PostgreSQL `pg_logical_emit_message`)."""

    prefix: str
    content: bytes


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One decoded Debezium change event (or tombstone).

    The decoder does eagerly what every consumer needs (operation, table, key, converted
    rows) and keeps Debezium's `source` block as sent; the position, source timestamp,
    snapshot marker, transaction id, connector and changed columns are derived from it on
    access. That keeps decoding cheap for consumers that filter most events away.

    `changed` lists the columns this event changed: for an update, the columns whose value
    differs between `before` and `after` (never a column that is `UNAVAILABLE` on either
    side); for a create or snapshot read, every column of `after`; for a delete, every
    column of `before`; empty for a truncate, message or tombstone. It is `None` when it
    cannot be known: an update without `before` (PostgreSQL with REPLICA IDENTITY DEFAULT).
    """

    op: Op
    table: TableRef | None
    key: dict[str, Any]  # the primary key; {} for a table without one
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    source: Mapping[str, Any]  # Debezium's source block, as sent ({} for a tombstone)
    capture_ts_ns: int | None  # when Debezium processed the change
    transaction: Mapping[str, Any] | None  # the transaction block (provide.transaction.metadata)
    raw: RawRecord  # the record this came from: coordinates and exact bytes
    message: LogicalMessage | None = None

    @property
    def changed(self) -> tuple[str, ...] | None:
        return _changed(self.op, self.before, self.after)

    @property
    def position(self) -> SourcePosition | None:
        return _position(self.source) if self.source else None

    @property
    def source_ts_ns(self) -> int | None:
        """When the change happened in the database (commit time; read time in a snapshot)."""
        return _ts_ns(self.source)

    @property
    def snapshot(self) -> Snapshot | None:
        if not self.source:
            return None
        try:
            return _SNAPSHOTS.get(self.source.get("snapshot"), Snapshot.TRUE)
        except TypeError:  # an unhashable marker: not one Debezium writes
            return Snapshot.TRUE

    @property
    def transaction_id(self) -> str | None:
        """One id per source transaction: PostgreSQL's transaction id (xid, `txId`), else
        the transaction block's id (provide.transaction.metadata), else the MySQL GTID.

        PostgreSQL first: Debezium's block id there is `xid:lsn` with the LSN of each event,
        so the events of one transaction carry different block ids (measured with Debezium
        3.5: 1052:45517480, 1052:45517640, 1052:45517800 for three changes of xid 1052).
        MySQL/MariaDB block ids are the transaction's GTID, the same for all its events.
        """
        tx = self.source.get("txId")
        if type(tx) is int:
            return str(tx)
        block = self.transaction
        if block is not None and type(block.get("id")) is str:
            return transaction_block_id(block["id"])
        gtid = self.source.get("gtid")
        return gtid if type(gtid) is str else None

    @property
    def connector(self) -> str | None:
        """The connector flavour: postgresql, mysql, mariadb, ..."""
        value = self.source.get("connector")
        return value if type(value) is str else None

    @property
    def server_name(self) -> str | None:
        """The connector's logical name (its topic.prefix)."""
        value = self.source.get("name")
        return value if type(value) is str else None

    @property
    def topic(self) -> str:
        return self.raw.topic

    @property
    def partition(self) -> int:
        return self.raw.partition

    @property
    def offset(self) -> int:
        return self.raw.offset

    @property
    def timestamp_ms(self) -> int | None:
        """The Kafka record's timestamp."""
        return self.raw.timestamp_ms

    @property
    def is_tombstone(self) -> bool:
        return self.op is Op.TOMBSTONE

    @property
    def is_snapshot(self) -> bool:
        snapshot = self.snapshot
        return snapshot is not None and snapshot is not Snapshot.FALSE

    @property
    def before_known(self) -> bool:
        """False for an update or delete whose `before` Debezium did not send."""
        return self.before is not None or self.op not in (Op.UPDATE, Op.DELETE)

    @property
    def key_only(self) -> bool:
        """A delete whose `before` holds only the key (REPLICA IDENTITY DEFAULT): its other
        columns are UNAVAILABLE (see the module docstring)."""
        before = self.before
        return self.op is Op.DELETE and before is not None and UNAVAILABLE in before.values()

    @property
    def row(self) -> dict[str, Any] | None:
        """The row as it is after this event: `after`, or `before` for a delete."""
        return self.after if self.after is not None else self.before

    @property
    def source_time(self) -> datetime | None:
        return _ns_to_datetime(self.source_ts_ns)

    @property
    def capture_time(self) -> datetime | None:
        return _ns_to_datetime(self.capture_ts_ns)


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A record that is not a Debezium change event, and why. Malformed unless it is a
    `ControlRecord` (a Debezium record of another kind)."""

    reason: str
    raw: RawRecord


class RecordKind(enum.Enum):
    """The kinds of Debezium record that carry no row change."""

    HEARTBEAT = "heartbeat"  # heartbeat.interval.ms: __debezium-heartbeat.<prefix>
    TRANSACTION_BEGIN = "transaction BEGIN"  # provide.transaction.metadata: <prefix>.transaction
    TRANSACTION_END = "transaction END"
    SCHEMA_CHANGE = "schema change"  # include.schema.changes (MySQL/MariaDB): <prefix>
    SCHEMA_HISTORY = "schema history"  # the connector's internal DDL history topic


@dataclass(frozen=True, slots=True)
class ControlRecord(Undecodable):
    """A Debezium record that is not a row change: a heartbeat, a transaction boundary, a
    schema change or a schema-history entry. `payload` is the record's value (without the
    converter's envelope)."""

    kind: RecordKind
    payload: Mapping[str, Any]

    @property
    def transaction_id(self) -> str | None:
        """A transaction record's id, in the form `ChangeEvent.transaction_id` gives."""
        ident = self.payload.get("id")
        if self.kind in (RecordKind.TRANSACTION_BEGIN, RecordKind.TRANSACTION_END):
            return transaction_block_id(ident) if type(ident) is str else None
        return None

    @property
    def time_ms(self) -> int | None:
        """When Debezium wrote it (the payload's ts_ms), else the Kafka timestamp."""
        ts = self.payload.get("ts_ms")
        return ts if type(ts) is int else self.raw.timestamp_ms


# Debezium's PostgreSQL transaction id: `<xid>:<lsn of the event>`.
_PG_BLOCK_ID: Final = re.compile(r"(\d+):\d+")


def transaction_block_id(ident: str) -> str:
    """The source transaction's id in a transaction block or record id: PostgreSQL's xid
    of its `xid:lsn` (the LSN differs from event to event), any other id as it is."""
    match = _PG_BLOCK_ID.fullmatch(ident)
    return match.group(1) if match else ident


def _ns_to_datetime(ns: int | None) -> datetime | None:
    if ns is None:
        return None
    return datetime.fromtimestamp(ns // 1000 / 1_000_000, tz=UTC)


# --------------------------------------------------------------------------- converters

_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_EPOCH: Final = datetime(1970, 1, 1)
_DAY_US: Final = 86_400_000_000

Converter = Callable[[Any], Any]


def _date_from_days(v: int) -> date:
    return date.fromordinal(_EPOCH_ORDINAL + v)


def _time_from_us(v: int) -> time | int:
    if not 0 <= v < _DAY_US:
        return v  # 24:00:00 or a negative MySQL TIME: no datetime.time for it
    hours, rest = divmod(v, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds, micros = divmod(rest, 1_000_000)
    return time(hours, minutes, seconds, micros)


def _time_from_ms(v: int) -> time | int:
    result = _time_from_us(v * 1000)
    return v if isinstance(result, int) else result


def _time_from_ns(v: int) -> time | int:
    result = _time_from_us(v // 1000)
    return v if isinstance(result, int) else result


def _ts_from_ms(v: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=v)


def _ts_from_us(v: int) -> datetime:
    return _EPOCH + timedelta(microseconds=v)


def _ts_from_ns(v: int) -> datetime:
    return _EPOCH + timedelta(microseconds=v // 1000)


def _zoned_timestamp(v: str) -> datetime:
    return datetime.fromisoformat(v)


def _zoned_time(v: str) -> time:
    return time.fromisoformat(v)


def _iso_date(v: str) -> date:
    return date.fromisoformat(v)


def _bytes(v: str) -> bytes:
    return base64.b64decode(v, validate=True)


def _unscaled_to_decimal(unscaled: int, scale: int) -> Decimal:
    # Built from a string so that no context precision rounds a wide NUMERIC.
    return Decimal(f"{unscaled}E{-scale}")


def _fixed_decimal(scale: int) -> Converter:
    def convert(v: Any) -> Any:
        if isinstance(v, str):
            raw = base64.b64decode(v, validate=True)
            return _unscaled_to_decimal(int.from_bytes(raw, "big", signed=True), scale)
        return v

    return convert


def _variable_decimal(v: Any) -> Any:
    if type(v) is dict and len(v) == 2 and "scale" in v and "value" in v:
        scale, value = v["scale"], v["value"]
        if type(scale) is int and type(value) is str:
            raw = base64.b64decode(value, validate=True)
            return _unscaled_to_decimal(int.from_bytes(raw, "big", signed=True), scale)
    return v


_LOGICAL: Final[dict[str, Converter]] = {
    "io.debezium.time.Date": _date_from_days,
    "io.debezium.time.Time": _time_from_ms,
    "io.debezium.time.MicroTime": _time_from_us,
    "io.debezium.time.NanoTime": _time_from_ns,
    "io.debezium.time.Timestamp": _ts_from_ms,
    "io.debezium.time.MicroTimestamp": _ts_from_us,
    "io.debezium.time.NanoTimestamp": _ts_from_ns,
    "io.debezium.time.ZonedTimestamp": _zoned_timestamp,
    "io.debezium.time.ZonedTime": _zoned_time,
    "io.debezium.time.IsoDate": _iso_date,
    "io.debezium.time.IsoTime": _zoned_time,
    "io.debezium.time.IsoTimestamp": _zoned_timestamp,
    "org.apache.kafka.connect.data.Date": _date_from_days,
    "org.apache.kafka.connect.data.Time": _time_from_ms,
    "org.apache.kafka.connect.data.Timestamp": _ts_from_ms,
    "io.debezium.data.VariableScaleDecimal": _variable_decimal,
}

# Logical types whose JSON form is already the right Python value.
_KEEP_AS_IS: Final = frozenset(
    {
        "io.debezium.data.Json",
        "io.debezium.data.Uuid",
        "io.debezium.data.Enum",
        "io.debezium.data.Xml",
    }
)


def _field_converter(schema: Mapping[str, Any]) -> Converter | None:
    """The converter for one field's Connect schema, or None when the JSON value is fine."""
    name = schema.get("name")
    kind = schema.get("type")
    if name == "org.apache.kafka.connect.data.Decimal":
        params = schema.get("parameters") or {}
        return _fixed_decimal(int(params.get("scale", 0)))
    if name in _LOGICAL:
        return _LOGICAL[name]
    if name in _KEEP_AS_IS:
        return None
    if kind == "bytes":
        return _bytes
    if kind == "array":
        items = schema.get("items")
        item = _field_converter(items) if isinstance(items, Mapping) else None
        if item is None:
            return None
        return lambda v: [None if x is None else item(x) for x in v] if type(v) is list else v
    return None


_NO_DEFAULT: Final = object()


@dataclass(frozen=True, slots=True)
class _Converters:
    """Schema-derived work for one envelope schema: column -> converter, and per column
    whether it is optional and its default (what Debezium writes for a missing value)."""

    row: tuple[tuple[str, Converter], ...]
    message_bytes: bool
    columns: Mapping[str, tuple[bool, Any]]  # column -> (optional, default or _NO_DEFAULT)


def _row_converters(struct: Mapping[str, Any] | None) -> tuple[tuple[str, Converter], ...]:
    if not struct:
        return ()
    out = []
    for spec in struct.get("fields") or ():
        if isinstance(spec, Mapping) and isinstance(spec.get("field"), str):
            conv = _field_converter(spec)
            if conv is not None:
                out.append((spec["field"], conv))
    return tuple(out)


def _envelope_converters(schema: Mapping[str, Any]) -> _Converters:
    row_struct = None
    for spec in schema.get("fields") or ():
        if isinstance(spec, Mapping) and spec.get("field") in ("after", "before"):
            row_struct = spec
            if spec.get("field") == "after":
                break
    columns = {
        spec["field"]: (spec.get("optional") is True, spec.get("default", _NO_DEFAULT))
        for spec in ((row_struct or {}).get("fields") or ())
        if isinstance(spec, Mapping) and isinstance(spec.get("field"), str)
    }
    return _Converters(row=_row_converters(row_struct), message_bytes=True, columns=columns)


_CACHE_LIMIT: Final = 2048
_value_cache: dict[bytes, _Converters] = {}
_key_cache: dict[bytes, tuple[tuple[str, Converter], ...]] = {}


def _schema_id(raw: bytes) -> bytes | None:
    """The bytes of the embedded schema, which identify it: JsonConverter writes the schema
    first and the payload after it, so converters are built once per distinct schema."""
    end = raw.find(b'},"payload":')
    return raw[: end + 1] if end > 0 else None


def _cached(cache: dict[bytes, Any], ident: bytes | None, build: Callable[[], Any]) -> Any:
    if ident is None:
        return build()
    found = cache.get(ident)
    if found is None:
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        found = cache[ident] = build()
    return found


# ------------------------------------------------------------------------------- decode


def _mark_unavailable(row: dict[str, Any], scale_structs: bool) -> None:
    for col, v in row.items():
        t = type(v)
        if t is str:
            if v in (UNAVAILABLE_PLACEHOLDER, _PLACEHOLDER_B64):
                row[col] = UNAVAILABLE
        elif t is list:
            if len(v) == 1 and v[0] == UNAVAILABLE_PLACEHOLDER:
                row[col] = UNAVAILABLE
        elif t is dict and scale_structs:
            with contextlib.suppress(ValueError, binascii.Error, InvalidOperation):
                row[col] = _variable_decimal(v)


def _apply(row: dict[str, Any], converters: Sequence[tuple[str, Converter]]) -> None:
    for col, conv in converters:
        v = row.get(col)
        if v is None or v is UNAVAILABLE:
            continue
        # A value Python cannot hold (year 0, 24:00:00, infinity) stays as Debezium sent it.
        with contextlib.suppress(
            ValueError, TypeError, OverflowError, binascii.Error, InvalidOperation
        ):
            row[col] = conv(v)


def _changed(
    op: Op, before: dict[str, Any] | None, after: dict[str, Any] | None
) -> tuple[str, ...] | None:
    if op is Op.UPDATE:
        if before is None or after is None:
            return None
        out = []
        for col, new in after.items():
            if col not in before:
                if new is not UNAVAILABLE:
                    out.append(col)
                continue
            old = before[col]
            if old is UNAVAILABLE or new is UNAVAILABLE:
                continue
            if old != new or type(old) is not type(new):
                out.append(col)
        out.extend(col for col in before if col not in after)
        return tuple(out)
    if op is Op.CREATE or op is Op.READ:
        return tuple(after) if after is not None else ()
    if op is Op.DELETE:  # every column the row had, as far as Debezium sent them
        if before is None:
            return None
        return tuple(col for col, v in before.items() if v is not UNAVAILABLE)
    return ()


# The zeros Debezium writes for a missing NOT NULL value (JdbcValueConverters and
# PostgresValueConverter fallbacks), in their JSON forms: numbers and decimal strings of
# zero, the epoch as a date/time/timestamp text, zero bytes in base64, {}, [].
_ZERO_TEXT: Final = re.compile(
    r"-?0*(?:\.0*)?"
    r"|1970-01-01(?:T00:00(?::00(?:\.0*)?)?)?(?:Z|[+-]00(?::?00)?)?"
    r"|00:00(?::00(?:\.0*)?)?(?:Z|[+-]00(?::?00)?)?"
    r"|A{2,}={0,2}"
    r"|\{\}|\[\]"
)


def _is_zero_fill(value: Any) -> bool:
    """Whether `value` is a form of what Debezium writes for a missing NOT NULL value."""
    kind = type(value)
    if kind is str:
        return _ZERO_TEXT.fullmatch(value) is not None
    if kind is int or kind is float or kind is bool:
        return not value
    if kind is list:
        return not value
    if kind is dict:  # {} or a variable-scale decimal zero
        return not value or (set(value) == {"scale", "value"} and _is_zero_fill(value["value"]))
    return False


def _key_only(
    before: Mapping[str, Any], key: Mapping[str, Any], converters: _Converters | None
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
            if default is not _NO_DEFAULT and value == default:
                continue
        if not _is_zero_fill(value):
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
            converters = _cached(_key_cache, _schema_id(key), lambda: _row_converters(schema))
            if converters:
                _apply(payload, converters)
        if _PROBE_SCALE in key:
            _mark_unavailable(payload, scale_structs=True)
        return payload
    if _PROBE_SCALE in key:
        _mark_unavailable(doc, scale_structs=True)
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


def _ts_ns(block: Mapping[str, Any]) -> int | None:
    ns = block.get("ts_ns")
    if type(ns) is int:
        return ns
    us = block.get("ts_us")
    if type(us) is int:
        return us * 1000
    ms = block.get("ts_ms")
    if type(ms) is int:
        return ms * 1_000_000
    return None


def _position(source: Mapping[str, Any]) -> SourcePosition:
    # Positional construction: keyword arguments cost a frozen dataclass several times more.
    if "lsn" in source or "txId" in source:
        lsn, tx, seq = source.get("lsn"), source.get("txId"), source.get("sequence")
        return SourcePosition(
            lsn if type(lsn) is int else None,
            tx if type(tx) is int else None,
            seq if type(seq) is str else None,
        )
    file, pos, row = source.get("file"), source.get("pos"), source.get("row")
    gtid, server_id = source.get("gtid"), source.get("server_id")
    return SourcePosition(
        None,
        None,
        None,
        file if type(file) is str else None,
        pos if type(pos) is int else None,
        row if type(row) is int else None,
        gtid if type(gtid) is str else None,
        server_id if type(server_id) is int else None,
    )


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
        if len(_tables) >= _CACHE_LIMIT:
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


def decode(record: RawRecord) -> ChangeEvent | Undecodable:
    """Decode one Debezium record. Never raises: what is not a change event comes back as
    `Undecodable` with the reason."""
    try:
        return _decode(record)
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


def _decode(record: RawRecord) -> ChangeEvent | Undecodable:
    value = record.value
    if value is None:
        return _tombstone(record)
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Undecodable(reason=f"value is not JSON ({exc})", raw=record)
    if type(doc) is not dict:
        return Undecodable(reason=f"value is JSON {type(doc).__name__}, not an object", raw=record)

    converters: _Converters | None = None
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
            converters = _cached(
                _value_cache, _schema_id(value), lambda: _envelope_converters(schema)
            )
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
    scale_structs = converters is None and _PROBE_SCALE in value
    if scale_structs or _PROBE_PLACEHOLDER in value or _PROBE_PLACEHOLDER_B64 in value:
        if before is not None:
            _mark_unavailable(before, scale_structs)
        if after is not None:
            _mark_unavailable(after, scale_structs)
    if converters is not None and converters.row:
        if before is not None:
            _apply(before, converters.row)
        if after is not None:
            _apply(after, converters.row)

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
        _ts_ns(payload),
        transaction if type(transaction) is dict else None,
        record,
        message,
    )


# --------------------------------------------------------------------------- JSON output


# No SQL NUMERIC/DECIMAL has more digits than this before or after the point (PostgreSQL:
# 131072 before, 16383 after): plain notation up to there, scientific beyond (a forged
# scale must not make a text of a billion zeros).
_PLAIN_EXPONENT: Final = 140_000


def decimal_text(value: Decimal) -> str:
    """An exact decimal in plain notation, as the database shows it: `-0.000000000123`,
    never `-1.23E-10` (what str() gives). Trailing zeros are kept (`19.90`)."""
    exponent = value.as_tuple().exponent
    if type(exponent) is int and -_PLAIN_EXPONENT <= exponent <= _PLAIN_EXPONENT:
        return format(value, "f")
    return str(value)  # NaN, Infinity, or an exponent no database has


def json_default(obj: Any) -> Any:
    """`default=` for orjson/json: Decimal as its exact text in plain notation, bytes as
    base64, the unavailable sentinel as Debezium's placeholder string."""
    if isinstance(obj, Decimal):
        return decimal_text(obj)
    if isinstance(obj, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(obj)).decode()
    if obj is UNAVAILABLE:
        return UNAVAILABLE_PLACEHOLDER
    if isinstance(obj, enum.Enum):
        return obj.value
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def event_as_dict(event: ChangeEvent) -> dict[str, Any]:
    """The event as plain data (values may still be Decimal/datetime/bytes/UNAVAILABLE:
    serialise with `json_default`)."""
    pos = event.position
    source_time, capture_time = event.source_time, event.capture_time
    return {
        "op": event.op.name.lower(),
        "table": event.table.qualified if event.table else None,
        "key": event.key,
        "before": event.before,
        "after": event.after,
        "changed": list(event.changed) if event.changed is not None else None,
        "snapshot": event.snapshot.value if event.snapshot else None,
        "source_ts": source_time.isoformat() if source_time else None,
        "capture_ts": capture_time.isoformat() if capture_time else None,
        "position": (
            {k: getattr(pos, k) for k in pos.__slots__ if getattr(pos, k) is not None}
            if pos
            else None
        ),
        "transaction_id": event.transaction_id,
        "connector": event.connector,
        "server_name": event.server_name,
        "topic": event.topic,
        "partition": event.partition,
        "offset": event.offset,
        "timestamp_ms": event.timestamp_ms,
        **(
            {"message": {"prefix": event.message.prefix, "content": event.message.content}}
            if event.message
            else {}
        ),
    }

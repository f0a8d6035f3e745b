"""The change-event types every part of seam speaks: a Kafka record as it came off the wire
(`RawRecord`), a decoded Debezium change (`ChangeEvent`), and what is not one (`Undecodable`,
`ControlRecord`). The decoder (`seam.streams.decode`) makes them; the stream inspection
commands and the transform workers read them.

A column Debezium did not send (an unchanged TOASTed value, a column of a key-only delete)
holds the sentinel `UNAVAILABLE`, never a look-alike value.
"""

from __future__ import annotations

import base64
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:  # the change types must import without confluent_kafka being loaded
    import confluent_kafka

UNAVAILABLE_PLACEHOLDER: Final = "__debezium_unavailable_value"


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


@dataclass(frozen=True, slots=True)
class Raw:
    """A column value seam could not type: its column type is unknown to seam (a custom or
    spatial type, a column added after the types were read), or the value does not fit its
    type (PostgreSQL's `infinity`, `24:00:00`, a month interval). `value` is what Debezium
    sent, untouched; `why` says what was missing. Never equal to a plain value, so it is never
    mistaken for one."""

    value: Any
    why: str = ""


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
        return source_position(self.source) if self.source else None

    @property
    def source_ts_ns(self) -> int | None:
        """When the change happened in the database (commit time; read time in a snapshot)."""
        return timestamp_ns(self.source)

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


def timestamp_ns(block: Mapping[str, Any]) -> int | None:
    """A Debezium block's time (`ts_ns`, `ts_us` or `ts_ms`) in nanoseconds."""
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


def source_position(source: Mapping[str, Any]) -> SourcePosition:
    """Where a change sits in its database's log, from its source block."""
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

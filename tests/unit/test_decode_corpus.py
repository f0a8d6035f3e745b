"""The decoder on REAL Debezium records captured from the local stack (tests/corpus).

The corpus holds the same changes seen through eight connectors: PostgreSQL and MariaDB,
`decimal.handling.mode` precise / string, JSON values with and without embedded schemas, and
one of each flavour with transaction metadata, heartbeats and (MariaDB) schema changes and
their history.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from seam.changes import (
    UNAVAILABLE,
    ChangeEvent,
    ControlRecord,
    Op,
    RawRecord,
    RecordKind,
    Snapshot,
    TableRef,
    event_as_dict,
    json_default,
)
from seam.streams.decode import decode

pytestmark = pytest.mark.unit

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "debezium.jsonl"


def _load() -> list[tuple[str, RawRecord]]:
    out = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        out.append(
            (
                row["variant"],
                RawRecord(
                    key=None if row["key"] is None else row["key"].encode(),
                    value=None if row["value"] is None else row["value"].encode(),
                    topic=row["topic"],
                    partition=row["partition"],
                    offset=row["offset"],
                    timestamp_ms=row["timestamp"],
                ),
            )
        )
    return out


RECORDS = _load()


def events(variant: str, table: str | None = "products") -> list[ChangeEvent]:
    """The variant's decoded events of one table topic (table=None: of every change topic),
    in offset order."""
    out = []
    for v, record in RECORDS:
        if v != variant or (table is not None and not record.topic.endswith("." + table)):
            continue
        event = decode(record)
        if table is None and isinstance(event, ControlRecord):
            continue
        assert isinstance(event, ChangeEvent), event
        out.append(event)
    return sorted(out, key=lambda e: e.offset)


def controls(variant: str) -> list[ControlRecord]:
    out = []
    for v, record in RECORDS:
        item = decode(record)
        if v == variant and isinstance(item, ControlRecord):
            out.append(item)
    return out


def by_key(evts: list[ChangeEvent], op: Op, **key: Any) -> ChangeEvent:
    found = [e for e in evts if e.op is op and e.key == key]
    assert len(found) == 1, (op, key, [(e.op, e.key) for e in evts])
    return found[0]


PG = [
    "pg_precise_schema",
    "pg_precise_bare",
    "pg_string_schema",
    "pg_string_bare",
    "pg_txmeta_bare",
]
MY = ["my_precise_schema", "my_string_bare", "my_txmeta_schema"]
TX_META = ["pg_txmeta_bare", "my_txmeta_schema"]


def test_corpus_has_every_variant_and_operation() -> None:
    kinds = Counter(
        (v, item.op if isinstance(item, ChangeEvent) else getattr(item, "kind", None))
        for v, item in ((v, decode(r)) for v, r in RECORDS)
    )
    for variant in PG:
        for op in (Op.READ, Op.CREATE, Op.UPDATE, Op.DELETE, Op.TOMBSTONE, Op.TRUNCATE, Op.MESSAGE):
            assert kinds[(variant, op)] >= 1, (variant, op)
    for variant in MY:
        for op in (Op.READ, Op.CREATE, Op.UPDATE, Op.DELETE, Op.TOMBSTONE):
            assert kinds[(variant, op)] >= 1, (variant, op)
    for variant in TX_META:
        for kind in (
            RecordKind.HEARTBEAT,
            RecordKind.TRANSACTION_BEGIN,
            RecordKind.TRANSACTION_END,
        ):
            assert kinds[(variant, kind)] >= 1, (variant, kind)
    assert kinds[("my_txmeta_schema", RecordKind.SCHEMA_CHANGE)] >= 1
    assert kinds[("my_txmeta_schema", RecordKind.SCHEMA_HISTORY)] >= 1
    assert not any(kind is None for _variant, kind in kinds)  # nothing real is malformed


# Where Debezium writes each kind of record that is not a row change (the corpus's topics).
def _kind_of_topic(topic: str) -> RecordKind | None:
    if topic.startswith("__debezium-heartbeat."):
        return RecordKind.HEARTBEAT
    if topic.endswith(".schema-history"):
        return RecordKind.SCHEMA_HISTORY
    if topic.endswith(".transaction"):
        return None  # BEGIN or END: see the test below
    if "." not in topic:
        return RecordKind.SCHEMA_CHANGE  # the topic named after the connector's prefix
    return None


@pytest.mark.parametrize(("variant", "record"), RECORDS, ids=lambda x: getattr(x, "topic", x))
def test_every_real_record_decodes_and_serialises(variant: str, record: RawRecord) -> None:
    event = decode(record)
    if record.topic.endswith(".transaction"):
        assert isinstance(event, ControlRecord), event
        assert (
            event.kind
            is {
                "BEGIN": RecordKind.TRANSACTION_BEGIN,
                "END": RecordKind.TRANSACTION_END,
            }[event.payload["status"]]
        )
        return
    expected_kind = _kind_of_topic(record.topic)
    if expected_kind is not None:
        assert isinstance(event, ControlRecord), event
        assert event.kind is expected_kind
        assert event.time_ms is not None
        return
    assert isinstance(event, ChangeEvent), event
    assert event.topic == record.topic
    assert event.offset == record.offset
    data = orjson.loads(orjson.dumps(event_as_dict(event), default=json_default))
    assert data["op"] == event.op.name.lower()
    if event.op not in (Op.TOMBSTONE, Op.MESSAGE, Op.TRUNCATE):
        assert event.table is not None
        assert event.table.name in ("products", "suppliers")
        assert event.key


@pytest.mark.parametrize("variant", ["pg_precise_schema", "pg_string_schema"])
def test_postgres_time_types_become_python_values_with_a_schema(variant: str) -> None:
    first = by_key(events(variant), Op.READ, id=1).after
    assert first is not None
    assert first["listed"] == date(2024, 3, 1)
    assert first["updated_at"] == datetime(2024, 3, 1, 10, 11, 12, 123456)
    assert first["created_at"] == datetime(2024, 3, 1, 8, 11, 12, 500000, tzinfo=UTC)
    assert first["opens"] == time(8, 30)
    assert first["tags"] == ["kitchen", "steel"]
    assert first["ref"] == "6f1c2a52-0d4c-4c8e-9f57-9a0f0f4d2b11"
    second = by_key(events(variant), Op.READ, id=2).after
    assert second is not None
    assert second["listed"] == date(1969, 12, 31)  # negative days since epoch
    assert second["opens"] == time(23, 59, 59, 999999)


@pytest.mark.parametrize("variant", ["pg_precise_bare", "pg_string_bare"])
def test_without_a_schema_time_values_stay_as_sent(variant: str) -> None:
    first = by_key(events(variant), Op.READ, id=1).after
    assert first is not None
    assert first["listed"] == 19783
    assert first["opens"] == 30_600_000_000
    assert first["created_at"] == "2024-03-01T08:11:12.500000Z"


def test_precise_decimals_with_schema_fixed_and_variable_scale() -> None:
    evts = events("pg_precise_schema")
    first = by_key(evts, Op.READ, id=1).after
    assert first is not None
    assert first["price"] == Decimal("19.99")
    assert str(first["price"]) == "19.99"
    assert first["weight"] == Decimal("1.25")  # NUMERIC without scale: VariableScaleDecimal
    second = by_key(evts, Op.READ, id=2).after
    assert second is not None
    assert str(second["price"]) == "-1234.50"  # negative two's complement
    assert second["weight"] == Decimal("0.000123")
    wide = by_key(evts, Op.CREATE, id=3).after
    assert wide is not None
    assert wide["weight"] == Decimal("12345678901234567890.123456789")  # no rounding
    assert wide["price"] == Decimal("99999999.99")


def test_precise_decimals_without_schema() -> None:
    first = by_key(events("pg_precise_bare"), Op.READ, id=1).after
    assert first is not None
    # The variable-scale struct is recognised without a schema ...
    assert first["weight"] == Decimal("1.25")
    # ... but base64 bytes cannot be told from text without the schema: they stay strings.
    assert first["price"] == "B88="


@pytest.mark.parametrize("variant", ["pg_string_schema", "pg_string_bare", "my_string_bare"])
def test_string_decimals_stay_strings(variant: str) -> None:
    first = by_key(events(variant), Op.READ, id=1).after
    assert first is not None
    assert first["price"] == "19.99"


def test_mariadb_values_and_binlog_position() -> None:
    evts = events("my_precise_schema")
    first = by_key(evts, Op.READ, id=1)
    assert first.after is not None
    assert first.after["price"] == Decimal("19.99")
    assert first.after["updated_at"] == datetime(2024, 3, 1, 10, 11, 12, 123000)
    assert first.after["changed_at"] == datetime(2024, 3, 1, 10, 11, 12, 654321, tzinfo=UTC)
    assert first.after["opens"] == time(8, 30)
    assert first.after["blob_col"] == b"\x00\xff\x10"
    assert first.connector == "mariadb"
    assert first.table is not None
    assert first.table.qualified == "seam_corpus.products"
    update = by_key(evts, Op.UPDATE, id=1)
    pos = update.position
    assert pos is not None
    assert pos.binlog_file
    assert re.fullmatch(r"[\w.-]+\.\d{6}", pos.binlog_file)  # seam-bin.000001, binlog.000001
    assert pos.binlog_pos
    assert pos.binlog_pos > 0
    assert pos.gtid
    assert pos.gtid.count("-") == 2
    assert update.transaction_id == pos.gtid
    assert update.changed == ("price",)
    assert update.before is not None
    assert update.before["price"] == Decimal("19.99")


def test_snapshot_markers() -> None:
    evts = events("pg_precise_schema")
    reads = [e for e in evts if e.op is Op.READ]
    assert all(e.is_snapshot for e in reads)
    assert reads[0].snapshot is Snapshot.FIRST
    assert reads[-1].snapshot in (Snapshot.LAST, Snapshot.LAST_IN_DATA_COLLECTION)
    streamed = [e for e in evts if e.op in (Op.CREATE, Op.UPDATE)]
    assert streamed
    assert all(e.snapshot is Snapshot.FALSE and not e.is_snapshot for e in streamed)


@pytest.mark.parametrize("variant", PG)
def test_postgres_position_and_timestamps(variant: str) -> None:
    update = by_key(events(variant), Op.UPDATE, id=1)
    pos = update.position
    assert pos is not None
    assert pos.lsn
    assert pos.tx_id
    assert update.transaction_id == str(pos.tx_id)
    assert update.connector == "postgresql"
    assert update.server_name == f"corpus_{variant}"
    assert update.table is not None
    assert (update.table.namespace, update.table.name, update.table.database) == (
        "seam_corpus",
        "products",
        "catalog",
    )
    assert update.source_ts_ns
    assert update.capture_ts_ns
    assert update.source_ts_ns <= update.capture_ts_ns
    assert update.source_time is not None
    assert update.source_time.year >= 2024
    assert "lsn=" in pos.describe()


@pytest.mark.parametrize("variant", PG)
def test_unchanged_toast_column_is_unavailable_not_a_value(variant: str) -> None:
    evts = events(variant)
    update = by_key(evts, Op.UPDATE, id=2)
    assert update.after is not None
    assert update.after["description"] is UNAVAILABLE
    assert update.after["name"] == "Toaster 2000"
    # REPLICA IDENTITY DEFAULT: no before, so the changed columns cannot be known.
    assert update.before is None
    assert update.changed is None
    assert not update.before_known
    # The snapshot read of the same row had the real value.
    read = by_key(evts, Op.READ, id=2).after
    assert read is not None
    assert len(read["description"]) == 12000


@pytest.mark.parametrize("variant", PG)
def test_replica_identity_full_gives_before_and_changed_columns(variant: str) -> None:
    evts = events(variant, "suppliers")
    update = by_key(evts, Op.UPDATE, code="ACME")
    assert update.changed == ("name", "rating")
    assert update.before is not None
    assert update.before["name"] == "Acme Ltd"
    delete = by_key(evts, Op.DELETE, code="GLOBEX")
    assert delete.after is None
    assert delete.before is not None
    assert delete.row == delete.before
    tombstone = by_key(evts, Op.TOMBSTONE, code="GLOBEX")
    assert tombstone.offset == delete.offset + 1  # the tombstone follows its delete
    assert tombstone.table is not None
    assert tombstone.table.qualified == "seam_corpus.suppliers"
    assert tombstone.changed == ()
    assert tombstone.is_tombstone
    truncate = next(e for e in evts if e.op is Op.TRUNCATE)
    assert truncate.before is None
    assert truncate.after is None
    assert truncate.key == {}


@pytest.mark.parametrize("variant", [*PG, *MY])
def test_add_column_mid_stream(variant: str) -> None:
    evts = events(variant)
    old = by_key(evts, Op.CREATE, id=3)
    new = by_key(evts, Op.CREATE, id=4)
    assert old.after is not None
    assert "stock" not in old.after
    assert new.after is not None
    assert new.after["stock"] == 42
    update = by_key(evts, Op.UPDATE, id=4)
    assert update.after is not None
    assert update.after["stock"] == 41
    if variant.startswith("my"):
        assert update.changed == ("stock",)


@pytest.mark.parametrize("variant", PG)
def test_logical_decoding_message(variant: str) -> None:
    message = next(e for e in events(variant, table=None) if e.op is Op.MESSAGE)
    assert message.message is not None
    assert message.message.prefix == "seam-corpus"
    assert message.message.content == b"hello from the corpus"
    assert message.table is None


def test_schema_and_bare_variants_agree_on_row_values() -> None:
    """The same change decodes to the same row whichever converter setting carried it,
    once time values are compared in their decoded form."""
    with_schema = by_key(events("pg_string_schema"), Op.UPDATE, id=4).after
    bare = by_key(events("pg_string_bare"), Op.UPDATE, id=4).after
    assert with_schema == bare  # no time columns set on this row


@pytest.mark.parametrize("variant", PG)
def test_a_key_only_delete_marks_the_other_columns_unavailable(variant: str) -> None:
    """products has REPLICA IDENTITY DEFAULT: PostgreSQL sent the key only, and Debezium
    filled the rest in (null, and "" for the NOT NULL sku): never values."""
    delete = by_key(events(variant), Op.DELETE, id=3)
    assert delete.before is not None
    assert delete.before["id"] == 3
    assert all(v is UNAVAILABLE for col, v in delete.before.items() if col != "id")
    assert set(delete.before) > {"id", "sku", "name", "price"}  # the columns stay named
    assert delete.key_only
    assert delete.changed == ("id",)  # none of the unknown columns is listed as changed
    data = orjson.loads(orjson.dumps(event_as_dict(delete), default=json_default))
    assert data["before"]["sku"] == "__debezium_unavailable_value"  # not "" as sent
    # suppliers has REPLICA IDENTITY FULL: the whole old row, all values.
    full = by_key(events(variant, "suppliers"), Op.DELETE, code="GLOBEX")
    assert not full.key_only
    assert full.before is not None
    assert full.before["name"] == "Globex"
    assert full.changed == ("code", "name", "rating")


@pytest.mark.parametrize("variant", MY)
def test_mariadb_deletes_carry_the_whole_row(variant: str) -> None:
    delete = by_key(events(variant), Op.DELETE, id=3)
    assert not delete.key_only
    assert delete.before is not None
    assert delete.before["sku"] == "SKU-3"
    assert delete.before["updated_at"] is None  # a NULL of the row, not an unknown


@pytest.mark.parametrize("variant", [*PG, *MY])
def test_a_tombstone_names_the_same_table_as_its_delete(variant: str) -> None:
    evts = events(variant)
    delete = by_key(evts, Op.DELETE, id=3)
    tombstone = by_key(evts, Op.TOMBSTONE, id=3)
    assert tombstone.table == delete.table
    assert hash(tombstone.table) == hash(delete.table)
    assert tombstone.table is not None
    assert tombstone.table.database is None  # not invented: a tombstone has no source block
    if variant.startswith("pg"):
        assert delete.table is not None
        assert delete.table.database == "catalog"
    assert TableRef("public", "t", "db1") != TableRef("other", "t", "db1")


@pytest.mark.parametrize("variant", TX_META)
def test_one_transaction_id_per_source_transaction(variant: str) -> None:
    """SKU-5, SKU-6 and the rename of SKU-6 were one transaction; everything else was one
    statement per transaction."""
    evts = [e for e in events(variant) if not e.is_snapshot and e.op is not Op.TOMBSTONE]
    ids = [e.transaction_id for e in evts]
    assert all(ids)
    last_three = evts[-3:]
    assert [e.op for e in last_three] == [Op.CREATE, Op.CREATE, Op.UPDATE]
    assert len({e.transaction_id for e in last_three}) == 1
    assert len(set(ids)) == len(ids) - 2  # every other event has a transaction of its own
    blocks = {e.transaction["id"] for e in last_three if e.transaction is not None}
    if variant.startswith("pg"):
        # What Debezium sends: a block id per event (xid:lsn), the reason for the rule.
        assert len(blocks) == 3
        assert last_three[0].transaction_id == str(last_three[0].source["txId"])
    else:
        assert blocks == {last_three[0].transaction_id}  # the GTID
    # The transaction topic's BEGIN and END records of it carry the same id.
    boundaries = [
        c
        for c in controls(variant)
        if c.kind in (RecordKind.TRANSACTION_BEGIN, RecordKind.TRANSACTION_END)
        and c.transaction_id == last_three[0].transaction_id
    ]
    assert {c.kind for c in boundaries} == {
        RecordKind.TRANSACTION_BEGIN,
        RecordKind.TRANSACTION_END,
    }
    end = next(c for c in boundaries if c.kind is RecordKind.TRANSACTION_END)
    assert end.payload["event_count"] == 3


def test_control_records_keep_what_identifies_them() -> None:
    beat = next(c for c in controls("pg_txmeta_bare") if c.kind is RecordKind.HEARTBEAT)
    assert beat.raw.topic == "__debezium-heartbeat.corpus_pg_txmeta_bare"
    assert type(beat.payload["ts_ms"]) is int
    change = [c for c in controls("my_txmeta_schema") if c.kind is RecordKind.SCHEMA_CHANGE]
    assert any("ADD COLUMN stock" in c.payload["ddl"] for c in change)
    history = [c for c in controls("my_txmeta_schema") if c.kind is RecordKind.SCHEMA_HISTORY]
    assert all("position" in c.payload for c in history)
    assert all(c.raw.key is None for c in history)


@pytest.mark.parametrize("variant", ["pg_precise_schema", "pg_precise_bare"])
def test_a_tiny_decimal_is_shown_in_plain_notation(variant: str) -> None:
    from seam.streams.filters import EventFilter, parse_where
    from seam.streams.format import event_text

    scale = by_key(events(variant), Op.CREATE, id=5)
    assert scale.after is not None
    weight = scale.after["weight"]
    assert weight == Decimal("-0.000000000123")
    assert str(weight) == "-1.23E-10"  # what Python would have shown
    data = orjson.loads(orjson.dumps(event_as_dict(scale), default=json_default))
    assert data["after"]["weight"] == "-0.000000000123"
    assert "+ weight = -0.000000000123" in event_text(scale)
    # --where with the database's own rendering finds it.
    where = EventFilter(where=parse_where(["weight=-0.000000000123"]))
    assert where.matches(scale)

"""Decoder rules on hand-written records: every encoding, and never an exception."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seam.changes import (
    UNAVAILABLE,
    UNAVAILABLE_PLACEHOLDER,
    ChangeEvent,
    ControlRecord,
    Op,
    RawRecord,
    RecordKind,
    Undecodable,
    decimal_text,
    json_default,
    transaction_block_id,
)
from seam.streams.decode import decode, decode_key
from seam.streams.partitioner import murmur2, partition_for_key

pytestmark = pytest.mark.unit

SOURCE = {
    "version": "3.5.0.Final",
    "connector": "postgresql",
    "name": "shop",
    "ts_ms": 1700000000000,
    "snapshot": "false",
    "db": "catalog",
    "schema": "public",
    "table": "products",
    "txId": 7,
    "lsn": 1234,
}


def record(
    payload: Any, *, key: Any = None, schema: Any = None, topic: str = "shop.public.products"
) -> RawRecord:
    value = payload if schema is None else {"schema": schema, "payload": payload}
    return RawRecord(
        key=None if key is None else orjson.dumps(key),
        value=orjson.dumps(value),
        topic=topic,
        partition=0,
        offset=1,
        timestamp_ms=1700000000001,
    )


def envelope(
    after: dict[str, Any] | None, before: dict[str, Any] | None = None, op: str = "c"
) -> dict[str, Any]:
    return {"before": before, "after": after, "source": SOURCE, "op": op, "ts_ms": 1700000000500}


def schema_for(fields: list[dict[str, Any]]) -> dict[str, Any]:
    row = {
        "type": "struct",
        "optional": True,
        "fields": fields,
        "name": "shop.public.products.Value",
    }
    return {
        "type": "struct",
        "name": "shop.public.products.Envelope",
        "fields": [{**row, "field": "before"}, {**row, "field": "after"}],
    }


def decimal_bytes(unscaled: int) -> str:
    size = max(1, (unscaled.bit_length() + 8) // 8)
    return base64.b64encode(unscaled.to_bytes(size, "big", signed=True)).decode()


def decoded(rec: RawRecord) -> ChangeEvent:
    event = decode(rec)
    assert isinstance(event, ChangeEvent), event
    return event


def test_every_time_encoding_with_a_schema() -> None:
    fields = [
        {"type": "int32", "name": "io.debezium.time.Date", "field": "d"},
        {"type": "int32", "name": "io.debezium.time.Time", "field": "t_ms"},
        {"type": "int64", "name": "io.debezium.time.MicroTime", "field": "t_us"},
        {"type": "int64", "name": "io.debezium.time.NanoTime", "field": "t_ns"},
        {"type": "int64", "name": "io.debezium.time.Timestamp", "field": "ts_ms"},
        {"type": "int64", "name": "io.debezium.time.MicroTimestamp", "field": "ts_us"},
        {"type": "int64", "name": "io.debezium.time.NanoTimestamp", "field": "ts_ns"},
        {"type": "string", "name": "io.debezium.time.ZonedTimestamp", "field": "zts"},
        {"type": "int32", "name": "org.apache.kafka.connect.data.Date", "field": "kd"},
        {"type": "int32", "name": "org.apache.kafka.connect.data.Time", "field": "kt"},
        {"type": "int64", "name": "org.apache.kafka.connect.data.Timestamp", "field": "kts"},
        {"type": "int64", "name": "io.debezium.time.MicroTime", "field": "midnight"},
    ]
    after = {
        "d": 19783,
        "t_ms": 30_600_000,
        "t_us": 30_600_000_001,
        "t_ns": 30_600_000_001_000,
        "ts_ms": 1709287872123,
        "ts_us": 1709287872123456,
        "ts_ns": 1709287872123456789,
        "zts": "2024-03-01T08:11:12.5+02:00",
        "kd": -1,
        "kt": 1000,
        "kts": 0,
        "midnight": 86_400_000_000,  # PostgreSQL's 24:00:00: no datetime.time holds it
    }
    row = decoded(record(envelope(after), schema=schema_for(fields))).after
    assert row == {
        "d": date(2024, 3, 1),
        "t_ms": time(8, 30),
        "t_us": time(8, 30, 0, 1),
        "t_ns": time(8, 30, 0, 1),
        "ts_ms": datetime(2024, 3, 1, 10, 11, 12, 123000),
        "ts_us": datetime(2024, 3, 1, 10, 11, 12, 123456),
        "ts_ns": datetime(2024, 3, 1, 10, 11, 12, 123456),
        "zts": datetime(2024, 3, 1, 6, 11, 12, 500000, tzinfo=UTC),
        "kd": date(1969, 12, 31),
        "kt": time(0, 0, 1),
        "kts": datetime(1970, 1, 1),
        "midnight": 86_400_000_000,
    }


def test_decimal_encodings_with_a_schema() -> None:
    fields = [
        {
            "type": "bytes",
            "name": "org.apache.kafka.connect.data.Decimal",
            "parameters": {"scale": "3"},
            "field": "fixed",
        },
        {
            "type": "struct",
            "name": "io.debezium.data.VariableScaleDecimal",
            "fields": [{"type": "int32", "field": "scale"}, {"type": "bytes", "field": "value"}],
            "field": "variable",
        },
        {"type": "string", "field": "plain"},
        {
            "type": "array",
            "items": {
                "type": "bytes",
                "name": "org.apache.kafka.connect.data.Decimal",
                "parameters": {"scale": "1"},
            },
            "field": "many",
        },
        {"type": "bytes", "field": "blob"},
    ]
    huge = 10**40 + 7
    after = {
        "fixed": decimal_bytes(-123456),
        "variable": {"scale": 2, "value": decimal_bytes(huge)},
        "plain": "12.50",
        "many": [decimal_bytes(15), None, decimal_bytes(-5)],
        "blob": base64.b64encode(b"\x00\x01").decode(),
    }
    row = decoded(record(envelope(after), schema=schema_for(fields))).after
    assert row is not None
    assert row["fixed"] == Decimal("-123.456")
    assert row["variable"] == Decimal(f"{huge}E-2")  # exact: 41 digits, no context rounding
    assert str(row["variable"]).startswith("100000000000000000000000000000000000000.0")
    assert row["plain"] == "12.50"
    assert row["many"] == [Decimal("1.5"), None, Decimal("-0.5")]
    assert row["blob"] == b"\x00\x01"


def test_variable_scale_struct_without_a_schema() -> None:
    after = {
        "id": 1,
        "w": {"scale": 3, "value": decimal_bytes(1250)},
        "geo": {"wkb": "AA==", "srid": 4326},
    }
    row = decoded(record(envelope(after), key={"id": 1})).after
    assert row == {"id": 1, "w": Decimal("1.250"), "geo": {"wkb": "AA==", "srid": 4326}}


def test_unavailable_placeholder_in_every_form_and_not_a_change() -> None:
    b64 = base64.b64encode(UNAVAILABLE_PLACEHOLDER.encode()).decode()
    before = {
        "id": 1,
        "text": UNAVAILABLE_PLACEHOLDER,
        "bin": b64,
        "arr": [UNAVAILABLE_PLACEHOLDER],
        "n": 1,
    }
    after = {"id": 1, "text": "now known", "bin": b64, "arr": ["x"], "n": 2}
    event = decoded(record(envelope(after, before, op="u"), key={"id": 1}))
    assert event.before is not None
    assert event.after is not None
    assert event.before["text"] is UNAVAILABLE
    assert event.before["bin"] is UNAVAILABLE
    assert event.before["arr"] is UNAVAILABLE
    assert event.after["bin"] is UNAVAILABLE
    assert event.after["text"] == "now known"
    # Only n is a known change: an unavailable side is never reported as changed.
    assert event.changed == ("n",)
    assert UNAVAILABLE != UNAVAILABLE_PLACEHOLDER
    assert repr(UNAVAILABLE) == "UNAVAILABLE"


def test_changed_columns_by_operation() -> None:
    create = decoded(record(envelope({"id": 1, "a": 1}), key={"id": 1}))
    assert create.changed == ("id", "a")
    same = decoded(
        record(envelope({"id": 1, "a": 1, "b": 2}, {"id": 1, "a": 1, "c": 0}, "u"), key={"id": 1})
    )
    assert same.changed == ("b", "c")  # b added, c gone
    no_before = decoded(record(envelope({"id": 1, "a": 2}, None, "u"), key={"id": 1}))
    assert no_before.changed is None
    assert not no_before.before_known
    delete = decoded(record(envelope(None, {"id": 1, "a": 2}, "d"), key={"id": 1}))
    assert delete.changed == ("id", "a")
    assert delete.row == {"id": 1, "a": 2}


def test_key_with_and_without_schema() -> None:
    assert decode_key(b'{"id":5}') == {"id": 5}
    with_schema = orjson.dumps(
        {
            "schema": {
                "type": "struct",
                "fields": [
                    {
                        "type": "bytes",
                        "name": "org.apache.kafka.connect.data.Decimal",
                        "parameters": {"scale": "1"},
                        "field": "code",
                    }
                ],
            },
            "payload": {"code": decimal_bytes(15)},
        }
    )
    assert decode_key(with_schema) == {"code": Decimal("1.5")}
    assert decode_key(None) is None
    assert decode_key(b"\xff") is None
    assert decode_key(b"[1]") is None


def test_mysql_source_and_transaction_block() -> None:
    source = {
        "connector": "mysql",
        "name": "shop",
        "ts_ms": 1700000000000,
        "snapshot": "incremental",
        "db": "catalog",
        "table": "products",
        "server_id": 223344,
        "gtid": "3e11fa47-71ca-11e1-9e33-c80aa9429562:23",
        "file": "mysql-bin.000003",
        "pos": 154,
        "row": 2,
    }
    payload = {
        "before": None,
        "after": {"id": 1},
        "source": source,
        "op": "c",
        "ts_us": 1700000000500123,
        "transaction": {"id": "tx-9", "total_order": 1, "data_collection_order": 1},
    }
    event = decoded(record(payload, key={"id": 1}))
    assert event.position is not None
    assert event.position.binlog_file == "mysql-bin.000003"
    assert event.position.binlog_row == 2
    assert event.position.server_id == 223344
    assert (
        event.position.describe()
        == "mysql-bin.000003:154 row 2 gtid=3e11fa47-71ca-11e1-9e33-c80aa9429562:23"
    )
    assert event.transaction_id == "tx-9"
    assert event.capture_ts_ns == 1700000000500123000
    assert event.is_snapshot
    assert event.snapshot is not None
    assert event.snapshot.value == "incremental"
    assert event.table is not None
    assert event.table.qualified == "catalog.products"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\x00\x01\x02garbage", "not JSON"),
        (b'{"before": null, "after": {"id"', "not JSON"),
        (b"[1, 2, 3]", "not an object"),
        (b'"just a string"', "not an object"),
        # a heartbeat's value, but not under a heartbeat's key {"serverName": ...}
        (b'{"ts_ms": 1700000000000}', "not a Debezium change event"),
        (b'{"status": "BEGIN", "event_count": null}', "not a Debezium change event"),  # no id
        (b'{"ddl": "DROP TABLE t"}', "not a Debezium change event"),  # no source
        (b'{"op": "c", "source": "nope"}', "not a Debezium change event"),
        (b'{"op": "x", "source": {}}', "not a Debezium change event"),
        (b'{"op": "c", "source": {}, "after": [1]}', "not a JSON object"),
        (b'{"schema": {}, "payload": 5}', "payload is not a JSON object"),
        # poison the issue found counted as a tombstone and as "no event":
        (b'{"schema": {}, "payload": null}', "a schema but a null payload"),
        (b'{"op": "c", "source": {}, "after": {"id": 1}}', "create event without a table"),
        (b'{"op": "u", "source": {"table": ""}, "after": {"id": 1}}', "without a table"),
        (b'{"op": "d", "source": {"db": "x"}, "before": {"id": 1}}', "without a table"),
        (b'{"op": "r", "source": {"table": 5}, "after": {"id": 1}}', "without a table"),
        (b'{"op": "t", "source": {"db": "x"}}', "truncate event without a table"),
    ],
)
def test_not_debezium_is_undecodable_with_a_reason(value: bytes, reason: str) -> None:
    raw = RawRecord(key=b'{"id":1}', value=value, topic="t")
    result = decode(raw)
    assert isinstance(result, Undecodable)
    assert not isinstance(result, ControlRecord)  # malformed: the dead-letter topic's
    assert reason in result.reason
    assert result.raw is raw


def test_a_tombstone_is_a_null_value_and_a_logical_message_needs_no_table() -> None:
    # What Kafka Connect's JsonConverter writes for a null value: nothing (a real tombstone,
    # schemas enabled or not); before KAFKA-3832 it wrote a null schema and payload.
    for value in (None, b'{"schema":null,"payload":null}'):
        event = decoded(RawRecord(key=b'{"id":3}', value=value, topic="shop.public.products"))
        assert event.op is Op.TOMBSTONE
    message = decoded(
        record(
            {
                "op": "m",
                "source": {**SOURCE, "table": ""},
                "message": {"prefix": "p", "content": "aGk="},
            }
        )
    )
    assert message.op is Op.MESSAGE
    assert message.table is None


@pytest.mark.parametrize(
    ("value", "key", "kind"),
    [
        (b'{"ts_ms": 1700000000000}', {"serverName": "shop"}, RecordKind.HEARTBEAT),
        (
            b'{"status":"BEGIN","id":"571:2400","event_count":null,"data_collections":null,'
            b'"ts_ms":1}',
            {"id": "571:2400"},
            RecordKind.TRANSACTION_BEGIN,
        ),
        (
            b'{"status":"END","id":"0-1-9","event_count":2,"data_collections":[],"ts_ms":1}',
            {"id": "0-1-9"},
            RecordKind.TRANSACTION_END,
        ),
        (
            b'{"source":{"server":"shop"},"position":{"pos":4},"databaseName":"db","ddl":"x"}',
            None,
            RecordKind.SCHEMA_HISTORY,
        ),
        (
            b'{"source":{"db":"db"},"databaseName":"db","ddl":"x","tableChanges":[]}',
            {"databaseName": "db"},
            RecordKind.SCHEMA_CHANGE,
        ),
    ],
)
def test_records_of_other_kinds_are_classified(
    value: bytes, key: dict[str, Any] | None, kind: RecordKind
) -> None:
    result = decode(RawRecord(key=None if key is None else orjson.dumps(key), value=value))
    assert isinstance(result, ControlRecord)
    assert result.kind is kind
    assert kind.value in result.reason


def test_transaction_ids_are_one_per_source_transaction() -> None:
    assert transaction_block_id("571:2400") == "571"  # PostgreSQL: xid:lsn of the event
    assert transaction_block_id("0-1-9") == "0-1-9"  # MariaDB GTID
    gtid = "3E11FA47-71CA-11E1-9E33-C80AA9429562:23"  # MySQL GTID: kept whole
    assert transaction_block_id(gtid) == gtid
    ids = set()
    for lsn in (2400, 2560):
        payload = {
            **envelope({"id": 1}),
            "transaction": {"id": f"7:{lsn}", "total_order": 1, "data_collection_order": 1},
        }
        ids.add(decoded(record(payload)).transaction_id)
    assert ids == {"7"}


def test_decimal_text_is_plain_but_bounded() -> None:
    assert decimal_text(Decimal("-1.23E-10")) == "-0.000000000123"
    assert decimal_text(Decimal("19.90")) == "19.90"
    assert decimal_text(Decimal("1E+3")) == "1000"
    assert decimal_text(Decimal("NaN")) == "NaN"
    forged = Decimal("1E-1000000000")  # a scale no database has: not a billion zeros
    assert decimal_text(forged) == "1E-1000000000"
    assert json_default(Decimal("5E-7")) == "0.0000005"


def delete_of(before: dict[str, Any], schema: Any = None, connector: str = "postgresql") -> Any:
    payload = {"before": before, "after": None, "source": {**SOURCE, "connector": connector}}
    return decoded(record({**payload, "op": "d"}, key={"id": 1}, schema=schema))


@pytest.mark.parametrize(
    "fill_ins",
    [
        {"name": None, "sku": ""},
        {"qty": 0, "ratio": 0.0, "active": False, "price": "AA==", "cost": "0.00"},
        {"born": 0, "at": "1970-01-01T00:00:00Z", "opens": "00:00:00Z", "day": "1970-01-01Z"},
        {"tags": [], "attrs": {}, "doc": "{}", "weight": {"scale": 0, "value": "AA=="}},
    ],
)
def test_a_key_only_delete_without_schema(fill_ins: dict[str, Any]) -> None:
    event = delete_of({"id": 1, **fill_ins})
    assert event.key_only
    assert event.before == {"id": 1, **dict.fromkeys(fill_ins, UNAVAILABLE)}
    assert event.changed == ("id",)


def test_a_delete_with_values_is_a_whole_row() -> None:
    for before in ({"id": 1, "name": "x", "sku": ""}, {"id": 1, "qty": 2}, {"id": 1}):
        event = delete_of(before)
        assert not event.key_only
        assert event.before == before
    # MySQL/MariaDB always send the whole row (binlog_row_image=FULL): nulls are NULLs.
    assert not delete_of({"id": 1, "name": None}, connector="mariadb").key_only
    # Without the key column in `before`, nothing says which columns were sent.
    assert not decoded(record(envelope(None, {"pk": 1, "name": None}, "d"), key={"id": 1})).key_only


def test_a_key_only_delete_with_schema_checks_each_column() -> None:
    fields = [
        {"type": "int32", "optional": False, "field": "id"},
        {"type": "string", "optional": False, "field": "sku"},
        {"type": "string", "optional": False, "default": "A", "field": "status"},
        {"type": "string", "optional": True, "field": "name"},
    ]
    schema = schema_for(fields)
    key_only = delete_of({"id": 1, "sku": "", "status": "A", "name": None}, schema)
    assert key_only.key_only
    assert key_only.before == {
        "id": 1,
        "sku": UNAVAILABLE,
        "status": UNAVAILABLE,
        "name": UNAVAILABLE,
    }
    # An optional column's fill-in is null: "" there is a value, so the row is whole.
    whole = delete_of({"id": 1, "sku": "", "status": "A", "name": ""}, schema)
    assert not whole.key_only
    # A default other than the value: a value.
    assert not delete_of({"id": 1, "sku": "", "status": "D", "name": None}, schema).key_only


def test_tombstones() -> None:
    event = decoded(RawRecord(key=b'{"id":3}', value=None, topic="shop.public.products", offset=9))
    assert event.op is Op.TOMBSTONE
    assert event.key == {"id": 3}
    assert event.offset == 9
    assert event.table is not None
    assert event.table.qualified == "public.products"
    assert event.position is None
    assert event.snapshot is None
    assert isinstance(decode(RawRecord(key=None, value=None)), Undecodable)
    assert isinstance(decode(RawRecord(key=b"\xfe", value=None)), Undecodable)


def test_raw_record_from_a_confluent_kafka_message() -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    msg = confluent_kafka.Message(
        topic="t",
        partition=2,
        offset=5,
        key=b"k",
        value=None,
        headers=[("h", b"x")],
        timestamp=(1, 123),
    )
    raw = RawRecord.from_message(msg)
    assert raw == RawRecord(
        key=b"k",
        value=None,
        topic="t",
        partition=2,
        offset=5,
        timestamp_ms=123,
        headers=(("h", b"x"),),
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
debezium_like = st.fixed_dictionaries(
    {
        "op": st.sampled_from(["c", "u", "d", "r", "t", "m", "x", 1, None]),
        "source": json_values
        | st.fixed_dictionaries(
            {"table": json_values, "lsn": json_values, "snapshot": json_values}
        ),
        "before": json_values,
        "after": json_values | st.dictionaries(st.text(max_size=5), json_values, max_size=4),
    },
    optional={"ts_ms": json_values, "transaction": json_values, "message": json_values},
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200), st.one_of(st.none(), st.binary(max_size=50)))
def test_garbage_bytes_never_raise(value: bytes, key: bytes | None) -> None:
    result = decode(RawRecord(key=key, value=value))
    assert isinstance(result, ChangeEvent | Undecodable)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(json_values | debezium_like, json_values, st.booleans())
def test_arbitrary_json_never_raises(value: Any, key: Any, wrap_schema: bool) -> None:
    doc = {"schema": key, "payload": value} if wrap_schema else value
    result = decode(RawRecord(key=json.dumps(key).encode(), value=json.dumps(doc).encode()))
    assert isinstance(result, ChangeEvent | Undecodable)
    if isinstance(result, ChangeEvent):  # every derived property works too
        _ = (
            result.changed,
            result.position,
            result.snapshot,
            result.transaction_id,
            result.source_time,
        )


# Kafka's own test vectors (clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java).
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_murmur2_matches_the_java_client(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


def test_partition_for_key_is_positive_modulo() -> None:
    assert partition_for_key(b"21", 7) == (-973932308 & 0x7FFFFFFF) % 7
    assert {partition_for_key(str(i).encode(), 3) for i in range(50)} == {0, 1, 2}
    with pytest.raises(ValueError, match="positive"):
        partition_for_key(b"x", 0)

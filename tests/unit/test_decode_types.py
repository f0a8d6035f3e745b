"""Typed values from records without a schema: each column type's conversion in every
encoding Debezium can be set to, Raw for what cannot be typed, and the decoder using them."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Context, Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from seam.changes import UNAVAILABLE, ChangeEvent, Raw, RawRecord, TableRef
from seam.connectors.columns import captured_tables_of, mysql_column_type, postgres_column_type
from seam.streams.decode import decode
from seam.streams.types import ColumnType, Encoding, TableTypes, column_converter

pytestmark = pytest.mark.unit

PRECISE = Encoding()  # Debezium's defaults
STRING = Encoding(decimal="string")


def convert(column: ColumnType, value: Any, encoding: Encoding = PRECISE) -> Any:
    conv = column_converter(column, encoding)
    return value if conv is None else conv(value)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unscaled(n: int) -> str:
    return b64(n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big", signed=True))


# -- decimals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "sent"),
    [(PRECISE, "B88="), (STRING, "19.99"), (Encoding(decimal="double"), 19.99)],
)
def test_decimal_with_the_column_scale_in_every_mode(encoding: Encoding, sent: Any) -> None:
    value = convert(ColumnType("decimal", "numeric", scale=2), sent, encoding)
    assert value == Decimal("19.99")
    assert value.as_tuple().exponent == -2


def test_decimal_keeps_trailing_zeros_and_sign_and_width() -> None:
    column = ColumnType("decimal", "numeric", scale=4)
    assert str(convert(column, unscaled(200000))) == "20.0000"
    assert convert(column, unscaled(-5)) == Decimal("-0.0005")
    wide = 10**37 + 1
    assert str(convert(column, unscaled(wide))) == "1" + "0" * 32 + "0.0001"
    assert str(convert(column, 20.0, Encoding(decimal="double"))) == "20.0000"


def test_variable_scale_numeric_struct_and_string() -> None:
    column = ColumnType("decimal", "numeric", scale=None)
    assert convert(column, {"scale": 3, "value": unscaled(12345)}) == Decimal("12.345")
    assert convert(column, "12.345", STRING) == Decimal("12.345")


def test_precise_base64_without_a_scale_is_not_guessed() -> None:
    with pytest.raises(ValueError, match=r"decimal\.handling\.mode=precise"):
        convert(ColumnType("decimal", "numeric", scale=None), "B88=")


def test_postgres_money_uses_the_fraction_digits() -> None:
    column = postgres_column_type("money", money_digits=2)
    assert convert(column, unscaled(1999)) == Decimal("19.99")
    assert str(convert(column, "1234.5", STRING)) == "1234.50"  # money's string drops zeros
    assert str(convert(ColumnType("decimal", "numeric", scale=0), "123", STRING)) == "123"
    assert str(convert(ColumnType("decimal", "numeric", scale=2), "-0.05", STRING)) == "-0.05"


# -- time ----------------------------------------------------------------------------------


def test_date_from_days_and_iso() -> None:
    assert convert(ColumnType("date"), 19782) == date(2024, 2, 29)
    assert convert(ColumnType("date"), -1) == date(1969, 12, 31)
    assert convert(ColumnType("date"), "2024-02-29") == date(2024, 2, 29)


def test_time_by_precision_mode() -> None:
    column = ColumnType("time", "time", precision=3)
    us = ((13 * 60 + 5) * 60 + 7) * 1_000_000 + 123_000
    # PostgreSQL's TIME(3) arrives in ms even in adaptive_time_microseconds (Debezium 3.5)
    assert convert(column, us // 1000) == time(13, 5, 7, 123_000)
    assert convert(ColumnType("time", "time", precision=6), us) == time(13, 5, 7, 123_000)
    assert convert(column, us // 1000, Encoding(time_precision="adaptive")) == time(
        13, 5, 7, 123_000
    )
    assert convert(column, us // 1000, Encoding(time_precision="connect")) == time(
        13, 5, 7, 123_000
    )
    six = ColumnType("time", "time", precision=6)
    assert convert(six, us + 456, Encoding(time_precision="adaptive")) == time(13, 5, 7, 123_456)


def test_timetz_is_aware() -> None:
    value = convert(ColumnType("timetz"), "10:15:30.5Z")
    assert value == time(10, 15, 30, 500_000, tzinfo=UTC)


def test_timestamp_is_naive_in_micros_or_millis_as_the_column_says() -> None:
    six = ColumnType("timestamp", "timestamp", precision=6)
    three = ColumnType("timestamp", "datetime", precision=3)
    zero = ColumnType("timestamp", "datetime", precision=0)
    expected = datetime(2024, 3, 1, 8, 11, 12, 500_000)
    us = int((expected - datetime(1970, 1, 1)).total_seconds() * 1_000_000)
    assert convert(six, us) == expected
    assert convert(three, us // 1000) == expected
    assert convert(zero, us // 1000 - 500) == expected.replace(microsecond=0)
    assert convert(six, us // 1000, Encoding(time_precision="connect")) == expected
    assert convert(six, us).tzinfo is None


def test_timestamptz_is_aware_utc() -> None:
    value = convert(ColumnType("timestamptz"), "2024-03-01T08:11:12.5Z")
    assert value == datetime(2024, 3, 1, 8, 11, 12, 500_000, tzinfo=UTC)
    assert value.utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="without a zone"):
        convert(ColumnType("timestamptz"), "2024-03-01T08:11:12")


@pytest.mark.parametrize("unit", [1, 1000])
def test_timestamps_over_the_whole_range_equal_epoch_plus_timedelta(unit: int) -> None:
    import random

    column = ColumnType("timestamp", "timestamp", precision=6 if unit == 1 else 3)
    rng = random.Random(12)
    epoch = datetime(1970, 1, 1)
    lowest = (datetime(1, 1, 1) - epoch) // timedelta(microseconds=unit)
    highest = (datetime(9999, 12, 31, 23, 59, 59) - epoch) // timedelta(microseconds=unit)
    for v in [lowest, highest, -1, 0, 1, *(rng.randint(lowest, highest) for _ in range(3000))]:
        assert convert(column, v) == epoch + timedelta(microseconds=v * unit), v


def test_mysql_time_is_a_duration_negative_and_past_a_day() -> None:
    column = mysql_column_type("time", "time(6)", precision=6)
    assert convert(column, -3_600_000_000) == timedelta(hours=-1)
    assert convert(column, 838 * 3_600_000_000) == timedelta(hours=838)
    assert convert(column, 5_000, Encoding(time_precision="connect")) == timedelta(seconds=5)


def test_mysql_year_is_an_int() -> None:
    assert column_converter(mysql_column_type("year", "year(4)"), PRECISE) is None


def test_interval_numeric_and_iso() -> None:
    column = ColumnType("interval")
    assert convert(column, 90_061_000_000) == timedelta(days=1, hours=1, minutes=1, seconds=1)
    iso = Encoding(interval="string")
    assert convert(column, "P3DT4H5M6.5S", iso) == timedelta(
        days=3, hours=4, minutes=5, seconds=6.5
    )
    with pytest.raises(ValueError, match="months"):
        convert(column, "P1Y2M3D", iso)  # a month has no timedelta


# -- bytes, uuid, json, arrays -------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "sent"),
    [
        ("bytes", b64(b"\x00\xff\x10")),
        ("base64", b64(b"\x00\xff\x10")),
        ("base64-url-safe", base64.urlsafe_b64encode(b"\x00\xff\x10").decode()),
        ("hex", "00ff10"),
    ],
)
def test_bytes_in_every_binary_mode(mode: str, sent: str) -> None:
    assert convert(ColumnType("bytes", "bytea"), sent, Encoding(binary=mode)) == b"\x00\xff\x10"


def test_uuid_and_json() -> None:
    u = uuid.uuid4()
    assert convert(ColumnType("uuid"), str(u)) == u
    assert convert(ColumnType("json"), '{"a": [1, 2.5, null]}') == {"a": [1, 2.5, None]}


def test_arrays_convert_each_element_and_keep_nulls() -> None:
    dates = postgres_column_type("_date")
    assert convert(dates, [19782, None]) == [date(2024, 2, 29), None]
    texts = postgres_column_type("_text")
    assert column_converter(texts, PRECISE) is None
    nums = postgres_column_type("_numeric")
    assert convert(nums, ["1.50", "2"], STRING) == [Decimal("1.50"), Decimal("2")]


# -- type mapping --------------------------------------------------------------------------


def test_postgres_types() -> None:
    assert postgres_column_type("numeric", scale=2).scale == 2
    assert postgres_column_type("bit", length=1).kind == "bool"
    assert postgres_column_type("bit", length=8).kind == "bits"
    assert postgres_column_type("mood", enum=True).kind == "text"
    assert postgres_column_type("geometry").kind == "unknown"
    assert postgres_column_type("_int4").element == ColumnType("int", "int4")


def test_mysql_types() -> None:
    assert mysql_column_type("decimal", "decimal(10,2)", scale=2).kind == "decimal"
    assert mysql_column_type("datetime", "datetime(3)", precision=3).kind == "timestamp"
    assert mysql_column_type("timestamp", "timestamp").kind == "timestamptz"
    assert mysql_column_type("bit", "bit(1)").kind == "bool"
    assert mysql_column_type("bit", "bit(12)").kind == "bits"
    assert mysql_column_type("point", "point").kind == "unknown"


def test_captured_tables_of_a_connector_config() -> None:
    config = {"table.include.list": "public.products, shop\\.orders,public\\..*,seam_heartbeat"}
    assert captured_tables_of(config) == ["public.products", "shop.orders", "seam_heartbeat"]
    assert captured_tables_of({}) == []


def test_encoding_from_a_connector_config_defaults_to_debeziums() -> None:
    assert Encoding.from_config({}) == Encoding()
    config = {"decimal.handling.mode": "string", "time.precision.mode": "connect"}
    assert Encoding.from_config(config) == Encoding(decimal="string", time_precision="connect")


# -- the decoder ---------------------------------------------------------------------------

TABLE = TableRef("public", "things")
COLUMNS = {
    "id": ColumnType("int", "int4"),
    "price": ColumnType("decimal", "numeric", scale=2),
    "born": ColumnType("date", "date"),
    "seen": ColumnType("timestamp", "timestamp", precision=6),
    "blob": ColumnType("bytes", "bytea"),
    "name": ColumnType("text", "text"),
    "shape": ColumnType("unknown", "geometry"),
    "noon": ColumnType("time", "time", precision=6),
}


def record(after: dict[str, Any], before: dict[str, Any] | None = None, op: str = "c") -> RawRecord:
    source = {"connector": "postgresql", "db": "d", "schema": "public", "table": "things"}
    value = {"before": before, "after": after, "source": source, "op": op, "ts_ms": 1}
    return RawRecord(
        orjson.dumps({"id": after["id"] if after else before["id"]}),  # type: ignore[index]
        orjson.dumps(value),
        "p.public.things",
    )


ROW = {
    "id": 1,
    "price": "B88=",
    "born": 19782,
    "seen": 1709280672500000,
    "blob": b64(b"\x01\x02"),
    "name": "B88=",
    "shape": {"wkb": "AQ=="},
    "noon": 43_200_000_000,
}


def test_decoder_types_a_bare_record_with_table_types() -> None:
    event = decode(record(dict(ROW)), TableTypes({TABLE: COLUMNS}, PRECISE))
    assert isinstance(event, ChangeEvent)
    assert event.after is not None
    assert event.after == {
        "id": 1,
        "price": Decimal("19.99"),
        "born": date(2024, 2, 29),
        "seen": datetime(2024, 3, 1, 8, 11, 12, 500_000),
        "blob": b"\x01\x02",
        "name": "B88=",  # a text column is text, whatever it looks like
        "shape": Raw({"wkb": "AQ=="}, "column type geometry is not one seam types"),
        "noon": time(12),
    }


def test_values_that_do_not_fit_and_unknown_columns_are_raw() -> None:
    row = dict(ROW, noon=86_400_000_000, extra="x", seen=None)  # 24:00:00; a new column
    event = decode(record(row), TableTypes({TABLE: COLUMNS}, PRECISE))
    assert isinstance(event, ChangeEvent)
    assert event.after is not None
    assert isinstance(event.after["noon"], Raw)
    assert event.after["noon"].value == 86_400_000_000
    assert event.after["extra"] == Raw("x", event.after["extra"].why)
    assert "not in the types" in event.after["extra"].why
    assert event.after["seen"] is None
    assert Raw("x") != "x"


def test_unavailable_stays_unavailable_and_changed_columns_compare_typed() -> None:
    before = dict(ROW, blob="__debezium_unavailable_value")
    after = dict(ROW, blob="__debezium_unavailable_value", price=unscaled(2000))
    event = decode(record(after, before, "u"), TableTypes({TABLE: COLUMNS}, PRECISE))
    assert isinstance(event, ChangeEvent)
    assert event.after is not None
    assert event.after["blob"] is UNAVAILABLE
    assert event.after["price"] == Decimal("20.00")
    assert event.changed == ("price",)


def test_a_table_without_types_and_no_types_at_all_stay_as_sent() -> None:
    other = TableTypes({TableRef("public", "others"): COLUMNS}, PRECISE)
    for types in (other, None):
        event = decode(record(dict(ROW)), types)
        assert isinstance(event, ChangeEvent)
        assert event.after == ROW


def test_a_record_with_a_schema_is_typed_by_its_schema() -> None:
    schema = {
        "type": "struct",
        "fields": [
            {
                "type": "struct",
                "field": "after",
                "optional": True,
                "fields": [
                    {"type": "int32", "field": "id"},
                    {"type": "int32", "field": "born", "name": "io.debezium.time.Date"},
                ],
            }
        ],
    }
    source = {"connector": "postgresql", "db": "d", "schema": "public", "table": "things"}
    payload = {"after": {"id": 1, "born": 19782}, "source": source, "op": "c"}
    raw = RawRecord(b'{"id":1}', orjson.dumps({"schema": schema, "payload": payload}), "t")
    types = TableTypes({TABLE: {"id": COLUMNS["id"]}}, PRECISE)  # would mark born Raw
    event = decode(raw, types)
    assert isinstance(event, ChangeEvent)
    assert event.after == {"id": 1, "born": date(2024, 2, 29)}


def test_key_columns_are_typed_too() -> None:
    types = TableTypes({TABLE: {"id": ColumnType("uuid", "uuid")}}, PRECISE)
    u = uuid.uuid4()
    source = {"connector": "postgresql", "db": "d", "schema": "public", "table": "things"}
    value = {"after": {"id": str(u)}, "source": source, "op": "c"}
    raw = RawRecord(orjson.dumps({"id": str(u)}), orjson.dumps(value), "t")
    event = decode(raw, types)
    assert isinstance(event, ChangeEvent)
    assert event.key == {"id": u}
    assert event.after == {"id": u}


@given(st.integers(-(10**38), 10**38), st.integers(0, 12))
def test_precise_decimals_round_trip_any_unscaled_value_and_scale(n: int, scale: int) -> None:
    value = convert(ColumnType("decimal", "numeric", scale=scale), unscaled(n))
    assert value.as_tuple().exponent == -scale
    assert value == Decimal(n).scaleb(-scale, context=Context(prec=100))

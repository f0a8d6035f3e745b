"""Typed values as readers see them: types restricted to the columns a pipeline reads, the
text and JSON forms of every typed kind, filters on typed values, and the loader that finds a
topic's connector and reads its types again when a record carries a column they lack (the
database read stubbed: the real one is tests/integration/test_typed_values.py)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest

from seam.changes import ChangeEvent, Raw, RawRecord, TableRef
from seam.connectors import live_types
from seam.connectors.live_types import TopicTypes, TypesUnavailableError, connector_for_topic
from seam.errors import DatabaseError
from seam.settings import load_settings
from seam.streams.decode import decode
from seam.streams.filters import EventFilter, as_text, parse_where
from seam.streams.format import event_json, event_text, value_text
from seam.streams.types import NOT_READ, ColumnType, Encoding, TableTypes, duration_text

pytestmark = pytest.mark.unit

TABLE = TableRef("public", "things")
COLUMNS = {
    "id": ColumnType("int", "int4"),
    "price": ColumnType("decimal", "numeric", scale=2),
    "born": ColumnType("date", "date"),
    "seen": ColumnType("timestamp", "timestamp", precision=6),
    "blob": ColumnType("bytes", "bytea"),
    "name": ColumnType("text", "text"),
}
ROW = {
    "id": 1,
    "price": "B88=",
    "born": 19782,
    "seen": 1709280672500000,
    "blob": base64.b64encode(b"\x01\x02").decode(),
    "name": "B88=",
}
TYPES = TableTypes({TABLE: COLUMNS}, Encoding())


def record(
    after: dict[str, Any] | None,
    before: dict[str, Any] | None = None,
    op: str = "c",
    table: str = "things",
    topic: str = "p.public.things",
) -> RawRecord:
    source = {"connector": "postgresql", "db": "d", "schema": "public", "table": table}
    value = {"before": before, "after": after, "source": source, "op": op, "ts_ms": 1}
    row = after or before or {}
    return RawRecord(orjson.dumps({"id": row["id"]}), orjson.dumps(value), topic, 0, 7)


def decoded(raw: RawRecord, types: TableTypes | None) -> ChangeEvent:
    event = decode(raw, types)
    assert isinstance(event, ChangeEvent), event
    return event


# -- typing only the columns read ------------------------------------------------------------


def test_only_types_the_columns_read_and_never_hands_on_a_look_alike() -> None:
    event = decoded(record(dict(ROW)), TYPES.only(["price"]))
    assert event.after == {
        "id": 1,
        "price": Decimal("19.99"),
        "born": NOT_READ,  # days since 1970, not typed: not passed on as the int 19782
        "seen": NOT_READ,
        "blob": NOT_READ,
        "name": "B88=",  # text is exact as sent: left alone
    }


def test_only_per_table_and_key_columns_always_typed() -> None:
    types = TableTypes({TABLE: {**COLUMNS, "id": ColumnType("uuid", "uuid")}}, Encoding())
    u = uuid.uuid4()
    row = dict(ROW, id=str(u))
    before = dict(row, price=None, born=19000)
    event = decoded(record(row, before, "u"), types.only({"things": ["born"]}))
    assert event.key == {"id": u}
    assert event.after is not None
    assert event.before is not None
    assert event.after["born"] == date(2024, 2, 29)
    assert event.before["born"] == date(2022, 1, 8)
    assert event.after["price"] is NOT_READ
    assert event.before["price"] is NOT_READ  # NULL or not: not read
    assert event.after["id"] is NOT_READ  # not read in the row (the key has it)
    # a table the mapping does not name has no column typed
    assert decoded(record(dict(ROW)), TYPES.only({"others": ["born"]})).after == {
        **dict.fromkeys(("price", "born", "seen", "blob"), NOT_READ),
        "id": 1,
        "name": "B88=",
    }


def test_only_keeps_noticing_unknown_columns_and_with_columns_keeps_the_restriction() -> None:
    types = TYPES.only(["price"])
    event = decoded(record(dict(ROW, extra=5)), types)
    assert event.after is not None
    assert isinstance(event.after["extra"], Raw)
    assert types.missed == {(TABLE, "extra")}
    wider = types.with_columns({TABLE: {**COLUMNS, "extra": ColumnType("int", "int4")}})
    again = decoded(record(dict(ROW, extra=5)), wider)
    assert again.after is not None
    assert again.after["extra"] == 5
    assert again.after["born"] is NOT_READ
    assert wider.missed == set()


def test_a_table_without_types_is_noted_as_missed() -> None:
    types = TableTypes({}, Encoding())
    decoded(record(dict(ROW)), types)
    assert types.missed == {(TABLE, None)}


# -- text and JSON forms ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("19.90"), "19.90"),
        (Decimal("-0.000000000123"), "-0.000000000123"),
        (date(2024, 2, 29), "2024-02-29"),
        (time(13, 5, 7, 123000), "13:05:07.123000"),
        (time(10, 15, tzinfo=timezone(timedelta(hours=2))), "10:15:00+02:00"),
        (datetime(2024, 3, 1, 8, 11, 12, 654321), "2024-03-01T08:11:12.654321"),
        (datetime(2024, 3, 31, 1, 30, tzinfo=UTC), "2024-03-31T01:30:00+00:00"),
        (timedelta(days=3, hours=4, minutes=5, seconds=6, microseconds=500000), "P3DT4H5M6.5S"),
        (-timedelta(hours=1, minutes=2, seconds=3, microseconds=500000), "-PT1H2M3.5S"),
        (timedelta(0), "PT0S"),
        (uuid.UUID("6f1c1f9e-7a43-4bd5-9f5e-2d6a1c0b9e11"), "6f1c1f9e-7a43-4bd5-9f5e-2d6a1c0b9e11"),
        (b"\x00\xff\x10", "0x00ff10"),
        ({"a": [1, None]}, '{"a":[1,null]}'),
        ([date(2000, 1, 1), None], '["2000-01-01",null]'),
        (Raw("B88=", "column type point is not one seam types"), "raw:'B88='"),
        (Raw({"x": 1.5}, "?"), 'raw:{"x":1.5}'),
        (NOT_READ, "(not read: not typed)"),
    ],
)
def test_value_text_of_every_typed_kind(value: Any, text: str) -> None:
    assert value_text(value) == text


def test_duration_text_round_trips_through_timedelta() -> None:
    for td in (timedelta(microseconds=1), timedelta(hours=838, minutes=59, seconds=59)):
        assert duration_text(td) in ("PT0.000001S", "P34DT22H59M59S")
        assert duration_text(-td).startswith("-P")


def test_event_text_marks_raw_values_and_says_why() -> None:
    types = TableTypes({TABLE: {**COLUMNS, "shape": ColumnType("unknown", "point")}}, Encoding())
    text = event_text(decoded(record(dict(ROW, shape={"x": 1.5})), types))
    assert '+ shape = raw:{"x":1.5}' in text
    assert "    raw shape: column type point is not one seam types" in text
    assert "+ price = 19.99" in text
    assert "+ born = 2024-02-29" in text
    assert "+ blob = 0x0102" in text
    assert "+ name = 'B88='" in text


def test_event_json_of_typed_values() -> None:
    types = TableTypes(
        {
            TABLE: {
                **COLUMNS,
                "shape": ColumnType("unknown", "point"),
                "u": ColumnType("uuid", "uuid"),
                "t": ColumnType("duration", "time"),
            }
        },
        Encoding(),
    )
    u = uuid.uuid4()
    row = dict(ROW, shape={"x": 1.5}, u=str(u), t=-3_723_500_000)
    data = orjson.loads(event_json(decoded(record(row), types)))
    assert data["after"] == {
        "id": 1,
        "price": "19.99",
        "born": "2024-02-29",
        "seen": "2024-03-01T08:11:12.500000",
        "blob": "AQI=",  # base64 in JSON
        "name": "B88=",
        "shape": {"raw": {"x": 1.5}, "why": "column type point is not one seam types"},
        "u": str(u),
        "t": "-PT1H2M3.5S",
    }
    only = orjson.loads(event_json(decoded(record(dict(ROW)), TYPES.only(["price"]))))
    assert only["after"]["born"] == {"not_read": True}


def test_filters_match_typed_values_as_typed() -> None:
    u = uuid.UUID("6f1c1f9e-7a43-4bd5-9f5e-2d6a1c0b9e11")
    assert as_text(u) == str(u)
    assert as_text(timedelta(minutes=90)) == "PT1H30M"
    assert as_text(Raw("B88=")) == "B88="
    event = decoded(record(dict(ROW)), TYPES)
    assert EventFilter(where=parse_where(["price=19.99", "born=2024-02-29"])).matches(event)
    assert not EventFilter(where=parse_where(["price=B88="])).matches(event)


# -- the loader --------------------------------------------------------------------------------


PG = {
    "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
    "topic.prefix": "p",
    "database.hostname": "db.example",
    "database.port": "5432",
    "database.dbname": "d",
    "database.user": "cdc",
    "database.password": "plain-secret",
    "table.include.list": "public.things",
    "decimal.handling.mode": "precise",
}


def test_connector_for_topic_takes_the_longest_prefix_of_a_database_source() -> None:
    configs = {
        "short": PG,
        "long": {**PG, "topic.prefix": "p.public"},
        "sink": {"connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector"},
    }
    assert connector_for_topic("p.public.things", configs) == ("long", configs["long"])
    assert connector_for_topic("p.other.things", configs) == ("short", PG)
    assert connector_for_topic("pp.public.things", configs) is None
    assert connector_for_topic("catalog.product-events", configs) is None


class FakeConnect:
    def __init__(self, configs: dict[str, dict[str, str]]) -> None:
        self.configs = configs
        self.calls = 0

    def list_connectors(self, *, expand: bool = True) -> dict[str, Any]:
        self.calls += 1
        return {name: {"info": {"config": c}} for name, c in self.configs.items()}


@pytest.fixture
def database(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The database as read_column_types sees it (tables by name), and the reads made."""
    state: dict[str, Any] = {"tables": {"public.things": dict(COLUMNS)}, "reads": [], "down": False}

    def read(url: str, tables: Iterable[str], **options: Any) -> dict[TableRef, Any]:
        tables = list(tables)
        state["reads"].append(tables)
        if state["down"]:
            raise DatabaseError("connection refused", hint="start the database")
        found = {}
        for t in tables:
            if t in state["tables"]:
                schema, _, name = t.partition(".")
                found[TableRef(schema, name)] = state["tables"][t]
        return found

    monkeypatch.setattr(live_types, "read_column_types", read)
    return state


def test_topic_types_loads_once_per_connector_and_reloads_on_a_new_column(
    database: dict[str, Any],
) -> None:
    connect = FakeConnect({"pg": PG})
    problems: list[str] = []
    topics = TopicTypes(load_settings(env={}), client=connect, on_problem=problems.append)  # type: ignore[arg-type]
    topics.load("p.public.things")
    topics.load("p.public.things")
    assert connect.calls == 1
    assert database["reads"] == [["public.things"]]
    assert topics.connector_of("p.public.things") == "pg"

    # a column added since: read again, and the record decoded with it
    database["tables"]["public.things"] = {**COLUMNS, "added": ColumnType("date", "date")}
    event = topics.decode(record(dict(ROW, added=19782)))
    assert isinstance(event, ChangeEvent)
    assert event.after is not None
    assert event.after["added"] == date(2024, 2, 29)
    assert database["reads"][-1] == ["public.things"]

    # a column the database no longer has (old records): read again once, then Raw
    reads = len(database["reads"])
    for _ in range(3):
        event = topics.decode(record(dict(ROW, dropped="x")))
        assert isinstance(event, ChangeEvent)
        assert event.after is not None
        assert isinstance(event.after["dropped"], Raw)
    assert len(database["reads"]) == reads + 1

    # a table captured by a pattern: its types read on its first record
    database["tables"]["public.more"] = {"id": COLUMNS["id"], "born": COLUMNS["born"]}
    event = topics.decode(record({"id": 2, "born": 19782}, table="more"))
    assert isinstance(event, ChangeEvent)
    assert event.after == {"id": 2, "born": date(2024, 2, 29)}
    assert problems == []

    # the database down while reading again: one problem, values stay Raw, no crash
    database["down"] = True
    event = topics.decode(record(dict(ROW, later=1)))
    assert isinstance(event, ChangeEvent)
    assert event.after is not None
    assert isinstance(event.after["later"], Raw)
    assert len(problems) == 1
    assert "connection refused" in problems[0]
    assert "plain-secret" not in problems[0]


def test_topic_types_errors_name_the_cause(database: dict[str, Any]) -> None:
    settings = load_settings(env={})
    topics = TopicTypes(settings, client=FakeConnect({"pg": PG}))  # type: ignore[arg-type]
    with pytest.raises(TypesUnavailableError, match=r"topic\.prefix that q\.public\.x.*p \(pg\)"):
        topics.load("q.public.x")
    database["down"] = True
    with pytest.raises(TypesUnavailableError) as caught:
        topics.load("p.public.things")
    assert "connector 'pg'" in str(caught.value)
    assert "database d on db.example:5432" in str(caught.value)
    assert "connection refused" in str(caught.value)
    assert "plain-secret" not in str(caught.value)


def test_a_topic_not_loaded_decodes_untyped(database: dict[str, Any]) -> None:
    topics = TopicTypes(load_settings(env={}), client=FakeConnect({"pg": PG}))  # type: ignore[arg-type]
    event = topics.decode(record(dict(ROW)))
    assert isinstance(event, ChangeEvent)
    assert event.after == ROW

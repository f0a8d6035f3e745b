"""The sink side of the parity check without I/O: a state flattened as the JDBC sink writes
it, column values brought to the form the legacy state compares in, and a sink's table,
key and schema read from its rendered config."""

from __future__ import annotations

import datetime as dt
import json

import orjson
import pytest

from seam.connectors.connect_schema import value_schema
from seam.connectors.sink import STRING_CONVERTER
from seam.errors import ConfigError
from seam.migration.digest import canonical
from seam.migration.parity_legacy import LegacyCut
from seam.migration.parity_sink import SinkReader, SinkTable, _from_config, flatten, normal
from tests.unit.test_sink_spec import STATE

pytestmark = pytest.mark.unit

SCHEMA = value_schema(STATE, "here")


def config(**more: str) -> dict[str, str]:
    return {
        "topics": "shop.orders-latest",
        "collection.name.format": "orders",
        "primary.key.fields": "order_id",
        "value.converter.schema.content": json.dumps(SCHEMA),
        **more,
    }


def reader() -> SinkReader:
    return SinkReader(_from_config("orders-view", config(), "postgresql://h/db", "connect-x"))


def test_a_state_is_flattened_into_the_sinks_columns_without_nulls() -> None:
    state = {
        "order_id": 7,
        "status": "open",
        "total": {"amount": "9.90", "currency": "EUR"},
        "weight": 2,
        "note": None,
        "placed_at": "2026-03-04T05:06:07Z",
        "unknown": "not a column",
    }
    types = reader().types
    assert flatten(state, SCHEMA, types) == {
        "order_id": 7,
        "status": "open",
        "total_amount": "9.90",
        "total_currency": "EUR",
        "weight": 2.0,  # a double precision column: 2 and 2.0 are the same value
        "placed_at": "2026-03-04T05:06:07.000000Z",
    }


def test_a_timestamp_column_and_the_states_text_meet_in_one_form() -> None:
    column = "timestamp(6) with time zone"
    at = dt.datetime(2026, 3, 4, 6, 6, 7, 123456, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert normal(at, column) == normal("2026-03-04T05:06:07.123456Z", column)
    assert normal("not a time", column) == "not a time"  # left as it is: it differs
    assert normal(True, "double precision") is True


def test_the_legacy_cut_is_compared_as_flat_rows() -> None:
    sink = reader()
    cut = LegacyCut("lsn:0/1", states={"7": canonical({"order_id": 7, "status": "open"})})
    flat = sink.flat(cut)
    assert orjson.loads(flat.states["7"]) == {"order_id": 7, "status": "open"}
    assert sink.legacy_row(None) is None


def test_the_table_and_key_come_from_the_config() -> None:
    one = _from_config("v", config(**{"collection.name.format": "views.orders"}), "u", "g")
    assert (one.schema, one.table, one.qualified) == ("views", "orders", "views.orders")
    assert one.own_key is False
    composite = _from_config(
        "v",
        config(**{"primary.key.fields": "seam_key", "key.converter": STRING_CONVERTER}),
        "u",
        "g",
    )
    assert isinstance(composite, SinkTable)
    assert composite.own_key is True
    assert composite.topic == "shop.orders-latest"


def test_a_table_name_that_is_not_plain_sql_is_refused() -> None:
    with pytest.raises(ConfigError, match="not a plain SQL name"):
        _from_config("v", config(**{"collection.name.format": "${topic}"}), "u", "g")

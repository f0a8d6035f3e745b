"""Sink specs (`kind: jdbc-sink`): the Connect schema derived from a state JSON Schema, the
rendered JDBC sink config, and the password never shown (no I/O)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from seam.connectors.connect_schema import ZONED_TIMESTAMP, key_schema, value_schema
from seam.connectors.plan import check_plugins, make_plan
from seam.connectors.render import render
from seam.connectors.sink import (
    FLATTEN,
    SINK_CLASS,
    STRING_CONVERTER,
    RenderedSink,
    SinkSpec,
    table_ddl,
)
from seam.connectors.spec import LOCAL_SINK_PASSWORD, SecretRef, load_specs, parse_specs
from seam.errors import ConfigError
from seam.legacy_db.files import folder
from seam.secrets import MASK
from seam.settings import load_settings

pytestmark = pytest.mark.unit

SETTINGS = load_settings(env={})

STATE: dict[str, Any] = {
    "type": "object",
    "required": ["order_id", "status"],
    "additionalProperties": False,
    "properties": {
        "order_id": {"type": "integer", "minimum": 1},
        "status": {"type": "string", "enum": ["open", "shipped"]},
        "total": {
            "type": "object",
            "required": ["amount", "currency"],
            "properties": {
                "amount": {"type": "string", "pattern": "^-?\\d+\\.\\d{2}$"},
                "currency": {"const": "EUR"},
            },
        },
        "weight": {"type": ["number", "null"]},
        "gift": {"type": "boolean"},
        "placed_at": {"type": "string", "format": "date-time", "pattern": "Z$"},
        "due_on": {"type": "string", "format": "date"},
        "note": {"anyOf": [{"type": "string", "maxLength": 10}, {"type": "null"}]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "tier": {"enum": [1, 2, None]},
    },
}


def fields(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["field"]: f for f in schema["fields"]}


def test_the_state_schema_becomes_a_connect_struct_with_the_sinks_types() -> None:
    schema = value_schema(STATE, "here")
    assert schema["type"] == "struct"
    assert schema["optional"] is False
    got = fields(schema)
    assert list(got) == list(STATE["properties"])
    assert got["order_id"] == {"field": "order_id", "type": "int64", "optional": False}
    assert got["status"] == {"field": "status", "type": "string", "optional": False}
    # Decimals stay exact text: JsonConverter would read a Decimal's text as base64.
    total = fields(got["total"])
    assert got["total"]["type"] == "struct"
    assert got["total"]["optional"] is True
    assert total["amount"] == {"field": "amount", "type": "string", "optional": False}
    assert total["currency"]["type"] == "string"
    assert got["weight"] == {"field": "weight", "type": "float64", "optional": True}
    assert got["gift"]["type"] == "boolean"
    # A timestamp: Debezium's ZonedTimestamp, which the JDBC sink writes as timestamptz.
    assert got["placed_at"]["name"] == ZONED_TIMESTAMP
    assert got["placed_at"]["type"] == "string"
    assert "name" not in got["due_on"]
    assert got["due_on"]["type"] == "string"
    assert got["note"] == {"field": "note", "type": "string", "optional": True}
    assert got["tags"]["type"] == "array"
    assert got["tags"]["items"]["type"] == "string"
    assert got["tier"] == {"field": "tier", "type": "int64", "optional": True}


def test_a_key_field_is_typed_and_required() -> None:
    assert key_schema(STATE, "order_id", "here") == {"type": "int64", "optional": False}
    with pytest.raises(ConfigError, match="key field 'id' is not in the state schema"):
        key_schema(STATE, "id", "here")


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ({"type": "object"}, "object without declared properties"),
        ({}, "does not say its type"),
        ({"type": ["string", "integer"]}, "no single column type"),
        ({"enum": ["a", 1]}, "several types"),
        (
            {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
            "arrays of plain values",
        ),
    ],
)
def test_a_field_no_column_type_fits_is_an_error_naming_it(
    field: dict[str, Any], message: str
) -> None:
    state = {"type": "object", "properties": {"odd": field}}
    with pytest.raises(ConfigError, match=message) as caught:
        value_schema(state, "spec.yaml:1")
    assert "odd" in caught.value.message
    assert "spec.yaml:1" in caught.value.message


# -- specs -----------------------------------------------------------------------------------

PIPELINE = """\
name: orders
group: seam-transform-orders
inputs: [shop.public.orders]
stages:
  - use: decode
  - use: validate
    with: {schemas: schemas, state_schema: OrderState}
outputs:
  history: {topic: shop.order-events}
  latest: {topic: shop.orders-latest}
  dead_letter: {topic: shop.orders-dead-letter}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "orders.yaml").write_text(PIPELINE)
    schemas = tmp_path / "pipelines" / "schemas" / "OrderState"
    schemas.mkdir(parents=True)
    first = {**STATE, "properties": {"order_id": STATE["properties"]["order_id"]}}
    (schemas / "v1.json").write_text(json.dumps(first))
    (schemas / "v2.json").write_text(json.dumps(STATE))
    (tmp_path / "views").mkdir()
    return tmp_path


def sink(project: Path, extra: str = "", key: str = "key: [order_id]") -> RenderedSink:
    path = project / "views" / "orders.yaml"
    path.write_text(
        "name: orders-view\nkind: jdbc-sink\npipeline: ../pipelines/orders.yaml\n"
        "database: postgresql://admin:s3cret@db.example:5433/shop\ndbname: shop_view\n"
        f"{key}\n{extra}"
    )
    (spec,) = load_specs([path])
    assert isinstance(spec, SinkSpec)
    return render(spec, SETTINGS)


def test_a_sink_spec_renders_the_jdbc_sink_upserting_and_deleting_by_key(project: Path) -> None:
    rendered = sink(project, "table: orders\n")
    config = rendered.config
    assert config["connector.class"] == SINK_CLASS
    assert config["topics"] == "shop.orders-latest"
    # The target database, without the settings URL's credentials.
    assert config["connection.url"] == "jdbc:postgresql://db.example:5433/shop_view"
    assert "s3cret" not in json.dumps(config)
    assert config["connection.username"] == "seam_sink"
    assert config["connection.password"] == "${env:SEAM_SINK_PASSWORD}"
    assert config["insert.mode"] == "upsert"
    assert config["delete.enabled"] == "true"
    assert config["primary.key.mode"] == "record_key"  # what delete.enabled requires
    assert config["primary.key.fields"] == "order_id"
    assert config["schema.evolution"] == "basic"
    assert config["collection.name.format"] == "orders"
    # The newest state schema version (v2), given to the converter of schemaless records.
    assert config["value.converter.schemas.enable"] == "true"
    assert json.loads(config["value.converter.schema.content"]) == value_schema(STATE, "")
    key = json.loads(config["key.converter.schema.content"])
    assert key == {"type": "int64", "optional": False}
    # Nested objects become columns (total_amount); Flatten passes tombstones through.
    assert config["transforms.flatten.type"] == FLATTEN
    assert config["transforms.flatten.delimiter"] == "_"
    assert config["seam.managed"] == "true"


def test_a_string_key_is_read_as_text_and_a_composite_key_as_one_text_column(
    project: Path,
) -> None:
    by_status = sink(project, key="key: [status]").config
    assert by_status["key.converter"] == STRING_CONVERTER
    assert by_status["primary.key.fields"] == "status"
    assert "key.converter.schema.content" not in by_status
    composite = sink(project, "key_column: order_key\n", key="key: [order_id, status]").config
    assert composite["key.converter"] == STRING_CONVERTER
    assert composite["primary.key.fields"] == "order_key"


def test_the_sink_password_is_a_reference_and_never_shown(project: Path) -> None:
    rendered = sink(project, "password: {file: /etc/seam/sink.properties}\n")
    assert rendered.config["connection.password"] == "${file:/etc/seam/sink.properties:password}"
    with pytest.raises(ConfigError, match="must be a reference"):
        sink(project, "password: hunter2\n")
    with pytest.raises(ConfigError, match="written in clear"):
        sink(project, "overrides: {connection.password: hunter2}\n")
    # A plan against a live config holding a clear password shows the mask, never the value.
    clear = {**rendered.config, "connection.password": "hunter2"}
    live = {"orders-view": {"info": {"config": clear}}}
    plan = make_plan([rendered], live)
    (action,) = plan.actions
    (change,) = action.changes
    assert change.key == "connection.password"
    assert change.old == MASK
    assert "hunter2" not in json.dumps(plan.as_dict())
    # The local default, like the CDC user's: the stack's Connect worker has the same.
    assert SecretRef("env", "SEAM_SINK_PASSWORD").resolve({}).reveal() == LOCAL_SINK_PASSWORD


def test_an_applied_sink_plans_unchanged_and_a_new_state_field_as_an_update(
    project: Path,
) -> None:
    rendered = sink(project)
    live = {"orders-view": {"info": {"config": dict(rendered.config)}}}
    assert make_plan([rendered], live).actions[0].kind == "unchanged"
    schemas = project / "pipelines" / "schemas" / "OrderState"
    wider = {**STATE, "properties": {**STATE["properties"], "channel": {"type": "string"}}}
    (schemas / "v3.json").write_text(json.dumps(wider))
    (action,) = make_plan([sink(project)], live).actions
    assert action.kind == "update"
    assert [c.key for c in action.changes] == ["value.converter.schema.content"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("table: 'drop table; --'\n", "not a plain SQL name"),
        ("schema_evolution: always\n", "unknown schema_evolution"),
        ("tables: [x]\n", "tables"),
    ],
)
def test_a_bad_sink_spec_is_one_error_naming_the_key(
    project: Path, extra: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        sink(project, extra)


def test_a_sink_without_a_key_on_an_undeclared_pipeline_says_how_to_name_it(
    project: Path,
) -> None:
    with pytest.raises(ConfigError, match="declares no entity") as caught:
        sink(project, key="")
    assert caught.value.hint
    assert "key:" in caught.value.hint


def test_an_unknown_kind_is_an_error() -> None:
    with pytest.raises(ConfigError, match="unknown connector kind 'jdbc-source'"):
        parse_specs("name: x\nkind: jdbc-source\n", "spec.yaml")


def test_the_examples_products_view_renders_from_the_declared_catalog() -> None:
    (spec,) = load_specs([folder("views") / "catalog-products-view.yaml"])
    assert isinstance(spec, SinkSpec)
    config = render(spec, SETTINGS).config
    assert config["topics"] == "catalog.products-latest"
    assert config["primary.key.fields"] == "product_id"
    assert config["connection.url"].endswith("/catalog_view")
    columns = fields(json.loads(config["value.converter.schema.content"]))
    assert columns["product_id"]["optional"] is False
    assert columns["updated_at"]["name"] == ZONED_TIMESTAMP
    assert {f["field"] for f in columns["price"]["fields"]} == {"amount", "currency"}


def test_two_sinks_on_one_table_are_refused(project: Path) -> None:
    first = sink(project, "table: orders\n")
    other = project / "views" / "other.yaml"
    other.write_text(
        (project / "views" / "orders.yaml").read_text().replace("orders-view", "orders-copy")
    )
    (spec,) = load_specs([other])
    assert isinstance(spec, SinkSpec)
    second = render(spec, SETTINGS)
    with pytest.raises(ConfigError, match=r"collection\.name\.format=orders") as caught:
        make_plan([first, second], {})
    assert caught.value.hint
    assert "'table:'" in caught.value.hint
    # Another table of the same database is fine.
    other.write_text(other.read_text().replace("table: orders", "table: orders_copy"))
    (spec,) = load_specs([other])
    assert make_plan([first, render(spec, SETTINGS)], {}).actions[0].kind == "create"


def test_the_table_seam_creates_is_the_one_the_sink_would(project: Path) -> None:
    """prepare makes the table beforehand (a tombstone first fails Debezium 3.5's sink on a
    missing table): the sink's column types, flattened nested fields, the key NOT NULL."""
    ddl = table_ddl(sink(project, "table: shop.orders\n").spec)
    assert ddl.startswith("CREATE TABLE shop.orders (order_id bigint NOT NULL, ")
    assert "status text NOT NULL" in ddl
    # A nested field is as optional as the object around it.
    assert "total_amount text, total_currency text," in ddl
    assert "weight double precision, gift boolean," in ddl
    assert "placed_at timestamp(6) with time zone, due_on text," in ddl
    assert "tags text[], tier bigint" in ddl
    assert ddl.endswith(", PRIMARY KEY (order_id))")
    composite = table_ddl(sink(project, key="key: [order_id, status]").spec)
    assert composite.startswith("CREATE TABLE public.orders (seam_key text NOT NULL, ")
    assert composite.endswith(", PRIMARY KEY (seam_key))")


def test_a_column_the_sink_would_name_otherwise_is_refused(project: Path) -> None:
    schemas = project / "pipelines" / "schemas" / "OrderState"
    odd = {**STATE, "properties": {**STATE["properties"], "Gift Wrap": {"type": "boolean"}}}
    (schemas / "v3.json").write_text(json.dumps(odd))
    with pytest.raises(ConfigError, match="'Gift Wrap' is not a plain lower-case SQL name"):
        table_ddl(sink(project).spec)


class _Plugins:
    """A Connect client whose worker has the source plugins only (a stack from before)."""

    def plugins(self) -> list[dict[str, str]]:
        return [{"class": "io.debezium.connector.postgresql.PostgresConnector"}]


def test_a_connect_without_the_sink_plugin_says_how_to_get_it(project: Path) -> None:
    with pytest.raises(ConfigError, match="JdbcSinkConnector is not installed") as caught:
        check_plugins(_Plugins(), [sink(project)])  # type: ignore[arg-type]
    assert caught.value.hint
    assert "seam stack up --only connect" in caught.value.hint

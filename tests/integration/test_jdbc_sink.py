"""A `kind: jdbc-sink` spec applied to the real Connect: the example's products view (a
one-field key) and its stock levels (a composite key) written from latest topics into a
PostgreSQL database of their own, checked against the topics read to their end.

Each test makes its own topics, database, user and connectors (unique names) and removes
them all.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from seam.cli.main import app
from seam.connectors.client import ConnectClient
from seam.connectors.engine import connect, drop_database, with_database
from seam.connectors.sink import SINK_CLASS
from seam.kafka_config import client_config
from seam.legacy_db.files import export, folder
from seam.settings import Settings
from seam.streams.kafka import Kafka
from seam.transforms.declared.envelope import key_text
from seam.transforms.readback import compacted, read_to_end
from seam.transforms.schemas import CompiledSchemas, SchemaSet

pytestmark = pytest.mark.integration

RUNNER = CliRunner()
SETTLE_S = 90.0


def seam(*args: str) -> str:
    result = RUNNER.invoke(app, list(args))
    assert result.exit_code == 0, f"seam {' '.join(args)}: {result.output}"
    return result.output


@pytest.fixture
def connect_client(stack: Settings) -> ConnectClient:
    client = ConnectClient.from_settings(stack)
    if SINK_CLASS not in {p.get("class") for p in client.plugins()}:
        pytest.skip(
            f"the Connect cluster at {stack.connect_url} has no {SINK_CLASS} (a stack started "
            "before the JDBC sink bundle: restart its Connect with `seam stack up`)"
        )
    return client


@pytest.fixture
def topics(stack: Settings) -> Iterator[Callable[[str], str]]:
    """Makes compacted topics like a pipeline's latest topic; deletes them afterwards."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(client_config(stack.kafka))
    made: list[str] = []

    def make(name: str) -> str:
        future = admin.create_topics([NewTopic(name, 3, 1, config={"cleanup.policy": "compact"})])
        future[name].result(30)
        made.append(name)
        return name

    yield make
    if made:
        for future in admin.delete_topics(made).values():
            with contextlib.suppress(Exception):
                future.result(30)


@pytest.fixture
def target(stack: Settings, unique_name: Callable[[str], str]) -> Iterator[tuple[str, str]]:
    """(database, user) names for the views; both dropped afterwards (prepare makes them)."""
    from sqlalchemy import text

    dbname, user = unique_name("sink_db"), unique_name("sink_user")
    yield dbname, user
    admin = stack.database_url("postgres")
    drop_database(with_database(admin, dbname))
    with connect(admin, isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP ROLE IF EXISTS "{user}"'))


def remove(stack: Settings, name: str) -> None:
    """Delete the connector: `seam connectors delete` deletes its consumer group too."""
    output = seam("connectors", "delete", name)
    assert "note:" not in output, output
    with Kafka(stack.kafka) as kafka:
        groups = kafka.call("listing groups", kafka.admin.list_consumer_groups).result(30)
    assert f"connect-{name}" not in {g.group_id for g in groups.valid}


def write_spec(
    path: Path,
    name: str,
    pipeline: str,
    topic: str,
    dbname: str,
    user: str,
    table: str,
    *,
    pipelines: Path | None = None,
) -> Path:
    path.write_text(
        f"name: {name}\nkind: jdbc-sink\npipeline: {(pipelines or folder('pipelines')) / pipeline}\n"
        f"topic: {topic}\ndatabase: postgres\ndbname: {dbname}\nuser: {user}\n"
        f"password: {{env: SEAM_SINK_PASSWORD}}\ntable: {table}\n"
    )
    return path


def produce(stack: Settings, topic: str, records: list[tuple[str, dict[str, Any] | None]]) -> None:
    """Latest-topic records as the transform worker writes them: key text, state JSON or a
    tombstone."""
    from confluent_kafka import Producer

    producer = Producer(client_config(stack.kafka, {"enable.idempotence": True}))
    for key, state in records:
        value = None if state is None else orjson.dumps(state)
        producer.produce(topic, key=key.encode(), value=value)
    assert producer.flush(30) == 0


def flat(state: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A state as the sink's columns: nested objects flattened with '_'."""
    out: dict[str, Any] = {}
    for name, value in state.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{name}_"))
        else:
            out[f"{prefix}{name}"] = value
    return out


def as_text(value: Any) -> Any:
    """A column value comparable with the state's JSON: timestamps as UTC ISO text."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return value


def table_rows(url: str, table: str, key: str, *, own_key: bool) -> dict[str, Any]:
    """Key text -> the row's non-null columns; `own_key`: the key column holds the key text
    and is no field of the state (a composite key), so it is left out of the row."""
    from sqlalchemy import text

    with connect(url) as conn:
        exists = conn.execute(text("SELECT to_regclass(:t)"), {"t": table}).scalar()
        if exists is None:
            return {}
        rows = conn.execute(text(f"SELECT * FROM {table}")).mappings().all()
    found = {}
    for r in rows:
        row = {k: as_text(v) for k, v in r.items() if v is not None}
        found[str(row.pop(key) if own_key else row[key])] = row
    return found


def settle(
    stack: Settings, topic: str, url: str, table: str, key: str, *, own_key: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Poll the table until it equals the topic read to its end (or SETTLE_S passes)."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        view = compacted(read_to_end(stack.kafka, topic))
        want = {k.decode(): flat(v) for k, v in view.items()}
        got = table_rows(url, table, key, own_key=own_key)
        if got == want or time.monotonic() > deadline:
            return got, want
        time.sleep(1.0)


def product(pid: int, name: str, **extra: Any) -> dict[str, Any]:
    return {"product_id": pid, "sku": f"SKU-{pid}", "name": name, "status": "active", **extra}


def test_the_products_view_follows_the_latest_topic_upserting_and_deleting(
    stack: Settings,
    connect_client: ConnectClient,
    topics: Callable[[str], str],
    target: tuple[str, str],
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    dbname, user = target
    topic = topics(f"{unique_name('sinktest')}.products-latest")
    name = unique_name("products-view")
    spec = write_spec(tmp_path / "view.yaml", name, "catalog.yaml", topic, dbname, user, "products")
    schemas = CompiledSchemas(SchemaSet.load(folder("schemas")))
    at = "2026-03-04T05:06:07.123456Z"
    before: list[tuple[str, dict[str, Any] | None]] = [
        # A tombstone first (a product listed and delisted before the topic's retained
        # start): the sink fails on it unless its table exists, which prepare sees to.
        (key_text([9]), None),
        (key_text([1]), product(1, "Hammer", price={"amount": "12.50", "currency": "EUR"})),
        (key_text([2]), product(2, "Saw", category={"id": 7, "name": "Tools"}, created_at=at)),
        (key_text([3]), product(3, "Drill", supplier={"id": 4, "resolved": False})),
    ]
    for _key, state in before[1:]:
        assert schemas.errors("ProductState", state) == (2, []), state  # real ProductState values
    produce(stack, topic, before)
    seam("connectors", "prepare", "--yes", str(spec))
    try:
        applied = seam("connectors", "apply", "--wait", "--timeout", "120", str(spec))
        assert f"applied {name}: RUNNING" in applied
        # Applied: the plan has nothing left to do, and the password shows as its reference.
        assert "no changes" in seam("connectors", "plan", "--exit-code", str(spec))
        shown = seam("connectors", "render", str(spec))
        assert "${env:SEAM_SINK_PASSWORD}" in shown
        # An update (the price changes, the category goes), a delete, and a new product.
        produce(
            stack,
            topic,
            [
                (key_text([1]), product(1, "Hammer", price={"amount": "9.99", "currency": "EUR"})),
                (key_text([2]), product(2, "Saw", created_at=at, updated_at=at)),
                (key_text([3]), None),
                (key_text([4]), product(4, "Level", description="spirit level")),
            ],
        )
        view = with_database(stack.database_url("postgres"), dbname)
        got, want = settle(stack, topic, view, "products", "product_id")
        assert got == want
        assert sorted(got) == ["1", "2", "4"]  # 3 deleted by its tombstone
        assert got["1"]["price_amount"] == "9.99"
        assert "category_id" not in got["2"]
        # Its lag: the records of its topic it has not committed (Connect commits a sink's
        # offsets every offset.flush.interval.ms, 1 s on the local stack).
        deadline = time.monotonic() + 30
        while True:
            (status,) = json.loads(seam("connectors", "status", "-o", "json", name))
            if status["lag"] == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert status["lag"] == 0
        assert status["state"] == "RUNNING"
        assert [t["state"] for t in status["tasks"]] == ["RUNNING"]
        assert status["topics"] == [topic]
        assert not status["failures"]
    finally:
        remove(stack, name)
    assert name not in connect_client.list_connectors()


def test_a_new_state_field_becomes_a_column_once_applied(
    stack: Settings,
    connect_client: ConnectClient,
    topics: Callable[[str], str],
    target: tuple[str, str],
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    dbname, user = target
    export(tmp_path / "example")  # the example's pipelines and schemas, to add a version to
    topic = topics(f"{unique_name('sinktest')}.products-latest")
    name = unique_name("products-view")
    spec = write_spec(
        tmp_path / "view.yaml",
        name,
        "catalog.yaml",
        topic,
        dbname,
        user,
        "products",
        pipelines=tmp_path / "example" / "pipelines",
    )
    produce(stack, topic, [(key_text([1]), product(1, "Hammer"))])
    seam("connectors", "prepare", "--yes", str(spec))
    try:
        seam("connectors", "apply", "--wait", "--timeout", "120", str(spec))
        view = with_database(stack.database_url("postgres"), dbname)
        got, want = settle(stack, topic, view, "products", "product_id")
        assert got == want
        # ProductState v3: an optional field more (a backward compatible version).
        folder_v = tmp_path / "example" / "schemas" / "ProductState"
        v2 = orjson.loads((folder_v / "v2.json").read_bytes())
        v2["properties"]["tagline"] = {"type": "string", "maxLength": 80}
        (folder_v / "v3.json").write_bytes(orjson.dumps(v2))
        pending = RUNNER.invoke(app, ["connectors", "plan", "--exit-code", str(spec)])
        assert pending.exit_code == 2, pending.output
        assert "value.converter.schema.content" in pending.output
        seam("connectors", "apply", "--wait", "--timeout", "120", str(spec))
        produce(stack, topic, [(key_text([2]), product(2, "Saw", tagline="cuts"))])
        got, want = settle(stack, topic, view, "products", "product_id")
        assert got == want
        assert got["2"]["tagline"] == "cuts"
    finally:
        remove(stack, name)


def test_a_composite_key_is_one_text_key_column(
    stack: Settings,
    connect_client: ConnectClient,
    topics: Callable[[str], str],
    target: tuple[str, str],
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    dbname, user = target
    topic = topics(f"{unique_name('sinktest')}.stock-latest")
    name = unique_name("stock-view")
    spec = write_spec(tmp_path / "stock.yaml", name, "stock.yaml", topic, dbname, user, "stock")

    def level(pid: int, warehouse: str, quantity: int) -> tuple[str, dict[str, Any]]:
        state = {"product_id": pid, "warehouse": warehouse, "quantity": quantity}
        return key_text([pid, warehouse]), state

    produce(stack, topic, [level(1, "BER", 5), level(1, "HAM", 2), level(2, "BER", 0)])
    seam("connectors", "prepare", "--yes", str(spec))
    try:
        seam("connectors", "apply", "--wait", "--timeout", "120", str(spec))
        produce(stack, topic, [level(1, "BER", 4), (key_text([1, "HAM"]), None)])
        view = with_database(stack.database_url("postgres"), dbname)
        got, want = settle(stack, topic, view, "stock", "seam_key", own_key=True)
        assert got == want
        assert sorted(got) == ['[1,"BER"]', '[2,"BER"]']
        assert got['[1,"BER"]']["quantity"] == 4
    finally:
        remove(stack, name)


def test_preflight_names_a_missing_topic_and_database(
    stack: Settings,
    connect_client: ConnectClient,
    target: tuple[str, str],
    tmp_path: Path,
) -> None:
    dbname, user = target
    missing = f"sinktest_{uuid.uuid4().hex[:10]}.absent-latest"
    spec = write_spec(tmp_path / "v.yaml", "never-made", "catalog.yaml", missing, dbname, user, "t")
    result = RUNNER.invoke(app, ["connectors", "preflight", str(spec)])
    assert result.exit_code == 1
    assert f"topic '{missing}' does not exist" in result.output
    assert f"database '{dbname}' does not exist" in result.output
    assert f'CREATE DATABASE "{dbname}" OWNER "{user}"' in result.output
    assert "seam-sink-local" not in result.output

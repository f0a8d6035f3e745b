"""The decoder's honesty on records the real Debezium connectors write, through `seam streams`
and a transform worker: one transaction id per source transaction (PostgreSQL and MariaDB
with provide.transaction.metadata=true), key-only deletes under REPLICA IDENTITY DEFAULT,
tiny decimals, tombstones, heartbeats, transaction and schema-change records; and seam's own
domain-event topics (plain text keys) in `streams history` and `tail --key`."""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
import yaml
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from seam.kafka_config import client_config
from seam.settings import Settings
from seam.streams.kafka import Kafka
from seam.streams.partitioner import partition_for_key
from seam.transforms.topics import delete_group
from tests.conftest import start_transform_worker
from tests.integration.test_streams_live import _connect, _count, _wait_count, _wait_running, run

pytestmark = pytest.mark.integration

SEAM = str(Path(sys.executable).with_name("seam"))


def json_lines(settings: Settings, *args: str) -> list[dict[str, Any]]:
    out = run(settings, "streams", "tail", *args, "--output", "json")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _drop_connector(settings: Settings, name: str) -> None:
    _connect(settings, "PUT", f"/connectors/{name}/stop")
    for _ in range(20):
        r = _connect(settings, "DELETE", f"/connectors/{name}/offsets")
        if r.ok or r.status_code == 404:
            break
        time.sleep(1)
    _connect(settings, "DELETE", f"/connectors/{name}")


def _drop_topics(settings: Settings, prefix: str) -> None:
    admin = AdminClient(client_config(settings.kafka_bootstrap_servers))
    doomed = [t for t in admin.list_topics(timeout=10).topics if prefix in t]
    if doomed:
        for future in admin.delete_topics(doomed).values():
            with contextlib.suppress(Exception):
                future.result()


def _converters(schemas: bool) -> dict[str, str]:
    return {
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": str(schemas).lower(),
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": str(schemas).lower(),
        "topic.creation.default.replication.factor": "1",
        "topic.creation.default.partitions": "1",
        "provide.transaction.metadata": "true",
        "heartbeat.interval.ms": "500",
    }


@dataclass
class PgCapture:
    settings: Settings
    prefix: str
    schema: str
    topic: str  # the DEFAULT-identity table's change topic
    txid: int  # the PostgreSQL xid of the three-change transaction


@contextlib.contextmanager
def pg_capture(stack: Settings, schemas: bool) -> Iterator[PgCapture]:
    suffix = uuid.uuid4().hex[:8]
    schema = prefix = f"seam_dl_{suffix}"
    name = f"seam-dl-{suffix}"
    pg = psycopg.connect(stack.database_url("postgres"), autocommit=True)
    pg.execute(f"CREATE SCHEMA {schema}")
    # REPLICA IDENTITY DEFAULT (PostgreSQL's default): deletes carry the key only.
    pg.execute(
        f"CREATE TABLE {schema}.items (id int PRIMARY KEY, sku text NOT NULL,"
        " qty int NOT NULL, added timestamp NOT NULL, note text, weight numeric)"
    )
    config = {
        **_converters(schemas),
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "database.hostname": stack.stack.host,
        "database.port": str(stack.stack.postgres_port),
        "database.user": "postgres",
        "database.password": "seam-local",
        "database.dbname": "catalog",
        "plugin.name": "pgoutput",
        "slot.name": prefix,
        "publication.name": prefix,
        "publication.autocreate.mode": "filtered",
        "table.include.list": f"{schema}\\.items",
        "topic.prefix": prefix,
        "decimal.handling.mode": "precise",
    }
    topic = f"{prefix}.{schema}.items"
    try:
        r = _connect(stack, "PUT", f"/connectors/{name}/config", json=config)
        assert r.ok, r.text
        _wait_running(stack, name)
        with pg.transaction():
            for i in (1, 2):
                pg.execute(
                    f"INSERT INTO {schema}.items VALUES (%s, %s, 5, now(), 'n', -0.000000000123)",
                    (i, f"SKU-{i}"),
                )
            pg.execute(f"UPDATE {schema}.items SET qty = 6 WHERE id = 2")
            txid = int(pg.execute("SELECT txid_current()").fetchone()[0]) % 2**32  # type: ignore[index]
        pg.execute(f"DELETE FROM {schema}.items WHERE id = 1")  # delete + tombstone
        _wait_count(stack.kafka_bootstrap_servers, topic, 5)
        _wait_count(stack.kafka_bootstrap_servers, f"{prefix}.transaction", 4)
        yield PgCapture(stack, prefix, schema, topic, txid)
    finally:
        _drop_connector(stack, name)
        for _ in range(15):
            try:
                pg.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                    " WHERE slot_name = %s",
                    (prefix,),
                )
                break
            except psycopg.Error:
                time.sleep(1)
        pg.execute(f"DROP PUBLICATION IF EXISTS {prefix}")
        pg.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        pg.close()
        _drop_topics(stack, prefix)


@pytest.fixture(scope="module", params=[False, True], ids=["bare", "schema"])
def pg_captured(request: pytest.FixtureRequest, stack: Settings) -> Iterator[PgCapture]:
    with pg_capture(stack, schemas=request.param) as captured:
        yield captured


def test_postgres_one_transaction_id_per_transaction(pg_captured: PgCapture) -> None:
    cap = pg_captured
    events = json_lines(cap.settings, cap.topic, "--from", "beginning")
    changes = [e for e in events if e["op"] in ("create", "update")]
    assert [e["op"] for e in changes] == ["create", "create", "update"]
    assert {e["transaction_id"] for e in changes} == {str(cap.txid)}
    delete = next(e for e in events if e["op"] == "delete")
    assert delete["transaction_id"] not in (None, str(cap.txid))
    # The transaction topic's BEGIN and END of it carry the same id, by kind.
    records = json_lines(cap.settings, f"{cap.prefix}.transaction", "--from", "beginning")
    kinds = {r["kind"] for r in records if r.get("transaction_id") == str(cap.txid)}
    assert kinds == {"transaction BEGIN", "transaction END"}
    end = next(
        r for r in records if r["kind"] == "transaction END" and r["value"]["event_count"] == 3
    )
    assert end["transaction_id"] == str(cap.txid)


def test_postgres_key_only_delete_is_unknown_not_values(pg_captured: PgCapture) -> None:
    cap = pg_captured
    events = json_lines(cap.settings, cap.topic, "--from", "beginning", "--key", "1")
    assert [e["op"] for e in events] == ["create", "delete", "tombstone"]
    delete, tombstone = events[1], events[2]
    assert delete["changed"] == ["id"]  # not sku, qty, added, note, weight
    assert delete["before"]["id"] == 1
    # Debezium sent "" for sku, 0 for qty and added, null for the rest: none is a value.
    assert {k: v for k, v in delete["before"].items() if k != "id"} == dict.fromkeys(
        ("sku", "qty", "added", "note", "weight"), "__debezium_unavailable_value"
    )
    assert tombstone["table"] == delete["table"] == f"{cap.schema}.items"
    text = run(cap.settings, "streams", "tail", cap.topic, "--from", "beginning", "--op", "d")
    assert "- id=1  (only the key was sent" in text
    # --where never takes an unknown for a value.
    assert (
        json_lines(cap.settings, cap.topic, "--from", "beginning", "--op", "d", "--where", "sku=")
        == []
    )


def test_postgres_tiny_decimal_in_plain_notation(pg_captured: PgCapture) -> None:
    cap = pg_captured
    found = json_lines(
        cap.settings, cap.topic, "--from", "beginning", "--where", "weight=-0.000000000123"
    )
    assert [e["key"]["id"] for e in found] == [1, 2, 2]
    assert found[0]["after"]["weight"] == "-0.000000000123"
    text = run(cap.settings, "streams", "tail", cap.topic, "--from", "beginning", "--key", "2")
    assert "-0.000000000123" in text
    assert "E-10" not in text


def test_heartbeats_show_by_kind(pg_captured: PgCapture) -> None:
    cap = pg_captured
    topic = f"__debezium-heartbeat.{cap.prefix}"
    _wait_count(cap.settings.kafka_bootstrap_servers, topic, 1, timeout=30)
    (beat,) = json_lines(cap.settings, topic, "--from", "beginning", "-n", "1")
    assert beat["kind"] == "heartbeat"
    assert beat["key"] == {"serverName": cap.prefix}
    text = run(cap.settings, "streams", "tail", topic, "-n", "1")
    assert text.startswith(f"heartbeat  {cap.prefix}  ")


def test_a_pipeline_counts_other_records_by_kind_and_dead_letters_malformed(
    pg_captured: PgCapture, tmp_path: Path
) -> None:
    """A pipeline reading the transaction and heartbeat topics next to the change topic and
    a topic with two malformed envelopes: kinds are counted, malformed dead-lettered."""
    cap = pg_captured
    bootstrap = cap.settings.kafka_bootstrap_servers
    poison = f"{cap.prefix}.poison"
    admin = AdminClient(client_config(bootstrap))
    admin.create_topics([NewTopic(poison, 1, 1)])[poison].result(timeout=30)
    producer = Producer(client_config(bootstrap))
    producer.produce(poison, b'{"schema":{},"payload":null}', b'{"id":1}')
    producer.produce(poison, b'{"op":"c","source":{"db":"x"},"after":{"id":1}}', b'{"id":1}')
    producer.flush(30)
    heartbeats = f"__debezium-heartbeat.{cap.prefix}"
    inputs = [cap.topic, f"{cap.prefix}.transaction", heartbeats, poison]
    spec = {
        "name": "kinds",
        "group": f"{cap.prefix}-kinds",
        "inputs": inputs,
        "stages": [{"use": "decode"}],
        "outputs": {
            "history": {"topic": f"{cap.prefix}.out-history", "partitions": 1},
            "latest": {"topic": f"{cap.prefix}.out-latest", "partitions": 1},
            "dead_letter": {"topic": f"{cap.prefix}.out-dead-letter", "partitions": 1},
        },
    }
    path = tmp_path / "kinds.yaml"
    path.write_text(yaml.safe_dump(spec))
    in_before = sum(_count(bootstrap, t) for t in inputs)
    worker = start_transform_worker(path, "kinds", "--until-caught-up", "-o", "json")
    try:
        out, err = worker.communicate(timeout=180)
    finally:
        if worker.poll() is None:
            worker.kill()
        with contextlib.suppress(Exception), Kafka(bootstrap) as kafka:
            delete_group(kafka, spec["group"])  # type: ignore[arg-type]
    assert worker.returncode == 0, err.decode()[-2000:]
    summary = json.loads(out)
    assert summary["balanced"] is True
    assert summary["records_in"] >= in_before
    assert summary["dead_lettered"] == 2
    no_event = summary["no_event"]
    assert no_event["transaction BEGIN record"] >= 2
    assert no_event["transaction END record"] >= 2
    assert no_event["heartbeat record"] >= 1
    assert no_event["no event"] >= 5  # decode alone: c, c, u, d and the tombstone
    # The dead letters, in text and JSON, say which stage refused them and why.
    dead = f"{cap.prefix}.out-dead-letter"
    text = run(cap.settings, "streams", "tail", dead, "--from", "beginning")
    assert "header seam.stage: decode" in text
    assert "header seam.reason: envelope with a schema but a null payload" in text
    assert "create event without a table" in text
    letters = json_lines(cap.settings, dead, "--from", "beginning")
    assert [r["headers"]["seam.stage"] for r in letters] == ["decode", "decode"]
    assert all(r["key"] == '{"id":1}' for r in letters)


@contextlib.contextmanager
def mariadb_capture(stack: Settings) -> Iterator[tuple[str, str]]:
    """A MariaDB table captured with transaction metadata and schema changes; a
    transaction of three changes and an ALTER TABLE. Yields (topic prefix, database)."""
    suffix = uuid.uuid4().hex[:8]
    db = prefix = f"seam_dl_my_{suffix}"
    name = f"seam-dl-my-{suffix}"
    my = pymysql.connect(
        host=stack.stack.host,
        port=stack.stack.mariadb_port,
        user="root",
        password="seam-local",
        autocommit=True,
    )
    cur = my.cursor()
    cur.execute(f"CREATE DATABASE {db}")
    cur.execute(f"CREATE TABLE {db}.items (id int PRIMARY KEY, name varchar(20))")
    config = {
        **_converters(True),
        "connector.class": "io.debezium.connector.mariadb.MariaDbConnector",
        "database.hostname": stack.stack.host,
        "database.port": str(stack.stack.mariadb_port),
        "database.user": "root",
        "database.password": "seam-local",
        "database.server.id": str(random.randint(100_000, 900_000)),
        "database.include.list": db,
        "table.include.list": f"{db}\\.items",
        "topic.prefix": prefix,
        "schema.history.internal.kafka.bootstrap.servers": stack.kafka_bootstrap_servers,
        "schema.history.internal.kafka.topic": f"{prefix}.schema-history",
        "schema.history.internal.store.only.captured.databases.ddl": "true",
        "schema.history.internal.store.only.captured.tables.ddl": "true",
        "include.schema.changes": "true",
        "snapshot.locking.mode": "none",
    }
    try:
        r = _connect(stack, "PUT", f"/connectors/{name}/config", json=config)
        assert r.ok, r.text
        _wait_running(stack, name)
        my.begin()
        cur.execute(f"INSERT INTO {db}.items VALUES (1, 'a'), (2, 'b')")
        cur.execute(f"UPDATE {db}.items SET name = 'c' WHERE id = 2")
        my.commit()
        cur.execute(f"ALTER TABLE {db}.items ADD COLUMN qty int")
        cur.execute(f"INSERT INTO {db}.items VALUES (3, 'd', 1)")
        _wait_count(stack.kafka_bootstrap_servers, f"{prefix}.{db}.items", 4)
        yield prefix, db
    finally:
        _drop_connector(stack, name)
        cur.execute(f"DROP DATABASE IF EXISTS {db}")
        my.close()
        _drop_topics(stack, prefix)


def test_mariadb_transactions_and_schema_changes(stack: Settings) -> None:
    with mariadb_capture(stack) as (prefix, db):
        topic = f"{prefix}.{db}.items"
        events = json_lines(stack, topic, "--from", "beginning")
        assert [e["op"] for e in events] == ["create", "create", "update", "create"]
        ids = [e["transaction_id"] for e in events]
        assert len(set(ids[:3])) == 1  # the GTID of the three-change transaction
        assert ids[3] != ids[0]
        records = json_lines(stack, f"{prefix}.transaction", "--from", "beginning")
        assert {r["kind"] for r in records if r["transaction_id"] == ids[0]} == {
            "transaction BEGIN",
            "transaction END",
        }
        changes = json_lines(stack, prefix, "--from", "beginning")
        assert {r["kind"] for r in changes} == {"schema change"}
        assert any("ADD COLUMN qty" in r["value"]["ddl"] for r in changes)
        text = run(stack, "streams", "tail", prefix, "--from", "beginning")
        assert f"schema change  {db}  " in text
        history = json_lines(stack, f"{prefix}.schema-history", "--from", "beginning")
        assert history
        assert {r["kind"] for r in history} == {"schema history"}


def test_domain_event_topics_in_history_and_tail_by_plain_key(stack: Settings) -> None:
    """As a transform worker writes them: key = the entity id as text, murmur2 partitions."""
    topic = f"seam_dl_events_{uuid.uuid4().hex[:8]}.product-events"
    bootstrap = stack.kafka_bootstrap_servers
    admin = AdminClient(client_config(bootstrap))
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(timeout=30)
    try:
        producer = Producer(client_config(bootstrap, {"partitioner": "murmur2_random"}))
        for n in range(31):
            pid = n % 10 + 1 if n < 30 else 11
            event = {"event_type": "ProductRenamed", "product_id": pid, "data": {"n": n}}
            headers = [("seam.event_type", b"ProductRenamed")]
            producer.produce(topic, json.dumps(event).encode(), str(pid).encode(), headers=headers)
        producer.flush(30)
        _wait_count(bootstrap, topic, 31)
        out = run(stack, "streams", "history", topic, "4", "-o", "json")
        found = [json.loads(line) for line in out.splitlines()]
        assert [r["value"]["data"]["n"] for r in found] == [3, 13, 23]
        assert {r["key"] for r in found} == {"4"}
        assert {r["partition"] for r in found} == {partition_for_key(b"4", 3)}
        text = subprocess.run(
            [SEAM, "--kafka", bootstrap, "streams", "history", topic, "4"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert text.returncode == 0, text.stderr
        assert "key 4  3 records (" in text.stdout
        assert "1 partition " in text.stdout  # only the key's partition was read
        assert "note:" not in text.stderr
        tailed = json_lines(stack, topic, "--from", "beginning", "--key", "4")
        assert [r["value"]["data"]["n"] for r in tailed] == [3, 13, 23]
        one = subprocess.run(
            [SEAM, "--kafka", bootstrap, "streams", "history", topic, "11"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "key 11  1 record (" in one.stdout  # not "1 records"
    finally:
        admin.delete_topics([topic])[topic].result(timeout=30)


def test_list_keeps_topic_names_whole_in_80_columns(pg_captured: PgCapture) -> None:
    cap = pg_captured
    env = {**os.environ, "COLUMNS": "80", "TTY_COMPATIBLE": "1", "NO_COLOR": "1"}
    for args in (("streams", "list", "--prefix", cap.prefix), ("streams", "lag")):
        result = subprocess.run(
            [SEAM, "--kafka", cap.settings.kafka_bootstrap_servers, *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert result.returncode == 0, result.stderr
        assert "…" not in result.stdout
    listed = subprocess.run(
        [
            SEAM,
            "--kafka",
            cap.settings.kafka_bootstrap_servers,
            "streams",
            "list",
            "--prefix",
            cap.prefix,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    ).stdout
    assert cap.topic in listed
    assert f"{cap.prefix}.transaction" in listed

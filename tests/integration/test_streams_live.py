"""`seam streams` against the real stack: a PostgreSQL table captured by a real Debezium
connector into a 3-partition topic, then tail filters, history, list and lag checked
against the changes the test made."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from typer.testing import CliRunner

from seam.cli.main import app
from seam.kafka_config import client_config
from seam.settings import Settings
from seam.streams.history import key_history
from seam.streams.kafka import Kafka
from seam.streams.partitioner import partition_for_key

pytestmark = pytest.mark.integration

SEAM = str(Path(sys.executable).with_name("seam"))
PARTITIONS = 3


@dataclass
class Captured:
    settings: Settings
    prefix: str
    topic: str
    table: str  # schema.products
    mark: datetime  # between the first and second batch of changes
    total: int


def _connect(settings: Settings, method: str, path: str, **kwargs: Any) -> requests.Response:
    for _ in range(30):
        r = requests.request(
            method,
            f"{settings.connect_url}{path}",
            auth=settings.connect_auth(),
            timeout=30,
            **kwargs,
        )
        if r.status_code != 409:
            return r
        time.sleep(1)
    return r


def _wait_running(settings: Settings, name: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        r = _connect(settings, "GET", f"/connectors/{name}/status")
        if r.ok:
            body = r.json()
            tasks = body.get("tasks", [])
            if any(t["state"] == "FAILED" for t in tasks):
                pytest.fail(f"connector {name} failed: {tasks[0].get('trace', '')[:1500]}")
            if body["connector"]["state"] == "RUNNING" and tasks and tasks[0]["state"] == "RUNNING":
                return
        time.sleep(1)
    pytest.fail(f"connector {name} not RUNNING after 90s")


def _count(bootstrap: str, topic: str) -> int:
    consumer = Consumer(client_config(bootstrap, {"group.id": "seam-test-probe"}))
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            return 0
        total = 0
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


def _wait_count(bootstrap: str, topic: str, expected: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _count(bootstrap, topic) >= expected:
            return
        time.sleep(0.5)
    pytest.fail(f"{topic} has {_count(bootstrap, topic)} records, expected {expected}")


@contextlib.contextmanager
def capture(stack: Settings, *, schemas: bool) -> Iterator[Captured]:
    """A table with known changes, captured by a real Debezium connector into a
    3-partition topic; JSON with or without embedded schemas."""
    import uuid

    suffix = uuid.uuid4().hex[:8]
    schema = f"seam_st_{suffix}"
    prefix = f"seam_st_{suffix}"
    name = f"seam-st-{suffix}"
    pg = psycopg.connect(stack.database_url("postgres"), autocommit=True)
    pg.execute(f"CREATE SCHEMA {schema}")
    pg.execute(
        f"CREATE TABLE {schema}.products (id int PRIMARY KEY, name text NOT NULL,"
        " price numeric(10,2), status text NOT NULL)"
    )
    pg.execute(f"ALTER TABLE {schema}.products REPLICA IDENTITY FULL")
    for i in range(1, 6):
        pg.execute(
            f"INSERT INTO {schema}.products VALUES (%s, %s, %s, 'active')",
            (i, f"product {i}", f"{i}.50"),
        )
    config = {
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
        "table.include.list": f"{schema}\\.products",
        "topic.prefix": prefix,
        "decimal.handling.mode": "precise" if schemas else "string",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": str(schemas).lower(),
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": str(schemas).lower(),
        "topic.creation.default.replication.factor": "1",
        "topic.creation.default.partitions": str(PARTITIONS),
    }
    topic = f"{prefix}.{schema}.products"
    try:
        r = _connect(stack, "PUT", f"/connectors/{name}/config", json=config)
        assert r.ok, r.text
        _wait_running(stack, name)
        _wait_count(stack.kafka_bootstrap_servers, topic, 5)
        pg.execute(f"INSERT INTO {schema}.products VALUES (6, 'product 6', 6.50, 'active')")
        pg.execute(f"INSERT INTO {schema}.products VALUES (7, 'product 7', 7.50, 'active')")
        pg.execute(f"UPDATE {schema}.products SET price = 1.99 WHERE id = 1")
        pg.execute(f"UPDATE {schema}.products SET status = 'inactive' WHERE id = 2")
        pg.execute(f"DELETE FROM {schema}.products WHERE id = 3")  # delete + tombstone
        _wait_count(stack.kafka_bootstrap_servers, topic, 5 + 6)
        time.sleep(1.5)
        mark = datetime.now(UTC)
        time.sleep(1.5)
        pg.execute(f"UPDATE {schema}.products SET name = 'renamed' WHERE id = 1")
        pg.execute(f"INSERT INTO {schema}.products VALUES (8, 'product 8', 8.50, 'active')")
        _wait_count(stack.kafka_bootstrap_servers, topic, 13)
        yield Captured(stack, prefix, topic, f"{schema}.products", mark, 13)
    finally:
        _connect(stack, "PUT", f"/connectors/{name}/stop")
        for _ in range(20):
            r = _connect(stack, "DELETE", f"/connectors/{name}/offsets")
            if r.ok or r.status_code == 404:
                break
            time.sleep(1)
        _connect(stack, "DELETE", f"/connectors/{name}")
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
        admin = AdminClient(client_config(stack.kafka_bootstrap_servers))
        doomed = [t for t in admin.list_topics(timeout=10).topics if prefix in t]
        if doomed:
            for future in admin.delete_topics(doomed).values():
                with contextlib.suppress(Exception):
                    future.result()


@pytest.fixture(scope="module")
def captured(stack: Settings) -> Iterator[Captured]:
    with capture(stack, schemas=False) as result:
        yield result


@pytest.fixture(scope="module")
def captured_schema(stack: Settings) -> Iterator[Captured]:
    with capture(stack, schemas=True) as result:
        yield result


def run(settings: Settings, *args: str) -> str:
    result = CliRunner().invoke(app, ["--kafka", settings.kafka_bootstrap_servers, *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def json_events(settings: Settings, *args: str) -> list[dict[str, Any]]:
    out = run(settings, "streams", "tail", *args, "--output", "json")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def ops_and_ids(events: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(e["op"], e["key"]["id"]) for e in events]


def test_tail_from_beginning_sees_every_change(captured: Captured) -> None:
    events = json_events(captured.settings, captured.topic, "--from", "beginning")
    assert len(events) == captured.total
    counts: dict[str, int] = {}
    for e in events:
        counts[e["op"]] = counts.get(e["op"], 0) + 1
    assert counts == {"read": 5, "create": 3, "update": 3, "delete": 1, "tombstone": 1}
    assert {e["partition"] for e in events} <= set(range(PARTITIONS))


def test_tail_op_filter(captured: Captured) -> None:
    creates = json_events(captured.settings, captured.topic, "--from", "beginning", "--op", "c")
    assert sorted(ops_and_ids(creates)) == [("create", 6), ("create", 7), ("create", 8)]
    changes = json_events(captured.settings, captured.topic, "--from", "beginning", "--op", "u,d")
    assert sorted(ops_and_ids(changes)) == [
        ("delete", 3),
        ("update", 1),
        ("update", 1),
        ("update", 2),
    ]


def test_tail_key_filter(captured: Captured) -> None:
    events = json_events(captured.settings, captured.topic, "--from", "beginning", "--key", "1")
    assert ops_and_ids(events) == [("read", 1), ("update", 1), ("update", 1)]
    same = json_events(
        captured.settings, captured.topic, "--from", "beginning", "--key", '{"id": 1}'
    )
    assert ops_and_ids(same) == ops_and_ids(events)
    assert events[1]["changed"] == ["price"]
    assert events[1]["before"]["price"] == "1.50"
    assert events[1]["after"]["price"] == "1.99"
    assert events[2]["changed"] == ["name"]


def test_tail_where_filter(captured: Captured) -> None:
    inactive = json_events(
        captured.settings, captured.topic, "--from", "beginning", "--where", "status=inactive"
    )
    assert ops_and_ids(inactive) == [("update", 2)]
    renamed = json_events(
        captured.settings,
        captured.topic,
        "--from",
        "beginning",
        "--where",
        "name=renamed",
        "--where",
        "price=1.99",
    )
    assert ops_and_ids(renamed) == [("update", 1)]


def test_tail_from_a_time(captured: Captured) -> None:
    events = json_events(captured.settings, captured.topic, "--from", captured.mark.isoformat())
    assert sorted(ops_and_ids(events)) == [("create", 8), ("update", 1)]


def test_tail_default_is_the_newest_events_and_limit_stops(captured: Captured) -> None:
    newest = json_events(captured.settings, captured.topic, "--limit", "2")
    assert sorted(ops_and_ids(newest)) == [("create", 8), ("update", 1)]
    first_two = json_events(captured.settings, captured.topic, "--from", "beginning", "-n", "2")
    assert len(first_two) == 2
    assert all(e["op"] == "read" for e in first_two)


def test_tail_text_and_raw_output(captured: Captured) -> None:
    text = run(
        captured.settings, "streams", "tail", captured.table, "--from", "beginning", "--key", "2"
    )
    assert "update" in text
    assert "status: 'active' → 'inactive'" in text
    raw = run(
        captured.settings,
        "streams",
        "tail",
        captured.topic,
        "--from",
        "beginning",
        "--output",
        "raw",
    )
    lines = [json.loads(line) for line in raw.splitlines()]
    assert len(lines) == captured.total
    assert sum(1 for line in lines if line["value"] is None) == 1  # the tombstone
    assert all(json.loads(line["key"])["id"] > 0 for line in lines)


def test_history_of_a_key_matches_the_changes(captured: Captured) -> None:
    out = run(captured.settings, "streams", "history", captured.topic, "1", "--output", "json")
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["op"] for e in events] == ["read", "update", "update"]
    text = run(captured.settings, "streams", "history", captured.table, "id=1")
    assert "price: 1.50 → 1.99" in text  # typed with the column types: exact decimals
    assert "name: 'product 1' → 'renamed'" in text
    deleted = run(captured.settings, "streams", "history", captured.table, "3", "-o", "json")
    assert [json.loads(line)["op"] for line in deleted.splitlines()] == [
        "read",
        "delete",
        "tombstone",
    ]


def test_history_reads_only_the_partition_of_the_key(captured: Captured) -> None:
    with Kafka(captured.settings.kafka_bootstrap_servers) as kafka:
        for key in ("1", "2", "3", "7"):
            result = key_history(kafka, captured.topic, key)
            partitions = {e.event.partition for e in result.entries}
            assert len(partitions) == 1
            assert result.partitions_read == sorted(partitions), result.notes
            assert partitions == {partition_for_key(f'{{"id":{key}}}'.encode(), PARTITIONS)}
            assert result.notes == []


def test_list_shows_the_topic(captured: Captured) -> None:
    out = run(captured.settings, "streams", "list", "--prefix", captured.prefix, "--output", "json")
    topics = {t["topic"]: t for t in json.loads(out)}
    assert set(topics) == {captured.topic}
    entry = topics[captured.topic]
    assert entry["partitions"] == PARTITIONS
    assert entry["offsets"] == captured.total  # a Connect topic: one offset per record
    assert entry["first_ts_ms"] <= entry["last_ts_ms"]


def test_lag_of_a_group_and_tail_never_commits(
    captured: Captured, unique_name: Callable[[str], str]
) -> None:
    group = unique_name("seam-test-lag")
    bootstrap = captured.settings.kafka_bootstrap_servers
    consumer = Consumer(client_config(bootstrap, {"group.id": group, "enable.auto.commit": False}))
    admin = AdminClient(client_config(bootstrap))
    try:
        with Kafka(bootstrap) as kafka:
            ranges = {r.partition: r for r in kafka.ranges(captured.topic)}
        # Commit "one record read" on every partition.
        consumer.commit(
            offsets=[
                TopicPartition(captured.topic, p, r.low + 1)
                for p, r in ranges.items()
                if r.high > r.low
            ],
            asynchronous=False,
        )
        out = run(captured.settings, "streams", "lag", group, "--output", "json")
        (report,) = json.loads(out)
        expected = sum(r.high - r.low - 1 for r in ranges.values() if r.high > r.low)
        assert report["total_lag"] == expected
        for part in report["partitions"]:
            assert part["lag"] == part["high"] - part["committed"]
        listing = run(captured.settings, "streams", "lag", "--output", "json")
        assert group in {g["group"] for g in json.loads(listing)}
        # Reading with tail and history leaves no consumer group behind.
        run(captured.settings, "streams", "tail", captured.topic, "--from", "beginning")
        groups = [g.group_id for g in admin.list_consumer_groups().result(timeout=10).valid]
        assert not [g for g in groups if g.startswith("seam-streams-")]
    finally:
        consumer.close()
        with contextlib.suppress(Exception):
            admin.delete_consumer_groups([group])[group].result(timeout=10)


def test_murmur2_matches_the_java_compatible_partitioner(
    stack: Settings, unique_name: Callable[[str], str]
) -> None:
    """librdkafka's `murmur2_random` partitioner is the Java client's default one."""
    topic = unique_name("seam_test_murmur")
    admin = AdminClient(client_config(stack.kafka_bootstrap_servers))
    admin.create_topics([NewTopic(topic, num_partitions=7, replication_factor=1)])[topic].result(
        timeout=30
    )
    try:
        producer = Producer(
            client_config(stack.kafka_bootstrap_servers, {"partitioner": "murmur2_random"})
        )
        keys = [f'{{"id":{i}}}'.encode() for i in range(40)] + [b"SKU-\xc3\xa9", b"", b"abc"]
        placed: dict[bytes, int] = {}

        def remember(err: Any, msg: Any) -> None:
            assert err is None, err
            placed[msg.key()] = msg.partition()

        for key in keys:
            producer.produce(topic, key=key, value=b"x", on_delivery=remember)
        producer.flush(30)
        assert len(placed) == len(keys)
        for key, partition in placed.items():
            assert partition_for_key(key, 7) == partition, key
    finally:
        admin.delete_topics([topic])[topic].result(timeout=30)


def test_errors_name_the_setting_and_do_not_hang(captured: Captured) -> None:
    start = time.monotonic()
    unreachable = subprocess.run(
        [SEAM, "--kafka", "127.0.0.1:1", "streams", "tail", "x", "--timeout", "2"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert time.monotonic() - start < 15
    assert unreachable.returncode == 1
    assert "cannot reach Kafka at 127.0.0.1:1" in unreachable.stderr
    assert "SEAM_KAFKA_BOOTSTRAP_SERVERS" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr
    unknown = subprocess.run(
        [
            SEAM,
            "--kafka",
            captured.settings.kafka_bootstrap_servers,
            "streams",
            "tail",
            "no_such_topic_xyz",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert unknown.returncode == 1
    assert "no topic named 'no_such_topic_xyz'" in unknown.stderr
    assert "--kafka" in unknown.stderr


def test_ctrl_c_ends_follow_cleanly(captured: Captured) -> None:
    proc = subprocess.Popen(
        [
            SEAM,
            "--kafka",
            captured.settings.kafka_bootstrap_servers,
            "streams",
            "tail",
            captured.topic,
            "--follow",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell's background job ignores SIGINT; the test wants a terminal's Ctrl-C.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        env={**os.environ},
    )
    try:
        # Ctrl-C once it shows events (it reads the column types first), or after 15 s.
        assert proc.stdout is not None
        select.select([proc.stdout], [], [], 15)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode in (0, 130)
    assert "Traceback" not in err
    assert "insert" in out or "update" in out  # it showed the newest events first


def test_schema_enabled_topic_decodes_and_filters(captured_schema: Captured) -> None:
    """Keys and values with embedded schemas, decimals as precise bytes."""
    cap = captured_schema
    events = json_events(cap.settings, cap.topic, "--from", "beginning", "--key", "1")
    assert ops_and_ids(events) == [("read", 1), ("update", 1), ("update", 1)]
    assert events[1]["before"]["price"] == "1.50"  # Decimal, serialised exactly
    assert events[1]["after"]["price"] == "1.99"
    cheap = json_events(cap.settings, cap.topic, "--from", "beginning", "--where", "price=1.99")
    assert ops_and_ids(cheap) == [("update", 1), ("update", 1)]


def test_schema_enabled_history_rebuilds_the_key_bytes(captured_schema: Captured) -> None:
    """The key bytes carry the key schema: history rebuilds them from a sample record to
    find the one partition of the key."""
    with Kafka(captured_schema.settings.kafka_bootstrap_servers) as kafka:
        for key in ("1", "3", "8"):
            result = key_history(kafka, captured_schema.topic, key)
            assert result.notes == []
            partitions = {e.event.partition for e in result.entries}
            assert result.partitions_read == sorted(partitions)
            raw_key = result.entries[0].event.raw.key
            assert raw_key is not None
            assert raw_key.startswith(b'{"schema":')
    assert [e.event.op.value for e in result.entries] == ["c"]  # key 8: inserted once

"""Capture a corpus of REAL Debezium change records from the running local stack.

Re-run with `.venv/bin/python tests/corpus/capture.py` (the local stack must be up; endpoints
from the usual seam settings). It:

1. creates its own objects: PostgreSQL schema `seam_corpus` in database `catalog` (table
   `products` with REPLICA IDENTITY DEFAULT and a TOAST-able TEXT, table `suppliers` with
   REPLICA IDENTITY FULL) and the MariaDB database `seam_corpus`;
2. inserts two rows per table so the connectors snapshot them (op=r);
3. creates one Debezium connector per variant through Connect's REST API: decimal handling
   `precise` / `string`, JSON values with / without embedded schemas, and one variant per
   flavour with `provide.transaction.metadata=true` and heartbeats (the MariaDB one also
   with `include.schema.changes=true`);
4. makes changes: inserts, updates (one leaving the large TOASTed text unchanged), a NUMERIC
   without scale, deletes (delete + tombstone), ALTER TABLE ADD COLUMN mid-stream, a
   TRUNCATE, a logical decoding message (PostgreSQL) and a transaction of three changes (one
   with a NUMERIC small enough for scientific notation);
5. reads every record of the connectors' topics and writes them to `debezium.jsonl`, one
   JSON object a line: variant, topic, partition, offset, timestamp, key, value (UTF-8
   strings, or null for a null key / tombstone value). Besides the change topics that is
   the transaction-metadata topic (`<prefix>.transaction`), the schema-change topic
   (`<prefix>`), the first heartbeats (`__debezium-heartbeat.<prefix>`) and the schema
   history of the variants that have them;
6. deletes the connectors, replication slots, publications, topics and tables.
"""

from __future__ import annotations

import contextlib
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import requests
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from seam.kafka_config import client_config
from seam.settings import load_settings

HERE = Path(__file__).resolve().parent
OUT = HERE / "debezium.jsonl"
PG_SCHEMA = "seam_corpus"
MY_DB = "seam_corpus"
PREFIX = "corpus"
# ~12 KB of incompressible text: stored out of line (TOAST) even if compression were on.
BIG_TEXT = random.Random(7).randbytes(9000).hex()[:12000]

# variant name -> (flavour, decimal.handling.mode, value schemas enabled)
VARIANTS: dict[str, tuple[str, str, bool]] = {
    "pg_precise_schema": ("pg", "precise", True),
    "pg_precise_bare": ("pg", "precise", False),
    "pg_string_schema": ("pg", "string", True),
    "pg_string_bare": ("pg", "string", False),
    "my_precise_schema": ("my", "precise", True),
    "my_string_bare": ("my", "string", False),
    "pg_txmeta_bare": ("pg", "string", False),
    "my_txmeta_schema": ("my", "precise", True),
}
# Variants that also write transaction metadata, heartbeats and (MariaDB) schema changes.
METADATA = {"pg_txmeta_bare", "my_txmeta_schema"}
HEARTBEAT_PREFIX = "__debezium-heartbeat"
HEARTBEATS_KEPT = 2  # heartbeats keep coming: the first few per topic are enough


# Connect keeps a deleted connector's offsets under its name: a fresh name per run makes
# each run snapshot again instead of resuming at a position its slot no longer has.
RUN = time.strftime("%Y%m%d%H%M%S")


def connector_name(variant: str) -> str:
    return f"{PREFIX}-{variant.replace('_', '-')}-{RUN}"


def topic_prefix(variant: str) -> str:
    return f"{PREFIX}_{variant}"


def connector_config(variant: str, settings: Any, server_id: int) -> dict[str, str]:
    flavour, decimals, schemas = VARIANTS[variant]
    metadata = variant in METADATA
    extra = (
        {"provide.transaction.metadata": "true", "heartbeat.interval.ms": "1000"}
        if metadata
        else {}
    )
    common = {
        **extra,
        "topic.prefix": topic_prefix(variant),
        "decimal.handling.mode": decimals,
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": str(schemas).lower(),
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": str(schemas).lower(),
        "topic.creation.default.replication.factor": "1",
        "topic.creation.default.partitions": "1",
        "tasks.max": "1",
    }
    host = settings.stack.host
    if flavour == "pg":
        return {
            **common,
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "database.hostname": host,
            "database.port": str(settings.stack.postgres_port),
            "database.user": "postgres",
            "database.password": "seam-local",
            "database.dbname": "catalog",
            "plugin.name": "pgoutput",
            "slot.name": f"{PREFIX}_{variant}",
            "publication.name": f"{PREFIX}_{variant}",
            "publication.autocreate.mode": "filtered",
            "table.include.list": f"{PG_SCHEMA}\\.products,{PG_SCHEMA}\\.suppliers",
            "skipped.operations": "none",  # keep truncates
            "provide.transaction.metadata": str(metadata).lower(),
        }
    return {
        **common,
        "connector.class": "io.debezium.connector.mariadb.MariaDbConnector",
        "database.hostname": host,
        "database.port": str(settings.stack.mariadb_port),
        "database.user": "root",
        "database.password": "seam-local",
        "database.server.id": str(server_id),
        "database.include.list": MY_DB,
        "table.include.list": f"{MY_DB}\\.products",
        "schema.history.internal.kafka.bootstrap.servers": settings.kafka_bootstrap_servers,
        "schema.history.internal.kafka.topic": f"{topic_prefix(variant)}.schema-history",
        "include.schema.changes": str(metadata).lower(),
        # Only the captured tables' DDL in the history: other databases of the stack stay out.
        "schema.history.internal.store.only.captured.databases.ddl": "true",
        "schema.history.internal.store.only.captured.tables.ddl": "true",
        "snapshot.locking.mode": "none",
        "skipped.operations": "none",
    }


def pg_setup(pg: psycopg.Connection[Any]) -> None:
    pg.execute(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")
    pg.execute(f"CREATE SCHEMA {PG_SCHEMA}")
    pg.execute(
        f"""CREATE TABLE {PG_SCHEMA}.products (
            id serial PRIMARY KEY,
            sku text NOT NULL,
            name text,
            price numeric(10,2),
            weight numeric,
            description text,
            listed date,
            updated_at timestamp(6),
            created_at timestamptz,
            opens time,
            active boolean,
            tags text[],
            attrs jsonb,
            ref uuid
        )"""
    )
    # EXTERNAL: out of line without compression, so the large value is surely TOASTed.
    pg.execute(f"ALTER TABLE {PG_SCHEMA}.products ALTER COLUMN description SET STORAGE EXTERNAL")
    pg.execute(
        f"CREATE TABLE {PG_SCHEMA}.suppliers (code text PRIMARY KEY, name text, rating numeric(3,1))"
    )
    pg.execute(f"ALTER TABLE {PG_SCHEMA}.suppliers REPLICA IDENTITY FULL")
    insert = (
        f"INSERT INTO {PG_SCHEMA}.products (sku, name, price, weight, description, listed,"
        " updated_at, created_at, opens, active, tags, attrs, ref) VALUES"
        " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    )
    pg.execute(
        insert,
        (
            "SKU-1",
            "Kettle",
            "19.99",
            "1.25",
            "short",
            "2024-03-01",
            "2024-03-01 10:11:12.123456",
            "2024-03-01 10:11:12.5+02",
            "08:30:00",
            True,
            ["kitchen", "steel"],
            '{"colour": "red"}',
            "6f1c2a52-0d4c-4c8e-9f57-9a0f0f4d2b11",
        ),
    )
    pg.execute(
        insert,
        (
            "SKU-2",
            "Toaster ünïcode",
            "-1234.50",
            "0.000123",
            BIG_TEXT,
            "1969-12-31",
            "1999-12-31 23:59:59",
            "2000-01-01 00:00:00+00",
            "23:59:59.999999",
            False,
            [],
            None,
            None,
        ),
    )
    pg.execute(f"INSERT INTO {PG_SCHEMA}.suppliers VALUES ('ACME', 'Acme Ltd', 4.5)")
    pg.execute(f"INSERT INTO {PG_SCHEMA}.suppliers VALUES ('GLOBEX', 'Globex', 3.0)")


def pg_changes(pg: psycopg.Connection[Any]) -> None:
    s = PG_SCHEMA
    pg.execute(
        f"INSERT INTO {s}.products (sku, name, price, weight, description, listed, active)"
        " VALUES ('SKU-3', 'Grinder', 99999999.99, 12345678901234567890.123456789, 'x', '2030-01-01', true)"
    )
    pg.execute(f"UPDATE {s}.products SET price = 21.50 WHERE sku = 'SKU-1'")
    # The large description is not updated: with REPLICA IDENTITY DEFAULT it arrives as the
    # unavailable-value placeholder.
    pg.execute(f"UPDATE {s}.products SET name = 'Toaster 2000' WHERE sku = 'SKU-2'")
    pg.execute(f"UPDATE {s}.suppliers SET rating = 4.0, name = 'Acme Limited' WHERE code = 'ACME'")
    pg.execute(f"DELETE FROM {s}.suppliers WHERE code = 'GLOBEX'")
    pg.execute(f"DELETE FROM {s}.products WHERE sku = 'SKU-3'")
    pg.execute(f"ALTER TABLE {s}.products ADD COLUMN stock integer DEFAULT 0")
    pg.execute(
        f"INSERT INTO {s}.products (sku, name, price, weight, stock) VALUES ('SKU-4', 'Mill', 5, 7, 42)"
    )
    pg.execute(f"UPDATE {s}.products SET stock = 41, weight = NULL WHERE sku = 'SKU-4'")
    pg.execute("SELECT pg_logical_emit_message(true, 'seam-corpus', 'hello from the corpus')")
    pg.execute(f"TRUNCATE {s}.suppliers")
    # One transaction of three changes: its events share one transaction.
    with pg.transaction():
        # A tiny NUMERIC: Python's str() shows it as -1.23E-10, the database as -0.000000000123.
        pg.execute(
            f"INSERT INTO {s}.products (sku, name, price, weight)"
            " VALUES ('SKU-5', 'Scale', 3, -0.000000000123)"
        )
        pg.execute(f"INSERT INTO {s}.products (sku, name, price) VALUES ('SKU-6', 'Sieve', 4)")
        pg.execute(f"UPDATE {s}.products SET name = 'Big sieve' WHERE sku = 'SKU-6'")


def my_setup(my: Any) -> None:
    cur = my.cursor()
    cur.execute(f"DROP DATABASE IF EXISTS {MY_DB}")
    cur.execute(f"CREATE DATABASE {MY_DB}")
    cur.execute(
        f"""CREATE TABLE {MY_DB}.products (
            id int AUTO_INCREMENT PRIMARY KEY,
            sku varchar(32) NOT NULL,
            name varchar(200),
            price decimal(10,2),
            listed date,
            updated_at datetime(3),
            changed_at timestamp(6) NULL,
            opens time(6),
            active tinyint(1),
            blob_col varbinary(16)
        )"""
    )
    cur.execute(
        f"INSERT INTO {MY_DB}.products (sku, name, price, listed, updated_at, changed_at, opens, active, blob_col)"
        " VALUES ('SKU-1', 'Kettle', 19.99, '2024-03-01', '2024-03-01 10:11:12.123',"
        " '2024-03-01 10:11:12.654321', '08:30:00', 1, x'00ff10')"
    )
    cur.execute(
        f"INSERT INTO {MY_DB}.products (sku, name, price, listed, active)"
        " VALUES ('SKU-2', 'Toaster', -1234.50, '1969-12-31', 0)"
    )


def my_changes(my: Any) -> None:
    cur = my.cursor()
    cur.execute(
        f"INSERT INTO {MY_DB}.products (sku, name, price, listed, active) VALUES ('SKU-3', 'Grinder', 99999999.99, '2030-01-01', 1)"
    )
    cur.execute(f"UPDATE {MY_DB}.products SET price = 21.50 WHERE sku = 'SKU-1'")
    cur.execute(f"DELETE FROM {MY_DB}.products WHERE sku = 'SKU-3'")
    cur.execute(f"ALTER TABLE {MY_DB}.products ADD COLUMN stock int DEFAULT 0")
    cur.execute(
        f"INSERT INTO {MY_DB}.products (sku, name, price, stock) VALUES ('SKU-4', 'Mill', 5, 42)"
    )
    cur.execute(f"UPDATE {MY_DB}.products SET stock = 41 WHERE sku = 'SKU-4'")
    # One transaction of three changes: its events share one transaction.
    my.begin()
    cur.execute(f"INSERT INTO {MY_DB}.products (sku, name, price) VALUES ('SKU-5', 'Scale', 3)")
    cur.execute(f"INSERT INTO {MY_DB}.products (sku, name, price) VALUES ('SKU-6', 'Sieve', 4)")
    cur.execute(f"UPDATE {MY_DB}.products SET name = 'Big sieve' WHERE sku = 'SKU-6'")
    my.commit()


class Connect:
    def __init__(self, url: str, auth: tuple[str, str] | None = None) -> None:
        self.url = url
        self.http = requests.Session()
        self.http.auth = auth

    def put_config(self, name: str, config: dict[str, str]) -> None:
        for _ in range(30):
            r = self.http.put(f"{self.url}/connectors/{name}/config", json=config, timeout=30)
            if r.status_code == 409:  # rebalance in progress
                time.sleep(1)
                continue
            r.raise_for_status()
            return
        raise RuntimeError(f"Connect kept answering 409 for {name}")

    def wait_running(self, name: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.http.get(f"{self.url}/connectors/{name}/status", timeout=10)
            if r.ok:
                status = r.json()
                tasks = status.get("tasks", [])
                if any(t["state"] == "FAILED" for t in tasks):
                    raise RuntimeError(f"{name} failed: {tasks[0].get('trace', '')[:2000]}")
                if (
                    status["connector"]["state"] == "RUNNING"
                    and tasks
                    and all(t["state"] == "RUNNING" for t in tasks)
                ):
                    return
            time.sleep(1)
        raise RuntimeError(f"{name} did not reach RUNNING in {timeout}s")

    def delete(self, name: str) -> None:
        """Stop the connector, drop its stored offsets, then delete it."""
        with contextlib.suppress(requests.RequestException):
            self.http.put(f"{self.url}/connectors/{name}/stop", timeout=30)
            for _ in range(20):
                r = self.http.delete(f"{self.url}/connectors/{name}/offsets", timeout=30)
                if r.ok or r.status_code == 404:
                    break
                time.sleep(1)  # not STOPPED yet
            self.http.delete(f"{self.url}/connectors/{name}", timeout=30)


def variant_of(topic: str) -> str | None:
    """The variant whose connector wrote `topic`, if one did and the corpus keeps it."""
    for variant in VARIANTS:
        prefix = topic_prefix(variant)
        if topic == f"{HEARTBEAT_PREFIX}.{prefix}" or topic == f"{prefix}.schema-history":
            return variant if variant in METADATA else None
        if topic == prefix or topic.startswith(prefix + "."):
            return variant
    return None


def topics_of(admin: AdminClient, prefixes: list[str], heartbeats: bool = True) -> list[str]:
    """The corpus topics. Heartbeat topics grow forever: left out when counting records."""
    names = admin.list_topics(timeout=10).topics
    return sorted(
        t
        for t in names
        if variant_of(t) is not None and (heartbeats or not t.startswith(HEARTBEAT_PREFIX))
    )


def read_all(bootstrap: str, topics: list[str], idle: float = 5.0) -> list[dict[str, Any]]:
    consumer = Consumer(
        client_config(
            bootstrap,
            {
                "group.id": "seam-corpus-capture",
                "enable.auto.commit": False,
                "enable.partition.eof": False,
            },
        )
    )
    out: list[dict[str, Any]] = []
    heartbeats: dict[str, int] = {}
    try:
        meta = consumer.list_topics(timeout=10)
        assignment = [
            TopicPartition(t, p, 0) for t in topics for p in sorted(meta.topics[t].partitions)
        ]
        consumer.assign(assignment)
        last = time.monotonic()
        while time.monotonic() - last < idle:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                continue
            topic = msg.topic()
            if topic.startswith(HEARTBEAT_PREFIX):
                heartbeats[topic] = heartbeats.get(topic, 0) + 1
                if heartbeats[topic] > HEARTBEATS_KEPT:
                    continue  # not a sign of life: heartbeats never stop
            last = time.monotonic()
            key, value = msg.key(), msg.value()
            out.append(
                {
                    "topic": msg.topic(),
                    "partition": msg.partition(),
                    "offset": msg.offset(),
                    "timestamp": msg.timestamp()[1],
                    "key": None if key is None else key.decode(),
                    "value": None if value is None else value.decode(),
                }
            )
    finally:
        consumer.close()
    return out


def settle(bootstrap: str, topics_fn: Any, expect_min: int, timeout: float = 60) -> None:
    """Wait until the topics hold at least `expect_min` records and stop growing."""
    admin = AdminClient(client_config(bootstrap))
    deadline = time.monotonic() + timeout
    previous = -1
    while time.monotonic() < deadline:
        topics = topics_fn()
        consumer = Consumer(client_config(bootstrap, {"group.id": "seam-corpus-probe"}))
        total = 0
        try:
            meta = admin.list_topics(timeout=10)
            for t in topics:
                for p in meta.topics[t].partitions:
                    lo, hi = consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)
                    total += hi - lo
        finally:
            consumer.close()
        if total >= expect_min and total == previous:
            return
        previous = total
        time.sleep(3)


def main() -> int:
    settings = load_settings()
    connect = Connect(settings.connect_url, settings.connect_auth())
    admin = AdminClient(client_config(settings.kafka))
    pg = psycopg.connect(settings.database_url("postgres"), autocommit=True)
    my = pymysql.connect(
        host=settings.stack.host,
        port=settings.stack.mariadb_port,
        user="root",
        password="seam-local",
        autocommit=True,
    )
    prefixes = [topic_prefix(v) for v in VARIANTS]
    try:
        pg_setup(pg)
        my_setup(my)
        for i, variant in enumerate(VARIANTS):
            connect.put_config(
                connector_name(variant), connector_config(variant, settings, 5400 + i)
            )
        for variant in VARIANTS:
            connect.wait_running(connector_name(variant))
        # snapshot rows: 4 per PG variant, 2 per MariaDB variant
        counted = lambda: topics_of(admin, prefixes, heartbeats=False)  # noqa: E731
        settle(settings.kafka_bootstrap_servers, counted, 5 * 4 + 2 * 3)
        pg_changes(pg)
        my_changes(my)
        settle(settings.kafka_bootstrap_servers, counted, 90)
        records = read_all(settings.kafka_bootstrap_servers, topics_of(admin, prefixes))
        with OUT.open("w", encoding="utf-8") as fh:
            for rec in records:
                variant = variant_of(rec["topic"])
                fh.write(json.dumps({"variant": variant, **rec}, ensure_ascii=False) + "\n")
        print(f"wrote {len(records)} records to {OUT}")
    finally:
        for variant in VARIANTS:
            connect.delete(connector_name(variant))
        time.sleep(3)  # let the tasks stop and release their slots
        for variant in VARIANTS:
            if VARIANTS[variant][0] == "pg":
                slot = f"{PREFIX}_{variant}"
                for _ in range(10):
                    try:
                        pg.execute(
                            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                            " WHERE slot_name = %s",
                            (slot,),
                        )
                        break
                    except psycopg.Error:  # still active: the task is stopping
                        time.sleep(2)
                pg.execute(f"DROP PUBLICATION IF EXISTS {slot}")
        pg.execute(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")
        my.cursor().execute(f"DROP DATABASE IF EXISTS {MY_DB}")
        names = admin.list_topics(timeout=10).topics
        doomed = [
            t
            for t in names
            if any(
                t == p or t.startswith(p + ".") or t == f"{HEARTBEAT_PREFIX}.{p}" for p in prefixes
            )
        ]
        if doomed:
            for future in admin.delete_topics(doomed).values():
                with contextlib.suppress(Exception):
                    future.result()
        pg.close()
        my.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

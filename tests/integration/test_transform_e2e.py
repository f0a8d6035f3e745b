"""End to end on the real stack: a seeded legacy catalog in its own PostgreSQL database,
`seam connectors prepare`, a Debezium connector, the transform worker as a subprocess, a workload; then
the history topic holds exactly the domain events the workload implies, and the latest
topic (compacted view) equals the legacy tables after cleaning, row for row.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from seam.kafka_config import client_config
from seam.legacy_db.files import pipeline_document
from seam.settings import Settings
from seam.transforms.outputs import lsn_text
from tests.catalog_checks import (
    capture,
    expected_events,
    expected_latest,
    legacy_names,
    legacy_products,
    release,
    wait_for,
)
from tests.conftest import start_transform_worker

pytestmark = pytest.mark.integration

PRODUCTS = 300
OPERATIONS = 80
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Catalog:
    name: str
    url: str
    raw_topic: str
    connector: str
    pipeline: Path
    history: str
    latest: str
    dead_letter: str


@pytest.fixture(scope="module", params=["postgres", "mariadb"])
def catalog(
    stack: Settings, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Catalog]:
    """A seeded catalog captured by its own connector into topics of its own."""
    from confluent_kafka.admin import AdminClient, NewTopic

    from seam.connectors.engine import create_database, with_database
    from seam.legacy_db.seed import seed

    suffix = uuid.uuid4().hex[:8]
    name = f"seam_tx_{suffix}"
    user = f"seam_tx_{suffix}"
    prefix = f"tx{suffix}"
    connector = f"seam-tx-{suffix}"
    flavour = request.param
    url = with_database(stack.database_url(flavour), name)
    create_database(url)
    namespace = "public" if flavour == "postgres" else name
    topics = [f"{prefix}.{namespace}.{t}" for t in ("products", "categories", "suppliers")]
    outputs = [f"{prefix}.product-events", f"{prefix}.products-latest", f"{prefix}.dead-letter"]
    try:
        seed(url, products=PRODUCTS, seed=5)
        # The products topic gets 4 partitions before the connector makes it with 1.
        admin = AdminClient(client_config(stack.kafka_bootstrap_servers))
        for future in admin.create_topics(
            [
                NewTopic(
                    topics[0],
                    num_partitions=4,
                    replication_factor=1,
                    config={"cleanup.policy": "compact"},
                )
            ]
        ).values():
            future.result(timeout=30)
        capture(
            stack,
            flavour,
            url,
            user=user,
            connector=connector,
            prefix=prefix,
            tables=["categories", "suppliers", "products"],
            secret_dir=tmp_path_factory.mktemp("secrets"),
            publication="seam_catalog",
            extra="heartbeat_interval_ms: 2000\n",
            topics="{partitions: 1, replication_factor: -1, cleanup_policy: compact}",
        )
        # A running connector may still be snapshotting: a worker started now would find no
        # reference topics yet (a cold Connect on MariaDB is slow enough for that).
        wait_for(
            lambda: set(topics) <= set(admin.list_topics(timeout=10).topics),
            120,
            f"the snapshot's topics {topics}",
        )

        pipeline = pipeline_document()
        pipeline["group"] = f"seam-tx-{suffix}"
        pipeline["inputs"] = [topics[0]]
        # The declaration's lookups read these (declared, not derived from the input).
        pipeline["tables"]["categories"]["topic"] = topics[1]
        pipeline["tables"]["suppliers"]["topic"] = topics[2]
        pipeline["outputs"]["history"]["topic"] = outputs[0]
        pipeline["outputs"]["latest"]["topic"] = outputs[1]
        pipeline["outputs"]["dead_letter"]["topic"] = outputs[2]
        # The catalog's ledger, under this catalog's prefix (the fixture deletes its topics).
        pipeline["own_writes"] = {"ledger": f"{prefix}.own-writes"}
        pipeline["processing"]["batch_size"] = 100
        path = tmp_path_factory.mktemp("pipeline") / "catalog.yaml"
        path.write_text(yaml.safe_dump(pipeline))
        yield Catalog(name, url, topics[0], connector, path, *outputs)
    finally:
        release(
            stack,
            flavour,
            url,
            user=user,
            connector=connector,
            prefix=prefix,
            topics=[*topics, *outputs],
        )
        with contextlib.suppress(Exception):
            from seam.streams.kafka import Kafka
            from seam.transforms.topics import delete_group

            with Kafka(stack.kafka_bootstrap_servers) as kafka:
                delete_group(kafka, f"seam-tx-{suffix}")


def start_worker(pipeline: Path) -> subprocess.Popen[bytes]:
    return start_transform_worker(pipeline, "w1", "--progress-interval", "1", "--output", "json")


def test_end_to_end_history_and_latest_match_the_legacy_tables(
    stack: Settings, catalog: Catalog
) -> None:
    from seam.legacy_db.workload import run_workload
    from seam.streams.kafka import TopicNotFoundError
    from seam.transforms.readback import compacted, read_to_end

    bootstrap = stack.kafka_bootstrap_servers
    initial = legacy_products(catalog.url)
    wait_for(
        lambda: len(read_to_end(bootstrap, catalog.raw_topic)) >= len(initial),
        90,
        "the snapshot",
    )
    worker = start_worker(catalog.pipeline)
    try:
        report = run_workload(catalog.url, rate=0, count=OPERATIONS, seed=9)
        want = expected_events(initial, report.operations)

        def history_complete() -> bool:
            assert worker.poll() is None, worker.communicate()[1].decode()[-3000:]
            try:
                return len(read_to_end(bootstrap, catalog.history)) >= sum(want.values())
            except TopicNotFoundError:  # the worker has not made it yet
                return False

        wait_for(history_complete, 120, f"{sum(want.values())} events")
        time.sleep(3)  # anything beyond the expected would show up now
    finally:
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err.decode()[-2000:]
    summary = json.loads(out)
    assert summary["balanced"] is True
    assert summary["dead_lettered"] == 0
    assert summary["records_in"] == summary["records_with_events"] + sum(
        summary["no_event"].values()
    )
    # Real Debezium records of the seeded catalog (warts included) take the compiled path;
    # the history and latest checks below hold it to the same results.
    assert summary["native"] >= 0.8 * summary["records_in"], summary

    records = read_to_end(bootstrap, catalog.history)
    events = [r.json() for r in records]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for record, event in zip(records, events, strict=True):  # routing without parsing
        # ... and the source commit the service's lag counts from (seam.transforms.outputs)
        provenance = event["provenance"]
        pos = provenance["position"]
        position = (
            f"lsn:{lsn_text(pos['lsn'])}"
            if "lsn" in pos
            else f"binlog:{pos['binlog_file']}:{pos['binlog_pos']}"
        )
        at = datetime.fromisoformat(provenance["source_ts"].replace("Z", "+00:00"))
        assert record.headers == {
            "seam.event_type": event["event_type"].encode(),
            "seam.event_id": event["event_id"].encode(),
            "seam.schema_version": str(event["schema_version"]).encode(),
            "seam-source-ts-ms": str((at - epoch) // timedelta(milliseconds=1)).encode(),
            "seam-source-position": position.encode(),
        }
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids)), "duplicate event ids"
    got = Counter((e["product_id"], e["event_type"]) for e in events)
    assert got == want
    # Per-key order: each product's events in source-log order, on one partition.
    by_key: dict[int, list[Any]] = {}
    for r in read_to_end(bootstrap, catalog.history):
        e = r.json()
        pos = e["provenance"]["position"]
        where = pos.get("lsn") or (pos["binlog_file"], pos["binlog_pos"], pos.get("binlog_row", 0))
        by_key.setdefault(e["product_id"], []).append(where)
        assert r.key == str(e["product_id"]).encode()
    assert all(lsns == sorted(lsns) for lsns in by_key.values())

    latest = compacted(read_to_end(bootstrap, catalog.latest))
    rows = legacy_products(catalog.url)
    categories = legacy_names(catalog.url, "categories", "cat_id", "cat_name")
    suppliers = legacy_names(catalog.url, "suppliers", "supp_id", "supp_name")
    expected = expected_latest(rows.values(), categories, suppliers)
    assert {k.decode(): v for k, v in latest.items()} == expected
    assert read_to_end(bootstrap, catalog.dead_letter) == []

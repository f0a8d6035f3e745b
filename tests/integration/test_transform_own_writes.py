"""Loop prevention on the real stack (seam.transforms.own_writes), PostgreSQL and MariaDB.

A catalog captured by its own connector, a pipeline that declares `own_writes`, and two kinds
of changes made while the worker runs: the legacy workload's, and renames made the way seam's
writer makes them (PostgreSQL: BEGIN; pg_current_xact_id(); ledger entry produced and
flushed; UPDATE; COMMIT. MariaDB: SET SESSION gtid_domain_id; UPDATE; COMMIT), many at once
from several threads so that ledger entries land just before commits while the worker is
busy. The worker runs compiled first, is killed with SIGKILL mid-stream, and a second one on
the Python path (`processing.compiled: false`) takes over: the history holds exactly the
workload's events (none of the writer's, none twice), the latest topic equals the legacy
tables (the writer's renames included), and both workers counted own writes as no event.
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from seam.settings import Settings
from seam.transforms.own_writes import OWN_WRITE, ledger_entry
from tests.catalog_checks import (
    expected_events,
    expected_latest,
    legacy_names,
    legacy_products,
    wait_for,
)
from tests.conftest import start_transform_worker
from tests.integration.test_transform_e2e import Catalog, catalog

pytestmark = pytest.mark.integration

__all__ = ["catalog"]  # the fixture: a seeded catalog per database, its connector and topics

DOMAIN = 77
WRITERS = 4  # threads writing as seam's writer, at once
OWN_PER_WRITER = 15
OPERATIONS = 80


def own_pipeline(catalog: Catalog, ledger: str, compiled: bool) -> Path:
    doc = yaml.safe_load(catalog.pipeline.read_text())
    doc["own_writes"] = (
        {"ledger": ledger} if catalog.url.startswith("postgres") else {"gtid_domain": DOMAIN}
    )
    doc["processing"]["compiled"] = compiled
    path = catalog.pipeline.with_name(f"own-{'compiled' if compiled else 'python'}.yaml")
    path.write_text(yaml.safe_dump(doc))
    return path


def own_writer(url: str, bootstrap: str, ledger: str, products: list[int], done: list[Any]) -> None:
    try:
        write_own(url, bootstrap, ledger, products, done)
    except Exception as exc:  # the test's waits see it
        done.append(exc)


def write_own(url: str, bootstrap: str, ledger: str, products: list[int], done: list[Any]) -> None:
    """Renames `products` as seam's writer does, one transaction each (appends to `done`;
    a product the workload deleted meanwhile is left alone)."""
    from confluent_kafka import Producer
    from sqlalchemy import text

    from seam.connectors.engine import connect
    from seam.kafka_config import client_config
    from seam.legacy_db import writes

    postgres = url.startswith("postgres")
    producer = Producer(client_config(bootstrap, {"linger.ms": 0}))
    with connect(url) as conn:
        if not postgres:
            conn.execute(text(f"SET SESSION gtid_domain_id = {DOMAIN}"))
            conn.commit()
        for n, pid in enumerate(products):
            with conn.begin():
                if postgres:
                    xact = conn.execute(text("SELECT pg_current_xact_id()::text::bigint")).scalar()
                    assert isinstance(xact, int)
                    # The full id (epoch included): the worker keeps its low 32 bits.
                    key, value = ledger_entry(xact, "test-writer", int(time.time() * 1000))
                    producer.produce(ledger, value, key)
                    assert producer.flush(10) == 0
                row = writes.live_product(conn, pid)
                if row is not None:
                    writes.rename(conn, row, f"Seam Owned {pid} {n}")
            done.append(pid)
            time.sleep(0.2)  # spread over the worker's batches: a kill lands mid-stream


def last_progress(log: Path) -> dict[str, Any] | None:
    found = None
    for line in log.read_text(errors="replace").splitlines():
        if '"no_event"' in line and "{" in line:
            found = json.loads(line[line.index("{") :])
    return found


def test_own_writes_publish_no_event_and_update_latest(
    stack: Settings, catalog: Catalog, tmp_path: Path
) -> None:
    from seam.legacy_db.workload import run_workload
    from seam.transforms.readback import compacted, read_to_end

    bootstrap = stack.kafka_bootstrap_servers
    ledger = catalog.history.replace("product-events", "own-writes")
    initial = legacy_products(catalog.url)
    wait_for(
        lambda: len(read_to_end(bootstrap, catalog.raw_topic)) >= len(initial),
        90,
        "the snapshot",
    )
    listed = sorted(pid for pid, row in initial.items() if (row["is_deleted"] or "N") != "Y")
    mine = random.Random(4).sample(listed, WRITERS * 6)
    plan = [[mine[w * 6 + n % 6] for n in range(OWN_PER_WRITER)] for w in range(WRITERS)]
    owned = {pid for products in plan for pid in products}
    total_own = WRITERS * OWN_PER_WRITER
    logs = [tmp_path / "compiled.log", tmp_path / "python.log"]
    workers: list[Any] = []
    out = b""
    files = contextlib.ExitStack()
    try:
        first = start_transform_worker(
            own_pipeline(catalog, ledger, compiled=True),
            "w1",
            "--progress-interval",
            "1",
            "--output",
            "json",
            capture_stdout=False,  # killed: no summary to read
            stderr=files.enter_context(logs[0].open("wb")),
        )
        workers.append(first)

        def running() -> bool:  # a progress line: it made its outputs (and the ledger)
            assert first.poll() is None, logs[0].read_text()[-3000:]
            return last_progress(logs[0]) is not None

        wait_for(running, 90, "the compiled worker to start")
        done: list[Any] = []

        def failed() -> None:
            errors = [d for d in done if isinstance(d, Exception)]
            assert not errors, f"a writer failed: {errors[0]!r}"

        threads = [
            threading.Thread(
                target=own_writer, args=(catalog.url, bootstrap, ledger, products, done)
            )
            for products in plan
        ]
        reports: list[Any] = []
        threads.append(
            threading.Thread(
                target=lambda: reports.append(
                    run_workload(catalog.url, rate=20, count=OPERATIONS, seed=9)
                )
            )
        )
        for t in threads:
            t.start()

        # Mid-stream: the compiled worker has counted own writes, more are still coming.
        def first_own_writes() -> bool:
            failed()
            counts = (last_progress(logs[0]) or {}).get("no_event", {})
            return counts.get(OWN_WRITE, 0) > 0 and len(done) < total_own

        wait_for(
            first_own_writes,
            90,
            "the compiled worker's first own writes",
        )
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        compiled_seen = last_progress(logs[0])
        assert compiled_seen is not None
        assert compiled_seen["native"] > 0, compiled_seen
        second = start_transform_worker(
            own_pipeline(catalog, ledger, compiled=False),
            "w1",
            "--progress-interval",
            "1",
            "--output",
            "json",
            stderr=files.enter_context(logs[1].open("wb")),
        )
        workers.append(second)
        for t in threads:
            t.join(180)
        failed()
        assert len(done) == total_own
        assert reports, "the workload failed"
        operations = reports[0].operations
        want = expected_events(initial, operations)
        touched = {op.key["prod_id"] for op in operations}
        both = owned & touched  # the order of their changes is the database's: left out
        categories = legacy_names(catalog.url, "categories", "cat_id", "cat_name")
        suppliers = legacy_names(catalog.url, "suppliers", "supp_id", "supp_name")

        def caught_up() -> bool:
            assert second.poll() is None, logs[1].read_text()[-3000:]
            latest = compacted(read_to_end(bootstrap, catalog.latest))
            rows = legacy_products(catalog.url)
            return {k.decode(): v for k, v in latest.items()} == expected_latest(
                rows.values(), categories, suppliers
            ) and len(read_to_end(bootstrap, catalog.history)) >= sum(
                n for (pid, _), n in want.items() if pid not in both
            )

        wait_for(caught_up, 180, "the second worker to catch up")
        time.sleep(3)  # anything beyond the expected would show up now
        second.send_signal(signal.SIGTERM)
        out, _ = second.communicate(timeout=60)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(30)
        files.close()
    assert second.returncode == 0, logs[1].read_text()[-3000:]
    summary = json.loads(out)
    assert summary["balanced"] is True
    assert summary["native"] == 0  # the Python path
    assert summary["no_event"].get(OWN_WRITE, 0) > 0, summary

    events = [r.json() for r in read_to_end(bootstrap, catalog.history)]
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids)), "an event published twice across the kill"
    got = Counter((e["product_id"], e["event_type"]) for e in events)
    # No event of the writer's renames: an owned product has its snapshot event only.
    renamed = {pid for (pid, kind) in got if kind == "ProductRenamed"}
    assert not (renamed & (owned - touched)), "an own write published an event"
    assert {k: n for k, n in got.items() if k[0] not in both} == {
        k: n for k, n in want.items() if k[0] not in both
    }
    # ... and the latest topic holds the legacy rows, the writer's renames included.
    latest = compacted(read_to_end(bootstrap, catalog.latest))
    rows = legacy_products(catalog.url)
    assert {k.decode(): v for k, v in latest.items()} == expected_latest(
        rows.values(), categories, suppliers
    )
    assert read_to_end(bootstrap, catalog.dead_letter) == []
    if catalog.url.startswith("postgres"):  # (the fixture deletes the topics of its prefix)
        assert len(read_to_end(bootstrap, ledger)) == total_own

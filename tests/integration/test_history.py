"""History, as-of and why on the real stack, for PostgreSQL and MariaDB.

The seeded catalog of tests/integration/test_transform_e2e.py (its own database, connector and
topics); one product is inserted and changed several times in the legacy database, each
change its own transaction two seconds apart, noting its transaction id (PostgreSQL), the
log position after its commit (LSN; binlog file:pos and GTID) and the time. Then the declared
pipeline runs until caught up, `seam history index` builds the index, and:

* the timeline has each change, in order, with the transaction id and a log position
  between the previous commit's and its own, and the fields it changed;
* as-of at times between the changes, and at the positions noted, gives the state after
  exactly the changes before it (and nothing before the insert);
* why names the event that set the price and shows its raw change record, decoded;
* an unknown key is one clear error line; the HTTP router gives the same answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from seam.settings import Settings
from tests.catalog_checks import wait_for
from tests.conftest import start_transform_worker
from tests.integration.test_transform_e2e import Catalog, catalog

pytestmark = pytest.mark.integration

__all__ = ["catalog"]  # the fixture, used by name

PID = 900_001
GAP = 2.0  # seconds between changes: MariaDB's binlog times have whole seconds


@dataclass
class Mark:
    """What the legacy side knows of one committed change."""

    tx: int | None
    position: str  # after the commit: LSN, or binlog file:pos
    gtid: str | None
    time: datetime  # just after the commit


def change(url: str, sql: str, params: dict[str, Any]) -> Mark:
    from sqlalchemy import text

    from seam.connectors.engine import connect

    pg = url.startswith("postgresql")
    with connect(url) as conn:
        with conn.begin():
            conn.execute(text(sql), params)
            tx = conn.execute(text("SELECT txid_current()")).scalar() if pg else None
        if pg:
            position = str(conn.execute(text("SELECT pg_current_wal_lsn()::text")).scalar())
            gtid = None
        else:
            status = conn.execute(text("SHOW MASTER STATUS")).one()
            position = f"{status[0]}:{status[1]}"
            gtid = str(conn.execute(text("SELECT @@gtid_binlog_pos")).scalar())
    return Mark(int(tx) & 0xFFFFFFFF if tx is not None else None, position, gtid, datetime.now(UTC))


def lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def seam(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "seam.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ},
    )
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def price(cents: int) -> dict[str, str]:
    return {"amount": f"{cents // 100}.{cents % 100:02d}", "currency": "EUR"}


def test_history_timeline_as_of_and_why(stack: Settings, catalog: Catalog, tmp_path: Path) -> None:
    from seam.transforms.readback import read_to_end

    bootstrap = stack.kafka_bootstrap_servers
    wait_for(lambda: len(read_to_end(bootstrap, catalog.raw_topic)) >= 300, 120, "the snapshot")
    before_insert = datetime.now(UTC)
    time.sleep(GAP)
    update = "UPDATE products SET {} WHERE prod_id = :pid"
    marks = [
        change(
            catalog.url,
            "INSERT INTO products (prod_id, sku, prod_name, price_txt, price_cents, cat_id, "
            "supp_id, status_cd, is_deleted, ean, descr, created_at) VALUES (:pid, 'HIST-1', "
            "'History Lamp', '10.00', 1000, 1, 1, 'A', 'N', '4006381333931', 'A lamp', :now)",
            {"pid": PID, "now": datetime(2026, 3, 1, 12, 0)},
        )
    ]
    for sql, params in (
        ("price_cents = 1250, price_txt = '12,50 €'", {}),
        ("price_cents = 1500, price_txt = '15.00'", {}),
        ("prod_name = 'History Lamp II'", {}),
        ("is_deleted = 'Y'", {}),
    ):
        time.sleep(GAP)
        marks.append(change(catalog.url, update.format(sql), {"pid": PID, **params}))
    raw_before = 300
    wait_for(
        lambda: len(read_to_end(bootstrap, catalog.raw_topic)) >= raw_before + len(marks),
        60,
        "the changes in the raw topic",
    )
    worker = start_transform_worker(catalog.pipeline, "w1", "--until-caught-up", "--output", "json")
    _out, err = worker.communicate(timeout=180)
    assert worker.returncode == 0, err.decode()[-3000:]

    index = tmp_path / "history.sqlite"
    pipeline = str(catalog.pipeline)
    built = json.loads(
        seam("history", "index", pipeline, "--index", str(index), "-o", "json").stdout
    )
    published = read_to_end(bootstrap, catalog.history)
    assert built["indexed"] == built["events"] == len(published) > len(marks)
    again = json.loads(
        seam("history", "index", pipeline, "--index", str(index), "-o", "json").stdout
    )
    assert again["indexed"] == 0  # incremental: nothing new

    # -- the timeline: each change with its transaction and log position --------------------
    timeline = json.loads(
        seam("history", "timeline", pipeline, str(PID), "--index", str(index), "-o", "json").stdout
    )
    entries = timeline["entries"]
    assert [e["event"]["event_type"] for e in entries] == [
        "ProductListed",
        "ProductPriceChanged",
        "ProductPriceChanged",
        "ProductRenamed",
        "ProductDelisted",
    ]
    for i, (entry, mark) in enumerate(zip(entries, marks, strict=True)):
        prov = entry["provenance"]
        position = prov["position"]
        assert prov["table"].endswith("products")
        assert prov["snapshot"] is False
        assert prov["topic"] == catalog.raw_topic
        if mark.tx is not None:  # PostgreSQL
            assert position["tx_id"] == mark.tx
            assert position["lsn"] <= lsn(mark.position)
            if i:
                assert position["lsn"] > lsn(marks[i - 1].position)
        else:
            assert position["gtid"] == mark.gtid
            file, end = mark.position.rsplit(":", 1)
            assert position["binlog_file"] == file
            assert position["binlog_pos"] < int(end)
    assert [(c["field"], c["old"], c["new"], c["columns"]) for c in entries[1]["changes"]] == [
        ("price", price(1000), price(1250), ["price_cents", "price_txt"])
    ]
    assert [c["field"] for c in entries[3]["changes"]] == ["name"]

    # -- as of times between the changes and as of the positions noted ----------------------
    def as_of(*cut: str) -> dict[str, Any]:
        done = seam(
            "history", "as-of", pipeline, str(PID), *cut, "--index", str(index), "-o", "json"
        )
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    assert as_of("--at", before_insert.isoformat())["exists"] is False
    want = [
        (price(1000), "History Lamp"),
        (price(1250), "History Lamp"),
        (price(1500), "History Lamp"),
        (price(1500), "History Lamp II"),
    ]
    for mark, (amount, name) in zip(marks, want, strict=False):
        for cut in (
            ("--at", (mark.time + timedelta(seconds=0.4)).isoformat()),
            ("--position", mark.position),
            *((("--position", mark.gtid),) if mark.gtid else ()),
        ):
            state = as_of(*cut)
            assert state["live"] is True, cut
            assert (state["state"]["price"], state["state"]["name"]) == (amount, name), cut
    gone = as_of("--position", marks[-1].position)
    assert (gone["live"], gone["gone_reason"]) == (False, "soft_deleted")

    # -- why: the event that set the price, and its raw change --------------------------------
    at = (marks[3].time + timedelta(seconds=0.4)).isoformat()
    why = json.loads(
        seam(
            "history",
            "why",
            pipeline,
            str(PID),
            "price",
            "--at",
            at,
            "--index",
            str(index),
            "-o",
            "json",
        ).stdout
    )
    assert why["value"] == price(1500)
    assert why["event"]["event"]["event_type"] == "ProductPriceChanged"
    assert why["event"]["provenance"]["position"] == entries[2]["provenance"]["position"]
    raw = why["raw"]
    assert raw["op"] == "update"
    assert raw["offset"] == entries[2]["provenance"]["offset"]
    assert raw["after"]["price_cents"] == 1500
    assert raw["before"]["price_cents"] == 1250
    text = seam("history", "why", pipeline, str(PID), "price", "--at", at, "--index", str(index))
    assert "ProductPriceChanged" in text.stdout
    assert "raw change:" in text.stdout

    # -- an unknown key: one line, no traceback ------------------------------------------------
    missing = seam("history", "timeline", pipeline, "77777777", "--index", str(index), check=False)
    assert missing.returncode == 1
    assert "key 77777777 has no events" in missing.stderr
    assert "Traceback" not in missing.stderr

    # -- the HTTP router on the same index ---------------------------------------------------
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from seam.services.history_http import router
    from seam.services.history_index import HistoryIndex, read_raw_with
    from seam.streams.decode import decode
    from seam.streams.kafka import Kafka
    from seam.transforms.pipeline_file import load_pipeline

    spec = load_pipeline(catalog.pipeline)
    with Kafka(stack.kafka) as kafka:
        history = HistoryIndex(index, spec.history.topic, spec.declaration)
        app = FastAPI()
        app.include_router(router(history, raw_reader=read_raw_with(kafka, decode)))
        client = TestClient(app)
        got = client.get(f"/history/{PID}/as-of", params={"position": marks[1].position}).json()
        assert got["state"]["price"] == price(1250)
        why_http = client.get(f"/history/{PID}/why/price", params={"at": at}).json()
        assert why_http["raw"]["offset"] == raw["offset"]
        assert client.get("/history/77777777/timeline").status_code == 404
        history.close()


def test_the_index_follows_a_topic_of_three_partitions(
    stack: Settings, unique_name: Any, tmp_path: Path
) -> None:
    """Events produced straight to a history topic of three partitions (keyed as the worker
    keys them): a follower thread indexes what arrives, queries see it, a record that is no
    domain event is skipped, and the offsets it keeps are where the partitions end."""
    import threading

    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from seam.kafka_config import client_config
    from seam.legacy_db.files import pipeline_document
    from seam.services.history_index import HistoryIndex
    from seam.streams.kafka import Kafka
    from seam.transforms.declared.envelope import envelope
    from seam.transforms.pipeline_file import parse_pipeline

    topic = unique_name("history-follow")
    admin = AdminClient(client_config(stack.kafka))
    for future in admin.create_topics(
        [NewTopic(topic, num_partitions=3, replication_factor=1)]
    ).values():
        future.result(30)
    spec = parse_pipeline(pipeline_document("catalog"), "catalog")
    producer = Producer(client_config(stack.kafka, {"partitioner": "murmur2_random"}))

    def product(pid: int, cents: int, n: int) -> bytes:
        state = {
            "product_id": pid,
            "sku": f"F-{pid}",
            "name": f"Follow {pid}",
            "status": "active",
            "price": price(cents),
            "created_at": "2026-01-01T00:00:00Z",
        }
        provenance = {
            "table": "public.products",
            "position": {"lsn": 1000 + n, "tx_id": 50 + n},
            "source_ts": f"2026-12-01T00:00:{n:02d}Z",
            "snapshot": False,
            "topic": "nowhere",
            "partition": 0,
            "offset": n,
        }
        if n < 20:
            event = envelope(
                "ProductListed", "product", {"product_id": pid}, {"product": state}, provenance
            )
        else:
            data = {"old_price": price(1000), "new_price": price(cents)}
            event = envelope(
                "ProductPriceChanged", "product", {"product_id": pid}, data, provenance
            )
        return json.dumps(event).encode()

    index = HistoryIndex(tmp_path / "follow.sqlite", topic, spec.declaration)
    stop = threading.Event()
    kafka = Kafka(stack.kafka)
    follower = threading.Thread(target=index.follow, args=(kafka, stop), kwargs={"interval": 0.2})
    follower.start()
    try:
        for n in range(20):
            producer.produce(topic, product(n + 1, 1000, n), str(n + 1).encode())
        producer.produce(topic, b"not json", b"7")
        producer.flush(30)
        wait_for(lambda: index.count() == 20, 30, "the first 20 events indexed", step=0.2)
        assert index.as_of("7").state["price"] == price(1000)  # type: ignore[index]
        producer.produce(topic, product(7, 1999, 20), b"7")
        producer.flush(30)
        wait_for(
            lambda: index.as_of("7").state["price"] == price(1999),  # type: ignore[index]
            30,
            "the change followed",
            step=0.2,
        )
        ends = {r.partition: r.high for r in kafka.ranges(topic)}
        assert sum(ends.values()) == 22
        wait_for(lambda: index.offsets() == ends, 10, "the offsets at the ends", step=0.2)
        assert len({e.event.partition for e in index.timeline("7").entries}) == 1
        assert (
            len({index.timeline(str(pid)).entries[0].event.partition for pid in range(1, 21)}) == 3
        )
        earlier = index.as_of("7", at=datetime(2026, 12, 1, 0, 0, 19, tzinfo=UTC))
        assert earlier.state is not None
        assert earlier.state["price"] == price(1000)
    finally:
        stop.set()
        follower.join(10)
        kafka.close()
        index.close()
        for future in admin.delete_topics([topic]).values():
            future.result(30)

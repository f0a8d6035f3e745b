"""How fast the history index builds and answers as-of queries (issue 13, section 4).

    .venv/bin/python benchmarks/history_benchmark.py                    # 100,000 events
    .venv/bin/python benchmarks/history_benchmark.py --events 1000000   # the issue's figure

Produces N catalog-shaped domain events to a fresh history topic (3 partitions, keyed by the
product id as the transform worker keys them, murmur2): per product a ProductListed with the
whole state, then changes drawn like the legacy workload's (price, name, category,
description, identifiers, discontinue/reactivate, delist/relist), each with PostgreSQL
provenance (growing LSN and transaction id, source times one millisecond apart). Then:

* builds the index from offset 0 (`HistoryIndex.catch_up`): seconds, events/s, bytes on
  disk per event;
* a catch-up with nothing new (the cost of a query's `--update` when the index is current);
* as-of queries (`HistoryIndex.as_of`) for random products at random source times within
  their lives: p50, p99, max (target: p99 <= 50 ms);
* the same by source position (an LSN), timelines and why (without the raw read);
* for the body-storage choice: reading one event back from Kafka by partition/offset (what
  storing only offsets in the index would cost per event) against the index's own rows.

The index build and the queries run pinned to one core (the issue's condition) unless
`--all-cores`; producing the events is not measured against it. Deletes its topic and index at
the end unless --keep.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from seam.kafka_config import client_config
from seam.legacy_db.files import pipeline_document
from seam.services.history_index import HistoryIndex, micros
from seam.services.history_positions import Position
from seam.settings import load_settings
from seam.streams.kafka import Kafka, read_ranges
from seam.transforms.declared.envelope import envelope
from seam.transforms.delivery import produce_when_room
from seam.transforms.pipeline_file import parse_pipeline

START = datetime(2026, 1, 1, tzinfo=UTC)
CHANGES = (
    ("ProductPriceChanged", 30),
    ("ProductRenamed", 15),
    ("ProductRecategorized", 10),
    ("ProductDescriptionChanged", 15),
    ("ProductIdentifiersChanged", 5),
    ("ProductSupplierChanged", 5),
    ("ProductDiscontinued", 8),
    ("ProductReactivated", 4),
    ("ProductDelisted", 5),
    ("ProductRelisted", 3),
)


def state(pid: int, rng: random.Random) -> dict[str, Any]:
    return {
        "product_id": pid,
        "sku": f"SKU-{pid:07d}",
        "name": f"Product {pid} {rng.choice(['Widget', 'Gadget', 'Tool', 'Lamp'])}",
        "status": "active",
        "price": {"amount": f"{rng.randint(100, 99999) / 100:.2f}", "currency": "EUR"},
        "category": rng.choice(["Garden", "Kitchen", "Tools", "Lighting"]),
        "supplier": rng.choice(["Acme", "Globex", "Initech"]),
        "ean": f"{rng.randint(10**12, 10**13 - 1)}",
        "description": "A plain description of a product, a line or two long.",
        "created_at": "2025-06-01T10:00:00Z",
        "updated_at": "2025-06-01T10:00:00Z",
    }


class Maker:
    """Catalog-shaped events with provenance: one product's life at a time."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.lsn = 0x16B0000
        self.tx = 700
        self.moment = START
        self.types = [t for t, _ in CHANGES]
        self.weights = [w for _, w in CHANGES]

    def _event(self, kind: str, pid: int, data: dict[str, Any]) -> dict[str, Any]:
        self.lsn += 184
        self.tx += 1
        self.moment += timedelta(milliseconds=1)
        provenance = {
            "source_db": "catalog",
            "connector": "postgresql",
            "server_name": "catalog",
            "table": "public.products",
            "position": {
                "lsn": self.lsn,
                "tx_id": self.tx,
                "sequence": f'["{self.lsn - 184}","{self.lsn}"]',
            },
            "source_ts": self.moment.isoformat().replace("+00:00", "Z"),
            "snapshot": False,
            "topic": "catalog.public.products",
            "partition": 0,
            "offset": self.tx,
        }
        event = envelope(kind, "product", {"product_id": pid}, data, provenance)
        event["schema_version"] = 1
        return event

    def life(self, pid: int, count: int) -> list[dict[str, Any]]:
        rng = self.rng
        current = state(pid, rng)
        live = True
        out = [self._event("ProductListed", pid, {"product": dict(current)})]
        while len(out) < count:
            kind = rng.choices(self.types, self.weights)[0]
            if not live:
                current["status"] = "active"
                out.append(self._event("ProductRelisted", pid, {"product": dict(current)}))
                live = True
                continue
            if kind == "ProductDelisted":
                out.append(self._event(kind, pid, {"reason": "status_delisted"}))
                live = False
            elif kind == "ProductRelisted":
                continue
            elif kind in ("ProductDiscontinued", "ProductReactivated"):
                new = "discontinued" if kind == "ProductDiscontinued" else "active"
                if current["status"] == new:
                    continue
                out.append(self._event(kind, pid, {"previous_status": current["status"]}))
                current["status"] = new
            else:
                field = {
                    "ProductPriceChanged": "price",
                    "ProductRenamed": "name",
                    "ProductRecategorized": "category",
                    "ProductDescriptionChanged": "description",
                    "ProductSupplierChanged": "supplier",
                }.get(kind)
                if field == "price":
                    new_value: Any = {
                        "amount": f"{rng.randint(100, 99999) / 100:.2f}",
                        "currency": "EUR",
                    }
                elif field is not None:
                    new_value = f"{current[field]}+"
                if field is None:  # identifiers: sku and ean
                    data = {
                        "old_sku": current["sku"],
                        "new_sku": current["sku"] + "X",
                        "old_ean": current["ean"],
                        "new_ean": current["ean"],
                    }
                    current["sku"] += "X"
                else:
                    data = {f"old_{field}": current[field], f"new_{field}": new_value}
                    current[field] = new_value
                out.append(self._event(kind, pid, data))
        return out


def produce(bootstrap: Any, topic: str, events: int, per_key: int) -> tuple[int, float, int]:
    """Produce `events` events; returns (products, seconds, bytes)."""
    from confluent_kafka import Producer

    producer = Producer(
        client_config(
            bootstrap,
            {
                "linger.ms": 50,
                "compression.type": "lz4",
                "queue.buffering.max.messages": 1_000_000,
                "partitioner": "murmur2_random",
            },
        )
    )
    maker = Maker(7)
    started = time.perf_counter()
    made = size = 0
    pid = 0
    while made < events:
        pid += 1
        count = min(events - made, max(1, int(maker.rng.expovariate(1 / per_key)) + 1))
        for event in maker.life(pid, count):
            value = orjson.dumps(event)
            size += len(value)
            produce_when_room(producer, topic, str(pid).encode(), value)
            made += 1
        producer.poll(0)
    producer.flush(120)
    return pid, time.perf_counter() - started, size


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return f"p50 {p(0.50):.2f} ms, p99 {p(0.99):.2f} ms, max {ordered[-1] * 1000:.2f} ms (n={len(ordered)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="history events to produce")
    parser.add_argument("--per-key", type=int, default=10, help="mean events per product")
    parser.add_argument("--queries", type=int, default=2000, help="as-of queries to time")
    parser.add_argument("--keep", action="store_true", help="keep the topic and the index")
    parser.add_argument("--all-cores", action="store_true", help="do not pin to one core")
    args = parser.parse_args()

    settings = load_settings()
    bootstrap = settings.kafka
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"bench-history-{uuid.uuid4().hex[:8]}.product-events"
    admin = AdminClient(client_config(bootstrap))
    for future in admin.create_topics(
        [NewTopic(topic, num_partitions=3, replication_factor=1)]
    ).values():
        future.result(30)
    folder = Path(tempfile.mkdtemp(prefix="seam-history-bench-"))
    try:
        products, seconds, size = produce(bootstrap, topic, args.events, args.per_key)
        print(
            f"produced {args.events:,} events of {products:,} products "
            f"(avg {size / args.events:.0f} B) in {seconds:.1f}s to {topic}",
            flush=True,
        )
        if not args.all_cores:
            core = min(os.sched_getaffinity(0))
            os.sched_setaffinity(0, {core})  # this process and librdkafka's threads
            print(f"pinned to core {core}", flush=True)
        spec = parse_pipeline(pipeline_document("catalog"), "catalog")
        index = HistoryIndex(folder / "index.sqlite", topic, spec.declaration)
        with Kafka(bootstrap, timeout=30) as kafka:
            report = index.catch_up(kafka)
            print(
                f"index built: {report.indexed:,} events in {report.seconds:.1f}s "
                f"({report.indexed / report.seconds:,.0f} events/s), {report.bytes / 1e6:.0f} MB on disk "
                f"({report.bytes / max(1, report.indexed):.0f} B/event)",
                flush=True,
            )
            again = index.catch_up(kafka)
            print(f"catch-up with nothing new: {again.seconds * 1000:.0f} ms", flush=True)

            rng = random.Random(11)
            db = index._db()
            spans = {
                k: (lo, hi, p_lo, p_hi)
                for k, lo, hi, p_lo, p_hi in db.execute(
                    "SELECT key, min(occurred_us), max(occurred_us), min(p1), max(p1) FROM events GROUP BY key"
                )
            }
            keys = list(spans)
            timings: list[float] = []
            folded: list[int] = []
            for _ in range(args.queries):
                key = rng.choice(keys)
                lo, hi, _, _ = spans[key]
                moment = START + timedelta(microseconds=rng.randint(lo, hi) - micros(START))
                t0 = time.perf_counter()
                result = index.as_of(key, at=moment)
                timings.append(time.perf_counter() - t0)
                folded.append(result.events)
            print(
                f"as-of (time): {percentiles(timings)}; events folded per query: "
                f"mean {statistics.mean(folded):.1f}, max {max(folded)}",
                flush=True,
            )
            timings = []
            for _ in range(args.queries):
                key = rng.choice(keys)
                _, _, p_lo, p_hi = spans[key]
                position = Position("lsn", (rng.randint(p_lo, p_hi),), text="bench")
                t0 = time.perf_counter()
                index.as_of(key, position=position)
                timings.append(time.perf_counter() - t0)
            print(f"as-of (LSN):  {percentiles(timings)}", flush=True)
            for name, run in (
                ("timeline", lambda k: index.timeline(k)),
                ("why price", lambda k: index.why(k, "price")),
            ):
                timings = []
                for _ in range(min(args.queries, 1000)):
                    key = rng.choice(keys)
                    t0 = time.perf_counter()
                    run(key)
                    timings.append(time.perf_counter() - t0)
                print(f"{name + ':':13} {percentiles(timings)}", flush=True)
            # Bodies from Kafka by offset instead of from the index.
            rows = db.execute(
                'SELECT partition, "offset" FROM events ORDER BY random() LIMIT 50'
            ).fetchall()
            timings = []
            for partition, offset in rows:
                t0 = time.perf_counter()
                for _msg in read_ranges(kafka, topic, {partition: (offset, offset + 1)}):
                    pass
                timings.append(time.perf_counter() - t0)
            print(f"one event read back from Kafka by offset: {percentiles(timings)}", flush=True)
        index.close()
    finally:
        if not args.keep:
            with contextlib.suppress(Exception):
                for future in admin.delete_topics([topic]).values():
                    future.result(30)
            for path in folder.iterdir():
                path.unlink()
            folder.rmdir()
        else:
            print(f"kept: topic {topic}, index {folder / 'index.sqlite'}")


if __name__ == "__main__":
    main()

"""How long `seam streams tail` and `seam streams history` take on a large change topic.

    .venv/bin/python benchmarks/stream_benchmark.py [--events 1000000] [--partitions 3] [--keep]

Fills a fresh topic on the local stack's Kafka with Debezium-shaped change events (JSON
without schemas, typical catalog rows, 100 events per key, keyed and partitioned as Kafka
Connect does: murmur2 of the key bytes), then times, as a user would run them:

* `seam streams tail TOPIC --from beginning --limit 10`   (target < 2 s)
* `seam streams history TOPIC KEY`                         (target < 10 s)

Each is run as the real command in a subprocess (start-up included). The topic is deleted
afterwards unless --keep is given (then --topic reuses it on the next run).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from seam.kafka_config import KafkaSettings, client_config
from seam.settings import load_settings
from seam.transforms.delivery import produce_when_room

SEAM = str(Path(sys.executable).with_name("seam"))
EVENTS_PER_KEY = 100


def fill(bootstrap: KafkaSettings | str, topic: str, events: int, partitions: int) -> float:
    admin = AdminClient(client_config(bootstrap))
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[
        topic
    ].result(timeout=30)
    producer = Producer(
        client_config(
            bootstrap,
            {
                "partitioner": "murmur2_random",  # the Java client's (and Connect's) partitioner
                "compression.type": "lz4",
                "linger.ms": 50,
                "batch.size": 1_000_000,
                "queue.buffering.max.messages": 500_000,
            },
        )
    )
    keys = max(1, events // EVENTS_PER_KEY)
    source = {
        "version": "3.5.0.Final",
        "connector": "postgresql",
        "name": "bench",
        "snapshot": "false",
        "db": "catalog",
        "schema": "public",
        "table": "products",
    }
    start = time.perf_counter()
    for i in range(events):
        key_id = i % keys
        after = {
            "id": key_id,
            "sku": f"SKU-{key_id:08d}",
            "name": f"Product {key_id}",
            "price": f"{(i % 10000) / 100:.2f}",
            "stock": i % 1000,
            "active": True,
            "updated_at": 1709287872123456 + i,
        }
        ts = 1795392672132 + i
        value = {
            "before": None,
            "after": after,
            "source": {**source, "ts_ms": ts, "txId": 1000 + i, "lsn": 26687920 + i * 100},
            "op": "c" if i < keys else "u",
            "ts_ms": ts,
        }
        produce_when_room(producer, topic, b'{"id":%d}' % key_id, orjson.dumps(value))
        if i % 10_000 == 0:
            producer.poll(0)
    producer.flush(120)
    return time.perf_counter() - start


def timed(*args: str) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run([SEAM, *args], capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"seam {' '.join(args)} failed: {result.stderr}")
    return elapsed, result.stdout


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--topic", default=None, help="reuse this topic instead of filling one")
    parser.add_argument("--keep", action="store_true", help="keep the topic afterwards")
    args = parser.parse_args()

    bootstrap = load_settings().kafka
    topic = args.topic or f"seam_bench_{uuid.uuid4().hex[:8]}.public.products"
    admin = AdminClient(client_config(bootstrap))
    try:
        if args.topic is None:
            took = fill(bootstrap, topic, args.events, args.partitions)
            print(
                f"filled {topic}: {args.events} events, {args.partitions} partitions in {took:.1f}s"
            )
        kafka = ["--kafka", bootstrap.bootstrap_servers, "streams"]
        t_tail, out = timed(
            *kafka, "tail", topic, "--from", "beginning", "--limit", "10", "-o", "json"
        )
        assert len(out.splitlines()) == 10, out
        print(f"tail --from beginning --limit 10: {t_tail:.2f}s (target < 2 s)")
        key = str(max(1, args.events // EVENTS_PER_KEY) // 2)
        t_hist, out = timed(*kafka, "history", topic, key, "-o", "json")
        found = len(out.splitlines())
        print(f"history of key {key} ({found} events): {t_hist:.2f}s (target < 10 s)")
        t_newest, out = timed(*kafka, "tail", topic, "--limit", "10", "-o", "json")
        print(f"tail (newest 10): {t_newest:.2f}s")
    finally:
        if not args.keep and args.topic is None:
            admin.delete_topics([topic])[topic].result(timeout=60)
        elif args.keep:
            print(f"kept topic {topic}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

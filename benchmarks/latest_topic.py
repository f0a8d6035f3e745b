"""A latest topic filled the way the transform fills one, for the benchmarks that need a
large one (parity_benchmark.py, service_benchmark.py): compacted, 3 partitions, written in
transactions of 50,000 states by one idempotent, batching producer."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

TRANSACTION = 50_000  # states per transaction


def fill(settings: Any, topic: str, states: Iterable[tuple[str, bytes]]) -> float:
    """Create `topic` and write `states` (key text, state JSON); the seconds it took."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(settings.kafka.client_config())
    admin.create_topics([NewTopic(topic, 3, 1, config={"cleanup.policy": "compact"})])[
        topic
    ].result(timeout=30)
    producer = Producer(
        settings.kafka.client_config(
            {
                "transactional.id": f"{topic}-fill",
                "linger.ms": 50,
                "batch.size": 1_000_000,
                "compression.type": "lz4",
                "queue.buffering.max.messages": 500_000,
            }
        )
    )
    producer.init_transactions(30)
    began = time.monotonic()
    in_transaction = 0
    for key, value in states:
        if in_transaction == 0:
            producer.begin_transaction()
        while True:
            try:
                producer.produce(topic, key=key.encode(), value=value)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        in_transaction += 1
        if in_transaction == TRANSACTION:
            producer.commit_transaction(120)
            in_transaction = 0
    if in_transaction:
        producer.commit_transaction(120)
    producer.flush(60)
    return time.monotonic() - began

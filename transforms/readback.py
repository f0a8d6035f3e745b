"""Read a pipeline's output topics back: every record to the current end, read_committed.

For tests, parity checks and services that load a memory image from the latest topic.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from seam.kafka_config import KafkaSettings, kafka_settings
from seam.streams.kafka import Kafka


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes | None]

    def json(self) -> Any:
        return None if self.value is None else orjson.loads(self.value)


def read_to_end(
    kafka: KafkaSettings | str, topic: str, *, timeout: float = 60.0, committed_only: bool = True
) -> list[Record]:
    """Every record of `topic` from offset 0 to the end as it is now (only committed
    transactions' records when `committed_only`), in partition then offset order."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    settings = kafka_settings(kafka)
    with Kafka(settings, timeout=min(timeout, 30.0)) as cluster:
        partitions = cluster.partitions(topic)
    consumer = Consumer(
        settings.client_config(
            {
                "group.id": f"seam-readback-{uuid.uuid4().hex[:12]}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "isolation.level": "read_committed" if committed_only else "read_uncommitted",
            }
        )
    )
    try:
        ends: dict[int, int] = {}
        for p in partitions:
            _lo, hi = watermarks(consumer, TopicPartition(topic, p), timeout)
            if hi > 0:
                ends[p] = hi
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        out: list[Record] = []
        pending = set(ends)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition())
                    continue
                offset = msg.offset() or 0
                out.append(
                    Record(
                        topic,
                        msg.partition() or 0,
                        offset,
                        msg.key(),
                        msg.value(),
                        _headers(msg.headers()),
                    )
                )
                if offset + 1 >= ends[msg.partition() or 0]:
                    pending.discard(msg.partition() or 0)
        if pending:
            raise TimeoutError(
                f"reading {topic} to its end timed out (partitions {sorted(pending)})"
            )
        out.sort(key=lambda r: (r.partition, r.offset))
        return out
    finally:
        consumer.close()


def _headers(raw: Any) -> dict[str, bytes | None]:
    pairs = raw.items() if isinstance(raw, dict) else raw or ()
    return {k: v.encode() if isinstance(v, str) else v for k, v in pairs}


def watermarks(consumer: Any, tp: Any, timeout: float) -> tuple[int, int]:
    """(low, high) of a partition, retrying while a new topic's leader is being elected
    (or its metadata has not reached the client yet)."""
    from confluent_kafka import KafkaError, KafkaException

    not_yet = {
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
    }
    deadline = time.monotonic() + timeout
    while True:
        try:
            lo, hi = consumer.get_watermark_offsets(tp, timeout=max(1.0, min(10.0, timeout)))
            return int(lo), int(hi)
        except KafkaException as exc:
            error = exc.args[0]
            if time.monotonic() > deadline or not (error.retriable() or error.code() in not_yet):
                raise
            time.sleep(0.2)


def compacted(records: list[Record]) -> dict[bytes, Any]:
    """The compacted view: the last value per key, keys whose last record is a tombstone
    left out (what a consumer of the latest topic ends up with)."""
    view: dict[bytes, Any] = {}
    for r in records:
        if r.key is None:
            continue
        if r.value is None:
            view.pop(r.key, None)
        else:
            view[r.key] = r.json()
    return view

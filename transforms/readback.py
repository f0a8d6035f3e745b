"""Read a pipeline's output topics back: every record to the current end, read_committed.

For tests, parity checks and services that load a memory image from the latest topic.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from seam.kafka_config import KafkaSettings, kafka_settings
from seam.streams.kafka import Kafka, read_ranges


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
    transactions' records when `committed_only`), in partition then offset order. A read
    that stops making progress for `timeout` (at most 30 s) raises KafkaUnavailableError."""
    from confluent_kafka import TopicPartition

    with Kafka(kafka_settings(kafka), timeout=min(timeout, 30.0)) as cluster:
        probe = cluster.consumer()
        try:
            ends: dict[int, tuple[int, int | None]] = {
                p: (0, hi)
                for p in cluster.partitions(topic)
                for _lo, hi in [watermarks(probe, TopicPartition(topic, p), timeout)]
                if hi > 0
            }
        finally:
            cluster.release(probe)
        out = [
            Record(
                topic,
                msg.partition() or 0,
                msg.offset() or 0,
                msg.key(),
                msg.value(),
                _headers(msg.headers()),
            )
            for msg in read_ranges(cluster, topic, ends, committed_only=committed_only)
        ]
    out.sort(key=lambda r: (r.partition, r.offset))
    return out


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

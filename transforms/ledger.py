"""The worker's reader of the own-writes ledger (`seam.transforms.own_writes`).

The writer produces a ledger record (and flushes it) before it commits its PostgreSQL
transaction, so any change the worker has polled was in the ledger before the worker polled
it. Reading the ledger up to end offsets fetched after the poll is therefore sure to take in
the writer's entry for every change of the batch: one end-offsets request per batch, then
only what was appended since the last batch.

The reader has no consumer group: it assigns every partition of the ledger itself. At start
it seeks to the newest `OwnOrigin.bound` records of each partition (older ids would be
evicted from the bounded set anyway; the topic's retention bounds the rest).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from seam.transforms.calls import CallTimedOutError, bounded
from seam.transforms.delivery import BatchFailedError, describe
from seam.transforms.own_writes import OwnOrigin
from seam.transforms.readback import watermarks


class LedgerReader:
    """Keeps `origin.tx_ids` up to date with the ledger topic `topic`."""

    def __init__(
        self,
        topic: str,
        origin: OwnOrigin,
        make_consumer: Callable[[dict[str, Any]], Any],
        timeout: float,
    ) -> None:
        self.topic = topic
        self.origin = origin
        self._make_consumer = make_consumer
        self.timeout = timeout
        self._consumer: Any = None
        self._next: dict[int, int] = {}  # partition -> the next offset to read
        self.catch_ups = 0  # batches that read the ledger (benchmarks)
        self.seconds = 0.0  # time spent in catch_up, the first one's start excluded
        self.start_seconds = 0.0  # the consumer's start: metadata, offsets, assignment

    def _start(self) -> Any:
        from confluent_kafka import TopicPartition

        consumer = self._make_consumer(
            {
                "group.id": "seam-ledger-unused",  # required by the client; never joined
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                # An entry of a transaction the writer rolled back names an id no change
                # carries: harmless, and read_uncommitted keeps the end offsets reachable.
                "isolation.level": "read_uncommitted",
                "fetch.wait.max.ms": 10,
            }
        )
        try:
            meta = consumer.list_topics(self.topic, timeout=self.timeout)
            partitions = sorted(meta.topics[self.topic].partitions)
            assignment = []
            for p in partitions:
                lo, hi = watermarks(consumer, TopicPartition(self.topic, p), self.timeout)
                start = max(lo, hi - self.origin.bound)
                self._next[p] = start
                assignment.append(TopicPartition(self.topic, p, start))
            consumer.assign(assignment)
        except Exception:
            with contextlib.suppress(Exception):
                consumer.close()
            raise
        self._consumer = consumer
        return consumer

    def catch_up(self) -> None:
        """Read the ledger to its end offsets as they are now; BatchFailedError when that
        fails or takes longer than the timeout (the worker reads the batch again)."""
        began = time.monotonic()
        from confluent_kafka import KafkaException, TopicPartition

        try:
            consumer = self._consumer
            if consumer is None:
                consumer = self._start()
                self.start_seconds = time.monotonic() - began
                began = time.monotonic()
            targets = {}
            for p, at in self._next.items():
                _lo, hi = bounded(
                    "reading the ledger's end offsets",
                    self.timeout,
                    consumer.get_watermark_offsets,
                    TopicPartition(self.topic, p),
                    timeout=self.timeout,
                    cached=False,
                )
                if hi > at:
                    targets[p] = hi
            deadline = began + self.timeout
            while targets:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BatchFailedError(
                        f"reading the own-writes ledger {self.topic} to its end timed out"
                    )
                messages = consumer.consume(10000, min(left, 0.5))
                for msg in messages:
                    if msg.error() is not None:
                        continue
                    p, offset = msg.partition(), msg.offset()
                    self.origin.add(msg.value())
                    self._next[p] = offset + 1
                    if p in targets and offset + 1 >= targets[p]:
                        del targets[p]
                if not messages:
                    # A transaction marker last in a partition is never delivered: the
                    # client's position steps over it.
                    for tp in consumer.position([TopicPartition(self.topic, p) for p in targets]):
                        if tp.offset >= targets[tp.partition]:
                            self._next[tp.partition] = tp.offset
                            del targets[tp.partition]
        except (KafkaException, CallTimedOutError) as exc:
            raise BatchFailedError(
                f"reading the own-writes ledger {self.topic} failed ({describe(exc)})"
            ) from None
        self.catch_ups += 1
        self.seconds += time.monotonic() - began

    def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                consumer.close()

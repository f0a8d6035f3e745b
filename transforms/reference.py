"""Reference data for the stages that keep it (`ObservesReference`): read in full before the
first record, then kept current while the worker runs.

Every worker reads every partition of the reference topics (no consumer group), from the
beginning, up to the end offsets seen at start, before it processes a record; afterwards
each loop of the worker feeds what has arrived since.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from typing import Any

from seam.changes import RawRecord
from seam.transforms.pipeline import Pipeline
from seam.transforms.readback import watermarks


class ReferenceTimeoutError(Exception):
    """The reference topics were not read to their end in time."""


class ReferenceFeed:
    """Feeds `pipeline.observe` from its reference topics through one consumer."""

    def __init__(
        self,
        pipeline: Pipeline,
        make_consumer: Callable[[dict[str, Any]], Any],
        timeout: float,
        on_record: Callable[[], None] = lambda: None,
    ) -> None:
        self.pipeline = pipeline
        self._make_consumer = make_consumer
        self.timeout = timeout
        self._on_record = on_record
        self._consumer: Any = None

    def load(self, stopping: Callable[[], bool]) -> None:
        """Read every reference topic to its current end; ReferenceTimeoutError when that
        takes longer than max(60 s, the timeout)."""
        topics = self.pipeline.reference_topics
        if not topics:
            return
        from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

        consumer = self._make_consumer(
            {
                "group.id": f"seam-transform-ref-{uuid.uuid4().hex[:12]}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                # The end is where the partition says so: a compacted topic's last offsets
                # may be gone, and transaction markers are never delivered.
                "enable.partition.eof": True,
            }
        )
        self._consumer = consumer
        targets: dict[tuple[str, int], int] = {}
        assignment = []
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=self.timeout)
            for p in meta.topics[topic].partitions:
                assignment.append(TopicPartition(topic, p, OFFSET_BEGINNING))
                _lo, hi = watermarks(consumer, TopicPartition(topic, p), self.timeout)
                if hi > 0:
                    targets[(topic, p)] = hi
        consumer.assign(assignment)
        deadline = time.monotonic() + max(60.0, self.timeout)
        while targets and time.monotonic() < deadline and not stopping():
            for msg in consumer.consume(1000, 0.5):
                tp = (msg.topic() or "", msg.partition() or 0)
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        targets.pop(tp, None)
                    continue
                self._observe(msg)
                offset = msg.offset()
                if tp in targets and offset is not None and offset + 1 >= targets[tp]:
                    del targets[tp]
        if targets:
            raise ReferenceTimeoutError(
                f"reading the reference topics {topics} to their end timed out"
            )

    def refresh(self) -> None:
        """Feed what has arrived since the last call (never waits)."""
        if self._consumer is None:
            return
        for msg in self._consumer.consume(1000, 0):
            if not msg.error():  # partition EOF events included
                self._observe(msg)

    def _observe(self, msg: Any) -> None:
        self.pipeline.observe(RawRecord.from_message(msg))
        self._on_record()

    def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                consumer.close()

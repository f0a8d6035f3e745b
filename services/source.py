"""When has the transform published every change up to a legacy source position?

The transform commits, atomically with its outputs, each raw-topic partition's high-water
marks of the source positions it processed, as the commit metadata of its consumer group's
offsets (`seam.transforms.redelivery.Marks`). Reading them back (`Consumer.committed()`
returns each partition's offset with its metadata) tells how far the transform got:

1. some partition's mark is at or past the position: Debezium has streamed past the
   writer's transaction (it streams in commit order), so all its changes are in the raw
   topics; note the raw topics' end offsets now;
2. every partition's mark is at or past the position, or the group has committed that
   partition up to the end offset noted in 1: every change of the transaction has gone
   through the transform, and its outputs are committed in the latest topic.

The image then waits until it has applied the latest topic's end offsets of that moment.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from seam.kafka_config import KafkaSettings
from seam.services.position import SourcePosition
from seam.streams.kafka import Kafka
from seam.transforms.redelivery import parse_metadata


class SourceWatch:
    """Reads a transform group's committed offsets and marks (no joining, no committing)."""

    def __init__(self, kafka: KafkaSettings, group: str, inputs: Sequence[str]) -> None:
        self.kafka = kafka
        self.group = group
        self.inputs = tuple(inputs)

    def wait(self, position: SourcePosition, deadline: float) -> bool:
        """Block until the transform has published every change up to `position` (True),
        or the monotonic `deadline` passes (False)."""
        from confluent_kafka import TopicPartition

        with Kafka(self.kafka, timeout=max(1.0, min(5.0, deadline - time.monotonic()))) as cluster:
            partitions = [
                TopicPartition(topic, p) for topic in self.inputs for p in cluster.partitions(topic)
            ]
            from confluent_kafka import Consumer

            group = Consumer(
                cluster.settings.client_config(
                    {"group.id": self.group, "enable.auto.commit": False}
                )
            )
            try:
                return self._wait(cluster, group, partitions, position, deadline)
            finally:
                group.close()

    def _wait(
        self,
        cluster: Kafka,
        group: Any,
        partitions: list[Any],
        position: SourcePosition,
        deadline: float,
    ) -> bool:
        ends: dict[tuple[str, int], int] | None = None
        probe = cluster.consumer()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            committed = cluster.call(
                "reading the transform's committed offsets",
                group.committed,
                partitions,
                timeout=max(0.5, remaining),
            )
            passed = {
                (tp.topic, tp.partition)
                for tp in committed
                if any(
                    position.reached_by(stream, mark)
                    for stream, mark in parse_metadata(tp.metadata).items()
                )
            }
            if ends is None and passed:
                ends = {
                    (tp.topic, tp.partition): hi
                    for tp in partitions
                    for _lo, hi in [
                        cluster.call(
                            "reading the raw topics' end offsets",
                            probe.get_watermark_offsets,
                            tp,
                            timeout=max(0.5, remaining),
                        )
                    ]
                }
            if ends is not None and all(
                (tp.topic, tp.partition) in passed or tp.offset >= ends[(tp.topic, tp.partition)]
                for tp in committed
            ):
                return True
            time.sleep(0.02)

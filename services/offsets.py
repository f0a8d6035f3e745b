"""End offsets of many partitions in one ListOffsets request (not one round trip each)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from seam.streams.kafka import Kafka, offset_spec


def end_offsets(
    cluster: Kafka, partitions: Sequence[tuple[str, int]], *, committed_only: bool
) -> dict[tuple[str, int], int]:
    """(topic, partition) -> end offset: the last stable offset (the end of committed
    transactions) when `committed_only`, else the high watermark."""
    from confluent_kafka import IsolationLevel, TopicPartition

    if not partitions:
        return {}
    latest = offset_spec().latest()
    request = {TopicPartition(t, p): latest for t, p in partitions}
    level = IsolationLevel.READ_COMMITTED if committed_only else IsolationLevel.READ_UNCOMMITTED
    futures: dict[Any, Any] = cluster.call(
        "listing end offsets",
        cluster.admin.list_offsets,
        request,
        isolation_level=level,
        request_timeout=cluster.timeout,
    )
    out = {}
    for tp, future in futures.items():
        info = cluster.call("listing end offsets", future.result, timeout=cluster.timeout + 1)
        out[(tp.topic, tp.partition)] = int(info.offset)
    return out

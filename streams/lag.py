"""Consumer-group lag: how far each group's committed offsets trail the topics' ends."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from seam.streams.kafka import GroupNotFoundError, Kafka, offset_spec


@dataclass(frozen=True, slots=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None  # None: the group never committed for this partition
    high: int

    @property
    def lag(self) -> int | None:
        return None if self.committed is None else max(0, self.high - self.committed)


@dataclass(frozen=True)
class GroupLag:
    group: str
    state: str
    partitions: list[PartitionLag]

    @property
    def total_lag(self) -> int:
        return sum(p.lag or 0 for p in self.partitions)

    @property
    def topics(self) -> list[str]:
        return sorted({p.topic for p in self.partitions})


def group_names(kafka: Kafka) -> dict[str, str]:
    """Every consumer group and its state."""
    # Listing groups of an unreachable cluster answers "none" rather than failing:
    # a metadata request first turns that into the clear error.
    kafka.topic_names()
    future = kafka.call(
        "listing consumer groups", kafka.admin.list_consumer_groups, request_timeout=kafka.timeout
    )
    result = kafka.call("listing consumer groups", future.result, timeout=kafka.timeout + 1)
    return {g.group_id: str(getattr(g.state, "name", g.state)) for g in result.valid}


def group_lag(kafka: Kafka, group: str, state: str | None = None) -> GroupLag:
    """Committed offset, high watermark and lag of every partition `group` committed for."""
    from confluent_kafka import ConsumerGroupTopicPartitions

    OffsetSpec = offset_spec()  # noqa: N806

    if state is None:
        groups = group_names(kafka)
        if group not in groups:
            known = ", ".join(sorted(groups)) or "none"
            raise GroupNotFoundError(
                f"no consumer group '{group}' on Kafka at {kafka.bootstrap_servers} (groups: {known})",
                hint="run `seam streams lag` without a group to list them",
            )
        state = groups[group]
    futures = kafka.call(
        "reading committed offsets",
        kafka.admin.list_consumer_group_offsets,
        [ConsumerGroupTopicPartitions(group)],
        request_timeout=kafka.timeout,
    )
    result = kafka.call(
        "reading committed offsets", futures[group].result, timeout=kafka.timeout + 1
    )
    committed: dict[str, dict[int, int | None]] = defaultdict(dict)
    for tp in result.topic_partitions or []:
        committed[tp.topic][tp.partition] = tp.offset if tp.offset >= 0 else None
    partitions = []
    for topic, offsets in sorted(committed.items()):
        highs = kafka.list_offsets(topic, offsets, OffsetSpec.latest())
        for p in sorted(offsets):
            partitions.append(PartitionLag(topic, p, offsets[p], highs[p][0]))
    return GroupLag(group, state, partitions)


def all_groups_lag(kafka: Kafka) -> list[GroupLag]:
    return [group_lag(kafka, g, state) for g, state in sorted(group_names(kafka).items())]

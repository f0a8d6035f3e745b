"""What topics a cluster has, how much they hold, and which topic carries a table."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from seam.streams.kafka import Kafka, TopicNotFoundError, offset_spec

# Kafka's own topics start with "__"; Connect's storage topics and Debezium's heartbeat
# and schema-history topics are plumbing, not change streams.
_INTERNAL_SUFFIXES: Final = (
    "connect-offsets",
    "connect-configs",
    "connect-status",
    ".schema-history",
    "-schema-history",
)


def is_internal(name: str) -> bool:
    return (
        name.startswith("_")
        or name.startswith("__debezium-heartbeat")
        or name.endswith(_INTERNAL_SUFFIXES)
    )


@dataclass(frozen=True, slots=True)
class TopicSummary:
    name: str
    partitions: int
    # Offsets in use, sum of (high - low) over partitions: the record count for Connect's
    # topics; one more per committed transaction and partition on topics written
    # exactly once (its marker), fewer live records after compaction. Counting records
    # would mean reading them all.
    offsets: int
    first_ts_ms: int | None  # timestamp of the earliest record still in the topic
    last_ts_ms: int | None  # the largest record timestamp (the newest, for CDC topics)
    internal: bool


def list_topics(
    kafka: Kafka, *, prefix: str | None = None, include_internal: bool = False
) -> list[TopicSummary]:
    """Every topic (optionally only those starting with `prefix`) with its size and time span."""
    OffsetSpec = offset_spec()  # noqa: N806

    names = kafka.topic_names()
    out = []
    for name in sorted(names):
        internal = is_internal(name)
        if internal and not include_internal:
            continue
        if prefix and not name.startswith(prefix):
            continue
        parts = range(names[name])
        ranges = kafka.ranges(name, parts)
        offsets = sum(r.count for r in ranges)
        first = last = None
        if offsets:
            # The broker answers both from its indexes: no record is read.
            earliest = kafka.list_offsets(name, parts, OffsetSpec.for_timestamp(0))
            newest = kafka.list_offsets(name, parts, OffsetSpec.max_timestamp())
            firsts = [ts for offset, ts in earliest.values() if offset >= 0 and ts >= 0]
            lasts = [ts for offset, ts in newest.values() if offset >= 0 and ts >= 0]
            first = min(firsts) if firsts else None
            last = max(lasts) if lasts else None
        out.append(TopicSummary(name, len(parts), offsets, first, last, internal))
    return out


def resolve_topic(kafka: Kafka, name: str) -> str:
    """`name` if it is a topic; else the one topic for a table named `name`
    (`orders`, `public.orders` or `shop.public.orders`): Debezium names change
    topics `<topic.prefix>.<schema or database>.<table>`. When several match (the same table
    captured from two databases), the error lists each with the shortest name that picks it.
    """
    names = kafka.topic_names()
    if name in names:
        return name
    matches = sorted(t for t in names if t.endswith("." + name) and not is_internal(t))
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        picks = [(shortest_name(t, matches), t) for t in matches]
        choices = ", ".join(short if short == t else f"{short} ({t})" for short, t in picks)
        raise TopicNotFoundError(
            f"'{name}' matches {len(matches)} topics: {', '.join(matches)}",
            hint=f"name one of them: {choices}",
        )
    raise TopicNotFoundError(
        f"no topic named '{name}' and none for a table of that name on Kafka at "
        f"{kafka.bootstrap_servers}",
        hint="list the topics with `seam streams list`; is the connector running? "
        "Check --kafka / SEAM_KAFKA_BOOTSTRAP_SERVERS if this is the wrong cluster",
    )


def shortest_name(topic: str, among: Iterable[str]) -> str:
    """The shortest dot-suffix of `topic` (`public.orders`) that no other of `among` ends
    with: what `resolve_topic` takes for it; the topic itself when no suffix is unique."""
    others = [t for t in among if t != topic]
    parts = topic.split(".")
    for start in range(len(parts) - 1, 0, -1):
        suffix = ".".join(parts[start:])
        if not any(t == suffix or t.endswith("." + suffix) for t in others):
            return suffix
    return topic

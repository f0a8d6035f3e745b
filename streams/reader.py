"""Reading decoded change events from a topic: from a start point forward, or the newest N.

Used by `seam streams tail`; read-only (see `seam.streams.kafka`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from seam.changes import ChangeEvent, RawRecord, Undecodable
from seam.streams.decode import decode
from seam.streams.filters import EventFilter
from seam.streams.kafka import Kafka, PartitionRange, StreamsUsageError, read_ranges

Item = ChangeEvent | Undecodable
# How a record becomes an item: `decode`, or with column types (`TopicTypes.decode`).
Decoder = Callable[[RawRecord], Item]


@dataclass(frozen=True, slots=True)
class StartAt:
    """Where reading starts. `newest` means: the last N matching events."""

    kind: Literal["newest", "beginning", "latest", "time", "offset"]
    value: int | None = None  # epoch ms for `time`, the offset for `offset`


def parse_from(text: str | None) -> StartAt:
    """`beginning`, `latest`, an offset (`1200`), or an ISO time (`2026-11-23T10:00:00`,
    UTC unless it carries an offset like `+02:00`)."""
    if text is None:
        return StartAt("newest")
    value = text.strip()
    if value.lower() in ("beginning", "earliest", "start"):
        return StartAt("beginning")
    if value.lower() in ("latest", "end", "now"):
        return StartAt("latest")
    if value.isdigit():
        return StartAt("offset", int(value))
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise StreamsUsageError(
            f"--from {text!r} is not 'beginning', 'latest', an offset or an ISO time",
            hint="e.g. --from beginning, --from 1200, --from 2026-11-23T10:00:00Z",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return StartAt("time", int(moment.timestamp() * 1000))


def keep(filt: EventFilter, record: RawRecord, decoder: Decoder = decode) -> Item | None:
    """The decoded record if the filter keeps it: a change event by `matches`, any other
    record (a domain event, a heartbeat, garbage) by `matches_record`."""
    if not filt.may_match_raw(record):
        return None
    item = decoder(record)
    if isinstance(item, Undecodable):
        return item if filt.matches_record(item) else None
    return item if filt.matches(item) else None


def _sort_key(item: Item) -> tuple[int, int, int]:
    raw = item.raw
    return (raw.timestamp_ms or 0, raw.partition, raw.offset)


def newest(
    kafka: Kafka,
    topic: str,
    ranges: list[PartitionRange],
    filt: EventFilter,
    n: int,
    decoder: Decoder = decode,
) -> list[Item]:
    """The last `n` records the filter keeps, oldest first.

    Reads backwards in growing windows per partition (newest offsets first) until `n`
    matches are found or the partitions are exhausted; across partitions the result is
    ordered by record timestamp.
    """
    upper = {r.partition: r.high for r in ranges}
    lower = {r.partition: r.low for r in ranges}
    window = n if filt.empty else max(4 * n, 1000)
    found: list[Item] = []
    while True:
        todo: dict[int, tuple[int, int | None]] = {
            p: (max(lower[p], upper[p] - window), upper[p]) for p in upper if upper[p] > lower[p]
        }
        if not todo:
            break
        for msg in read_ranges(kafka, topic, todo):
            item = keep(filt, RawRecord.from_message(msg), decoder)
            if item is not None:
                found.append(item)
        for p, (start, _end) in todo.items():
            upper[p] = start
        if len(found) >= n:
            break
        window *= 4
    found.sort(key=_sort_key)
    return found[-n:]


def read_events(
    kafka: Kafka,
    topic: str,
    *,
    start: StartAt,
    filt: EventFilter,
    limit: int | None = None,
    follow: bool = False,
    decoder: Decoder = decode,
) -> Iterator[Item]:
    """The records of `topic` the filter keeps, from `start`, decoded by `decoder`.

    `newest` yields the last `limit` (default 10) matches, then follows if asked. The other
    starts read forward up to the end of the topic as it was when reading began (or on and
    on with `follow`; `latest` always waits for new records) and stop after `limit`.
    """
    ranges = kafka.ranges(topic)
    if start.kind == "newest":
        yield from newest(kafka, topic, ranges, filt, limit or 10, decoder)
        if not follow:
            return
        starts = {r.partition: r.high for r in ranges}
        limit = None
    elif start.kind == "beginning":
        starts = {r.partition: r.low for r in ranges}
    elif start.kind == "latest":
        starts = {r.partition: r.high for r in ranges}
        follow = True
    elif start.kind == "offset":
        assert start.value is not None
        starts = {r.partition: min(max(start.value, r.low), r.high) for r in ranges}
    else:
        assert start.value is not None
        found = kafka.offsets_for_time(topic, [r.partition for r in ranges], start.value)
        starts = {
            r.partition: (found[r.partition] if found.get(r.partition, -1) >= 0 else r.high)
            for r in ranges
        }
    spans: dict[int, tuple[int, int | None]] = {
        r.partition: (starts[r.partition], None if follow else r.high) for r in ranges
    }
    count = 0
    for msg in read_ranges(kafka, topic, spans):
        item = keep(filt, RawRecord.from_message(msg), decoder)
        if item is None:
            continue
        yield item
        count += 1
        if limit is not None and count >= limit:
            return

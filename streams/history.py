"""The whole life of one row: every change event of one key, oldest first, as a timeline.

With a key, only one partition needs reading: Kafka Connect produces with the Java
client's default partitioner (murmur2 of the key bytes), and so do seam's transform workers.
The key bytes are rebuilt from the user's key in the exact form the topic's records have
them (learned from one sample record of the topic: Debezium's JSON key, schema included, or
a plain text key like seam's domain-event topics'); if that is not possible, or the key is
not found in that partition, every partition is read.

On a topic of other records (domain events, latest states) the history is the records of
the key, oldest first (`KeyHistory.records`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from seam.changes import UNAVAILABLE, ChangeEvent, Op, RawRecord, Undecodable
from seam.streams.decode import decode
from seam.streams.filters import EventFilter
from seam.streams.kafka import Kafka, PartitionRange, read_ranges
from seam.streams.partitioner import partition_for_key


class _Unknown:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = _Unknown()  # an old value no event ever told


@dataclass(frozen=True, slots=True)
class Change:
    column: str
    old: Any  # UNKNOWN when no earlier event carried it
    new: Any


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    event: ChangeEvent
    changes: tuple[Change, ...]  # what this event changed, as far as it can be known
    state: Mapping[str, Any] | None  # the row after this event (None once deleted)
    full_row: bool = False  # no earlier row to compare with: `changes` is the whole row


@dataclass(frozen=True)
class KeyHistory:
    topic: str
    partitions_read: list[int]
    records_scanned: int
    entries: list[HistoryEntry]
    notes: list[str] = field(default_factory=list)
    records: list[Undecodable] = field(default_factory=list)  # of the key, not change events


def timeline(events: Sequence[ChangeEvent]) -> list[HistoryEntry]:
    """Each event with what it changed. When Debezium sent no `before` (PostgreSQL with
    REPLICA IDENTITY DEFAULT) the previous event's row stands in for it, and an unchanged
    TOASTed value (UNAVAILABLE) carries over from the previous row."""
    state: dict[str, Any] | None = None
    out = []
    for event in events:
        changes: list[Change] = []
        full_row = False
        if event.op in (Op.CREATE, Op.READ, Op.UPDATE) and event.after is not None:
            # Compare with Debezium's before image, else with the last row this key had.
            before = event.before if event.before is not None else state
            full_row = before is None
            new_state = dict(event.after)
            for column, new in event.after.items():
                if new is UNAVAILABLE:
                    known = state.get(column, UNAVAILABLE) if state else UNAVAILABLE
                    new_state[column] = known
                    continue
                if before is None:
                    changes.append(Change(column, UNKNOWN, new))
                    continue
                old = before.get(column, UNKNOWN)
                if old is UNAVAILABLE and state is not None:
                    old = state.get(column, UNKNOWN)
                if old is UNKNOWN or old != new or type(old) is not type(new):
                    changes.append(Change(column, old, new))
            state = new_state
        elif event.op is Op.DELETE:
            state = None
        out.append(
            HistoryEntry(event, tuple(changes), None if state is None else dict(state), full_row)
        )
    return out


def _typed_like(sample: Any, text: str) -> Any:
    """The user's text as a JSON value of the sample's type, or raise ValueError."""
    if isinstance(sample, bool):
        if text in ("true", "false"):
            return text == "true"
        raise ValueError(text)
    if isinstance(sample, int):
        return int(text)
    if isinstance(sample, str):
        return text
    raise ValueError(text)  # decimals, structs: not rebuilt


def key_bytes_like(sample_key: bytes, spec: Mapping[str, str] | str) -> bytes | None:
    """The bytes Debezium writes for the key `spec`, given one real key of the same topic;
    None when they cannot be rebuilt exactly."""
    try:
        doc = orjson.loads(sample_key)
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict):  # a plain key: the text itself (or as a JSON string)
        if not isinstance(spec, str):
            return None
        return orjson.dumps(spec) if isinstance(doc, str) else spec.encode()
    prefix = None
    payload = doc
    if set(doc) == {"schema", "payload"}:
        end = sample_key.find(b'},"payload":')
        if end < 0 or not isinstance(doc["payload"], dict):
            return None
        prefix = sample_key[: end + 1]
        payload = doc["payload"]
    columns = list(payload)
    wanted = {columns[0]: spec} if isinstance(spec, str) and len(columns) == 1 else spec
    if not isinstance(wanted, Mapping) or set(wanted) != set(columns):
        return None
    try:
        rebuilt = {col: _typed_like(payload[col], wanted[col]) for col in columns}
    except ValueError:
        return None
    body = orjson.dumps(rebuilt)
    if prefix is None:
        return body
    return prefix + b',"payload":' + body + b"}"


def _sample_key(kafka: Kafka, topic: str, ranges: Sequence[PartitionRange]) -> bytes | None:
    fullest = max(ranges, key=lambda r: r.count)
    if fullest.count == 0:
        return None
    span: dict[int, tuple[int, int | None]] = {
        fullest.partition: (max(fullest.low, fullest.high - 10), fullest.high)
    }
    for msg in read_ranges(kafka, topic, span):
        if msg.key():
            return bytes(msg.key())
    return None


def key_history(
    kafka: Kafka,
    topic: str,
    key: Mapping[str, str] | str,
    decoder: Callable[[RawRecord], ChangeEvent | Undecodable] = decode,
) -> KeyHistory:
    """Every change event of `key` in `topic`, oldest first, with its timeline (records
    decoded by `decoder`: `decode`, or with column types)."""
    ranges = kafka.ranges(topic)
    by_partition = {r.partition: r for r in ranges}
    filt = EventFilter(key=key)
    notes: list[str] = []
    order: list[list[int]] = [sorted(by_partition)]
    if len(ranges) > 1:
        sample = _sample_key(kafka, topic, ranges)
        rebuilt = key_bytes_like(sample, key) if sample else None
        if rebuilt is None:
            notes.append("could not rebuild the key bytes: read every partition")
        else:
            chosen = partition_for_key(rebuilt, len(ranges))
            order = [[chosen], [p for p in sorted(by_partition) if p != chosen]]
    events: list[ChangeEvent] = []
    records: list[Undecodable] = []
    scanned = 0
    read: list[int] = []
    for group in order:
        span: dict[int, tuple[int, int | None]] = {
            p: (by_partition[p].low, by_partition[p].high) for p in group
        }
        read.extend(group)
        for msg in read_ranges(kafka, topic, span):
            scanned += 1
            raw = RawRecord.from_message(msg)
            if not filt.may_match_raw(raw):
                continue
            item = decoder(raw)
            if isinstance(item, ChangeEvent):
                if filt.matches(item):
                    events.append(item)
            elif filt.matches_record(item):
                records.append(item)
        if events or records:
            break
        if len(order) > 1 and group is order[0]:
            notes.append(
                f"key not in partition {group[0]} (murmur2 of the key): read the others too"
            )
    events.sort(key=lambda e: (e.partition, e.offset))
    records.sort(key=lambda r: (r.raw.partition, r.raw.offset))
    return KeyHistory(topic, read, scanned, timeline(events), notes, records)

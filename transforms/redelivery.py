"""Dropping changes Debezium delivers twice: source positions and their high-water marks.

Debezium delivers at least once: after a Kafka Connect crash it resumes from the last
offsets it had committed and writes again, at higher Kafka offsets, changes it had already
written. Each streamed change carries its position in the source database's log, and that
position only grows in the order a connector writes one stream:

* PostgreSQL: `source.sequence` = [last committed LSN, LSN of the change]. The change's LSN
  alone is not enough: transactions interleave in the WAL and are streamed in commit order,
  so a later transaction's changes can have lower LSNs. Debezium added `sequence` for
  exactly this (the pair is ordered lexicographically).
* MySQL/MariaDB: binlog file number, position of the event and row within it, per server id.

A primary-key change is one log record that Debezium emits as a delete then a create with
the same position: the operation's rank (delete before the rest) completes the mark.

A binlog change that carries a GTID (MariaDB `domain-server-sequence`, MySQL `uuid:N`)
also moves a GTID mark: stream `<connector>|<server>|gtid:<domain or uuid>`, mark
`(sequence,)`. No change is dropped by it; a service reads it to tell when the transform
has gone past a GTID a request names (`seam.services.position`).

The worker keeps, per input partition and source stream, the highest mark it has published
(its high-water mark) and drops a change whose mark is not above it. The marks travel with
the consumer offsets as their commit metadata, so they are committed atomically with the
outputs (in the same transaction, exactly once) and survive crashes and rebalances; a
replay from offset 0 starts with none and drops the same changes again.

What has no mark, and is never dropped: snapshot reads (all rows of a snapshot share one
position; a snapshot restarted after a crash is delivered again in full), tombstones,
heartbeats and other records without a source position. A snapshot read starts its stream
afresh (its marks are forgotten): a new snapshot means the connector started over, and the
positions that follow it are the ones that count.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import orjson

from seam.changes import ChangeEvent, Op, Snapshot

Mark = tuple[int, ...]
# (input topic, input partition, source stream)
MarkKey = tuple[str, int, str]

METADATA_VERSION: Final = 1
# A stream's changes of one log position: the delete of a primary-key change comes first.
_OP_RANK: Final = {Op.DELETE: 0}
_BINLOG_NUMBER: Final = re.compile(r"\.([0-9]+)\Z")
_MARIADB_GTID: Final = re.compile(r"\A([0-9]+)-([0-9]+)-([0-9]+)\Z")
_MYSQL_GTID: Final = re.compile(
    r"\A([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    r":(?:[0-9]+-)?([0-9]+)\Z"
)
GTID_STREAM: Final = "gtid:"  # the last part of a GTID mark's stream
_FRESH_SNAPSHOTS: Final = frozenset(
    {
        Snapshot.TRUE,
        Snapshot.FIRST,
        Snapshot.LAST,
        Snapshot.FIRST_IN_DATA_COLLECTION,
        Snapshot.LAST_IN_DATA_COLLECTION,
    }
)


def _int(value: Any) -> int | None:
    if type(value) is int:
        return value
    if type(value) is str and value.isascii() and value.isdigit():
        return int(value)
    return None


def _pg_mark(source: Mapping[str, Any]) -> tuple[int, int] | None:
    sequence = source.get("sequence")
    if type(sequence) is str:
        try:
            pair = orjson.loads(sequence)
        except orjson.JSONDecodeError:
            return None
        if type(pair) is list and len(pair) == 2:
            last_commit = 0 if pair[0] is None else _int(pair[0])
            lsn = _int(pair[1])
            if last_commit is not None and lsn is not None:
                return last_commit, lsn
    return None


def _binlog_mark(source: Mapping[str, Any]) -> tuple[int, int, int] | None:
    file, pos, row = source.get("file"), source.get("pos"), source.get("row")
    if type(file) is not str or type(pos) is not int:
        return None
    number = _BINLOG_NUMBER.search(file)
    if number is None:
        return None
    return int(number.group(1)), pos, row if type(row) is int else 0


def gtid_parts(text: str) -> tuple[str, int] | None:
    """A GTID as (domain, sequence): MariaDB `0-1-42` -> ('0', 42); MySQL `uuid:42` or
    `uuid:1-42` (an interval's end) -> (uuid in lower case, 42); None for anything else."""
    found = _MARIADB_GTID.match(text)
    if found:
        return str(int(found.group(1))), int(found.group(3))
    found = _MYSQL_GTID.match(text)
    if found:
        return found.group(1).lower(), int(found.group(2))
    return None


def gtid_mark(change: ChangeEvent) -> tuple[str, Mark] | None:
    """The GTID mark (module doc) of a binlog change that carries a GTID, else None."""
    source = change.source
    gtid = source.get("gtid")
    if type(gtid) is not str:
        return None
    parts = gtid_parts(gtid)
    if parts is None:
        return None
    return f"{source.get('connector')}|{source.get('name')}|{GTID_STREAM}{parts[0]}", (parts[1],)


def source_mark(change: ChangeEvent) -> tuple[str, Mark] | None:
    """The source stream and the change's mark in it, or None when the change has no
    position that orders it (snapshot reads, tombstones, records without a source)."""
    op = change.op
    if op is Op.TOMBSTONE or op is Op.READ:
        return None
    source = change.source
    if not source or change.is_snapshot:
        return None
    connector = source.get("connector")
    server = source.get("name")
    rank = _OP_RANK.get(op, 1)
    if connector == "postgresql":
        pg = _pg_mark(source)
        if pg is None:
            return None
        return f"postgresql|{server}|{source.get('db')}", (*pg, rank)
    binlog = _binlog_mark(source)
    if binlog is None:
        return None
    return f"{connector}|{server}|{source.get('server_id')}", (*binlog, rank)


def starts_over(change: ChangeEvent) -> str | None:
    """For a snapshot read, the prefix of the streams it starts afresh: those of its
    connector, whatever their origin (a MySQL snapshot row says server id 0); else None."""
    if change.op is not Op.READ or change.snapshot not in _FRESH_SNAPSHOTS:
        return None
    source = change.source
    return f"{source.get('connector')}|{source.get('name')}|"


class Marks:
    """High-water marks per (input topic, partition, source stream).

    `check` decides for one change and moves the mark; `copy` starts a batch (its changes are
    kept only when the batch commits); `metadata`/`load` carry a partition's marks in its
    committed offset's metadata.
    """

    __slots__ = ("_marks",)

    def __init__(self, marks: dict[MarkKey, Mark] | None = None) -> None:
        self._marks: dict[MarkKey, Mark] = marks if marks is not None else {}

    def copy(self) -> Marks:
        return Marks(dict(self._marks))

    @property
    def table(self) -> dict[MarkKey, Mark]:
        """The marks themselves (the compiled fast path reads and moves them in place)."""
        return self._marks

    def redelivered(self, topic: str, partition: int, change: ChangeEvent) -> bool:
        """True when `change` was already published: its mark is not above the stream's
        high-water mark. Otherwise the mark moves to it."""
        found = source_mark(change)
        if found is None:
            prefix = starts_over(change)
            if prefix is not None and self._marks:
                for key in [k for k in self._marks if k[:2] == (topic, partition)]:
                    if key[2].startswith(prefix):
                        del self._marks[key]
            return False
        stream, mark = found
        key = (topic, partition, stream)
        high = self._marks.get(key)
        if high is not None and mark <= high:
            return True
        self._marks[key] = mark
        if not stream.startswith("postgresql|"):
            gtid = gtid_mark(change)
            if gtid is not None:
                self._marks[(topic, partition, gtid[0])] = gtid[1]
        return False

    def metadata(self, topic: str, partition: int) -> str:
        """The marks of one input partition as offset commit metadata ('' when none)."""
        streams = {
            s: list(m) for (t, p, s), m in self._marks.items() if t == topic and p == partition
        }
        if not streams:
            return ""
        return orjson.dumps({"v": METADATA_VERSION, "marks": streams}).decode()

    def load(self, topic: str, partition: int, metadata: str | None) -> None:
        """Replace one partition's marks with those its committed offset carries. Metadata
        seam did not write (or none) leaves the partition without marks."""
        for key in [k for k in self._marks if k[0] == topic and k[1] == partition]:
            del self._marks[key]
        for stream, mark in parse_metadata(metadata).items():
            self._marks[(topic, partition, stream)] = mark


def parse_metadata(metadata: str | None) -> dict[str, Mark]:
    """stream -> mark from commit metadata written by `Marks.metadata`; {} for anything else."""
    if not metadata:
        return {}
    try:
        doc = orjson.loads(metadata)
    except orjson.JSONDecodeError:
        return {}
    if type(doc) is not dict or doc.get("v") != METADATA_VERSION:
        return {}
    streams = doc.get("marks")
    if type(streams) is not dict:
        return {}
    out: dict[str, Mark] = {}
    for stream, mark in streams.items():
        if type(mark) is list and mark and all(type(v) is int for v in mark):
            out[str(stream)] = tuple(mark)
    return out

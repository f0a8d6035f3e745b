"""Positions a request can wait for (`?after=`), and the one every response reflects.

Two kinds:

* latest-topic offsets, as a previous response gave them (its `Seam-Position` header or its
  `position.offsets`): `0:1234,1:998,2:1502`, partition:next offset. Reached when the image
  has applied every partition up to those offsets.
* a legacy source position, for read-your-writes across CDC:
  - PostgreSQL: `lsn:0/16B3748` (e.g. `SELECT pg_current_wal_lsn()` after the commit);
  - MySQL/MariaDB: `binlog:mysql-bin.000003:1234` (file and position after the commit,
    `SHOW MASTER STATUS` / `SHOW BINARY LOG STATUS`).
  Reached once the transform has committed a change at or past it (its high-water marks,
  `seam.transforms.redelivery`, are committed with its outputs) and the image has then
  applied the latest topic to its end offsets of that moment. Debezium streams a database's
  transactions in commit order, so a change at or past the position belongs to a later
  transaction: every change of the writer's transaction is then in the latest topic. It also
  means the position is reached only once some later change has gone through (a quiet
  database: a Debezium heartbeat whose action query writes to a captured table).
* a GTID, the writer's transaction's own: MariaDB `gtid:0-1-1234` (domain-server-sequence,
  `SELECT @@last_gtid` after the commit in the writer's session), MySQL `gtid:<uuid>:1234`
  (or one server's interval `gtid:<uuid>:1-1234`, as `@@gtid_executed` prints it when one
  server wrote everything). The transform keeps, beside its binlog marks, the highest GTID
  sequence per domain (server uuid on MySQL) it has published (`seam.transforms.redelivery`);
  the GTID is passed once that sequence is above it, i.e. a later transaction of the domain
  has gone through (a transaction's own changes may still be on their way when its first
  one is). Then as above. A list of several domains or uuids is refused: it does not say
  which one the writer's transaction advanced.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from seam.errors import SeamError
from seam.transforms.redelivery import GTID_STREAM, Mark, gtid_parts

Offsets = dict[int, int]

_LSN: Final = re.compile(r"\A([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})\Z")
_BINLOG: Final = re.compile(r"\A(.+\.([0-9]+)):([0-9]+)\Z")
_HINT: Final = (
    "pass after=<partition>:<offset>,... as a response's Seam-Position header gave it, "
    "after=lsn:<X/Y> (PostgreSQL), after=binlog:<file>:<position> (MySQL/MariaDB) or "
    "after=gtid:<domain-server-sequence> (MariaDB) / gtid:<uuid>:<n> (MySQL)"
)
_GTID_HINT: Final = (
    "pass the GTID of the writer's transaction: after=gtid:0-1-1234 on MariaDB "
    "(SELECT @@last_gtid after the commit, in the same session), after=gtid:<uuid>:1234 "
    "on MySQL; or pass after=binlog:<file>:<position> (SHOW MASTER STATUS)"
)


class PositionError(SeamError):
    """A request's `after=` is not a position."""


@dataclass(frozen=True)
class SourcePosition:
    """A legacy log position: its connector kind and the mark prefix that orders it."""

    connector: str  # postgresql, binlog (any binlog connector) or gtid
    mark: tuple[int, ...]
    text: str
    domain: str = ""  # a GTID's domain (MariaDB) or server uuid (MySQL)

    @property
    def family(self) -> str:
        """The `progress` family whose frontier this position is compared with."""
        return GTID_STREAM + self.domain if self.connector == "gtid" else self.connector

    def reached_at(self, frontier: Mapping[str, tuple[int, ...]]) -> bool:
        """Whether the transform's frontier (`frontier_of` its marks) lies at or past this
        position (for a GTID: past it, a later transaction)."""
        got = frontier.get(self.family)
        if got is None:
            return False
        return got > self.mark if self.connector == "gtid" else got >= self.mark

    def reached_by(self, stream: str, mark: Mark) -> bool:
        """Whether a transform's high-water `mark` of `stream` lies at or past this position."""
        family, value = progress(stream, mark)
        return self.reached_at({family: value})


def progress(stream: str, mark: Mark) -> tuple[str, tuple[int, ...]]:
    """What a transform's high-water `mark` of `stream` says it has passed: (family, how
    far), compared as a tuple with positions of the family. PostgreSQL: (last commit LSN,
    change LSN, rank), either LSN at or past a position will do; binlog: (file number,
    position); a GTID mark (`seam.transforms.redelivery`): (sequence,) in `gtid:<domain>`."""
    kind, _, rest = stream.partition("|")
    if kind == "postgresql":
        return "postgresql", (max(mark[:2]),)
    last = rest.rpartition("|")[2]
    if last.startswith(GTID_STREAM):
        return last, tuple(mark[:1])
    return "binlog", tuple(mark[:2])


def frontier_of(marks: Iterable[Mapping[str, Mark]]) -> dict[str, tuple[int, ...]]:
    """family -> the furthest any of `marks` (one mapping per input partition) has passed:
    a position is reached by some partition's mark exactly when it is reached at this."""
    out: dict[str, tuple[int, ...]] = {}
    for streams in marks:
        for stream, mark in streams.items():
            family, value = progress(stream, mark)
            if family not in out or value > out[family]:
                out[family] = value
    return out


def format_offsets(offsets: Mapping[int, int]) -> str:
    return ",".join(f"{p}:{o}" for p, o in sorted(offsets.items()))


def parse_after(text: str) -> Offsets | SourcePosition:
    text = text.strip()
    if text.startswith("lsn:"):
        found = _LSN.match(text[4:].strip())
        if found is None:
            raise PositionError(f"after={text}: not a PostgreSQL LSN (X/Y in hex)", hint=_HINT)
        lsn = (int(found.group(1), 16) << 32) + int(found.group(2), 16)
        return SourcePosition("postgresql", (lsn,), text)
    if text.startswith("binlog:"):
        found = _BINLOG.match(text[7:].strip())
        if found is None:
            raise PositionError(
                f"after={text}: not a binlog position (<file>.<number>:<position>)", hint=_HINT
            )
        return SourcePosition("binlog", (int(found.group(2)), int(found.group(3))), text)
    if text.startswith("gtid:"):
        gtid = text[5:].strip()
        if "," in gtid:
            raise PositionError(
                f"after={text}: a list of GTIDs does not say which one the commit advanced",
                hint=_GTID_HINT,
            )
        parts = gtid_parts(gtid)
        if parts is None:
            raise PositionError(
                f"after={text}: not a GTID (<domain>-<server>-<sequence> or <uuid>:<n>)",
                hint=_GTID_HINT,
            )
        return SourcePosition("gtid", (parts[1],), text, parts[0])
    offsets: Offsets = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        partition, sep, offset = part.partition(":")
        if not sep or not partition.isdigit() or not offset.isdigit():
            raise PositionError(f"after={text}: '{part}' is not <partition>:<offset>", hint=_HINT)
        offsets[int(partition)] = int(offset)
    if not offsets:
        raise PositionError("after= is empty", hint=_HINT)
    return offsets


def reached(applied: Mapping[int, int], wanted: Mapping[int, int]) -> bool:
    return all(applied.get(p, 0) >= o for p, o in wanted.items())


__all__ = [
    "Offsets",
    "PositionError",
    "SourcePosition",
    "format_offsets",
    "frontier_of",
    "parse_after",
    "progress",
    "reached",
]

"""A local index of a pipeline's history topic: timelines, state as of a time or a source
position, and why a field holds its value, without scanning the topic.

The index is one SQLite file with a row per domain event: its key text (the history
record's key, `seam.transforms.declared.envelope.key_text`), event id and type, source time
(microseconds), source log position (`history_positions`), the Kafka partition and offset it
was read from, and its JSON body as published. It is built by reading the topic from its
first offset and brought up to date by reading on from the offsets it stopped at (kept in
the same SQLite transaction as the rows, so a crash never indexes a record twice or skips
one). Only committed transactions' records are read.

Per key the rows are in the topic's order, which is the source log's: all of a key's events
sit in one partition, written in order. An as-of query is two indexed look-ups (the last row
at or before the cut, and the last row before it that resets the state) and a fold of the
rows between (`history_fold`), so its cost grows with one key's events since its last
`created`/`returned`/`gone` event, not with the topic. Events delivered twice (an
at-least-once pipeline, the same event id) are folded once.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson

from seam.errors import SeamError
from seam.keys import closest
from seam.services.history_fold import Folded, Folding
from seam.services.history_positions import Position, describe, event_positions
from seam.transforms.declared.envelope import key_text
from seam.transforms.declared.model import Declaration

if TYPE_CHECKING:
    from seam.streams.kafka import Kafka

SCHEMA_VERSION: Final = "1"
BATCH: Final = 20_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS progress (partition INTEGER PRIMARY KEY, next_offset INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    event_id TEXT,
    event_type TEXT,
    resets INTEGER NOT NULL,
    occurred_us INTEGER,
    log_kind TEXT,
    p1 INTEGER, p2 INTEGER, p3 INTEGER,
    gtid_stream TEXT, gtid_seq INTEGER,
    partition INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_key ON events (key, id);
"""
_COLUMNS: Final = 'id, key, event_id, event_type, resets, occurred_us, partition, "offset", body'


class HistoryError(SeamError):
    """A history query that cannot be answered as asked."""


class KeyNotFoundError(HistoryError):
    """The key has no events in the index."""


def micros(moment: datetime) -> int:
    """Microseconds since 1970 (a naive time is UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (UTC unless it names an offset); HistoryError otherwise."""
    value = text.strip()
    try:
        moment = datetime.fromisoformat(value)  # Python 3.11+ reads a 'Z'
    except ValueError:
        raise HistoryError(
            f"'{text}' is not a time",
            hint="give an ISO 8601 time, e.g. 2026-12-02T05:10:00Z (UTC unless it names an offset)",
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _source_us(text: Any) -> int | None:
    """An event's `occurred_at` in microseconds since 1970 (None when it has none)."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return micros(moment)


@dataclass(frozen=True)
class EventRef:
    """One indexed event, short: what it is and where it came from."""

    event_id: str | None
    event_type: str | None
    occurred_at: str | None
    position: str  # the source log position, in one line (`describe`)
    partition: int
    offset: int


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: Any
    new: Any
    columns: tuple[str, ...]  # the legacy columns the field is made from
    unknown: bool = False  # the event changed it without carrying the new value


@dataclass(frozen=True)
class TimelineEntry:
    event: EventRef
    trigger: str | None  # created, returned, gone, changed (None: not a declared type)
    provenance: Mapping[str, Any]  # as the event carries it: table, position, source_ts ...
    changes: tuple[FieldChange, ...]
    duplicate: bool = False  # a second delivery of an event id already folded
    body: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Timeline:
    topic: str
    key: str
    entries: tuple[TimelineEntry, ...]


@dataclass(frozen=True)
class AsOf:
    topic: str
    key: str
    cut: str  # what the state is as of: 'time ...' or 'position ...' (or 'latest')
    exists: bool  # any event at or before the cut
    live: bool
    state: Mapping[str, Any] | None  # None unless live
    gone_reason: str | None
    unknown: tuple[str, ...]  # state fields the events do not tell
    untracked: tuple[str, ...]  # fields that may have changed since without an event
    set_by: Mapping[str, EventRef]
    last_event: EventRef | None
    events: int  # events folded


@dataclass(frozen=True)
class Why:
    topic: str
    key: str
    field: str
    cut: str
    value: Any
    live: bool
    untracked: bool
    event: TimelineEntry | None
    raw: Mapping[str, Any] | None  # the raw change record, decoded
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class BuildReport:
    topic: str
    records: int  # records read
    indexed: int  # events added
    skipped: int  # records that are no domain event (null or not JSON)
    seconds: float
    events: int  # events in the index
    bytes: int  # the index file's size
    offsets: Mapping[int, int]  # partition -> next offset to read
    notes: tuple[str, ...] = ()


def as_json(value: Any) -> Any:
    """A result of this module as plain JSON data."""
    return asdict(value)


@dataclass(frozen=True)
class _Row:
    id: int
    key: str
    event_id: str | None
    event_type: str | None
    resets: int
    occurred_us: int | None
    partition: int
    offset: int
    body: bytes


# Reads the raw change record at (topic, partition, offset), decoded, or None when it is
# gone (retention, compaction); HTTP and the CLI pass one that reads Kafka.
RawReader = Callable[[str, int, int], Mapping[str, Any] | None]


def default_index(bootstrap: str, topic: str) -> Path:
    """Where the index of `topic` on the cluster at `bootstrap` lives by default."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    cluster = re.sub(r"[^A-Za-z0-9.-]+", "_", bootstrap.split(",")[0])
    return Path(base) / "seam" / "history" / cluster / f"{topic}.sqlite"


class HistoryIndex:
    """The index of one history topic, in one SQLite file (made if missing).

    `folding` is the declaration's fold (None for a pipeline that declares no entity: its
    timelines have no field changes and it answers no as-of question). Queries may run from
    several threads: each gets a connection of its own."""

    def __init__(self, path: Path, topic: str, declaration: Declaration | None) -> None:
        self.path = path
        self.topic = topic
        self.folding = Folding(declaration) if declaration is not None else None
        self._local = threading.local()
        self._lock = threading.Lock()  # one writer at a time
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db().executescript(_SCHEMA)  # it commits by itself: outside a transaction
        with self._write() as db:
            found = dict(db.execute("SELECT name, value FROM meta").fetchall())
            if not found:
                db.executemany(
                    "INSERT INTO meta VALUES (?, ?)",
                    [("topic", topic), ("version", SCHEMA_VERSION)],
                )
            elif found.get("topic") != topic or found.get("version") != SCHEMA_VERSION:
                raise HistoryError(
                    f"the index {path} is of topic '{found.get('topic')}' (format "
                    f"{found.get('version')}), not of '{topic}'",
                    hint="give another --index path, or --rebuild to start it afresh",
                )

    # -- connections -------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=10000")
            self._local.db = db
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    def reset(self) -> None:
        """Forget every row and offset: the next catch-up reads the topic from its start."""
        with self._write() as db:
            db.execute("DELETE FROM events")
            db.execute("DELETE FROM progress")

    # -- building ----------------------------------------------------------------------

    def offsets(self) -> dict[int, int]:
        """partition -> the next offset the index will read."""
        return dict(self._db().execute("SELECT partition, next_offset FROM progress").fetchall())

    def count(self) -> int:
        return int(self._db().execute("SELECT count(*) FROM events").fetchone()[0])

    def size(self) -> int:
        """Bytes on disk (the file and its write-ahead log)."""
        wal = self.path.with_name(self.path.name + "-wal")
        return self.path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)

    def row(
        self, record_key: bytes | None, value: bytes | None, partition: int, offset: int
    ) -> tuple[Any, ...] | None:
        """The index row of one history record, or None when it is no domain event."""
        if value is None:
            return None
        try:
            event = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
        if type(event) is not dict:
            return None
        return self._row_of(event, value, record_key, partition, offset)

    def _row_of(
        self,
        event: dict[str, Any],
        value: bytes,
        record_key: bytes | None,
        partition: int,
        offset: int,
    ) -> tuple[Any, ...]:
        key: str | None = None
        folding = self.folding
        if folding is not None:
            values = [event.get(f) for f in folding.key_fields]
            if all(v is not None for v in values):
                key = key_text(values)
        if key is None:
            key = record_key.decode("utf-8", "replace") if record_key is not None else ""
        event_type = event.get("event_type")
        event_id = event.get("event_id")
        provenance = event.get("provenance")
        position = provenance.get("position") if isinstance(provenance, dict) else None
        log, gtid = event_positions(position) if isinstance(position, dict) else (None, None)
        order = (*log.order, 0, 0)[:3] if log is not None else (None, None, None)
        resets = folding is not None and isinstance(event_type, str) and folding.resets(event_type)
        return (
            key,
            event_id if isinstance(event_id, str) else None,
            event_type if isinstance(event_type, str) else None,
            int(resets),
            _source_us(event.get("occurred_at")),
            log.kind if log is not None else None,
            *order,
            gtid.stream if gtid is not None else None,
            gtid.order[0] if gtid is not None else None,
            partition,
            offset,
            value,
        )

    def add(self, rows: Sequence[tuple[Any, ...]], offsets: Mapping[int, int]) -> None:
        """Add rows (from `row`) and move the partitions' next offsets, in one transaction."""
        with self._write() as db:
            db.executemany(
                "INSERT INTO events (key, event_id, event_type, resets, occurred_us, log_kind, "
                'p1, p2, p3, gtid_stream, gtid_seq, partition, "offset", body) '
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            db.executemany(
                "INSERT INTO progress VALUES (?, ?) ON CONFLICT (partition) "
                "DO UPDATE SET next_offset = excluded.next_offset",
                list(offsets.items()),
            )

    def catch_up(self, kafka: Kafka, *, batch: int = BATCH) -> BuildReport:
        """Read the topic from where the index stopped to its current end."""
        from seam.streams.kafka import read_ranges

        started = time.monotonic()
        ranges = kafka.ranges(self.topic)
        stored = self.offsets()
        notes: list[str] = []
        span: dict[int, tuple[int, int | None]] = {}
        for r in ranges:
            start = stored.get(r.partition, r.low)
            if start > r.high:
                raise HistoryError(
                    f"the index {self.path} has read partition {r.partition} of '{self.topic}' "
                    f"to offset {start}, and the topic now ends at {r.high}: it was deleted and "
                    "made again, or is another cluster's",
                    hint="rebuild the index (--rebuild)",
                )
            if start < r.low:
                notes.append(
                    f"partition {r.partition}: offsets {start}..{r.low - 1} were deleted "
                    "(retention) before the index read them"
                )
                start = r.low
            span[r.partition] = (start, r.high)
        records = indexed = skipped = 0
        rows: list[tuple[Any, ...]] = []
        moved: dict[int, int] = {}
        for msg in read_ranges(kafka, self.topic, span, batch=5000):
            records += 1
            partition, offset = msg.partition(), msg.offset()
            found = self.row(msg.key(), msg.value(), partition, offset)
            moved[partition] = offset + 1
            if found is None:
                skipped += 1
            else:
                rows.append(found)
            if len(rows) >= batch:
                self.add(rows, moved)
                indexed += len(rows)
                rows = []
        self.add(rows, moved)
        indexed += len(rows)
        if indexed:
            # Fold the write-ahead log into the file: its size is the index's, not twice it.
            self._db().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return BuildReport(
            self.topic,
            records,
            indexed,
            skipped,
            time.monotonic() - started,
            self.count(),
            self.size(),
            self.offsets(),
            tuple(notes),
        )

    def follow(self, kafka: Kafka, stop: threading.Event, *, interval: float = 1.0) -> None:
        """Catch up every `interval` seconds until `stop` is set (a service's background
        thread: its queries then lag the topic by at most about `interval`). A failed
        catch-up (the broker away) is retried at the next tick."""
        while not stop.is_set():
            with contextlib.suppress(SeamError):
                self.catch_up(kafka)
            stop.wait(interval)

    # -- queries -----------------------------------------------------------------------

    def normalize_key(self, text: str) -> str:
        """The key as the index holds it: `42`; a composite key as a JSON array `[3,"B"]`
        (also accepted as `3,B` when no value holds a comma)."""
        value = text.strip()
        fields = self.folding.key_fields if self.folding is not None else ()
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            parsed = None
        if len(fields) > 1:
            if isinstance(parsed, list) and len(parsed) == len(fields):
                return key_text(parsed)
            parts = [p.strip() for p in value.split(",")]
            if len(parts) == len(fields):
                return key_text([_scalar(p) for p in parts])
            return value
        if isinstance(parsed, str | int) and not isinstance(parsed, bool):
            return str(parsed)
        return value

    def _rows(self, sql: str, args: Sequence[Any]) -> list[_Row]:
        return [_Row(*r) for r in self._db().execute(sql, args).fetchall()]

    def _require(self, key: str) -> None:
        found = self._db().execute("SELECT 1 FROM events WHERE key = ? LIMIT 1", (key,)).fetchone()
        if found is None:
            raise KeyNotFoundError(
                f"key {key} has no events in '{self.topic}' (index {self.path}, "
                f"{self.count()} events)",
                hint='check the key (a composite key as a JSON array, e.g. [3,"B"]); if its '
                "events are new, bring the index up to date (`seam history index PIPELINE`)",
            )

    def _fold(self, rows: Sequence[_Row]) -> tuple[Folded, list[TimelineEntry]]:
        folding = self.folding
        folded = Folded(folding.state_fields if folding is not None else ())
        entries: list[TimelineEntry] = []
        seen: set[str] = set()
        for i, row in enumerate(rows):
            event = orjson.loads(row.body)
            duplicate = row.event_id is not None and row.event_id in seen
            if row.event_id is not None:
                seen.add(row.event_id)
            changes: tuple[FieldChange, ...] = ()
            trigger = None
            if folding is not None:
                trigger = folding.trigger(row.event_type or "")
                if not duplicate:
                    effect = folding.effect(event)
                    changed = folded.apply(effect, i)
                    changes = tuple(
                        FieldChange(name, old, new, self._columns(name), name in effect.unknown)
                        for name, (old, new) in changed.items()
                    )
            provenance = (
                event.get("provenance") if isinstance(event.get("provenance"), dict) else {}
            )
            entries.append(
                TimelineEntry(_ref(row, event), trigger, provenance, changes, duplicate, event)
            )
        return folded, entries

    def _columns(self, name: str) -> tuple[str, ...]:
        folding = self.folding
        column = folding.declaration.table.column(name) if folding is not None else None
        return column.columns if column is not None else ()

    def timeline(self, key: str) -> Timeline:
        """Every event of `key`, oldest first, with what each changed and its provenance."""
        key = self.normalize_key(key)
        self._require(key)
        rows = self._rows(f"SELECT {_COLUMNS} FROM events WHERE key = ? ORDER BY id", (key,))
        _folded, entries = self._fold(rows)
        return Timeline(self.topic, key, tuple(entries))

    def _cut(
        self, key: str, at: datetime | None, position: Position | None
    ) -> tuple[int | None, str]:
        """The id of the last event of `key` at or before the cut, and the cut in words."""
        db = self._db()
        if position is not None:
            if position.kind == "gtid":
                found = db.execute(
                    "SELECT max(id) FROM events WHERE key = ? AND gtid_stream = ? AND gtid_seq <= ?",
                    (key, position.stream, position.order[0]),
                ).fetchone()
            else:
                order = (*position.order, 2**62, 2**62)[:3]
                found = db.execute(
                    "SELECT max(id) FROM events WHERE key = ? AND log_kind = ? "
                    "AND (p1, p2, p3) <= (?, ?, ?)",
                    (key, position.kind, *order),
                ).fetchone()
            self._comparable(key, position)
            return found[0], f"position {position.text}"
        if at is not None:
            found = db.execute(
                "SELECT max(id) FROM events WHERE key = ? AND occurred_us <= ?", (key, micros(at))
            ).fetchone()
            return found[0], f"time {at.astimezone(UTC).isoformat().replace('+00:00', 'Z')}"
        found = db.execute("SELECT max(id) FROM events WHERE key = ?", (key,)).fetchone()
        return found[0], "latest"

    def _comparable(self, key: str, position: Position) -> None:
        """Refuse a position no event of `key` can be compared with (a GTID of another
        domain, an LSN against binlog events)."""
        db = self._db()
        if position.kind == "gtid":
            streams = [
                r[0]
                for r in db.execute(
                    "SELECT DISTINCT gtid_stream FROM events WHERE key = ? AND gtid_stream IS NOT NULL",
                    (key,),
                )
            ]
            if streams and position.stream not in streams:
                raise HistoryError(
                    f"GTID {position.text} is of stream {position.stream}; the events of key "
                    f"{key} carry GTIDs of {', '.join(streams)}",
                    hint="give a GTID of the same domain (MariaDB) or server uuid (MySQL), or a binlog position",
                )
            if not streams:
                raise HistoryError(
                    f"the events of key {key} carry no GTID",
                    hint="give a binlog position (file:pos) or an LSN, whichever the source has",
                )
            return
        kinds = [
            r[0]
            for r in db.execute(
                "SELECT DISTINCT log_kind FROM events WHERE key = ? AND log_kind IS NOT NULL",
                (key,),
            )
        ]
        if kinds and position.kind not in kinds:
            raise HistoryError(
                f"'{position.text}' is a{'n' if position.kind == 'lsn' else ''} {position.kind} "
                f"position; the events of key {key} carry {' and '.join(kinds)} positions",
                hint="give a PostgreSQL LSN for a PostgreSQL source, a binlog position or GTID "
                "for MySQL/MariaDB",
            )

    def _folding(self) -> Folding:
        if self.folding is None:
            raise HistoryError(
                f"the pipeline of '{self.topic}' declares no entity: its events say nothing "
                "seam can fold into a state",
                hint="as-of and why need a declared pipeline (tables:, entity:, events:); "
                "`seam history timeline` works on any",
            )
        return self.folding

    def _until(self, key: str, cut: int) -> list[_Row]:
        """The rows of `key` from the last one at or before `cut` that resets the state."""
        db = self._db()
        start = db.execute(
            "SELECT max(id) FROM events WHERE key = ? AND resets = 1 AND id <= ?", (key, cut)
        ).fetchone()[0]
        return self._rows(
            f"SELECT {_COLUMNS} FROM events WHERE key = ? AND id >= ? AND id <= ? ORDER BY id",
            (key, start or 0, cut),
        )

    def as_of(
        self, key: str, *, at: datetime | None = None, position: Position | None = None
    ) -> AsOf:
        """The state of `key` after its last event at or before time `at` (its source time)
        or source `position`; with neither, its latest state."""
        folding = self._folding()
        key = self.normalize_key(key)
        self._require(key)
        cut, words = self._cut(key, at, position)
        if cut is None:
            return AsOf(self.topic, key, words, False, False, None, None, (), (), {}, None, 0)
        rows = self._until(key, cut)
        folded, entries = self._fold(rows)
        live = bool(folded.live)
        refs = [e.event for e in entries]
        return AsOf(
            self.topic,
            key,
            words,
            True,
            live,
            dict(folded.state) if live else None,
            folded.gone_reason,
            tuple(sorted(folded.unknown)) if live else (),
            tuple(f for f in folding.untracked if live and f in folded.state),
            {f: refs[i] for f, i in folded.set_by.items()} if live else {},
            refs[-1] if refs else None,
            len(rows),
        )

    def why(
        self,
        key: str,
        name: str,
        *,
        at: datetime | None = None,
        position: Position | None = None,
        raw_reader: RawReader | None = None,
    ) -> Why:
        """The event that gave field `name` of `key` its value (latest, or as of `at` /
        `position`) and the raw change record it came from (by `raw_reader`)."""
        folding = self._folding()
        if name not in folding.state_fields:
            guess = closest(name, folding.state_fields)
            raise HistoryError(
                f"'{name}' is not a state field of entity '{folding.entity.name}'"
                + (f" (did you mean '{guess}'?)" if guess else ""),
                hint=f"name one of {', '.join(folding.state_fields)}",
            )
        key = self.normalize_key(key)
        self._require(key)
        cut, words = self._cut(key, at, position)
        if cut is None:
            raise HistoryError(
                f"key {key} has no events at or before {words}",
                hint="ask about a later time or position (`seam history timeline` lists its events)",
            )
        rows = self._until(key, cut)
        folded, entries = self._fold(rows)
        notes: list[str] = []
        if folded.live:
            index = folded.set_by.get(name)
            value = folded.state.get(name)
            if name in folded.unknown:
                notes.append(f"the events do not carry {name}'s value after this one")
        else:
            index = len(entries) - 1  # the event that ended it
            value = None
            notes.append(f"{folding.entity.name} {key} is not live as of {words}")
        untracked = name in folding.untracked
        if untracked and folded.live:
            notes.append(
                f"{name} changes without an event of its own: this is its value as of the "
                "event shown; the legacy row may have changed it since"
            )
        entry = entries[index] if index is not None else None
        raw: Mapping[str, Any] | None = None
        if entry is not None and raw_reader is not None:
            prov = entry.provenance
            topic, partition, offset = prov.get("topic"), prov.get("partition"), prov.get("offset")
            if isinstance(topic, str) and type(partition) is int and type(offset) is int:
                try:
                    raw = raw_reader(topic, partition, offset)
                except SeamError as exc:  # the answer stands without it: say why it is missing
                    notes.append(f"the raw change record could not be read: {exc.message}")
                    raw = None
                    topic = None
                if raw is None and topic is not None:
                    notes.append(
                        f"the raw change record {topic}/{partition}@{offset} is not in Kafka "
                        "any more (retention, compaction, or the topic was deleted)"
                    )
            else:
                notes.append("the event's provenance names no raw record")
        return Why(
            self.topic,
            key,
            name,
            words,
            value,
            bool(folded.live),
            untracked,
            entry,
            raw,
            tuple(notes),
        )


def _scalar(text: str) -> Any:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    return value if isinstance(value, int | float | str) and not isinstance(value, bool) else text


def _ref(row: _Row, event: Mapping[str, Any]) -> EventRef:
    provenance = event.get("provenance")
    position = provenance.get("position") if isinstance(provenance, dict) else None
    occurred = event.get("occurred_at")
    return EventRef(
        row.event_id,
        row.event_type,
        occurred if isinstance(occurred, str) else None,
        describe(position) if isinstance(position, dict) else "-",
        row.partition,
        row.offset,
    )


def read_raw(kafka: Kafka, topic: str, partition: int, offset: int) -> Mapping[str, Any] | None:
    """The raw record at `offset` of `topic`'s `partition`, decoded by `decode` (as JSON data),
    or None when it is no longer there."""
    from seam.streams.decode import decode

    return read_raw_with(kafka, decode)(topic, partition, offset)


def read_raw_with(kafka: Kafka, decoder: Callable[[Any], Any]) -> RawReader:
    """A RawReader on `kafka` that decodes with `decoder` (`seam.streams.decode.decode`, or a
    typed one: `seam.connectors.live_types.TopicTypes.decode`)."""
    from seam.changes import RawRecord
    from seam.streams.format import event_json
    from seam.streams.kafka import TopicNotFoundError, read_ranges

    def read(topic: str, partition: int, offset: int) -> Mapping[str, Any] | None:
        try:
            spans = {r.partition: r for r in kafka.ranges(topic)}
        except TopicNotFoundError:
            return None
        span = spans.get(partition)
        if span is None or not span.low <= offset < span.high:
            return None
        for msg in read_ranges(
            kafka, topic, {partition: (offset, offset + 1)}, committed_only=False
        ):
            if msg.offset() != offset:
                return None  # compacted away: the next record came instead
            data: Mapping[str, Any] = orjson.loads(event_json(decoder(RawRecord.from_message(msg))))
            return data
        return None

    return read


__all__ = [
    "AsOf",
    "BuildReport",
    "EventRef",
    "FieldChange",
    "HistoryError",
    "HistoryIndex",
    "KeyNotFoundError",
    "RawReader",
    "Timeline",
    "TimelineEntry",
    "Why",
    "as_json",
    "default_index",
    "micros",
    "parse_time",
    "read_raw",
    "read_raw_with",
]

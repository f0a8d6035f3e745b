"""The seam writer: keeps the legacy database in step with the writes moved to the new side.

`seam migrate writer WRITES_FILE` reads the pipeline's history topic (committed records only)
and takes the events of its own origin (header `seam-origin: <name>`, as the service's
commands publish them, `seam.services.commands`). Each is applied to the legacy database
with the SQL the writes file declares for its event type (`seam.migration.writes`).

Exactly once into the legacy database: the writer keeps its position in the legacy database
itself, in `seam_writer_offsets(writer, topic, partition_no, next_offset)`, written in the
same transaction as the SQL of the events before it, and resumes from there (a kill -9
loses the open transaction whole: its SQL and its position together). One writer of a name
runs at a time per database (a session lock: a second one is refused).

Loop prevention (`seam.transforms.own_writes`; the pipeline's `own_writes:` is required):

- MariaDB/MySQL: the writer's session sets `gtid_domain_id` to `own_writes.gtid_domain`, so
  every transaction it commits carries that domain in its GTID (Debezium's `source.gtid`).
  Setting it needs a privilege (SUPER, or BINLOG ADMIN / REPLICATION MASTER ADMIN on newer
  MariaDB): the writer tries at start and names the grant the server asked for.
- PostgreSQL: in each transaction, before it commits, the writer reads
  `pg_current_xact_id()` and produces `ledger_entry(pg_tx_id(x), writer, ts)` to the
  `own_writes.ledger` topic, and waits for the broker's acknowledgement; only then commits. An
  entry whose transaction then fails to commit names a transaction id no change carries.

A legacy row the SQL does not find (the first statement of the event type changes no row:
the entity was deleted or delisted on the legacy side meanwhile) is not lost: the event goes
to `seam_writer_rejects` (its offset, id, type, the reason and the event itself) in the same
transaction, the writer says so on stderr and counts it, and goes on. Any other failure (the
database down, an SQL error, the broker gone while recording the ledger entry) stops the
writer with one message; the open transaction is rolled back and the next run resumes at
the first event not applied.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import orjson

from seam.connectors.engine import flavour_of, make_engine, translate_errors
from seam.errors import ConfigError, DatabaseError, SeamError
from seam.kafka_config import KafkaSettings
from seam.migration.writes import ORIGIN_HEADER, WritesSpec
from seam.secrets import mask_url
from seam.transforms.own_writes import ledger_entry, pg_tx_id

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

OFFSETS_TABLE: Final = "seam_writer_offsets"
REJECTS_TABLE: Final = "seam_writer_rejects"
TIMEOUT_S: Final = 15.0  # the ledger entry's acknowledgement, at most
STALLED_S: Final = 60.0  # --until-caught-up: the longest the history may give nothing
NOT_FOUND: Final = "the legacy row was not found (the first statement changed no row)"

_DDL: Final = (
    f"CREATE TABLE IF NOT EXISTS {OFFSETS_TABLE} ("
    "writer VARCHAR(100) NOT NULL, topic VARCHAR(249) NOT NULL, partition_no INTEGER NOT NULL, "
    "next_offset BIGINT NOT NULL, updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, "
    "PRIMARY KEY (writer, topic, partition_no))",
    f"CREATE TABLE IF NOT EXISTS {REJECTS_TABLE} ("
    "writer VARCHAR(100) NOT NULL, topic VARCHAR(249) NOT NULL, partition_no INTEGER NOT NULL, "
    "record_offset BIGINT NOT NULL, event_id VARCHAR(64), event_type VARCHAR(200), "
    "reason TEXT NOT NULL, event TEXT NOT NULL, "
    "rejected_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, "
    "PRIMARY KEY (writer, topic, partition_no, record_offset))",
)


@dataclass
class WriterReport:
    """What one run of the writer did."""

    applied: int = 0  # events applied to the legacy database
    rejected: int = 0  # events whose legacy row was not found (in seam_writer_rejects)
    others: int = 0  # history records of another origin, passed over
    transactions: int = 0
    started_at: dict[int, int] = field(default_factory=dict)  # partition -> first offset read
    position: dict[int, int] = field(default_factory=dict)  # partition -> next offset
    seconds: float = 0.0
    first_at: float | None = None  # monotonic: the first own event's transaction began
    last_at: float | None = None  # ... the last one committed

    @property
    def applying_s(self) -> float:
        """Seconds from the first own transaction's start to the last one's commit."""
        return (
            0.0 if self.first_at is None or self.last_at is None else self.last_at - self.first_at
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "rejected": self.rejected,
            "others": self.others,
            "transactions": self.transactions,
            "started_at": {str(p): o for p, o in sorted(self.started_at.items())},
            "position": {str(p): o for p, o in sorted(self.position.items())},
            "seconds": round(self.seconds, 3),
            "applying_s": round(self.applying_s, 3),
        }


class Writer:
    def __init__(
        self,
        writes: WritesSpec,
        kafka: KafkaSettings,
        url: str,
        *,
        say: Callable[[str], None] = lambda _text: None,
        batch_size: int = 500,
    ) -> None:
        self.writes = writes
        self.kafka = kafka
        self.url = url
        self.say = say
        self.batch_size = batch_size
        self.flavour = flavour_of(url)
        self.topic = writes.pipeline.history.topic
        self.origin = writes.name.encode()
        self.ledger = self._own_writes()
        self._producer: Any = None

    def _own_writes(self) -> str | None:
        """The ledger topic (PostgreSQL) or None (MariaDB); a ConfigError when the pipeline
        declares no way to recognise the writer's changes (they would come back as events)."""
        own = self.writes.pipeline.own_writes
        pipeline = self.writes.pipeline.source
        if self.flavour == "postgres":
            if own is None or not own.ledger:
                raise ConfigError(
                    f"pipeline {pipeline} declares no own_writes.ledger: the transform could "
                    "not tell the writer's changes from the legacy app's, and would publish each "
                    "of them again as a new event (a loop)",
                    hint="add 'own_writes: {ledger: <topic>}' to the pipeline file (a PostgreSQL "
                    "source), and run its transform with it",
                )
            return own.ledger
        if own is None or own.gtid_domain is None:
            raise ConfigError(
                f"pipeline {pipeline} declares no own_writes.gtid_domain: the transform could "
                "not tell the writer's changes from the legacy app's, and would publish each of "
                "them again as a new event (a loop)",
                hint="add 'own_writes: {gtid_domain: <a GTID domain no other writer uses>}' to "
                "the pipeline file (a MySQL/MariaDB source), and run its transform with it",
            )
        return None

    # ------------------------------------------------------------------ the run

    def run(
        self, stop: threading.Event | None = None, *, until_caught_up: bool = False
    ) -> WriterReport:
        """Apply the writer's events until `stop` is set (or, `until_caught_up`, until the
        end of the committed history as it was when each partition was last read)."""
        from seam.streams.kafka import Kafka

        stop = stop or threading.Event()
        report = WriterReport()
        began = time.monotonic()
        with Kafka(self.kafka) as kafka:
            partitions = kafka.partitions(self.topic)
            if self.ledger is not None:
                _ensure_ledger(kafka, self.ledger)
            with translate_errors(self.url):
                engine = make_engine(self.url)
                try:
                    with engine.connect() as conn:
                        self._prepare(conn)
                        stored = self._stored(conn)
                        report.started_at = {p: stored.get(p, 0) for p in partitions}
                        report.position = dict(report.started_at)
                        consumer = kafka.consumer()
                        self._assign(consumer, partitions, stored)
                        self._loop(conn, consumer, partitions, stop, until_caught_up, report)
                finally:
                    engine.dispose()
                    if self._producer is not None:
                        self._producer.flush(TIMEOUT_S)
        report.seconds = time.monotonic() - began
        return report

    def _assign(self, consumer: Any, partitions: Sequence[int], stored: dict[int, int]) -> None:
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        consumer.assign(
            [TopicPartition(self.topic, p, stored.get(p, OFFSET_BEGINNING)) for p in partitions]
        )

    def _loop(
        self,
        conn: Connection,
        consumer: Any,
        partitions: Sequence[int],
        stop: threading.Event,
        until_caught_up: bool,
        report: WriterReport,
    ) -> None:
        from confluent_kafka import KafkaError, KafkaException

        at_end: set[int] = set()
        warned = False
        last_said = heard = time.monotonic()
        while not stop.is_set():
            messages = consumer.consume(self.batch_size, 0.2)
            now = time.monotonic()
            if messages:
                heard = now
            elif until_caught_up and now - heard > STALLED_S:
                raise SeamError(
                    f"writer {self.writes.name}: {self.topic} gave nothing (no record, no end "
                    f"of partition) for {STALLED_S:g}s: the broker is unreachable or the topic "
                    "stalled; nothing is half-applied",
                    hint="check the broker (seam stack status), then run the writer again: it "
                    "resumes at the first event not applied",
                )
            batch = []
            for msg in messages:
                error = msg.error()
                if error is None:
                    batch.append(msg)
                    at_end.discard(msg.partition())
                elif error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                elif error.fatal():
                    raise KafkaException(error)
                elif not warned:  # e.g. the broker went away: librdkafka retries
                    warned = True
                    self.say(f"writer {self.writes.name}: {error.str()} (retrying)")
            if batch:
                self._apply(conn, batch, report)
            if until_caught_up and len(at_end) == len(partitions) and not batch:
                return
            if time.monotonic() - last_said >= 5 and report.applied:
                last_said = time.monotonic()
                self.say(
                    f"writer {self.writes.name}: {report.applied} applied, "
                    f"{report.rejected} rejected"
                )

    # ------------------------------------------------------------------ the database

    def _prepare(self, conn: Connection) -> None:
        """The session lock, the tables, and (MariaDB) the session's GTID domain."""
        from sqlalchemy import text

        name = f"seam-writer.{self.writes.name}"
        if self.flavour == "postgres":
            got = conn.execute(
                text("SELECT pg_try_advisory_lock(hashtext(:n))"), {"n": name}
            ).scalar()
        else:
            got = conn.execute(text("SELECT GET_LOCK(:n, 0)"), {"n": name}).scalar()
        conn.commit()
        if not got:
            raise SeamError(
                f"another writer '{self.writes.name}' is running against {mask_url(self.url)}",
                hint="run one writer per writes file and database (stop the other one first)",
            )
        try:
            for statement in _DDL:
                conn.execute(text(statement))
            conn.commit()
        except Exception as exc:
            conn.rollback()
            raise DatabaseError(
                f"cannot create the writer's tables {OFFSETS_TABLE} and {REJECTS_TABLE} in "
                f"{mask_url(self.url)}: {' '.join(str(getattr(exc, 'orig', exc)).split())}",
                hint="grant the writer's user CREATE on the legacy database, or create them as "
                "an administrator (the statements are in seam.migration.writer._DDL)",
            ) from None
        if self.flavour == "mysql":
            self._gtid_domain(conn)

    def _gtid_domain(self, conn: Connection) -> None:
        from sqlalchemy import text
        from sqlalchemy.exc import DBAPIError

        own = self.writes.pipeline.own_writes
        assert own is not None
        assert own.gtid_domain is not None
        domain = int(own.gtid_domain)
        try:
            conn.execute(text(f"SET SESSION gtid_domain_id = {domain}"))
        except DBAPIError as exc:
            orig = getattr(exc, "orig", exc)
            message = " ".join(str(orig).split())
            code = orig.args[0] if getattr(orig, "args", None) else None
            if code in (1227, 1044, 1045) or "denied" in message.lower():
                needs = message.split("the ", 1)[-1].split(" privilege", 1)[0]
                raise DatabaseError(
                    f"{mask_url(self.url)} refused 'SET SESSION gtid_domain_id = {domain}' "
                    f"({message}): the writer tags its transactions with that GTID domain so "
                    "the transform knows them",
                    hint=f"as an administrator: GRANT {needs or 'SUPER'} ON *.* TO the writer's "
                    "user",
                ) from None
            raise
        found = conn.execute(text("SELECT @@session.gtid_domain_id")).scalar()
        conn.commit()
        if int(found or 0) != domain:  # pragma: no cover - the server would have refused
            raise DatabaseError(f"the session's gtid_domain_id is {found}, not {domain}")

    def _stored(self, conn: Connection) -> dict[int, int]:
        from sqlalchemy import text

        rows = conn.execute(
            text(
                f"SELECT partition_no, next_offset FROM {OFFSETS_TABLE} "
                "WHERE writer = :w AND topic = :t"
            ),
            {"w": self.writes.name, "t": self.topic},
        ).all()
        conn.commit()
        return {int(p): int(o) for p, o in rows}

    def _apply(self, conn: Connection, batch: list[Any], report: WriterReport) -> None:
        """One transaction: the SQL of the batch's own events and the position after the
        batch (records of other origins are passed over, and their offsets count too)."""
        from sqlalchemy import text

        own = [m for m in batch if _origin(m) == self.origin]
        after: dict[int, int] = {}
        for msg in batch:
            after[msg.partition()] = msg.offset() + 1
        report.others += len(batch) - len(own)
        if not own:
            # Nothing to write: the position moves on in memory only (a restart reads those
            # records again and passes them over again).
            report.position.update(after)
            return
        applied = rejected = 0
        if report.first_at is None:
            report.first_at = time.monotonic()
        try:
            for msg in own:
                if self._one(conn, msg):
                    applied += 1
                else:
                    rejected += 1
            self._store(conn, after)
            if self.ledger is not None:
                tx = conn.execute(text("SELECT pg_current_xact_id()::text")).scalar_one()
                self._record(pg_tx_id(int(tx)))
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        report.applied += applied
        report.rejected += rejected
        report.transactions += 1
        report.position.update(after)
        report.last_at = time.monotonic()

    def _one(self, conn: Connection, msg: Any) -> bool:
        """Apply one event; False when its legacy row was not found (rejected)."""
        from sqlalchemy import text

        try:
            event = orjson.loads(msg.value())
            event_type = str(event.get("event_type"))
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            self._reject(conn, msg, {}, "not a JSON event")
            return False
        apply = self.writes.apply.get(event_type)
        if apply is None:
            raise ConfigError(
                f"writer {self.writes.name}: the history holds a {event_type} event of its own "
                f"origin ({self.topic} partition {msg.partition()} offset {msg.offset()}), and "
                f"{self.writes.source} has no SQL for it",
                hint=f"add 'apply: {{{event_type}: {{params: ..., sql: [...]}}}}' and run the "
                "writer again: it resumes at this event",
            )
        try:
            params = apply.values(event)
        except KeyError as exc:
            self._reject(conn, msg, event, f"the event has no field {exc.args[0]}")
            return False
        first, *rest = apply.sql
        if conn.execute(text(first), params).rowcount == 0:
            self._reject(conn, msg, event, NOT_FOUND)
            return False
        for statement in rest:
            conn.execute(text(statement), params)
        return True

    def _reject(self, conn: Connection, msg: Any, event: dict[str, Any], reason: str) -> None:
        from sqlalchemy import text

        value = msg.value() or b""
        conn.execute(
            text(
                f"INSERT INTO {REJECTS_TABLE} (writer, topic, partition_no, record_offset, "
                "event_id, event_type, reason, event) VALUES (:w, :t, :p, :o, :i, :y, :r, :e)"
            ),
            {
                "w": self.writes.name,
                "t": self.topic,
                "p": msg.partition(),
                "o": msg.offset(),
                "i": str(event.get("event_id"))[:64] if event else None,
                "y": str(event.get("event_type"))[:200] if event else None,
                "r": reason,
                "e": value.decode("utf-8", "replace"),
            },
        )
        self.say(
            f"writer {self.writes.name}: rejected {event.get('event_type', 'a record')} "
            f"{event.get('event_id', '')} at {self.topic} partition {msg.partition()} offset "
            f"{msg.offset()}: {reason} (kept in {REJECTS_TABLE})"
        )

    def _store(self, conn: Connection, after: dict[int, int]) -> None:
        from sqlalchemy import text

        if self.flavour == "postgres":
            statement = (
                f"INSERT INTO {OFFSETS_TABLE} (writer, topic, partition_no, next_offset) "
                "VALUES (:w, :t, :p, :o) ON CONFLICT (writer, topic, partition_no) DO UPDATE "
                "SET next_offset = EXCLUDED.next_offset, updated_at = CURRENT_TIMESTAMP"
            )
        else:
            statement = (
                f"INSERT INTO {OFFSETS_TABLE} (writer, topic, partition_no, next_offset) "
                "VALUES (:w, :t, :p, :o) ON DUPLICATE KEY UPDATE "
                "next_offset = VALUES(next_offset), updated_at = CURRENT_TIMESTAMP"
            )
        conn.execute(
            text(statement),
            [
                {"w": self.writes.name, "t": self.topic, "p": p, "o": o}
                for p, o in sorted(after.items())
            ],
        )

    # ------------------------------------------------------------------ the ledger

    def _record(self, tx_id: int) -> None:
        """Produce the transaction's ledger entry and wait for the broker's acknowledgement
        (a SeamError when it does not come: the caller rolls back)."""
        from confluent_kafka import KafkaException, Producer

        if self._producer is None:
            self._producer = Producer(
                self.kafka.client_config(
                    {"enable.idempotence": True, "acks": "all", "linger.ms": 0}
                )
            )
        assert self.ledger is not None
        key, value = ledger_entry(tx_id, self.writes.name, int(time.time() * 1000))
        outcome: list[Any] = []
        try:
            self._producer.produce(
                self.ledger, value, key, on_delivery=lambda err, _msg: outcome.append(err)
            )
            left = self._producer.flush(TIMEOUT_S)
        except KafkaException as exc:
            outcome, left = [exc.args[0] if exc.args else exc], 1
        if left or not outcome or outcome[0] is not None:
            problem = outcome[0] if outcome and outcome[0] is not None else "no acknowledgement"
            raise SeamError(
                f"writer {self.writes.name}: cannot record transaction {tx_id} in the ledger "
                f"topic {self.ledger} within {TIMEOUT_S:g}s ({problem}); rolled back, nothing "
                "of it was applied",
                hint="check the broker (seam stack status), then run the writer again: it "
                "resumes at the first event not applied",
            )


def _origin(msg: Any) -> bytes | None:
    for name, value in msg.headers() or ():
        if name == ORIGIN_HEADER:
            return value.encode() if isinstance(value, str) else value
    return None


def _ensure_ledger(kafka: Any, topic: str) -> None:
    """Create the ledger topic when it is missing (one partition: the transform reads it
    whole)."""
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    if topic in kafka.topic_names():
        return
    futures = kafka.call(
        "creating the ledger topic",
        kafka.admin.create_topics,
        [NewTopic(topic, num_partitions=1, replication_factor=-1)],
        request_timeout=kafka.timeout,
    )
    for future in futures.values():
        try:
            future.result(timeout=kafka.timeout + 5)
        except Exception as exc:
            error = exc.args[0] if exc.args else exc
            if getattr(error, "name", lambda: "")() != "TOPIC_ALREADY_EXISTS":
                raise SeamError(
                    f"cannot create the ledger topic {topic}: {error}",
                    hint="create it yourself (one partition) or grant this client CREATE",
                ) from None


def rejects(conn: Connection, writer: str) -> list[dict[str, Any]]:
    """The events `writer` rejected, oldest first (for tests and operators)."""
    from sqlalchemy import text

    rows = conn.execute(
        text(
            f"SELECT topic, partition_no, record_offset, event_type, reason, event "
            f"FROM {REJECTS_TABLE} WHERE writer = :w ORDER BY rejected_at, record_offset"
        ),
        {"w": writer},
    ).mappings()
    return [{**dict(r), "event": json.loads(r["event"]) if r["event"] else None} for r in rows]


__all__ = ["NOT_FOUND", "OFFSETS_TABLE", "REJECTS_TABLE", "Writer", "WriterReport", "rejects"]

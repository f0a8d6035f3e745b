"""Commands: the writes a capability moved to the new side (`writes:` in the service file).

A command (`seam.migration.writes.Command`) sets declared state fields of one live entity
from a request's body. The service takes the entity's current state from its image, applies
the body, and derives the domain events of that change with the pipeline's own declaration
(`EntityPlan.update_events`: the code the transform's events stage runs), validates them
with the pipeline's validate stage, and publishes them to the pipeline's history topic in
one Kafka transaction, each with the header `seam-origin: <writer name>`, for the seam
writer (`seam.migration.writer`) to apply to the legacy database.

Answers: 202 with the events and where they were written (topic, partition, offset); 200
with no events when the command changes nothing; 400 naming the field for a bad body; 404
for an entity the image does not hold; 503 when the events cannot be published (nothing is).

An event's provenance says it came from a command: `connector: seam-command`,
`server_name: <writer name>`, `position: {command: <id>}` (the event id is derived from that
id, so each command's events have ids of their own), `source_ts`: when the service took it,
and `topic: seam-command.<writer name>`, partition 0, offset 0 (no raw record stands behind
it). The image learns the new state once the writer has applied it and the transform has
published it to the latest topic; meanwhile the service answers further commands on that
entity from the state its own last command left (`pending`), so a second rename right after
a first one names the right old value.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from seam.changes import RawRecord
from seam.errors import SeamError
from seam.kafka_config import KafkaSettings
from seam.migration.writes import COMMAND_CONNECTOR, ORIGIN_HEADER, Command, WritesSpec
from seam.transforms.declared.clean import References
from seam.transforms.declared.derive import field_schema
from seam.transforms.declared.entity import EntityPlan
from seam.transforms.declared.envelope import key_text
from seam.transforms.model import Item, Reject
from seam.transforms.outputs import SOURCE_TS_HEADER, dumps, event_headers
from seam.transforms.provenance import iso_utc
from seam.transforms.stages.validate import ValidateStage

log = logging.getLogger(__name__)

TIMEOUT_S: Final = 10.0  # every blocking producer call is bounded (librdkafka may block)


class CommandError(SeamError):
    """A command refused: the HTTP status and the message."""

    def __init__(self, status: int, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


@dataclass(frozen=True)
class Written:
    """One event a command published, and where."""

    event: dict[str, Any]
    topic: str
    partition: int
    offset: int


class Commands:
    """The commands of one writes file, run against a service's image."""

    def __init__(self, writes: WritesSpec, kafka: KafkaSettings) -> None:
        self.writes = writes
        self.kafka = kafka
        pipeline = writes.pipeline
        declaration = pipeline.declaration
        assert declaration is not None
        self.declaration = declaration
        self.entity = declaration.entity
        self.plan = EntityPlan(declaration, References(declaration))
        built = pipeline.build()
        validate = [s for s in built.stages if isinstance(s, ValidateStage)]
        self.validate: ValidateStage | None = validate[0] if validate else None
        self.topic = pipeline.history.topic
        self.history_key = pipeline.history.key
        self.by_name = {c.name: c for c in writes.commands}
        self._validators: dict[str, Any] = {}
        self._producer: Any = None
        self._lock = threading.Lock()  # one transaction at a time, and one state per entity
        # key text -> fields a command set that the image may not reflect yet
        self.pending: dict[str, dict[str, Any]] = {}
        self._now: Callable[[], datetime] = lambda: datetime.now(UTC)

    # ------------------------------------------------------------------ the request

    def key_of(self, path_params: Mapping[str, str]) -> tuple[dict[str, Any], str]:
        """The entity key from a command's path: (field -> value, key text)."""
        key: dict[str, Any] = {}
        for name in self.entity.key:
            text = path_params.get(name, "")
            column = self.declaration.table.column(name)
            kind = field_schema(column).get("type") if column is not None else None
            if kind == "integer":
                if not (text.isascii() and text.lstrip("-").isdigit()):
                    raise CommandError(400, f"{name}: expected a whole number, got {text!r}")
                key[name] = int(text)
            else:
                key[name] = text
        return key, key_text(tuple(key.values()))

    def body_of(self, command: Command, body: Any) -> dict[str, Any]:
        """The fields the body sets, each checked against its field's schema."""
        if not isinstance(body, Mapping):
            raise CommandError(
                400,
                "the body must be a JSON object",
                hint=f"send {{{', '.join(repr(f) + ': ...' for f in command.sets)}}}",
            )
        unknown = [k for k in body if k not in command.sets]
        if unknown:
            raise CommandError(
                400,
                f"{', '.join(map(str, unknown))}: not a field {command.name} sets "
                f"(it sets {', '.join(command.sets)})",
            )
        missing = [f for f in command.sets if f not in body]
        if missing:
            raise CommandError(400, f"{', '.join(missing)}: missing", hint="send every field")
        for name in command.sets:
            errors = self._validator(name).iter_errors(body[name])
            messages = [e.message for e in errors]
            if messages:
                raise CommandError(400, f"{name}: {messages[0]}")
        return {name: body[name] for name in command.sets}

    def _validator(self, name: str) -> Any:
        found = self._validators.get(name)
        if found is None:
            import jsonschema_rs

            found = jsonschema_rs.validator_for(self._field_schema(name))
            self._validators[name] = found
        return found

    def _field_schema(self, name: str) -> dict[str, Any]:
        """The field's schema in the state schema the pipeline validates against (its
        written, maybe tightened, version), else the one derived from its rules."""
        stage = self.validate
        state_schema = getattr(stage, "state_schema", None)
        if stage is not None and state_schema is not None:
            found = stage.schemas.documents.get(state_schema)
            schema = ((found[1].get("properties") or {}) if found else {}).get(name)
            if isinstance(schema, dict):
                return schema
        column = self.declaration.table.column(name)
        assert column is not None  # the writes file's fields are state fields
        return field_schema(column)

    # ------------------------------------------------------------------ running one

    def run(
        self,
        command: Command,
        stored: dict[str, Any] | None,
        key: dict[str, Any],
        text: str,
        values: dict[str, Any],
    ) -> tuple[list[Written], str | None]:
        """Derive, validate and publish the events of `command` on the entity whose image
        state is `stored` (None: not in the image): (what was written, why nothing was).
        Call with `lock` held from reading `stored` on."""
        if stored is None:
            raise CommandError(404, f"no {self.entity.name} with key {text}")
        before = {**stored, **self.pending.get(text, {})}
        after = {**before, **values}
        command_id = str(uuid.uuid4())
        provenance = {
            "source_db": None,
            "connector": COMMAND_CONNECTOR,
            "server_name": self.writes.name,
            "table": self.entity.table,
            "position": {"command": command_id, "name": command.name},
            "source_ts": iso_utc(self._now()),
            "snapshot": False,
            "topic": f"{COMMAND_CONNECTOR}.{self.writes.name}",
            "partition": 0,
            "offset": 0,
        }
        events, state, note = self.plan.update_events(before, after, key, provenance)
        if not events:
            return [], note
        self._check(events, state, text)
        written = self._publish(events, text)
        self.pending[text] = {**self.pending.get(text, {}), **values}
        return written, None

    def settle(self, text: str, stored: dict[str, Any] | None) -> None:
        """Forget pending fields the image now shows (call with `lock` held)."""
        pending = self.pending.get(text)
        if pending is None:
            return
        if stored is None:
            del self.pending[text]
            return
        left = {k: v for k, v in pending.items() if stored.get(k) != v}
        if left:
            self.pending[text] = left
        else:
            del self.pending[text]

    @property
    def lock(self) -> threading.Lock:
        return self._lock

    def _check(self, events: list[dict[str, Any]], state: dict[str, Any] | None, text: str) -> None:
        """The pipeline's validate stage on each event (it sets schema_version)."""
        if self.validate is None:
            return
        raw = RawRecord(None, None, self.topic)
        for event in events:
            try:
                list(self.validate.process(Item(raw, event=event, latest_key=text, state=state)))
            except Reject as exc:
                raise CommandError(
                    400,
                    f"the command's event breaks its schema: {exc.reason}",
                    hint="send a value the field's schema accepts",
                ) from None

    # ------------------------------------------------------------------ Kafka

    def _producer_now(self) -> Any:
        if self._producer is None:
            from confluent_kafka import Producer

            producer = Producer(
                self.kafka.client_config(
                    {
                        "transactional.id": f"seam-command.{self.writes.name}",
                        "enable.idempotence": True,
                        "acks": "all",
                        "linger.ms": 0,
                        "transaction.timeout.ms": 60_000,
                    }
                )
            )
            producer.init_transactions(TIMEOUT_S)
            self._producer = producer
        return self._producer

    def _publish(self, events: list[dict[str, Any]], text: str) -> list[Written]:
        from confluent_kafka import KafkaError, KafkaException

        delivered: list[Any] = []

        def report(error: Any, msg: Any) -> None:
            delivered.append(error or msg)

        try:
            producer = self._producer_now()
            producer.begin_transaction()
            now_ms = str(int(time.time() * 1000)).encode()
            for event in events:
                key = event.get(self.history_key, text) if self.history_key else text
                headers = [
                    *event_headers(event),
                    (ORIGIN_HEADER, self.writes.name.encode()),
                    (SOURCE_TS_HEADER, now_ms),
                ]
                producer.produce(
                    self.topic, dumps(event), str(key).encode(), headers=headers, on_delivery=report
                )
            if producer.flush(TIMEOUT_S) > 0:
                raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "flush timed out"))
            producer.commit_transaction(TIMEOUT_S)
        except KafkaException as exc:
            aborted = self._recover(exc)
            raise CommandError(
                503,
                f"cannot publish the command's events to {self.topic}: {exc.args[0]}; "
                + (
                    "nothing was published"
                    if aborted
                    else "its transaction may have committed: read the history before retrying"
                ),
                hint="check the broker (seam stack status) and retry the command",
            ) from None
        failed = [d for d in delivered if isinstance(d, KafkaError)]
        if failed or len(delivered) != len(events):  # pragma: no cover - commit says so first
            raise CommandError(503, f"cannot publish the command's events: {failed}")
        return [
            Written(event, msg.topic(), msg.partition(), msg.offset())
            for event, msg in zip(events, delivered, strict=True)
        ]

    def _recover(self, exc: Any) -> bool:
        """After a failed transaction: abort it (True: aborted, nothing was published), and
        drop a producer that cannot go on (its transactional id fences what it left open)."""
        error = exc.args[0] if exc.args else None
        producer = self._producer
        if producer is None:  # init_transactions failed: nothing was begun
            return True
        try:
            producer.abort_transaction(TIMEOUT_S)
            return True
        except Exception as again:  # the abort failed too: start afresh next time
            log.warning("cannot abort the command's transaction: %s (%s)", again, error)
            self._producer = None
            return False

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(TIMEOUT_S)
            self._producer = None

    def answer(
        self, command: Command, text: str, written: list[Written], note: str | None
    ) -> bytes:
        return orjson.dumps(
            {
                "command": command.name,
                "key": text,
                "origin": self.writes.name,
                "events": [
                    {
                        "event": w.event,
                        "topic": w.topic,
                        "partition": w.partition,
                        "offset": w.offset,
                    }
                    for w in written
                ],
                **({"note": note} if note else {}),
            }
        )


__all__ = ["CommandError", "Commands", "Written"]

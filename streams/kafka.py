"""A thin, read-only Kafka client for inspecting change topics.

Everything here reads: consumers use `assign()` with explicit offsets, a throwaway group id,
`enable.auto.commit=false`, and never commit, so inspecting a topic leaves no trace in any
consumer group. Every broker call has a timeout; an unreachable broker or an unknown topic
becomes one `SeamError` that names the setting to fix.

confluent_kafka is imported inside the functions that need it so that importing this
module (and `seam --help`) stays fast.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from seam.errors import SeamError
from seam.kafka_config import KafkaSettings, kafka_settings

if TYPE_CHECKING:
    from confluent_kafka import Consumer
    from confluent_kafka.admin import AdminClient

KAFKA_HINT: Final = (
    "check the broker address: `seam --kafka HOST:PORT streams ...` "
    "or SEAM_KAFKA_BOOTSTRAP_SERVERS (or [kafka] bootstrap_servers in the config file)"
)
DEFAULT_TIMEOUT: Final = 10.0


class KafkaUnavailableError(SeamError):
    """The broker could not be reached, or did not answer in time."""


class KafkaAuthenticationError(KafkaUnavailableError):
    """The broker rejected the SASL credentials (or the mechanism)."""


class KafkaTlsError(KafkaUnavailableError):
    """The TLS handshake with the broker failed (CA, certificate, key or protocol)."""


_SASL_HINT: Final = (
    "check kafka.sasl_mechanism, kafka.sasl_username and kafka.sasl_password "
    "(SEAM_KAFKA_SASL_MECHANISM, SEAM_KAFKA_SASL_USERNAME, SEAM_KAFKA_SASL_PASSWORD)"
)
_TLS_HINT: Final = (
    "check kafka.ssl_ca_location (the CA that signed the broker's certificate) and, if the "
    "broker asks for a client certificate, kafka.ssl_certificate_location and kafka.ssl_key_location"
)


def connection_problem(error: Any, bootstrap_servers: str) -> KafkaUnavailableError | None:
    """The clear error for a librdkafka error that no retry will cure (credentials refused,
    a failed TLS handshake, a listener of another security protocol), or None.

    librdkafka reports these through `error_cb` and keeps retrying, so a call only times
    out; the client that saw one raises it instead of "cannot reach"."""
    from confluent_kafka import KafkaError

    code = error.code()
    text = str(error.str())
    where = f"Kafka at {bootstrap_servers}"
    if code == KafkaError._AUTHENTICATION and "SSL" not in text:
        return KafkaAuthenticationError(
            f"{where} refused to authenticate seam: {text}", hint=_SASL_HINT
        )
    tls_words = ("SSL handshake failed", "ssl/tls alert")  # the second: the broker's refusal
    if code in (KafkaError._SSL, KafkaError._AUTHENTICATION) or any(w in text for w in tls_words):
        return KafkaTlsError(f"the TLS handshake with {where} failed: {text}", hint=_TLS_HINT)
    if "security.protocol" in text:  # librdkafka's own guess at a mismatched listener
        return KafkaUnavailableError(
            f"{where} does not speak kafka.security_protocol on that port: {text}",
            hint="set kafka.security_protocol (SEAM_KAFKA_SECURITY_PROTOCOL) to the listener's protocol",
        )
    return None


class TopicNotFoundError(SeamError):
    """The topic (or table) the user named has no topic on this cluster."""


class GroupNotFoundError(SeamError):
    """The consumer group the user named does not exist."""


class StreamsUsageError(SeamError):
    """A malformed argument: --from, --key, --where, --op."""


def offset_spec() -> Any:
    """confluent_kafka's OffsetSpec class (untyped in its stubs, so typed Any here)."""
    import confluent_kafka.admin

    return getattr(confluent_kafka.admin, "OffsetSpec")  # noqa: B009


def _quiet_logger() -> logging.Logger:
    # librdkafka logs every failed connection attempt itself; seam reports the failure once,
    # as an error naming the setting, so its own chatter is dropped.
    logger = logging.getLogger("seam.streams.librdkafka")
    logger.propagate = False
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    return logger


@dataclass(frozen=True, slots=True)
class PartitionRange:
    """Offsets [low, high) of one partition: high is the next offset to be written."""

    partition: int
    low: int
    high: int

    @property
    def count(self) -> int:
        """Records between the watermarks (an upper bound on a compacted or transactional
        topic, whose offsets have gaps)."""
        return max(0, self.high - self.low)


class Kafka:
    """Read-only access to one cluster. Use as a context manager."""

    def __init__(self, kafka: KafkaSettings | str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.settings = kafka_settings(kafka)
        self.bootstrap_servers = self.settings.bootstrap_servers
        self.timeout = timeout
        self._admin: AdminClient | None = None
        self._consumers: list[Consumer] = []
        self._problem: KafkaUnavailableError | None = None

    def __enter__(self) -> Kafka:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        while self._consumers:
            consumer = self._consumers.pop()
            # Closing a consumer of an unreachable broker can fail: nothing left to do then.
            with contextlib.suppress(Exception):
                consumer.close()

    def release(self, consumer: Consumer) -> None:
        """Close one consumer made by `consumer()`."""
        if consumer in self._consumers:
            self._consumers.remove(consumer)
        with contextlib.suppress(Exception):
            consumer.close()

    def _on_error(self, error: Any) -> None:
        # Other errors surface through the calls' timeouts; these say why the calls fail.
        problem = connection_problem(error, self.bootstrap_servers)
        if problem is not None:
            self._problem = problem

    def _base_config(self) -> dict[str, Any]:
        ms = int(self.timeout * 1000)
        return self.settings.client_config(
            {
                "logger": _quiet_logger(),
                "socket.connection.setup.timeout.ms": max(1000, ms),
                "error_cb": self._on_error,
            }
        )

    def unreachable(self, detail: str = "") -> KafkaUnavailableError:
        """The error for a call that failed or timed out: why, when librdkafka said."""
        if self._admin is not None:
            # librdkafka hands errors to error_cb only from poll(): collect what it has.
            with contextlib.suppress(Exception):
                self._admin.poll(0)
        if self._problem is not None:
            return self._problem
        suffix = f": {detail}" if detail else ""
        return KafkaUnavailableError(
            f"cannot reach Kafka at {self.bootstrap_servers} within {self.timeout:g}s{suffix}",
            hint=KAFKA_HINT,
        )

    @property
    def admin(self) -> AdminClient:
        if self._admin is None:
            from confluent_kafka.admin import AdminClient

            self._admin = AdminClient(self._base_config())
        return self._admin

    def consumer(self, *, committed_only: bool = True) -> Consumer:
        """A consumer for `assign()`: throwaway group, never commits, reports partition EOF;
        it reads only committed transactions' records unless `committed_only` is False."""
        from confluent_kafka import Consumer

        consumer = Consumer(
            {
                **self._base_config(),
                "group.id": f"seam-streams-{uuid.uuid4().hex[:12]}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 100,
                "isolation.level": "read_committed" if committed_only else "read_uncommitted",
            }
        )
        self._consumers.append(consumer)
        return consumer

    def call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a client call, turning Kafka errors and timeouts into KafkaUnavailableError."""
        from confluent_kafka import KafkaException

        try:
            return fn(*args, **kwargs)
        except KafkaException as exc:
            error: Any = exc.args[0] if exc.args else None
            detail = str(error.str()) if hasattr(error, "str") else str(exc)
            raise self.unreachable(f"{what} failed ({detail})") from None
        except TimeoutError:
            raise self.unreachable(f"{what} timed out") from None

    def topic_names(self) -> dict[str, int]:
        """Every topic with its partition count."""
        meta = self.call("fetching metadata", self.admin.list_topics, timeout=self.timeout)
        return {name: len(t.partitions) for name, t in meta.topics.items() if t.error is None}

    def partitions(self, topic: str) -> list[int]:
        """The partition ids of `topic`; TopicNotFoundError when it does not exist."""
        meta = self.call("fetching metadata", self.admin.list_topics, timeout=self.timeout)
        found = meta.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise TopicNotFoundError(
                f"topic '{topic}' does not exist on Kafka at {self.bootstrap_servers}",
                hint="list the topics with `seam streams list --all`; if this is the wrong cluster, "
                + KAFKA_HINT,
            )
        return sorted(found.partitions)

    def topic_config(self, topic: str) -> dict[str, str]:
        """The topic's configuration as the broker applies it (defaults included)."""
        from confluent_kafka.admin import (  # type: ignore[attr-defined]
            ConfigResource,
            ResourceType,
        )

        resource = ConfigResource(ResourceType.TOPIC, topic)
        futures = self.call(
            "describing the topic's configuration",
            self.admin.describe_configs,
            [resource],
            request_timeout=self.timeout,
        )
        entries = self.call(
            "describing the topic's configuration",
            futures[resource].result,
            timeout=self.timeout + 1,
        )
        return {name: str(entry.value) for name, entry in entries.items()}

    def list_offsets(
        self, topic: str, partitions: Iterable[int], spec: Any
    ) -> dict[int, tuple[int, int]]:
        """partition -> (offset, timestamp) for an OffsetSpec, one request for them all."""
        from confluent_kafka import TopicPartition

        request = {TopicPartition(topic, p): spec for p in partitions}
        if not request:
            return {}
        futures = self.call(
            "listing offsets", self.admin.list_offsets, request, request_timeout=self.timeout
        )
        out = {}
        for tp, future in futures.items():
            info = self.call("listing offsets", future.result, timeout=self.timeout + 1)
            out[tp.partition] = (info.offset, info.timestamp)
        return out

    def ranges(self, topic: str, partitions: Iterable[int] | None = None) -> list[PartitionRange]:
        """Low and high watermarks of every partition of `topic`."""
        spec = offset_spec()
        ids = list(partitions) if partitions is not None else self.partitions(topic)
        low = self.list_offsets(topic, ids, spec.earliest())
        high = self.list_offsets(topic, ids, spec.latest())
        return [PartitionRange(p, low[p][0], high[p][0]) for p in ids]

    def offsets_for_time(self, topic: str, partitions: Iterable[int], ts_ms: int) -> dict[int, int]:
        """partition -> the first offset whose timestamp is >= ts_ms (-1 if none)."""
        found = self.list_offsets(topic, partitions, offset_spec().for_timestamp(ts_ms))
        return {p: offset for p, (offset, _ts) in found.items()}


def read_ranges(
    kafka: Kafka,
    topic: str,
    ranges: dict[int, tuple[int, int | None]],
    *,
    batch: int = 1000,
    committed_only: bool = True,
) -> Iterator[Any]:
    """Yield the confluent_kafka messages of `topic` in [start, end) per partition (only
    committed transactions' records unless `committed_only` is False).

    An end of None follows the partition forever (until the caller stops iterating).
    Without a follower, a read that makes no progress for the client timeout raises
    KafkaUnavailableError instead of hanging.
    """
    import time

    from confluent_kafka import KafkaError, TopicPartition

    pending: dict[int, int | None] = {
        p: end for p, (start, end) in ranges.items() if end is None or start < end
    }
    if not pending:
        return
    following = any(end is None for end in pending.values())
    consumer = kafka.consumer(committed_only=committed_only)
    consumer.assign([TopicPartition(topic, p, ranges[p][0]) for p in pending])
    last_progress = time.monotonic()
    try:
        while pending:
            messages = consumer.consume(num_messages=batch, timeout=0.2)
            if not messages:
                if not following and time.monotonic() - last_progress > kafka.timeout:
                    raise kafka.unreachable(f"no records from topic '{topic}'")
                continue
            last_progress = time.monotonic()
            for msg in messages:
                p = msg.partition()
                if p not in pending:
                    continue
                end = pending[p]
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        if end is not None:  # caught up: offsets up to end may be markers
                            del pending[p]
                        continue
                    if err.fatal() or not err.retriable():
                        raise kafka.unreachable(f"reading '{topic}' failed ({err.str()})")
                    continue
                offset = msg.offset() or 0
                if end is not None and offset >= end:
                    del pending[p]
                    continue
                yield msg
                if end is not None and offset >= end - 1:
                    del pending[p]
    finally:
        kafka.release(consumer)

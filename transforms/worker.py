"""The transform worker: the one module that polls, produces, commits and owns transactions.

Shape (confluent-kafka-python's examples/eos_transactions.py): a consumer in the pipeline's
group reads a batch; every record runs through the pure `Pipeline`; its outputs are produced
(domain events -> history topic, the entity's new state -> latest topic, failures ->
dead-letter topic); then, exactly once (the default), the batch's input offsets go into the
same transaction (`send_offsets_to_transaction`) and the transaction commits: the outputs
and the input progress become visible together or not at all. At least once: produce,
flush, then commit the offsets.

* A batch is what has arrived when the worker is ready for it, up to `batch_size`: it waits
  for the first record (at most `batch_timeout_ms`), then takes what else is there without
  waiting. An idle pipeline's changes go out one small batch at a time, a busy one's in
  batches that grow with the backlog.
* One transaction per batch, committed before the next poll: a rebalance (which only
  happens inside poll) never meets an open transaction, so revoked partitions have nothing
  in flight and their new owner starts exactly after the last committed batch.
* A change the source delivered twice (Debezium is at-least-once) is dropped by its source
  position; the positions reached travel with the committed offsets
  (`seam.transforms.redelivery`).
* A batch that fails is aborted and read again from its first offsets: nothing is lost or
  published twice. A producer that fails fatally or hangs (a librdkafka call that ignores
  its timeout after a broker restart) is replaced; every call that waits on the broker is
  bounded (`seam.transforms.calls`), so the worker never hangs.
* The transactional id is `seam-transform.<group>.<instance>`: a restarted worker with the
  same instance id aborts what its killed predecessor left open (and fences it, if alive).
  Two workers of one group need different instance ids (`--instance-id`).
* SIGTERM / Ctrl-C: the current batch finishes and commits, the consumer leaves the group
  (its partitions go to the other workers at once), the worker returns normally. A second
  signal gives up on a batch stuck on the broker: the worker stops at once with an error.
* A pipeline that declares `own_writes` publishes no event for a change seam's own writer
  made (`seam.transforms.own_writes`); with a ledger (PostgreSQL), each batch holding
  changes first reads the ledger to its end offsets as they are after the poll
  (`seam.transforms.ledger`), so the writer's entry of every change in the batch is in.
* One bad record never stops the worker: it becomes a dead letter. The worker stops with a
  clear error on an unreachable broker past `broker_timeout`, a missing input topic, a
  batch that keeps failing past `broker_timeout`, or another worker with its instance id.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from seam.errors import ConfigError, SeamError
from seam.kafka_config import KafkaSettings, kafka_settings
from seam.streams.decode import decode
from seam.streams.kafka import KAFKA_HINT, KafkaUnavailableError, connection_problem
from seam.transforms.calls import CallInterruptedError, CallTimedOutError, bounded
from seam.transforms.clients import Clients, KafkaClients
from seam.transforms.delivery import (
    BatchFailedError,
    Delivery,
    FencedError,
    ProducerLostError,
    classify,
    describe,
)
from seam.transforms.fast_path import load_fast_path, load_split_path
from seam.transforms.handling import RecordHandler
from seam.transforms.ledger import LedgerReader
from seam.transforms.own_writes import OwnOrigin
from seam.transforms.pipeline import Pipeline
from seam.transforms.pipeline_file import PipelineSpec
from seam.transforms.progress import Counts, MetricsServer, Progress, consumer_lag
from seam.transforms.redelivery import Marks
from seam.transforms.reference import ReferenceFeed, ReferenceTimeoutError

if TYPE_CHECKING:
    from seam.connectors.live_types import TopicTypes

log = logging.getLogger("seam.transform")

# A failing batch is retried until both are true: this many attempts, and broker_timeout
# seconds since the first failure (a broker restart takes longer than a few quick tries).
MAX_BATCH_ATTEMPTS: Final = 5
_PROBE_INTERVAL: Final = 1.0  # seconds between checks that a lost broker answers again


class WorkerError(SeamError):
    """The worker cannot go on (fenced, repeated failures)."""


@dataclass(frozen=True)
class WorkerOptions:
    instance_id: str = ""  # default: the host name
    broker_timeout: float = 30.0  # seconds without a reachable broker before giving up
    progress_interval: float = 5.0
    metrics_port: int | None = None
    stop_when_caught_up: bool = False  # exit once every assigned partition is read to its end
    idle_timeout: float | None = None  # exit after this many seconds without input
    max_records: int | None = None  # exit after about this many input records (benchmarks)
    fast_path: bool = True  # use the compiled fast path when the pipeline allows it
    extra_consumer_config: tuple[tuple[str, Any], ...] = ()
    extra_producer_config: tuple[tuple[str, Any], ...] = ()


def transactional_id(group: str, instance: str) -> str:
    return f"seam-transform.{group}.{instance}"


class Worker:
    """Runs one pipeline until stopped. Use `run()`; `stop()` may be called from any thread."""

    def __init__(
        self,
        spec: PipelineSpec,
        kafka: KafkaSettings | str,
        options: WorkerOptions | None = None,
        *,
        pipeline: Pipeline | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        clients: Clients | None = None,
        column_types: TopicTypes | None = None,
    ) -> None:
        """`column_types`: the inputs' column types (`load_column_types`), which a pipeline
        with `processing.column_types: source` needs."""
        if spec.column_types == "source" and column_types is None:
            raise ConfigError(
                f"pipeline '{spec.name}' has column_types: source but the worker got no types",
                hint="build the worker with column_types=load_column_types(spec, settings) "
                "(seam.transforms.column_types)",
            )
        self.spec = spec
        self.bootstrap = kafka_settings(kafka).bootstrap_servers
        self.options = options or WorkerOptions()
        self.clients: Clients = clients or KafkaClients(kafka)
        self.pipeline = pipeline if pipeline is not None else spec.build()
        # A fast path reads values as sent: never with typed ones (the pipeline file refuses both).
        use_fast = self.options.fast_path and column_types is None
        own = OwnOrigin(spec.own_writes) if spec.own_writes is not None else None
        fast = load_fast_path(spec, self.pipeline, own) if use_fast else None
        split = load_split_path(spec, self.pipeline) if use_fast and fast is None else None
        if split is not None:
            log.info(
                "compiled fast path: on for %s, around the Python stages", ", ".join(split.compiled)
            )
        else:
            log.info("compiled fast path: %s", "on" if fast is not None else "off")
        decoder = column_types.decode if column_types is not None else decode
        self._handler = RecordHandler(spec, self.pipeline, fast, decoder, split, own)
        ledger = spec.own_writes.ledger if spec.own_writes is not None else None
        self._ledger = (
            LedgerReader(ledger, own, self._make_reference_consumer, self.options.broker_timeout)
            if ledger is not None and own is not None
            else None
        )
        self.on_progress = on_progress
        self.eos = spec.guarantee == "exactly_once"
        self.instance = self.options.instance_id or socket.gethostname()
        self.client_id = transactional_id(spec.group, self.instance)
        self._stop = threading.Event()
        self._interrupt = threading.Event()  # a second signal: give up on a stuck call
        self._down_since: float | None = None
        self._renew_producer = False  # replace the producer before the next batch
        self._last_probe = 0.0
        self._fatal: str | None = None
        self._problem: KafkaUnavailableError | None = None  # refused credentials, failed TLS
        self.counts = Counts()
        self.progress = Progress(spec.name, spec.guarantee, self.counts, started=time.monotonic())
        self._consumer: Any = None
        self._delivery = Delivery(
            self._make_producer,
            transactional=self.eos,
            timeout=self.options.broker_timeout,
            interrupt=self._interrupt,
        )
        self._reference = ReferenceFeed(
            self.pipeline,
            self._make_reference_consumer,
            self.options.broker_timeout,
            self._seen_reference,
        )
        self._metrics: MetricsServer | None = None
        self._assigned: set[tuple[str, int]] = set()
        self._marks = Marks()
        self._marks_loaded: set[tuple[str, int]] = set()
        self._failures = 0  # batches failed in a row
        self._failing_since: float | None = None
        # Partitions read to their end (partition EOF) with nothing new since.
        self._eof: set[tuple[str, int]] = set()
        self._loop_started = 0.0
        self._last_report = 0.0
        self._last_count = 0

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Finish the current batch, commit it and return from `run()`."""
        self._stop.set()

    def run(self) -> Progress:
        with self._signals():
            try:
                self._setup()
                self.progress.state = "running"
                self._loop()
                self._report(final=True)  # the last lag and assignment, before leaving
            finally:
                self.progress.state = "stopped"
                self._close()
                self._report(final=True)
        return self.progress

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

        def handler(signum: int, frame: Any) -> None:
            name = signal.Signals(signum).name
            if self._stop.is_set():
                log.warning("%s again: stopping now, without waiting for the broker", name)
                self._interrupt.set()
            else:
                log.info("%s: finishing the current batch (again to stop at once)", name)
                self.stop()

        for s in previous:
            signal.signal(s, handler)
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def _error_cb(self, err: Any) -> None:
        from confluent_kafka import KafkaError

        code = err.code()
        down = (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE)
        problem = connection_problem(err, self.bootstrap)
        if problem is not None:
            # A broker that refuses seam is as good as down, and the error says why.
            self._problem = problem
        if (code in down or problem is not None) and self._down_since is None:
            self._down_since = time.monotonic()

    def _consumer_error_cb(self, err: Any) -> None:
        self._error_cb(err)
        if err.fatal():
            self._fatal = err.str()

    def _base(self) -> dict[str, Any]:
        ms = int(self.options.broker_timeout * 1000)
        return {
            "error_cb": self._error_cb,
            "socket.connection.setup.timeout.ms": max(1000, min(ms, 30000)),
            "logger": _quiet_logger(),
        }

    def _make_producer(self) -> Any:
        conf: dict[str, Any] = {
            **self._base(),
            "client.id": self.client_id,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "batch.num.messages": 10000,
            "queue.buffering.max.messages": 200000,
            "queue.buffering.max.kbytes": 131072,
            "compression.type": "lz4",
            # A Python callback per delivered record costs more than producing it: only
            # failures are reported (and fail the batch).
            "delivery.report.only.error": True,
            "on_delivery": self._delivery.on_delivery,
            # Java clients' partitioner: keys land where Kafka Streams/Connect would put them.
            "partitioner": "murmur2_random",
        }
        if self.eos:
            conf["transactional.id"] = self.client_id
            conf["transaction.timeout.ms"] = 60000
        conf.update(dict(self.options.extra_producer_config))
        return self.clients.producer(conf)

    def _make_reference_consumer(self, config: dict[str, Any]) -> Any:
        return self.clients.consumer({**self._base(), **config})

    def _seen_reference(self) -> None:
        self.progress.reference_records += 1

    def _setup(self) -> None:
        spec = self.spec
        if self.options.metrics_port is not None:
            # First: a port in use must fail before anything is created on the cluster.
            self._metrics = _metrics_server(self.options.metrics_port)
        self.clients.prepare(spec, self.pipeline.reference_topics, self.options.broker_timeout)
        try:
            self._reference.load(self._stop.is_set)
        except ReferenceTimeoutError as exc:
            raise self._unreachable(str(exc)) from None
        try:
            self._delivery.start()
        except (BatchFailedError, ProducerLostError, FencedError) as exc:
            raise self._unreachable(f"initialising transactions failed ({exc})") from None

        consumer_conf: dict[str, Any] = {
            **self._base(),
            "error_cb": self._consumer_error_cb,
            "client.id": self.client_id,
            "group.id": spec.group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "session.timeout.ms": 6000,  # the broker's minimum: quick takeover after a crash
            "heartbeat.interval.ms": 1000,
            "max.poll.interval.ms": 300000,
            "fetch.min.bytes": 1,
            "fetch.wait.max.ms": 100,
            "enable.partition.eof": self.options.stop_when_caught_up,
            "queued.min.messages": 20000,
            # Bounded prefetch: memory stays flat however far behind the worker is.
            "queued.max.messages.kbytes": 16384,
            # With the prefetch queue full, librdkafka postpones the next fetch by this much
            # (default 1 s): the worker then drains the queue and waits idle for the rest of
            # the second. Measured: pass-through stalled at ~36k records/s with the default.
            "fetch.queue.backoff.ms": 20,
        }
        consumer_conf.update(dict(self.options.extra_consumer_config))
        self._consumer = self.clients.consumer(consumer_conf)
        self._consumer.subscribe(
            list(spec.inputs),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )

    def _unreachable(self, detail: str) -> KafkaUnavailableError:
        if self._problem is not None:
            return self._problem
        return KafkaUnavailableError(
            f"cannot reach Kafka at {self.bootstrap} within {self.options.broker_timeout:g}s: {detail}",
            hint=KAFKA_HINT,
        )

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self._assigned |= {(p.topic, p.partition) for p in partitions}
        log.info("assigned %s", sorted(self._assigned))

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        # Batches commit before the next poll, so nothing is in flight for these partitions.
        for p in partitions:
            tp = (p.topic, p.partition)
            self._assigned.discard(tp)
            self._marks_loaded.discard(tp)
            self._marks.load(p.topic, p.partition, None)  # its next owner loads them
        log.info("revoked %s", sorted((p.topic, p.partition) for p in partitions))

    def _close(self) -> None:
        # Dropped, not only closed: a live librdkafka client refreshes metadata for the
        # topics it knew, which re-creates them on brokers with auto-create after a replay
        # or a test deleted them.
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):  # leaves the group: partitions move on at once
                bounded("leaving the group", 10.0, consumer.close, interrupt=self._interrupt)
        self._delivery.close()
        self._reference.close()
        if self._ledger is not None:
            self._ledger.close()
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None

    # ------------------------------------------------------------------ the loop

    def _loop(self) -> None:
        spec = self.spec
        last_input = self._loop_started = self._last_report = time.monotonic()
        while not self._stop.is_set():
            self._check_health()
            self._reference.refresh()
            messages = self._poll(spec.batch_timeout_ms / 1000)
            # In order: a partition's EOF event follows its last record of the same poll.
            records = [m for m in messages if self._usable(m)]
            if records:
                if self._down_since is not None:
                    self._broker_back()
                last_input = time.monotonic()
                self._process_batch(records)
                if (
                    self.options.max_records is not None
                    and self.counts.records_in >= self.options.max_records
                ):
                    break
            else:
                idle = time.monotonic() - last_input
                if self.options.idle_timeout is not None and idle >= self.options.idle_timeout:
                    break
                if (
                    self.options.stop_when_caught_up
                    and self._assigned
                    and self._assigned <= self._eof
                ):
                    break
            self._report()

    def _poll(self, wait: float) -> list[Any]:
        """What has arrived, up to batch_size: waits (at most `wait`) for the first record
        only, so a batch closes as soon as the input is drained and grows with a backlog."""
        first = self._consumer.poll(wait)
        if first is None:
            return []
        if self.spec.batch_size <= 1:
            return [first]
        return [first, *self._consumer.consume(self.spec.batch_size - 1, 0)]

    def _usable(self, msg: Any) -> bool:
        err = msg.error()
        if err is None:
            if self._eof:
                self._eof.discard((msg.topic(), msg.partition()))
            return True
        from confluent_kafka import KafkaError

        if err.code() == KafkaError._PARTITION_EOF:
            self._eof.add((msg.topic(), msg.partition()))
            return False
        if err.fatal():
            self._fatal = err.str()
        log.warning("consumer: %s", err.str())
        return False

    def _check_health(self) -> None:
        if self._fatal:
            raise WorkerError(
                f"the Kafka consumer failed: {self._fatal}",
                hint="restart the worker; if it persists, check the broker's log",
            )
        if self._down_since is None:
            return
        now = time.monotonic()
        if now - self._last_probe >= _PROBE_INTERVAL:
            self._last_probe = now
            if self._broker_answers():
                self._broker_back()
                return
        down = now - self._down_since
        if down >= self.options.broker_timeout:
            raise self._unreachable(f"no broker reachable for {down:.0f}s")

    def _broker_back(self) -> None:
        log.info("the broker answers again")
        self._down_since = None
        # Batches that failed during the outage do not count against the next ones: after a
        # broker's return, broker_timeout runs from the first new failure.
        self._failing_since = None
        self._failures = 0
        # A transactional producer that lived through the outage may still hold the group
        # coordinator it knew before; its next send_offsets_to_transaction can then block
        # (librdkafka #5511) until the bound gives up on it. A new one looks it up afresh.
        self._renew_producer = self.eos

    def _broker_answers(self) -> bool:
        """Whether a metadata request of the consumer gets an answer (quickly)."""
        try:
            bounded(
                "asking the broker for metadata",
                2.0,
                self._consumer.list_topics,
                self.spec.inputs[0],
                timeout=2.0,
                interrupt=self._interrupt,
            )
        except CallInterruptedError:
            raise
        except Exception:
            return False
        return True

    # ------------------------------------------------------------------ batches

    def _process_batch(self, messages: list[Any]) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        spans = _spans(messages)
        first = {tp: span[0] for tp, span in spans.items()}
        batch = Counts()
        try:
            if self._renew_producer:
                self._renew_producer = False
                self._delivery.renew("the broker came back after an outage")
            elif not self._delivery.ready:
                self._delivery.start()
            self._load_marks(spans)
            if self._ledger is not None and any(m.value() is not None for m in messages):
                self._ledger.catch_up()
            marks = self._marks.copy()
            self._delivery.begin()
            self._handler.transform(messages, batch, marks, self._delivery)
            offsets = [
                TopicPartition(t, p, span[1] + 1, metadata=marks.metadata(t, p))
                for (t, p), span in spans.items()
            ]
            if self.eos:
                self._delivery.commit(offsets, self._consumer.consumer_group_metadata())
            else:
                self._delivery.flush()
                self._commit_offsets(offsets)
        except CallInterruptedError as exc:
            raise WorkerError(
                f"stopped while {exc.what}: the batch in progress was not committed",
                hint="nothing is lost: the next run reads the batch again"
                + ("" if self.eos else " (at least once: its outputs may be published twice)"),
            ) from None
        except (KafkaException, BatchFailedError, ProducerLostError, FencedError) as exc:
            self._batch_failed(classify(exc), first)
            return
        self._marks = marks
        self._failures = 0
        self._failing_since = None
        self.counts.add(batch)
        if batch.redelivered:
            log.warning(
                "dropped %d re-delivered change%s (already published from earlier offsets)",
                batch.redelivered,
                "" if batch.redelivered == 1 else "s",
            )
        self.progress.batches += 1
        self.progress.last_input_at = time.monotonic()
        if self.progress.first_input_at is None:
            self.progress.first_input_at = self.progress.last_input_at
        # Past processing.max_stage_errors the worker stops here, once the batch is
        # committed: its dead letters and offsets are in, a restart neither loses nor repeats.
        self.spec.check_stage_errors(self.counts.stage_errors, self.pipeline)

    def _load_marks(self, spans: dict[tuple[str, int], list[int]]) -> None:
        """The high-water marks a partition's committed offset carries, once per assignment."""
        missing = [tp for tp in spans if tp not in self._marks_loaded]
        if not missing:
            return
        from confluent_kafka import KafkaException, TopicPartition

        try:
            committed = bounded(
                "reading the committed offsets",
                self.options.broker_timeout,
                self._consumer.committed,
                [TopicPartition(t, p) for t, p in missing],
                timeout=self.options.broker_timeout,
                interrupt=self._interrupt,
            )
        except (KafkaException, CallTimedOutError) as exc:
            raise BatchFailedError(
                f"reading the committed offsets failed ({describe(exc)})"
            ) from None
        for tp in committed:
            if tp.error is not None:
                raise BatchFailedError(f"reading the committed offsets failed: {tp.error.str()}")
            self._marks.load(tp.topic, tp.partition, tp.metadata)
            self._marks_loaded.add((tp.topic, tp.partition))

    def _commit_offsets(self, offsets: list[Any]) -> None:
        from confluent_kafka import KafkaException

        try:
            bounded(
                "committing the offsets",
                self.options.broker_timeout,
                self._consumer.commit,
                offsets=offsets,
                asynchronous=False,
                interrupt=self._interrupt,
            )
        except (KafkaException, CallTimedOutError) as exc:
            # The outputs are out; reading the batch again publishes them again (at least once).
            raise BatchFailedError(f"committing the offsets failed ({describe(exc)})") from None

    def _batch_failed(self, failure: Exception, first: dict[tuple[str, int], int]) -> None:
        self.progress.aborted_batches += 1
        now = time.monotonic()
        self._failures += 1
        if self._failing_since is None:
            self._failing_since = now
        if isinstance(failure, FencedError):
            other = self._other_instance()
            if other is not None:
                raise WorkerError(
                    f"the producer was fenced ({failure}): another worker of group "
                    f"{self.spec.group} runs with instance id {self.instance!r} ({other})",
                    hint="give each worker of a group its own --instance-id",
                )
            failure = ProducerLostError(
                f"the producer was fenced ({failure}) but no other worker uses instance id "
                f"{self.instance!r}: the transaction coordinator lost track of it"
            )
        log.warning("batch failed (%s): aborted, reading it again", failure)
        if isinstance(failure, ProducerLostError):
            try:
                self._delivery.renew(str(failure))
            except (BatchFailedError, ProducerLostError, FencedError) as exc:
                log.warning("a new producer could not start yet (%s): retrying", exc)
        else:
            self._delivery.abort()
        # The next poll reads the same records again: nothing lost, nothing published twice
        # (exactly once) or published again (at least once).
        self._rewind(first)
        failing = now - self._failing_since
        if self._failures >= MAX_BATCH_ATTEMPTS and failing >= self.options.broker_timeout:
            raise WorkerError(
                f"a batch failed {self._failures} times in a row over {failing:.0f}s, "
                f"last: {failure}",
                hint="check the broker and the output topics; the batch was not committed",
            )
        # Back off a little, more after each failure in a row.
        self._stop.wait(min(5.0, 0.1 * 2 ** (self._failures - 1)))

    def _other_instance(self) -> str | None:
        """Another live member of the group with this worker's client id, if any."""
        try:
            members = bounded(
                "describing the consumer group",
                self.options.broker_timeout,
                self.clients.members,
                self.spec.group,
                self.options.broker_timeout,
                interrupt=self._interrupt,
            )
            me = self._consumer.memberid()
        except CallInterruptedError:
            raise
        except Exception as exc:
            log.warning("could not list the group's members (%s)", exc)
            return None
        for m in members:
            if m.client_id == self.client_id and m.member_id != me:
                return f"member {m.member_id} on {m.host}"
        return None

    def _rewind(self, first: dict[tuple[str, int], int]) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        for tp, offset in first.items():
            if tp in self._assigned:
                with contextlib.suppress(KafkaException):
                    self._consumer.seek(TopicPartition(tp[0], tp[1], offset))

    # ------------------------------------------------------------------ progress

    def _report(self, final: bool = False) -> None:
        now = time.monotonic()
        interval = now - self._last_report if self._last_report else 0.0
        if not final and interval < self.options.progress_interval:
            return
        p = self.progress
        p.elapsed = now - p.started
        if final:
            # The summary's rate is the run's: records over the time spent reading them.
            running = now - self._loop_started if self._loop_started else 0.0
            p.rate = self.counts.records_in / running if running > 0 else 0.0
        elif interval > 0:
            p.rate = (self.counts.records_in - self._last_count) / interval
        if self._consumer is not None and p.state == "running":
            p.assigned = len(self._assigned)
            p.lag = consumer_lag(self._consumer, self._assigned)
        self._last_report = now
        self._last_count = self.counts.records_in
        if self._metrics is not None:
            self._metrics.update(p)
        if self.on_progress is not None:
            self.on_progress(p)


def _metrics_server(port: int) -> MetricsServer:
    if not 0 < port < 65536:
        raise WorkerError(
            f"--metrics-port {port} is not a TCP port", hint="give a port from 1 to 65535"
        )
    try:
        return MetricsServer(port)
    except OSError as exc:
        raise WorkerError(
            f"cannot serve metrics on port {port}: {exc.strerror or exc}",
            hint="choose a free port with --metrics-port (or leave it out)",
        ) from None


def _spans(messages: list[Any]) -> dict[tuple[str, int], list[int]]:
    """Per (topic, partition): the first and last offset among `messages`."""
    spans: dict[tuple[str, int], list[int]] = {}
    for m in messages:
        tp, offset = (m.topic(), m.partition()), m.offset()
        span = spans.get(tp)
        if span is None:
            spans[tp] = [offset, offset]
        else:
            span[1] = offset
    return spans


def _quiet_logger() -> logging.Logger:
    logger = logging.getLogger("seam.transform.librdkafka")
    logger.propagate = False
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    return logger

"""The transform worker: the one module that polls, produces, commits and owns transactions.

Shape (confluent-kafka-python's examples/eos_transactions.py): a consumer in the pipeline's
group reads a batch; every record runs through the pure `Pipeline`; its outputs are produced
(domain events -> history topic, the product's new state -> latest topic, failures ->
dead-letter topic); then, exactly once (the default), the batch's input offsets go into the
same transaction (`send_offsets_to_transaction`) and the transaction commits: the outputs
and the input progress become visible together or not at all. At least once: produce,
flush, then commit the offsets.

* One transaction per batch, committed before the next poll: a rebalance (which only
  happens inside poll) never meets an open transaction, so revoked partitions have nothing
  in flight and their new owner starts exactly after the last committed batch.
* A transaction that must be aborted (a produce failed, the broker said so) is aborted and
  the consumer rewinds to the batch's first offsets: nothing is lost or duplicated.
* The transactional id is `seam-transform.<group>.<instance>`: a restarted worker with the
  same instance id aborts what its killed predecessor left open (and fences it, if alive).
  Two workers of one group need different instance ids (`--instance-id`).
* SIGTERM / Ctrl-C: the current batch finishes and commits, the consumer leaves the group
  (its partitions go to the other workers at once), the worker returns normally.
* One bad record never stops the worker: it becomes a dead letter. The worker stops with a
  clear error on an unreachable broker past `broker_timeout`, a missing input topic, or
  being fenced.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from seam.errors import SeamError
from seam.streams.decode import RawRecord
from seam.streams.kafka import KAFKA_HINT, Kafka, KafkaUnavailableError
from seam.transforms.fast_path import FastPath, fast_path_for
from seam.transforms.outputs import Publication, publication
from seam.transforms.pipeline import Pipeline, Produced
from seam.transforms.pipeline_file import PipelineSpec
from seam.transforms.progress import Counts, MetricsServer, Progress
from seam.transforms.readback import watermarks
from seam.transforms.topics import ensure_outputs

log = logging.getLogger("seam.transform")

MAX_BATCH_ATTEMPTS: Final = 5
DLQ_PREFIX: Final = "seam."


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
        bootstrap_servers: str,
        options: WorkerOptions | None = None,
        *,
        pipeline: Pipeline | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.spec = spec
        self.bootstrap = bootstrap_servers
        self.options = options or WorkerOptions()
        self.pipeline = pipeline if pipeline is not None else spec.build()
        self._fast: FastPath | None = (
            fast_path_for(self.pipeline) if self.options.fast_path else None
        )
        log.info("compiled fast path: %s", "on" if self._fast is not None else "off")
        self.on_progress = on_progress
        self.eos = spec.guarantee == "exactly_once"
        self.instance = self.options.instance_id or socket.gethostname()
        self._stop = threading.Event()
        self._down_since: float | None = None
        self._fatal: str | None = None
        self._delivery_errors: list[str] = []
        self.counts = Counts()
        self.progress = Progress(spec.name, spec.guarantee, self.counts, started=time.monotonic())
        self._consumer: Any = None
        self._producer: Any = None
        self._ref_consumer: Any = None
        self._metrics: MetricsServer | None = None
        self._assigned: set[tuple[str, int]] = set()
        self._failures = 0  # batches failed in a row
        # Partitions read to their end (partition EOF) with nothing new since.
        self._eof: set[tuple[str, int]] = set()
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
                self._report(force=True)  # the last lag and assignment, before leaving
            finally:
                self.progress.state = "stopped"
                self._close()
                self._report(force=True)
        return self.progress

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

        def handler(signum: int, frame: Any) -> None:
            log.info("signal %s: finishing the current batch", signal.Signals(signum).name)
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
        if code in down and self._down_since is None:
            self._down_since = time.monotonic()
        if err.fatal():
            self._fatal = err.str()

    def _base(self) -> dict[str, Any]:
        ms = int(self.options.broker_timeout * 1000)
        return {
            "bootstrap.servers": self.bootstrap,
            "error_cb": self._error_cb,
            "socket.connection.setup.timeout.ms": max(1000, min(ms, 30000)),
            "logger": _quiet_logger(),
        }

    def _setup(self) -> None:
        from confluent_kafka import Consumer, KafkaException, Producer

        spec = self.spec
        with Kafka(self.bootstrap, timeout=self.options.broker_timeout) as kafka:
            partitions = {t: kafka.partitions(t) for t in spec.inputs}  # TopicNotFoundError
            for t in self.pipeline.reference_topics:
                kafka.partitions(t)
            ensure_outputs(kafka, spec, default_partitions=len(partitions[spec.inputs[0]]))
        if self.options.metrics_port is not None:
            self._metrics = MetricsServer(self.options.metrics_port)
        self._load_reference()

        producer_conf: dict[str, Any] = {
            **self._base(),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 10,
            "batch.num.messages": 10000,
            "queue.buffering.max.messages": 200000,
            "queue.buffering.max.kbytes": 131072,
            "compression.type": "lz4",
            # A Python callback per delivered record costs more than producing it: only
            # failures are reported (and abort the batch).
            "delivery.report.only.error": True,
            "on_delivery": self._on_delivery,
            # Java clients' partitioner: keys land where Kafka Streams/Connect would put them.
            "partitioner": "murmur2_random",
        }
        if self.eos:
            producer_conf["transactional.id"] = transactional_id(spec.group, self.instance)
            producer_conf["transaction.timeout.ms"] = 60000
        producer_conf.update(dict(self.options.extra_producer_config))
        self._producer = Producer(producer_conf)
        if self.eos:
            try:
                self._producer.init_transactions(self.options.broker_timeout)
            except KafkaException as exc:
                raise self._unreachable(f"initialising transactions failed ({_err(exc)})") from None

        consumer_conf: dict[str, Any] = {
            **self._base(),
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
        self._consumer = Consumer(consumer_conf)
        self._consumer.subscribe(
            list(spec.inputs),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )

    def _unreachable(self, detail: str) -> KafkaUnavailableError:
        return KafkaUnavailableError(
            f"cannot reach Kafka at {self.bootstrap} within {self.options.broker_timeout:g}s: {detail}",
            hint=KAFKA_HINT,
        )

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self._assigned |= {(p.topic, p.partition) for p in partitions}
        log.info("assigned %s", sorted(self._assigned))

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        # Batches commit before the next poll, so nothing is in flight for these partitions.
        self._assigned -= {(p.topic, p.partition) for p in partitions}
        log.info("revoked %s", sorted((p.topic, p.partition) for p in partitions))

    def _close(self) -> None:
        # Dropped, not only closed: a live librdkafka client refreshes metadata for the
        # topics it knew, which re-creates them on brokers with auto-create after a replay
        # or a test deleted them.
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                self._consumer.close()  # leaves the group: partitions move on at once
            self._consumer = None
        if self._producer is not None:
            with contextlib.suppress(Exception):
                self._producer.flush(5)
            self._producer = None
        if self._ref_consumer is not None:
            with contextlib.suppress(Exception):
                self._ref_consumer.close()
            self._ref_consumer = None
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None

    # ------------------------------------------------------------------ reference data

    def _load_reference(self) -> None:
        """Read every reference topic to its current end before the first record."""
        topics = self.pipeline.reference_topics
        if not topics:
            return
        from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

        consumer = Consumer(
            {
                **self._base(),
                "group.id": f"seam-transform-ref-{uuid.uuid4().hex[:12]}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                # The end is where the partition says so: a compacted topic's last offsets
                # may be gone, and transaction markers are never delivered.
                "enable.partition.eof": True,
            }
        )
        self._ref_consumer = consumer
        targets: dict[tuple[str, int], int] = {}
        assignment = []
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=self.options.broker_timeout)
            for p in meta.topics[topic].partitions:
                assignment.append(TopicPartition(topic, p, OFFSET_BEGINNING))
                _lo, hi = watermarks(
                    consumer, TopicPartition(topic, p), self.options.broker_timeout
                )
                if hi > 0:
                    targets[(topic, p)] = hi
        consumer.assign(assignment)
        deadline = time.monotonic() + max(60.0, self.options.broker_timeout)
        while targets and time.monotonic() < deadline and not self._stop.is_set():
            for msg in consumer.consume(1000, 0.5):
                tp = (msg.topic() or "", msg.partition() or 0)
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        targets.pop(tp, None)
                    continue
                self.pipeline.observe(RawRecord.from_message(msg))
                self.progress.reference_records += 1
                offset = msg.offset()
                if tp in targets and offset is not None and offset + 1 >= targets[tp]:
                    del targets[tp]
        if targets:
            raise self._unreachable(f"reading the reference topics {topics} to their end timed out")

    def _refresh_reference(self) -> None:
        if self._ref_consumer is None:
            return
        for msg in self._ref_consumer.consume(1000, 0):
            if not msg.error():  # partition EOF events included
                self.pipeline.observe(RawRecord.from_message(msg))
                self.progress.reference_records += 1

    # ------------------------------------------------------------------ the loop

    def _loop(self) -> None:
        spec = self.spec
        timeout = spec.batch_timeout_ms / 1000
        last_input = time.monotonic()
        self._last_report = time.monotonic()
        while not self._stop.is_set():
            self._check_health()
            self._refresh_reference()
            messages = self._consumer.consume(spec.batch_size, timeout)
            # In order: a partition's EOF event follows its last record of the same poll.
            records = [m for m in messages if self._usable(m)]
            if records:
                self._down_since = None
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
            raise WorkerError(f"Kafka client failed: {self._fatal}")
        if self._down_since is not None:
            down = time.monotonic() - self._down_since
            if down >= self.options.broker_timeout:
                raise self._unreachable(f"no broker reachable for {down:.0f}s")

    def _process_batch(self, messages: list[Any]) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        fast = self._fast
        spans = _spans(messages)
        first = {tp: span[0] for tp, span in spans.items()}
        last = {tp: span[1] for tp, span in spans.items()}
        batch = Counts()
        self._delivery_errors.clear()
        try:
            if self.eos:
                self._producer.begin_transaction()
            index = 0
            while index < len(messages):
                if fast is not None:
                    # The compiled fast path publishes records in order until one needs
                    # the Python stages (per-key order holds across the two paths).
                    index = fast.publish(messages, index, self._producer, self.spec, batch)
                    if index == len(messages):
                        break
                self._handle(messages[index], batch)
                index += 1
            offsets = [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]
            if self.eos:
                self._producer.send_offsets_to_transaction(
                    offsets,
                    self._consumer.consumer_group_metadata(),
                    self.options.broker_timeout,
                )
                self._commit_transaction()
            else:
                self._flush_or_raise()
                self._consumer.commit(offsets=offsets, asynchronous=False)
        except (KafkaException, _DeliveryFailedError) as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(exc, KafkaException) and getattr(error, "fatal", lambda: False)():
                raise WorkerError(
                    f"the producer was fenced or failed fatally: {_err(exc)}",
                    hint="another worker runs with the same --instance-id; give each one its own",
                ) from None
            self._failures += 1
            self.progress.aborted_batches += 1
            log.warning("batch failed (%s): aborted, rewinding", _err(exc))
            if self.eos:
                with contextlib.suppress(KafkaException):
                    self._producer.abort_transaction(self.options.broker_timeout)
            # The next poll reads the same records again: nothing lost, nothing published twice
            # (exactly once) or published again (at least once).
            self._rewind(first)
            if self._failures >= MAX_BATCH_ATTEMPTS:
                raise WorkerError(
                    f"a batch failed {self._failures} times in a row, last: {_err(exc)}",
                    hint="check the broker and the output topics; the batch was not committed",
                ) from None
            return
        self._failures = 0
        self.counts.add(batch)
        self.progress.batches += 1
        self.progress.last_input_at = time.monotonic()
        if self.progress.first_input_at is None:
            self.progress.first_input_at = self.progress.last_input_at
        # Past processing.max_stage_errors the worker stops here, once the batch is
        # committed: its dead letters and offsets are in, a restart neither loses nor repeats.
        self.spec.check_stage_errors(self.counts.stage_errors, self.pipeline)

    def _seek(self, tp: tuple[str, int], offset: int) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        with contextlib.suppress(KafkaException):
            self._consumer.seek(TopicPartition(tp[0], tp[1], offset))

    def _rewind(self, first: dict[tuple[str, int], int]) -> None:
        for tp, offset in first.items():
            if tp in self._assigned:
                self._seek(tp, offset)

    def _commit_transaction(self) -> None:
        from confluent_kafka import KafkaException

        for _ in range(10):
            try:
                self._producer.commit_transaction(self.options.broker_timeout)
                return
            except KafkaException as exc:
                error = exc.args[0]
                if error.retriable() and not error.txn_requires_abort():
                    continue
                raise
        raise _DeliveryFailedError("committing the transaction kept timing out")

    def _flush_or_raise(self) -> None:
        remaining = self._producer.flush(self.options.broker_timeout)
        if remaining:
            raise _DeliveryFailedError(f"{remaining} records not delivered in time")
        if self._delivery_errors:
            raise _DeliveryFailedError(self._delivery_errors[0])

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._delivery_errors.append(f"{msg.topic()}: {err.str()}")

    def _produce(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Any = None
    ) -> None:
        # Failures reach `_on_delivery`, the producer's default callback (see _setup).
        try:  # the usual case first: one call, no loop
            self._producer.produce(topic, value, key, headers=headers)
        except BufferError:
            while True:
                self._producer.poll(0.05)
                try:
                    self._producer.produce(topic, value, key, headers=headers)
                    return
                except BufferError:
                    continue

    def _handle(self, msg: Any, batch: Counts) -> None:
        batch.records_in += 1
        if not self.pipeline.stages:  # pass-through (benchmarks): copy the record as it is
            self._produce(self.spec.history.topic, msg.key(), msg.value())
            batch.records_with_events += 1
            batch.events_out += 1
            return
        raw = RawRecord.from_message(msg)
        outcome = self.pipeline.run(raw)
        if isinstance(outcome, Produced):
            self._publish(publication(outcome), batch)
            return
        headers = [
            *raw.headers,
            (DLQ_PREFIX + "pipeline", self.spec.name.encode()),
            (DLQ_PREFIX + "stage", outcome.stage.encode()),
            (DLQ_PREFIX + "reason", outcome.reason.encode("utf-8", "replace")[:4000]),
            (DLQ_PREFIX + "source.topic", raw.topic.encode()),
            (DLQ_PREFIX + "source.partition", str(raw.partition).encode()),
            (DLQ_PREFIX + "source.offset", str(raw.offset).encode()),
        ]
        self._produce(self.spec.dead_letter.topic, raw.key, raw.value, headers)
        batch.dead_lettered += 1
        batch.dead_letter_reasons[outcome.stage] = (
            batch.dead_letter_reasons.get(outcome.stage, 0) + 1
        )
        if outcome.error is not None:  # the stage raised: a bug, counted apart (and limited)
            batch.stage_errors[outcome.stage] = batch.stage_errors.get(outcome.stage, 0) + 1

    def _publish(self, out: Publication, batch: Counts) -> None:
        history, latest, note = out
        produce = self._produce
        if history:
            topic = self.spec.history.topic
            for key, value, headers in history:
                produce(topic, key, value, headers)
            batch.records_with_events += 1
            batch.events_out += len(history)
        else:
            reason = note or "no event"
            batch.no_event[reason] = batch.no_event.get(reason, 0) + 1
        if latest is not None:
            produce(self.spec.latest.topic, latest[0], latest[1])
            batch.latest_out += 1

    # ------------------------------------------------------------------ progress

    def _lag(self) -> int | None:
        from confluent_kafka import KafkaException, TopicPartition

        if not self._assigned:
            return None
        tps = [TopicPartition(t, p) for t, p in sorted(self._assigned)]
        try:
            positions = self._consumer.position(tps)
            unknown = [tp for tp in positions if tp.offset < 0]
            committed = {
                (tp.topic, tp.partition): tp.offset
                for tp in (self._consumer.committed(unknown, timeout=5) if unknown else [])
            }
            total = 0
            for tp in positions:
                pos = tp.offset if tp.offset >= 0 else committed.get((tp.topic, tp.partition), -1)
                # The high watermark of the last fetch response (milliseconds old while the
                # worker reads) costs nothing; asking the broker cost ~40 ms per partition on
                # a busy broker, every progress interval. Asked only when nothing is cached.
                lo, hi = self._consumer.get_watermark_offsets(tp, cached=True)
                if hi < 0 or (pos < 0 and lo < 0):
                    lo, hi = self._consumer.get_watermark_offsets(tp, timeout=5)
                if pos < 0:
                    pos = lo
                total += max(0, hi - pos)
            return total
        except KafkaException:
            return None

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        interval = now - self._last_report if self._last_report else 0.0
        if not force and interval < self.options.progress_interval:
            return
        p = self.progress
        p.elapsed = now - p.started
        if interval > 0:
            p.rate = (self.counts.records_in - self._last_count) / interval
        if self._consumer is not None and p.state == "running":
            p.assigned = len(self._assigned)
            p.lag = self._lag()
        self._last_report = now
        self._last_count = self.counts.records_in
        if self._metrics is not None:
            self._metrics.update(p)
        if self.on_progress is not None:
            self.on_progress(p)


class _DeliveryFailedError(Exception):
    pass


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


def _err(exc: BaseException) -> str:
    error: Any = exc.args[0] if exc.args else None
    return str(error.str()) if hasattr(error, "str") else str(exc)


def _quiet_logger() -> logging.Logger:
    logger = logging.getLogger("seam.transform.librdkafka")
    logger.propagate = False
    logger.addHandler(logging.NullHandler())
    return logger

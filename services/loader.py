"""Loads the latest topic into the image, then tails it: one thread, one consumer.

The consumer is assigned every partition by hand (no consumer group, no rebalances: each
instance of a service reads the whole topic on its own, so any number of them can serve one
entity), reads only committed transactions (the transform writes in transactions) and
commits nothing. At start it notes each partition's end offset (the last stable offset); the
image is ready once it has applied every partition up to those, and then keeps tailing.

The applied offsets are the consumer's positions (the next offset to read) after each batch,
moved under the image's lock together with the records: what a reader sees and the offsets
it is told always agree. A transaction's commit marker takes an offset of its own; the
partition-end event librdkafka sends when it has read everything carries the offset past
it, which the applied offsets take too.

Lag behind the source: the transform puts the source commit time and log position of each
change on the record it publishes (headers `seam-source-ts-ms` and `seam-source-position`,
`seam.transforms.outputs`). The loader keeps those of the last record it applied that
carried them; `Progress.lag_seconds` turns them into seconds behind the source commit.

Partitions added to the topic while the loader runs are found by a metadata read every
`REFRESH_S` and read from their first offset (readiness stays about the partitions at start).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from seam.kafka_config import KafkaSettings, kafka_settings
from seam.services.fresh import Fresh
from seam.services.image import Image
from seam.services.offsets import end_offsets
from seam.services.signal import Signal
from seam.streams.kafka import Kafka
from seam.transforms.outputs import SOURCE_POSITION_HEADER, SOURCE_TS_HEADER

log = logging.getLogger(__name__)

BATCH: Final = 2000
POLL_S: Final = 0.01  # consume() waits this long for a full batch: the tail latency
REFRESH_S: Final = 5.0  # how often the topic's partitions are read again (new ones are added)


@dataclass
class Progress:
    """What the loader has done, read by /ready, /metrics and the responses."""

    applied: dict[int, int] = field(default_factory=dict)  # partition -> next offset
    ends_at_start: dict[int, int] = field(default_factory=dict)
    ready: bool = False
    ready_after_s: float | None = None
    records: int = 0
    last_record_ts_ms: int | None = None
    error: str | None = None
    ends: dict[int, int] = field(default_factory=dict)  # as the consumer last saw them
    behind_since: float | None = None  # wall time since when the image lags (None: current)
    # The source headers of the last applied record that carried them.
    last_source_ts_ms: int | None = None
    last_source_position: str | None = None

    @property
    def behind(self) -> bool:
        """Whether some partition's end offset, as last seen, is past the applied offset."""
        applied = self.applied
        return any(applied.get(p, 0) < end for p, end in self.ends.items())

    def lag_seconds(self, now: float) -> float | None:
        """Seconds behind the source commit: 0 once the image has applied the end offsets
        it last saw; while records remain, `now` (epoch seconds) less the source commit
        time of the last record applied; None while behind with no such time yet (nothing
        applied, or records without the transform's source headers)."""
        if not self.behind:
            return 0.0
        if self.last_source_ts_ms is None:
            return None
        return max(0.0, now - self.last_source_ts_ms / 1000)


class Loader:
    """Keeps `image` equal to `topic`, starting from `start` offsets (None: offset 0)."""

    def __init__(
        self,
        image: Image,
        topic: str,
        kafka: KafkaSettings | str,
        start: Mapping[int, int] | None = None,
        *,
        timeout: float = 10.0,
    ) -> None:
        self.image = image
        self.topic = topic
        self.kafka = kafka_settings(kafka)
        self.start_offsets = dict(start or {})
        self.timeout = timeout
        self.progress = Progress()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Any = None
        self._started = 0.0
        self._probe: Kafka | None = None  # its admin client lists end offsets
        self._probe_lock = threading.Lock()
        self.latest_ends = Fresh(self._fetch_ends)
        self.applied_signal = Signal()  # fired after each batch applied

    def partitions(self) -> dict[int, tuple[int, int]]:
        """partition -> (low, end offset) of the topic now (end: the last stable offset)."""
        with Kafka(self.kafka, timeout=self.timeout) as cluster:
            ids = cluster.partitions(self.topic)
            probe = cluster.consumer(committed_only=True)
            return {p: self._watermarks(cluster, probe, p) for p in ids}

    def _watermarks(self, cluster: Kafka, probe: Any, partition: int) -> tuple[int, int]:
        from confluent_kafka import TopicPartition

        from seam.transforms.readback import watermarks

        found: tuple[int, int] = cluster.call(
            "reading the end offsets",
            watermarks,
            probe,
            TopicPartition(self.topic, partition),
            self.timeout,
        )
        return found

    def start(
        self, marks: Mapping[int, tuple[int, int]] | None = None, *, began: float | None = None
    ) -> None:
        """Note the end offsets, assign every partition and start the thread. `marks`: the
        partitions' (low, end) if the caller has just read them; `began`: when the start
        began (monotonic; a snapshot loaded before counts in the time to ready)."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self._started = time.monotonic() if began is None else began
        found = dict(marks) if marks is not None else self.partitions()
        ends = {p: hi for p, (_lo, hi) in found.items()}
        applied = {p: self.start_offsets.get(p, 0) for p in found}
        self.progress = Progress(applied=applied, ends_at_start=ends, ends=dict(ends))
        self._check_ready()
        self._consumer = Consumer(
            self.kafka.client_config(
                {
                    "group.id": f"seam-serve-{uuid.uuid4().hex[:12]}",  # never joined or committed
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "enable.partition.eof": True,
                    "isolation.level": "read_committed",
                    "auto.offset.reset": "earliest",
                    "fetch.wait.max.ms": 10,
                    # librdkafka prefetches up to this much (default 64 MB): the image's
                    # memory is the point of the process, the prefetch buffer is not.
                    "queued.max.messages.kbytes": 16384,
                    "logger": _quiet_logger(),
                }
            )
        )
        self._consumer.assign(
            [
                TopicPartition(self.topic, p, o if o > 0 else OFFSET_BEGINNING)
                for p, o in applied.items()
            ]
        )
        self._thread = threading.Thread(target=self._run, name="seam-serve-loader", daemon=True)
        self._thread.start()

    def _check_ready(self) -> None:
        progress = self.progress
        if not progress.ready and all(
            progress.applied.get(p, 0) >= end for p, end in progress.ends_at_start.items()
        ):
            progress.ready = True
            progress.ready_after_s = time.monotonic() - self._started
            log.info(
                "caught up with %s: %d entities in %.2fs",
                self.topic,
                len(self.image),
                progress.ready_after_s,
            )

    def _run(self) -> None:
        from confluent_kafka import KafkaError

        consumer = self._consumer
        image = self.image
        progress = self.progress
        looked = 0.0
        refreshed = time.monotonic()
        try:
            while not self._stop.is_set():
                messages = consumer.consume(BATCH, POLL_S)
                now = time.monotonic()
                if now - refreshed > REFRESH_S:
                    refreshed = now
                    self._add_new_partitions(consumer)
                if now - looked > 0.5:
                    looked = now
                    self._note_lag(consumer)
                if not messages:
                    continue
                moved: dict[int, int] = {}
                applied_records = 0
                last = None
                apply = image.apply
                with image.lock:
                    applied = dict(progress.applied)
                    for msg in messages:
                        error = msg.error()
                        if error is not None:
                            partition = msg.partition()
                            if error.code() == KafkaError._PARTITION_EOF:
                                moved[partition] = max(moved.get(partition, 0), msg.offset())
                            else:
                                progress.error = str(error)
                            continue
                        key = msg.key()
                        if key is not None:
                            apply(key.decode(), msg.value())
                        moved[msg.partition()] = msg.offset() + 1
                        applied_records += 1
                        last = msg
                    progress.records += applied_records
                    if last is not None:
                        stamp = last.timestamp()
                        if stamp[0] != 0:
                            progress.last_record_ts_ms = stamp[1]
                        _note_source(progress, last.headers())
                    for partition, offset in moved.items():
                        applied[partition] = max(applied.get(partition, 0), offset)
                    progress.applied = applied  # a new dict: readers copy nothing
                    self._check_ready()
                self.applied_signal.fire()
        except Exception as exc:  # the thread's end must be visible, not silent
            log.exception("the loader of %s stopped", self.topic)
            progress.error = f"{type(exc).__name__}: {exc}"

    def _add_new_partitions(self, consumer: Any) -> None:
        """Read partitions the topic has gained since the loader started from offset 0."""
        from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

        try:
            meta = consumer.list_topics(self.topic, timeout=self.timeout)
        except KafkaException as exc:  # the next refresh tries again; tailing goes on
            log.warning("cannot read the partitions of %s: %s", self.topic, exc)
            return
        found = meta.topics.get(self.topic)
        if found is None or found.error is not None:
            return
        new = sorted(set(found.partitions) - set(self.progress.applied))
        if not new:
            return
        consumer.incremental_assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in new])
        progress = self.progress
        with self.image.lock:
            progress.applied = {**progress.applied, **dict.fromkeys(new, 0)}
            progress.ends = {**progress.ends, **dict.fromkeys(new, 0)}
        log.info("%s gained partitions %s: reading them from offset 0", self.topic, new)

    def _note_lag(self, consumer: Any) -> None:
        """Refresh the end offsets the consumer has seen (no broker call) and whether the
        image lags behind them."""
        from confluent_kafka import TopicPartition

        progress = self.progress
        ends = dict(progress.ends)
        for partition in progress.applied:
            _lo, hi = consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), cached=True
            )
            if hi >= 0:
                ends[partition] = hi
        progress.ends = ends
        if not progress.behind:
            progress.behind_since = None
        elif progress.behind_since is None:
            progress.behind_since = time.time()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (within `timeout`) and close the consumer."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                self._consumer.close()
            self._consumer = None
        with self._probe_lock:
            if self._probe is not None:
                self._probe.close()
                self._probe = None

    def end_offsets(self, after: float) -> dict[int, int]:
        """The topic's end offsets (last stable offsets) as read by a fetch that began after
        the monotonic time `after`; concurrent callers share one."""
        return self.latest_ends.get(after)

    def _fetch_ends(self) -> dict[int, int]:
        with self._probe_lock:
            if self._probe is None:
                self._probe = Kafka(self.kafka, timeout=self.timeout)
            found = end_offsets(
                self._probe,
                [(self.topic, p) for p in self.progress.applied],
                committed_only=True,
            )
        return {p: o for (_t, p), o in found.items()}


def _note_source(progress: Progress, headers: list[tuple[str, bytes | None]] | None) -> None:
    """Keep a record's source headers (module doc) in `progress`, when it has them."""
    for name, value in headers or ():
        if value is None:
            continue
        if name == SOURCE_TS_HEADER:
            with contextlib.suppress(ValueError):
                progress.last_source_ts_ms = int(value)
        elif name == SOURCE_POSITION_HEADER:
            progress.last_source_position = value.decode("utf-8", "replace")


def _quiet_logger() -> logging.Logger:
    logger = logging.getLogger("seam.services.librdkafka")
    logger.setLevel(logging.ERROR)
    return logger

"""When has the transform published every change up to a legacy source position?

The transform commits, atomically with its outputs, each raw-topic partition's high-water
marks of the source positions it processed, as the commit metadata of its consumer group's
offsets (`seam.transforms.redelivery.Marks`). Reading them back (`Consumer.committed()`
returns each partition's offset with its metadata) tells how far the transform got:

1. some partition's mark is at or past the position: Debezium has streamed past the
   writer's transaction (it streams in commit order), so all its changes are in the raw
   topics; note the raw topics' end offsets now;
2. every partition's mark is at or past the position, or the group has committed that
   partition up to the end offset noted in 1: every change of the transaction has gone
   through the transform, and its outputs are committed in the latest topic.

The image then waits until it has applied the latest topic's end offsets of that moment.

One poller thread reads the committed offsets (every `POLL_S`) while any request waits, for
all of them: a hundred requests waiting cost the broker what one does. Its clients (a
consumer that names the transform's group but never joins it or commits, and a probe for
end offsets) live as long as the service.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, Final

from seam.kafka_config import KafkaSettings
from seam.services.fresh import Fresh
from seam.services.offsets import end_offsets
from seam.services.position import SourcePosition, frontier_of
from seam.services.signal import Signal
from seam.streams.kafka import Kafka
from seam.transforms.redelivery import Mark, parse_metadata

log = logging.getLogger(__name__)

POLL_S: Final = 0.01
Committed = dict[tuple[str, int], tuple[int, dict[str, Mark]]]


class SourceWatch:
    """The transform group's committed offsets and marks, read for waiting requests."""

    def __init__(self, kafka: KafkaSettings, group: str, inputs: Sequence[str]) -> None:
        self.kafka = kafka
        self.group = group
        self.inputs = tuple(inputs)
        self._lock = threading.Lock()  # the poller's clients: one caller at a time
        self._ends_lock = threading.Lock()
        self._ends_cluster: Kafka | None = None
        self._changed = threading.Condition()
        self._committed: Committed = {}
        self._frontier: dict[str, tuple[int, ...]] = {}  # frontier_of the last read's marks
        self._read_at = 0.0  # monotonic time the last read began
        self._read_done = 0.0  # ... and ended
        self._waiting = 0
        self._cluster: Kafka | None = None
        self._group: Any = None
        self._partitions: list[Any] = []
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._raw_ends = Fresh(self._fetch_ends)
        self.signal = Signal()  # fired after each read
        # Seconds spent by waiting requests in each step, summed (for /metrics).
        self.spent = {"source_passed": 0.0, "raw_ends": 0.0, "transform_through": 0.0}
        self.error: str | None = None
        self.reads = 0  # reads of the committed offsets, and the slowest one (seconds)
        self.slowest_read_s = 0.0
        self.read_errors = 0

    def _clients(self) -> None:
        from confluent_kafka import Consumer, TopicPartition

        if self._cluster is not None:
            return
        cluster = Kafka(self.kafka, timeout=5.0)
        self._partitions = [
            TopicPartition(topic, p) for topic in self.inputs for p in cluster.partitions(topic)
        ]
        self._group = Consumer(
            self.kafka.client_config(
                {
                    "group.id": self.group,
                    "enable.auto.commit": False,
                    # read_committed makes librdkafka ask for stable offsets (KIP-447): while
                    # the transform has a transaction open, which is nearly always under load,
                    # the broker answers "unstable" and the client retries after a backoff.
                    # The offsets it answers without are the committed ones all the same.
                    "isolation.level": "read_uncommitted",
                }
            )
        )
        self._cluster = cluster

    def _read(self) -> Committed:
        with self._lock:
            self._clients()
            assert self._cluster is not None
            found = self._cluster.call(
                "reading the transform's committed offsets",
                self._group.committed,
                self._partitions,
                timeout=5.0,
            )
        return {(tp.topic, tp.partition): (tp.offset, parse_metadata(tp.metadata)) for tp in found}

    def _fetch_ends(self) -> dict[tuple[str, int], int]:
        # Its own client (the admin's), so a fetch never holds up the marks poller.
        with self._ends_lock:
            if self._ends_cluster is None:
                self._ends_cluster = Kafka(self.kafka, timeout=5.0)
            with self._lock:
                self._clients()
                wanted = [(tp.topic, tp.partition) for tp in self._partitions]
            return end_offsets(self._ends_cluster, wanted, committed_only=False)

    def _poll(self) -> None:
        while True:
            with self._changed:
                while self._waiting == 0 and not self._stopped:
                    self._changed.wait()
                if self._stopped:
                    return
            began = time.monotonic()
            try:
                committed = self._read()
                self.error = None
            except Exception as exc:  # a waiting request says so; the poller goes on
                self.error = f"{type(exc).__name__}: {exc}"
                self.read_errors += 1
                log.warning("reading the transform's committed offsets failed: %s", self.error)
                time.sleep(0.5)
                continue
            took = time.monotonic() - began
            self.reads += 1
            self.slowest_read_s = max(self.slowest_read_s, took)
            if took > 1.0:
                log.warning("reading the transform's committed offsets took %.1fs", took)
            frontier = frontier_of(marks for _offset, marks in committed.values())
            with self._changed:
                self._committed = committed
                self._frontier = frontier
                self._read_at = began  # the read began after every waiter that sees it
                self._read_done = time.monotonic()
            self.signal.fire()
            time.sleep(POLL_S)

    async def wait(
        self, position: SourcePosition, deadline: float, executor: concurrent.futures.Executor
    ) -> float | None:
        """Wait until the transform has published every change up to `position`; when the
        read that showed it ended (monotonic: the latest topic's end offsets read after it
        hold every output), or None once the `deadline` passes. Raw end offsets are read on
        `executor`."""
        with self._changed:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._poll, name="seam-serve-source", daemon=True
                )
                self._thread.start()
            self._waiting += 1
            self._changed.notify_all()
        try:
            since = time.monotonic()

            def passed() -> set[tuple[str, int]]:
                return {
                    where
                    for where, (_offset, marks) in self._committed.items()
                    if any(position.reached_by(s, m) for s, m in marks.items())
                }

            # 1. Some partition's mark is past the position, in a read begun after the request
            # (one look at the read's frontier: hundreds of waiters are checked at each read).
            if not await self.signal.until(
                lambda: self._read_at > since and position.reached_at(self._frontier),
                deadline - time.monotonic(),
            ):
                return None
            waited = time.monotonic() - since
            self.spent["source_passed"] += waited
            if waited > 2.0:  # the transform (or Debezium) was that far behind
                log.info("the transform passed %s after %.1fs", position.text, waited)
            loop = asyncio.get_running_loop()
            began = time.monotonic()
            ends = await loop.run_in_executor(executor, self._raw_ends.get, self._read_at)
            self.spent["raw_ends"] += time.monotonic() - began
            began = time.monotonic()

            # 2. Every partition: past the position, or committed up to those end offsets.
            def through() -> bool:
                past = passed()
                return all(
                    where in past or offset >= ends[where]
                    for where, (offset, _marks) in self._committed.items()
                )

            seen: list[float] = []

            def through_now() -> bool:
                done = through()
                if done:
                    seen.append(self._read_done)
                return done

            done = await self.signal.until(through_now, deadline - time.monotonic())
            self.spent["transform_through"] += time.monotonic() - began
            return seen[0] if done and seen else (self._read_done if done else None)
        finally:
            with self._changed:
                self._waiting -= 1

    def close(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            for client in (self._group,):
                if client is not None:
                    with contextlib.suppress(Exception):
                        client.close()
            if self._cluster is not None:
                self._cluster.close()
        with self._ends_lock:
            if self._ends_cluster is not None:
                self._ends_cluster.close()

"""An in-memory Kafka for the worker's unit tests: just enough of confluent-kafka's Consumer
and Producer, transactions included, to drive the worker's loop, its transaction, rebalance
and failure paths without a broker. Faults are injected per call name.

What it models: partitions as lists of records; a group's committed offsets with their
metadata; transactional producers whose outputs and offsets become visible on commit and
vanish on abort; fencing of an older producer by a newer one with the same transactional id.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from seam.transforms.clients import Member
from seam.transforms.pipeline_file import PipelineSpec


@dataclass
class FakeMessage:
    _topic: str
    _partition: int
    _offset: int
    _key: bytes | None
    _value: bytes | None
    _headers: list[tuple[str, bytes]] | None = None
    _error: KafkaError | None = None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return 1, 1_700_000_000_000

    def error(self) -> KafkaError | None:
        return self._error


def kafka_error(code: int, *, fatal: bool = False, retriable: bool = False) -> KafkaException:
    return KafkaException(KafkaError(code, "injected", fatal=fatal, retriable=retriable))


Fault = Callable[[], None]


@dataclass
class FakeCluster:
    """The broker: topics, one group's committed offsets, the transaction coordinator."""

    topics: dict[str, list[list[FakeMessage]]] = field(default_factory=dict)
    committed: dict[tuple[str, int], tuple[int, str | None]] = field(default_factory=dict)
    epochs: dict[str, int] = field(default_factory=dict)  # transactional id -> epoch
    faults: dict[str, list[Fault]] = field(default_factory=dict)  # call name -> one-shot faults
    members: list[Member] = field(default_factory=list)
    down: bool = False
    producers_made: int = 0
    calls: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def create(self, topic: str, partitions: int = 1) -> None:
        self.topics.setdefault(topic, [[] for _ in range(partitions)])

    def append(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        headers: Any = None,
    ) -> None:
        log = self.topics[topic][partition]
        log.append(FakeMessage(topic, partition, len(log), key, value, headers))

    def records(self, topic: str) -> list[FakeMessage]:
        return [m for p in self.topics.get(topic, []) for m in p]

    def inject(self, call: str, fault: Fault) -> None:
        """Run `fault` at the next call named `call` (it may raise or block)."""
        self.faults.setdefault(call, []).append(fault)

    def enter(self, call: str) -> None:
        self.calls.append(call)
        pending = self.faults.get(call)
        if pending:
            pending.pop(0)()


class FakeConsumer:
    def __init__(self, cluster: FakeCluster, config: dict[str, Any]) -> None:
        self.cluster = cluster
        self.config = config
        self.member_id = f"member-{id(self)}"
        self.positions: dict[tuple[str, int], int] = {}
        self.assigned: list[tuple[str, int]] = []
        self.on_assign: Any = None
        self.subscribed: list[str] = []
        self.closed = False

    def subscribe(self, topics: list[str], on_assign: Any = None, **callbacks: Any) -> None:
        self.subscribed = topics
        self.on_assign = on_assign

    def _ensure_assigned(self) -> None:
        if self.assigned or not self.subscribed:
            return
        self.assigned = [
            (t, p) for t in self.subscribed for p in range(len(self.cluster.topics[t]))
        ]
        for tp in self.assigned:
            self.positions[tp] = self.cluster.committed.get(tp, (0, None))[0]
        if self.on_assign is not None:
            self.on_assign(self, [TopicPartition(t, p) for t, p in self.assigned])

    def _next(self) -> FakeMessage | None:
        if self.cluster.down:
            return None
        for tp in self.assigned:
            log = self.cluster.topics[tp[0]][tp[1]]
            pos = self.positions[tp]
            if pos < len(log):
                self.positions[tp] = pos + 1
                return log[pos]
        return None

    def poll(self, timeout: float) -> FakeMessage | None:
        self._ensure_assigned()
        msg = self._next()
        if msg is None and timeout:
            threading.Event().wait(min(timeout, 0.01))
        return msg

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        self._ensure_assigned()
        out = []
        while len(out) < num_messages:
            msg = self._next()
            if msg is None:
                break
            out.append(msg)
        return out

    def seek(self, tp: TopicPartition) -> None:
        self.positions[(tp.topic, tp.partition)] = tp.offset

    def commit(self, offsets: list[TopicPartition], asynchronous: bool = True) -> None:
        self.cluster.enter("commit")
        for tp in offsets:
            self.cluster.committed[(tp.topic, tp.partition)] = (tp.offset, tp.metadata)

    def committed(self, partitions: list[TopicPartition], timeout: float = -1) -> list[Any]:
        self.cluster.enter("committed")
        out = []
        for tp in partitions:
            offset, metadata = self.cluster.committed.get((tp.topic, tp.partition), (-1001, None))
            found = TopicPartition(tp.topic, tp.partition, offset)
            if metadata is not None:
                found = TopicPartition(tp.topic, tp.partition, offset, metadata=metadata)
            out.append(found)
        return out

    def consumer_group_metadata(self) -> str:
        return self.member_id

    def memberid(self) -> str:
        return self.member_id

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        self.cluster.enter("list_topics")
        if self.cluster.down:
            raise kafka_error(KafkaError._TRANSPORT)
        return object()

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(
                tp.topic, tp.partition, self.positions.get((tp.topic, tp.partition), -1001)
            )
            for tp in partitions
        ]

    def get_watermark_offsets(self, tp: TopicPartition, **kwargs: Any) -> tuple[int, int]:
        return 0, len(self.cluster.topics[tp.topic][tp.partition])

    def close(self) -> None:
        self.closed = True


class FakeProducer:
    def __init__(self, cluster: FakeCluster, config: dict[str, Any]) -> None:
        self.cluster = cluster
        self.config = config
        self.txn_id: str | None = config.get("transactional.id")
        self.epoch = -1
        self.pending: list[tuple[str, bytes | None, bytes | None, Any]] = []
        self.offsets: list[TopicPartition] = []
        self.in_transaction = False
        cluster.producers_made += 1

    def _check_fenced(self) -> None:
        if self.txn_id is not None and self.cluster.epochs.get(self.txn_id) != self.epoch:
            raise kafka_error(KafkaError._FENCED, fatal=True)

    def init_transactions(self, timeout: float) -> None:
        self.cluster.enter("init_transactions")
        assert self.txn_id is not None
        self.epoch = self.cluster.epochs.get(self.txn_id, 0) + 1
        self.cluster.epochs[self.txn_id] = self.epoch  # fences the older producer

    def begin_transaction(self) -> None:
        self._check_fenced()
        self.in_transaction = True
        self.pending.clear()
        self.offsets = []

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *args: Any,
        headers: Any = None,
    ) -> None:
        if len(args) >= 5:  # positional, as the compiled fast path calls it
            headers = args[4]
        self.pending.append((topic, key, value, headers))
        if self.txn_id is None:  # not transactional: visible at once
            self._publish()

    def _publish(self) -> None:
        for topic, key, value, headers in self.pending:
            parts = self.cluster.topics[topic]
            partition = (hash(key) % len(parts)) if key is not None else 0
            self.cluster.append(topic, partition, key, value, headers)
        self.pending.clear()

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = -1) -> int:
        self.cluster.enter("flush")
        return 0

    def send_offsets_to_transaction(
        self, offsets: list[TopicPartition], metadata: Any, timeout: float
    ) -> None:
        self.cluster.enter("send_offsets_to_transaction")
        self._check_fenced()
        self.offsets = list(offsets)

    def commit_transaction(self, timeout: float = -1) -> None:
        self.cluster.enter("commit_transaction")
        self._check_fenced()
        self._publish()
        for tp in self.offsets:
            self.cluster.committed[(tp.topic, tp.partition)] = (tp.offset, tp.metadata)
        self.in_transaction = False

    def abort_transaction(self, timeout: float = -1) -> None:
        self.cluster.enter("abort_transaction")
        self.pending.clear()
        self.offsets = []
        self.in_transaction = False


class FakeClients:
    """`seam.transforms.clients.Clients` over a FakeCluster."""

    bootstrap_servers = "fake:9092"

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.consumers: list[FakeConsumer] = []
        self.producers: list[FakeProducer] = []

    def prepare(self, spec: PipelineSpec, reference_topics: list[str], timeout: float) -> None:
        self.cluster.enter("prepare")
        for out in spec.outputs:
            self.cluster.create(out.topic, 1)

    def consumer(self, config: dict[str, Any]) -> FakeConsumer:
        consumer = FakeConsumer(self.cluster, config)
        self.consumers.append(consumer)
        return consumer

    def producer(self, config: dict[str, Any]) -> FakeProducer:
        producer = FakeProducer(self.cluster, config)
        self.producers.append(producer)
        return producer

    def members(self, group: str, timeout: float) -> list[Member]:
        self.cluster.enter("members")
        own = [
            Member(c.member_id, c.config.get("client.id", ""), "here")
            for c in self.consumers
            if not c.closed and "group.id" in c.config and c.config["group.id"] == group
        ]
        return own + self.cluster.members

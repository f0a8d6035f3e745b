"""The worker's loop against an in-memory Kafka (tests/unit/fake_kafka.py): transactions,
re-delivered source changes, a producer that hangs or is fenced, a broker that goes away
and comes back, signals. The same paths run against the real broker in the integration
and fault tiers; here each failure is placed exactly where it hurts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaError

from seam.legacy_db.synthetic import envelope
from seam.streams.kafka import KafkaUnavailableError
from seam.transforms.clients import Member
from seam.transforms.model import Item
from seam.transforms.pipeline import Pipeline
from seam.transforms.pipeline_file import PipelineSpec, parse_pipeline
from seam.transforms.stages.decode import DecodeStage
from seam.transforms.worker import Worker, WorkerError, WorkerOptions
from tests.unit.fake_kafka import FakeClients, FakeCluster, kafka_error

pytestmark = pytest.mark.unit

RAW = "fake.public.items"


class OneEventPerChange:
    """A stage that turns every decoded change into one event keyed by the row's id."""

    name = "one-event"

    def process(self, item: Item) -> Iterable[Item]:
        assert item.change is not None
        row = item.change.row or {}
        key = str(row.get("prod_id"))
        item.event = {"event_type": "Changed", "event_id": f"{key}@{item.change.raw.offset}"}
        item.latest_key = key
        item.state = {"name": row.get("prod_name")}
        return (item,)


def spec(guarantee: str = "exactly_once", batch_size: int = 10) -> PipelineSpec:
    return parse_pipeline(
        {
            "name": "fake",
            "group": "fake-group",
            "inputs": [RAW],
            "stages": ["decode"],
            "outputs": {
                "history": {"topic": "fake.history"},
                "latest": {"topic": "fake.latest"},
                "dead_letter": {"topic": "fake.dlq"},
            },
            "processing": {
                "guarantee": guarantee,
                "batch_size": batch_size,
                "batch_timeout_ms": 10,
            },
        }
    )


def change(pid: int, lsn: int, op: str = "c") -> tuple[bytes, bytes]:
    row = {"prod_id": pid, "prod_name": f"item {pid} at {lsn}"}
    return envelope("products", op, None if op == "c" else row, row, lsn)


def cluster_with(records: list[tuple[bytes, bytes]]) -> FakeCluster:
    cluster = FakeCluster()
    cluster.create(RAW, 1)
    for key, value in records:
        cluster.append(RAW, 0, key, value)
    return cluster


def run_worker(
    cluster: FakeCluster,
    pipeline_spec: PipelineSpec | None = None,
    *,
    timeout: float = 1.0,
    instance: str = "w1",
    **options: Any,
) -> Worker:
    worker = Worker(
        pipeline_spec or spec(),
        "fake:9092",
        WorkerOptions(
            instance_id=instance, broker_timeout=timeout, progress_interval=60, **options
        ),
        pipeline=Pipeline([DecodeStage(), OneEventPerChange()]),
        clients=FakeClients(cluster),
    )
    worker.run()
    return worker


def history(cluster: FakeCluster) -> list[str]:
    return [orjson.loads(m.value())["event_id"] for m in cluster.records("fake.history")]


def test_exactly_once_commits_outputs_with_offsets_and_marks() -> None:
    cluster = cluster_with([change(i, 100 + i) for i in range(1, 26)])
    worker = run_worker(cluster, idle_timeout=0.2)
    assert len(history(cluster)) == 25
    offset, metadata = cluster.committed[(RAW, 0)]
    assert offset == 25
    assert orjson.loads(metadata or "{}")["marks"] == {"postgresql|catalog|catalog": [0, 125, 1]}
    assert worker.counts.balanced
    assert worker.progress.batches == 3  # batches of at most 10: what had arrived


def test_redelivered_changes_are_dropped_also_after_a_restart() -> None:
    first = [change(i, 100 + i) for i in range(1, 11)]
    cluster = cluster_with(first)
    run_worker(cluster, idle_timeout=0.2)
    # Debezium restarts from an older offset: changes 6..10 again, then new ones.
    for key, value in [*first[5:], *(change(i, 100 + i) for i in range(11, 16))]:
        cluster.append(RAW, 0, key, value)
    worker = run_worker(cluster, idle_timeout=0.2)  # a new worker: marks from the commit
    assert worker.counts.redelivered == 5
    assert worker.counts.records_in == 10
    assert worker.counts.balanced
    ids = history(cluster)
    assert len(ids) == len(set(ids)) == 15


def test_a_send_offsets_call_that_never_returns_is_abandoned_and_the_batch_redone() -> None:
    cluster = cluster_with([change(i, 100 + i) for i in range(1, 6)])
    cluster.inject("send_offsets_to_transaction", threading.Event().wait)  # blocks forever
    started = time.monotonic()
    worker = run_worker(cluster, timeout=0.5, idle_timeout=0.3)
    assert time.monotonic() - started < 10
    assert cluster.producers_made == 2  # the stuck one was replaced, which fenced it
    assert len(history(cluster)) == 5  # nothing of the stuck transaction became visible
    assert cluster.committed[(RAW, 0)][0] == 5
    assert worker.progress.aborted_batches == 1


def test_fenced_without_another_worker_recovers_instead_of_blaming_one() -> None:
    cluster = cluster_with([change(i, 100 + i) for i in range(1, 6)])

    def fence() -> None:  # the coordinator bumped the epoch, as after losing its state
        cluster.epochs["seam-transform.fake-group.w1"] += 1

    cluster.inject("commit_transaction", fence)
    worker = run_worker(cluster, idle_timeout=0.3)
    assert cluster.producers_made == 2
    assert len(history(cluster)) == 5
    assert worker.counts.balanced


def test_fenced_by_a_live_worker_with_the_same_instance_id_says_so() -> None:
    cluster = cluster_with([change(i, 100 + i) for i in range(1, 6)])
    cluster.members.append(Member("other-member", "seam-transform.fake-group.w1", "host-b"))

    def fence() -> None:
        cluster.epochs["seam-transform.fake-group.w1"] += 1

    cluster.inject("commit_transaction", fence)
    with pytest.raises(WorkerError, match=r"another worker .* instance id 'w1'.*host-b"):
        run_worker(cluster, idle_timeout=0.3)
    assert history(cluster) == []


def test_a_fatal_producer_error_is_not_called_fencing() -> None:
    cluster = cluster_with([change(i, 100 + i) for i in range(1, 6)])

    def fatal() -> None:
        raise kafka_error(KafkaError.UNKNOWN_PRODUCER_ID, fatal=True)

    cluster.inject("commit_transaction", fatal)
    worker = run_worker(cluster, idle_timeout=0.3)
    assert cluster.producers_made == 2
    assert len(history(cluster)) == 5
    assert worker.counts.records_in == 5


def test_an_idle_worker_forgets_an_outage_once_the_broker_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster = cluster_with([])
    clients = FakeClients(cluster)
    worker = Worker(
        spec(),
        "fake:9092",
        WorkerOptions(instance_id="w1", broker_timeout=1.0, idle_timeout=3.0),
        pipeline=Pipeline([DecodeStage(), OneEventPerChange()]),
        clients=clients,
    )
    timer = threading.Timer(0.3, lambda: worker._error_cb(KafkaError(KafkaError._ALL_BROKERS_DOWN)))
    timer.start()
    worker.run()  # the broker answered all along: no exit at broker_timeout
    timer.join()
    assert worker.progress.state == "stopped"
    assert "list_topics" in cluster.calls


def test_an_outage_longer_than_the_broker_timeout_stops_the_worker() -> None:
    cluster = cluster_with([])
    cluster.down = True
    worker = Worker(
        spec(),
        "fake:9092",
        WorkerOptions(instance_id="w1", broker_timeout=0.5, idle_timeout=5.0),
        pipeline=Pipeline([DecodeStage(), OneEventPerChange()]),
        clients=FakeClients(cluster),
    )
    threading.Timer(0.1, lambda: worker._error_cb(KafkaError(KafkaError._ALL_BROKERS_DOWN))).start()
    started = time.monotonic()
    with pytest.raises(KafkaUnavailableError, match="no broker reachable"):
        worker.run()
    assert time.monotonic() - started < 3


def test_a_second_stop_gives_up_on_a_stuck_call_at_once() -> None:
    cluster = cluster_with([change(i, 100 + i) for i in range(1, 6)])
    cluster.inject("send_offsets_to_transaction", threading.Event().wait)
    worker = Worker(
        spec(),
        "fake:9092",
        WorkerOptions(instance_id="w1", broker_timeout=30.0),
        pipeline=Pipeline([DecodeStage(), OneEventPerChange()]),
        clients=FakeClients(cluster),
    )

    def two_signals() -> None:
        worker.stop()
        worker._interrupt.set()  # what the signal handler does on the second signal

    threading.Timer(0.5, two_signals).start()
    started = time.monotonic()
    with pytest.raises(WorkerError, match="stopped while adding the input offsets"):
        worker.run()
    assert time.monotonic() - started < 3
    assert history(cluster) == []


def test_a_metrics_port_in_use_fails_before_anything_is_created() -> None:
    import socket

    cluster = cluster_with([])
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(WorkerError, match=f"cannot serve metrics on port {port}"):
            run_worker(cluster, metrics_port=port, idle_timeout=0.1)
    with pytest.raises(WorkerError, match="not a TCP port"):
        run_worker(cluster, metrics_port=70000, idle_timeout=0.1)
    assert "prepare" not in cluster.calls


def test_the_summary_rate_is_the_runs() -> None:
    cluster = cluster_with([change(i, 100 + i) for i in range(1, 21)])
    worker = run_worker(cluster, idle_timeout=0.2)
    assert worker.progress.rate > 0
    assert worker.progress.as_dict()["rate_per_s"] > 0


def test_at_least_once_commits_offsets_with_marks_after_flushing() -> None:
    cluster = cluster_with([change(i, 100 + i) for i in range(1, 6)])
    run_worker(cluster, spec("at_least_once"), idle_timeout=0.2)
    assert cluster.calls.index("flush") < cluster.calls.index("commit")
    assert cluster.committed[(RAW, 0)][0] == 5
    assert "marks" in (cluster.committed[(RAW, 0)][1] or "")


def test_after_an_outage_the_next_batch_gets_a_new_producer() -> None:
    """The producer that lived through an outage may hold a stale group coordinator (its
    send_offsets_to_transaction then blocks, librdkafka #5511): it is replaced up front."""
    cluster = cluster_with([])
    worker = Worker(
        spec(),
        "fake:9092",
        WorkerOptions(instance_id="w1", broker_timeout=5.0, idle_timeout=1.0),
        pipeline=Pipeline([DecodeStage(), OneEventPerChange()]),
        clients=FakeClients(cluster),
    )

    def outage_then_changes() -> None:
        worker._error_cb(KafkaError(KafkaError._ALL_BROKERS_DOWN))
        time.sleep(0.5)  # the probe finds the broker back meanwhile
        for key, value in [change(i, 100 + i) for i in range(1, 4)]:
            cluster.append(RAW, 0, key, value)

    threading.Timer(0.2, outage_then_changes).start()
    worker.run()
    assert cluster.producers_made == 2
    assert len(history(cluster)) == 3
    assert worker.progress.aborted_batches == 0

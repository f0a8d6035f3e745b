"""`seam serve` when the latest topic changes under it: the broker compacts it (before a
restart too, tombstones included), the pipeline is replayed into a new topic, a partition
is added. Each time the image must end equal to the topic read to its end.

The topics, service files and processes are those of test_service_image.py (its fixtures
and helpers); a test that makes a topic of its own deletes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from seam.services import snapshot
from seam.settings import Settings
from seam.transforms.readback import read_to_end
from tests.integration import test_service_image
from tests.integration.test_service_image import Served, Topic, check_ready_answers, product

pytestmark = pytest.mark.integration

# The broker cleans these topics as soon as it can: a segment per 100 ms of writes, any dirt
# worth a pass, no lag before a record may be compacted away.
EAGER = {
    "segment.ms": "100",
    "min.cleanable.dirty.ratio": "0.01",
    "min.compaction.lag.ms": "0",
}
# test_service_image's fixtures, used here (its service_file on this module's topic).
serve = test_service_image.serve
service_file = test_service_image.service_file


@pytest.fixture
def topic(
    request: pytest.FixtureRequest, stack: Settings, unique_name: Callable[[str], str]
) -> Iterator[Topic]:
    """Overrides test_service_image's (its service_file uses this one): a latest topic the
    broker compacts eagerly, keeping tombstones for the test's parameter in ms (indirect
    parametrization; default an hour). Parameter None: a topic the broker leaves alone
    while the test runs (the default segment.ms of a week: nothing is cleaned)."""
    kept = getattr(request, "param", 3_600_000)
    config = {} if kept is None else {**EAGER, "delete.retention.ms": str(kept)}
    made = Topic(stack, unique_name("svc.products-latest"), config=config)
    try:
        yield made
    finally:
        made.delete()


def saved(path: Path, topic: str) -> snapshot.Snapshot:
    """The snapshot file at `path`, for whatever fields its header names."""
    data = path.read_bytes()
    at = len(snapshot.MAGIC)
    header = orjson.loads(data[at + 4 : at + 4 + int.from_bytes(data[at : at + 4], "little")])
    return snapshot.read(path, topic=topic, fields=header["fields"])


def records(topic: Topic) -> list[tuple[bytes | None, bytes | None]]:
    return [(r.key, r.value) for r in read_to_end(topic.settings.kafka, topic.name)]


def compact_until(
    topic: Topic,
    done: Callable[[list[tuple[bytes | None, bytes | None]]], bool],
    timeout: float = 150,
) -> None:
    """Keep writing filler keys to every partition (a write after 100 ms rolls the active
    segment, which the cleaner never cleans) until `done(the topic's other records)`."""
    deadline = time.monotonic() + timeout
    version = 0
    while True:
        for _ in range(10):
            version += 1
            topic.write([(f"filler-{j}", product(0, version)) for j in range(12)])
            time.sleep(0.2)
        if done([(k, v) for k, v in records(topic) if not (k or b"").startswith(b"filler-")]):
            return
        assert time.monotonic() < deadline, f"the broker did not compact {topic.name} in time"


def until_equal(served: Served, topic: Topic, timeout: float = 30) -> dict[str, object]:
    """Wait until the service serves the topic read to its end; that view."""
    view = topic.view()
    deadline = time.monotonic() + timeout
    while (seen := served.all_states()) != view:
        assert time.monotonic() < deadline, (len(seen), len(view))
        time.sleep(0.2)
    return view


def test_the_image_is_the_topic_while_and_after_the_broker_compacts_it(
    topic: Topic,
    serve: Callable[..., Served],
    service_file: Path,
) -> None:
    keys = range(1, 2001)
    topic.write([(str(i), product(i)) for i in keys])
    first = serve("--rebuild")
    first.until_ready()

    # While the service tails: updates and deletes of the same keys, until the cleaner
    # has removed records (fewer on the topic than were written).
    written = len(keys)
    for version in range(1, 4):
        topic.write([(str(i), product(i, version)) for i in keys])
        topic.write([(str(i), None) for i in keys if i % 10 == version])
        written += len(keys) + len(keys) // 10
        time.sleep(0.2)
    compact_until(topic, lambda found: len(found) < written)
    until_equal(first, topic)
    assert first.stop() == 0  # a clean stop writes the snapshot

    # Between the snapshot and the restart: more updates and deletes, and a key deleted
    # before comes back; the cleaner removes again what they overwrite.
    before = len([k for k, _v in records(topic) if not (k or b"").startswith(b"filler-")])
    after: list[tuple[str, dict[str, Any] | None]] = [
        *((str(i), product(i, 7)) for i in keys if i % 3 == 0),
        *((str(i), None) for i in keys if i % 7 == 0),
        ("11", product(11, 8)),  # deleted in version 1's round
    ]
    topic.write(after)
    compact_until(topic, lambda found: len(found) < before + len(after))
    view = topic.view()
    assert "11" in view
    assert "14" not in view

    second = serve()
    seen = second.until_ready()
    check_ready_answers(seen)
    assert seen[-1]["start"].startswith("loaded "), seen[-1]["start"]
    assert second.all_states() == view
    assert second.get("/product/14").status_code == 404
    assert second.stop() == 0


@pytest.mark.parametrize("topic", [100], indirect=True)  # tombstones kept 100 ms
def test_a_snapshot_older_than_the_topics_tombstones_is_rebuilt(
    topic: Topic,
    serve: Callable[..., Served],
    service_file: Path,
) -> None:
    topic.write([(str(i), product(i)) for i in range(1, 1001)])
    first = serve("--rebuild")
    first.until_ready()
    assert first.stop() == 0
    path = service_file.parent / "image.snapshot"
    assert "5" in saved(path, topic.name).keys

    # Keys 1..100 deleted after the snapshot; the broker then removes their tombstones
    # (kept 100 ms): nothing on the topic says any more that they were deleted.
    gone = {str(i).encode() for i in range(1, 101)}
    topic.write([(k.decode(), None) for k in gone])
    compact_until(topic, lambda found: not gone & {k for k, _v in found})

    second = serve()
    seen = second.until_ready()
    check_ready_answers(seen)
    assert second.get("/product/5").status_code == 404  # tailing the snapshot would serve it
    assert second.all_states() == topic.view()
    note = seen[-1]["start"]
    assert "compaction may have removed tombstones written since" in note, note
    assert note.endswith("rebuilt from offset 0"), note
    assert second.get("/health").json()["start"] == note
    assert second.stop() == 0


def test_a_replay_into_a_new_topic_builds_from_it_not_from_the_old_snapshot(
    topic: Topic,
    serve: Callable[..., Served],
    service_file: Path,
    stack: Settings,
    unique_name: Callable[[str], str],
) -> None:
    topic.write([(str(i), product(i)) for i in range(1, 1001)])
    first = serve("--rebuild")
    first.until_ready()
    assert first.stop() == 0  # the snapshot of the old topic

    # The pipeline re-run into a new latest topic: other versions, some keys gone.
    replayed = Topic(stack, unique_name("svc.products-latest-v2"))
    try:
        replayed.write([(str(i), product(i, 5)) for i in range(1, 1001) if i % 4])
        pipeline = service_file.parent / "pipeline.yaml"
        doc = yaml.safe_load(pipeline.read_text())
        doc["outputs"]["latest"]["topic"] = replayed.name
        pipeline.write_text(yaml.safe_dump(doc, sort_keys=False))

        second = serve()
        seen = second.until_ready()
        note = seen[-1]["start"]
        assert f"holds topic '{topic.name}', not '{replayed.name}'" in note, note
        assert note.endswith("rebuilt from offset 0"), note
        assert second.all_states() == replayed.view()
        assert second.get("/product/4").status_code == 404
        assert second.stop() == 0
        assert len(saved(service_file.parent / "image.snapshot", replayed.name).keys) == 750
    finally:
        replayed.delete()


@pytest.fixture
def plain_producer(stack: Settings) -> Iterator[Any]:
    from confluent_kafka import Producer

    producer = Producer(stack.kafka.client_config({"linger.ms": 5}))
    yield producer
    producer.flush(30)


def test_a_partition_added_while_the_service_runs_is_read(
    topic: Topic,
    serve: Callable[..., Served],
    service_file: Path,
    plain_producer: Any,
) -> None:
    from confluent_kafka.admin import NewPartitions

    topic.write([(str(i), product(i)) for i in range(1, 301)])
    first = serve("--rebuild")
    first.until_ready()
    topic.admin.create_partitions([NewPartitions(topic.name, 5)])[topic.name].result(timeout=30)
    producer = plain_producer
    for i in range(301, 401):  # to the new partitions, by hand (the producer's metadata is old)
        producer.produce(
            topic.name, key=str(i).encode(), value=orjson.dumps(product(i)), partition=3 + i % 2
        )
    producer.produce(topic.name, key=b"1", value=None, partition=4)
    producer.flush(30)
    view = until_equal(first, topic)
    assert "1" not in view
    assert "301" in view
    applied = first.get("/ready").json()["applied"]
    assert set(applied) == {"0", "1", "2", "3", "4"}
    assert first.stop() == 0

    # The snapshot holds the new partitions' offsets: a restart tails them from there.
    second = serve()
    seen = second.until_ready()
    assert seen[-1]["start"].startswith("loaded 399 entities"), seen[-1]["start"]
    assert second.all_states() == view
    assert second.stop() == 0


# Not compacted meanwhile: an answer's offsets then name exactly one state per key (tailing a
# compacted topic from a snapshot may skip a value compaction removed, to a later one).
@pytest.mark.parametrize("topic", [None], indirect=True)
def test_kill_9_under_requests_and_writes_restarts_from_the_snapshot_honestly(
    topic: Topic, serve: Callable[..., Served], service_file: Path
) -> None:
    """SIGKILL while a client sends requests and a workload writes: the restarted service
    loads its snapshot, says it is not ready until it has applied the end offsets it saw at
    start, every answer meanwhile states the offsets it reflects and holds exactly the
    topic's state at them (never anything older than the snapshot), and once ready and the
    writes stop it serves the topic read to its end."""
    import random
    import threading

    import httpx

    n = 5000
    # Every write with its offset: the value each answer's offsets name.
    writes: dict[str, list[tuple[int, int, Any]]] = {}  # key -> (partition, offset, value)

    def write(records: list[tuple[str, Any]], batch: int = 5000) -> None:
        for key, (partition, offset) in topic.write(records, batch=batch).items():
            value = dict(records)[key]
            writes.setdefault(key, []).append((partition, offset, value))

    write([(str(i), product(i)) for i in range(1, n + 1)])
    first = serve("--rebuild")
    first.until_ready()
    snapshot_file = service_file.parent / "image.snapshot"
    deadline = time.monotonic() + 30
    while not snapshot_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert snapshot_file.exists(), "no periodic snapshot within 30 s"

    stop = threading.Event()
    wrote = [0]

    def workload() -> None:  # updates and deletes, about 2,000 records a second
        version = 1
        while not stop.is_set():
            version += 1
            keys = random.sample(range(1, n + 1), 100)
            write([(str(k), None if k % 97 == 0 else product(k, version)) for k in keys], 50)
            wrote[0] += len(keys)
            time.sleep(0.05)

    answers: list[tuple[str, int, dict[str, Any] | None, str | None]] = []
    target: list[Served] = [first]

    def client() -> None:  # GET by key without pause, from whichever instance runs
        rng = random.Random(7)
        while not stop.is_set():
            key = str(rng.randint(1, n))
            try:
                answer = target[0].client.get(f"/product/{key}")
            except (httpx.TransportError, RuntimeError):  # killed, or its client closed
                time.sleep(0.01)
                continue
            if answer.status_code in (200, 404):
                body = answer.json()
                answers.append(
                    (
                        key,
                        answer.status_code,
                        body.get("data"),
                        answer.headers.get("Seam-Position"),
                    )
                )

    threads = [threading.Thread(target=workload), threading.Thread(target=client)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(3.0)  # load on the first instance, and a snapshot or two written under it
        first.kill()
        kept = saved(snapshot_file, topic.name)
        before_restart = len(answers)
        time.sleep(1.0)  # the topic moves on while no instance runs
        second = serve()
        target[0] = second
        seen = second.until_ready()
        time.sleep(2.0)  # requests and writes go on after ready
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)

    assert wrote[0] > 2000
    check_ready_answers(seen)  # 503 until the end offsets seen at start are applied
    assert seen[-1]["start"].startswith("loaded "), seen[-1]["start"]
    assert any(a["status"] == 503 for a in seen), "ready before it had caught up?"
    after = answers[before_restart:]
    assert len(after) > 100, len(after)

    # Each answer holds the topic's state at the offsets it says it reflects.
    for key, status, data, position in after:
        assert position, "an answer without the position it reflects"
        offsets = {int(p): int(o) for p, o in (part.split(":") for part in position.split(","))}
        for partition, offset in kept.offsets.items():  # never older than the snapshot
            assert offsets.get(partition, 0) >= offset, (position, kept.offsets)
        expected = None
        for partition, offset, value in writes[key]:  # in offset order, one partition
            if offset < offsets.get(partition, 0):
                expected = value
        want = (200, expected) if expected is not None else (404, None)
        assert (status, data) == want, (key, position)
    until_equal(second, topic)
    assert "Traceback" not in second.log.read_text()
    assert second.stop() == 0

"""`seam serve` against the real broker: a memory image of a latest topic.

Each test writes product states (the catalog's shape) to a latest topic of its own, in
transactions as the transform does (so commit markers sit between the records), runs
`seam serve` as a subprocess on a free port, and compares what it serves with the topic read
to its end. Every process and topic a test starts or creates, it stops or deletes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from seam.legacy_db.files import pipeline_document
from seam.settings import Settings
from seam.transforms.readback import compacted, read_to_end
from tests.catalog_checks import wait_for
from tests.conftest import free_port, start_transform_worker

pytestmark = pytest.mark.integration

STATUSES = ("active", "active", "active", "discontinued")


def product(i: int, version: int = 0) -> dict[str, Any]:
    return {
        "product_id": i,
        "sku": f"SKU-{i:07d}",
        "name": f"{'Steel' if i % 5 == 0 else 'Oak'} kettle {i} v{version}",
        "status": STATUSES[i % 4],
        "price": {"amount": f"{i % 100}.{version % 100:02d}", "currency": "EUR"},
        "category": {"id": i % 7 + 1, "name": f"Category {i % 7 + 1}"},
        "supplier": {"id": i % 3 + 1},
        "created_at": "2024-01-02T03:04:05Z",
    }


class Topic:
    """A latest topic of the test's own, and a transactional producer writing to it."""

    def __init__(
        self,
        settings: Settings,
        name: str,
        partitions: int = 3,
        config: dict[str, str] | None = None,
    ) -> None:
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient, NewTopic

        self.name = name
        self.settings = settings
        self.admin = AdminClient(settings.kafka.client_config())
        self.admin.create_topics(
            [NewTopic(name, partitions, 1, config={"cleanup.policy": "compact", **(config or {})})]
        )[name].result(timeout=30)
        self.producer = Producer(
            settings.kafka.client_config(
                {"transactional.id": f"{name}-producer", "linger.ms": 5, "enable.idempotence": True}
            )
        )
        self.producer.init_transactions(30)

    def write(
        self, records: list[tuple[str, dict[str, Any] | None]], batch: int = 5000
    ) -> dict[str, tuple[int, int]]:
        """Write records in transactions of `batch`; key -> (partition, offset) of its last."""
        where: dict[str, tuple[int, int]] = {}

        def delivered(err: Any, msg: Any) -> None:
            assert err is None, err
            where[msg.key().decode()] = (msg.partition(), msg.offset())

        for start in range(0, len(records), batch):
            self.producer.begin_transaction()
            for key, value in records[start : start + batch]:
                self.producer.produce(
                    self.name,
                    key=key.encode(),
                    value=None if value is None else orjson.dumps(value),
                    on_delivery=delivered,
                )
                self.producer.poll(0)
            self.producer.commit_transaction(30)
        self.producer.flush(30)
        return where

    def view(self) -> dict[str, Any]:
        """The topic read to its end, compacted: key -> state."""
        return {
            k.decode(): v for k, v in compacted(read_to_end(self.settings.kafka, self.name)).items()
        }

    def delete(self) -> None:
        self.admin.delete_topics([self.name])[self.name].result(timeout=30)


@pytest.fixture
def topic(stack: Settings, unique_name: Callable[[str], str]) -> Iterator[Topic]:
    made = Topic(stack, unique_name("svc.products-latest"))
    try:
        yield made
    finally:
        made.delete()


@pytest.fixture
def service_file(tmp_path: Path, topic: Topic, unique_name: Callable[[str], str]) -> Path:
    doc = pipeline_document("catalog")
    doc["outputs"]["latest"]["topic"] = topic.name
    doc["group"] = unique_name("svc-transform")
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(yaml.safe_dump(doc, sort_keys=False))
    service = tmp_path / "service.yaml"
    service.write_text(
        "pipeline: pipeline.yaml\n"
        "indexes: [sku]\n"
        "filters: [status, category.id]\n"
        "search: [name]\n"
        "page_size: 100\n"
        "snapshot: {path: image.snapshot, interval_s: 1}\n"
    )
    return service


class Served:
    """`seam serve` in a subprocess, and an HTTP client for it."""

    def __init__(self, service_file: Path, *options: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = service_file.parent / f"serve-{self.port}.log"
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "seam.cli.main",
                "serve",
                str(service_file),
                "--port",
                str(self.port),
                *options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=self._log_file,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def up(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                self.client.get("/health")
                return
            except httpx.TransportError:
                time.sleep(0.02)
        raise AssertionError(f"the service did not answer in {timeout}s: {self.log.read_text()}")

    def until_ready(self, timeout: float = 60) -> list[dict[str, Any]]:
        """Poll /ready until 200; every answer, with its status, in order."""
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.client.get("/ready")
            seen.append({"status": answer.status_code, **answer.json()})
            if answer.status_code == 200:
                return seen
            time.sleep(0.01)
        raise AssertionError(f"not ready in {timeout}s: {seen[-1]}: {self.log.read_text()}")

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(path, params=params)

    def all_states(self, path: str = "/product", **params: Any) -> dict[str, Any]:
        """Every page of a listing, followed by its cursors: key -> state, in order."""
        out: dict[str, Any] = {}
        cursor = None
        while True:
            page = self.get(path, limit=1000, **params, **({"cursor": cursor} if cursor else {}))
            page = page.json()
            out.update(zip(page["keys"], page["items"], strict=True))
            cursor = page["next_cursor"]
            if cursor is None:
                return out

    def close(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log_file.close()

    def stop(self) -> int:
        """SIGTERM, then kill if it has not stopped within 15 s; the exit code."""
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
                raise AssertionError("the service did not stop within 15 s of SIGTERM") from None
        self._log_file.close()
        return self.process.returncode

    def kill(self) -> None:
        self.client.close()
        self.process.kill()
        self.process.wait(10)


@contextlib.contextmanager
def transform_and_serve(
    stack: Settings, pipeline: Path, latest: str, service_file: Path, instance: str
) -> Iterator[Served]:
    """The transform worker of `pipeline` and, once its latest topic has a record,
    `seam serve SERVICE_FILE --rebuild` on it, ready; both stopped at the end."""
    from seam.streams.kafka import TopicNotFoundError

    worker = start_transform_worker(pipeline, instance, capture_stdout=False)
    served: Served | None = None
    try:

        def latest_filled() -> bool:
            assert worker.poll() is None, worker.communicate()[1].decode()[-3000:]
            try:
                return len(read_to_end(stack.kafka, latest)) > 0
            except TopicNotFoundError:
                return False

        wait_for(latest_filled, 120, "the latest topic", step=0.5)
        served = Served(service_file, "--rebuild")
        served.up()
        served.until_ready()
        yield served
    finally:
        if served is not None:
            served.close()
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=60)


@pytest.fixture
def serve(service_file: Path) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(*options: str) -> Served:
        served = Served(service_file, *options)
        started.append(served)
        served.up()
        return served

    try:
        yield start
    finally:
        for served in started:
            served.close()


def check_ready_answers(seen: list[dict[str, Any]]) -> None:
    """Ready exactly when every partition is applied up to the end offsets seen at start."""
    for answer in seen:
        caught_up = (
            all(
                answer["applied"].get(p, 0) >= end
                for p, end in answer["end_offsets_at_start"].items()
            )
            and answer["loader"] == "running"
        )
        assert (answer["status"] == 200) == caught_up, answer


def test_the_service_serves_the_topic_read_to_its_end(
    topic: Topic, serve: Callable[..., Served]
) -> None:
    n = 30_000
    topic.write([(str(i), product(i)) for i in range(1, n + 1)])
    topic.write([(str(i), product(i, 1)) for i in range(1, n + 1, 10)])  # updates
    topic.write([(str(i), None) for i in range(2, n + 1, 100)])  # deletes
    view = topic.view()

    served = serve("--rebuild")
    seen = served.until_ready()
    check_ready_answers(seen)
    assert seen[-1]["entities"] == len(view)
    assert seen[-1]["start"] == "rebuilt from offset 0 (--rebuild)"

    # By key: the state, and the position it reflects, in header and body.
    answer = served.get("/product/11")
    assert answer.status_code == 200
    assert answer.json()["data"] == view["11"] == product(11, 1)
    header = answer.headers["Seam-Position"]
    assert header == ",".join(
        f"{p}:{o}"
        for p, o in sorted((int(p), o) for p, o in answer.json()["position"]["offsets"].items())
    )
    assert served.get("/product/2").status_code == 404  # deleted
    assert served.get("/product/999999").json()["detail"] == "no product with key 999999"

    # Every page together is the topic, in key order.
    assert served.all_states() == view
    assert list(served.all_states()) == sorted(view, key=int)

    # By index, count, filters, search.
    assert served.get("/product/by/sku/SKU-0000011").json()["items"] == [view["11"]]
    assert served.get("/product/by/sku/SKU-0000002").json()["items"] == []
    assert served.get("/product/count").json()["count"] == len(view)
    wanted = {
        k for k, v in view.items() if v["status"] == "discontinued" and v["category"]["id"] == 3
    }
    count = served.get("/product/count", status="discontinued", **{"category.id": 3}).json()
    assert count["count"] == len(wanted)
    assert len(wanted) > 1000  # more than one page
    listed = served.all_states(status="discontinued", **{"category.id": 3})
    assert set(listed) == wanted
    steel = served.all_states("/product/search", q="STEEL kettle v1")
    assert set(steel) == {
        k for k, v in view.items() if v["name"].startswith("Steel") and v["name"].endswith("v1")
    }

    # Unknown filter or index: one clear line naming the closest.
    bad = served.get("/product", statu="x")
    assert bad.status_code == 400
    assert "did you mean 'status'?" in bad.json()["detail"]
    assert "did you mean 'sku'?" in served.get("/product/by/skus/1").json()["detail"]

    metrics = served.get("/metrics").text
    assert f'seam_service_entities{{entity="product"}} {len(view)}' in metrics
    assert 'seam_service_ready{entity="product"} 1' in metrics
    assert "seam_service_lag_records" in metrics
    assert served.get("/openapi.json").json()["info"]["title"] == "seam memory image: product"
    assert served.stop() == 0


def test_read_your_writes_waits_for_a_record_written_later(
    topic: Topic, serve: Callable[..., Served]
) -> None:
    where = topic.write([(str(i), product(i)) for i in range(1, 101)])
    served = serve("--rebuild")
    served.until_ready()
    partition, _offset = where["7"]
    before = served.get("/product/7").json()["position"]["offsets"][str(partition)]

    # The next record of that partition lands at `before`; its commit marker after it.
    def later() -> None:
        time.sleep(0.5)
        topic.write([("7", product(7, 9))])

    writer = threading.Thread(target=later)
    began = time.monotonic()
    writer.start()
    try:
        answer = served.get("/product/7", after=f"{partition}:{before + 1}", wait_ms=10_000)
    finally:
        writer.join()
    assert answer.status_code == 200, answer.text
    assert time.monotonic() - began >= 0.5
    assert answer.json()["data"] == product(7, 9)
    assert answer.json()["position"]["offsets"][str(partition)] >= before + 1

    # A tombstone written later: the key is gone once the position is reached.
    where = topic.write([("7", None)])
    gone = served.get("/product/7", after=f"{partition}:{where['7'][1] + 1}", wait_ms=10_000)
    assert gone.status_code == 404

    # A position never reached: 504 after wait_ms, saying what was reached.
    began = time.monotonic()
    late = served.get("/product/8", after=f"{partition}:{before + 10_000}", wait_ms=300)
    assert late.status_code == 504
    assert 0.3 <= time.monotonic() - began < 5
    assert late.json()["wanted"] == f"{partition}:{before + 10_000}"
    assert "Seam-Position" in late.headers
    bad = served.get("/product/8", after="zz")
    assert bad.status_code == 400
    assert "after=zz" in bad.json()["detail"]
    assert served.stop() == 0


def test_restart_from_the_snapshot_after_kill_9_then_catch_up(
    topic: Topic, serve: Callable[..., Served], service_file: Path
) -> None:
    topic.write([(str(i), product(i)) for i in range(1, 20_001)])
    first = serve("--rebuild")
    first.until_ready()
    snapshot = service_file.parent / "image.snapshot"
    deadline = time.monotonic() + 30
    while not snapshot.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert snapshot.exists(), "no periodic snapshot within 30 s"
    time.sleep(1.5)  # one more period: the snapshot holds the whole image
    first.kill()

    # Meanwhile the topic moves on: updates, new keys, deletes.
    topic.write([(str(i), product(i, 2)) for i in range(1, 150_001)])
    topic.write([(str(i), None) for i in range(3, 20_001, 50)])
    view = topic.view()

    second = serve()
    seen = second.until_ready()
    check_ready_answers(seen)
    assert seen[-1]["start"].startswith("loaded 20000 entities from snapshot file")
    assert any(a["status"] == 503 for a in seen), "ready before it had caught up?"
    # While it catches up the image holds some mix of the snapshot and what came since: never
    # more keys than the topic ever held (more than `view` is fine: the new keys may be in
    # before the tombstones that follow them).
    for answer in seen:
        if answer["status"] == 503:
            assert answer["entities"] <= 150_000
    assert second.all_states() == view
    assert second.stop() == 0
    # A clean stop writes the snapshot: a third start begins where the second stopped.
    third = serve()
    seen = third.until_ready()
    assert seen[-1]["start"].startswith(f"loaded {len(view)} entities from snapshot file")
    assert third.all_states() == view
    assert third.stop() == 0


def test_a_corrupt_snapshot_is_rebuilt_from_the_topic(
    topic: Topic, serve: Callable[..., Served], service_file: Path
) -> None:
    topic.write([(str(i), product(i)) for i in range(1, 501)])
    (service_file.parent / "image.snapshot").write_bytes(b"SEAM-IMAGE\ngarbage")
    served = serve()
    seen = served.until_ready()
    assert "is damaged" in seen[-1]["start"]
    assert seen[-1]["start"].endswith("rebuilt from offset 0")
    assert served.get("/product/count").json()["count"] == 500
    assert "Traceback" not in served.log.read_text()
    assert served.stop() == 0


def test_two_instances_serve_the_same_entity(topic: Topic, serve: Callable[..., Served]) -> None:
    topic.write([(str(i), product(i)) for i in range(1, 1001)])
    one, two = serve("--rebuild"), serve("--rebuild")
    one.until_ready()
    two.until_ready()
    topic.write([("5", product(5, 3))])
    for served in (one, two):
        deadline = time.monotonic() + 10
        while served.get("/product/5").json()["data"] != product(5, 3):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert one.all_states() == two.all_states() == topic.view()
    assert one.stop() == 0
    assert two.stop() == 0


def test_a_missing_topic_is_one_clear_line(
    tmp_path: Path, service_file: Path, topic: Topic
) -> None:
    text = service_file.read_text()
    pipeline = service_file.parent / "pipeline.yaml"
    pipeline.write_text(pipeline.read_text().replace(topic.name, topic.name + "-absent"))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "seam.cli.main",
            "serve",
            str(service_file),
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert "does not exist" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    assert text == service_file.read_text()

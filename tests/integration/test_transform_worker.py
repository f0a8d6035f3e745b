"""The transform worker on the real broker, fed with synthetic Debezium records on a raw
topic of its own (4 partitions): poison records, exactly once under kill -9, and two
workers of one group splitting the partitions and handing over without loss.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from seam.changes import RawRecord
from seam.kafka_config import client_config
from seam.legacy_db.files import pipeline_document
from seam.legacy_db.synthetic import envelope, micros, reference_rows
from seam.settings import Settings
from seam.streams.kafka import Kafka
from seam.transforms.pipeline import Produced
from seam.transforms.pipeline_file import PipelineSpec, parse_pipeline
from seam.transforms.readback import compacted, read_to_end
from seam.transforms.topics import delete_group
from seam.transforms.worker import Worker, WorkerOptions
from tests.conftest import free_port, start_transform_worker

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PRODUCTS = 200


@dataclass
class Raw:
    prefix: str
    products: str
    spec: PipelineSpec
    pipeline_file: Path
    bootstrap: str
    sent: list[tuple[bytes, bytes | None]]
    lsn: int = 1000

    def producer(self) -> Any:
        from confluent_kafka import Producer

        return Producer(
            client_config(self.bootstrap, {"partitioner": "murmur2_random", "linger.ms": 5})
        )


ROW: dict[str, Any] = {
    "sku": "AB-1",
    "prod_name": "Mug",
    "price_txt": "12.50",
    "price_cents": 1250,
    "cat_id": 1,
    "supp_id": 1,
    "status_cd": "A",
    "is_deleted": "N",
    "ean": None,
    "descr": None,
    "created_at": micros("2024-01-01 10:00:00"),
    "updated_at": None,
}


def product(pid: int, name: str) -> dict[str, Any]:
    return {**ROW, "prod_id": pid, "sku": f"AB-{pid:05d}", "prod_name": name}


def changes(raw: Raw, count: int) -> Iterator[tuple[bytes, bytes]]:
    """`count` records, each yielding exactly one event: a create per product first, then
    renames, round robin over the products."""
    for _ in range(count):
        raw.lsn += 1
        n = raw.lsn - 1001
        pid = n % PRODUCTS + 1
        if n < PRODUCTS:
            yield envelope("products", "c", None, product(pid, f"Mug {n}"), raw.lsn)
        else:
            previous = n - PRODUCTS
            yield envelope(
                "products", "u", product(pid, f"Mug {previous}"), product(pid, f"Mug {n}"), raw.lsn
            )


def send(raw: Raw, records: list[tuple[bytes, bytes | None]], rate: float | None = None) -> None:
    producer = raw.producer()
    start = time.monotonic()
    for i, (key, value) in enumerate(records):
        producer.produce(raw.products, value, key)
        raw.sent.append((key, value))
        if rate:
            producer.poll(0)
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    producer.flush(30)


@pytest.fixture
def raw(stack: Settings, tmp_path: Path) -> Iterator[Raw]:
    from confluent_kafka.admin import AdminClient, NewTopic

    prefix = f"txw{uuid.uuid4().hex[:8]}"
    admin = AdminClient(client_config(stack.kafka_bootstrap_servers))
    inputs = {
        f"{prefix}.public.products": 4,
        f"{prefix}.public.categories": 1,
        f"{prefix}.public.suppliers": 1,
    }
    for future in admin.create_topics(
        [NewTopic(t, num_partitions=n, replication_factor=1) for t, n in inputs.items()]
    ).values():
        future.result(timeout=30)
    data = yaml.safe_load(yaml.safe_dump(pipeline_document()).replace("catalog.", f"{prefix}."))
    data["group"] = f"{prefix}-group"
    data["processing"]["batch_size"] = 200
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data))
    spec = parse_pipeline(data, str(path))
    raw_bootstrap = stack.kafka_bootstrap_servers
    result = Raw(prefix, f"{prefix}.public.products", spec, path, raw_bootstrap, [])
    producer = result.producer()
    for i, (table, row) in enumerate(reference_rows(1000)):
        key, value = envelope(table, "r", None, row, i + 1)
        producer.produce(f"{prefix}.public.{table}", value, key)
    producer.flush(30)
    try:
        yield result
    finally:
        existing = set(admin.list_topics(timeout=10).topics)
        doomed = [t for t in existing if t.startswith(prefix)]
        for future in admin.delete_topics(doomed).values():
            with contextlib.suppress(Exception):
                future.result(timeout=30)
        with contextlib.suppress(Exception), Kafka(raw_bootstrap) as kafka:
            for group in (spec.group, spec.group + ".r1"):
                delete_group(kafka, group)


def expected_ids(raw: Raw) -> Counter[str]:
    """The event ids the records sent must yield, by the pure pipeline (one each here)."""
    pipeline = raw.spec.build()
    ids: Counter[str] = Counter()
    for key, value in raw.sent:
        outcome = pipeline.run(RawRecord(key, value, topic=raw.products))
        assert isinstance(outcome, Produced)
        ids.update(i.event["event_id"] for i in outcome.events if i.event)
    return ids


def history(raw: Raw) -> list[dict[str, Any]]:
    return [r.json() for r in read_to_end(raw.bootstrap, raw.spec.history.topic)]


def check_exactly_once(raw: Raw) -> None:
    events = history(raw)
    got = Counter(e["event_id"] for e in events)
    dupes = {k: n for k, n in got.items() if n > 1}
    assert not dupes, f"{len(dupes)} duplicated events"
    want = expected_ids(raw)
    assert sum(want.values()) == len(raw.sent)
    missing = set(want) - set(got)
    assert not missing, f"{len(missing)} events missing"
    assert set(got) == set(want)
    # Per key, events in the order of the source log.
    lsns: dict[int, list[int]] = {}
    for e in events:
        lsns.setdefault(e["product_id"], []).append(e["provenance"]["position"]["lsn"])
    assert all(v == sorted(v) for v in lsns.values())
    # The latest topic: every product under its last name.
    latest = compacted(read_to_end(raw.bootstrap, raw.spec.latest.topic))
    last = {}
    for e in events:
        if e["event_type"] == "ProductRenamed":
            last[e["product_id"]] = e["data"]["new_name"]
        elif e["event_type"] == "ProductListed":
            last.setdefault(e["product_id"], e["data"]["product"]["name"])
    assert {int(k): v["name"] for k, v in latest.items()} == last


def run_in_thread(
    raw: Raw, instance: str, **options: Any
) -> tuple[Worker, threading.Thread, list[BaseException]]:
    worker = Worker(
        raw.spec, raw.bootstrap, WorkerOptions(instance_id=instance, progress_interval=1, **options)
    )
    errors: list[BaseException] = []

    def target() -> None:
        try:
            worker.run()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return worker, thread, errors


def test_poison_records_go_to_the_dead_letter_topic_and_the_worker_goes_on(raw: Raw) -> None:
    good = list(changes(raw, 15))
    raw.lsn += 1  # the poison's place in the source log: between the good changes
    breaking_every_rule = envelope(
        "products",
        "c",
        None,
        {
            **product(999, ""),
            "sku": " ",
            "price_txt": "1,234",
            "price_cents": None,
            "status_cd": "?",
            "is_deleted": "maybe",
            "ean": "12ab",
            "created_at": "never",
        },
        raw.lsn,
    )
    good += changes(raw, 15)
    poison = [
        (b"k1", b"\x00\xff not json at all"),
        (b'{"prod_id": 2}', b'{"hello": "world"}'),
        breaking_every_rule,
    ]
    send(raw, good[:15] + poison + good[15:])
    worker, thread, errors = run_in_thread(raw, "poison", stop_when_caught_up=True)
    thread.join(90)
    assert not thread.is_alive()
    assert not errors, errors
    counts = worker.progress.counts
    assert counts.records_in == 33
    assert counts.dead_lettered == 3
    assert counts.events_out == 30
    assert counts.balanced

    dead = read_to_end(raw.bootstrap, raw.spec.dead_letter.topic)
    by_value = {d.value: d for d in dead}
    assert set(by_value) == {v for _, v in poison}
    not_json = by_value[poison[0][1]]
    assert not_json.key == b"k1"
    assert not_json.headers["seam.stage"] == b"decode"
    assert b"not JSON" in (not_json.headers["seam.reason"] or b"")
    not_envelope = by_value[poison[1][1]]
    assert not_envelope.headers["seam.stage"] == b"decode"
    assert b"not a Debezium change event" in (not_envelope.headers["seam.reason"] or b"")
    broken = by_value[breaking_every_rule[1]]
    assert broken.headers["seam.stage"] == b"clean"
    reason = (broken.headers["seam.reason"] or b"").decode()
    for column in ("sku", "prod_name", "price_txt", "status_cd", "is_deleted", "ean", "created_at"):
        assert column in reason
    for d in dead:
        assert d.headers["seam.source.topic"] == raw.products.encode()
        source = read_to_end(raw.bootstrap, raw.products)
        (original,) = [
            r
            for r in source
            if str(r.partition).encode() == d.headers["seam.source.partition"]
            and str(r.offset).encode() == d.headers["seam.source.offset"]
        ]
        assert original.value == d.value
    assert len(history(raw)) == 30


def _start(raw: Raw, instance: str, *options: str) -> subprocess.Popen[bytes]:
    return start_transform_worker(raw.pipeline_file, instance, *options, capture_stdout=False)


def _wait_busy(worker: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Until the worker's progress lines show it processing records."""
    assert worker.stderr is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = worker.stderr.readline()
        if not line:
            raise AssertionError(f"worker exited: {worker.wait()}")
        if b'"records_in": ' in line and b'"records_in": 0,' not in line:
            return
    raise AssertionError("the worker never started processing")


def test_exactly_once_when_the_worker_is_killed(raw: Raw) -> None:
    rng = random.Random()
    for _ in range(3):
        # A backlog keeps the worker in the middle of batches (and transactions) when it
        # is killed, at a random moment after it started processing.
        send(raw, list(changes(raw, 12_000)))
        worker = _start(raw, "killme", "--progress-interval", "0.2", *GUARANTEE)
        _wait_busy(worker)
        time.sleep(rng.uniform(0.0, 0.5))
        worker.send_signal(signal.SIGKILL)
        worker.communicate(timeout=10)
    final = _start(raw, "killme", "--progress-interval", "1", "--until-caught-up", *GUARANTEE)
    _out, err = final.communicate(timeout=300)
    assert final.returncode == 0, err.decode()[-2000:]
    check_exactly_once(raw)


# Set to ("--at-least-once",) to see this test fail with duplicates.
GUARANTEE: tuple[str, ...] = ()


def test_two_workers_split_the_partitions_and_hand_over(raw: Raw) -> None:
    send(raw, list(changes(raw, 400)))
    first, first_thread, first_errors = run_in_thread(raw, "one")
    second, second_thread, second_errors = run_in_thread(raw, "two")
    feeder = threading.Thread(target=send, args=(raw, list(changes(raw, 3000)), 300.0), daemon=True)
    feeder.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (
            first.progress.counts.records_in
            and second.progress.counts.records_in
            and len(first._assigned)
            and len(second._assigned)
        ):
            break
        time.sleep(0.5)
    assert len(first._assigned) + len(second._assigned) == 4
    assert first._assigned.isdisjoint(second._assigned)
    assert first.progress.counts.records_in > 0
    assert second.progress.counts.records_in > 0
    time.sleep(2)
    first.stop()  # a clean stop mid-stream: its partitions move to the other worker
    first_thread.join(30)
    assert not first_thread.is_alive()
    feeder.join(60)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(second._assigned) < 4:
        time.sleep(0.5)
    assert len(second._assigned) == 4
    total = len(raw.sent)
    while time.monotonic() < deadline + 60:
        if first.progress.counts.records_in + second.progress.counts.records_in >= total:
            break
        time.sleep(0.5)
    time.sleep(2)
    second.stop()
    second_thread.join(30)
    assert not first_errors
    assert not second_errors
    assert first.progress.counts.records_in + second.progress.counts.records_in == total
    check_exactly_once(raw)


def per_key(events: list[dict[str, Any]]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for e in events:
        out.setdefault(e["product_id"], []).append(e["event_id"])
    return out


def test_replay_rebuilds_the_same_events(raw: Raw) -> None:
    from typer.testing import CliRunner

    from seam.cli.main import app

    send(raw, [*changes(raw, 600), (b"k", b"poison")])
    runner = CliRunner()
    args = ["transform", "run", str(raw.pipeline_file), "--until-caught-up", "-o", "json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    original = history(raw)
    original_latest = compacted(read_to_end(raw.bootstrap, raw.spec.latest.topic))
    assert len(original) == 600

    replayed = runner.invoke(
        app, ["transform", "replay", str(raw.pipeline_file), "--suffix", ".r1", "-o", "json"]
    )
    assert replayed.exit_code == 0, replayed.output
    again = [r.json() for r in read_to_end(raw.bootstrap, raw.spec.history.topic + ".r1")]
    # The same events, in the same order per product (input partitions interleave freely).
    assert per_key(again) == per_key(original)
    assert compacted(read_to_end(raw.bootstrap, raw.spec.latest.topic + ".r1")) == original_latest
    assert len(read_to_end(raw.bootstrap, raw.spec.dead_letter.topic + ".r1")) == 1
    clash = runner.invoke(app, ["transform", "replay", str(raw.pipeline_file), "--suffix", ".r1"])
    assert clash.exit_code == 1
    assert "already exist" in str(clash.exception)  # main() prints it as one line

    refused = runner.invoke(
        app, ["transform", "replay", str(raw.pipeline_file), "--delete-old"], input="n\n"
    )
    assert refused.exit_code == 1
    assert len(history(raw)) == 600  # nothing deleted
    rebuilt = runner.invoke(
        app, ["transform", "replay", str(raw.pipeline_file), "--delete-old", "--yes"]
    )
    assert rebuilt.exit_code == 0, rebuilt.output
    assert per_key(history(raw)) == per_key(original)


def test_clear_errors_for_a_missing_topic_and_an_unreachable_broker(
    raw: Raw, tmp_path: Path
) -> None:
    data = yaml.safe_load(raw.pipeline_file.read_text())
    data["inputs"] = [f"{raw.prefix}.public.nosuchtable"]
    # The lookups' tables are named by their topics (not derived from the missing input).
    for table in ("categories", "suppliers"):
        data["tables"][table]["topic"] = f"{raw.prefix}.public.{table}"
    missing = tmp_path / "missing.yaml"
    missing.write_text(yaml.safe_dump(data))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    base = [sys.executable, "-m", "seam.cli.main"]
    result = subprocess.run(
        [*base, "transform", "run", str(missing)], capture_output=True, timeout=60, env=env
    )
    assert result.returncode == 1
    assert b"nosuchtable' does not exist" in result.stderr
    assert b"Traceback" not in result.stderr

    started = time.monotonic()
    result = subprocess.run(
        [
            *base,
            "--kafka",
            "127.0.0.1:1",
            "transform",
            "run",
            str(raw.pipeline_file),
            "--broker-timeout",
            "3",
        ],
        capture_output=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 1
    assert b"cannot reach Kafka at 127.0.0.1:1" in result.stderr
    assert b"Traceback" not in result.stderr
    assert time.monotonic() - started < 30


def test_sigterm_finishes_the_batch_and_exits_zero_with_metrics(raw: Raw) -> None:
    import json
    import urllib.request

    send(raw, list(changes(raw, 300)))
    port = free_port()
    worker = start_transform_worker(
        raw.pipeline_file,
        "term",
        "--metrics-port",
        str(port),
        "--progress-interval",
        "0.5",
        "-o",
        "json",
    )
    try:
        _wait_busy(worker)
        deadline = time.monotonic() + 30
        text = ""
        while time.monotonic() < deadline and "records_in_total" not in text:
            with contextlib.suppress(OSError):
                text = (
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)
                    .read()
                    .decode()
                )
            time.sleep(0.5)
        assert 'seam_transform_records_in_total{pipeline="catalog"}' in text
        assert "seam_transform_lag" in text
    finally:
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err.decode()[-2000:]
    summary = json.loads(out)
    assert summary["records_in"] == 300
    assert summary["balanced"] is True
    assert len(history(raw)) == 300


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_redelivered_source_changes_are_dropped_across_restarts(raw: Raw, guarantee: str) -> None:
    """Debezium re-delivers after a Connect crash: the same changes again at higher offsets.
    A worker drops them, and so does its successor, from the marks committed with the
    offsets (send_offsets_to_transaction / commit with metadata on the real broker)."""
    raw.spec = raw.spec.with_guarantee(guarantee)
    first = list(changes(raw, 60))
    send(raw, first)
    worker, thread, errors = run_in_thread(raw, "redeliver-1", stop_when_caught_up=True)
    thread.join(90)
    assert not errors, errors
    assert worker.progress.counts.redelivered == 0
    # The re-delivery: the last 25 changes again, then 20 new ones; a new worker reads them.
    again = first[-25:]
    producer = raw.producer()
    for key, value in again:
        producer.produce(raw.products, value, key)
    producer.flush(30)
    send(raw, list(changes(raw, 20)))
    worker, thread, errors = run_in_thread(raw, "redeliver-2", stop_when_caught_up=True)
    thread.join(90)
    assert not errors, errors
    counts = worker.progress.counts
    assert counts.redelivered == 25
    assert counts.records_in == 45
    assert counts.balanced
    check_exactly_once(raw)
    # A replay from offset 0 into new topics drops the same 25.
    replayed = raw.spec.with_suffix(".r1")
    replay = Worker(
        replayed, raw.bootstrap, WorkerOptions(instance_id="replay", stop_when_caught_up=True)
    )
    assert replay.run().counts.redelivered == 25

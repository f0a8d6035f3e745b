"""A user's stage that raises, through a real worker on the real broker: the records are
dead-lettered, the first traceback of each error type is logged once, they are counted, and
past processing.max_stage_errors `seam transform run` stops with one clear error after
committing its last batch, so that a restart neither loses nor repeats a record.

The stage module sits next to the pipeline file (in tmp_path), not on PYTHONPATH.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import textwrap
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
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
from seam.transforms.outputs import publication
from seam.transforms.pipeline import Produced
from seam.transforms.pipeline_file import PipelineSpec, load_pipeline
from seam.transforms.readback import Record, read_to_end
from seam.transforms.topics import delete_group
from seam.transforms.worker import Worker, WorkerOptions
from tests.conftest import start_transform_worker

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PARTITIONS = 4

ROW: dict[str, Any] = {
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

STAGE_MODULE = """\
class Flaky:
    \"\"\"A stage with bugs: names starting 'boom' raise ValueError, 'kaboom' KeyError.\"\"\"

    name = "flaky"

    def process(self, item):
        event = item.event
        name = ""
        if event is not None and event["event_type"] == "ProductListed":
            name = event["data"]["product"]["name"]
        elif event is None and item.after is not None:  # placed before the events stage
            name = item.after["name"]
            item.after["name"] = name + " (checked)"
        if name.startswith("kaboom"):
            raise KeyError(name)
        if name.startswith("boom"):
            raise ValueError("cannot handle " + name)
        return (item,)


def make(options):
    return Flaky()
"""


@dataclass
class Setup:
    prefix: str
    products: str
    pipeline_file: Path
    spec: PipelineSpec
    bootstrap: str

    def send(self, names: list[str]) -> None:
        """One create per name, product ids 1, 2, ..."""
        from confluent_kafka import Producer

        producer = Producer(client_config(self.bootstrap, {"partitioner": "murmur2_random"}))
        for pid, name in enumerate(names, start=1):
            row = {**ROW, "prod_id": pid, "sku": f"AB-{pid:05d}", "prod_name": name}
            key, value = envelope("products", "c", None, row, 1000 + pid)
            producer.produce(self.products, value, key)
        producer.flush(30)

    def dead_letters(self) -> list[Record]:
        return read_to_end(self.bootstrap, self.spec.dead_letter.topic)

    def history(self) -> list[dict[str, Any]]:
        return [r.json() for r in read_to_end(self.bootstrap, self.spec.history.topic)]

    def committed(self) -> int:
        """The group's committed input offsets, summed over the partitions."""
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer(
            client_config(
                self.bootstrap,
                {
                    "group.id": self.spec.group,
                    "enable.auto.commit": False,
                },
            )
        )
        try:
            tps = [TopicPartition(self.products, p) for p in range(PARTITIONS)]
            return sum(max(tp.offset, 0) for tp in consumer.committed(tps, timeout=30))
        finally:
            consumer.close()


@pytest.fixture
def setup(stack: Settings, tmp_path: Path) -> Iterator[Setup]:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    prefix = f"txe{uuid.uuid4().hex[:8]}"
    bootstrap = stack.kafka_bootstrap_servers
    admin = AdminClient(client_config(bootstrap))
    inputs = {
        f"{prefix}.public.products": PARTITIONS,
        f"{prefix}.public.categories": 1,
        f"{prefix}.public.suppliers": 1,
    }
    for future in admin.create_topics(
        [NewTopic(t, num_partitions=n, replication_factor=1) for t, n in inputs.items()]
    ).values():
        future.result(timeout=30)
    producer = Producer(client_config(bootstrap))
    for i, (table, row) in enumerate(reference_rows(1000)):
        key, value = envelope(table, "r", None, row, i + 1)
        producer.produce(f"{prefix}.public.{table}", value, key)
    producer.flush(30)

    # The catalog pipeline with the flaky stage after map, its module beside the file.
    module = f"flaky_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(STAGE_MODULE))
    data = yaml.safe_load(yaml.safe_dump(pipeline_document()).replace("catalog.", f"{prefix}."))
    data["group"] = f"{prefix}-group"
    data["stages"].insert(4, {"use": f"{module}:make"})
    data["processing"].update(batch_size=20, max_stage_errors=3)
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    spec = load_pipeline(path)
    try:
        yield Setup(prefix, f"{prefix}.public.products", path, spec, bootstrap)
    finally:
        doomed = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
        for future in admin.delete_topics(doomed).values():
            with contextlib.suppress(Exception):
                future.result(timeout=30)
        with contextlib.suppress(Exception), Kafka(bootstrap) as kafka:
            delete_group(kafka, spec.group)


def test_stage_errors_are_dead_lettered_logged_once_per_type_and_counted(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # ids 5, 30, 55, 80, 105: KeyError (5); the other multiples of 10: ValueError (10)
    names = [
        f"kaboom {i}" if i % 25 == 5 else f"boom {i}" if i % 10 == 0 else f"Mug {i}"
        for i in range(1, 121)
    ]
    setup.send(names)
    spec = replace(setup.spec, max_stage_errors=-1)
    worker = Worker(
        spec,
        setup.bootstrap,
        WorkerOptions(instance_id="errors", progress_interval=1, stop_when_caught_up=True),
    )
    errors: list[BaseException] = []

    def target() -> None:
        try:
            worker.run()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(120)
    assert not thread.is_alive()
    assert not errors, errors

    counts = worker.progress.counts
    assert counts.records_in == 120
    assert counts.native == 120  # the compiled engine ran decode and clean before the stage
    assert counts.events_out == 105
    assert counts.dead_lettered == 15
    assert counts.stage_errors == {"flaky": 15}
    assert counts.balanced
    assert worker.progress.as_dict()["stage_errors"] == {"flaky": 15}

    tracebacks = [
        r for r in caplog.records if r.name == "seam.transform.stages" and r.exc_info is not None
    ]
    assert sorted(type(r.exc_info[1]).__name__ for r in tracebacks if r.exc_info) == [
        "KeyError",
        "ValueError",
    ]

    dead = setup.dead_letters()
    assert len(dead) == 15
    reasons = sorted((d.headers["seam.reason"] or b"").decode().split(":")[0] for d in dead)
    assert reasons == ["stage raised KeyError"] * 5 + ["stage raised ValueError"] * 10
    assert {d.headers["seam.stage"] for d in dead} == {b"flaky"}
    assert len(setup.history()) == 105


def test_the_worker_stops_past_the_limit_with_its_last_batch_committed(setup: Setup) -> None:
    names = [f"boom {i}" if i % 10 == 0 else f"Mug {i}" for i in range(1, 201)]  # 20 bugs
    setup.send(names)

    worker = start_transform_worker(setup.pipeline_file, "limit", "--progress-interval", "1")
    _out, err_bytes = worker.communicate(timeout=180)
    err = err_bytes.decode()
    assert worker.returncode == 1, err[-3000:]
    # The first ValueError's traceback is logged once; the stop itself is one error, no trace.
    assert err.count("Traceback (most recent call last)") == 1, err[-3000:]
    assert "stage 'flaky' raised ValueError: cannot handle boom" in err
    lines = [line for line in err.splitlines() if line.strip()]
    stop = re.fullmatch(
        r"error: pipeline 'catalog' stopped: its stages raised on (\d+) records, more than "
        r"processing\.max_stage_errors \(3\): stage 'flaky' ValueError: cannot handle boom \d+ "
        r"\(\d+ records\)",
        lines[-2],
    )
    assert stop, lines[-2:]
    assert lines[-1].startswith("  fix: fix the stage (the log shows the first traceback")
    assert setup.spec.dead_letter.topic in lines[-1]
    stopped_after = int(stop.group(1))
    assert 3 < stopped_after < 20  # stopped at the end of the batch that passed the limit

    # What the worker processed is committed whole: offsets, events and dead letters agree.
    dead = setup.dead_letters()
    assert len(dead) == stopped_after
    processed = setup.committed()
    assert processed < 200
    assert len(setup.history()) + len(dead) == processed

    # A restart with no limit goes on from there: every record once, none twice.
    rest = start_transform_worker(
        setup.pipeline_file,
        "limit",
        "--max-stage-errors",
        "-1",
        "--until-caught-up",
        "-o",
        "json",
    )
    out, err_bytes = rest.communicate(timeout=180)
    assert rest.returncode == 0, err_bytes.decode()[-3000:]
    summary = json.loads(out)
    assert summary["stage_errors"] == {"flaky": 20 - stopped_after}
    assert summary["records_in"] == 200 - processed
    events = setup.history()
    assert len(events) == len({e["event_id"] for e in events}) == 180
    dead = setup.dead_letters()
    sources = {(d.headers["seam.source.partition"], d.headers["seam.source.offset"]) for d in dead}
    assert len(dead) == len(sources) == 20
    assert setup.committed() == 200


def test_a_stage_between_clean_and_events_keeps_the_compiled_engine_around_it(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    """The same stage between clean and events: the worker runs decode, clean, events and
    validate compiled around it, and publishes what the Python stages publish."""
    caplog.set_level(logging.INFO)
    data = yaml.safe_load(setup.pipeline_file.read_text())
    stage = data["stages"].pop(4)
    data["stages"].insert(2, stage)
    setup.pipeline_file.write_text(yaml.safe_dump(data, sort_keys=False))
    spec = replace(load_pipeline(setup.pipeline_file), max_stage_errors=-1)
    names = [f"boom {i}" if i % 10 == 0 else f"Mug {i}" for i in range(1, 61)]
    setup.send(names)
    worker = Worker(
        spec,
        setup.bootstrap,
        WorkerOptions(instance_id="split", progress_interval=1, stop_when_caught_up=True),
    )
    worker.run()
    assert "compiled fast path: on for decode, clean, events, validate" in caplog.text

    counts = worker.progress.counts
    assert counts.records_in == 60
    assert counts.native == 60
    assert counts.dead_lettered == counts.stage_errors["flaky"] == 6
    assert counts.balanced

    # Byte for byte what the Python stages publish for the same input records.
    pipeline = spec.build()
    for table in ("categories", "suppliers"):
        for r in read_to_end(setup.bootstrap, f"{setup.prefix}.public.{table}"):
            pipeline.observe(RawRecord(r.key, r.value, r.topic, r.partition, r.offset))
    expected = []
    for r in read_to_end(setup.bootstrap, setup.products):
        outcome = pipeline.run(RawRecord(r.key, r.value, r.topic, r.partition, r.offset))
        if isinstance(outcome, Produced):
            expected += [(k, v) for k, v, _h in publication(outcome, spec.history.key).history]
    history = read_to_end(setup.bootstrap, spec.history.topic)
    assert sorted((r.key, r.value) for r in history) == sorted(expected)
    assert len(expected) == 54
    assert all(e["data"]["product"]["name"].endswith(" (checked)") for e in setup.history())

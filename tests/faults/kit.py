"""What the fault tests are made of.

* `StackFaults`: kill -9 a part of the private stack by the PID the stack recorded, and bring
  it back with `LocalStack.up(only=[part])`.
* `WorkerProcess`: `seam transform run` in a subprocess as an operator runs it, its log in a
  file (a pipe nobody reads would fill and block it), every wait on it bounded: a worker that
  hangs fails the test instead of hanging the suite.
* `Catalog`: the session's legacy catalog in PostgreSQL, captured by the example connector
  spec; `Workload` drives it with `seam legacy workload` and keeps its report.
* `check_exactly_once`: the pipeline's outputs against the legacy tables, the workload's
  report and a clean replay of the same raw topics, read with read_committed.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import types
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from seam.kafka_config import client_config
from seam.legacy_db.files import pipeline_document
from seam.settings import Settings
from tests.catalog_checks import delete_topics, expected_events, legacy_latest, wait_for
from tests.conftest import start_transform_worker

REPO = Path(__file__).resolve().parents[2]
PROGRESS = " seam.transform.progress INFO "
_serial = itertools.count(1)


def seam(*args: str, timeout: float = 180.0) -> str:
    """`seam ARGS...` as a user runs it (SEAM_CONFIG names the private stack); its stdout."""
    result = subprocess.run(
        [sys.executable, "-m", "seam.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"seam {' '.join(args)}: {result.stderr[-2000:]}"
    return result.stdout


# --------------------------------------------------------------------------- stack parts


class StackFaults:
    """kill -9 and restart the parts of the session's private stack."""

    def __init__(self, settings: Settings) -> None:
        from seam.stack.local import LocalStack

        self.settings = settings
        self.stack = LocalStack(settings.stack)

    def kill(self, part: str) -> None:
        """kill -9 the part's recorded process and wait until it is gone (PostgreSQL: its
        backends too, which end on their own once their postmaster is gone)."""
        from seam.stack import process

        recorded = self.stack.recorded(part)
        assert recorded is not None, f"the private stack's {part} is not running"
        children = process.children(recorded.pid) if part == "postgres" else []
        os.kill(recorded.pid, signal.SIGKILL)
        wait_for(recorded.gone, 30, f"the killed {part} (pid {recorded.pid}) to end", step=0.1)
        for child in children:
            wait_for(child.gone, 60, f"{part}'s process {child.pid} to end", step=0.2)

    def restart(self, part: str) -> float:
        """Start the part again; returns when it serves (time.monotonic() then)."""
        self.stack.up(only=[part])
        return time.monotonic()

    def restore(self) -> list[str]:
        """Every part running again (after a test that failed half-way); what was started."""
        return self.stack.up()


# --------------------------------------------------------------------------- the worker


class WorkerProcess:
    """`seam transform run PIPELINE --instance-id INSTANCE` with JSON progress lines every
    `interval` seconds in its log file and the JSON summary in its output file."""

    def __init__(
        self, pipeline: Path, instance: str, log_dir: Path, *options: str, interval: float = 0.5
    ) -> None:
        n = next(_serial)
        self.log = log_dir / f"worker-{n}-{instance}.log"
        self.out = log_dir / f"worker-{n}-{instance}.out"
        with self.log.open("wb") as err, self.out.open("wb") as out:
            self.proc = start_transform_worker(
                pipeline,
                instance,
                "--progress-interval",
                str(interval),
                "--output",
                "json",
                *options,
                stdout=out,
                stderr=err,
            )

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.kill()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def progress(self) -> list[dict[str, Any]]:
        """Every progress line logged so far, oldest first."""
        out = []
        for line in self.text().splitlines():
            at = line.find(PROGRESS)
            if at >= 0:
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line[at + len(PROGRESS) :]))
        return out

    def wait(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float, what: str
    ) -> float:
        """Wait until `predicate(progress lines)` holds while the worker runs; the seconds it
        took. The worker exiting meanwhile fails, with its log."""

        def check() -> bool:
            if not self.alive():
                raise AssertionError(
                    f"the worker exited ({self.proc.returncode}) while waiting for {what}:\n"
                    + self.tail()
                )
            return predicate(self.progress())

        try:
            return wait_for(check, timeout, what, step=0.1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.tail()}") from None

    def kill(self) -> None:
        """kill -9, and reap it."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float, what: str) -> float:
        """Wait for the worker to end by itself within `timeout` seconds (else kill -9 it
        and fail: it hung); the seconds it took."""
        start = time.monotonic()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"the worker did not exit within {timeout:g}s of {what} (hung):\n" + self.tail()
            ) from None
        return time.monotonic() - start

    def stop(self, timeout: float = 60.0) -> dict[str, Any]:
        """SIGTERM, a clean exit within `timeout` (the current batch finishes); the summary."""
        self.signal(signal.SIGTERM)
        self.wait_exit(timeout, "SIGTERM")
        assert self.proc.returncode == 0, f"exit {self.proc.returncode}:\n{self.tail()}"
        summary: dict[str, Any] = json.loads(self.out.read_text())
        return summary


def assert_one_clear_error(worker: WorkerProcess) -> str:
    """A worker that stopped with an error said so in one line, without a traceback."""
    text = worker.text()
    assert "Traceback" not in text, text[-3000:]
    errors = [line for line in text.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, text[-3000:]
    return errors[0]


def assert_balanced(summary: dict[str, Any]) -> None:
    """Every input record counted once: events, dead letters, no event, re-delivered."""
    assert summary["balanced"] is True, summary
    assert summary["records_in"] == (
        summary["records_with_events"]
        + summary["dead_lettered"]
        + sum(summary["no_event"].values())
        + summary["redelivered"]
    ), summary


# --------------------------------------------------------------------------- the catalog


@dataclass
class Pipeline:
    path: Path
    group: str
    history: str
    latest: str
    dead_letter: str
    inputs: list[str]

    @property
    def outputs(self) -> list[str]:
        return [self.history, self.latest, self.dead_letter]


@dataclass
class Catalog:
    """The session's seeded catalog, its connector and what the workloads did to it."""

    settings: Settings
    url: str
    dbname: str
    connector: str
    prefix: str
    initial: dict[int, dict[str, Any]]
    operations: list[Any] = field(default_factory=list)
    running: list[Workload] = field(default_factory=list)  # not yet recorded
    _seeds: Iterator[int] = field(default_factory=lambda: itertools.count(101))

    @property
    def bootstrap(self) -> str:
        return self.settings.kafka_bootstrap_servers

    def topic(self, table: str) -> str:
        return f"{self.prefix}.public.{table}"

    @property
    def raw_topic(self) -> str:
        return self.topic("products")

    def workload(self, log_dir: Path, *, count: int, rate: float) -> Workload:
        """`seam legacy workload` in the background; `Workload.wait` records what it did."""
        workload = Workload(self, log_dir, count=count, rate=rate, seed=next(self._seeds))
        self.running.append(workload)
        return workload

    def settle(self) -> None:
        """Every workload started ended and recorded, also after a test that failed half-way:
        the next test's expectations start from the database as it is."""
        for workload in list(self.running):
            workload.wait()

    def pipeline(self, directory: Path, label: str, *, inputs: list[str] | None = None) -> Pipeline:
        """The example pipeline (legacy_db/pipelines/catalog.yaml) on this catalog's topics, with a group and outputs of its own."""
        tag = f"{label}-{uuid.uuid4().hex[:6]}"
        doc = pipeline_document()
        doc["group"] = f"seam-fault-{tag}"
        doc["inputs"] = inputs or [self.raw_topic]
        # The lookups' tables read this catalog's topics (the declaration derives them from
        # the input topic, which a test may rename).
        doc["tables"]["categories"]["topic"] = self.topic("categories")
        doc["tables"]["suppliers"]["topic"] = self.topic("suppliers")
        names = {k: f"seam-fault.{tag}.{k}" for k in ("history", "latest", "dead_letter")}
        for key, topic in names.items():
            doc["outputs"][key]["topic"] = topic
        path = directory / f"{tag}.yaml"
        path.write_text(yaml.safe_dump(doc))
        return Pipeline(
            path,
            doc["group"],
            names["history"],
            names["latest"],
            names["dead_letter"],
            doc["inputs"],
        )

    def remove(self, pipelines: list[Pipeline]) -> None:
        """Delete the pipelines' outputs (and their replays'), groups and own input topics."""
        from seam.streams.kafka import Kafka
        from seam.transforms.topics import delete_group

        topics = []
        for p in pipelines:
            topics += [*p.outputs, *(f"{t}.replay" for t in p.outputs)]
            topics += [t for t in p.inputs if t != self.raw_topic]
        delete_topics(self.settings, topics)
        with Kafka(self.bootstrap) as kafka:
            for p in pipelines:
                for group in (p.group, f"{p.group}.replay"):
                    with contextlib.suppress(Exception):
                        delete_group(kafka, group)

    def connector_running(self) -> bool:
        from seam.connectors.client import ConnectClient

        try:
            status = ConnectClient.from_settings(self.settings).status(self.connector)
        except Exception:  # Connect restarting
            return False
        tasks = status.get("tasks", [])
        return (
            status["connector"]["state"] == "RUNNING"
            and bool(tasks)
            and all(t["state"] == "RUNNING" for t in tasks)
        )

    def wait_connector(self, timeout: float = 120.0) -> float:
        return wait_for(self.connector_running, timeout, f"connector {self.connector} RUNNING")


class Workload:
    """`seam legacy workload --count N --rate R --report FILE` in its own process."""

    def __init__(self, catalog: Catalog, log_dir: Path, *, count: int, rate: float, seed: int):
        self.catalog = catalog
        self.report = log_dir / f"workload-{seed}.jsonl"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "seam.cli.main",
                "legacy",
                "workload",
                "--database",
                catalog.url,
                "--count",
                str(count),
                "--rate",
                f"{rate:g}",
                "--seed",
                str(seed),
                "--report",
                str(self.report),
                "--output",
                "json",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def wait(self, timeout: float = 180.0) -> int:
        """Its end (bounded); its operations join the catalog's record. How many it did."""
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        # Recorded even if it failed: they are in the database. (A workload killed or cut
        # off by a fault could leave one operation whose commit it never learnt of.)
        ops = [
            types.SimpleNamespace(**json.loads(line))
            for line in self.report.read_text().splitlines()
            if line.strip()
        ]
        if self in self.catalog.running:
            self.catalog.running.remove(self)
            self.catalog.operations.extend(ops)
        assert self.proc.returncode == 0, err.decode()[-2000:]
        return len(ops)


# --------------------------------------------------------------------------- the checks


def offsets(bootstrap: str, topic: str, group: str | None = None) -> dict[int, int]:
    """Per partition of `topic`: its end offset, or with `group` the group's committed offset
    (-1: none). Raises while the broker does not answer."""
    from confluent_kafka import Consumer, TopicPartition

    from seam.transforms.readback import watermarks

    consumer = Consumer(client_config(bootstrap, {"group.id": group or "seam-fault-ends"}))
    try:
        tps = [
            TopicPartition(topic, p)
            for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ]
        if group is not None:
            return {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)}
        return {tp.partition: watermarks(consumer, tp, 10)[1] for tp in tps}
    finally:
        consumer.close()


def group_caught_up(bootstrap: str, group: str, topics: list[str]) -> bool:
    """Whether `group` has committed every partition of `topics` up to its end."""
    try:
        for topic in topics:
            ends = offsets(bootstrap, topic)
            committed = offsets(bootstrap, topic, group)
            if any(end > 0 and committed.get(p, -1) < end for p, end in ends.items()):
                return False
        return True
    except Exception:  # the broker coming back
        return False


def wait_caught_up(
    worker: WorkerProcess, catalog: Catalog, pipeline: Pipeline, timeout: float = 120.0
) -> float:
    """Until the worker has committed everything the connector wrote for the workloads so
    far: the history holds at least the events they imply, and the group's offsets are at
    the end of the raw topic."""
    from confluent_kafka import KafkaException

    from seam.streams.kafka import KafkaUnavailableError, TopicNotFoundError
    from seam.transforms.readback import read_to_end

    want = sum(expected_events(catalog.initial, catalog.operations).values())

    def done() -> bool:
        if not worker.alive():
            raise AssertionError(f"the worker exited ({worker.proc.returncode}):\n{worker.tail()}")
        try:
            enough = len(read_to_end(catalog.bootstrap, pipeline.history, timeout=30)) >= want
        except (TopicNotFoundError, KafkaUnavailableError, KafkaException):  # a broker coming back
            return False
        return enough and group_caught_up(catalog.bootstrap, pipeline.group, pipeline.inputs)

    try:
        return wait_for(done, timeout, f"the worker to publish {want} events and catch up")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{worker.tail()}") from None


@dataclass
class Outcome:
    events: int
    aborted: int  # records of aborted transactions in the outputs (read_uncommitted only)
    repeats: int  # raw records Debezium wrote twice, all faults so far (`raw_repeats`)
    replay: dict[str, Any]


def replay(pipeline: Pipeline, suffix: str) -> dict[str, Any]:
    """`seam transform replay PIPELINE --suffix SUFFIX`: the same raw topics into new ones."""
    out = seam(
        "transform",
        "replay",
        str(pipeline.path),
        "--suffix",
        suffix,
        "--instance-id",
        "replay",
        "--output",
        "json",
    )
    summary: dict[str, Any] = json.loads(out)
    return summary


def _ids(records: list[Any]) -> list[str]:
    return [orjson.loads(r.value)["event_id"] for r in records]


def _twice(ids: list[str]) -> list[str]:
    return [i for i, n in Counter(ids).items() if n > 1]


def check_exactly_once(catalog: Catalog, pipeline: Pipeline, *, dead_letters: int = 0) -> Outcome:
    """The pipeline's outputs, read with read_committed, against a clean replay of its raw
    topics and against the legacy database:

    * history: no event id twice; the same event ids as the replay's history (nothing lost,
      nothing extra); the (product, event type) pairs the snapshot and the workloads imply;
    * latest: equal to the legacy products table cleaned, and to the replay's latest;
    * dead letters: as many as expected, from the same source records as the replay's;
    * the replay dropped exactly the raw records Debezium wrote twice.
    """
    from seam.transforms.readback import compacted, read_to_end

    bootstrap = catalog.bootstrap
    history = read_to_end(bootstrap, pipeline.history)
    ids = _ids(history)
    assert not _twice(ids), (
        f"{len(_twice(ids))} event ids twice in the history, e.g. {_twice(ids)[:3]}"
    )
    events = [orjson.loads(r.value) for r in history]
    got = Counter((e["product_id"], e["event_type"]) for e in events)
    want = expected_events(catalog.initial, catalog.operations)
    assert got == want, f"missing {want - got}, extra {got - want}"

    latest = {k.decode(): v for k, v in compacted(read_to_end(bootstrap, pipeline.latest)).items()}
    assert latest == legacy_latest(catalog.url), "the latest topic differs from the legacy table"
    dlq = read_to_end(bootstrap, pipeline.dead_letter)
    assert len(dlq) == dead_letters, [r.headers for r in dlq[:5]]

    suffix = ".replay"
    summary = replay(pipeline, suffix)
    assert_balanced(summary)
    # The replay reads the raw topic from its start: it drops exactly what Debezium wrote twice.
    repeats = raw_repeats(bootstrap, catalog.raw_topic)
    assert summary["redelivered"] == repeats, summary
    replayed = read_to_end(bootstrap, pipeline.history + suffix)
    replay_ids = _ids(replayed)
    assert not _twice(replay_ids), "the replay published an event id twice"
    assert set(ids) == set(replay_ids), (
        f"lost (in the replay only): {len(set(replay_ids) - set(ids))}, "
        f"extra (not in the replay): {len(set(ids) - set(replay_ids))}"
    )
    replay_latest = compacted(read_to_end(bootstrap, pipeline.latest + suffix))
    assert {k.decode(): v for k, v in replay_latest.items()} == latest
    replay_dlq = read_to_end(bootstrap, pipeline.dead_letter + suffix)
    assert [(r.headers["seam.source.offset"], r.headers["seam.reason"]) for r in dlq] == [
        (r.headers["seam.source.offset"], r.headers["seam.reason"]) for r in replay_dlq
    ]

    aborted = sum(
        len(read_to_end(bootstrap, topic, committed_only=False))
        - len(read_to_end(bootstrap, topic))
        for topic in pipeline.outputs
    )
    return Outcome(events=len(ids), aborted=aborted, repeats=repeats, replay=summary)


def raw_repeats(bootstrap: str, topic: str) -> int:
    """Change records of `topic` that repeat an earlier one of their partition (same source
    position, operation and key): what Debezium delivered twice. Worked out from the raw
    records alone, independently of the worker's marks."""
    from seam.transforms.readback import read_to_end

    seen: set[tuple[int, Any, str, bytes | None]] = set()
    repeats = 0
    for record in read_to_end(bootstrap, topic):
        if record.value is None:
            continue
        value = orjson.loads(record.value)
        change = value.get("payload", value)
        if change.get("op") not in ("c", "u", "d"):
            continue
        # The change's own log position (not `sequence`, whose first half is the previous
        # commit's: a re-delivery may see another one).
        mark = (record.partition, change["source"].get("lsn"), change["op"], record.key)
        if mark in seen:
            repeats += 1
        seen.add(mark)
    return repeats

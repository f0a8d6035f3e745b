"""kill -9 of Kafka Connect during a workload, then a restart: Debezium resumes from the last
offsets Connect had flushed and delivers again, at higher Kafka offsets, changes it had
already written. The worker drops each of them (counted as `redelivered`) and the history
holds every event once."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.kit import (
    Catalog,
    Pipeline,
    StackFaults,
    WorkerProcess,
    assert_balanced,
    check_exactly_once,
    raw_repeats,
    wait_caught_up,
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(420)]


def test_connect_killed_redelivered_changes_are_dropped(
    catalog: Catalog, pipelines: Callable[..., Pipeline], faults: StackFaults, tmp_path: Path
) -> None:
    pipeline = pipelines("connect-kill")
    before = raw_repeats(catalog.bootstrap, catalog.raw_topic)
    with WorkerProcess(pipeline.path, "w1", tmp_path) as worker:
        worker.wait(lambda lines: any(p["batches"] >= 1 for p in lines), 90, "a first batch")
        workload = catalog.workload(tmp_path, count=400, rate=40)
        time.sleep(4)  # Debezium streams the workload
        faults.kill("connect")
        time.sleep(1)
        faults.restart("connect")
        catalog.wait_connector()
        workload.wait()
        wait_caught_up(worker, catalog, pipeline, timeout=180)
        summary = worker.stop()
    assert_balanced(summary)
    outcome = check_exactly_once(catalog, pipeline)
    # What Debezium wrote twice, from the raw records alone: the worker dropped exactly those
    # (its summary counts the whole raw topic, read from its start).
    assert summary["redelivered"] == outcome.repeats, summary
    print(f"re-delivered by Debezium after the kill: {outcome.repeats - before}")

"""kill -9 of PostgreSQL (the postmaster; its backends end on their own) right after a burst
of legacy changes, while Debezium streams them and the worker is busy; then a restart (crash
recovery) and more changes. Debezium reconnects and goes on from its slot: nothing is lost,
and what it sends again is dropped by the worker."""

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


def test_postgres_killed_during_a_workload_loses_nothing(
    catalog: Catalog, pipelines: Callable[..., Pipeline], faults: StackFaults, tmp_path: Path
) -> None:
    pipeline = pipelines("postgres-kill")
    repeats = raw_repeats(catalog.bootstrap, catalog.raw_topic)
    with WorkerProcess(pipeline.path, "w1", tmp_path) as worker:
        worker.wait(lambda lines: any(p["batches"] >= 1 for p in lines), 90, "a first batch")
        # Committed before the kill (a workload cut by it could not tell whether its last
        # change committed): a burst that Debezium is still streaming when PostgreSQL dies.
        catalog.workload(tmp_path, count=300, rate=0).wait()
        faults.kill("postgres")
        time.sleep(2)
        faults.restart("postgres")
        catalog.workload(tmp_path, count=100, rate=50).wait()
        wait_caught_up(worker, catalog, pipeline, timeout=180)
        summary = worker.stop()
    assert_balanced(summary)
    assert catalog.connector_running()
    outcome = check_exactly_once(catalog, pipeline)
    # One worker read the raw topic from its start: it dropped what Debezium wrote twice.
    assert summary["redelivered"] == outcome.repeats, summary
    print(f"re-delivered after the restart: {outcome.repeats - repeats}; events {outcome.events}")

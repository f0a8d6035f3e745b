"""kill -9 of the Kafka broker and a restart, under a busy exactly-once worker (several times:
the worker used to block for ever in send_offsets_to_transaction, 3 tries of 4) and under an
idle one (it used to exit "cannot reach Kafka" broker_timeout after a short outage, although
the broker was back). The worker must never hang: after the broker's return it resumes on
its own, or exits non-zero with one clear message, within broker_timeout; SIGTERM works
during an outage. Afterwards the outputs are exactly once."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.catalog_checks import wait_for
from tests.faults.kit import (
    Catalog,
    Pipeline,
    StackFaults,
    WorkerProcess,
    assert_balanced,
    assert_one_clear_error,
    check_exactly_once,
    wait_caught_up,
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

BROKER_TIMEOUT = 30.0
# A call the broker never answers is given up broker_timeout + GRACE (5 s) after it began,
# which is before the broker's return; then a new producer and the batch again. The slack
# covers that and a loaded 2-core machine.
RESUME_BOUND = BROKER_TIMEOUT + 15.0
ROUNDS = 3


def _worker(pipeline: Pipeline, tmp_path: Path) -> WorkerProcess:
    return WorkerProcess(
        pipeline.path, "w1", tmp_path, "--broker-timeout", f"{BROKER_TIMEOUT:g}", interval=0.5
    )


def _batches(worker: WorkerProcess) -> int:
    lines = worker.progress()
    return lines[-1]["batches"] if lines else 0


def _busy(worker: WorkerProcess) -> None:
    """Until the worker commits batches again (two more than now: it has input)."""
    start = _batches(worker)
    worker.wait(lambda lines: bool(lines) and lines[-1]["batches"] >= start + 2, 120, "batches")


def _resumed_or_exited(worker: WorkerProcess, before: int, ready: float) -> str:
    """After the broker's return at `ready` (monotonic): 'resumed in N s' once the worker
    has committed two batches more than `before`, or 'exited: <its error>'; a worker that
    does neither within RESUME_BOUND hung (killed, and the test fails)."""
    while time.monotonic() - ready < RESUME_BOUND:
        if not worker.alive():
            assert worker.proc.returncode != 0, worker.tail()
            return f"exited after {time.monotonic() - ready:.1f}s: {assert_one_clear_error(worker)}"
        if _batches(worker) >= before + 2:
            return f"resumed after {time.monotonic() - ready:.1f}s"
        time.sleep(0.2)
    worker.kill()
    raise AssertionError(
        f"the worker neither resumed nor exited within {RESUME_BOUND:g}s of the broker's "
        f"return (hung):\n{worker.tail()}"
    )


def test_broker_killed_under_a_busy_worker_it_never_hangs(
    catalog: Catalog, pipelines: Callable[..., Pipeline], faults: StackFaults, tmp_path: Path
) -> None:
    pipeline = pipelines("broker-busy")
    worker = _worker(pipeline, tmp_path)
    report = []
    try:
        for _ in range(ROUNDS):
            if not worker.alive():  # it exited after the last outage: an operator restarts it
                worker = _worker(pipeline, tmp_path)
            # A burst of legacy changes: the worker is busy when the broker dies, and has the
            # rest of them to do when it returns.
            burst = catalog.workload(tmp_path, count=150, rate=30)
            _busy(worker)
            before = _batches(worker)
            killed = time.monotonic()
            faults.kill("kafka")
            time.sleep(2)
            ready = faults.restart("kafka")
            outcome = _resumed_or_exited(worker, before, ready)
            report.append(f"outage {ready - killed:.1f}s, {outcome}")
            burst.wait()

        # SIGTERM during an outage: acted on at once; the batch in progress cannot finish,
        # so the worker stops once its broker call gives up (a second signal: at once).
        if not worker.alive():
            worker = _worker(pipeline, tmp_path)
        burst = catalog.workload(tmp_path, count=150, rate=30)
        _busy(worker)
        faults.kill("kafka")
        time.sleep(2)
        signalled = time.monotonic()
        worker.signal(signal.SIGTERM)
        wait_for(
            lambda: "SIGTERM: finishing the current batch" in worker.text() or not worker.alive(),
            5,
            "the worker to act on SIGTERM",
            step=0.1,
        )
        if worker.alive():
            time.sleep(5)
            if worker.alive():
                worker.signal(signal.SIGTERM)
        worker.wait_exit(20, "SIGTERM (twice)")
        report.append(
            f"SIGTERM during the outage: exit {worker.proc.returncode} "
            f"after {time.monotonic() - signalled:.1f}s"
        )
        if worker.proc.returncode != 0:
            assert_one_clear_error(worker)
        faults.restart("kafka")
        burst.wait()
        with _worker(pipeline, tmp_path) as worker:
            wait_caught_up(worker, catalog, pipeline, timeout=180)
            summary = worker.stop()
    finally:
        if worker.alive():
            worker.kill()
    print("\n".join(report))
    assert_balanced(summary)
    check_exactly_once(catalog, pipeline)


def test_broker_outage_does_not_stop_an_idle_worker(
    catalog: Catalog, pipelines: Callable[..., Pipeline], faults: StackFaults, tmp_path: Path
) -> None:
    pipeline = pipelines("broker-idle")
    with _worker(pipeline, tmp_path) as worker:
        wait_caught_up(worker, catalog, pipeline)  # then idle: no input
        faults.kill("kafka")
        time.sleep(3)
        ready = faults.restart("kafka")
        # Past broker_timeout after the broker's return, the worker still runs.
        while time.monotonic() - ready < BROKER_TIMEOUT + 10:
            assert worker.alive(), f"the idle worker exited after the outage:\n{worker.tail()}"
            time.sleep(0.5)
        assert "cannot reach Kafka" not in worker.text()
        # ... and still works.
        catalog.workload(tmp_path, count=40, rate=0).wait()
        wait_caught_up(worker, catalog, pipeline)
        summary = worker.stop()
    assert_balanced(summary)
    check_exactly_once(catalog, pipeline)

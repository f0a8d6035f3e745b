"""kill -9 of the Kafka broker and a restart, under a busy exactly-once worker (several times:
the worker used to block for ever in send_offsets_to_transaction, 3 tries of 4) and under an
idle one (it used to exit "cannot reach Kafka" broker_timeout after a short outage, although
the broker was back). The worker must never hang: after the broker's return it resumes on
its own, or exits non-zero with one clear message, within broker_timeout; SIGTERM works
during an outage. Afterwards the outputs are exactly once."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from seam.settings import Settings
from tests.catalog_checks import wait_for
from tests.faults.kit import (
    Catalog,
    Pipeline,
    StackFaults,
    WorkerProcess,
    assert_balanced,
    assert_one_clear_error,
    check_exactly_once,
    offsets,
    wait_caught_up,
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

BROKER_TIMEOUT = 20.0  # longer than most outages here (a restart takes ~10-15 s)
# A broker call that never returns (librdkafka #5456/#5511) is given up broker_timeout + 5 s
# after it began, and it begins only once the worker is back in its group, some seconds
# after the broker's return: the bound for "never hangs" allows for that.
NEVER_HANGS = BROKER_TIMEOUT + 5.0 + 20.0
ROUNDS = 2
IDLE_TIMEOUT = 45.0  # well above the outage (15-23 s measured here, under load)


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


def _resumed_or_exited(
    worker: WorkerProcess, catalog: Catalog, pipeline: Pipeline, ends: dict[int, int], ready: float
) -> str:
    """After the broker's return at `ready` (monotonic): 'resumed after N s' once the worker
    has committed the raw topic up to an end beyond `ends` (its end at the kill: so it
    committed after the return), or 'exited: <its error>'. A worker that does neither within
    NEVER_HANGS hung (it is killed, and the test fails)."""
    while time.monotonic() - ready < NEVER_HANGS:
        if not worker.alive():
            assert worker.proc.returncode != 0, worker.tail()
            return f"exited after {time.monotonic() - ready:.1f}s: {assert_one_clear_error(worker)}"
        with contextlib.suppress(Exception):  # the broker still coming back
            now = offsets(catalog.bootstrap, catalog.raw_topic)
            committed = offsets(catalog.bootstrap, catalog.raw_topic, pipeline.group)
            if sum(now.values()) > sum(ends.values()) and all(
                committed[p] >= end for p, end in now.items()
            ):
                return f"resumed after {time.monotonic() - ready:.1f}s"
        time.sleep(0.5)
    worker.kill()
    raise AssertionError(
        f"the worker neither resumed nor exited within {NEVER_HANGS:g}s of the broker's "
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
            burst = catalog.workload(tmp_path, count=200, rate=25)
            _busy(worker)
            ends = offsets(catalog.bootstrap, catalog.raw_topic)
            killed = time.monotonic()
            faults.kill("kafka")
            time.sleep(1)
            ready = faults.restart("kafka")
            outcome = _resumed_or_exited(worker, catalog, pipeline, ends, ready)
            stuck = worker.text().count(
                "batch failed (adding the input offsets to the transaction did not return"
            )
            report.append(
                f"outage {ready - killed:.1f}s, {outcome} (send_offsets given up so far: {stuck})"
            )
            burst.wait()

        # SIGTERM during an outage: acted on at once; the batch in progress cannot finish,
        # so the worker stops once its broker call gives up (a second signal: at once).
        if not worker.alive():
            worker = _worker(pipeline, tmp_path)
        burst = catalog.workload(tmp_path, count=200, rate=25)
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
        signals = 1
        if worker.alive():
            time.sleep(5)
            if worker.alive():
                worker.signal(signal.SIGTERM)
                signals = 2
        worker.wait_exit(20, "SIGTERM (twice)")
        report.append(
            f"SIGTERM during the outage ({signals}x): exit {worker.proc.returncode} "
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


@dataclass
class IdleOutage:
    """An idle worker through a broker outage, then a few changes."""

    worker: WorkerProcess
    pipeline: Pipeline
    outage: float  # seconds from the kill to the broker serving again
    exited_after: float | None  # seconds after the broker's return, if the worker exited
    first_changes: float | None  # seconds from the changes after the outage to their output


@pytest.fixture(scope="module")
def idle_outage(
    catalog: Catalog, private_stack: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IdleOutage]:
    """A worker caught up and idle; kill -9 of the broker and a restart; broker_timeout + 5 s
    of waiting; then a few legacy changes, until their events are out (bounded)."""
    tmp_path = tmp_path_factory.mktemp("idle")
    faults = StackFaults(private_stack)
    pipeline = catalog.pipeline(tmp_path, "broker-idle")
    worker = WorkerProcess(pipeline.path, "w1", tmp_path, "--broker-timeout", f"{IDLE_TIMEOUT:g}")
    try:
        wait_caught_up(worker, catalog, pipeline)  # then idle: no input
        killed = time.monotonic()
        faults.kill("kafka")
        time.sleep(1)
        ready = faults.restart("kafka")
        exited_after = first_changes = None
        while time.monotonic() - ready < IDLE_TIMEOUT + 5:
            if not worker.alive():
                exited_after = time.monotonic() - ready
                break
            time.sleep(0.5)
        if exited_after is None:
            catalog.workload(tmp_path, count=40, rate=0).wait()
            with contextlib.suppress(AssertionError):
                first_changes = wait_caught_up(worker, catalog, pipeline, timeout=120)
        yield IdleOutage(worker, pipeline, ready - killed, exited_after, first_changes)
    finally:
        if worker.alive():
            worker.kill()
        catalog.settle()
        catalog.remove([pipeline])
        faults.restore()


def test_broker_outage_does_not_stop_an_idle_worker(
    catalog: Catalog, idle_outage: IdleOutage
) -> None:
    o = idle_outage
    # It used to exit "cannot reach Kafka" broker_timeout after the outage began although
    # the broker was back: broker_timeout + 5 s after the broker's return it still ran ...
    assert o.exited_after is None, (
        f"the idle worker exited {o.exited_after:.1f}s after the broker's return "
        f"(outage {o.outage:.1f}s):\n{o.worker.tail()}"
    )
    assert "cannot reach Kafka" not in o.worker.text()
    # ... and then published what changed.
    assert o.first_changes is not None, o.worker.tail()
    summary = o.worker.stop()
    print(
        f"idle worker: outage {o.outage:.1f}s; the first changes after it out in "
        f"{o.first_changes:.1f}s"
    )
    assert_balanced(summary)
    outcome = check_exactly_once(catalog, o.pipeline)
    assert summary["redelivered"] == outcome.repeats, summary


def test_first_changes_after_a_broker_outage_are_published_promptly(
    idle_outage: IdleOutage,
) -> None:
    # Normally 1-2 s: Debezium's leg, then one transaction.
    assert idle_outage.first_changes is not None
    assert idle_outage.first_changes <= 10.0, idle_outage.worker.tail()

"""Fresh: callers that need a value at least as fresh as a moment share one fetch."""

from __future__ import annotations

import threading
import time

import pytest

from seam.services.fresh import Fresh

pytestmark = pytest.mark.unit


def test_concurrent_callers_share_a_fetch_that_began_after_their_moment() -> None:
    calls: list[float] = []

    def fetch() -> int:
        calls.append(time.monotonic())
        time.sleep(0.05)
        return len(calls)

    fresh = Fresh(fetch)
    moment = time.monotonic()
    got: list[int] = []
    threads = [threading.Thread(target=lambda: got.append(fresh.get(moment))) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert got == [1] * 20
    assert len(calls) == 1
    # A caller whose moment is after the last fetch began gets a new one.
    assert fresh.get(time.monotonic()) == 2
    assert fresh.get(moment) == 2  # the newest value is fresh enough for older moments


def test_a_failed_fetch_raises_and_the_next_caller_fetches_again() -> None:
    outcomes = iter([RuntimeError("broker down"), 7])

    def fetch() -> int:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    fresh = Fresh(fetch)
    with pytest.raises(RuntimeError, match="broker down"):
        fresh.get(time.monotonic())
    assert fresh.get(time.monotonic()) == 7

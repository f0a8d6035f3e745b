"""Signal: waiters resolve when a fire from another thread finds their check true."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from seam.services.signal import Signal

pytestmark = pytest.mark.unit


def test_waiters_wake_on_fire_from_another_thread_or_time_out() -> None:
    signal = Signal()
    state = {"n": 0}

    def bump() -> None:
        for _ in range(5):
            time.sleep(0.02)
            state["n"] += 1
            signal.fire()

    async def scenario() -> tuple[list[bool], bool, float]:
        thread = threading.Thread(target=bump)
        waits = [signal.until(lambda k=k: state["n"] >= k, 5.0) for k in (1, 3, 5)]
        thread.start()
        got = await asyncio.gather(*waits)
        thread.join()
        began = time.monotonic()
        never = await signal.until(lambda: state["n"] >= 99, 0.1)
        return list(got), never, time.monotonic() - began

    got, never, waited = asyncio.run(scenario())
    assert got == [True, True, True]
    assert never is False
    assert 0.1 <= waited < 1.0

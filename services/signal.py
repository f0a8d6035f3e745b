"""Wake the coroutines of one event loop from another thread (the loader, the poller).

Hundreds of requests may wait at once for a position: each polling on a timer would cost
hundreds of thousands of wake-ups a second. They await one shared future instead, which
`fire()` (from any thread) resolves once per event; each then checks its own condition.
"""

from __future__ import annotations

import asyncio
import contextlib


class Signal:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._future: asyncio.Future[None] | None = None
        self.waiting = 0

    async def wait(self, timeout: float) -> None:
        """Return at the next `fire()`, or after `timeout` s (a fire missed in a race costs
        at most that)."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        if self._future is None or self._future.done():
            self._future = loop.create_future()
        future = self._future
        self.waiting += 1
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(future), max(0.0, timeout))
        finally:
            self.waiting -= 1

    def fire(self) -> None:
        """Wake every waiter (callable from any thread; nothing to do when none waits)."""
        loop = self._loop
        if loop is None or self.waiting == 0 or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._resolve)

    def _resolve(self) -> None:
        if self._future is not None and not self._future.done():
            self._future.set_result(None)

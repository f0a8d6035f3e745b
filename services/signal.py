"""Wake the requests waiting for a position, from the thread that moved it.

Hundreds of requests may wait at once (read-your-writes at hundreds of commits a second).
Each registers a check and a future; `fire()` (from any thread: the loader after a batch,
the marks poller after a read) schedules one pass over the registered checks on the event
loop, which resolves the futures whose check now holds. A pass costs a microsecond or so a
waiter; nothing polls on a timer, and no task is made per wake-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable


class Signal:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: dict[int, tuple[Callable[[], bool], asyncio.Future[bool]]] = {}
        self._ids = itertools.count()
        self._scheduled = False

    async def until(self, check: Callable[[], bool], timeout: float) -> bool:
        """True once `check()` holds (checked now and at every fire), False after `timeout` s."""
        if check():
            return True
        if timeout <= 0:
            return False
        loop = asyncio.get_running_loop()
        self._loop = loop
        future: asyncio.Future[bool] = loop.create_future()
        key = next(self._ids)
        self._waiters[key] = (check, future)
        timer = loop.call_later(timeout, _resolve, future, False)
        try:
            if check():  # moved after the first check, before a fire could see this waiter
                return True
            return await future
        finally:
            timer.cancel()
            self._waiters.pop(key, None)

    def fire(self) -> None:
        """Check the waiters again (callable from any thread; free when none waits)."""
        loop = self._loop
        if loop is None or not self._waiters or self._scheduled or loop.is_closed():
            return
        self._scheduled = True
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._check)

    def _check(self) -> None:
        self._scheduled = False
        for check, future in list(self._waiters.values()):
            if not future.done() and check():
                future.set_result(True)


def _resolve(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)

"""A value read from the broker, shared by every caller that needs one at least as fresh.

Read-your-writes requests each need "the end offsets as of after my position was passed".
Fetched once per request, a hundred requests a second would cost hundreds of broker round
trips; `Fresh.get(after)` returns the result of a fetch that began after `after`, starting
one only when none is running that qualifies: concurrent callers share one round trip.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Fresh(Generic[T]):
    def __init__(self, fetch: Callable[[], T]) -> None:
        self._fetch = fetch
        self._changed = threading.Condition()
        self._value: T | None = None
        self._value_began = float("-inf")  # when the fetch that gave `_value` began
        self._running_began: float | None = None

    def get(self, after: float) -> T:
        """A value fetched by a fetch that began after the monotonic time `after`."""
        with self._changed:
            while True:
                if self._value is not None and self._value_began >= after:
                    return self._value
                if self._running_began is None:
                    began = self._running_began = time.monotonic()
                    break
                self._changed.wait()  # a fetch runs: it may do, or the next one will
        try:
            value = self._fetch()
        except BaseException:
            with self._changed:
                self._running_began = None
                self._changed.notify_all()
            raise
        with self._changed:
            self._value, self._value_began = value, began
            self._running_began = None
            self._changed.notify_all()
        return value

"""Blocking Kafka client calls, bounded whatever the client does.

librdkafka does not always honour its own timeouts: `send_offsets_to_transaction` can block
forever once the group coordinator has gone away and come back (confluentinc/librdkafka
#5456, #5511), and a synchronous offset commit waits with no timeout at all. A call that
never returns would hang the worker: no progress, no exit, signals never acted on. So each
call that waits on the broker runs on a helper thread of its own while the worker's thread
waits for it, bounded, and stays responsive to signals meanwhile.

A call that has not returned by its deadline is abandoned: its thread is left blocked
(a daemon thread: it never keeps the process alive) and the client it was using must not
be used again; the caller replaces it (`seam.transforms.delivery`). A call may also be
interrupted by an event (the worker's second Ctrl-C / SIGTERM).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

T = TypeVar("T")

# Beyond a call's own timeout: a call that honours it returns its own error first.
GRACE: Final = 5.0  # at most; a short call gets as long again
_WAIT_STEP: Final = 0.25  # how often the waiting thread looks at the interrupt event


class CallTimedOutError(Exception):
    """A client call did not return by its deadline; its client is unusable."""

    def __init__(self, what: str, seconds: float) -> None:
        super().__init__(f"{what} did not return within {seconds:g}s")
        self.what = what
        self.seconds = seconds


class CallInterruptedError(Exception):
    """The wait for a client call was given up on request (a second stop signal)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"stopped while {what}")
        self.what = what


def bounded(
    what: str,
    seconds: float,
    call: Callable[..., T],
    *args: Any,
    interrupt: threading.Event | None = None,
    **kwargs: Any,
) -> T:
    """`call(*args, **kwargs)`, or CallTimedOutError once `seconds` (and a grace of as
    long again, at most GRACE) have passed,
    or CallInterruptedError once `interrupt` is set. Exceptions of the call are raised
    here as they are."""
    done = threading.Event()
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append((True, call(*args, **kwargs)))
        except BaseException as exc:  # handed to the waiting thread, raised there
            outcome.append((False, exc))
        finally:
            done.set()

    threading.Thread(target=target, name=f"seam-call: {what}", daemon=True).start()
    limit = seconds + min(GRACE, seconds)
    deadline = time.monotonic() + limit
    # Waits are short so that signal handlers run and the interrupt is seen promptly.
    while not done.wait(_WAIT_STEP):
        if interrupt is not None and interrupt.is_set():
            raise CallInterruptedError(what)
        if time.monotonic() >= deadline:
            raise CallTimedOutError(what, limit)
    ok, value = outcome[0]
    if ok:
        return value  # type: ignore[no-any-return]
    raise value

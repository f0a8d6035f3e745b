"""The worker's producer: produces the outputs and, exactly once, owns the transactions.

Every call that waits on the broker is bounded (`seam.transforms.calls`). What goes wrong
with a batch is sorted into three kinds, each with its own remedy in the worker:

* `BatchFailedError`: the batch could not be delivered (a produce failed, a commit timed
  out, the broker said abort). The transaction is aborted and the batch is read again.
* `ProducerLostError`: the producer cannot be used again: it failed fatally (an
  idempotence or transaction state it cannot leave), or a call of it never returned (the
  librdkafka hang). It is replaced (`renew`): a new producer with the same transactional
  id fences the old one, and the broker aborts whatever transaction the old one had open,
  so nothing it produced becomes visible.
* `FencedError`: the broker says another producer has taken over this transactional id.
  That is true when another worker runs with the same instance id; the worker checks the
  group before believing it (a coordinator that lost its state can fence too).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any, Final

from seam.text import plural
from seam.transforms.calls import CallInterruptedError, CallTimedOutError, bounded

log = logging.getLogger("seam.transform")

_COMMIT_ATTEMPTS: Final = 10


class BatchFailedError(Exception):
    """The batch was not delivered; abort it and read it again."""


class ProducerLostError(Exception):
    """The producer cannot be used again; renew it, then read the batch again."""


class FencedError(Exception):
    """The broker fenced this producer: another one uses its transactional id."""


def _fenced_codes() -> frozenset[int]:
    from confluent_kafka import KafkaError

    return frozenset(
        {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}
    )


def describe(exc: BaseException) -> str:
    """The client's own words for a KafkaException (or the exception's)."""
    error: Any = exc.args[0] if exc.args else None
    return str(error.str()) if hasattr(error, "str") else str(exc)


def classify(exc: BaseException) -> Exception:
    """One of the three kinds above for a failure of a producer call (an interrupted wait
    stays what it is: the worker stops)."""
    if isinstance(exc, BatchFailedError | ProducerLostError | FencedError | CallInterruptedError):
        return exc
    if isinstance(exc, CallTimedOutError):
        return ProducerLostError(str(exc))
    error: Any = exc.args[0] if exc.args else None
    code = error.code() if hasattr(error, "code") else None
    if code in _fenced_codes():
        return FencedError(describe(exc))
    if hasattr(error, "fatal") and error.fatal():
        return ProducerLostError(f"the producer failed fatally: {describe(exc)}")
    return BatchFailedError(describe(exc))


class Delivery:
    """One producer at a time, made by `make_producer`; `renew` replaces it."""

    def __init__(
        self,
        make_producer: Callable[[], Any],
        *,
        transactional: bool,
        timeout: float,
        interrupt: threading.Event,
    ) -> None:
        self._make = make_producer
        self.transactional = transactional
        self.timeout = timeout
        self._interrupt = interrupt
        self.producer: Any = None
        self._errors: list[str] = []
        self._in_transaction = False

    def _call(self, what: str, call: Callable[..., Any], *args: Any) -> Any:
        return bounded(what, self.timeout, call, *args, interrupt=self._interrupt)

    def on_delivery(self, err: Any, msg: Any) -> None:
        """The producer's delivery callback (failures only): they fail the batch."""
        if err is not None:
            self._errors.append(f"{msg.topic()}: {err.str()}")

    @property
    def ready(self) -> bool:
        return self.producer is not None

    def start(self) -> None:
        """Make the producer (and, transactional, fence and abort what a predecessor with
        the same transactional id left open)."""
        producer = self._make()
        self.producer = producer
        self._in_transaction = False
        if not self.transactional:
            return
        try:
            self._call("initialising transactions", producer.init_transactions, self.timeout)
        except Exception as exc:
            self._drop()
            raise classify(exc) from None

    def renew(self, reason: str) -> None:
        """Replace a producer that cannot be used again; raises what `start` raises."""
        log.warning("replacing the producer: %s", reason)
        self._drop()
        self.start()

    def _drop(self) -> None:
        """Let go of the producer, off the worker's thread: destroying a client waits for
        its threads, and one whose call never returned may never let them finish. (A call
        still blocked in it keeps it alive; it goes when that call returns, if ever.)"""
        holder, self.producer = [self.producer], None
        self._in_transaction = False
        if holder[0] is not None:
            threading.Thread(
                target=holder.clear, name="seam: releasing a producer", daemon=True
            ).start()

    def begin(self) -> None:
        self._errors.clear()
        if not self.transactional:
            return
        try:
            self.producer.begin_transaction()  # local: no broker round trip
        except Exception as exc:
            raise classify(exc) from None
        self._in_transaction = True

    def produce(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Any = None
    ) -> None:
        produce_when_room(self.producer, topic, key, value, headers)

    def commit(self, offsets: list[Any], group_metadata: Any) -> None:
        """Exactly once: the batch's input offsets join the transaction, which commits."""
        producer = self.producer
        try:
            self._call(
                "adding the input offsets to the transaction",
                producer.send_offsets_to_transaction,
                offsets,
                group_metadata,
                self.timeout,
            )
            for _ in range(_COMMIT_ATTEMPTS):
                try:
                    self._call(
                        "committing the transaction", producer.commit_transaction, self.timeout
                    )
                    break
                except CallTimedOutError:
                    raise
                except Exception as exc:
                    error: Any = exc.args[0] if exc.args else None
                    if (
                        hasattr(error, "retriable")
                        and error.retriable()
                        and not error.txn_requires_abort()
                    ):
                        continue
                    raise
            else:
                raise BatchFailedError("committing the transaction kept timing out")
        except Exception as exc:
            raise classify(exc) from None
        self._in_transaction = False
        if self._errors:  # a failed delivery aborts the commit; this is belt and braces
            raise BatchFailedError(self._errors[0])

    def flush(self) -> None:
        """At least once: every record of the batch acknowledged, or BatchFailedError."""
        try:
            remaining = self._call("flushing the producer", self.producer.flush, self.timeout)
        except Exception as exc:
            raise classify(exc) from None
        if remaining:
            raise BatchFailedError(f"{plural(remaining, 'record')} not delivered in time")
        if self._errors:
            raise BatchFailedError(self._errors[0])

    def abort(self) -> None:
        """Abort the open transaction; a producer that cannot abort is replaced later."""
        if not self.transactional or not self._in_transaction or self.producer is None:
            return
        try:
            self._call("aborting the transaction", self.producer.abort_transaction, self.timeout)
            self._in_transaction = False
        except Exception as exc:
            log.warning("aborting the transaction failed (%s): the producer is replaced", exc)
            self._drop()

    def close(self) -> None:
        """Abort an open transaction, or deliver what is queued; bounded. Drops the producer."""
        producer, self.producer = self.producer, None
        if producer is None:
            return
        with contextlib.suppress(Exception):
            if self._in_transaction:
                bounded("aborting the transaction", 5.0, producer.abort_transaction, 5.0)
            else:
                bounded("flushing the producer", 5.0, producer.flush, 5.0)
        self._in_transaction = False


def produce_when_room(
    producer: Any, topic: str, key: bytes | None, value: bytes | None, headers: Any = None
) -> None:
    """Produce one record, serving delivery reports while the local queue is full (the one
    retry of a produce call: a full queue is back-pressure, never a failure)."""
    try:  # the usual case first: one call, no loop
        producer.produce(topic, value, key, headers=headers)
    except BufferError:
        while True:
            producer.poll(0.05)
            try:
                producer.produce(topic, value, key, headers=headers)
                return
            except BufferError:
                continue

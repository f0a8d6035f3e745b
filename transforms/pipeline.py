"""Run one source record through a pipeline's stages: pure, no Kafka.

`Pipeline.run(raw) -> Outcome` never raises. The outcome is one of:
* `Produced`: the items that came out of the last stage (events and/or latest writes);
* `Rejected`: the stage and reason (a `Reject`, or any exception a stage raised: a bug in
  that stage, `error` naming its type), the record goes to the dead-letter topic;
* `Produced` with no event: `note` says why the record yields no event (`zero_reason`).

A stage's bugs are not silent: `Pipeline.errors` (`StageErrors`) logs the first traceback of
each stage and error type, then sums up the later ones in the log at most once a minute. The
worker counts them in its summary and stops past the pipeline's `max_stage_errors`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from seam.changes import ChangeEvent, RawRecord
from seam.errors import SeamError
from seam.transforms.model import Item, ObservesReference, Reject, Stage

NO_OUTPUT: Final = "no output from stage"
SUMMARY_INTERVAL: Final = 60.0  # seconds between log lines summing up a stage's later errors

log = logging.getLogger("seam.transform.stages")


@dataclass(frozen=True, slots=True)
class Produced:
    items: list[Item]

    @property
    def events(self) -> list[Item]:
        return [i for i in self.items if i.event is not None]

    @property
    def zero_reason(self) -> str | None:
        """Why this record yields no event (None when it yields some)."""
        if any(i.event is not None for i in self.items):
            return None
        for item in self.items:
            if item.note:
                return item.note
        return NO_OUTPUT if not self.items else "no event"


@dataclass(frozen=True, slots=True)
class Rejected:
    stage: str
    reason: str
    error: str | None = None  # the exception's type when the stage raised (a bug), not a Reject


Outcome = Produced | Rejected


def error_text(exc: BaseException) -> str:
    """`Type: message` (`Type` alone without one), even when str(exc) itself fails."""
    try:
        message = str(exc)
    except Exception:
        message = "<the exception's message could not be shown>"
    kind = type(exc).__name__
    return f"{kind}: {message}" if message else kind


class StageErrorLimitError(SeamError):
    """The stages raised on more records than the pipeline allows (max_stage_errors)."""


@dataclass
class _Seen:
    first: str  # the first error's text
    count: int = 1  # records, since the worker started (a batch run twice counts twice)
    logged: int = 1  # of count, those the log has told about
    logged_at: float = 0.0


class StageErrors:
    """What the stages raised: the first traceback of each (stage, error type) is logged;
    later ones are counted and summed up in the log at most every `interval` seconds."""

    def __init__(
        self, interval: float = SUMMARY_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self.clock = clock
        self.seen: dict[tuple[str, str], _Seen] = {}

    def record(self, stage: str, exc: Exception, raw: RawRecord) -> None:
        kind, text = type(exc).__name__, error_text(exc)
        seen = self.seen.get((stage, kind))
        now = self.clock()
        if seen is None:
            self.seen[(stage, kind)] = _Seen(text, logged_at=now)
            log.error(
                "stage '%s' raised %s on %s[%d]@%d; the record goes to the dead-letter topic. "
                "A bug in the stage (a record it refuses should raise Reject): its later %s "
                "errors are counted and summed up here at most every %gs",
                stage,
                text,
                raw.topic,
                raw.partition,
                raw.offset,
                kind,
                self.interval,
                exc_info=exc,
            )
            return
        seen.count += 1
        if now - seen.logged_at >= self.interval:
            log.error(
                "stage '%s' raised %s on %d more records (%d so far), the last: %s",
                stage,
                kind,
                seen.count - seen.logged,
                seen.count,
                text,
            )
            seen.logged, seen.logged_at = seen.count, now

    def describe(self) -> str:
        """The errors seen, e.g. `stage 'x' ValueError: bad (3 records), ...` (first text)."""
        return ", ".join(
            f"stage '{stage}' {seen.first} ({seen.count} record{'s' if seen.count > 1 else ''})"
            for (stage, _kind), seen in self.seen.items()
        )


class Pipeline:
    """Stages in order."""

    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = tuple(stages)
        self.errors = StageErrors()
        self.reference_stages = tuple(s for s in self.stages if isinstance(s, ObservesReference))

    @property
    def reference_topics(self) -> list[str]:
        topics: list[str] = []
        for stage in self.reference_stages:
            topics.extend(t for t in stage.reference_topics if t not in topics)
        return topics

    def observe(self, record: RawRecord) -> None:
        """A reference-topic record, for every stage that keeps reference data."""
        for stage in self.reference_stages:
            if record.topic in stage.reference_topics:
                stage.observe(record)

    def run(self, raw: RawRecord, change: ChangeEvent | None = None) -> Outcome:
        """`change`: the record already decoded (the worker decodes once, for its
        re-delivery check); the decode stage then keeps it."""
        return self.resume(raw, [Item(raw, change)])

    def resume(
        self, raw: RawRecord, items: list[Item], start: int = 0, stop: int | None = None
    ) -> Outcome:
        """`items` of `raw` through the stages from index `start` on (to `stop`, exclusive:
        the items that come out of it are `Produced`). The compiled engine hands the Python
        stages between its parts the items the stages before them would have made."""
        stages = self.stages if start == 0 and stop is None else self.stages[start:stop]
        for stage in stages:
            try:
                if len(items) == 1:  # the usual case (one record, one item): no loop
                    out = list(stage.process(items[0]))
                else:
                    out = []
                    for item in items:
                        out.extend(stage.process(item))
            except Reject as exc:
                return Rejected(stage.name, exc.reason)
            except Exception as exc:  # a bug in a stage: dead-letter the record, keep going
                self.errors.record(stage.name, exc, raw)
                return Rejected(stage.name, f"stage raised {error_text(exc)}", type(exc).__name__)
            items = out
            if not items:
                break
        return Produced(items)

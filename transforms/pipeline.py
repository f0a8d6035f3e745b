"""Run one source record through a pipeline's stages: pure, no Kafka.

`Pipeline.run(raw) -> Outcome` never raises. The outcome is one of:
* `Produced`: the items that came out of the last stage (events and/or latest writes);
* `Rejected`: the stage and reason (a `Reject`, or any exception a stage raised: a bug in
  that stage must not stop the worker), the record goes to the dead-letter topic;
* `Produced` with no event: `note` says why the record yields no event (`zero_reason`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from seam.streams.decode import ChangeEvent, RawRecord
from seam.transforms.model import Item, ObservesReference, Reject, Stage

NO_OUTPUT: Final = "no output from stage"


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


Outcome = Produced | Rejected


class Pipeline:
    """Stages in order."""

    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = tuple(stages)
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
        items = [Item(raw, change)]
        for stage in self.stages:
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
                return Rejected(stage.name, f"stage raised {type(exc).__name__}: {exc}")
            items = out
            if not items:
                break
        return Produced(items)

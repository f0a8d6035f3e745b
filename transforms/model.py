"""What flows through a pipeline, and the one contract every stage follows.

The contract
------------
A stage is an object with a `name` and a method `process(item) -> Iterable[Item]`:

* it returns the items that go on to the next stage: usually one (the same item changed,
  or a copy), several (the map stage turns one change into several domain events) or none
  (the record legitimately yields nothing; set `Item.note` on an item instead when you want
  the reason counted, see below);
* it raises `Reject(reason)` when the record cannot be processed (a value no rule can fix,
  an event that breaks its schema): the whole source record then goes to the dead-letter
  topic with the stage name and the reason, and nothing it produced is published;
* it is pure: no I/O, no clock, no randomness. Reference data the stage needs arrives
  through `observe()` (see `ObservesReference`), fed by the worker.

Any other exception raised by a stage is a bug in that stage; the pipeline still turns it
into a dead letter (reason: the exception) so that one bad record never stops a worker.

An item with `event` set is a domain event for the history topic. An item with
`latest_key` set writes `state` (or a tombstone when `state` is None) to the latest topic.
An item with neither is a record that yields no output; `note` says why (tombstone,
reference table, no-op update, ...), and the worker counts it so that records in =
records with events + dead letters + records with no events.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from seam.changes import ChangeEvent, RawRecord


class Reject(Exception):  # noqa: N818 - a verdict, not an error condition of the caller
    """The record cannot be processed: it goes to the dead-letter topic with `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class Item:
    """One source record on its way through the stages (or one domain event of it)."""

    raw: RawRecord
    change: ChangeEvent | None = None  # set by decode
    table: str | None = None  # the captured table's plain name (orders, customers, ...)
    before: dict[str, Any] | None = None  # cleaned old row (None: unknown or create)
    after: dict[str, Any] | None = None  # cleaned new row (None: delete or tombstone)
    provenance: dict[str, Any] | None = None  # set by the events stage (or a user stage)
    event: dict[str, Any] | None = None  # a domain event (set by map)
    # The entity's key: `state` is written under it to the latest topic, and it keys the
    # event on the history topic unless the pipeline names an event field (outputs.history.key).
    latest_key: str | None = None
    state: dict[str, Any] | None = None  # the entity's new state; None with a key: tombstone
    note: str | None = None  # why this record yields no event (counted by the worker)
    extra: dict[str, Any] = field(default_factory=dict)  # for user stages


@runtime_checkable
class Stage(Protocol):
    """One step of a pipeline. See the module docstring for the contract."""

    name: str

    def process(self, item: Item) -> Iterable[Item]: ...


@runtime_checkable
class ObservesReference(Protocol):
    """A stage that keeps reference data current from change topics of its own.

    Every worker reads `reference_topics` in full (all partitions, no consumer group) before
    it processes its first record, and keeps feeding what arrives on them while it runs.
    """

    reference_topics: Sequence[str]

    def observe(self, record: RawRecord) -> None: ...

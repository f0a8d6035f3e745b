"""The "trivial user stage" of benchmarks/quix_benchmark.py: a tiny fixed amount of work,
the same function under seam (a pipeline stage) and under Quix Streams (`sdf.apply`).

`touch(value)` decodes a record's JSON value and adds a field; the framework around it then
encodes the result and produces it (seam: the history event and the latest state; Quix: the
same dict to the same two topics). What the frameworks cost beyond `touch` itself is their
overhead for a user's Python stage.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from seam.transforms.model import Item


def touch(value: bytes | None) -> dict[str, Any]:
    """The record's JSON with one field added (a tombstone: only that field)."""
    record: dict[str, Any] = orjson.loads(value) if value is not None else {}
    record["touched"] = True
    return record


class TouchStage:
    """`touch` as a seam stage: its result is the event (history topic) and the entity's
    state (latest topic), both keyed by the record's key, as Quix keeps it."""

    name = "touch"

    def process(self, item: Item) -> Iterable[Item]:
        record = touch(item.raw.value)
        item.event = item.state = record
        item.latest_key = item.raw.key.decode() if item.raw.key is not None else ""
        return (item,)


def create(options: Mapping[str, Any]) -> TouchStage:
    return TouchStage()

"""What the worker publishes for one source record, whichever path computed it.

A `Publication` is the encoded result of one record that did not go to the dead-letter
topic: the history records (key, event JSON, headers), the latest-topic write (key, state
JSON or None for a tombstone) and, when there is no event, the reason counted for it.
`publication()` encodes the Python stages' outcome; a compiled fast path
(`seam.transforms.fast_path`) returns the same shape, byte for byte.

Keys: a history record is keyed by the event's field that the pipeline declares
(`outputs.history.key`), else by the item's `latest_key` (the entity's key, which the stage
that made the event sets): all events of one entity then stay ordered in one partition.
The latest-topic write is keyed by `latest_key`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from seam.changes import json_default
from seam.transforms.pipeline import Produced

Headers = list[tuple[str, bytes]]


class Publication(NamedTuple):
    history: list[tuple[bytes, bytes, Headers]]
    latest: tuple[bytes, bytes | None] | None
    note: str | None  # why there is no event (None when there are events)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=json_default)


def event_headers(event: dict[str, Any]) -> Headers:
    return [
        ("seam.event_type", str(event.get("event_type")).encode()),
        ("seam.event_id", str(event.get("event_id")).encode()),
        ("seam.schema_version", str(event.get("schema_version")).encode()),
    ]


def publication(outcome: Produced, history_key: str | None = None) -> Publication:
    """The records of `outcome`; `history_key`: the event field that keys history records
    (the pipeline's `outputs.history.key`), else each item's `latest_key`."""
    history = []
    latest_item = None
    for item in outcome.items:
        event = item.event
        if event is not None:
            fallback = item.latest_key or ""
            key = str(event.get(history_key, fallback) if history_key else fallback).encode()
            history.append((key, dumps(event), event_headers(event)))
        if item.latest_key is not None:
            latest_item = item
    latest = None
    if latest_item is not None:
        state = latest_item.state
        latest = (str(latest_item.latest_key).encode(), None if state is None else dumps(state))
    return Publication(history, latest, None if history else outcome.zero_reason or "no event")

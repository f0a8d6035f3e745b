"""User stages for the tests that hold the compiled engine around a pipeline's Python
stages to the Python stages (tests/unit/test_compiled_engine.py): a module of its own, so
that a pipeline file names it by import path (`tests.user_stages:meddle`) and the test
reads the very `SEEN` the stage writes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from seam.transforms.model import Reject

# What the Python stage saw, per record: the reference run's, then the engine's.
SEEN: list[Any] = []


def _typed(value: Any) -> Any:
    """`value` with the type of each part (1 == True == 1.0 in Python; not here)."""
    if type(value) is dict:
        return ("dict", [(k, _typed(v)) for k, v in value.items()])
    if type(value) in (list, tuple):
        return (type(value).__name__, [_typed(v) for v in value])
    return (type(value).__name__, value)


class Meddle:
    """A user's stage that does, by the record's offset, what user stages do: enrich a clean
    field (`with: {field: ...}`: a text gets '!', an integer 1 more), drop the record, raise
    (a bug: dead letter), reject, hand on a float, fan out, set a note, or nothing."""

    name = "meddle"

    def __init__(self, field: str) -> None:
        self.field = field

    def process(self, item: Any) -> Any:
        SEEN.append(
            _typed(
                [
                    *(item.table, item.before, item.after, item.extra, item.event, item.state),
                    *(item.latest_key, item.note, item.provenance, type(item.change).__name__),
                ]
            )
        )
        n = item.raw.offset % 10
        row = item.after if item.after is not None else item.before
        if n == 0:
            return ()
        if n == 1:
            raise ValueError("a bug in the stage")
        if n == 2:
            raise Reject("the stage refuses it")
        if n == 3 and row is not None:
            value = row.get(self.field)
            if type(value) is str:
                row[self.field] = value + "!"
            elif type(value) is int:
                row[self.field] = value + 1
        if n == 4 and row is not None:
            row[self.field] = 2.0  # a float: the engine leaves the rest to Python
        if n == 5:
            return (item, dataclasses.replace(item, extra=dict(item.extra)))
        if n == 6:
            item.note = "noted by the stage"
        return (item,)


def meddle(options: Any) -> Meddle:
    return Meddle(str(options.get("field", "name")))

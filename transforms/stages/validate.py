"""validate: every domain event (and the latest-topic state) against its JSON Schema.

Contract: one item in, the same item out. An item with an event gets `schema_version` set
to the highest version of its type's schema, then must be valid against it; so must its
`state` against `ProductState` when that schema exists. A failure, or an event type with
no schema, rejects the record (all its events: a record is published whole or not at
all). Items without an event or state pass untouched.

Option `schemas`: the schema folder (default: the repository's schemas/).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from seam.keys import check_known_keys
from seam.transforms.model import Item, Reject
from seam.transforms.schemas import STATE_SCHEMA, CompiledSchemas, SchemaSet


class ValidateStage:
    name = "validate"

    def __init__(self, schemas: CompiledSchemas) -> None:
        self.schemas = schemas
        self._check_state = STATE_SCHEMA in schemas.validators
        # The events of one record share one state object: validate it once.
        self._last_state: object = None

    def process(self, item: Item) -> Iterable[Item]:
        event = item.event
        if event is not None:
            event_type = str(event.get("event_type"))
            found = self.schemas.validators.get(event_type)
            if found is None:
                raise Reject(f"no schema for event type {event_type!r}")
            event["schema_version"] = found[0]
            result = self.schemas.errors(event_type, event)
            if result and result[1]:
                raise Reject(f"{event_type} v{result[0]} invalid: " + "; ".join(result[1][:5]))
        if item.state is not None and self._check_state and item.state is not self._last_state:
            result = self.schemas.errors(STATE_SCHEMA, item.state)
            if result and result[1]:
                raise Reject(f"{STATE_SCHEMA} v{result[0]} invalid: " + "; ".join(result[1][:5]))
            self._last_state = item.state
        return (item,)


def create(options: Mapping[str, Any]) -> ValidateStage:
    check_known_keys(options, ("schemas",), "stage 'validate' options")
    folder = options.get("schemas")
    return ValidateStage(CompiledSchemas(SchemaSet.load(Path(folder) if folder else None)))

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
from typing import Any, Final

from seam.keys import check_known_keys
from seam.transforms.model import Item, Reject
from seam.transforms.schemas import STATE_SCHEMA, CompiledSchemas, SchemaSet


class ValidateStage:
    name = "validate"

    def __init__(self, schemas: CompiledSchemas, embedding: frozenset[str] = frozenset()) -> None:
        self.schemas = schemas
        self._check_state = STATE_SCHEMA in schemas.validators
        # The events of one record share one state object: validate it once.
        self._last_state: object = None
        # Event types whose `data.product` is checked against a copy of the state schema:
        # when such an event carries the item's very state object and is valid, the state
        # is valid too, and a second validation of it would only repeat the same checks.
        self.embeds_state = embedding

    def process(self, item: Item) -> Iterable[Item]:
        event = item.event
        if event is not None:
            event_type = str(event.get("event_type"))
            found = self.schemas.validators.get(event_type)
            if found is None:
                raise Reject(f"no schema for event type {event_type!r}")
            event["schema_version"] = found[0]
            # The validator at hand answers "valid?" quickly; the messages are only
            # collected (a second, slower walk) for an event that is not.
            if not found[1].is_valid(event):
                result = self.schemas.errors(event_type, event)
                if result and result[1]:
                    raise Reject(f"{event_type} v{result[0]} invalid: " + _listed(result[1]))
            if event_type in self.embeds_state and _embedded_state(event) is item.state:
                self._last_state = item.state
        if item.state is not None and self._check_state and item.state is not self._last_state:
            result = self.schemas.errors(STATE_SCHEMA, item.state)
            if result and result[1]:
                raise Reject(f"{STATE_SCHEMA} v{result[0]} invalid: " + _listed(result[1]))
            self._last_state = item.state
        return (item,)


_MESSAGE: Final = 200  # characters of one validation message a reason keeps


def _listed(messages: list[str]) -> str:
    """The first five messages, each cut short in its middle: a validator quotes the whole
    value before naming the rule ('"NNN..." is longer than 200 characters'), and a
    200,000-character value must not become a dead-letter header."""
    half = _MESSAGE // 2
    return "; ".join(
        m if len(m) <= _MESSAGE else f"{m[:half]}...({len(m) - 2 * half} characters)...{m[-half:]}"
        for m in messages[:5]
    )


def _embedded_state(event: Mapping[str, Any]) -> object:
    data = event.get("data")
    return data.get("product") if type(data) is dict else None


# Keywords that only annotate: two schemas differing in these accept the same instances.
_ANNOTATIONS = frozenset({"$schema", "$id", "title", "description", "$comment", "examples"})


def _checks(schema: Any) -> Any:
    """`schema` without its annotations (`x-...` keywords too: draft 2020-12 validates
    nothing by an unknown keyword)."""
    return (
        {k: v for k, v in schema.items() if k not in _ANNOTATIONS and not k.startswith("x-")}
        if type(schema) is dict
        else schema
    )


def _has_ref(schema: Any) -> bool:
    if type(schema) is dict:
        return any(
            k in ("$ref", "$dynamicRef", "$recursiveRef") or _has_ref(v) for k, v in schema.items()
        )
    if type(schema) is list:
        return any(_has_ref(v) for v in schema)
    return False


def state_embedding(schemas: SchemaSet) -> frozenset[str]:
    """The event types whose latest schema checks `data.product` with exactly the latest
    state schema's checks: same dialect, equal keywords, no references whose targets could
    differ. Then equal dicts accept the same instances."""
    state = schemas.latest(STATE_SCHEMA)
    if state is None or _has_ref(state[1]):
        return frozenset()
    wanted = _checks(state[1])
    found = set()
    for name in schemas.versions:
        latest = schemas.latest(name)
        if name == STATE_SCHEMA or latest is None or _has_ref(latest[1]):
            continue
        if latest[1].get("$schema") != state[1].get("$schema"):
            continue
        data = (latest[1].get("properties") or {}).get("data")
        product = (data.get("properties") or {}).get("product") if type(data) is dict else None
        if product is not None and _checks(product) == wanted:
            found.add(name)
    return frozenset(found)


def create(options: Mapping[str, Any]) -> ValidateStage:
    check_known_keys(options, ("schemas",), "stage 'validate' options")
    folder = options.get("schemas")
    schemas = SchemaSet.load(Path(folder) if folder else None)
    return ValidateStage(CompiledSchemas(schemas), state_embedding(schemas))

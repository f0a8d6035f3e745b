"""validate: every domain event (and the latest-topic state) against its JSON Schema.

Contract: one item in, the same item out. An item with an event gets `schema_version` set
to the highest version of its type's schema, then must be valid against it; so must its
`state` against the schema the option `state_schema` names, when given. A failure, or an
event type with no schema, rejects the record (all its events: a record is published whole
or not at all). Items without an event or state pass untouched.

Options:
* `schemas`: the schema folder of `<EventType>/v<N>.json` files, relative to the pipeline
  file (default: `schemas` beside it; in a declared pipeline, its top-level `schemas:`
  folder, written by `seam transform schemas PIPELINE --write`, or without one the schemas
  derived from the declaration);
* `state_schema`: the schema every latest-topic state must satisfy (default: none; in a
  declared pipeline `<Entity>State`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from seam.errors import ConfigError
from seam.keys import check_known_keys
from seam.transforms.declared.derive import derive, state_schema_name
from seam.transforms.declared.model import Declaration
from seam.transforms.declared.runtime import DeclaredPipeline
from seam.transforms.model import Item, Reject
from seam.transforms.schemas import CompiledSchemas, SchemaSet
from seam.transforms.stage_loader import declared_pipeline, relative_to_pipeline


class ValidateStage:
    name = "validate"

    def __init__(
        self,
        schemas: CompiledSchemas,
        embedding: Mapping[str, str] | None = None,
        state_schema: str | None = None,
    ) -> None:
        self.schemas = schemas
        self.state_schema = state_schema
        self._check_state = state_schema is not None and state_schema in schemas.validators
        # The events of one record share one state object: validate it once.
        self._last_state: object = None
        # Event type -> the property of its `data` checked against a copy of the state
        # schema: when such an event carries the item's very state object there and is
        # valid, the state is valid too, and a second validation would only repeat the checks.
        self.embeds_state: dict[str, str] = dict(embedding or {})

    @property
    def state_checked(self) -> bool:
        """Whether every latest-topic state is validated (against `state_schema`)."""
        return self._check_state

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
            embedded = self.embeds_state.get(event_type)
            if embedded is not None and _embedded_state(event, embedded) is item.state:
                self._last_state = item.state
        if item.state is not None and self._check_state and item.state is not self._last_state:
            state_schema = str(self.state_schema)
            result = self.schemas.errors(state_schema, item.state)
            if result and result[1]:
                raise Reject(f"{state_schema} v{result[0]} invalid: " + _listed(result[1]))
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


def _embedded_state(event: Mapping[str, Any], field: str) -> object:
    data = event.get("data")
    return data.get(field) if type(data) is dict else None


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


def state_embedding(schemas: SchemaSet, state_schema: str | None) -> dict[str, str]:
    """Event type -> the property of `data` that its latest schema checks with exactly the
    latest state schema's checks: same dialect, equal keywords, no references whose targets
    could differ. Then equal dicts accept the same instances."""
    state = schemas.latest(state_schema) if state_schema is not None else None
    if state is None or _has_ref(state[1]):
        return {}
    wanted = _checks(state[1])
    found: dict[str, str] = {}
    for name in schemas.versions:
        latest = schemas.latest(name)
        if name == state_schema or latest is None or _has_ref(latest[1]):
            continue
        if latest[1].get("$schema") != state[1].get("$schema"):
            continue
        data = (latest[1].get("properties") or {}).get("data")
        properties = (data.get("properties") or {}) if type(data) is dict else {}
        for field, schema in properties.items():
            if _checks(schema) == wanted:
                found[name] = field
                break
    return found


def create(options: Mapping[str, Any]) -> ValidateStage:
    check_known_keys(options, ("schemas", "state_schema"), "stage 'validate' options")
    declared = declared_pipeline(required=False)
    state_schema = options.get("state_schema")
    if options.get("schemas") is None and declared is not None:
        schemas = _declared_schemas(declared)
        state_schema = state_schema or state_schema_name(declared.declaration)
    else:
        schemas = SchemaSet.load(relative_to_pipeline(str(options.get("schemas") or "schemas")))
        if state_schema is None and declared is not None:
            state_schema = state_schema_name(declared.declaration)
    if state_schema is not None:
        state_schema = str(state_schema)
        if state_schema not in schemas.versions:
            raise ConfigError(
                f"stage 'validate': state_schema {state_schema!r} is not in {schemas.root}",
                hint=f"name one of {', '.join(sorted(schemas.versions))}, or add "
                f"{state_schema}/v1.json to {schemas.root}"
                + (" (seam transform schemas PIPELINE --write DIR)" if declared else ""),
            )
    return ValidateStage(
        CompiledSchemas(schemas), state_embedding(schemas, state_schema), state_schema
    )


def _declared_schemas(declared: DeclaredPipeline) -> SchemaSet:
    """A declared pipeline's schemas: those written to its `schemas:` folder, else (none
    named) those derived from its declaration."""
    folder = declared.schemas
    if folder is None:
        return derived_schemas(declared.declaration)
    if not folder.is_dir() or not any(folder.glob("*/v*.json")):
        raise ConfigError(
            f"stage 'validate': no schemas written in {folder} yet",
            hint=f"write them: seam transform schemas {declared.declaration.source} --write",
        )
    return SchemaSet.load(folder)


def derived_schemas(declaration: Declaration) -> SchemaSet:
    """The schemas derived from `declaration`, each as its version 1."""
    found = SchemaSet(Path(f"<schemas derived from {declaration.source}>"))
    for name, schema in derive(declaration).items():
        found.versions[name] = {1: schema}
    return found

"""The JSON Schemas (draft 2020-12) of a declaration's events and state.

Each field's schema comes from its rule chain, each rule narrowing the one before (`trim`:
a string; `max_length: 200`: at most 200 characters; `codes`: one of the names; `money`:
{amount, currency}; `timestamp`: ISO 8601 UTC ...). A field that may be unknown also
admits null, except in the state, which leaves unknown fields out. `seam transform schemas
PIPELINE --write` writes them as `<Name>/v<N>.json` beside the versions already there
(`schema_files.py`), and `seam transform check-schemas DIR` holds each new version backward
compatible.
"""

from __future__ import annotations

from typing import Final

from seam.transforms.declared.model import ColumnDecl, Declaration, EventDecl, TableDecl
from seam.transforms.declared.rules import KINDS, Schema

DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
_UUID: Final = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_PROVENANCE: Final = {
    "type": "object",
    "required": ["table", "position", "topic", "partition", "offset"],
    "properties": {
        "source_db": {"type": ["string", "null"]},
        "connector": {"type": ["string", "null"]},
        "server_name": {"type": ["string", "null"]},
        "table": {"type": ["string", "null"]},
        "position": {"type": "object"},
        "source_ts": {"type": ["string", "null"]},
        "snapshot": {"type": "boolean"},
        "topic": {"type": "string"},
        "partition": {"type": "integer"},
        "offset": {"type": "integer"},
    },
}


def pascal(name: str) -> str:
    """`stock_level` -> `StockLevel`: the entity's name as a schema's."""
    return "".join(part[:1].upper() + part[1:] for part in name.replace("-", "_").split("_"))


def state_schema_name(declaration: Declaration) -> str:
    return pascal(declaration.entity.name) + "State"


def field_schema(column: ColumnDecl) -> Schema:
    """What the column's clean value can be (null aside)."""
    schema: Schema = {}
    for rule in column.sources[0].rules:
        schema = KINDS[rule.kind].narrow(rule.options, schema)
    schema.pop("x-seam-default", None)
    return schema


def nullable(schema: Schema) -> Schema:
    """`schema` or null."""
    if not schema:
        return schema
    if "enum" in schema:
        return {**schema, "enum": [*schema["enum"], None]}
    if "const" in schema:
        return {"enum": [schema["const"], None]}
    kind = schema.get("type")
    if isinstance(kind, str) and "oneOf" not in schema:
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def _always_known(column: ColumnDecl) -> bool:
    return column.required or column.default is not None


def state_schema(declaration: Declaration) -> Schema:
    entity = declaration.entity
    table = declaration.table
    columns = [_column(table, name) for name in entity.state]
    required = [c.name for c in columns if c.name in entity.key or _always_known(c)]
    return {
        "$schema": DIALECT,
        "title": state_schema_name(declaration),
        "description": f"The state of a live {entity.name} (its latest-topic value); "
        "unknown fields are left out.",
        "type": "object",
        "required": required,
        "additionalProperties": False,
        "properties": {c.name: field_schema(c) for c in columns},
    }


def _column(table: TableDecl, name: str) -> ColumnDecl:
    column = table.column(name)
    if column is None:  # the reader checked every name
        raise AssertionError(f"no field {name} in {table.name}")
    return column


def event_schema(declaration: Declaration, event: EventDecl) -> Schema:
    entity = declaration.entity
    table = declaration.table
    key = {name: field_schema(_column(table, name)) for name in entity.key}
    return {
        "$schema": DIALECT,
        "title": event.type,
        "description": event.description or _describe(event, entity.name),
        "type": "object",
        "required": [
            "event_id",
            "event_type",
            "schema_version",
            "entity",
            *entity.key,
            "occurred_at",
            "data",
            "provenance",
        ],
        "additionalProperties": False,
        "properties": {
            "event_id": {"type": "string", "format": "uuid", "pattern": _UUID},
            "event_type": {"const": event.type},
            "schema_version": {"type": "integer", "minimum": 1},
            "entity": {"const": entity.name},
            **key,
            "occurred_at": {"type": ["string", "null"], "format": "date-time"},
            "data": _data_schema(declaration, event),
            "provenance": _PROVENANCE,
        },
    }


def _describe(event: EventDecl, entity: str) -> str:
    if event.on == "changed":
        return f"A live {entity}'s {', '.join(event.fields)} changed."
    return {
        "created": f"A live {entity} appeared (created, or read by a snapshot).",
        "returned": f"A gone {entity} is live again.",
        "gone": f"A live {entity} is gone (deleted, or a gone condition holds).",
    }[event.on]


def _data_schema(declaration: Declaration, event: EventDecl) -> Schema:
    table = declaration.table
    properties: dict[str, Schema] = {}
    if event.data is None:
        for name in event.fields if event.on == "changed" else ():
            schema = nullable(field_schema(_column(table, name)))
            properties[f"old_{name}"] = schema
            properties[f"new_{name}"] = schema
    else:
        for out, expression in event.data:
            properties[out] = _expression_schema(declaration, expression)
    return {
        "type": "object",
        "required": list(properties),
        "additionalProperties": False,
        "properties": properties,
    }


def _expression_schema(declaration: Declaration, expression: str) -> Schema:
    entity = declaration.entity
    if expression == "state":
        schema = state_schema(declaration)
        return {k: v for k, v in schema.items() if k not in ("$schema", "title", "description")}
    if expression == "gone_reason":
        reasons = [entity.deleted_reason, *(g.reason for g in entity.gone)]
        return {"enum": list(dict.fromkeys(reasons))}
    if expression.startswith("="):
        return {"const": expression[1:]}
    scope, _dot, name = expression.partition(".")
    schema = field_schema(_column(declaration.table, name))
    return schema if scope == "key" else nullable(schema)


def derive(declaration: Declaration) -> dict[str, Schema]:
    """Schema name -> schema: each event type's and the state's (`<Entity>State`)."""
    found = {event.type: event_schema(declaration, event) for event in declaration.events}
    found[state_schema_name(declaration)] = state_schema(declaration)
    return found


__all__ = ["derive", "event_schema", "field_schema", "nullable", "pascal", "state_schema"]

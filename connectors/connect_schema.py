"""Kafka Connect schemas from an entity's state JSON Schema, for sink connectors.

A sink connector (Debezium's JDBC sink) must know each field's type; seam's latest topics
are schemaless JSON (the state, keyed by the key text). Kafka Connect's `JsonConverter`
takes a fixed schema for schemaless records (`schema.content`, KIP-1054, Kafka 4.0+):
this module derives that schema from the state's JSON Schema (`<Entity>State`, the one the
validate stage holds every latest-topic value to), so the topic needs no envelope.

Types, and the PostgreSQL columns Debezium's JDBC sink makes of them:

| JSON Schema                         | Connect                                  | PostgreSQL |
|-------------------------------------|------------------------------------------|------------|
| integer                             | int64                                    | bigint     |
| number                              | float64                                  | double precision |
| boolean                             | boolean                                  | boolean    |
| string, format date-time            | string `io.debezium.time.ZonedTimestamp` | timestamptz |
| any other string (decimals too)     | string                                   | text       |
| enum / const                        | the type of their values                 |            |
| object with properties              | struct (flattened: `total_amount`, ...)  | one column each |
| array of one of the above           | array                                    | an array   |

Decimals stay text: the state holds a decimal as exact text, and JsonConverter reads a
Decimal's text as base64 bytes, so a numeric column would need a cast in the view. A field
the state's required list names is NOT NULL; any other is optional (the state leaves an
unknown field out). Integers are int64 whatever their bounds: a later schema version may
widen them, and the sink's schema evolution adds columns but never changes a column's type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from seam.errors import ConfigError

ZONED_TIMESTAMP: Final = "io.debezium.time.ZonedTimestamp"
ConnectSchema = dict[str, Any]


def value_schema(state: Mapping[str, Any], where: str) -> ConnectSchema:
    """The Connect struct schema of a state (the JSON Schema of the latest topic's values)."""
    schema = _convert(state, where, "the state")
    if schema["type"] != "struct":
        raise ConfigError(
            f"{where}: the state schema is not an object with properties",
            hint="a sink reads the latest topic's values: the entity's <Entity>State schema",
        )
    schema["optional"] = False
    return schema


def key_schema(state: Mapping[str, Any], field: str, where: str) -> ConnectSchema:
    """The Connect schema of a one-field key, as the state schema types that field."""
    properties = state.get("properties") or {}
    if field not in properties:
        raise ConfigError(
            f"{where}: the key field '{field}' is not in the state schema",
            hint=f"name a key field the state has (it has: {', '.join(properties) or 'none'})",
        )
    schema = _convert(properties[field], where, f"key field '{field}'")
    schema["optional"] = False
    return schema


def has_structs(schema: Mapping[str, Any]) -> bool:
    """Whether a struct holds a struct (the sink needs them flattened into columns)."""
    return any(f.get("type") == "struct" for f in schema.get("fields") or [])


def _convert(schema: Any, where: str, what: str) -> ConnectSchema:
    """One JSON Schema as a Connect schema (optional when it admits null)."""
    if not isinstance(schema, Mapping):
        raise ConfigError(f"{where}: {what}: its schema is not an object")
    schema, nullable = _without_null(schema, where, what)
    kind = schema.get("type")
    if kind is None:
        kind = _kind_of_values(schema, where, what)
    converted: ConnectSchema
    if kind == "object":
        properties = schema.get("properties")
        if not isinstance(properties, Mapping) or not properties:
            raise ConfigError(
                f"{where}: {what} is an object without declared properties: no column type fits it",
                hint="give the object 'properties' in the state schema, or leave the field out "
                "of the state",
            )
        required = set(schema.get("required") or [])
        fields = []
        for name, sub in properties.items():
            field = _convert(sub, where, f"{what}.{name}" if what != "the state" else name)
            field["optional"] = field["optional"] or name not in required
            fields.append({"field": name, **field})
        converted = {"type": "struct", "fields": fields}
    elif kind == "array":
        items = _convert(schema.get("items") or {}, where, f"{what}[]")
        if items["type"] in ("struct", "array"):
            raise ConfigError(
                f"{where}: {what} is an array of {items['type']}s: a column holds arrays of "
                "plain values only",
                hint="leave the field out of the sink's state, or make it an array of plain values",
            )
        converted = {"type": "array", "items": items}
    elif kind == "integer":
        converted = {"type": "int64"}
    elif kind == "number":
        converted = {"type": "float64"}
    elif kind == "boolean":
        converted = {"type": "boolean"}
    elif kind == "string":
        converted = {"type": "string"}
        if schema.get("format") == "date-time":
            converted["name"] = ZONED_TIMESTAMP
    else:
        raise ConfigError(
            f"{where}: {what}: the state schema does not say its type ({kind!r})",
            hint="give it a 'type' (integer, number, boolean, string, object or array)",
        )
    converted["optional"] = nullable
    return converted


def _without_null(
    schema: Mapping[str, Any], where: str, what: str
) -> tuple[Mapping[str, Any], bool]:
    """`schema` without its null alternative, and whether it had one."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        if len(kinds) != 1:
            raise ConfigError(
                f"{where}: {what} has the types {kind}: no single column type fits it"
            )
        return {**schema, "type": kinds[0]}, len(kinds) < len(kind)
    for choice in ("anyOf", "oneOf"):
        options = schema.get(choice)
        if isinstance(options, list) and "type" not in schema and "properties" not in schema:
            rest = [o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")]
            if len(rest) == 1 and isinstance(rest[0], Mapping):
                inner, _ = _without_null(rest[0], where, what)
                return inner, len(rest) < len(options)
    if "enum" in schema and None in schema["enum"]:
        return {**schema, "enum": [v for v in schema["enum"] if v is not None]}, True
    return schema, False


def _kind_of_values(schema: Mapping[str, Any], where: str, what: str) -> str | None:
    """The JSON type of an enum's or a const's values (None: neither, or mixed)."""
    values = list(schema.get("enum") or ())
    if "const" in schema:
        values.append(schema["const"])
    kinds = {_json_kind(v) for v in values}
    if len(kinds) == 1:
        return kinds.pop()
    if kinds:
        raise ConfigError(
            f"{where}: {what} takes values of several types ({', '.join(sorted(kinds))}): "
            "no single column type fits it"
        )
    return None


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, dict) else "array"


# The PostgreSQL column type Debezium's JDBC sink gives each Connect type (its PostgreSQL
# dialect, 3.5), so that a table seam creates is the table the sink would have created.
_PG_TYPES: Final = {
    "int64": "bigint",
    "float64": "double precision",
    "boolean": "boolean",
    "string": "text",
}
_PG_NAMED: Final = {ZONED_TIMESTAMP: "timestamp(6) with time zone"}


def columns(schema: Mapping[str, Any], prefix: str = "", optional: bool = False) -> list[Column]:
    """The table columns of a struct schema as the sink writes it: nested structs flattened
    with '_' (as `Flatten$Value` does), a field nullable when it or a struct around it is
    optional."""
    found: list[Column] = []
    for field in schema.get("fields") or []:
        name = f"{prefix}{field['field']}"
        nullable = optional or bool(field.get("optional"))
        if field["type"] == "struct":
            found += columns(field, f"{name}_", nullable)
        else:
            found.append(Column(name, pg_type(field), nullable))
    return found


def pg_type(schema: Mapping[str, Any]) -> str:
    """The PostgreSQL type of a plain (or array) Connect schema."""
    if schema["type"] == "array":
        return pg_type(schema["items"]) + "[]"
    return _PG_NAMED.get(str(schema.get("name")), _PG_TYPES[schema["type"]])


class Column(NamedTuple):
    name: str
    type: str
    nullable: bool

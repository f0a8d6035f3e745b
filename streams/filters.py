"""Which change events a reader keeps: by operation, by key, by column value.

Values are compared as text, the way a user types them: `42` matches the integer 42 and
the string "42", `true`/`false` match booleans, `null` matches a missing value, a Decimal
matches its exact text in plain notation as the database shows it (`19.90` does not match
`19.9`; `-0.000000000123`, never `-1.23E-10`), a date/time its ISO form, a timedelta its
ISO 8601 duration (`PT1H30M`), a UUID its text, bytes their hex, a raw (untyped) value the
value as sent.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Final

import orjson

from seam.changes import (
    UNAVAILABLE,
    ChangeEvent,
    ControlRecord,
    Op,
    Raw,
    RawRecord,
    Undecodable,
    decimal_text,
)
from seam.streams.decode import decode_key, json_object
from seam.streams.kafka import StreamsUsageError
from seam.streams.types import duration_text

_OP_NAMES: Final[dict[str, Op]] = {
    "c": Op.CREATE,
    "create": Op.CREATE,
    "insert": Op.CREATE,
    "u": Op.UPDATE,
    "update": Op.UPDATE,
    "d": Op.DELETE,
    "delete": Op.DELETE,
    "r": Op.READ,
    "read": Op.READ,
    "snapshot": Op.READ,
    "t": Op.TRUNCATE,
    "truncate": Op.TRUNCATE,
    "m": Op.MESSAGE,
    "message": Op.MESSAGE,
    "x": Op.TOMBSTONE,
    "tombstone": Op.TOMBSTONE,
}
# Key values that appear verbatim in JSON key bytes: safe for a byte-level pre-check.
_PLAIN: Final = re.compile(r"[A-Za-z0-9_.:@ -]+")


def as_text(value: Any) -> str:
    """The text a user would type for a column value."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, Decimal):
        return decimal_text(value)  # as the database shows it: 0.000000000123, not 1.23E-10
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, timedelta):
        return duration_text(value)
    if type(value) is Raw:  # a value seam could not type: as it was sent
        return as_text(value.value)
    return orjson.dumps(value, default=str).decode()


def parse_ops(text: str | None) -> frozenset[Op] | None:
    """`c,u,d` (or names: create,update,delete,read,truncate,message,tombstone)."""
    if not text:
        return None
    ops = set()
    for part in text.split(","):
        name = part.strip().lower()
        if not name:
            continue
        if name not in _OP_NAMES:
            raise StreamsUsageError(
                f"unknown operation '{part.strip()}' in --op",
                hint="use c, u, d, r, t, m or tombstone, separated by commas (e.g. --op c,u)",
            )
        ops.add(_OP_NAMES[name])
    return frozenset(ops)


def parse_key(text: str) -> dict[str, str] | str:
    """A key as the user typed it: a JSON object `{"id": 42}`, `col=value[,col=value]`, or a
    bare value matched against a one-column key. Returns column -> text, or the bare text."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            doc = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            raise StreamsUsageError(
                f"--key {text!r} is not valid JSON", hint='write it as {"id": 42} or id=42'
            ) from None
        if not isinstance(doc, dict) or not doc:
            raise StreamsUsageError(f"--key {text!r} must be a non-empty JSON object")
        return {str(k): as_text(v) for k, v in doc.items()}
    if "=" in stripped:
        return dict(_pair(part, "--key") for part in stripped.split(","))
    if not stripped:
        raise StreamsUsageError(
            "--key is empty", hint="give a key value, e.g. --key 42 or --key id=42"
        )
    return stripped


def _pair(text: str, option: str) -> tuple[str, str]:
    column, sep, value = text.partition("=")
    if not sep or not column.strip():
        raise StreamsUsageError(
            f"{option} {text!r} is not column=value", hint=f"write {option} status=active"
        )
    return column.strip(), value.strip()


def parse_where(items: Iterable[str]) -> tuple[tuple[str, str], ...]:
    return tuple(_pair(item, "--where") for item in items)


def record_key(raw: bytes | None) -> Mapping[str, Any] | str | None:
    """A record's key as a filter compares it: Debezium's key (a JSON object, with or without
    schema), else the key as text (a JSON string without its quotes): seam's domain-event
    and latest topics are keyed by plain text like `42`. None without a key."""
    key = decode_key(raw)
    if key is not None or raw is None:
        return key
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return None
    if text.startswith('"'):
        with contextlib.suppress(orjson.JSONDecodeError):
            doc = orjson.loads(raw)
            if type(doc) is str:
                return doc
    return text


def key_matches(spec: Mapping[str, str] | str, key: Mapping[str, Any] | str) -> bool:
    if isinstance(key, str):  # a plain key matches only a bare value
        return isinstance(spec, str) and key == spec
    if isinstance(spec, str):
        return len(key) == 1 and as_text(next(iter(key.values()))) == spec
    return all(col in key and as_text(key[col]) == want for col, want in spec.items())


_MISSING: Final = object()


def _field(doc: Mapping[str, Any], path: str) -> Any:
    """`doc[path]`, or for `a.b` the field b of the object a; _MISSING when there is none."""
    if path in doc:
        return doc[path]
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


@dataclass(frozen=True)
class EventFilter:
    """All conditions must hold. `where` looks at the row as it is after the event (the
    `after` image, or `before` for a delete); tombstones, truncates and messages carry no
    row and never match a `where`. Records that are not change events: `matches_record`."""

    ops: frozenset[Op] | None = None
    key: Mapping[str, str] | str | None = None
    where: tuple[tuple[str, str], ...] = ()

    @property
    def empty(self) -> bool:
        return self.ops is None and self.key is None and not self.where

    def may_match_raw(self, record: RawRecord) -> bool:
        """A cheap test on the raw key bytes: False only when the key surely differs."""
        if self.key is None:
            return True
        if record.key is None:
            return False
        values = [self.key] if isinstance(self.key, str) else list(self.key.values())
        return all(v.encode() in record.key for v in values if _PLAIN.fullmatch(v))

    def matches_record(self, item: Undecodable) -> bool:
        """For a record that is not a change event (a domain event, a latest state, a
        heartbeat, ...): its key as `record_key` gives it, and `where` on the fields of its
        JSON value (`data.new_name` for a nested one). An `ops` filter never matches it."""
        if self.ops is not None:
            return False
        if self.key is not None:
            key = record_key(item.raw.key)
            if key is None or not key_matches(self.key, key):
                return False
        if self.where:
            doc = item.payload if isinstance(item, ControlRecord) else json_object(item.raw.value)
            if doc is None:
                return False
            for column, want in self.where:
                value = _field(doc, column)
                if value is _MISSING or as_text(value) != want:
                    return False
        return True

    def matches(self, event: ChangeEvent) -> bool:
        if self.ops is not None and event.op not in self.ops:
            return False
        if self.key is not None and not key_matches(self.key, event.key):
            return False
        if self.where:
            row = event.row
            if row is None:
                return False
            for column, want in self.where:
                if column not in row:
                    return False
                value = row[column]
                if value is UNAVAILABLE or as_text(value) != want:
                    return False
        return True

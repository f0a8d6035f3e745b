"""Debezium's wire encoding of column values, and the Python values they stand for.

With an embedded Connect schema (`{"schema": ..., "payload": ...}`) each column's schema says
how its value is encoded (`io.debezium.time.*`, decimals as scaled bytes, bytes as base64):
`envelope_converters` and `key_converters` build the converters of a schema once and cache
them by the schema's bytes. Without a schema only what is unambiguous is recognised: the
unavailable-value placeholder and the variable-scale decimal struct (`mark_unavailable`).
See the decoder's docstring (`seam.streams.decode`) for the whole contract.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final, TypeVar

from seam.changes import UNAVAILABLE, UNAVAILABLE_PLACEHOLDER

_PLACEHOLDER_B64: Final = base64.b64encode(UNAVAILABLE_PLACEHOLDER.encode()).decode()
# Cheap byte probes: rows are only scanned for placeholders / variable-scale structs when
# the raw bytes contain one of these, which keeps the common path free of per-column work.
PROBE_PLACEHOLDER: Final = UNAVAILABLE_PLACEHOLDER.encode()
PROBE_PLACEHOLDER_B64: Final = _PLACEHOLDER_B64.rstrip("=").encode()
PROBE_SCALE: Final = b'{"scale":'


_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_EPOCH: Final = datetime(1970, 1, 1)
_DAY_US: Final = 86_400_000_000

Converter = Callable[[Any], Any]


def _date_from_days(v: int) -> date:
    return date.fromordinal(_EPOCH_ORDINAL + v)


def _time_from_us(v: int) -> time | int:
    if not 0 <= v < _DAY_US:
        return v  # 24:00:00 or a negative MySQL TIME: no datetime.time for it
    hours, rest = divmod(v, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds, micros = divmod(rest, 1_000_000)
    return time(hours, minutes, seconds, micros)


def _time_from_ms(v: int) -> time | int:
    result = _time_from_us(v * 1000)
    return v if isinstance(result, int) else result


def _time_from_ns(v: int) -> time | int:
    result = _time_from_us(v // 1000)
    return v if isinstance(result, int) else result


def _ts_from_ms(v: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=v)


def _ts_from_us(v: int) -> datetime:
    return _EPOCH + timedelta(microseconds=v)


def _ts_from_ns(v: int) -> datetime:
    return _EPOCH + timedelta(microseconds=v // 1000)


def _zoned_timestamp(v: str) -> datetime:
    return datetime.fromisoformat(v)


def _zoned_time(v: str) -> time:
    return time.fromisoformat(v)


def _iso_date(v: str) -> date:
    return date.fromisoformat(v)


def _bytes(v: str) -> bytes:
    return base64.b64decode(v, validate=True)


def _unscaled_to_decimal(unscaled: int, scale: int) -> Decimal:
    # Built from a string so that no context precision rounds a wide NUMERIC.
    return Decimal(f"{unscaled}E{-scale}")


def _fixed_decimal(scale: int) -> Converter:
    def convert(v: Any) -> Any:
        if isinstance(v, str):
            raw = base64.b64decode(v, validate=True)
            return _unscaled_to_decimal(int.from_bytes(raw, "big", signed=True), scale)
        return v

    return convert


def _variable_decimal(v: Any) -> Any:
    if type(v) is dict and len(v) == 2 and "scale" in v and "value" in v:
        scale, value = v["scale"], v["value"]
        if type(scale) is int and type(value) is str:
            raw = base64.b64decode(value, validate=True)
            return _unscaled_to_decimal(int.from_bytes(raw, "big", signed=True), scale)
    return v


_LOGICAL: Final[dict[str, Converter]] = {
    "io.debezium.time.Date": _date_from_days,
    "io.debezium.time.Time": _time_from_ms,
    "io.debezium.time.MicroTime": _time_from_us,
    "io.debezium.time.NanoTime": _time_from_ns,
    "io.debezium.time.Timestamp": _ts_from_ms,
    "io.debezium.time.MicroTimestamp": _ts_from_us,
    "io.debezium.time.NanoTimestamp": _ts_from_ns,
    "io.debezium.time.ZonedTimestamp": _zoned_timestamp,
    "io.debezium.time.ZonedTime": _zoned_time,
    "io.debezium.time.IsoDate": _iso_date,
    "io.debezium.time.IsoTime": _zoned_time,
    "io.debezium.time.IsoTimestamp": _zoned_timestamp,
    "org.apache.kafka.connect.data.Date": _date_from_days,
    "org.apache.kafka.connect.data.Time": _time_from_ms,
    "org.apache.kafka.connect.data.Timestamp": _ts_from_ms,
    "io.debezium.data.VariableScaleDecimal": _variable_decimal,
}

# Logical types whose JSON form is already the right Python value.
_KEEP_AS_IS: Final = frozenset(
    {
        "io.debezium.data.Json",
        "io.debezium.data.Uuid",
        "io.debezium.data.Enum",
        "io.debezium.data.Xml",
    }
)


def _field_converter(schema: Mapping[str, Any]) -> Converter | None:
    """The converter for one field's Connect schema, or None when the JSON value is fine."""
    name = schema.get("name")
    kind = schema.get("type")
    if name == "org.apache.kafka.connect.data.Decimal":
        params = schema.get("parameters") or {}
        return _fixed_decimal(int(params.get("scale", 0)))
    if name in _LOGICAL:
        return _LOGICAL[name]
    if name in _KEEP_AS_IS:
        return None
    if kind == "bytes":
        return _bytes
    if kind == "array":
        items = schema.get("items")
        item = _field_converter(items) if isinstance(items, Mapping) else None
        if item is None:
            return None
        return lambda v: [None if x is None else item(x) for x in v] if type(v) is list else v
    return None


NO_DEFAULT: Final = object()


@dataclass(frozen=True, slots=True)
class Converters:
    """Schema-derived work for one envelope schema: column -> converter, and per column
    whether it is optional and its default (what Debezium writes for a missing value)."""

    row: tuple[tuple[str, Converter], ...]
    message_bytes: bool
    columns: Mapping[str, tuple[bool, Any]]  # column -> (optional, default or NO_DEFAULT)


def _row_converters(struct: Mapping[str, Any] | None) -> tuple[tuple[str, Converter], ...]:
    if not struct:
        return ()
    out = []
    for spec in struct.get("fields") or ():
        if isinstance(spec, Mapping) and isinstance(spec.get("field"), str):
            conv = _field_converter(spec)
            if conv is not None:
                out.append((spec["field"], conv))
    return tuple(out)


def _envelope_converters(schema: Mapping[str, Any]) -> Converters:
    row_struct = None
    for spec in schema.get("fields") or ():
        if isinstance(spec, Mapping) and spec.get("field") in ("after", "before"):
            row_struct = spec
            if spec.get("field") == "after":
                break
    columns = {
        spec["field"]: (spec.get("optional") is True, spec.get("default", NO_DEFAULT))
        for spec in ((row_struct or {}).get("fields") or ())
        if isinstance(spec, Mapping) and isinstance(spec.get("field"), str)
    }
    return Converters(row=_row_converters(row_struct), message_bytes=True, columns=columns)


_CACHE_LIMIT: Final = 2048
_T = TypeVar("_T")
_value_cache: dict[bytes, Converters] = {}
_key_cache: dict[bytes, tuple[tuple[str, Converter], ...]] = {}


def _schema_id(raw: bytes) -> bytes | None:
    """The bytes of the embedded schema, which identify it: JsonConverter writes the schema
    first and the payload after it, so converters are built once per distinct schema."""
    end = raw.find(b'},"payload":')
    return raw[: end + 1] if end > 0 else None


def _cached(cache: dict[bytes, _T], ident: bytes | None, build: Callable[[], _T]) -> _T:
    if ident is None:
        return build()
    found = cache.get(ident)
    if found is None:
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        found = cache[ident] = build()
    return found


def mark_unavailable(row: dict[str, Any], scale_structs: bool) -> None:
    for col, v in row.items():
        t = type(v)
        if t is str:
            if v in (UNAVAILABLE_PLACEHOLDER, _PLACEHOLDER_B64):
                row[col] = UNAVAILABLE
        elif t is list:
            if len(v) == 1 and v[0] == UNAVAILABLE_PLACEHOLDER:
                row[col] = UNAVAILABLE
        elif t is dict and scale_structs:
            with contextlib.suppress(ValueError, binascii.Error, InvalidOperation):
                row[col] = _variable_decimal(v)


def apply_converters(row: dict[str, Any], converters: Sequence[tuple[str, Converter]]) -> None:
    for col, conv in converters:
        v = row.get(col)
        if v is None or v is UNAVAILABLE:
            continue
        # A value Python cannot hold (year 0, 24:00:00, infinity) stays as Debezium sent it.
        with contextlib.suppress(
            ValueError, TypeError, OverflowError, binascii.Error, InvalidOperation
        ):
            row[col] = conv(v)


# The zeros Debezium writes for a missing NOT NULL value (JdbcValueConverters and
# PostgresValueConverter fallbacks), in their JSON forms: numbers and decimal strings of
# zero, the epoch as a date/time/timestamp text, zero bytes in base64, {}, [].
_ZERO_TEXT: Final = re.compile(
    r"-?0*(?:\.0*)?"
    r"|1970-01-01(?:T00:00(?::00(?:\.0*)?)?)?(?:Z|[+-]00(?::?00)?)?"
    r"|00:00(?::00(?:\.0*)?)?(?:Z|[+-]00(?::?00)?)?"
    r"|A{2,}={0,2}"
    r"|\{\}|\[\]"
)


def is_zero_fill(value: Any) -> bool:
    """Whether `value` is a form of what Debezium writes for a missing NOT NULL value."""
    kind = type(value)
    if kind is str:
        return _ZERO_TEXT.fullmatch(value) is not None
    if kind is int or kind is float or kind is bool:
        return not value
    if kind is list:
        return not value
    if kind is dict:  # {} or a variable-scale decimal zero
        return not value or (set(value) == {"scale", "value"} and is_zero_fill(value["value"]))
    return False


def envelope_converters(value: bytes, schema: Mapping[str, Any]) -> Converters:
    """The converters of a value's envelope schema (built once per distinct schema)."""
    return _cached(_value_cache, _schema_id(value), lambda: _envelope_converters(schema))


def key_converters(key: bytes, schema: Mapping[str, Any]) -> tuple[tuple[str, Converter], ...]:
    """The converters of a key's schema (built once per distinct schema)."""
    return _cached(_key_cache, _schema_id(key), lambda: _row_converters(schema))

"""Column types for records that carry no schema: exact typed values from what Debezium sent.

Without an embedded schema a Debezium value is its wire encoding: a DATE is days since the
epoch, a TIMESTAMP micro- or milliseconds, BYTEA base64, and a NUMERIC either a decimal
string (`decimal.handling.mode=string`, what seam renders) or base64 of its unscaled bytes
(`precise`, Debezium's default). The record cannot tell which: the column type, read from
the source database (`seam.connectors.columns`), and the connector's value settings
(`Encoding`, from its config) can. `TableTypes` holds both and gives the decoder one
converter per column that needs one (`seam.streams.decode.decode(record, types)`).

What comes out, by column type (PostgreSQL / MySQL and MariaDB):

* numeric/decimal(p,s), money -> `Decimal` with the column's scale, in every decimal mode
  (`double` gives the float's shortest repr, quantized to the scale);
* date -> `date`; PostgreSQL time -> `time`; timetz -> aware `time`; timestamp and DATETIME
  -> naive `datetime`; timestamptz and MySQL TIMESTAMP -> aware `datetime` (UTC), honouring
  `time.precision.mode` and the column's fractional digits (milli- or microseconds);
* MySQL/MariaDB TIME -> `timedelta` (it is a duration, -838:59:59 to 838:59:59); YEAR -> int;
* PostgreSQL interval -> `timedelta`. With `interval.handling.mode=numeric` (the default)
  Debezium has already folded months in as 30.4375 days each, so `1 mon` arrives as 30 days
  10:30 and nothing in the record can undo that; with `string` (ISO 8601) the value is
  exact, and one with years or months (no timedelta holds a month) is marked `Raw`;
* bytea, BINARY/VARBINARY/BLOB, bit(n>1) -> `bytes` (any `binary.handling.mode`);
* uuid -> `uuid.UUID`; json/jsonb (MySQL json) -> the parsed JSON document;
* arrays -> lists of their element's typed values;
* text, enum, integer, float and boolean columns pass as sent (their JSON form is exact).

A column seam cannot type (a custom or spatial type, a column added since the types were
read) and a value that does not fit its type (`infinity`, `24:00:00`) become `Raw`, never
a look-alike value. A record with an embedded schema is decoded by its schema; types are
used only for records without one.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Final

import orjson

from seam.changes import UNAVAILABLE, Raw, TableRef

__all__ = [
    "KINDS",
    "NOT_READ",
    "ColumnType",
    "Encoding",
    "TableTypes",
    "column_converter",
    "duration_text",
]

Converter = Callable[[Any], Any]

# The kinds of column seam can type; anything else is "unknown" (values marked Raw).
KINDS: Final = frozenset(
    {
        "text",
        "int",
        "float",
        "bool",
        "decimal",
        "date",
        "time",
        "timetz",
        "timestamp",
        "timestamptz",
        "duration",
        "interval",
        "bytes",
        "bits",
        "uuid",
        "json",
        "array",
        "unknown",
    }
)
# Kinds whose JSON form is already the exact Python value: no converter, no per-record work.
_AS_SENT: Final = frozenset({"text", "int", "float", "bool"})


@dataclass(frozen=True, slots=True)
class ColumnType:
    """One column's type as the source database declares it."""

    kind: str  # one of KINDS
    sql: str = ""  # the database's own name of the type, for Raw's reason
    scale: int | None = None  # decimal digits after the point; None = variable (NUMERIC)
    precision: int | None = None  # fractional-second digits of a time/timestamp
    element: ColumnType | None = None  # an array's element type

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown column kind {self.kind!r}: one of {sorted(KINDS)}")


@dataclass(frozen=True, slots=True)
class Encoding:
    """The connector settings that decide a value's wire form (Debezium's defaults)."""

    decimal: str = "precise"  # decimal.handling.mode: precise | string | double
    binary: str = "bytes"  # binary.handling.mode: bytes | base64 | base64-url-safe | hex
    time_precision: str = "adaptive_time_microseconds"  # time.precision.mode
    interval: str = "numeric"  # interval.handling.mode: numeric | string
    money_digits: int = 2  # money.fraction.digits (PostgreSQL money)

    @classmethod
    def from_config(cls, config: Mapping[str, str]) -> Encoding:
        """The encoding a connector config (rendered or live) asks Debezium for."""
        return cls(
            decimal=config.get("decimal.handling.mode", "precise"),
            binary=config.get("binary.handling.mode", "bytes"),
            time_precision=config.get("time.precision.mode", "adaptive_time_microseconds"),
            interval=config.get("interval.handling.mode", "numeric"),
            money_digits=int(config.get("money.fraction.digits", "2")),
        )


class _NotRead:
    """The value of a column that `TableTypes.only` was told is not read: it was sent, its
    type needs a conversion, and none was made. Equal only to itself."""

    __slots__ = ()
    _instance: _NotRead | None = None

    def __new__(cls) -> _NotRead:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NOT_READ"

    def __reduce__(self) -> str:
        return "NOT_READ"


NOT_READ: Final = _NotRead()


def duration_text(value: timedelta) -> str:
    """A timedelta as an ISO 8601 duration, exactly: `P3DT4H5M6.5S`, `-PT1H2M3.5S` (a
    negative one signed as a whole, as MySQL's TIME -01:02:03.5), `PT0S`."""
    sign = "-" if value < timedelta(0) else ""
    value = abs(value)
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{sign}P{value.days}D" if value.days else f"{sign}P"
    clock = ""
    if hours:
        clock += f"{hours}H"
    if minutes:
        clock += f"{minutes}M"
    if seconds or value.microseconds:
        fraction = f".{value.microseconds:06d}".rstrip("0") if value.microseconds else ""
        clock += f"{seconds}{fraction}S"
    if clock:
        text += "T" + clock
    return text if text not in ("P", "-P") else "PT0S"


# -- converters: one value's JSON form -> its Python value; raise when it does not fit ----

_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_EPOCH: Final = datetime(1970, 1, 1)
_DAY_US: Final = 86_400_000_000
_from_ordinal: Final = date.fromordinal


class _Dates(dict[Any, date]):
    """Day number (or ISO text) -> date, filled on a miss and bounded. Its `__getitem__` is
    the date converter: a C call on a hit (dates repeat: a day's rows share one), a third of
    date.fromordinal's instructions plus a Python call's."""

    def __missing__(self, v: Any) -> date:
        if len(self) >= _DATES_LIMIT:
            self.clear()
        if type(v) is int:
            found = _from_ordinal(v + _EPOCH_ORDINAL)
        elif type(v) is str:
            found = date.fromisoformat(v)
        else:
            raise TypeError(f"a date as JSON {type(v).__name__}")
        self[v] = found
        return found


_DATES_LIMIT: Final = 8192
_date: Final[Converter] = _Dates().__getitem__


def _time_of(us: int) -> time:
    if not 0 <= us < _DAY_US:
        raise ValueError("not a time of day")  # PostgreSQL's 24:00:00
    hours, rest = divmod(us, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds, micros = divmod(rest, 1_000_000)
    return time(hours, minutes, seconds, micros)


def _time_us(v: Any) -> time:
    return _time_of(v) if type(v) is int else time.fromisoformat(v)


def _time_ms(v: Any) -> time:
    return _time_of(v * 1000) if type(v) is int else time.fromisoformat(v)


def _zoned_time(v: Any) -> time:
    return time.fromisoformat(v)


# A timestamp from its day (cached: a day's rows share it) and its time of day: about half
# the instructions of epoch + timedelta, the same value (tests/unit/test_decode_types.py).
_DAYS: dict[int, tuple[int, int, int]] = {}


def _ts_of(days: int, us: int) -> datetime:
    ymd = _DAYS.get(days)
    if ymd is None:
        if len(_DAYS) >= _DATES_LIMIT:
            _DAYS.clear()
        day = _from_ordinal(days + _EPOCH_ORDINAL)
        ymd = _DAYS[days] = (day.year, day.month, day.day)
    seconds, us = divmod(us, 1_000_000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return datetime(ymd[0], ymd[1], ymd[2], hours, minutes, seconds, us)


def _ts_us(v: Any) -> datetime:
    if type(v) is int:
        return _ts_of(*divmod(v, _DAY_US))
    return datetime.fromisoformat(v)


def _ts_ms(v: Any) -> datetime:
    if type(v) is int:
        days, ms = divmod(v, 86_400_000)
        return _ts_of(days, ms * 1000)
    return datetime.fromisoformat(v)


_fromiso: Final = datetime.fromisoformat


def _zoned_timestamp(v: Any) -> datetime:
    if v[-1:] == "Z":  # what Debezium writes: UTC
        return _fromiso(v)
    result = datetime.fromisoformat(v)
    if result.tzinfo is None:
        raise ValueError("a zoned timestamp without a zone")
    return result.astimezone(UTC) if result.utcoffset() else result


def _duration_us(v: Any) -> timedelta:
    return timedelta(microseconds=v)


def _duration_ms(v: Any) -> timedelta:
    return timedelta(milliseconds=v)


def _interval_numeric(v: Any) -> timedelta:
    # Debezium's MicroDuration: months already folded in as 30.4375 days (see the docstring).
    if type(v) is not int:
        raise TypeError("an interval that is not micros")
    return timedelta(microseconds=v)


_ISO_INTERVAL: Final = re.compile(
    r"P(?:(?P<y>-?\d+)Y)?(?:(?P<mo>-?\d+)M)?(?:(?P<d>-?\d+)D)?"
    r"(?:T(?:(?P<h>-?\d+)H)?(?:(?P<mi>-?\d+)M)?(?:(?P<s>-?\d+(?:\.\d+)?)S)?)?"
)


def _interval_iso(v: Any) -> timedelta:
    match = _ISO_INTERVAL.fullmatch(v)
    if match is None:
        raise ValueError("not an ISO 8601 interval")
    if int(match["y"] or 0) or int(match["mo"] or 0):
        raise ValueError("an interval of months has no exact timedelta")
    return timedelta(
        days=int(match["d"] or 0),
        hours=int(match["h"] or 0),
        minutes=int(match["mi"] or 0),
        seconds=float(Decimal(match["s"] or 0)),
    )


def _b64(v: Any) -> bytes:
    return base64.b64decode(v, validate=True)


def _b64_url(v: Any) -> bytes:
    return base64.urlsafe_b64decode(v)


def _hex(v: Any) -> bytes:
    return bytes.fromhex(v)


_BINARY: Final[dict[str, Converter]] = {
    "bytes": _b64,  # JsonConverter writes Connect bytes as base64
    "base64": _b64,
    "base64-url-safe": _b64_url,
    "hex": _hex,
}


def _uuid(v: Any) -> uuid.UUID:
    return uuid.UUID(v)


def _json(v: Any) -> Any:
    return orjson.loads(v)


def _unscaled(raw: bytes, scale: int) -> Decimal:
    # Built from a string so that no context precision rounds a wide NUMERIC.
    return Decimal(f"{int.from_bytes(raw, 'big', signed=True)}E{-scale}")


def _variable_struct(v: dict[str, Any]) -> Decimal:
    scale, value = v["scale"], v["value"]
    if type(scale) is not int or type(value) is not str:
        raise TypeError("not a variable-scale decimal")
    return _unscaled(base64.b64decode(value, validate=True), scale)


def _decimal(mode: str, scale: int | None, sql: str = "") -> Converter:
    quantum = Decimal(1).scaleb(-scale) if scale is not None else None
    if mode == "string":
        if sql == "money" and quantum is not None:
            return _money_text(quantum)
        if quantum is not None:
            # A NUMERIC(p,s) always comes as its text: Decimal itself is the converter (a
            # float here would be double mode, which the config would have said).
            return Decimal
        return _decimal_text(quantum)
    if mode == "precise" and scale is not None:
        return _decimal_bytes(scale)

    def convert(v: Any) -> Any:
        kind = type(v)
        if kind is str:
            raise ValueError(f"a decimal string in decimal.handling.mode={mode}")
        if kind is dict:
            return _variable_struct(v)
        if kind is Decimal:  # a variable-scale struct the decoder already converted
            return v
        if kind is float or kind is int:
            value = Decimal(repr(v))
            return value.quantize(quantum) if quantum is not None else value
        raise TypeError(f"a decimal as JSON {kind.__name__}")

    return convert


def _decimal_other(v: Any, quantum: Decimal | None) -> Decimal:
    kind = type(v)
    if kind is dict:
        return _variable_struct(v)
    if kind is Decimal:  # a variable-scale struct the decoder already converted
        return v  # type: ignore[no-any-return]
    if kind is float or kind is int:
        value = Decimal(repr(v))
        return value.quantize(quantum) if quantum is not None else value
    raise TypeError(f"a decimal as JSON {kind.__name__}")


def _decimal_text(quantum: Decimal | None) -> Converter:
    def convert(v: Any) -> Decimal:
        if type(v) is str:
            return Decimal(v)  # Debezium writes a NUMERIC(p,s) / DECIMAL(p,s) with s digits
        return _decimal_other(v, quantum)

    return convert


def _money_text(quantum: Decimal) -> Converter:
    def convert(v: Any) -> Decimal:
        if type(v) is str:
            # money goes through a double: 1234.50 arrives as "1234.5"
            return Decimal(v).quantize(quantum)
        return _decimal_other(v, quantum)

    return convert


def _decimal_bytes(scale: int) -> Converter:
    exponent = f"E{-scale}"
    a2b, from_bytes = binascii.a2b_base64, int.from_bytes
    quantum = Decimal(1).scaleb(-scale)

    def convert(v: Any) -> Decimal:
        if type(v) is str:
            # From a string, so that no context precision rounds a wide NUMERIC.
            unscaled = from_bytes(a2b(v, strict_mode=True), "big", signed=True)
            return Decimal(str(unscaled) + exponent)
        return _decimal_other(v, quantum)

    return convert


def _array(element: Converter) -> Converter:
    def convert(v: Any) -> Any:
        if type(v) is not list:
            raise TypeError("an array that is not a JSON array")
        return [None if x is None else element(x) for x in v]

    return convert


def _unknown(sql: str) -> Converter:
    why = f"column type {sql or 'unknown'} is not one seam types"

    def convert(v: Any) -> Raw:
        return Raw(v, why)

    return convert


def _fraction_unit(encoding: Encoding, precision: int | None) -> str:
    """'ms' or 'us': how time.precision.mode encodes a time/timestamp of that precision."""
    mode = encoding.time_precision
    if mode == "connect":
        return "ms"
    digits = 6 if precision is None else precision
    return "ms" if digits <= 3 else "us"


def column_converter(column: ColumnType, encoding: Encoding) -> Converter | None:
    """The converter of one column's values, or None when the JSON value is already exact."""
    kind = column.kind
    if kind in _AS_SENT:
        return None
    if kind == "decimal":
        return _decimal(encoding.decimal, column.scale, column.sql)
    if kind == "date":
        return _date
    if kind == "time":
        # PostgreSQL's TIME(0-3) comes in milliseconds even in adaptive_time_microseconds
        # (seen on Debezium 3.5 pgoutput); that mode sends micros for MySQL's TIME only.
        return _time_ms if _fraction_unit(encoding, column.precision) == "ms" else _time_us
    if kind == "timetz":
        return _zoned_time
    if kind == "timestamp":
        return _ts_ms if _fraction_unit(encoding, column.precision) == "ms" else _ts_us
    if kind == "timestamptz":
        return _zoned_timestamp
    if kind == "duration":
        if encoding.time_precision == "adaptive_time_microseconds":
            return _duration_us
        return _duration_ms if _fraction_unit(encoding, column.precision) == "ms" else _duration_us
    if kind == "interval":
        return _interval_iso if encoding.interval == "string" else _interval_numeric
    if kind == "bytes":
        binary: Converter = _BINARY.get(encoding.binary, _b64)
        return binary
    if kind == "bits":
        return _b64  # io.debezium.data.Bits is Connect bytes whatever binary.handling.mode
    if kind == "uuid":
        return _uuid
    if kind == "json":
        return _json
    if kind == "array":
        element = column.element or ColumnType("unknown", column.sql)
        item: Converter | None = column_converter(element, encoding)
        return None if item is None else _array(item)
    return _unknown(column.sql)


# Kinds whose Python values are immutable: an update's unchanged column may share one value
# between `before` and `after` instead of converting it twice.
_SHAREABLE: Final = frozenset(KINDS - {"json", "array", "unknown"})


RowTyper = Callable[[Any, Any, Any, TableRef], None]


@dataclass(frozen=True, slots=True)
class _Table:
    # (column, converter, sql type, shareable) for the columns whose JSON form needs work
    converters: tuple[tuple[str, Converter, str, bool], ...]
    by_column: Mapping[str, Converter]  # the key's converters: every column, typed or not
    known: frozenset[str]
    # Columns left untyped by `TableTypes.only` whose JSON form is not their value: their
    # values become NOT_READ (one dict.update per row) rather than look-alikes.
    untyped: tuple[str, ...]
    # `typer(before, after, key, table)`: the table's rows and key typed in place, by a
    # function made for this table (`_row_typer`).
    typer: RowTyper


def _raw(value: Any, sql: str, exc: Exception) -> Raw:
    return Raw(value, f"not a {sql} value ({type(exc).__name__}: {exc})")


ColumnChoice = Collection[str] | Mapping[str, Collection[str]]


def _chosen(choice: ColumnChoice | None, table: TableRef) -> Collection[str] | None:
    """The columns `choice` picks for `table` (None: all). A mapping names tables by their
    qualified (`public.orders`) or plain name (`orders`); a table it does not name has none."""
    if choice is None:
        return None
    if isinstance(choice, Mapping):
        found = choice.get(table.qualified)
        if found is None:
            found = choice.get(table.name)
        return found if found is not None else ()
    return choice


def _convert_or_raw(conv: Converter, value: Any, sql: str) -> Any:
    try:
        return conv(value)
    except Exception as exc:  # the value does not fit its type: say so, keep it
        return _raw(value, sql, exc)


def _unknown_columns(
    row: dict[str, Any], known: frozenset[str], types: TableTypes, table: TableRef
) -> None:
    """Columns the types do not know: noted (`missed`, read again by a live loader) and Raw."""
    for column in row.keys() - known:
        types.missed.add((table, column))
        v = row[column]
        if v is not None and v is not UNAVAILABLE and type(v) is not Raw:
            row[column] = Raw(v, f"column {column} is not in the types read for {table}")


def _row_typer(
    converters: tuple[tuple[str, Converter, str, bool], ...],
    untyped: tuple[str, ...],
    known: frozenset[str],
    by_column: Mapping[str, Converter],
    types: TableTypes,
) -> RowTyper:
    """A function typing one table's rows, made for its columns: the loop over the columns
    unrolled, each column's name, converter and type constants of the function. What a
    generic loop pays per column and row (the tuple unpacking, the iteration, the lookups
    of loop variables) was most of the cost of typing (connectors/README.md, "Typed
    values"); the conversions themselves are the same functions as ever."""
    env: dict[str, Any] = {
        "UNAVAILABLE": UNAVAILABLE,
        "NOT_READ": NOT_READ,
        "convert_or_raw": _convert_or_raw,
        "raw": _raw,
        "unknown_columns": _unknown_columns,
        "known": known,
        "by_column": by_column,
        "types": types,
    }
    lines = ["def typer(before, after, key, table):", "    if after:"]
    for i, (column, conv, sql, shareable) in enumerate(converters):
        env[f"c{i}"], env[f"s{i}"] = conv, sql
        name = repr(column)
        lines += [
            f"        v = after.get({name})",
            "        if v is None or v is UNAVAILABLE:",
            "            if before:",
            f"                old = before.get({name})",
            "                if old is not None and old is not UNAVAILABLE:",
            f"                    before[{name}] = convert_or_raw(c{i}, old, s{i})",
            "        else:",
            "            try:",
            f"                t = c{i}(v)",
            "            except Exception as exc:",
            f"                t = raw(v, s{i}, exc)",
            f"            after[{name}] = t",
            "            if before:",
            f"                old = before.get({name})",
            "                if old is None or old is UNAVAILABLE:",
            "                    pass",
        ]
        if shareable:  # an unchanged immutable value: the same typed value, not converted again
            lines += ["                elif old == v:", f"                    before[{name}] = t"]
        lines += [
            "                else:",
            f"                    before[{name}] = convert_or_raw(c{i}, old, s{i})",
        ]
    if untyped:  # one C call per row, whatever the number of columns not read
        env["not_read"] = dict.fromkeys(untyped, NOT_READ)
        lines += [
            "        after.update(not_read)",
            "        if before:",
            "            before.update(not_read)",
        ]
    lines += [
        "        if not known.issuperset(after):",
        "            unknown_columns(after, known, types, table)",
        "        if before and not known.issuperset(before):",
        "            unknown_columns(before, known, types, table)",
        "    elif before:",
    ]
    for i, (column, _conv, _sql, _shareable) in enumerate(converters):
        name = repr(column)
        lines += [
            f"        old = before.get({name})",
            "        if old is not None and old is not UNAVAILABLE:",
            f"            before[{name}] = convert_or_raw(c{i}, old, s{i})",
        ]
    if untyped:
        lines += ["        before.update(not_read)"]
    lines += [
        "        if not known.issuperset(before):",
        "            unknown_columns(before, known, types, table)",
    ]
    if by_column:
        lines += [
            # most keys (an int id) need no converter: one C call tells
            "    if key and not by_column.keys().isdisjoint(key):",
            "        for column, v in key.items():",
            "            conv = by_column.get(column)",
            "            if conv is not None and v is not None:",
            "                key[column] = convert_or_raw(conv, v, column)",
        ]
    exec("\n".join(lines), env)  # the source is built above: names only as repr()s
    typer: RowTyper = env["typer"]
    return typer


class TableTypes:
    """Per captured table, the column converters the decoder applies to records without a
    schema. Built once (per connector) from the column types and the connector's encoding.

    `missed` collects what records carried that these types lack: `(table, column)` for a
    column they do not know (its values come back `Raw`), `(table, None)` for a table they do
    not hold (its rows stay as sent). A caller that can read the types again
    (`seam.connectors.columns.LiveTypes`) does so and empties it; the decoder only adds."""

    __slots__ = ("_columns", "_last", "_only", "_tables", "encoding", "missed")

    def __init__(
        self,
        tables: Mapping[TableRef, Mapping[str, ColumnType]],
        encoding: Encoding,
        *,
        only: ColumnChoice | None = None,
    ) -> None:
        self.encoding = encoding
        self.missed: set[tuple[TableRef, str | None]] = set()
        self._columns = {TableRef(t.namespace, t.name): dict(c) for t, c in tables.items()}
        self._only = only
        # The decoder hands over one cached TableRef per table: an identity check spares
        # the dataclass __hash__/__eq__ of a dict lookup on most records.
        self._last: tuple[TableRef | None, _Table | None] = (None, None)
        self._tables: dict[TableRef, _Table] = {}
        for table, columns in self._columns.items():
            chosen = _chosen(only, table)
            converters, untyped, keys = [], [], {}
            for name, column in columns.items():
                conv = column_converter(column, encoding)
                if conv is None:
                    continue
                keys[name] = conv
                sql = column.sql or column.kind
                if chosen is None or name in chosen:
                    converters.append((name, conv, sql, column.kind in _SHAREABLE))
                else:
                    untyped.append(name)
            known = frozenset(columns)
            typer = _row_typer(tuple(converters), tuple(untyped), known, keys, self)
            self._tables[table] = _Table(tuple(converters), keys, known, tuple(untyped), typer)

    def only(self, columns: ColumnChoice) -> TableTypes:
        """These types restricted to the columns a reader uses: `columns` names them (for
        every table) or maps a table (`public.orders` or `orders`) to its columns (a table
        left out has none typed). Only those are converted, so typing costs per column read;
        another column whose JSON form is not its value (a date, a decimal...) comes back
        as `NOT_READ` (whatever was sent, NULL too), never as a look-alike: one
        `dict.update` per row, a fraction of one conversion (wrapping each value in `Raw`
        would cost about as much as converting it). Key columns are always typed."""
        return TableTypes(self._columns, self.encoding, only=columns)

    def columns(self) -> dict[TableRef, dict[str, ColumnType]]:
        """The column types these were built from, per table."""
        return {table: dict(columns) for table, columns in self._columns.items()}

    def with_columns(self, tables: Mapping[TableRef, Mapping[str, ColumnType]]) -> TableTypes:
        """The same encoding and restriction, with `tables` (read again) added or replaced."""
        merged = {**self._columns, **{TableRef(t.namespace, t.name): c for t, c in tables.items()}}
        return TableTypes(merged, self.encoding, only=self._only)

    def __contains__(self, table: TableRef) -> bool:
        return table in self._tables

    def tables(self) -> list[TableRef]:
        return list(self._tables)

    def apply(
        self,
        table: TableRef,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        key: dict[str, Any],
    ) -> bool:
        """Type the columns of `table`'s rows and key in place; False when the table has no
        types here (its rows are left as sent)."""
        last, typed = self._last
        if last is not table:
            typed = self._tables.get(table)
            self._last = (table, typed)
        if typed is None:
            self.missed.add((table, None))
            return False
        typed.typer(before, after, key, table)
        return True

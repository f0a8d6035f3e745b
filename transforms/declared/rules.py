"""The rule kinds a declared column's chain is made of: the reference implementation.

A column's `rules:` is a list; each entry names a kind (`trim`, or `max_length: 200`, or
`timestamp: {zone: Europe/Berlin}`). A kind turns one value into its clean form, passes
NULL (None) on untouched unless it says otherwise (`default`, `boolean`, `not_empty`), and
raises `Unfixable` for a value it cannot fix. What happens then is the rule's policy
(`on_fail:` in its options), else the column's: `reject` (the record goes to the
dead-letter topic, the reason naming the column, the value and the rule), `absent` (the
field is unknown: None), `default` (the column's `default:`), or `repair` (only for kinds
that can repair: `max_length` cuts, `range` clamps, `no_control` removes).

Every kind is pure and total over the values a decoder hands on (str, int, float, Decimal,
bool, date, datetime, None, ...): a value of a type a kind does not take is `Unfixable`,
never an uncaught exception. Each kind also narrows the JSON Schema of its output
(`Kind.narrow`), from which seam derives the schemas of events and states.

The kinds, their options and their exact behaviour are listed in `KINDS` (and the
transforms README's "Declared pipelines"). The compiled engine implements the same kinds;
parity tests hold it to these functions.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from seam.changes import decimal_text
from seam.transforms.provenance import iso_utc

Policy = Literal["reject", "absent", "default", "repair"]
POLICIES: Final = ("reject", "absent", "default", "repair")
Flavour = Literal["postgresql", "mysql", "other"]
Apply = Callable[[Any], Any]
Schema = dict[str, Any]


class Unfixable(ValueError):  # noqa: N818 - a verdict on a value, read as "raise Unfixable"
    """The value breaks the rule and the rule cannot repair it."""


class RuleError(ValueError):
    """A rule's options are wrong (the declaration reader turns it into a file:line error)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


_SHOWN: Final = 40  # characters of a value a reason quotes


def shown(value: Any) -> str:
    """`value` as a reason quotes it: its repr, a text cut to its first 40 characters (the
    length said), an integer beyond 64 bits by its size. A 200,000-character value must not
    become a 200,000-character dead-letter header."""
    if type(value) is str and len(value) > _SHOWN:
        return f"{value[:_SHOWN]!r}... ({len(value)} characters)"
    if type(value) is int and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    return repr(value)


def _text(value: Any) -> str:
    if type(value) is str:
        return value
    raise Unfixable(f"expected text, got {type(value).__name__} {shown(value)}")


# ---------------------------------------------------------------------------- the kinds


@dataclass(frozen=True)
class Kind:
    """One rule kind: how its options read, what it does, how it narrows the schema."""

    name: str
    summary: str
    options: tuple[str, ...]  # its option names (besides on_fail); the first is the shorthand
    build: Callable[[Mapping[str, Any], Flavour], Apply]
    narrow: Callable[[Mapping[str, Any], Schema], Schema]
    repair: Callable[[Mapping[str, Any], Flavour], Apply] | None = None
    pure: bool = True  # same value, same result (lookups are not: their table changes)
    takes_null: bool = False  # the rule is called with None too


def _same(_options: Mapping[str, Any], schema: Schema) -> Schema:
    return schema


def _string(_options: Mapping[str, Any], schema: Schema) -> Schema:
    return {**_not(schema, ("type", "format", "enum", "const")), "type": "string"}


def _not(schema: Schema, keys: Sequence[str]) -> Schema:
    return {k: v for k, v in schema.items() if k not in keys}


# text -----------------------------------------------------------------------------------


def _build_text(_o: Mapping[str, Any], _f: Flavour) -> Apply:
    return _text


def _build_trim(_o: Mapping[str, Any], _f: Flavour) -> Apply:
    def trim(value: Any) -> Any:
        return _text(value).strip()

    return trim


_ALL_WS: Final = re.compile(r"\s+")
_SPACES: Final = re.compile(r"[ \t\u00a0]+")


def fold_whitespace(text: str) -> str:
    """Every run of whitespace (CR and LF too) -> one space; the ends stripped."""
    return _ALL_WS.sub(" ", text).strip()


def fold_lines(text: str) -> str:
    """CRLF and a lone CR -> LF; in each line runs of spaces, tabs and no-break spaces ->
    one space and the ends stripped; the whole text stripped."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n")).strip()


def _build_whitespace(options: Mapping[str, Any], _f: Flavour) -> Apply:
    fold = fold_lines if options.get("mode", "fold") == "lines" else fold_whitespace

    def whitespace(value: Any) -> Any:
        return fold(_text(value))

    return whitespace


def _build_case(options: Mapping[str, Any], _f: Flavour) -> Apply:
    upper = options["to"] == "upper"

    def case(value: Any) -> Any:
        text = _text(value)
        return text.upper() if upper else text.lower()

    return case


def _build_empty_as_absent(_o: Mapping[str, Any], _f: Flavour) -> Apply:
    def empty_as_absent(value: Any) -> Any:
        if type(value) is str and not value.strip():
            return None
        return value

    return empty_as_absent


def _build_null_if(options: Mapping[str, Any], _f: Flavour) -> Apply:
    # Compared by type and value: 0 means unknown, False and 0.0 are not 0 here.
    unknown = {(type(v), v) for v in options["values"]}

    def null_if(value: Any) -> Any:
        try:
            return None if (type(value), value) in unknown else value
        except TypeError:  # an unhashable value (an array column's list) is none of them
            return value

    return null_if


def _build_not_empty(_o: Mapping[str, Any], _f: Flavour) -> Apply:
    def not_empty(value: Any) -> Any:
        if value is None or value == "":
            raise Unfixable("empty")
        return value

    return not_empty


def repair_mojibake(text: str) -> str:
    """Undo one UTF-8-read-as-cp1252 round trip ('CafÃ©' -> 'Café'), only when the whole
    text survives it; anything else (correct text, text broken otherwise) is kept. Only one
    round trip is undone: a doubly broken value stays once broken."""
    if text.isascii():
        return text
    try:
        return text.encode("cp1252").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def _build_mojibake(_o: Mapping[str, Any], _f: Flavour) -> Apply:
    def mojibake(value: Any) -> Any:
        return repair_mojibake(_text(value))

    return mojibake


def _build_max_length(options: Mapping[str, Any], _f: Flavour) -> Apply:
    limit = options["max"]

    def max_length(value: Any) -> Any:
        text = _text(value)
        if len(text) > limit:
            raise Unfixable(f"longer than {limit} characters: {shown(text)}")
        return text

    return max_length


def _repair_max_length(options: Mapping[str, Any], _f: Flavour) -> Apply:
    limit = options["max"]

    def cut(value: Any) -> Any:
        return _text(value)[:limit]

    return cut


def _narrow_max_length(options: Mapping[str, Any], schema: Schema) -> Schema:
    return {**schema, "maxLength": options["max"]}


_CONTROL: Final = "[\\x00-\\x1f\\x7f]"


def _control_pattern(options: Mapping[str, Any]) -> re.Pattern[str]:
    allowed = options.get("allow", "")
    if not allowed:
        return re.compile(_CONTROL)
    return re.compile(f"(?![{re.escape(allowed)}]){_CONTROL}")


def _build_no_control(options: Mapping[str, Any], _f: Flavour) -> Apply:
    control = _control_pattern(options)

    def no_control(value: Any) -> Any:
        text = _text(value)
        if not text.isprintable():  # a quick scan in C: printable text holds no control
            found = control.search(text)
            if found is not None:
                raise Unfixable(
                    f"control character U+{ord(found.group()):04X} at {found.start()} "
                    f"in {shown(text)}"
                )
        return text

    return no_control


def _repair_no_control(options: Mapping[str, Any], _f: Flavour) -> Apply:
    control = _control_pattern(options)

    def remove(value: Any) -> Any:
        return control.sub("", _text(value))

    return remove


def _narrow_no_control(options: Mapping[str, Any], schema: Schema) -> Schema:
    allowed = options.get("allow", "")
    kept = "".join(f"\\x{ord(c):02x}" for c in allowed)
    excluded = "\\x00-\\x1f\\x7f" if not kept else _excluded_controls(allowed)
    return {**schema, "pattern": f"^[^{excluded}]*$"}


def _excluded_controls(allowed: str) -> str:
    chars = [c for c in (*map(chr, range(0x20)), "\x7f") if c not in allowed]
    return "".join(f"\\x{ord(c):02x}" for c in chars)


def _build_pattern(options: Mapping[str, Any], _f: Flavour) -> Apply:
    regex = re.compile(options["regex"])
    text_of_pattern = options["regex"]

    def pattern(value: Any) -> Any:
        text = _text(value)
        if regex.fullmatch(text) is None:
            raise Unfixable(f"does not match {text_of_pattern}: {shown(text)}")
        return text

    return pattern


def _narrow_pattern(options: Mapping[str, Any], schema: Schema) -> Schema:
    # JSON Schema's pattern searches; anchoring it makes it match the whole text, as here.
    return {**schema, "pattern": f"^(?:{options['regex']})$"}


# codes ----------------------------------------------------------------------------------


def _build_codes(options: Mapping[str, Any], _f: Flavour) -> Apply:
    table: dict[Any, Any] = dict(options["map"])
    keep = options.get("unmapped", "reject") == "keep"
    expected = ", ".join(str(k) for k in table)[:200]

    def codes(value: Any) -> Any:
        try:
            return table[value]
        except (KeyError, TypeError):  # TypeError: an unhashable value
            if keep and value is not None:
                return value
            raise Unfixable(f"unknown code {shown(value)} (expected one of {expected})") from None

    return codes


def _narrow_codes(options: Mapping[str, Any], schema: Schema) -> Schema:
    if options.get("unmapped", "reject") == "keep":
        return schema
    values = list(dict.fromkeys(options["map"].values()))
    return {"enum": values}


_TRUE: Final = ("Y", "YES", "T", "TRUE", "1")
_FALSE: Final = ("N", "NO", "F", "FALSE", "0")


def _build_boolean(options: Mapping[str, Any], _f: Flavour) -> Apply:
    true = {str(v).upper() for v in options.get("true", _TRUE)}
    false = {str(v).upper() for v in options.get("false", _FALSE)}
    null: bool | None = options.get("null")

    def boolean(value: Any) -> Any:
        if value is None:
            return null
        if type(value) is bool:
            return value
        if type(value) is int and value in (0, 1):
            return value == 1
        if type(value) is str:
            word = value.strip().upper()
            if word in true:
                return True
            if word in false:
                return False
        raise Unfixable(
            f"not a yes/no value: {shown(value)} (true: {sorted(true)}, false: {sorted(false)})"
        )

    return boolean


def _narrow_boolean(_o: Mapping[str, Any], _schema: Schema) -> Schema:
    return {"type": "boolean"}


# numbers --------------------------------------------------------------------------------

_INTEGER: Final = re.compile(r"[+-]?\d{1,30}")


def _build_integer(_o: Mapping[str, Any], _f: Flavour) -> Apply:
    def integer(value: Any) -> Any:
        kind = type(value)
        if kind is int:
            return value
        if kind is str and _INTEGER.fullmatch(value.strip()):
            return int(value.strip())
        if kind is Decimal and value.is_finite() and value == value.to_integral_value():
            return int(value)
        raise Unfixable(f"expected an integer, got {shown(value)}")

    return integer


def _narrow_integer(_o: Mapping[str, Any], schema: Schema) -> Schema:
    return {**_not(schema, ("type", "format", "pattern")), "type": "integer"}


def _number(value: Any) -> int | Decimal | float:
    number: int | Decimal | float | None = None
    if type(value) in (int, float) or isinstance(value, Decimal):
        number = value
    elif type(value) is str:
        with contextlib.suppress(InvalidOperation):
            number = Decimal(value.strip())
    # NaN is no number a range holds (and ordering a Decimal NaN raises InvalidOperation).
    if number is None or (number.is_nan() if isinstance(number, Decimal) else number != number):
        raise Unfixable(f"expected a number, got {shown(value)}")
    return number


def _bound(options: Mapping[str, Any], key: str) -> Decimal | None:
    value = options.get(key)
    return None if value is None else Decimal(str(value))


def _build_range(options: Mapping[str, Any], _f: Flavour) -> Apply:
    low, high = _bound(options, "min"), _bound(options, "max")

    def in_range(value: Any) -> Any:
        number = _number(value)
        if (low is not None and number < low) or (high is not None and number > high):
            raise Unfixable(f"{shown(value)} is outside {_range_text(low, high)}")
        return value

    return in_range


def _range_text(low: Decimal | None, high: Decimal | None) -> str:
    if low is not None and high is not None:
        return f"{low}..{high}"
    return f">= {low}" if low is not None else f"<= {high}"


def _repair_range(options: Mapping[str, Any], _f: Flavour) -> Apply:
    low, high = _bound(options, "min"), _bound(options, "max")

    def clamp(value: Any) -> Any:
        number = _number(value)
        # An integer stays an integer, inside the bounds: 1.5..9.5 clamps 0 to 2, 10 to 9;
        # a decimal's text (the `decimal` kind's output) stays text.
        if low is not None and number < low:
            bound = low.to_integral_value(ROUND_CEILING) if type(value) is int else low
        elif high is not None and number > high:
            bound = high.to_integral_value(ROUND_FLOOR) if type(value) is int else high
        else:
            return value
        if type(value) is int:
            return int(bound)
        return decimal_text(bound) if type(value) is str else bound

    return clamp


def _narrow_range(options: Mapping[str, Any], schema: Schema) -> Schema:
    if schema.get("type") != "integer":
        return schema  # decimals are text in events: their bounds are the rule's
    out = dict(schema)
    for key, name in (("min", "minimum"), ("max", "maximum")):
        if options.get(key) is not None:
            out[name] = int(Decimal(str(options[key])))
    return out


def _decimal(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        number = value
    elif type(value) is int:
        number = Decimal(value)
    elif type(value) is str:
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise Unfixable(f"expected a decimal number, got {shown(value)}") from None
    else:
        raise Unfixable(f"expected a decimal number, got {shown(value)}")
    if not number.is_finite():
        raise Unfixable(f"expected a finite decimal number, got {shown(value)}")
    return number


def _scaled(number: Decimal, scale: int | None, rounding: str, value: Any) -> Decimal:
    if scale is None:
        return number
    step = Decimal(1).scaleb(-scale)
    try:
        exact = number.quantize(step)
        if exact != number:
            if rounding != "half_even":
                raise Unfixable(f"{shown(value)} has more than {scale} decimal places")
            exact = number.quantize(step, rounding=ROUND_HALF_EVEN)
    except InvalidOperation:  # more digits than a decimal context holds
        raise Unfixable(f"{shown(value)} is too large for {scale} decimal places") from None
    return exact


def _build_decimal(options: Mapping[str, Any], _f: Flavour) -> Apply:
    scale: int | None = options.get("scale")
    rounding = options.get("rounding", "reject")

    def decimal(value: Any) -> Any:
        # Text in plain notation, as the field's schema says ('1000', never '1E+3'): an
        # event is JSON, and JSON has no exact decimal.
        return decimal_text(_scaled(_decimal(value), scale, rounding, value))

    return decimal


_DECIMAL_TEXT: Final = r"^-?\d+(\.\d+)?$"


def _narrow_decimal(_o: Mapping[str, Any], schema: Schema) -> Schema:
    return {"type": "string", "pattern": _DECIMAL_TEXT}


_SYMBOLS: Final = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "INR": "₹"}
_PLAIN: Final = re.compile(r"\d+(?:[.,]\d{1,2})?")
_THOUSANDS_EN: Final = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?")
_THOUSANDS_DE: Final = re.compile(r"\d{1,3}(?:\.\d{3})+(?:,\d{1,2})?")


def parse_amount_text(text: str, marks: re.Pattern[str], value: Any) -> Decimal | None:
    """A human's amount text -> Decimal: currency marks dropped; '12.50', '12,50',
    '1.234,50', '1,234.50' read; None when nothing is left. A separator followed by exactly
    three digits and nothing else ('1,234') is ambiguous (thousands or decimals?): Unfixable,
    as is anything else."""
    stripped = marks.sub("", text).strip()
    if not stripped:
        if text.strip():
            raise Unfixable(f"no amount in {shown(value)}")
        return None
    if _PLAIN.fullmatch(stripped):
        number = stripped.replace(",", ".")
    elif _THOUSANDS_EN.fullmatch(stripped) and "." in stripped:
        number = stripped.replace(",", "")
    elif _THOUSANDS_DE.fullmatch(stripped) and "," in stripped:
        number = stripped.replace(".", "").replace(",", ".")
    elif _THOUSANDS_EN.fullmatch(stripped) or _THOUSANDS_DE.fullmatch(stripped):
        raise Unfixable(f"ambiguous amount {shown(value)}: thousands or decimal separator?")
    else:
        raise Unfixable(f"unreadable amount {shown(value)}")
    return Decimal(number)


def _build_money(options: Mapping[str, Any], _f: Flavour) -> Apply:
    currency = options["currency"]
    source = options.get("from", "amount")
    scale = int(options.get("scale", 2))
    high = _bound(options, "max")
    low = _bound(options, "min")
    low = Decimal(0) if low is None else low
    marks_list = options.get("marks") or [currency, _SYMBOLS.get(currency, currency)]
    marks = re.compile("(?i)" + "|".join(re.escape(str(m)) for m in marks_list))

    def money(value: Any) -> Any:
        if source == "cents":
            if type(value) is not int:
                raise Unfixable(f"expected integer cents, got {shown(value)}")
            amount = Decimal(value).scaleb(-scale)
        elif source == "text":
            parsed = parse_amount_text(_text(value), marks, value)
            if parsed is None:
                return None
            amount = parsed
        else:
            amount = _decimal(value)
        if amount < low or (high is not None and amount > high):
            raise Unfixable(f"amount {shown(value)} is outside {_range_text(low, high)}")
        quantized = _scaled(amount, scale, "reject", value)
        return {"amount": decimal_text(quantized), "currency": currency}

    return money


def _narrow_money(options: Mapping[str, Any], _schema: Schema) -> Schema:
    scale = int(options.get("scale", 2))
    # Exactly `scale` places; none (scale 0, e.g. JPY) means no decimal point either.
    amount = f"^-?\\d+\\.\\d{{{scale}}}$" if scale else "^-?\\d+$"
    return {
        "type": "object",
        "required": ["amount", "currency"],
        "additionalProperties": False,
        "properties": {
            "amount": {"type": "string", "pattern": amount},
            "currency": {"const": options["currency"]},
        },
    }


# time -----------------------------------------------------------------------------------

_EPOCH: Final = datetime(1970, 1, 1)
_UNITS: Final = {"s": 1_000_000, "ms": 1_000, "us": 1}


def _unit(options: Mapping[str, Any], flavour: Flavour) -> int:
    unit = options.get("unit", "auto")
    if unit == "auto":
        # Debezium's default time precision: PostgreSQL TIMESTAMP -> MicroTimestamp,
        # MySQL/MariaDB DATETIME -> Timestamp (milliseconds).
        unit = "us" if flavour == "postgresql" else "ms"
    return _UNITS[unit]


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RuleError(
            f"unknown time zone {name!r}", hint="name an IANA zone, e.g. Europe/Berlin or UTC"
        ) from None


def to_utc(
    naive: datetime,
    zone: ZoneInfo,
    ambiguous: str = "earlier",
    nonexistent: str = "before_offset",
) -> datetime:
    """A naive wall-clock time of `zone` -> an aware UTC datetime, at the two yearly
    transitions as declared:

    * `ambiguous` (the autumn hour that happens twice): `earlier` reads it as its first
      occurrence (summer time), `later` as its second, `reject` refuses it;
    * `nonexistent` (the spring hour that does not happen): `before_offset` reads it with
      the offset in force before the change (02:30 -> 03:30 summer time), `after_offset`
      with the one after (02:30 -> 01:30 winter time), `reject` refuses it.
    """
    first = naive.replace(tzinfo=zone, fold=0)
    second = naive.replace(tzinfo=zone, fold=1)
    offsets = first.utcoffset(), second.utcoffset()
    if offsets[0] == offsets[1]:
        return first.astimezone(UTC)
    # zoneinfo: fold=0 is the offset before the transition, fold=1 the one after.
    gap = offsets[0] is not None and offsets[1] is not None and offsets[0] < offsets[1]
    policy = nonexistent if gap else ambiguous
    if policy == "reject":
        what = "does not exist" if gap else "happens twice"
        raise Unfixable(f"{naive.isoformat()} {what} in {zone.key} (a clock change)")
    chosen = first if policy in ("earlier", "before_offset") else second
    return chosen.astimezone(UTC)


def _naive_of(value: Any, unit: int) -> datetime:
    if type(value) is int:
        try:
            return _EPOCH + timedelta(microseconds=value * unit)
        except OverflowError:
            raise Unfixable(f"timestamp {shown(value)} out of range") from None
    if isinstance(value, datetime):
        return value
    if type(value) is str:
        text = value.strip()
        try:
            return datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError:
            raise Unfixable(f"unreadable timestamp {shown(value)}") from None
    raise Unfixable(f"expected a timestamp, got {type(value).__name__} {shown(value)}")


def _build_timestamp(options: Mapping[str, Any], flavour: Flavour) -> Apply:
    zone = _zone(options.get("zone", "UTC"))
    unit = _unit(options, flavour)
    ambiguous = options.get("ambiguous", "earlier")
    nonexistent = options.get("nonexistent", "before_offset")

    def timestamp(value: Any) -> Any:
        moment = _naive_of(value, unit)
        try:
            if moment.tzinfo is None:
                moment = to_utc(moment, zone, ambiguous, nonexistent)
            return iso_utc(moment)
        except OverflowError:  # year 1 or 9999 moved across midnight by the offset
            raise Unfixable(f"timestamp {shown(value)} out of range in UTC") from None

    return timestamp


def _narrow_timestamp(_o: Mapping[str, Any], _schema: Schema) -> Schema:
    return {"type": "string", "format": "date-time", "pattern": "Z$"}


def _build_date(_o: Mapping[str, Any], _f: Flavour) -> Apply:
    def day(value: Any) -> Any:
        if type(value) is int:  # Debezium's io.debezium.time.Date: days since 1970-01-01
            try:
                return (_EPOCH + timedelta(days=value)).date().isoformat()
            except OverflowError:
                raise Unfixable(f"date {shown(value)} out of range") from None
        if isinstance(value, datetime):
            return value.date().isoformat()
        if isinstance(value, date):
            return value.isoformat()
        if type(value) is str:
            try:
                return date.fromisoformat(value.strip()).isoformat()
            except ValueError:
                raise Unfixable(f"unreadable date {shown(value)}") from None
        raise Unfixable(f"expected a date, got {type(value).__name__} {shown(value)}")

    return day


def _narrow_date(_o: Mapping[str, Any], _schema: Schema) -> Schema:
    return {"type": "string", "format": "date"}


# defaults and references ----------------------------------------------------------------


def _build_default(options: Mapping[str, Any], _f: Flavour) -> Apply:
    fallback = options["value"]

    def default(value: Any) -> Any:
        return fallback if value is None else value

    return default


def _narrow_default(options: Mapping[str, Any], schema: Schema) -> Schema:
    return {**schema, "x-seam-default": options["value"]}


def _build_lookup(_o: Mapping[str, Any], _f: Flavour) -> Apply:
    raise AssertionError("a lookup is built by the engine, which holds its table")


def _narrow_lookup(options: Mapping[str, Any], schema: Schema) -> Schema:
    field = options["field"]
    key = _not(schema, ("x-seam-default",))
    return {
        "type": "object",
        "required": ["id"],
        "additionalProperties": False,
        "properties": {"id": key or {}, field: {}, "resolved": {"const": False}},
        "oneOf": [{"required": [field]}, {"required": ["resolved"]}],
    }


def _o(*names: str) -> tuple[str, ...]:
    return names


KINDS: Final[dict[str, Kind]] = {
    k.name: k
    for k in (
        Kind(
            "text", "requires text (a value of another type is unfixable)", (), _build_text, _string
        ),
        Kind("trim", "strips whitespace at both ends", (), _build_trim, _string),
        Kind(
            "whitespace",
            "mode fold (default): every whitespace run -> one space, ends stripped; mode "
            "lines: CRLF/CR -> LF, runs of spaces/tabs -> one space per line, lines stripped",
            _o("mode"),
            _build_whitespace,
            _string,
        ),
        Kind("case", "to: upper or lower", _o("to"), _build_case, _string),
        Kind(
            "empty_as_absent",
            "'' and whitespace-only text -> NULL (unknown)",
            (),
            _build_empty_as_absent,
            _same,
        ),
        Kind(
            "null_if",
            "values that mean unknown -> NULL, e.g. [0]",
            _o("values"),
            _build_null_if,
            _same,
        ),
        Kind("not_empty", "NULL or '' is unfixable", (), _build_not_empty, _same, takes_null=True),
        Kind(
            "mojibake", "repairs one UTF-8-read-as-cp1252 round trip", (), _build_mojibake, _string
        ),
        Kind(
            "max_length",
            "at most `max` characters (repair: cut)",
            _o("max"),
            _build_max_length,
            _narrow_max_length,
            _repair_max_length,
        ),
        Kind(
            "no_control",
            "no control character (C0, DEL) but those in `allow` (repair: removed)",
            _o("allow"),
            _build_no_control,
            _narrow_no_control,
            _repair_no_control,
        ),
        Kind(
            "pattern",
            "the whole text matches the regular expression",
            _o("regex"),
            _build_pattern,
            _narrow_pattern,
        ),
        Kind(
            "codes",
            "maps legacy codes to names (`map`); unmapped: reject (default) or keep",
            _o("map", "unmapped"),
            _build_codes,
            _narrow_codes,
        ),
        Kind(
            "boolean",
            "yes/no text, 0/1 or a boolean -> true/false (`true`, `false`: the words; "
            "`null`: what NULL means, default NULL)",
            _o("true", "false", "null"),
            _build_boolean,
            _narrow_boolean,
            takes_null=True,
        ),
        Kind("integer", "an integer, or text of one", (), _build_integer, _narrow_integer),
        Kind(
            "range",
            "min <= value <= max (repair: clamped)",
            _o("min", "max"),
            _build_range,
            _narrow_range,
            _repair_range,
        ),
        Kind(
            "decimal",
            "an exact decimal -> its text in plain notation (`scale`: places; rounding: "
            "reject (default) or half_even)",
            _o("scale", "rounding"),
            _build_decimal,
            _narrow_decimal,
        ),
        Kind(
            "money",
            "an amount in `currency` -> {amount, currency}; from: amount (a decimal, the "
            "default), cents (an integer) or text ('12,50 EUR', '1.234,50'); min, max, scale, marks",
            _o("currency", "from", "scale", "min", "max", "marks"),
            _build_money,
            _narrow_money,
        ),
        Kind(
            "timestamp",
            "a naive wall-clock time of `zone` (or an aware one) -> ISO 8601 UTC; unit: auto, "
            "s, ms, us; ambiguous: earlier, later, reject; nonexistent: before_offset, "
            "after_offset, reject",
            _o("zone", "unit", "ambiguous", "nonexistent"),
            _build_timestamp,
            _narrow_timestamp,
        ),
        Kind(
            "date",
            "days since 1970, a date or ISO text -> YYYY-MM-DD",
            (),
            _build_date,
            _narrow_date,
        ),
        Kind(
            "default",
            "NULL -> `value`",
            _o("value"),
            _build_default,
            _narrow_default,
            takes_null=True,
        ),
        Kind(
            "lookup",
            "an id -> {id, <field>} from another captured table kept current in memory, "
            "{id, resolved: false} while it is unknown",
            _o("table", "field"),
            _build_lookup,
            _narrow_lookup,
            pure=False,
        ),
    )
}

# What an option must be; checked when the declaration is read.
_OPTION_CHECKS: Final[dict[tuple[str, str], tuple[str, Callable[[Any], bool]]]] = {
    ("whitespace", "mode"): ("fold or lines", lambda v: v in ("fold", "lines")),
    ("case", "to"): ("upper or lower", lambda v: v in ("upper", "lower")),
    ("null_if", "values"): (
        "a list of plain values (text, numbers, true/false)",
        lambda v: (
            isinstance(v, list) and bool(v) and not any(isinstance(x, list | dict) for x in v)
        ),
    ),
    ("max_length", "max"): ("a whole number >= 1", lambda v: type(v) is int and v >= 1),
    ("no_control", "allow"): (
        'text of control characters, e.g. "\\n"',
        lambda v: isinstance(v, str),
    ),
    ("pattern", "regex"): ("a regular expression", lambda v: isinstance(v, str) and _compiles(v)),
    ("codes", "map"): ("a mapping of code: name", lambda v: isinstance(v, Mapping) and bool(v)),
    ("codes", "unmapped"): ("reject or keep", lambda v: v in ("reject", "keep")),
    ("boolean", "true"): ("a list of words", lambda v: isinstance(v, list)),
    ("boolean", "false"): ("a list of words", lambda v: isinstance(v, list)),
    ("boolean", "null"): ("true, false or null", lambda v: v in (True, False, None)),
    ("range", "min"): ("a number", lambda v: _is_number(v)),
    ("range", "max"): ("a number", lambda v: _is_number(v)),
    ("decimal", "scale"): ("a whole number >= 0", lambda v: type(v) is int and v >= 0),
    ("decimal", "rounding"): ("reject or half_even", lambda v: v in ("reject", "half_even")),
    ("money", "currency"): ("a three-letter code", lambda v: isinstance(v, str) and len(v) == 3),
    ("money", "from"): ("amount, cents or text", lambda v: v in ("amount", "cents", "text")),
    ("money", "scale"): ("a whole number >= 0", lambda v: type(v) is int and v >= 0),
    ("money", "min"): ("a number", lambda v: _is_number(v)),
    ("money", "max"): ("a number", lambda v: _is_number(v)),
    ("money", "marks"): ("a list of texts", lambda v: isinstance(v, list) and bool(v)),
    ("timestamp", "zone"): ("an IANA zone name", lambda v: isinstance(v, str)),
    ("timestamp", "unit"): ("auto, s, ms or us", lambda v: v in ("auto", "s", "ms", "us")),
    ("timestamp", "ambiguous"): (
        "earlier, later or reject",
        lambda v: v in ("earlier", "later", "reject"),
    ),
    (
        "timestamp",
        "nonexistent",
    ): (
        "before_offset, after_offset or reject",
        lambda v: v in ("before_offset", "after_offset", "reject"),
    ),
    ("lookup", "table"): ("a declared table's name", lambda v: isinstance(v, str) and bool(v)),
    ("lookup", "field"): ("a field of that table", lambda v: isinstance(v, str) and bool(v)),
}
_REQUIRED_OPTIONS: Final = {
    "case": ("to",),
    "null_if": ("values",),
    "max_length": ("max",),
    "pattern": ("regex",),
    "codes": ("map",),
    "money": ("currency",),
    "default": ("value",),
    "lookup": ("table", "field"),
}


def _compiles(regex: str) -> bool:
    try:
        re.compile(regex)
    except re.error:
        return False
    return True


def _is_number(value: Any) -> bool:
    if type(value) in (int, float):
        return True
    try:
        Decimal(str(value))
    except InvalidOperation:
        return False
    return True


def check_options(kind: Kind, options: Mapping[str, Any]) -> list[tuple[str | None, str, str]]:
    """The problems of `options` for `kind`: (option or None, what is wrong, the fix)."""
    found: list[tuple[str | None, str, str]] = []
    for name in _REQUIRED_OPTIONS.get(kind.name, ()):
        if name not in options:
            found.append((None, f"rule '{kind.name}' needs '{name}'", _usage(kind)))
    for name, value in options.items():
        check = _OPTION_CHECKS.get((kind.name, name))
        if check is not None and not check[1](value):
            found.append(
                (
                    name,
                    f"'{name}' of rule '{kind.name}' must be {check[0]}, got {value!r}",
                    _usage(kind),
                )
            )
    if kind.name == "timestamp" and isinstance(options.get("zone"), str):
        try:
            _zone(options["zone"])
        except RuleError as exc:
            found.append(("zone", exc.message, exc.hint or ""))
    return found


def _usage(kind: Kind) -> str:
    if not kind.options:
        return f"write '- {kind.name}' ({kind.summary})"
    return f"write '- {kind.name}: {{{', '.join(f'{o}: ...' for o in kind.options)}}}' ({kind.summary})"


__all__ = [
    "KINDS",
    "POLICIES",
    "Flavour",
    "Kind",
    "Policy",
    "RuleError",
    "Unfixable",
    "check_options",
    "fold_lines",
    "fold_whitespace",
    "parse_amount_text",
    "repair_mojibake",
    "shown",
    "to_utc",
]

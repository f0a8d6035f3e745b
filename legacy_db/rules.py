"""Cleaning rules for the legacy catalog's warts (see `seam.legacy_db.models`, W1..W14).

Each rule turns one raw column value into its clean form, or raises `Unfixable` when it
cannot. What happens then is declared per column in the clean stage's tables, never decided
silently here: `reject` sends the record to the dead-letter topic, `absent` drops the field
(the value is recorded as unknown). Rules that repair (mojibake, whitespace, thousands
separators) say so in their docstring.

All rules are pure and total over the values Debezium can send (str, int, float, Decimal,
datetime, None): anything unexpected is `Unfixable`, never an uncaught exception.

Limits: a clean value must fit the legacy column it comes from (`seam.legacy_db.models`), so
that a consumer of the clean topics can rely on the bounds the domain schemas state. Text
rules take the column's width as `max_length` (characters, declared per field in the clean
stage); identifiers and cents must fit INTEGER. Names and SKUs hold no control
characters (C0, DEL); a description keeps its line feeds and nothing else of C0. Every
reason quotes the offending value shortened (`shown`): a 200,000-character value must not
become a 200,000-character dead-letter header.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from seam.transforms.provenance import iso_utc

LEGACY_TZ: Final = ZoneInfo("Europe/Berlin")
CURRENCY: Final = "EUR"
_EPOCH: Final = datetime(1970, 1, 1)
_CENT: Final = Decimal("0.01")
# Every integer column of the catalog is INTEGER: 32 bits, signed.
MAX_INT: Final = 2**31 - 1
# price_cents is INTEGER: a price it cannot hold cannot be the product's price.
MAX_PRICE: Final = (Decimal(MAX_INT) / 100).quantize(_CENT)


class Unfixable(ValueError):  # noqa: N818 - a verdict on a value, read as "raise Unfixable"
    """The value breaks the rule and no repair applies."""


_SHOWN: Final = 40  # characters of a value a reason quotes


def shown(value: Any) -> str:
    """`value` as a reason quotes it: its repr, text cut to its first 40 characters (the
    length said), integers beyond 64 bits by their size."""
    if type(value) is str and len(value) > _SHOWN:
        return f"{value[:_SHOWN]!r}... ({len(value)} characters)"
    if type(value) is int and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    return repr(value)


# Control characters: C0 and DEL. (C1 is left alone: JSON needs no escape for it, and the
# latin-1 mojibake of W9 can hold it.)
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_LF: Final = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


def _no_control(text: str, control: re.Pattern[str] = _CONTROL) -> None:
    """Unfixable when `text` holds a character of `control`. (Callers first ask
    `str.isprintable()`, a quick scan in C: a printable text holds no control character.)"""
    found = control.search(text)
    if found is not None:
        raise Unfixable(
            f"control character U+{ord(found.group()):04X} at {found.start()} in {shown(text)}"
        )


def _too_long(text: str, max_length: int) -> Unfixable:
    return Unfixable(f"longer than {max_length} characters: {shown(text)}")


# --------------------------------------------------------------------------- text


def repair_mojibake(text: str) -> str:
    """W9 (repair): undo one UTF-8-read-as-cp1252 round trip ('CafÃ©' -> 'Café').

    Applied only when the whole string survives `encode('cp1252').decode('utf-8')`; a string
    that does not (correct text, or text broken some other way) is kept as it is. ASCII is
    its own repair. Only one round trip is undone: a doubly broken value stays once broken.
    """
    if text.isascii():
        return text
    try:
        return text.encode("cp1252").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


_SPACES: Final = re.compile(r"[ \t\u00a0]+")
_ALL_WS: Final = re.compile(r"\s+")


def clean_name(value: Any, max_length: int | None = None) -> str:
    """W9 + whitespace (repair): mojibake repaired, whitespace runs (CR/LF included) folded
    to one space, ends stripped. Unfixable: not text, nothing left, longer than
    `max_length`, or a control character left."""
    if type(value) is not str:
        raise Unfixable(f"expected text, got {type(value).__name__}")
    text = repair_mojibake(value)
    if not text.isascii() or "  " in text or "\t" in text or "\n" in text or "\r" in text:
        text = _ALL_WS.sub(" ", text)
    text = text.strip()
    if not text:
        raise Unfixable("empty")
    if max_length is not None and len(text) > max_length:
        raise _too_long(text, max_length)
    if not text.isprintable():
        _no_control(text)
    return text


def optional_text(value: Any) -> str | None:
    """W5: '' (or only whitespace) and NULL both mean unknown -> None; else stripped."""
    if value is None:
        return None
    if type(value) is not str:
        raise Unfixable(f"expected text, got {type(value).__name__}")
    text = value.strip()
    return text or None


def clean_description(value: Any, max_length: int | None = None) -> str | None:
    """W5/W9 (repair): '' -> None; mojibake repaired; CRLF and lone CR -> LF; runs of
    spaces and tabs folded to one space; each line and the whole text stripped.
    Unfixable: longer than `max_length`, or a control character other than LF left."""
    text = optional_text(value)
    if text is None:
        return None
    text = repair_mojibake(text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "  " in text or "\t" in text or "\u00a0" in text or "\n" in text:
        text = "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n")).strip()
    if not text:
        return None
    if max_length is not None and len(text) > max_length:
        raise _too_long(text, max_length)
    if not text.isprintable():
        _no_control(text, _CONTROL_BUT_LF)
    return text


def clean_sku(value: Any, max_length: int | None = None) -> str:
    """W3 (repair): `sku.strip().upper()`. Unfixable: not text, empty, longer than
    `max_length`, inner whitespace or a control character."""
    if type(value) is not str:
        raise Unfixable(f"expected text, got {type(value).__name__}")
    sku = value.strip().upper()
    if not sku:
        raise Unfixable("empty")
    if max_length is not None and len(sku) > max_length:
        raise _too_long(sku, max_length)
    if not sku.isprintable():  # a printable text holds no whitespace but spaces, no controls
        if _ALL_WS.search(sku):
            raise Unfixable(f"whitespace inside {shown(sku)}")
        _no_control(sku)
    elif " " in sku:
        raise Unfixable(f"whitespace inside {shown(sku)}")
    return sku


_EAN: Final = re.compile(r"\d{8,14}")


def clean_ean(value: Any) -> str | None:
    """W5: '' -> None; otherwise 8 to 14 digits after stripping. Unfixable: anything else."""
    text = optional_text(value)
    if text is None:
        return None
    if not _EAN.fullmatch(text):
        raise Unfixable(f"not 8-14 digits: {shown(text)}")
    return text


# --------------------------------------------------------------------------- codes

ProductStatus = Literal["active", "discontinued", "delisted"]
_STATUS: Final[dict[str, ProductStatus]] = {
    "A": "active",
    "D": "discontinued",
    "X": "delisted",
}


def clean_status(value: Any) -> ProductStatus:
    """W4: 'A'/'D'/'X' in either case -> active/discontinued/delisted. Unfixable: others."""
    if type(value) is str:
        status = _STATUS.get(value.strip().upper())
        if status is not None:
            return status
    raise Unfixable(f"unknown status code {shown(value)} (expected one of A, D, X)")


def clean_deleted_flag(value: Any) -> bool:
    """W8: 'Y' -> deleted; 'N' and NULL (rows older than the flag) -> live. Unfixable: others."""
    if value is None:
        return False
    if type(value) is str:
        flag = value.strip().upper()
        if flag == "Y":
            return True
        if flag in ("N", ""):
            return False
    raise Unfixable(f"unknown deletion flag {shown(value)} (expected Y, N or NULL)")


_COUNTRIES: Final = {
    "DE": "DE",
    "GERMANY": "DE",
    "DEUTSCHLAND": "DE",
    "AT": "AT",
    "AUSTRIA": "AT",
    "ÖSTERREICH": "AT",
    "OESTERREICH": "AT",
    "FR": "FR",
    "FRANCE": "FR",
    "FRANKREICH": "FR",
    "CZ": "CZ",
    "CZECHIA": "CZ",
    "CH": "CH",
    "SCHWEIZ": "CH",
    "SWITZERLAND": "CH",
}
_ISO2: Final = re.compile(r"[A-Z]{2}")


def clean_country(value: Any) -> str | None:
    """W12: free text -> ISO 3166 alpha-2 ('Germany', 'deutschland' -> 'DE'); '' -> None; an
    unknown two-letter code is kept upper-cased. Unfixable: a name not in the table."""
    text = optional_text(value)
    if text is None:
        return None
    key = repair_mojibake(text).upper()
    code = _COUNTRIES.get(key)
    if code is not None:
        return code
    if _ISO2.fullmatch(key):
        return key
    raise Unfixable(f"unknown country {shown(text)}")


def clean_email(value: Any) -> str | None:
    """W5: '' -> None; stripped, lower-cased. Unfixable: no '@' or whitespace inside."""
    text = optional_text(value)
    if text is None:
        return None
    if "@" not in text or _ALL_WS.search(text):
        raise Unfixable(f"not an e-mail address: {shown(text)}")
    return text.lower()


# --------------------------------------------------------------------------- ids


def clean_id(value: Any) -> int:
    """A key column: a positive INTEGER. Unfixable: anything else."""
    if type(value) is int and 0 < value <= MAX_INT:
        return value
    raise Unfixable(f"expected a positive integer id up to {MAX_INT} (INTEGER), got {shown(value)}")


def zero_is_absent(value: Any) -> int | None:
    """W6: 0 (and NULL) mean 'none' -> None; else a positive INTEGER. Unfixable: others."""
    if value is None or value == 0:
        return None
    if type(value) is int and 0 < value <= MAX_INT:
        return value
    raise Unfixable(
        f"expected a positive integer up to {MAX_INT} (INTEGER) or 0, got {shown(value)}"
    )


def optional_id(value: Any) -> int | None:
    """A nullable reference: NULL -> None; else a positive integer. Unfixable: others."""
    if value is None:
        return None
    return clean_id(value)


# --------------------------------------------------------------------------- prices

_CURRENCY_TOKENS: Final = re.compile(r"(?i)eur|€|\$")
_PLAIN: Final = re.compile(r"\d+(?:[.,]\d{1,2})?")
_THOUSANDS_EN: Final = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?")
_THOUSANDS_DE: Final = re.compile(r"\d{1,3}(?:\.\d{3})+(?:,\d{1,2})?")


def parse_price_text(value: Any) -> Decimal | None:
    """W1 (repair): the admin UI's price text -> Decimal with two places, EUR.

    Accepted: '12.50', ' 12,50', '$12.50', '12.5 EUR', 'EUR 12,50', '12,50 €', '1.234,50',
    '1,234.50' (any currency mark means EUR: '$' was a UI bug). '' and NULL -> None (no
    price). A separator followed by exactly three digits and nothing else ('1,234' or
    '1.234') is ambiguous (thousands or decimals?) and Unfixable, as is anything else that
    is not a non-negative amount in whole cents, and an amount beyond MAX_PRICE (more than
    price_cents, INTEGER, can hold).
    """
    if value is None:
        return None
    if type(value) is not str:
        raise Unfixable(f"expected text, got {type(value).__name__}")
    text = _CURRENCY_TOKENS.sub("", value).strip()
    if not text:
        if value.strip():
            raise Unfixable(f"no amount in {shown(value)}")
        return None
    if _PLAIN.fullmatch(text):
        number = text.replace(",", ".")
    elif _THOUSANDS_EN.fullmatch(text) and "." in text:
        number = text.replace(",", "")
    elif _THOUSANDS_DE.fullmatch(text) and "," in text:
        number = text.replace(".", "").replace(",", ".")
    elif _THOUSANDS_EN.fullmatch(text) or _THOUSANDS_DE.fullmatch(text):
        raise Unfixable(f"ambiguous price {shown(value)}: thousands or decimal separator?")
    else:
        raise Unfixable(f"unreadable price {shown(value)}")
    amount = Decimal(number)
    if amount > MAX_PRICE:
        raise Unfixable(f"price {shown(value)} is more than price_cents can hold ({MAX_PRICE})")
    return amount.quantize(_CENT)


def price_from_cents(value: Any) -> Decimal | None:
    """W2: integer cents -> Decimal euros; NULL -> None. Unfixable: negative, beyond
    INTEGER, or not int."""
    if value is None:
        return None
    if type(value) is int and 0 <= value <= MAX_INT:
        return (Decimal(value) / 100).quantize(_CENT)
    raise Unfixable(f"expected integer cents from 0 to {MAX_INT} (INTEGER), got {shown(value)}")


def price_of(price_txt: Any, price_cents: Any) -> Decimal | None:
    """W1 + W2: the product's price. Cents win when set (the newer column) but the text, when
    it holds an amount, must agree: a disagreement is Unfixable (which one is right?).
    Both unknown -> None."""
    cents = price_from_cents(price_cents)
    text = parse_price_text(price_txt)
    if cents is None:
        return text
    if text is not None and text != cents:
        raise Unfixable(f"price_txt {shown(price_txt)} disagrees with price_cents {price_cents!r}")
    return cents


def amount_of(value: Any) -> Decimal:
    """W13: a NUMERIC amount (string with decimal.handling.mode=string, or Decimal)."""
    if isinstance(value, Decimal):
        return value
    if type(value) is str:
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            pass
    raise Unfixable(f"expected a decimal amount, got {shown(value)}")


def currency_of(value: Any) -> str:
    """W13: CHAR(3) currency in mixed case -> upper-case ISO code. Unfixable: not 3 letters."""
    if type(value) is str:
        code = value.strip().upper()
        if len(code) == 3 and code.isalpha():
            return code
    raise Unfixable(f"expected a three-letter currency code, got {shown(value)}")


# --------------------------------------------------------------------------- time

TimestampUnit = Literal["ms", "us"]


def local_to_utc(naive: datetime) -> datetime:
    """W7: the shop's naive Europe/Berlin wall-clock time -> an aware UTC datetime.

    Deterministic at the two yearly transitions (zoneinfo with fold=0):
    * the October hour that repeats (02:00-02:59 happens twice) is read as its FIRST
      occurrence, summer time (UTC+2): the legacy app cannot tell us which one it meant,
      and the earlier instant keeps a row's created_at <= any later write of the same row;
    * the March hour that does not exist (02:00-02:59) is read with the offset in force
      before the change (UTC+1), i.e. as 03:xx summer time.
    """
    return naive.replace(tzinfo=LEGACY_TZ, fold=0).astimezone(UTC)


def to_utc_iso(value: Any, unit: TimestampUnit) -> str | None:
    """W7: a naive local timestamp as Debezium sends it -> ISO 8601 UTC text ('...Z'); NULL
    -> None. Debezium sends naive timestamps as the wall-clock time counted from the epoch
    as if it were UTC: integer microseconds (PostgreSQL, MicroTimestamp) or milliseconds
    (MySQL/MariaDB DATETIME, Timestamp), or a naive datetime when the schema was embedded.
    Unfixable: anything else (aware datetimes are converted as they are)."""
    if value is None:
        return None
    if type(value) is int:
        try:
            naive = _EPOCH + (
                timedelta(microseconds=value) if unit == "us" else timedelta(milliseconds=value)
            )
        except OverflowError as exc:
            raise Unfixable(f"timestamp {shown(value)} out of range") from exc
    elif isinstance(value, datetime):
        naive = value
    elif type(value) is str:
        try:
            naive = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise Unfixable(f"unreadable timestamp {shown(value)}") from exc
    else:
        raise Unfixable(f"expected a timestamp, got {type(value).__name__}")
    aware = naive.astimezone(UTC) if naive.tzinfo is not None else local_to_utc(naive)
    return iso_utc(aware)

"""The declared rule kinds (seam.transforms.declared.rules), one by one, and their policies
in a TablePlan: what each accepts, refuses (with a reason that quotes the value, cut short),
does with NULL, each option and each repair."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seam.transforms.declared.clean import TablePlan
from seam.transforms.declared.model import ColumnDecl, RuleSpec, Source, TableDecl
from seam.transforms.declared.rules import (
    KINDS,
    Flavour,
    Unfixable,
    fold_lines,
    fold_whitespace,
    repair_mojibake,
    shown,
    to_utc,
)
from seam.transforms.model import Reject

pytestmark = pytest.mark.unit

LONG = "x" * 500


def kind(name: str, options: Mapping[str, Any] | None = None, flavour: Flavour = "postgresql"):  # type: ignore[no-untyped-def]
    return KINDS[name].build(options or {}, flavour)


def repair(name: str, options: Mapping[str, Any]) -> Callable[[Any], Any]:
    found = KINDS[name].repair
    assert found is not None
    return found(options, "postgresql")


def refused(apply: Callable[[Any], Any], value: Any) -> str:
    with pytest.raises(Unfixable) as caught:
        apply(value)
    return str(caught.value)


# ------------------------------------------------------------------------ the reasons


def test_a_reason_quotes_a_long_value_cut_short() -> None:
    assert shown(LONG) == f"{'x' * 40!r}... (500 characters)"
    assert shown("short") == "'short'"
    assert shown(2**100) == "an integer of 101 bits"
    for name, options in (
        ("max_length", {"max": 3}),
        ("pattern", {"regex": r"\d+"}),
        ("integer", {}),
        ("decimal", {}),
        ("timestamp", {}),
        ("date", {}),
        ("codes", {"map": {"A": "a"}}),
        ("boolean", {}),
        ("money", {"currency": "EUR", "from": "text"}),
    ):
        reason = refused(kind(name, options), LONG)
        assert "(500 characters)" in reason, name
        assert len(reason) < 300, (name, reason)


# ------------------------------------------------------------------------- text kinds


def test_text_requires_text() -> None:
    assert kind("text")("a b") == "a b"
    assert "expected text, got int 5" in refused(kind("text"), 5)


def test_trim_strips_both_ends_and_refuses_other_types() -> None:
    assert kind("trim")("  a b \t\n") == "a b"
    assert "expected text" in refused(kind("trim"), 12)


def test_whitespace_fold_and_lines() -> None:
    assert kind("whitespace")("  a \t\r\n b  c ") == "a b c"
    lines = kind("whitespace", {"mode": "lines"})
    assert lines(" a  \t b \r\n c\u00a0\u00a0d \r e ") == "a b\nc d\ne"
    assert "expected text" in refused(lines, 1.5)


def test_case_upper_and_lower() -> None:
    assert kind("case", {"to": "upper"})("ab-12") == "AB-12"
    assert kind("case", {"to": "lower"})("AbC") == "abc"
    assert "expected text" in refused(kind("case", {"to": "upper"}), True)


def test_empty_as_absent() -> None:
    apply = kind("empty_as_absent")
    assert apply("") is None
    assert apply(" \t ") is None
    assert apply(" a ") == " a "
    assert apply(0) == 0  # not text: kept as it is


def test_null_if_compares_type_and_value() -> None:
    apply = kind("null_if", {"values": [0, "n/a"]})
    assert apply(0) is None
    assert apply("n/a") is None
    # 0 means unknown; False, 0.0 and "0" are other values.
    assert apply(False) is False
    assert apply(0.0) == 0.0
    assert type(apply(0.0)) is float
    assert apply("0") == "0"
    assert apply(7) == 7


def test_not_empty_refuses_null_and_empty_text() -> None:
    apply = kind("not_empty")
    assert KINDS["not_empty"].takes_null
    assert refused(apply, None) == "empty"
    assert refused(apply, "") == "empty"
    assert apply(" ") == " "
    assert apply(0) == 0


def test_mojibake_repairs_one_round_trip_only() -> None:
    apply = kind("mojibake")
    assert apply("CafÃ© MÃ¼ller") == "Café Müller"
    assert apply("Café") == "Café"  # correct text is kept
    assert apply("plain") == "plain"
    twice = "Café".encode().decode("cp1252").encode().decode("cp1252")
    assert apply(twice) == "CafÃ©"  # one round trip undone, the value stays once broken
    assert "expected text" in refused(apply, 3)


@given(st.text())
def test_mojibake_undoes_what_cp1252_broke(text: str) -> None:
    try:
        broken = text.encode("utf-8").decode("cp1252")
    except UnicodeDecodeError:  # bytes cp1252 leaves undefined: no such mojibake exists
        return
    assert repair_mojibake(broken) == text


def test_max_length_refuses_and_repairs_by_cutting() -> None:
    apply = kind("max_length", {"max": 5})
    assert apply("abcde") == "abcde"
    reason = refused(apply, "abcdef")
    assert reason == "longer than 5 characters: 'abcdef'"
    assert repair("max_length", {"max": 5})("abcdefgh") == "abcde"


@given(st.text(), st.integers(min_value=1, max_value=50))
def test_max_length_repair_is_never_longer_than_max(text: str, limit: int) -> None:
    cut = repair("max_length", {"max": limit})(text)
    assert len(cut) <= limit
    assert text.startswith(cut)
    assert kind("max_length", {"max": limit})(cut) == cut


def test_no_control_refuses_and_repairs_by_removing() -> None:
    apply = kind("no_control")
    assert apply("a b\u00e9") == "a b\u00e9"
    assert apply("\u00a0nbsp") == "\u00a0nbsp"  # not printable, but no control character
    assert refused(apply, "ab\x07c") == "control character U+0007 at 2 in 'ab\\x07c'"
    assert "U+007F" in refused(apply, "\x7f")
    assert repair("no_control", {})("a\x00b\nc\x1f") == "abc"


def test_no_control_allow_keeps_the_allowed_ones() -> None:
    apply = kind("no_control", {"allow": "\n\t"})
    assert apply("a\nb\tc") == "a\nb\tc"
    assert "U+000D" in refused(apply, "a\r\nb")
    assert repair("no_control", {"allow": "\n"})("a\r\nb\x00") == "a\nb"


def test_pattern_matches_the_whole_text() -> None:
    apply = kind("pattern", {"regex": r"\d{3}"})
    assert apply("123") == "123"
    assert refused(apply, "1234") == r"does not match \d{3}: '1234'"
    assert "does not match" in refused(apply, "x123")
    assert "expected text" in refused(apply, 123)


# ------------------------------------------------------------------------------ codes


def test_codes_map_and_refuse_unknown() -> None:
    apply = kind("codes", {"map": {"A": "active", "D": "discontinued"}})
    assert apply("A") == "active"
    reason = refused(apply, "Q")
    assert reason == "unknown code 'Q' (expected one of A, D)"
    assert "unknown code" in refused(apply, ["unhashable"])


def test_codes_unmapped_keep() -> None:
    apply = kind("codes", {"map": {"GERMANY": "DE"}, "unmapped": "keep"})
    assert apply("GERMANY") == "DE"
    assert apply("FR") == "FR"


def test_boolean_words_numbers_and_null() -> None:
    apply = kind("boolean")
    for word in ("y", " Yes ", "T", "true", "1", 1, True):
        assert apply(word) is True, word
    for word in ("n", "NO", "f", "False", "0", 0, False):
        assert apply(word) is False, word
    assert apply(None) is None  # NULL stays unknown by default
    assert "not a yes/no value: 2" in refused(apply, 2)
    assert "not a yes/no value: 'maybe'" in refused(apply, "maybe")
    assert "not a yes/no value" in refused(apply, 1.0)


def test_boolean_own_words_and_null_meaning() -> None:
    apply = kind("boolean", {"true": ["Y"], "false": ["N", ""], "null": False})
    assert apply("y") is True
    assert apply("") is False
    assert apply(None) is False
    assert "not a yes/no value" in refused(apply, "yes")


# ---------------------------------------------------------------------------- numbers


def test_integer() -> None:
    apply = kind("integer")
    assert apply(42) == 42
    assert apply(" -17 ") == -17
    assert apply(Decimal("12.000")) == 12
    assert type(apply(Decimal("12"))) is int
    for bad in ("1.5", "", "12a", 1.0, True, Decimal("1.5"), Decimal("NaN"), "9" * 31):
        assert "expected an integer" in refused(apply, bad), bad


def test_range_bounds_and_clamp() -> None:
    apply = kind("range", {"min": 1, "max": 10})
    assert apply(1) == 1
    assert apply("10") == "10"  # kept as it is
    assert apply(Decimal("5.5")) == Decimal("5.5")
    assert refused(apply, 11) == "11 is outside 1..10"
    assert refused(apply, 0) == "0 is outside 1..10"
    assert refused(kind("range", {"min": 0}), -1) == "-1 is outside >= 0"
    assert refused(kind("range", {"max": 0}), 1) == "1 is outside <= 0"
    assert "expected a number" in refused(apply, "ten")
    assert "expected a number" in refused(apply, True)
    clamp = repair("range", {"min": 1, "max": 10})
    assert clamp(0) == 1
    assert type(clamp(0)) is int
    assert clamp(99) == 10
    assert clamp(5) == 5


@pytest.mark.parametrize("value", ["NaN", "sNaN", float("nan"), Decimal("NaN")])
def test_range_refuses_not_a_number(value: Any) -> None:
    # NaN is outside every range; Decimal's ordering of it raises InvalidOperation.
    assert "expected a number" in refused(kind("range", {"min": 0, "max": 10}), value)


def test_range_repair_of_an_integer_stays_inside_fractional_bounds() -> None:
    clamp = repair("range", {"min": 1.5, "max": 9.5})
    assert clamp(0) == 2
    assert clamp(10) == 9
    kind("range", {"min": 1.5, "max": 9.5})(clamp(0))


def test_decimal_exact_and_scaled() -> None:
    apply = kind("decimal")
    assert apply("12.50") == "12.50"
    assert apply(Decimal("1E+3")) == "1000"  # plain notation, as its schema says
    assert apply(7) == "7"
    scaled = kind("decimal", {"scale": 2})
    assert scaled("12.5") == "12.50"
    assert refused(scaled, "12.345") == "'12.345' has more than 2 decimal places"
    assert kind("decimal", {"scale": 2, "rounding": "half_even"})("12.345") == "12.34"
    assert kind("decimal", {"scale": 2, "rounding": "half_even"})("12.355") == "12.36"
    for bad in ("abc", 1.5, True, "NaN", "Infinity"):
        assert "decimal number" in refused(apply, bad), bad
    assert "too large" in refused(scaled, Decimal("1E+40"))


@given(st.decimals(allow_nan=False, allow_infinity=False, places=None))
def test_the_decimal_kind_round_trips(number: Decimal) -> None:
    text = kind("decimal")(number)
    assert re.fullmatch(r"-?\d+(\.\d+)?", text)
    assert Decimal(text) == number
    assert kind("decimal")(text) == text


# ------------------------------------------------------------------------------ money


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("12,50 €", "12.50"),
        ("€12.50", "12.50"),
        ("12.5 EUR", "12.50"),
        ("eur 12", "12.00"),
        ("1.234,50", "1234.50"),
        ("1,234.50", "1234.50"),
        ("1.234.567,00", "1234567.00"),
        ("0,99", "0.99"),
    ],
)
def test_money_text(text: str, amount: str) -> None:
    apply = kind("money", {"currency": "EUR", "from": "text"})
    assert apply(text) == {"amount": amount, "currency": "EUR"}


def test_money_text_refusals() -> None:
    apply = kind("money", {"currency": "EUR", "from": "text"})
    assert "ambiguous amount '1,234'" in refused(apply, "1,234")
    assert "ambiguous amount '1.234 €'" in refused(apply, "1.234 €")
    assert "unreadable amount" in refused(apply, "12 apples")
    assert "no amount in '€'" in refused(apply, "€")
    assert apply("  ") is None  # nothing at all: unknown
    assert "unreadable amount '$12.50'" in refused(apply, "$12.50")  # '$' is not a mark here
    marks = kind("money", {"currency": "EUR", "from": "text", "marks": ["$", "EUR"]})
    assert marks("$12.50") == {"amount": "12.50", "currency": "EUR"}


def test_money_amount_cents_and_bounds() -> None:
    amount = kind("money", {"currency": "EUR"})
    assert amount(Decimal("12.5")) == {"amount": "12.50", "currency": "EUR"}
    assert amount("3") == {"amount": "3.00", "currency": "EUR"}
    assert "more than 2 decimal places" in refused(amount, "1.234")
    assert "outside >= 0" in refused(amount, "-1")  # min defaults to 0
    cents = kind("money", {"currency": "USD", "from": "cents", "max": 100})
    assert cents(1250) == {"amount": "12.50", "currency": "USD"}
    assert cents(0) == {"amount": "0.00", "currency": "USD"}
    assert "expected integer cents, got '1250'" in refused(cents, "1250")
    assert "outside 0..100" in refused(cents, 10001)
    yen = kind("money", {"currency": "JPY", "scale": 0, "min": -5})
    assert yen(12) == {"amount": "12", "currency": "JPY"}
    assert yen(-5) == {"amount": "-5", "currency": "JPY"}
    fine = kind("money", {"currency": "BTC", "scale": 8})
    assert fine(0) == {"amount": "0.00000000", "currency": "BTC"}


# ------------------------------------------------------------------------------- time

BERLIN = {"zone": "Europe/Berlin"}


def _wall(text: str) -> int:
    return (datetime.fromisoformat(text) - datetime(1970, 1, 1)) // timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("earlier", "2026-10-25T00:30:00Z"),  # the first 02:30, still summer time (+02:00)
        ("later", "2026-10-25T01:30:00Z"),  # the second 02:30, winter time (+01:00)
        ("reject", None),
    ],
)
def test_timestamp_autumn_hour_that_happens_twice(policy: str, expected: str | None) -> None:
    apply = kind("timestamp", {**BERLIN, "ambiguous": policy})
    value = _wall("2026-10-25 02:30:00")
    if expected is None:
        assert refused(apply, value) == (
            "2026-10-25T02:30:00 happens twice in Europe/Berlin (a clock change)"
        )
    else:
        assert apply(value) == expected
    # The nonexistent policy does not apply to it.
    assert kind("timestamp", {**BERLIN, "nonexistent": "reject"})(value) == "2026-10-25T00:30:00Z"


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("before_offset", "2026-03-29T01:30:00Z"),  # read with +01:00: 03:30 summer time
        ("after_offset", "2026-03-29T00:30:00Z"),  # read with +02:00: 01:30 winter time
        ("reject", None),
    ],
)
def test_timestamp_spring_hour_that_does_not_happen(policy: str, expected: str | None) -> None:
    apply = kind("timestamp", {**BERLIN, "nonexistent": policy})
    value = _wall("2026-03-29 02:30:00")
    if expected is None:
        assert refused(apply, value) == (
            "2026-03-29T02:30:00 does not exist in Europe/Berlin (a clock change)"
        )
    else:
        assert apply(value) == expected
    assert kind("timestamp", {**BERLIN, "ambiguous": "reject"})(value) == "2026-03-29T01:30:00Z"


def test_timestamp_around_the_transitions() -> None:
    apply = kind("timestamp", BERLIN)
    assert apply(_wall("2026-03-29 01:59:59")) == "2026-03-29T00:59:59Z"
    assert apply(_wall("2026-03-29 03:00:00")) == "2026-03-29T01:00:00Z"
    assert apply(_wall("2026-10-25 01:59:59")) == "2026-10-24T23:59:59Z"
    assert apply(_wall("2026-10-25 03:00:00")) == "2026-10-25T02:00:00Z"
    assert apply(_wall("2026-07-01 12:00:00.250000")) == "2026-07-01T10:00:00.250000Z"


def test_to_utc_directly() -> None:
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Europe/Berlin")
    assert to_utc(datetime(2026, 1, 15, 12), zone) == datetime(2026, 1, 15, 11, tzinfo=UTC)


def test_timestamp_units_and_auto_by_connector_flavour() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5)
    seconds = int((moment - datetime(1970, 1, 1)).total_seconds())
    expected = "2026-01-02T03:04:05Z"
    assert kind("timestamp", {"unit": "s"})(seconds) == expected
    assert kind("timestamp", {"unit": "ms"})(seconds * 1000) == expected
    assert kind("timestamp", {"unit": "us"})(seconds * 1_000_000) == expected
    # auto: PostgreSQL's MicroTimestamp, MySQL/MariaDB's Timestamp (milliseconds).
    assert kind("timestamp", {}, "postgresql")(seconds * 1_000_000) == expected
    assert kind("timestamp", {}, "mysql")(seconds * 1000) == expected
    assert kind("timestamp", {}, "other")(seconds * 1000) == expected


def test_timestamp_aware_values_are_converted_as_they_are() -> None:
    apply = kind("timestamp", BERLIN)  # the zone is for naive values only
    assert apply("2026-07-01T12:00:00Z") == "2026-07-01T12:00:00Z"
    assert apply("2026-07-01T12:00:00+05:30") == "2026-07-01T06:30:00Z"
    aware = datetime(2026, 10, 25, 2, 30, tzinfo=timezone(timedelta(hours=1)))
    assert kind("timestamp", {**BERLIN, "ambiguous": "reject"})(aware) == "2026-10-25T01:30:00Z"
    # Naive text and datetimes are wall-clock times of the zone.
    assert apply("2026-07-01 12:00:00") == "2026-07-01T10:00:00Z"
    assert apply(datetime(2026, 1, 1, 0, 0)) == "2025-12-31T23:00:00Z"


def test_timestamp_refusals() -> None:
    apply = kind("timestamp", BERLIN)
    assert "unreadable timestamp 'yesterday'" in refused(apply, "yesterday")
    assert "expected a timestamp, got float" in refused(apply, 1.5)
    assert "expected a timestamp, got bool" in refused(apply, True)
    assert "out of range" in refused(apply, 10**20)
    # The first microsecond of year 1 in Berlin is still in year 0 in UTC.
    assert "out of range" in refused(apply, _wall("0001-01-01 00:00:00"))


def test_date() -> None:
    apply = kind("date")
    assert apply(0) == "1970-01-01"
    assert apply(20_000) == "2024-10-04"
    assert apply(-1) == "1969-12-31"
    assert apply(date(2026, 2, 3)) == "2026-02-03"
    assert apply(datetime(2026, 2, 3, 23, 59)) == "2026-02-03"
    assert apply(" 2026-02-03 ") == "2026-02-03"
    assert "unreadable date '2026-02-30'" in refused(apply, "2026-02-30")
    assert "out of range" in refused(apply, 10**9)
    assert "expected a date, got float" in refused(apply, 1.0)


# -------------------------------------------------------------- defaults and lookups


def test_default_replaces_null_only() -> None:
    apply = kind("default", {"value": "n/a"})
    assert KINDS["default"].takes_null
    assert apply(None) == "n/a"
    assert apply("") == ""
    assert apply(0) == 0


def test_lookup_is_built_by_the_engine() -> None:
    assert not KINDS["lookup"].pure
    with pytest.raises(AssertionError):
        kind("lookup", {"table": "t", "field": "name"})


# -------------------------------------------------------------- every kind is total

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.decimals(),
    st.text(max_size=30),
    st.sampled_from(["", " ", "12,50 €", "1,234", "2026-03-29 02:30:00", "NaN", "Y", "\x00"]),
    st.dates(),
    st.datetimes(),
    st.lists(st.integers(), max_size=2),
)
OPTIONS: dict[str, dict[str, Any]] = {
    "case": {"to": "upper"},
    "null_if": {"values": [0, ""]},
    "max_length": {"max": 3},
    "pattern": {"regex": r"\d+"},
    "codes": {"map": {"A": "a", 1: "one"}},
    "range": {"min": -5, "max": 5},
    "decimal": {"scale": 2},
    "money": {"currency": "EUR", "from": "text"},
    "timestamp": {"zone": "Europe/Berlin", "ambiguous": "reject", "nonexistent": "reject"},
    "default": {"value": 1},
}


@pytest.mark.parametrize("name", [k for k in KINDS if k != "lookup"])
@settings(max_examples=150, deadline=None)
@given(value=VALUES)
def test_every_kind_is_total(name: str, value: Any) -> None:
    """A value a kind does not take is Unfixable, never another exception."""
    options = OPTIONS.get(name, {})
    apply = kind(name, options)
    with contextlib.suppress(Unfixable):
        apply(value)
    found = KINDS[name].repair
    if found is not None:
        with contextlib.suppress(Unfixable):
            found(options, "postgresql")(value)


@pytest.mark.parametrize("name", ["money", "decimal", "range", "timestamp"])
@given(value=st.integers(min_value=-(10**30), max_value=10**30))
@settings(deadline=None)
def test_numeric_kinds_are_total_over_integers(name: str, value: int) -> None:
    options = {**OPTIONS.get(name, {}), "from": "cents"} if name == "money" else OPTIONS[name]
    with contextlib.suppress(Unfixable):
        kind(name, options)(value)


# ------------------------------------------------------------------- whitespace folds


@given(st.text())
def test_fold_whitespace_is_idempotent_with_no_double_spaces(text: str) -> None:
    folded = fold_whitespace(text)
    assert fold_whitespace(folded) == folded
    assert "  " not in folded
    assert folded == folded.strip()
    assert not any(c.isspace() and c != " " for c in folded)


@given(st.text(alphabet=st.sampled_from(" \t\r\n\u00a0ab\x0bc")))
def test_fold_lines_is_idempotent(text: str) -> None:
    folded = fold_lines(text)
    assert fold_lines(folded) == folded
    assert "\r" not in folded
    assert all("  " not in line and line == line.strip() for line in folded.split("\n"))


# ----------------------------------------------------------------- policies in a plan


def _rule(name: str, on_fail: str | None = None, **options: Any) -> RuleSpec:
    return RuleSpec(name, options, on_fail)  # type: ignore[arg-type]


def _table(*columns: ColumnDecl) -> TableDecl:
    return TableDecl("orders", columns, key=(columns[0].name,))


def _plan(*columns: ColumnDecl, flavour: Flavour = "postgresql") -> TablePlan:
    def no_lookup(table: str, field: str) -> Callable[[Any], Any]:
        raise AssertionError("no lookup here")

    return TablePlan(_table(*columns), flavour, no_lookup)


def _col(name: str, *rules: RuleSpec, column: str | None = None, **kw: Any) -> ColumnDecl:
    return ColumnDecl(name, (Source(column or name, rules),), **kw)


def test_reject_in_the_new_row_names_column_rule_and_value() -> None:
    plan = _plan(
        _col("id", _rule("integer")),
        _col("note", _rule("max_length", max=3), column="legacy_note"),
    )
    with pytest.raises(Reject) as caught:
        plan.clean({"id": "x", "legacy_note": "abcdef"}, strict=True)
    assert caught.value.reason == (
        "orders: id: integer: expected an integer, got 'x'; "
        "legacy_note: max_length: longer than 3 characters: 'abcdef'"
    )


def test_the_old_row_never_rejects() -> None:
    plan = _plan(_col("id", _rule("integer")), _col("n", _rule("integer"), default=0))
    clean, problems = plan.clean({"id": "x", "n": "y"}, strict=False)
    assert clean == {"id": None, "n": None}
    assert problems == [
        "id: integer: expected an integer, got 'x'",
        "n: integer: expected an integer, got 'y'",
    ]


def test_absent_and_default_policies() -> None:
    plan = _plan(
        _col("id", _rule("integer")),
        _col("a", _rule("integer"), on_fail="absent"),
        _col("d", _rule("integer"), on_fail="default", default=-1),
        _col("r", _rule("integer", on_fail="absent")),  # the rule's own policy wins
    )
    clean, problems = plan.clean({"id": 1, "a": "x", "d": "y", "r": "z"}, strict=True)
    assert clean == {"id": 1, "a": None, "d": -1, "r": None}
    assert [p.split(":")[0] for p in problems] == ["a", "d", "r"]
    # A NULL value is not a failure: the default fills it, nothing is noted.
    clean, problems = plan.clean({"id": 1, "a": None, "d": None, "r": None}, strict=True)
    assert clean == {"id": 1, "a": None, "d": -1, "r": None}
    assert problems == []


def test_repair_policy() -> None:
    plan = _plan(
        _col("id", _rule("integer")),
        _col("n", _rule("max_length", "repair", max=3), _rule("no_control", "repair")),
        _col("q", _rule("range", "repair", min=0, max=9)),
    )
    clean, problems = plan.clean({"id": 1, "n": "a\x00bcdef", "q": 12}, strict=True)
    assert clean == {"id": 1, "n": "ab", "q": 9}  # cut to 'a\x00b', then the control removed
    assert problems == []


def test_a_failing_repair_rejects() -> None:
    plan = _plan(_col("id", _rule("integer")), _col("q", _rule("range", "repair", max=9)))
    with pytest.raises(Reject, match="q: range: expected a number, got 'x'"):
        plan.clean({"id": 1, "q": "x"}, strict=True)


def test_combine_first_takes_the_first_known_source() -> None:
    column = ColumnDecl(
        "price",
        (Source("new_price", (_rule("integer"),)), Source("old_price", (_rule("integer"),))),
        combine="first",
    )
    plan = _plan(_col("id"), column)
    assert plan.clean({"id": 1, "new_price": "5", "old_price": "6"}, strict=True)[0]["price"] == 5
    assert plan.clean({"id": 1, "new_price": None, "old_price": "6"}, strict=True)[0]["price"] == 6
    assert plan.clean({"id": 1}, strict=True)[0]["price"] is None
    # The first known one wins before the second is even cleaned.
    assert plan.clean({"id": 1, "new_price": "5", "old_price": "bad"}, strict=True)[0]["price"] == 5
    with pytest.raises(Reject, match="new_price: integer: expected an integer"):
        plan.clean({"id": 1, "new_price": "bad", "old_price": "6"}, strict=True)


def test_combine_agree_requires_known_sources_to_be_equal() -> None:
    column = ColumnDecl(
        "price",
        (
            Source("cents", (_rule("money", currency="EUR", **{"from": "cents"}),)),
            Source("text", (_rule("money", currency="EUR", **{"from": "text"}),)),
        ),
        combine="agree",
    )
    plan = _plan(_col("id"), column)
    price = {"amount": "12.50", "currency": "EUR"}
    assert plan.clean({"id": 1, "cents": 1250, "text": "12,50 €"}, strict=True)[0]["price"] == price
    assert plan.clean({"id": 1, "cents": None, "text": "12,50"}, strict=True)[0]["price"] == price
    assert plan.clean({"id": 1, "cents": 1250, "text": " "}, strict=True)[0]["price"] == price
    with pytest.raises(Reject) as caught:
        plan.clean({"id": 1, "cents": 1250, "text": "13,00"}, strict=True)
    assert caught.value.reason == "orders: cents/text: text '13,00' disagrees with cents 1250"
    with pytest.raises(Reject, match="cents/text: text: money: ambiguous amount '1,234'"):
        plan.clean({"id": 1, "cents": 1250, "text": "1,234"}, strict=True)


def test_required() -> None:
    plan = _plan(
        _col("id", _rule("integer"), required=True),
        _col("sku", _rule("trim"), _rule("empty_as_absent"), required=True),
    )
    with pytest.raises(Reject) as caught:
        plan.clean({"id": 1, "sku": "  "}, strict=True)
    assert caught.value.reason == "orders: sku: required, got NULL"
    with pytest.raises(Reject) as caught:  # a failure of its own is not said twice
        plan.clean({"id": "x", "sku": "a"}, strict=True)
    assert caught.value.reason == "orders: id: integer: expected an integer, got 'x'"
    assert plan.clean({"id": None, "sku": None}, strict=False)[0] == {"id": None, "sku": None}


def test_like_reuses_the_other_clean_version_for_unchanged_columns() -> None:
    plan = _plan(_col("id", _rule("integer")), _col("n", _rule("trim")))
    after, _ = plan.clean({"id": "1", "n": " b "}, strict=True)
    before, _ = plan.clean({"id": "1", "n": " a "}, strict=False, like=(["n"], after))
    assert before == {"id": 1, "n": "a"}


SAME_LOOKING = [True, 1, 1.0, Decimal(1), Decimal("1.0"), "1", False, 0, 0.0, Decimal(0), "0"]


@pytest.mark.parametrize(
    "rules",
    [
        (),
        (_rule("boolean"),),
        (_rule("integer"),),
        (_rule("null_if", values=[0]),),
        (_rule("codes", map={1: "one", "1": "text one"}, unmapped="keep"),),
        (_rule("decimal"),),
    ],
)
@given(values=st.lists(st.sampled_from(SAME_LOOKING), max_size=12))
@settings(deadline=None)
def test_the_memo_does_not_confuse_equal_values_of_other_types(
    rules: tuple[RuleSpec, ...], values: list[Any]
) -> None:
    """True == 1 == 1.0 == Decimal(1) in Python, not for a rule: a remembered result of one
    is never the result of another."""
    column = _col("v", *rules, on_fail="absent")
    memo = _plan(_col("id"), column)
    for value in values:
        fresh = _plan(_col("id"), column)
        expected = fresh.clean({"id": 1, "v": value}, strict=True)
        got = memo.clean({"id": 1, "v": value}, strict=True)
        assert got == expected
        assert type(got[0]["v"]) is type(expected[0]["v"])


def test_a_table_with_no_rules_passes_values_on(tmp_path: Path) -> None:
    plan = _plan(_col("id"), _col("x"))
    assert plan.clean({"id": 1, "x": [1, 2]}, strict=True) == ({"id": 1, "x": [1, 2]}, [])

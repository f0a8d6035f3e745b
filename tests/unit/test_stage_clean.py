"""The clean stage's rules against the legacy catalog's real warts (W1..W14)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from seam.changes import RawRecord
from seam.legacy_db import rules
from seam.legacy_db.generator import format_price_text, mojibake
from seam.legacy_db.stages.clean import CleanStage, clean_row
from seam.legacy_db.synthetic import envelope, micros
from seam.transforms.model import Item, Reject
from seam.transforms.stages.decode import DecodeStage

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12.50", "12.50"),
        (" 12,50", "12.50"),
        ("$12.50", "12.50"),
        ("12.5 EUR", "12.50"),
        ("EUR 12,50", "12.50"),
        ("12,50 €", "12.50"),
        ("1.234,50", "1234.50"),
        ("1,234.50", "1234.50"),
        ("12 EUR", "12.00"),
        ("0,99", "0.99"),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_price_text_shapes(text: str | None, expected: str | None) -> None:
    result = rules.parse_price_text(text)
    assert result == (Decimal(expected) if expected else None)
    if result is not None:
        assert result.as_tuple().exponent == -2  # always whole cents


@pytest.mark.parametrize("bad", ["1,234", "1.234", "abc", "12.345", "-3.00", "EUR", "1.2.3", 12])
def test_price_text_unfixable(bad: Any) -> None:
    with pytest.raises(rules.Unfixable):
        rules.parse_price_text(bad)


@pytest.mark.parametrize(
    "shape",
    [
        "plain",
        "comma_space",
        "dollar",
        "eur_suffix",
        "eur_prefix",
        "euro_sign",
        "thousands_de",
        "thousands_en",
    ],
)
@pytest.mark.parametrize("cents", [99, 100, 1250, 123450, 2500000])
def test_every_generator_price_shape_round_trips(shape: str, cents: int) -> None:
    assert rules.parse_price_text(format_price_text(cents, shape)) == Decimal(cents) / 100


@pytest.mark.parametrize(
    ("txt", "cents", "expected"),
    [
        ("12,50 €", 1250, "12.50"),  # both set and agreeing
        ("12,50 €", None, "12.50"),  # W2: cents NULL, text is the price
        ("", 1250, "12.50"),  # text unknown, cents known
        (None, None, None),  # no price at all
        ("", None, None),
    ],
)
def test_price_from_both_columns(txt: str | None, cents: int | None, expected: str | None) -> None:
    assert rules.price_of(txt, cents) == (Decimal(expected) if expected else None)


def test_price_columns_that_disagree_are_unfixable() -> None:
    with pytest.raises(rules.Unfixable, match="disagrees"):
        rules.price_of("13.00", 1250)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [(" ab-001234", "AB-001234"), ("AB-001234 ", "AB-001234"), ("Ab-001234", "AB-001234")],
)
def test_sku(raw: str, clean: str) -> None:
    assert rules.clean_sku(raw) == clean


@pytest.mark.parametrize(
    "bad", ["", "   ", "AB 12", "AB\u00a012", "AB\u200312", "AB\x1f12", None, 5]
)
def test_sku_unfixable(bad: Any) -> None:
    with pytest.raises(rules.Unfixable):
        rules.clean_sku(bad)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("A", "active"),
        ("a", "active"),
        ("D", "discontinued"),
        ("d", "discontinued"),
        ("X", "delisted"),
        ("x", "delisted"),
    ],
)
def test_status_codes(code: str, status: str) -> None:
    assert rules.clean_status(code) == status


@pytest.mark.parametrize("bad", ["Q", "", None, "AA"])
def test_status_unfixable(bad: Any) -> None:
    with pytest.raises(rules.Unfixable):
        rules.clean_status(bad)


@pytest.mark.parametrize(
    ("flag", "deleted"), [("Y", True), ("N", False), (None, False), ("y", True)]
)
def test_soft_delete_flag(flag: str | None, deleted: bool) -> None:
    assert rules.clean_deleted_flag(flag) is deleted


@pytest.mark.parametrize(
    "word", ["Café", "Grüntee", "Crème & Käse", "Smørrebrød", "Pâté", "Müller GmbH"]
)
def test_mojibake_is_repaired_and_correct_text_kept(word: str) -> None:
    assert rules.repair_mojibake(mojibake(word)) == word
    assert rules.repair_mojibake(word) == word
    assert rules.clean_name(f"  {mojibake(word)}   Mug ") == f"{word} Mug"


def test_description_whitespace_crlf_and_empty() -> None:
    assert rules.clean_description("Dishwasher safe.\r\nHand wash only.") == (
        "Dishwasher safe.\nHand wash only."
    )
    assert rules.clean_description("Made  in   Portugal. ") == "Made in Portugal."
    assert rules.clean_description("") is None
    assert rules.clean_description(None) is None
    assert (
        rules.clean_description(mojibake("Ideal für Café und Küche."))
        == "Ideal für Café und Küche."
    )


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("DE", "DE"),
        ("Germany", "DE"),
        ("deutschland", "DE"),
        ("AT", "AT"),
        ("Österreich", "AT"),
        (mojibake("Österreich"), "AT"),
        ("FR", "FR"),
        ("cz", "CZ"),
        ("", None),
        (None, None),
    ],
)
def test_country(raw: str | None, code: str | None) -> None:
    assert rules.clean_country(raw) == code


def test_unknown_country_name_is_unfixable() -> None:
    with pytest.raises(rules.Unfixable):
        rules.clean_country("Atlantis")


@pytest.mark.parametrize(("value", "expected"), [(0, None), (None, None), (7, 7)])
def test_zero_means_absent(value: int | None, expected: int | None) -> None:
    assert rules.zero_is_absent(value) == expected


@pytest.mark.parametrize(
    ("local", "utc"),
    [
        ("2024-01-15 12:00:00", "2024-01-15T11:00:00Z"),  # winter, UTC+1
        ("2024-07-15 12:00:00", "2024-07-15T10:00:00Z"),  # summer, UTC+2
        # October: 02:30 happens twice; the first occurrence (summer time) is chosen.
        ("2024-10-27 02:30:00", "2024-10-27T00:30:00Z"),
        ("2024-10-27 03:30:00", "2024-10-27T02:30:00Z"),
        # March: 02:30 does not exist; read with the offset before the change (UTC+1).
        ("2024-03-31 02:30:00", "2024-03-31T01:30:00Z"),
    ],
)
def test_berlin_wall_clock_to_utc(local: str, utc: str) -> None:
    assert rules.to_utc_iso(micros(local), "us") == utc
    assert rules.to_utc_iso(micros(local) // 1000, "ms") == utc
    assert rules.to_utc_iso(local, "us") == utc


def test_timestamp_null_and_garbage() -> None:
    assert rules.to_utc_iso(None, "us") is None
    with pytest.raises(rules.Unfixable):
        rules.to_utc_iso("yesterday", "us")
    with pytest.raises(rules.Unfixable):
        rules.to_utc_iso([1], "us")


ROW: dict[str, Any] = {
    "prod_id": 7,
    "sku": " ab-0000007",
    "prod_name": mojibake("Café") + " Mug",
    "price_txt": " 12,50",
    "price_cents": 1250,
    "cat_id": 3,
    "supp_id": 0,
    "status_cd": "a",
    "is_deleted": None,
    "ean": "",
    "descr": "Hand  wash.\r\nOnly.",
    "created_at": micros("2024-03-01 10:11:12"),
    "updated_at": None,
}


def test_clean_product_row() -> None:
    row, problems = clean_row("products", ROW, "us", strict=True)
    assert problems == []
    assert row == {
        "product_id": 7,
        "sku": "AB-0000007",
        "name": "Café Mug",
        "price": Decimal("12.50"),
        "category_id": 3,
        "supplier_id": None,
        "status": "active",
        "deleted": False,
        "ean": None,
        "description": "Hand wash.\nOnly.",
        "created_at": "2024-03-01T09:11:12Z",
        "updated_at": None,
    }


def test_a_row_breaking_every_rule_is_rejected_naming_each_column() -> None:
    broken = {
        **ROW,
        "sku": "",
        "prod_name": "  ",
        "price_txt": "1,234",
        "price_cents": None,
        "status_cd": "Q",
        "is_deleted": "?",
        "ean": "12ab",
        "created_at": "never",
    }
    with pytest.raises(Reject) as info:
        clean_row("products", broken, "us", strict=True)
    for column in ("sku", "prod_name", "price_txt", "status_cd", "is_deleted", "ean", "created_at"):
        assert column in info.value.reason


def test_old_row_problems_do_not_reject() -> None:
    row, problems = clean_row("products", {**ROW, "status_cd": "Q"}, "us", strict=False)
    assert row["status"] is None
    assert problems
    assert "status_cd" in problems[0]


def test_stage_uses_connector_units_and_toast_placeholder() -> None:
    after = {**ROW, "descr": "__debezium_unavailable_value", "prod_name": "New"}
    key, value = envelope("products", "u", ROW, after, 100)
    (item,) = DecodeStage().process(Item(RawRecord(key, value, topic="catalog.public.products")))
    (item,) = CleanStage().process(item)
    assert item.after is not None
    assert item.before is not None
    assert item.after["description"] == "Hand wash.\nOnly."  # unchanged TOASTed value kept
    assert item.after["created_at"] == "2024-03-01T09:11:12Z"  # postgresql: microseconds


# ----------------------------------------------------------------- limits (issue 10, §3)


def test_reasons_quote_values_shortened() -> None:
    assert rules.shown("Mug") == "'Mug'"
    assert rules.shown("A" * 200_000) == f"{'A' * 40!r}... (200000 characters)"
    assert rules.shown(2**70) == "an integer of 71 bits"


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        ("prod_name", "A" * 200_000, "longer than 200 characters"),
        ("prod_name", "N" * 201, "longer than 200 characters"),
        ("sku", "S" * 5_000, "longer than 32 characters"),
        ("sku", "AB-" + "1" * 30, "longer than 32 characters"),
        ("prod_name", "Mug\x00", "control character U+0000 at 3"),
        ("prod_name", "Mug\x07 blue", "control character U+0007 at 3"),
        ("prod_name", "Mug\x7f", "control character U+007F"),
        ("prod_name", "Mug\x0bblue", "control character U+000B"),  # VT is not folded
        ("sku", "AB-1\x00", "control character U+0000"),
        ("descr", "Dishwasher\x07 safe.", "control character U+0007"),
        ("descr", "D" * 65_536, "longer than 65535 characters"),
        ("prod_id", 2**31, "up to 2147483647 (INTEGER)"),
        ("cat_id", 2**31, "up to 2147483647 (INTEGER)"),
        ("supp_id", 2**63, "up to 2147483647 (INTEGER)"),
        ("price_cents", 2**31, "from 0 to 2147483647 (INTEGER)"),
    ],
)
def test_a_value_beyond_its_column_is_rejected_naming_column_rule_and_value(
    column: str, value: Any, rule: str
) -> None:
    row = {**ROW, column: value}
    if column == "price_cents":
        row["price_txt"] = ""
    with pytest.raises(Reject) as info:
        clean_row("products", row, "us", strict=True)
    reason = info.value.reason
    assert reason.startswith("products: ")
    assert column in reason.split(": ")[1]  # the column ("price_txt/price_cents" for a price)
    assert rule in reason
    assert rules.shown(value) in reason  # the value, shortened
    assert len(reason) < 250


def test_values_at_the_limits_are_kept() -> None:
    row = {
        **ROW,
        "prod_id": 2**31 - 1,
        "sku": " ab-" + "1" * 29 + " ",  # 32 once stripped
        "prod_name": "  " + "é" * 200 + "  ",
        "descr": "Line one.\r\n" + "d" * 65_525,  # 65,535 once CRLF is LF
        "cat_id": 2**31 - 1,
        "price_txt": "21.474.836,47 €",
        "price_cents": 2**31 - 1,
    }
    clean, _ = clean_row("products", row, "us", strict=True)
    assert len(clean["sku"]) == 32
    assert clean["name"] == "é" * 200
    assert len(clean["description"]) == 65_535
    assert clean["description"].startswith("Line one.\nddd")  # LF kept, CR cleaned
    assert clean["price"] == Decimal("21474836.47")
    assert clean["product_id"] == clean["category_id"] == 2**31 - 1


def test_the_repairs_still_apply_before_the_limits() -> None:
    # Mojibake and whitespace shrink a name: the limit is on the clean value.
    name = mojibake("Café") + "   " + "x" * 193  # 201 raw, 198 clean
    assert len(name) == 201
    assert rules.clean_name(name, max_length=200) == "Café " + "x" * 193
    assert rules.clean_name("Mug\tblue\r\n", max_length=200) == "Mug blue"
    assert rules.clean_description("a\tb\r\nc", max_length=5) == "a b\nc"


@pytest.mark.parametrize("text", ["1" * 40, "1" * 5_000 + ",00", "21474836.48", "99.999.999,00"])
def test_a_price_beyond_the_cents_column_is_unfixable_not_a_crash(text: str) -> None:
    with pytest.raises(rules.Unfixable, match="more than price_cents can hold"):
        rules.parse_price_text(text)


def test_an_old_row_beyond_the_limits_makes_the_old_value_unknown() -> None:
    old = {**ROW, "prod_name": "N" * 300, "sku": "AB-1\x07"}
    row, problems = clean_row("products", old, "us", strict=False)
    assert row["name"] is None
    assert row["sku"] is None
    assert [p.split(":")[0] for p in problems] == ["sku", "prod_name"]


def test_reference_rows_have_their_limits_too() -> None:
    category = {
        "cat_id": 3,
        "parent_id": 0,
        "cat_name": "T" * 101,
        "descr": "ok",
        "created_at": None,
    }
    with pytest.raises(Reject, match="cat_name: longer than 100"):
        clean_row("categories", category, "us", strict=True)
    supplier = {
        "supp_id": 4,
        "supp_name": "Rossi\x00 AG",
        "email": None,
        "phone": None,
        "country": None,
        "created_at": None,
    }
    with pytest.raises(Reject, match="supp_name: control character"):
        clean_row("suppliers", supplier, "us", strict=True)


def test_declared_widths_are_the_legacy_column_types() -> None:
    from sqlalchemy import Text

    from seam.legacy_db.models import Base
    from seam.legacy_db.stages.clean import TABLES

    declared = 0
    for table, fields in TABLES.items():
        for field in fields:
            if field.max_length is None:
                continue
            (column,) = field.columns
            kind = Base.metadata.tables[table].c[column].type
            width = 65_535 if isinstance(kind, Text) else kind.length  # type: ignore[attr-defined]
            assert field.max_length == width, (table, column)
            declared += 1
    # Every text field that reaches a domain event declares its width.
    assert declared == 6


def test_long_values_are_not_remembered() -> None:
    from seam.legacy_db.stages import clean as stage

    stage._STEPS.clear()
    clean_row("products", {**ROW, "prod_name": "A" * 200_000}, "us", strict=False)
    clean_row("products", {**ROW, "prod_name": "Short"}, "us", strict=False)
    memo = next(s.memo for s in stage._steps("products", "us") if s.name == "name")
    assert memo is not None
    assert "Short" in memo
    assert all(len(k) <= 1_000 for k in memo)

"""The catalog generator: deterministic, the documented sizes, every documented wart."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter

import pytest

from seam.legacy_db import generator
from seam.legacy_db.generator import CatalogSize, product_chunks
from seam.legacy_db.models import COLUMNS
from seam.legacy_db.tsv import decode_line

pytestmark = pytest.mark.unit


def parse_price_text(text: str) -> int | None:
    """A reference reading of W1 price texts, to cents: what a transform stage must do."""
    t = text.strip().replace("EUR", "").replace("€", "").replace("$", "").strip()
    if not t:
        return None
    if re.fullmatch(r"\d{1,3}(\.\d{3})+,\d{2}", t) or re.fullmatch(r"\d+,\d{1,2}", t):
        t = t.replace(".", "").replace(",", ".")
    else:
        t = t.replace(",", "")
    euros, _, cents = t.partition(".")
    return int(euros) * 100 + int((cents + "00")[:2])


def rows(lines: list[str], table: str) -> list[dict[str, str | None]]:
    return [dict(zip(COLUMNS[table], decode_line(line), strict=True)) for line in lines]


@pytest.fixture(scope="module")
def catalog() -> dict[str, list[dict[str, str | None]]]:
    size = CatalogSize.for_products(20_000)
    out: dict[str, list[dict[str, str | None]]] = {
        "products": [],
        "product_prices": [],
        "stock_levels": [],
        "product_tags": [],
    }
    for chunk in product_chunks(5, size):
        for table in out:
            out[table].extend(rows(getattr(chunk, table), table))
    return out


def test_same_seed_same_data_and_other_seed_other_data() -> None:
    size = CatalogSize.for_products(6_000)

    def dump(seed: int) -> list[str]:
        return [
            line
            for chunk in product_chunks(seed, size)
            for lines in (
                chunk.products,
                chunk.product_prices,
                chunk.stock_levels,
                chunk.product_tags,
            )
            for line in lines
        ]

    assert dump(1) == dump(1)
    assert dump(1) != dump(2)
    assert generator.category_rows(1, size) == generator.category_rows(1, size)
    assert generator.supplier_rows(1, size) != generator.supplier_rows(2, size)


@pytest.mark.parametrize(
    ("products", "categories", "suppliers"),
    [(0, 20, 10), (1_000, 20, 10), (100_000, 50, 200), (10_000_000, 500, 2000)],
)
def test_reference_table_sizes_follow_the_product_count(
    products: int, categories: int, suppliers: int
) -> None:
    size = CatalogSize.for_products(products)
    assert (size.categories, size.suppliers) == (categories, suppliers)


def test_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="products"):
        CatalogSize.for_products(-1)


def test_exactly_the_requested_products_with_children(catalog: dict) -> None:
    products = catalog["products"]
    assert [int(p["prod_id"]) for p in products] == list(range(1, 20_001))
    # Every product has one open price row; its amount is the product's price.
    open_prices = {p["prod_id"]: p for p in catalog["product_prices"] if p["valid_to"] is None}
    assert len(open_prices) == len(products)
    price_ids = [int(p["price_id"]) for p in catalog["product_prices"]]
    assert price_ids == list(range(1, len(price_ids) + 1))
    stock_per_product = Counter(s["prod_id"] for s in catalog["stock_levels"])
    assert set(stock_per_product.values()) == {1, 2}
    assert len(stock_per_product) == len(products)
    for p in products[:2000]:
        if p["price_cents"] is not None:
            amount = open_prices[p["prod_id"]]["amount"]
            assert amount is not None
            assert int(amount.replace(".", "")) == int(p["price_cents"])


def test_empty_catalog_yields_nothing() -> None:
    assert list(product_chunks(1, CatalogSize.for_products(0))) == []


def test_w1_w2_price_texts_agree_with_cents_where_both_are_set(catalog: dict) -> None:
    texts = [p["price_txt"] for p in catalog["products"]]
    assert any(t.startswith(" ") and "," in t for t in texts)
    assert any(t.startswith("$") for t in texts)
    assert any(t.endswith(" EUR") for t in texts)
    assert any(t.startswith("EUR ") for t in texts)
    assert any(t.endswith(" €") for t in texts)
    assert any(re.fullmatch(r"\d{1,3}(\.\d{3})+,\d{2}", t) for t in texts)
    assert any(re.fullmatch(r"\d{1,3}(,\d{3})+\.\d{2}", t) for t in texts)
    assert "" in texts
    assert any(re.fullmatch(r"\d+\.\d EUR", t) for t in texts)  # '12.5 EUR'
    for p in catalog["products"]:
        if p["price_cents"] is not None and p["price_txt"]:
            assert parse_price_text(p["price_txt"]) == int(p["price_cents"]), p


def test_w2_cents_are_missing_only_on_old_never_updated_rows(catalog: dict) -> None:
    missing = [p for p in catalog["products"] if p["price_cents"] is None]
    assert missing
    for p in missing:
        assert p["updated_at"] is None
        assert p["created_at"] < "2015-06-01"


def test_w3_skus_are_warty_but_unique_once_canonical(catalog: dict) -> None:
    skus = [p["sku"] for p in catalog["products"]]
    assert any(s.startswith(" ") for s in skus)
    assert any(s.endswith(" ") for s in skus)
    assert any(s.strip().islower() for s in skus)
    assert any(re.fullmatch(r"[A-Z][a-z]-\d{7}", s) for s in skus)
    canonical = [s.strip().upper() for s in skus]
    assert len(set(canonical)) == len(canonical)
    assert all(re.fullmatch(r"[A-Z]{2}-\d{7}", s) for s in canonical)


def test_w4_status_codes_in_both_cases(catalog: dict) -> None:
    assert {p["status_cd"] for p in catalog["products"]} == {"A", "a", "D", "d", "X", "x"}


def test_w5_w6_empty_strings_and_zeroes_mean_null(catalog: dict) -> None:
    products = catalog["products"]
    for column in ("descr", "ean"):
        values = {p[column] for p in products}
        assert "" in values
        assert None in values
    assert any(p["supp_id"] == "0" for p in products)
    size = CatalogSize.for_products(20_000)
    categories = generator.category_rows(5, size)
    assert any(c[1] == 0 for c in categories)
    assert any(c[1] != 0 for c in categories)
    suppliers = generator.supplier_rows(5, size)
    assert any(s[2] == "" for s in suppliers)


def test_w7_timestamps_are_naive_and_never_after_the_generation_horizon(catalog: dict) -> None:
    for p in catalog["products"][:3000]:
        created = dt.datetime.fromisoformat(p["created_at"])
        assert created.tzinfo is None
        if p["updated_at"] is not None:
            assert (
                created <= dt.datetime.fromisoformat(p["updated_at"]) <= generator.GENERATED_UNTIL
            )
    assert any(p["updated_at"] is None for p in catalog["products"])


def test_w8_soft_delete_flag_with_nulls(catalog: dict) -> None:
    flags = Counter(p["is_deleted"] for p in catalog["products"])
    assert set(flags) == {"Y", "N", None}
    for p in catalog["products"]:
        if p["is_deleted"] is None:
            assert p["created_at"] < "2012-01-01"


def test_w9_mojibake_is_present_and_reversible(catalog: dict) -> None:
    broken = [p["prod_name"] for p in catalog["products"] if "Ã" in p["prod_name"]]
    assert broken
    for name in broken:
        fixed = name.encode("cp1252").decode("utf-8")
        assert "Ã" not in fixed
    assert generator.mojibake("Café") == "CafÃ©"
    assert any(p["descr"] and "\r\n" in p["descr"] for p in catalog["products"])


def test_w10_orphan_categories(catalog: dict) -> None:
    n_cat = CatalogSize.for_products(20_000).categories
    cats = [p["cat_id"] for p in catalog["products"]]
    assert any(c is not None and int(c) > n_cat for c in cats)
    assert None in cats


def test_w11_tags_without_key_and_with_duplicates(catalog: dict) -> None:
    pairs = Counter((t["prod_id"], t["tag"]) for t in catalog["product_tags"])
    assert max(pairs.values()) >= 2
    tags = {t["tag"] for t in catalog["product_tags"]}
    assert {"bio", "Bio", " bio"} <= tags


def test_w13_w14_currency_case_and_oversold_stock(catalog: dict) -> None:
    assert {p["currency"] for p in catalog["product_prices"]} == {"EUR", "eur"}
    assert any(int(s["qty_on_hand"]) < 0 for s in catalog["stock_levels"])
    assert {s["warehouse_cd"] for s in catalog["stock_levels"]} == set(generator.WAREHOUSES)


@pytest.mark.parametrize(
    ("cents", "shape", "text"),
    [
        (1250, "plain", "12.50"),
        (1250, "comma_space", " 12,50"),
        (1250, "dollar", "$12.50"),
        (1250, "eur_suffix", "12.5 EUR"),
        (1200, "eur_suffix", "12 EUR"),
        (1250, "eur_prefix", "EUR 12,50"),
        (1250, "euro_sign", "12,50 €"),
        (123450, "thousands_de", "1.234,50"),
        (123450, "thousands_en", "1,234.50"),
        (1250, "empty", ""),
    ],
)
def test_price_text_shapes(cents: int, shape: str, text: str) -> None:
    assert generator.format_price_text(cents, shape) == text
    if text:
        assert parse_price_text(text) == cents


def test_unknown_price_shape_is_an_error() -> None:
    with pytest.raises(ValueError, match="shape"):
        generator.format_price_text(1, "roman")

"""The catalog's routes file (legacy_db/migration/routes.yaml): its compare rules make the
legacy app's warty answer (legacy_db/README.md, A1..A8) equal to the memory image's clean
one for the same product, and still catch a real difference."""

from __future__ import annotations

from typing import Any

import pytest

from seam.legacy_db.files import folder
from seam.migration.compare import compare, legacy_absent
from seam.migration.routes import Capability, load_routes

pytestmark = pytest.mark.unit

LEGACY: dict[str, Any] = {  # A1/A2/A3: legacy names, values as stored, local dates
    "prod_id": 42,
    "sku": " ab-0000042",
    "prod_name": "KaffeebÃ¤r  Deluxe ",
    "price_txt": "12,50 €",
    "price_cents": 1250,
    "cat_id": 3,
    "supp_id": 0,
    "status_cd": "a",
    "is_deleted": None,
    "ean": "",
    "descr": " Fein\r\ngemahlen  ",
    "created_at": "01.03.2009 07:05:09",
    "updated_at": "0000-00-00 00:00:00",
}
IMAGE: dict[str, Any] = {  # what `seam serve` answers for the same row, cleaned
    "data": {
        "product_id": 42,
        "sku": "AB-0000042",
        "name": "Kaffeebär Deluxe",
        "status": "active",
        "price": {"amount": "12.50", "currency": "EUR"},
        "category": {"id": 3, "name": "Tea"},
        "description": "Fein\ngemahlen",
        "created_at": "2009-03-01T06:05:09Z",
    },
    "position": {"offsets": "0:12"},
}


def details() -> Capability:
    routes = load_routes(folder("migration") / "routes.yaml")
    found = routes.capability("product-details")
    assert found is not None
    return found


def test_the_routes_file_declares_reads_before_details_and_writes_on_legacy() -> None:
    routes = load_routes(folder("migration") / "routes.yaml")
    names = [c.name for c in routes.capabilities]
    # /products/new and /products/search are matched before product-details' {id}
    assert names.index("product-form") < names.index("product-details")
    assert names.index("product-search") < names.index("product-details")
    modes = {c.name: str(c.mode) for c in routes.capabilities}
    assert modes["rename"] == modes["reprice"] == modes["product-details"] == "legacy"
    assert details().new_path("/products/42", {"id": "42"}) == "/product/42"


def test_a_warty_legacy_answer_equals_the_clean_image_answer() -> None:
    rules = details().compare
    assert compare(LEGACY, IMAGE, rules) == []
    renamed = {**IMAGE, "data": {**IMAGE["data"], "name": "Teebär Deluxe"}}
    assert compare(LEGACY, renamed, rules) == [
        {"field": "name", "legacy": "Kaffeebär Deluxe", "new": "Teebär Deluxe"}
    ]


def test_not_found_soft_deleted_and_delisted_legacy_answers_mean_absent() -> None:
    rules = details().compare
    assert legacy_absent({"error": "Product 42 not found"}, rules) == "error"
    assert legacy_absent({**LEGACY, "is_deleted": "Y"}, rules) == "is_deleted in ['Y']"
    assert legacy_absent({**LEGACY, "status_cd": "x"}, rules) == "status_cd in ['X', 'x']"
    assert legacy_absent(LEGACY, rules) is None

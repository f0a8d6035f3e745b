"""The legacy app's pure parts: the warts of its answers and its request validation. The
app's refusals are checked through its ASGI interface on a database that is never reached:
a bad request is refused before any query."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
from fastapi.testclient import TestClient

from seam.errors import ConfigError
from seam.legacy_db import generator
from seam.legacy_db.app import (
    NEVER,
    BadRequestError,
    create_app,
    created_text,
    legacy_product,
    page_arguments,
    parse_discontinue,
    parse_new_product,
    parse_price,
    parse_recategorize,
    parse_rename,
    parse_reprice,
    price_fields,
    product_id,
    updated_text,
)
from seam.legacy_db.app_client import check_app_url

pytestmark = pytest.mark.unit

ROW: dict[str, Any] = {
    "prod_id": 7,
    "sku": " ab-0000007",
    "prod_name": "CafÃ© Mug ",
    "price_txt": " 12,50",
    "price_cents": 1250,
    "cat_id": None,
    "supp_id": 0,
    "status_cd": "a",
    "is_deleted": None,
    "ean": "",
    "descr": None,
    "created_at": dt.datetime(2009, 3, 1, 7, 5, 9),
    "updated_at": None,
}


def test_a_product_keeps_the_legacy_names_and_the_stored_values() -> None:
    shown = legacy_product(ROW)
    assert list(shown) == list(ROW)  # A1: the columns, in table order
    # A2: nothing trimmed, repaired or normalised; '' and null both kept (W3, W5, W9)
    assert shown["sku"] == " ab-0000007"
    assert shown["prod_name"] == "CafÃ© Mug "
    assert shown["ean"] == ""
    assert shown["descr"] is None
    assert shown["is_deleted"] is None


def test_the_two_date_formats_and_the_zero_date() -> None:
    assert created_text(dt.datetime(2009, 3, 1, 7, 5, 9)) == "01.03.2009 07:05:09"
    assert updated_text(dt.datetime(2023, 10, 29, 2, 30)) == "2023-10-29 02:30:00"
    assert updated_text(None) == NEVER == "0000-00-00 00:00:00"
    shown = legacy_product(ROW)
    assert (shown["created_at"], shown["updated_at"]) == ("01.03.2009 07:05:09", NEVER)


def test_every_price_text_the_workload_writes_is_read_back_to_its_cents() -> None:
    # The app derives the cents from a text alone (as rules.py reads W1), and checks a text
    # sent with cents against them: every shape the workload writes must pass.
    rng = random.Random(3)
    for _ in range(20_000):
        cents = max(99, generator.price_cents(rng) + rng.randint(-300, 300) * 10)
        text = generator.format_price_text(cents, generator.price_shape(rng))
        assert price_fields({"price": text, "price_cents": cents}) == (text, cents)
        if text:
            assert parse_price(text) == cents, text


def test_price_text_and_cents() -> None:
    assert price_fields({"price": " 12,50"}) == (" 12,50", 1250)
    assert price_fields({"price_cents": 1250}) == ("", 1250)  # W1: '' with the cents set
    assert price_fields({"price": "", "price_cents": 1250}) == ("", 1250)
    with pytest.raises(BadRequestError, match="disagree"):
        price_fields({"price": "12.50", "price_cents": 1299})
    with pytest.raises(BadRequestError, match="missing field"):
        price_fields({})


def test_a_new_product_from_the_form_fields() -> None:
    new = parse_new_product(
        {"sku": "AB-1 ", "prod_name": "Mug", "price": "EUR 3,50", "currency": "eur", "tag": " Bio"}
    )
    assert (new.sku, new.price_txt, new.price_cents, new.currency) == (
        "AB-1 ",
        "EUR 3,50",
        350,
        "eur",
    )
    assert (new.cat_id, new.supp_id, new.status_cd, new.warehouse_cd, new.qty_on_hand) == (
        None,
        0,
        "A",
        "BER",
        0,
    )
    assert new.tag == " Bio"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1], "JSON object"),
        ({"sku": "A", "prod_name": "B"}, "missing field(s) price"),
        ({"sku": "A", "prod_name": "B", "price_cents": -1}, "price_cents: expected 0.."),
        ({"sku": "A", "prod_name": "B", "price": "1", "colour": "red"}, "unknown field(s) colour"),
        ({"sku": "A", "prod_name": "  ", "price": "1"}, "prod_name: must not be blank"),
        ({"sku": "A" * 33, "prod_name": "B", "price": "1"}, "sku: at most 32 characters"),
        ({"sku": "A", "prod_name": 5, "price": "1"}, "prod_name: expected text"),
        ({"sku": "A", "prod_name": "B\x00", "price": "1"}, "prod_name: holds a NUL"),
        ({"sku": "A", "prod_name": "B", "descr": "\ud800", "price": "1"}, "descr: holds a NUL"),
        ({"sku": "A", "prod_name": "B", "price": "cheap"}, "unreadable price"),
        ({"sku": "A", "prod_name": "B", "price": "1,234"}, "ambiguous price"),
        ({"sku": "A", "prod_name": "B", "price": ""}, "price: must not be blank"),
        ({"sku": "A", "prod_name": "B", "price": "1", "cat_id": 0}, "cat_id: expected 1.."),
        ({"sku": "A", "prod_name": "B", "price": "1", "cat_id": True}, "cat_id: expected a whole"),
        ({"sku": "A", "prod_name": "B", "price": "1", "cat_id": 2**31}, "cat_id: expected 1.."),
        ({"sku": "A", "prod_name": "B", "price": "1", "status_cd": "Q"}, "status_cd"),
        ({"sku": "A", "prod_name": "B", "price": "1", "status_cd": ["A"]}, "status_cd"),
        ({"sku": "A", "prod_name": "B", "price": "1", "warehouse_cd": "LON"}, "warehouse_cd"),
        ({"sku": "A", "prod_name": "B", "price": "1", "currency": "USD"}, "EUR only"),
        ({"sku": "A", "prod_name": "B", "price": "1", "qty_on_hand": "3"}, "qty_on_hand"),
    ],
)
def test_a_bad_new_product_is_refused_with_what_is_wrong(body: Any, message: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        parse_new_product(body)
    assert message in caught.value.message


def test_the_update_bodies() -> None:
    assert parse_rename({"prod_name": "Tea "}) == ("Tea ",)
    assert parse_reprice({"price": "$12.50"}) == ("$12.50", 1250, "EUR")
    assert parse_recategorize({"cat_id": 4}) == (4,)
    assert parse_discontinue(None) == ("D",)
    assert parse_discontinue({"status_cd": "d"}) == ("d",)
    for parse, body in (
        (parse_rename, {}),
        (parse_rename, {"name": "x"}),
        (parse_reprice, {"price": "12.505"}),
        (parse_recategorize, {"cat_id": "4"}),
        (parse_discontinue, {"status_cd": "X"}),
    ):
        with pytest.raises(BadRequestError):
            parse(body)


def test_paging_and_product_numbers() -> None:
    assert page_arguments(None, None) == (1, 20)
    assert page_arguments("3", "100") == (3, 100)
    for page, per_page in (
        ("0", None),
        ("x", None),
        ("-1", None),
        (None, "101"),
        ("9" * 5000, None),
    ):
        with pytest.raises(BadRequestError):
            page_arguments(page, per_page)
    assert product_id("42") == 42
    for text in ("0", "4x", "-3", "99999999999", "\u00b2", "9" * 5000, "", " 4"):
        with pytest.raises(BadRequestError):
            product_id(text)


def test_the_app_url_must_be_http() -> None:
    assert check_app_url("http://127.0.0.1:8790/") == "http://127.0.0.1:8790"
    with pytest.raises(ConfigError, match="--app-url"):
        check_app_url("postgresql://u@h/db")


@pytest.fixture
def client() -> TestClient:
    # Nothing listens on port 1: any request that reached the database would fail with 503.
    return TestClient(create_app("postgresql://u:secret-pw@127.0.0.1:1/catalog"))


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "text"),
    [
        ("GET", "/products/abc", None, 400, "product number: expected 1.."),
        ("GET", "/products?page=0", None, 400, "page: expected a number"),
        ("GET", "/products/search", None, 400, "q: give the text"),
        ("GET", "/products/search?q=a%00", None, 400, "q: holds a NUL"),
        ("POST", "/products", {"sku": "A"}, 400, "missing field(s) prod_name"),
        ("POST", "/products/3/rename", {"prod_name": ""}, 400, "prod_name: must not be blank"),
        ("POST", "/products/3/price", {"price": "a lot"}, 400, "unreadable price"),
        ("POST", "/products/3/fly", {}, 404, "no action"),
        ("POST", "/products/3/delist", {"why": 1}, 400, "unknown field(s) why"),
        ("PUT", "/products/3", None, 405, "Method Not Allowed"),
        ("GET", "/nowhere", None, 404, "GET /nowhere"),
    ],
)
def test_bad_requests_are_html_pages_with_a_4xx(
    client: TestClient, method: str, path: str, body: Any, status: int, text: str
) -> None:
    response = client.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")  # A5
    assert text in response.text.replace("&#x27;", "'")


def test_a_body_that_is_not_json_is_refused(client: TestClient) -> None:
    response = client.post("/products/3/rename", content=b"prod_name=Tea")
    assert response.status_code == 400
    assert "not JSON" in response.text


def test_a_database_that_fails_is_a_503_page_without_the_password(client: TestClient) -> None:
    response = client.get("/products/3")
    assert response.status_code == 503
    assert "cannot reach the database" in response.text
    assert "secret-pw" not in response.text

"""Debezium-shaped change records for the legacy catalog, without a database.

For tests and benchmarks: rows from the legacy generator (the very warts seeded into the
real databases) wrapped the way Debezium's PostgreSQL connector sends them with
`decimal.handling.mode=string` and no embedded schema (integers as JSON numbers, naive
timestamps as microseconds since the epoch read as UTC).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator, Mapping
from typing import Any, Final

import orjson

from seam.legacy_db import generator, tsv
from seam.legacy_db.models import COLUMNS

_EPOCH: Final = dt.datetime(1970, 1, 1)
_INT_COLUMNS: Final = frozenset(
    {
        "prod_id",
        "price_cents",
        "cat_id",
        "supp_id",
        "parent_id",
        "price_id",
        "qty_on_hand",
    }
)
_TIME_COLUMNS: Final = frozenset(
    {"created_at", "updated_at", "valid_from", "valid_to", "last_counted"}
)
# Each table's primary key columns: Debezium's record key holds them (stock_levels: two).
KEYS: Final[dict[str, tuple[str, ...]]] = {
    "products": ("prod_id",),
    "categories": ("cat_id",),
    "suppliers": ("supp_id",),
    "product_prices": ("price_id",),
    "stock_levels": ("prod_id", "warehouse_cd"),
}


def micros(text: str) -> int:
    """'YYYY-MM-DD HH:MM:SS' wall-clock -> Debezium MicroTimestamp."""
    return (dt.datetime.fromisoformat(text) - _EPOCH) // dt.timedelta(microseconds=1)


def wire_row(table: str, values: list[str | None] | tuple[Any, ...]) -> dict[str, Any]:
    """A generator row (text or wire values) as Debezium's `after` for `table`."""
    row: dict[str, Any] = {}
    for column, value in zip(COLUMNS[table], values, strict=True):
        if value is not None and column in _INT_COLUMNS:
            value = int(value)
        elif value is not None and column in _TIME_COLUMNS:
            value = micros(str(value))
        row[column] = value
    return row


def product_rows(products: int, seed: int = 1) -> Iterator[dict[str, Any]]:
    yield from _chunk_rows("products", products, seed)


def price_rows(products: int, seed: int = 1) -> Iterator[dict[str, Any]]:
    """The product_prices rows of a catalog of `products` (W7, W13: 'eur' and 'EUR')."""
    yield from _chunk_rows("product_prices", products, seed)


def stock_rows(products: int, seed: int = 1) -> Iterator[dict[str, Any]]:
    """The stock_levels rows of a catalog of `products` (W7, W14: negative quantities)."""
    yield from _chunk_rows("stock_levels", products, seed)


def _chunk_rows(table: str, products: int, seed: int) -> Iterator[dict[str, Any]]:
    size = generator.CatalogSize.for_products(products)
    for chunk in generator.product_chunks(seed, size):
        for line in getattr(chunk, table):
            yield wire_row(table, tsv.decode_line(line.rstrip("\n")))


def reference_rows(products: int, seed: int = 1) -> Iterator[tuple[str, dict[str, Any]]]:
    size = generator.CatalogSize.for_products(products)
    for row in generator.category_rows(seed, size):
        yield "categories", wire_row("categories", row)
    for row in generator.supplier_rows(seed, size):
        yield "suppliers", wire_row("suppliers", row)


def source(table: str, lsn: int, *, snapshot: str = "false", db: str = "catalog") -> dict[str, Any]:
    ts = 1_795_392_989_806 + lsn % 1_000_000
    return {
        "version": "3.5.0.Final",
        "connector": "postgresql",
        "name": "catalog",
        "ts_ms": ts,
        "ts_us": ts * 1000,
        "ts_ns": ts * 1_000_000,
        "snapshot": snapshot,
        "db": db,
        "sequence": f'[null,"{lsn}"]',
        "schema": "public",
        "table": table,
        "txId": 700 + lsn // 100,
        "lsn": lsn,
        "xmin": None,
    }


def envelope(
    table: str,
    op: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    lsn: int,
    *,
    snapshot: str = "false",
) -> tuple[bytes, bytes]:
    """(key, value) bytes of one change record as Debezium writes them (no schema)."""
    row = after if after is not None else before
    assert row is not None
    key = orjson.dumps({column: row[column] for column in KEYS.get(table, ("id",))})
    ts = 1_795_392_990_000 + lsn % 1_000_000
    value = orjson.dumps(
        {
            "before": before,
            "after": after,
            "source": source(table, lsn, snapshot=snapshot),
            "transaction": None,
            "op": op,
            "ts_ms": ts,
            "ts_us": ts * 1000,
            "ts_ns": ts * 1_000_000,
        }
    )
    return key, value


def typical_changes(count: int, seed: int = 3) -> list[tuple[bytes, bytes]]:
    """`count` typical product change records: a snapshot read of half as many products,
    then updates that reprice, rename, recategorise, discontinue or soft-delete them."""
    rng = random.Random(seed)
    rows = list(product_rows(count // 2, seed=seed))
    out = [
        envelope("products", "r", None, r, 1000 + i, snapshot="true") for i, r in enumerate(rows)
    ]
    lsn = 10_000_000
    while len(out) < count:
        before = rng.choice(rows)
        kind = rng.random()
        after = dict(before)
        if kind < 0.4:
            cents = max(99, (before["price_cents"] or 1000) + rng.randint(-300, 300) * 10)
            after.update(price_cents=cents, price_txt=f"{cents // 100},{cents % 100:02d} €")
        elif kind < 0.6:
            after["prod_name"] = before["prod_name"] + " II"
        elif kind < 0.75:
            after["cat_id"] = rng.randint(1, 20)
        elif kind < 0.9:
            after["status_cd"] = "D"
        else:
            after["is_deleted"] = "Y"
        lsn += 1
        out.append(envelope("products", "u", before, after, lsn))
    return out


def typical_stock_changes(count: int, seed: int = 3) -> list[tuple[bytes, bytes]]:
    """`count` typical stock_levels change records: a snapshot read of half as many stock
    levels, then updates that move the quantity on hand (most) or record a stock take."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    products = max(1, count // 6)
    while len(rows) < count // 2:
        rows.extend(stock_rows(products, seed=seed + len(rows)))
    rows = rows[: count // 2]
    out = [
        envelope("stock_levels", "r", None, r, 1000 + i, snapshot="true")
        for i, r in enumerate(rows)
    ]
    lsn = 10_000_000
    while len(out) < count:
        before = rng.choice(rows)
        after = dict(before)
        after["qty_on_hand"] = before["qty_on_hand"] + rng.randint(-20, 20)
        if rng.random() < 0.3:
            after["last_counted"] = (
                before["last_counted"] or 1_700_000_000_000_000
            ) + 86_400_000_000
        lsn += 1
        out.append(envelope("stock_levels", "u", before, after, lsn))
    return out

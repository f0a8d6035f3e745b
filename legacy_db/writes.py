"""The legacy application's writes: one function per operation, each given every value it
writes and run inside the caller's transaction (the caller commits).

The workload (`workload.py`, random values, by SQL) and the legacy app (`app.py`, values
from HTTP requests) both call these, so a rename over HTTP writes exactly what a rename by
the workload writes: the same rows, the same warts, the same change events. Each returns a
`Written`: the main row (table and key), its changed columns with old and new values and
the other rows the transaction wrote.

Heavy imports (SQLAlchemy) happen inside the functions so `seam --help` stays fast.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

from seam.errors import DatabaseError
from seam.legacy_db.models import categories, product_prices, product_tags, products, stock_levels
from seam.legacy_db.models import suppliers as suppliers_table

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

LEGACY_TZ: Final = ZoneInfo("Europe/Berlin")

Change = dict[str, Any]  # {"old": ..., "new": ...}


@dataclass(frozen=True)
class RowChange:
    """One row written by an operation."""

    table: str
    action: str  # insert | update | delete
    key: dict[str, Any]
    changes: dict[str, Change]


@dataclass(frozen=True)
class Written:
    """What one operation wrote: its main row and the other rows of its transaction."""

    table: str
    key: dict[str, Any]
    changes: dict[str, Change]
    side_effects: list[RowChange]


@dataclass(frozen=True)
class NewProduct:
    """Everything a new product is written with, but its key (the app allocates MAX+1)."""

    sku: str
    prod_name: str
    price_txt: str
    price_cents: int | None
    cat_id: int | None
    supp_id: int
    status_cd: str
    ean: str | None
    descr: str | None
    warehouse_cd: str
    qty_on_hand: int
    tag: str | None = None
    currency: str = "EUR"


def json_value(value: Any) -> Any:
    """A written value as JSON holds it: decimals and times as text."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    return value


def now_local() -> dt.datetime:
    # W7: the legacy app writes the shop's local wall-clock time, no zone, whole seconds.
    return dt.datetime.now(LEGACY_TZ).replace(tzinfo=None, microsecond=0)


def _diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Change]:
    return {k: {"old": before.get(k), "new": v} for k, v in after.items()}


def next_product_id(conn: Connection) -> int:
    """The key the next insert gets: MAX+1, so the key of a hard-deleted newest product
    comes back (the same on both databases, whatever their sequences)."""
    from sqlalchemy import func, select

    return int(conn.execute(select(func.max(products.c.prod_id))).scalar() or 0) + 1


def reference_counts(conn: Connection) -> tuple[int, int]:
    """How many categories and suppliers there are (the ids the app offers: 1..n)."""
    from sqlalchemy import func, select

    n_cat = conn.execute(select(func.count()).select_from(categories)).scalar_one()
    n_supp = conn.execute(select(func.count()).select_from(suppliers_table)).scalar_one()
    return int(n_cat), int(n_supp)


def live_product(conn: Connection, prod_id: int) -> dict[str, Any] | None:
    """The product `prod_id` if it is live (W8: not soft-deleted), locked for this
    transaction; None if there is no such live product."""
    from sqlalchemy import or_, select

    row = (
        conn.execute(
            select(products)
            .where(products.c.prod_id == prod_id)
            .where(or_(products.c.is_deleted.is_(None), products.c.is_deleted != "Y"))
            .with_for_update()
        )
        .mappings()
        .first()
    )
    return None if row is None else dict(row)


def _update_product(
    conn: Connection, row: Mapping[str, Any], values: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Change]]:
    from sqlalchemy import update

    values = {**values, "updated_at": now_local()}
    conn.execute(update(products).where(products.c.prod_id == row["prod_id"]).values(**values))
    return {"prod_id": row["prod_id"]}, _diff(row, values)


def _insert_price(conn: Connection, values: dict[str, Any]) -> RowChange:
    from sqlalchemy import insert

    result = conn.execute(insert(product_prices).values(**values))
    pk = result.inserted_primary_key
    if pk is None:  # pragma: no cover - both dialects report the new key
        raise DatabaseError("the database did not report the new product_prices key")
    price_id = int(pk[0])
    return RowChange(
        "product_prices",
        "insert",
        {"price_id": price_id},
        _diff({}, {"price_id": price_id, **values}),
    )


def insert_product(conn: Connection, new: NewProduct) -> Written:
    """A new products row (key MAX+1), its first product_prices row, a stock_levels row
    and the tag if there is one."""
    from sqlalchemy import insert, text

    now = now_local()
    prod_id = next_product_id(conn)
    values: dict[str, Any] = {
        "prod_id": prod_id,
        "sku": new.sku,
        "prod_name": new.prod_name,
        "price_txt": new.price_txt,
        "price_cents": new.price_cents,
        "cat_id": new.cat_id,
        "supp_id": new.supp_id,
        "status_cd": new.status_cd,
        "is_deleted": "N",
        "ean": new.ean,
        "descr": new.descr,
        "created_at": now,
        "updated_at": None,
    }
    conn.execute(insert(products).values(**values))
    if conn.dialect.name == "postgresql":
        # Keep the SERIAL sequence ahead of the keys the app chose (MySQL does this itself).
        conn.execute(
            text(
                "SELECT setval(pg_get_serial_sequence('products', 'prod_id'), "
                "GREATEST(:id, (SELECT COALESCE(MAX(prod_id), 1) FROM products)))"
            ),
            {"id": prod_id},
        )
    side: list[RowChange] = []
    if new.price_cents is not None:
        price_values = {
            "prod_id": prod_id,
            "amount": Decimal(new.price_cents) / 100,
            "currency": new.currency,
            "valid_from": now,
            "valid_to": None,
        }
        side.append(_insert_price(conn, price_values))
    stock_values = {
        "prod_id": prod_id,
        "warehouse_cd": new.warehouse_cd,
        "qty_on_hand": new.qty_on_hand,
        "last_counted": now,
    }
    conn.execute(insert(stock_levels).values(**stock_values))
    side.append(
        RowChange(
            "stock_levels",
            "insert",
            {"prod_id": prod_id, "warehouse_cd": new.warehouse_cd},
            _diff({}, stock_values),
        )
    )
    if new.tag is not None:
        tag = {"prod_id": prod_id, "tag": new.tag}
        conn.execute(insert(product_tags).values(**tag))
        side.append(RowChange("product_tags", "insert", dict(tag), _diff({}, tag)))
    return Written("products", {"prod_id": prod_id}, _diff({}, values), side)


def price_change(
    conn: Connection, row: Mapping[str, Any], price_txt: str, price_cents: int, currency: str
) -> Written:
    """products.price_txt/price_cents/updated_at; the open product_prices rows closed
    (valid_to) and the new one inserted."""
    from sqlalchemy import select, update

    key, changes = _update_product(conn, row, {"price_txt": price_txt, "price_cents": price_cents})
    now = changes["updated_at"]["new"]
    side: list[RowChange] = []
    open_rows = conn.execute(
        select(product_prices.c.price_id, product_prices.c.valid_to)
        .where(product_prices.c.prod_id == row["prod_id"])
        .where(product_prices.c.valid_to.is_(None))
        .order_by(product_prices.c.price_id)
        .with_for_update()
    ).all()
    for price_id, valid_to in open_rows:
        conn.execute(
            update(product_prices).where(product_prices.c.price_id == price_id).values(valid_to=now)
        )
        side.append(
            RowChange(
                "product_prices",
                "update",
                {"price_id": price_id},
                {"valid_to": {"old": valid_to, "new": now}},
            )
        )
    price_values = {
        "prod_id": row["prod_id"],
        "amount": Decimal(price_cents) / 100,
        "currency": currency,
        "valid_from": now,
        "valid_to": None,
    }
    side.append(_insert_price(conn, price_values))
    return Written("products", key, changes, side)


def rename(conn: Connection, row: Mapping[str, Any], name: str) -> Written:
    """products.prod_name/updated_at."""
    return Written("products", *_update_product(conn, row, {"prod_name": name}), [])


def recategorize(conn: Connection, row: Mapping[str, Any], cat_id: int) -> Written:
    """products.cat_id/updated_at."""
    return Written("products", *_update_product(conn, row, {"cat_id": cat_id}), [])


def discontinue(conn: Connection, row: Mapping[str, Any], code: str = "D") -> Written:
    """products.status_cd to 'D' (or 'd', W4)/updated_at."""
    return Written("products", *_update_product(conn, row, {"status_cd": code}), [])


def soft_delete(conn: Connection, row: Mapping[str, Any]) -> Written:
    """products.is_deleted to 'Y'/updated_at (W8): how the app delists a product."""
    return Written("products", *_update_product(conn, row, {"is_deleted": "Y"}), [])


def hard_delete(conn: Connection, row: Mapping[str, Any]) -> Written:
    """DELETE of the product's tags, stock levels, prices and the product."""
    from sqlalchemy import delete, select

    prod_id = row["prod_id"]
    side: list[RowChange] = []
    for table, keys in (
        (product_tags, ("prod_id", "tag")),
        (stock_levels, ("prod_id", "warehouse_cd")),
        (product_prices, ("price_id",)),
    ):
        # Sorted here, not by ORDER BY: the databases collate ' bio' and 'Bio' differently.
        gone = sorted(
            (
                dict(g)
                for g in conn.execute(select(table).where(table.c.prod_id == prod_id))
                .mappings()
                .all()
            ),
            key=lambda g: [str(v) for v in g.values()],
        )
        if gone:
            conn.execute(delete(table).where(table.c.prod_id == prod_id))
        for g in gone:
            side.append(
                RowChange(
                    table.name,
                    "delete",
                    {k: g[k] for k in keys},
                    {c: {"old": v, "new": None} for c, v in g.items()},
                )
            )
    conn.execute(delete(products).where(products.c.prod_id == prod_id))
    return Written(
        "products", {"prod_id": prod_id}, {c: {"old": v, "new": None} for c, v in row.items()}, side
    )

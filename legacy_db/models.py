"""The legacy product catalog: SQLAlchemy 2.0 models that run on PostgreSQL and MySQL/MariaDB.

This is the shop's system of record as it grew over fifteen years, warts and all. Only
portable column types are used (Integer, String, Text, Numeric, naive DateTime, CHAR flags),
so one model and one data set serve both database flavours.

Tables
------
- ``categories``      (cat_id PK) a two-level tree of product categories.
- ``suppliers``       (supp_id PK) who delivers the goods.
- ``products``        (prod_id PK) the catalog itself.
- ``product_prices``  (price_id PK) price history: one row per price a product ever had.
- ``stock_levels``    (prod_id, warehouse_cd) PK: units on hand per warehouse.
- ``product_tags``    NO PRIMARY KEY: (prod_id, tag) pairs, duplicates possible.

There are no foreign keys: the legacy application checked references itself (mostly).

The warts: the contract the transform stages clean
--------------------------------------------------
Every wart below is present in seeded data (``seam legacy seed``) and in what the legacy
application writes (``seam legacy workload``). A transform stage must accept all of them.

W1  Prices as text. ``products.price_txt`` holds the price as the old admin UI stored it,
    in any of these shapes: ``'12.50'``, ``' 12,50'`` (leading space, decimal comma),
    ``'$12.50'``, ``'12.5 EUR'``, ``'EUR 12,50'``, ``'12,50 €'``, ``'1.234,50'``
    (thousands dot, decimal comma), ``'1,234.50'`` (thousands comma), and ``''`` (unknown).
    The currency is always EUR whatever the symbol says ('$' was a UI bug).
W2  Prices as integer cents. ``products.price_cents`` was added in a 2015 migration and is
    NULL on rows created before it that were never repriced. Where both price columns are
    set they agree; where ``price_cents`` is NULL, ``price_txt`` is the only price. A row
    with both unknown (NULL and ``''``) has no price.
W3  SKUs with stray whitespace and mixed case: ``' ab-001234'``, ``'AB-001234 '``,
    ``'Ab-001234'``. The canonical SKU is ``sku.strip().upper()``; canonical SKUs are unique.
W4  One-letter status codes in ``products.status_cd`` (CHAR(1)): ``'A'`` active,
    ``'D'`` discontinued, ``'X'`` delisted (blocked, never to be sold again), and their
    lower-case variants ``'a'``, ``'d'``, ``'x'`` which mean the same.
W5  Empty strings where NULL was meant: ``products.descr``, ``products.ean``,
    ``products.price_txt``, ``suppliers.email``, ``suppliers.phone``,
    ``suppliers.country``, ``categories.descr`` hold ``''`` for "unknown" as well as NULL.
W6  Zero where NULL was meant: ``products.supp_id = 0`` means "no supplier",
    ``categories.parent_id = 0`` means "top level".
W7  Timestamps without zone: every DateTime column is naive and holds the shop's local
    wall-clock time, Europe/Berlin (so an hour repeats each October). ``updated_at`` is
    NULL on rows never updated.
W8  Soft delete: ``products.is_deleted`` CHAR(1) ``'Y'`` deleted, ``'N'`` live, and NULL
    (rows older than the flag) meaning live. The application also hard-deletes.
W9  Broken encodings: free text (``prod_name``, ``descr``, ``suppliers.supp_name``,
    ``categories.cat_name``) was at some point round-tripped through latin-1, so some
    values hold mojibake: ``'CafÃ©'`` for ``'Café'``, ``'GrÃ¼ntee'`` for ``'Grüntee'``.
    Fix with ``s.encode('cp1252').decode('utf-8')`` where that succeeds.
    ``descr`` may also contain Windows line ends (``\\r\\n``) and runs of spaces.
W10 Orphans: about 0.5% of ``products.cat_id`` values name a category that does not exist,
    and about 0.3% are NULL (uncategorised).
W11 A table without a primary key: ``product_tags``. Tags are mixed case with stray
    whitespace (``' Bio'``, ``'bio'``); the same (prod_id, tag) pair can occur twice.
W12 Country as free text in ``suppliers.country``: ``'DE'``, ``'Germany'``,
    ``'deutschland'``, ``'AT'``, ``'Österreich'``, ``''``, NULL.
W13 Currency codes in ``product_prices.currency`` are CHAR(3) in mixed case (``'EUR'``,
    ``'eur'``); ``product_prices.amount`` is NUMERIC(10,2) (the cents column came later).
    The current price is the row whose ``valid_to`` is NULL.
W14 ``stock_levels.qty_on_hand`` can be negative (oversold); ``warehouse_cd`` is one of
    ``'BER'``, ``'HAM'``, ``'MUC'``, ``'VIE'``.

Keys: the legacy application allocates new ``prod_id`` values itself as MAX+1, so the key
of a hard-deleted newest product can come back for a new product (a delete, then a create,
of the same key in the change stream).

Collation: on MySQL/MariaDB text compares case-insensitively and ignores trailing spaces
(``'bio' = 'Bio ' ``); on PostgreSQL it does not. Do not rely on either for cleaning.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Final

from sqlalchemy import (
    CHAR,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# The table options every MySQL/MariaDB table gets: the database's default charset may be
# latin1 (it is on a stock MariaDB), and the catalog holds characters latin1 cannot.
_MYSQL: Final = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


class Base(DeclarativeBase):
    metadata = MetaData()


class Category(Base):
    __tablename__ = "categories"
    __table_args__ = _MYSQL

    cat_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    parent_id: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # W6: 0 = top
    cat_name: Mapped[str] = mapped_column(String(100), nullable=False)
    descr: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=False))


class Supplier(Base):
    __tablename__ = "suppliers"
    __table_args__ = _MYSQL

    supp_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    supp_name: Mapped[str] = mapped_column(String(120), nullable=False)
    email: Mapped[str | None] = mapped_column(String(120))
    phone: Mapped[str | None] = mapped_column(String(40))
    country: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=False))


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (
        Index("ix_products_sku", "sku"),
        Index("ix_products_cat_id", "cat_id"),
        _MYSQL,
    )

    prod_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sku: Mapped[str] = mapped_column(String(32), nullable=False)
    prod_name: Mapped[str] = mapped_column(String(200), nullable=False)
    price_txt: Mapped[str | None] = mapped_column(String(32))
    price_cents: Mapped[int | None] = mapped_column(Integer)
    cat_id: Mapped[int | None] = mapped_column(Integer)
    supp_id: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    status_cd: Mapped[str] = mapped_column(CHAR(1), nullable=False, default="A")
    is_deleted: Mapped[str | None] = mapped_column(CHAR(1), default="N")
    ean: Mapped[str | None] = mapped_column(String(20))
    descr: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=False), nullable=False)
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=False))


class ProductPrice(Base):
    __tablename__ = "product_prices"
    __table_args__ = (Index("ix_product_prices_prod_id", "prod_id"), _MYSQL)

    price_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    prod_id: Mapped[int] = mapped_column(Integer, nullable=False)
    amount: Mapped[decimal.Decimal] = mapped_column(Numeric(10, 2), nullable=False)
    currency: Mapped[str] = mapped_column(CHAR(3), nullable=False)
    valid_from: Mapped[dt.datetime] = mapped_column(DateTime(timezone=False), nullable=False)
    valid_to: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=False))


class StockLevel(Base):
    __tablename__ = "stock_levels"
    __table_args__ = _MYSQL

    prod_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    warehouse_cd: Mapped[str] = mapped_column(CHAR(3), primary_key=True)
    qty_on_hand: Mapped[int] = mapped_column(Integer, nullable=False)
    last_counted: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=False))


# W11: no primary key, so a Core table rather than a mapped class.
product_tags: Final = Table(
    "product_tags",
    Base.metadata,
    Column("prod_id", Integer, nullable=False),
    Column("tag", String(40), nullable=False),
    Index("ix_product_tags_prod_id", "prod_id"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

categories: Final = Base.metadata.tables["categories"]
suppliers: Final = Base.metadata.tables["suppliers"]
products: Final = Base.metadata.tables["products"]
product_prices: Final = Base.metadata.tables["product_prices"]
stock_levels: Final = Base.metadata.tables["stock_levels"]

# Creation order; also the order `seed` loads and `--drop` drops (reversed).
CATALOG_TABLES: Final[tuple[str, ...]] = (
    "categories",
    "suppliers",
    "products",
    "product_prices",
    "stock_levels",
    "product_tags",
)

# Columns in the order the generator emits them and the bulk loaders read them.
COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    name: tuple(c.name for c in Base.metadata.tables[name].columns) for name in CATALOG_TABLES
}

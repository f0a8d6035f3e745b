"""The legacy application at work: a seeded mix of catalog changes at a target rate.

Each operation runs in its own transaction, as the legacy application does, and is
recorded as an `Operation`: its kind, the main row it touched (table and key), the changed
columns with old and new values, the other rows the same transaction wrote (`side_effects`)
and the commit time. Tests compare the change stream against this record.

Operation kinds and what they write (all timestamps naive Europe/Berlin wall-clock, W7):

- ``insert``:        a new products row, its first product_prices row, a stock_levels row
                     and possibly tags; the legacy warts come along (W1, W3, W4, W9).
- ``price_change``:  products.price_txt/price_cents/updated_at; closes the open
                     product_prices row (valid_to) and inserts the new one.
- ``rename``:        products.prod_name/updated_at (sometimes with mojibake, W9).
- ``recategorize``:  products.cat_id/updated_at.
- ``discontinue``:   products.status_cd to 'D' (or 'd', W4)/updated_at.
- ``soft_delete``:   products.is_deleted to 'Y'/updated_at (W8).
- ``hard_delete``:   DELETE of the product's tags, stock levels, prices and the product.

The random choices depend only on the seed and on what the database holds, so the same seed
on the same seeded data gives the same operations on PostgreSQL and MariaDB.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

from seam.connectors.engine import Flavour, connect, flavour_of
from seam.errors import ConfigError, DatabaseError
from seam.legacy_db import generator
from seam.legacy_db.models import product_prices, product_tags, products, stock_levels
from seam.secrets import mask_url

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

LEGACY_TZ: Final = ZoneInfo("Europe/Berlin")

# Relative frequency of each kind of operation.
MIX: Final[dict[str, int]] = {
    "insert": 20,
    "price_change": 30,
    "rename": 10,
    "recategorize": 10,
    "discontinue": 10,
    "soft_delete": 10,
    "hard_delete": 10,
}
KINDS: Final = tuple(MIX)
# How many random keys to try before concluding the catalog has no live product left.
_PICK_TRIES: Final = 50

Change = dict[str, Any]  # {"old": ..., "new": ...}


@dataclass(frozen=True)
class RowChange:
    """One row written by an operation."""

    table: str
    action: str  # insert | update | delete
    key: dict[str, Any]
    changes: dict[str, Change]


@dataclass(frozen=True)
class Operation:
    """One transaction of the legacy application."""

    seq: int
    op: str
    table: str
    key: dict[str, Any]
    changes: dict[str, Change]
    side_effects: list[RowChange]
    committed_at: str  # ISO 8601, UTC

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class WorkloadReport:
    database: str  # masked URL
    flavour: Flavour
    seed: int
    target_rate: float
    started_at: str
    finished_at: str = ""
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    skipped: int = 0  # picks that found no live product
    interrupted: bool = False  # stopped by Ctrl-C before its end
    operations: list[Operation] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def achieved_rate(self) -> float:
        return self.total / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, Any]:
        """Everything but the per-operation log."""
        return {
            "database": self.database,
            "flavour": self.flavour,
            "seed": self.seed,
            "target_rate": self.target_rate,
            "achieved_rate": round(self.achieved_rate, 2),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "seconds": round(self.seconds, 3),
            "total": self.total,
            "counts": dict(self.counts),
            "skipped": self.skipped,
            "interrupted": self.interrupted,
        }


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    return value


def operation_json(op: Operation) -> str:
    """One line of the JSON-lines log (values as JSON scalars; decimals and times as text)."""
    return json.dumps(op.as_dict(), default=_json_value, ensure_ascii=False)


def _now_local() -> dt.datetime:
    # W7: the legacy app writes the shop's local wall-clock time, no zone, whole seconds.
    return dt.datetime.now(LEGACY_TZ).replace(tzinfo=None, microsecond=0)


def _diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Change]:
    return {k: {"old": before.get(k), "new": v} for k, v in after.items()}


class _Legacy:
    """The operations, against one connection, driven by one random stream."""

    def __init__(self, conn: Connection, rng: random.Random, flavour: Flavour) -> None:
        self.conn = conn
        self.rng = rng
        self.flavour = flavour
        from sqlalchemy import func, select

        self.max_id = conn.execute(select(func.max(products.c.prod_id))).scalar() or 0
        self.n_cat = conn.execute(
            select(func.count()).select_from(products.metadata.tables["categories"])
        ).scalar_one()
        self.n_supp = conn.execute(
            select(func.count()).select_from(products.metadata.tables["suppliers"])
        ).scalar_one()

    def _pick(self) -> dict[str, Any] | None:
        """A random live product, locked for this transaction; None if none was found."""
        from sqlalchemy import or_, select

        for _ in range(_PICK_TRIES):
            if self.max_id < 1:
                return None
            prod_id = self.rng.randint(1, self.max_id)
            row = (
                self.conn.execute(
                    select(products)
                    .where(products.c.prod_id == prod_id)
                    .where(or_(products.c.is_deleted.is_(None), products.c.is_deleted != "Y"))
                    .with_for_update()
                )
                .mappings()
                .first()
            )
            if row is not None:
                return dict(row)
        return None

    def _update_product(
        self, row: dict[str, Any], values: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Change]]:
        from sqlalchemy import update

        values = {**values, "updated_at": _now_local()}
        self.conn.execute(
            update(products).where(products.c.prod_id == row["prod_id"]).values(**values)
        )
        return {"prod_id": row["prod_id"]}, _diff(row, values)

    def _insert_price(self, values: dict[str, Any]) -> RowChange:
        from sqlalchemy import insert

        result = self.conn.execute(insert(product_prices).values(**values))
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

    def insert(self) -> tuple[str, dict[str, Any], dict[str, Change], list[RowChange]]:
        from sqlalchemy import func, insert, select, text

        rng = self.rng
        now = _now_local()
        # The legacy app allocates keys itself with MAX+1 (and so reuses the key of a
        # hard-deleted newest product): the same on both databases, whatever their sequences.
        prod_id = int(self.conn.execute(select(func.max(products.c.prod_id))).scalar() or 0) + 1
        cents = generator.price_cents(rng)
        values: dict[str, Any] = {
            "prod_id": prod_id,
            "sku": generator.warty_sku(rng, generator.canonical_sku(prod_id, rng)),
            "prod_name": generator.product_name(rng),
            "price_txt": generator.format_price_text(cents, generator.price_shape(rng)),
            "price_cents": cents,
            "cat_id": rng.randint(1, max(1, self.n_cat)),
            "supp_id": 0 if rng.random() < 0.03 else rng.randint(1, max(1, self.n_supp)),
            "status_cd": "a" if rng.random() < 0.05 else "A",
            "is_deleted": "N",
            "ean": "" if rng.random() < 0.3 else str(rng.randrange(10**12, 10**13)),
            "descr": generator.description(rng),
            "created_at": now,
            "updated_at": None,
        }
        self.conn.execute(insert(products).values(**values))
        self.max_id = max(self.max_id, prod_id)
        if self.flavour == "postgres":
            # Keep the SERIAL sequence ahead of the keys the app chose (MySQL does this itself).
            self.conn.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence('products', 'prod_id'), "
                    "GREATEST(:id, (SELECT COALESCE(MAX(prod_id), 1) FROM products)))"
                ),
                {"id": prod_id},
            )
        key = {"prod_id": prod_id}
        side: list[RowChange] = []
        price_values = {
            "prod_id": prod_id,
            "amount": Decimal(cents) / 100,
            "currency": "EUR",
            "valid_from": now,
            "valid_to": None,
        }
        side.append(self._insert_price(price_values))
        stock_values = {
            "prod_id": prod_id,
            "warehouse_cd": rng.choice(generator.WAREHOUSES),
            "qty_on_hand": rng.randint(0, 200),
            "last_counted": now,
        }
        self.conn.execute(insert(stock_levels).values(**stock_values))
        side.append(
            RowChange(
                "stock_levels",
                "insert",
                {"prod_id": prod_id, "warehouse_cd": stock_values["warehouse_cd"]},
                _diff({}, stock_values),
            )
        )
        if rng.random() < 0.5:
            tag = {"prod_id": prod_id, "tag": rng.choice(generator._TAGS)}
            self.conn.execute(insert(product_tags).values(**tag))
            side.append(RowChange("product_tags", "insert", dict(tag), _diff({}, tag)))
        return "products", key, _diff({}, values), side

    def price_change(
        self, row: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Change], list[RowChange]]:
        from sqlalchemy import select, update

        rng = self.rng
        old = row["price_cents"] or generator.price_cents(rng)
        new = max(99, old + rng.randint(-300, 300) * 10 + rng.choice((0, 9)))
        if new == old:
            new += 10
        key, changes = self._update_product(
            row,
            {
                "price_txt": generator.format_price_text(new, generator.price_shape(rng)),
                "price_cents": new,
            },
        )
        now = changes["updated_at"]["new"]
        side: list[RowChange] = []
        open_rows = self.conn.execute(
            select(product_prices.c.price_id, product_prices.c.valid_to)
            .where(product_prices.c.prod_id == row["prod_id"])
            .where(product_prices.c.valid_to.is_(None))
            .order_by(product_prices.c.price_id)
            .with_for_update()
        ).all()
        for price_id, valid_to in open_rows:
            self.conn.execute(
                update(product_prices)
                .where(product_prices.c.price_id == price_id)
                .values(valid_to=now)
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
            "amount": Decimal(new) / 100,
            "currency": "eur" if rng.random() < 0.1 else "EUR",
            "valid_from": now,
            "valid_to": None,
        }
        side.append(self._insert_price(price_values))
        return key, changes, side

    def rename(
        self, row: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Change], list[RowChange]]:
        name = generator.product_name(self.rng)
        if name == row["prod_name"]:
            name += " II"
        return (*self._update_product(row, {"prod_name": name}), [])

    def recategorize(
        self, row: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Change], list[RowChange]]:
        cat = self.rng.randint(1, max(1, self.n_cat))
        if cat == row["cat_id"]:
            cat = cat % max(1, self.n_cat) + 1
        return (*self._update_product(row, {"cat_id": cat}), [])

    def discontinue(
        self, row: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Change], list[RowChange]]:
        code = "d" if self.rng.random() < 0.1 else "D"
        return (*self._update_product(row, {"status_cd": code}), [])

    def soft_delete(
        self, row: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Change], list[RowChange]]:
        return (*self._update_product(row, {"is_deleted": "Y"}), [])

    def hard_delete(
        self, row: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Change], list[RowChange]]:
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
                    for g in self.conn.execute(select(table).where(table.c.prod_id == prod_id))
                    .mappings()
                    .all()
                ),
                key=lambda g: [str(v) for v in g.values()],
            )
            if gone:
                self.conn.execute(delete(table).where(table.c.prod_id == prod_id))
            for g in gone:
                side.append(
                    RowChange(
                        table.name,
                        "delete",
                        {k: g[k] for k in keys},
                        {c: {"old": v, "new": None} for c, v in g.items()},
                    )
                )
        self.conn.execute(delete(products).where(products.c.prod_id == prod_id))
        return {"prod_id": prod_id}, {c: {"old": v, "new": None} for c, v in row.items()}, side


def run_workload(
    url: str,
    *,
    rate: float = 10.0,
    duration: float | None = None,
    count: int | None = None,
    seed: int = 1,
    log: IO[str] | None = None,
    keep_operations: bool = True,
    on_operation: Callable[[Operation], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> WorkloadReport:
    """Play the legacy application against `url` until `count` operations or `duration`
    seconds, at about `rate` operations per second (0: as fast as possible).

    `log` receives one JSON line per committed operation (see `operation_json`).
    """
    if count is None and duration is None:
        raise ConfigError("the workload needs an end", hint="pass --count N or --duration SECONDS")
    if count is not None and count < 0:
        raise ConfigError(f"--count must be >= 0, got {count}")
    if duration is not None and duration < 0:
        raise ConfigError(f"--duration must be >= 0, got {duration}")
    if rate < 0:
        raise ConfigError(f"--rate must be >= 0, got {rate}")
    flavour = flavour_of(url)
    rng = random.Random(f"seam-workload:{seed}")
    report = WorkloadReport(
        database=mask_url(url),
        flavour=flavour,
        seed=seed,
        target_rate=rate,
        started_at=dt.datetime.now(dt.UTC).isoformat(),
    )
    weights = [MIX[k] for k in KINDS]
    with connect(url) as conn:
        from sqlalchemy import inspect

        if "products" not in inspect(conn).get_table_names():
            raise DatabaseError(
                f"{mask_url(url)} has no products table", hint="seed it first: seam legacy seed"
            )
        conn.commit()
        app = _Legacy(conn, rng, flavour)
        conn.commit()
        start = clock()
        seq = 0
        try:
            while True:
                if count is not None and seq >= count:
                    break
                if duration is not None and clock() - start >= duration:
                    break
                if rate > 0:
                    due = start + seq / rate
                    wait = due - clock()
                    if wait > 0:
                        if duration is not None and due - start >= duration:
                            break
                        sleep(wait)
                kind = rng.choices(KINDS, weights=weights)[0]
                if kind == "insert":
                    table, key, changes, side = app.insert()
                else:
                    row = app._pick()
                    if row is None:
                        conn.rollback()
                        report.skipped += 1
                        kind = "insert"  # an empty catalog only grows
                        table, key, changes, side = app.insert()
                    else:
                        table = "products"
                        key, changes, side = getattr(app, kind)(row)
                conn.commit()
                seq += 1
                op = Operation(
                    seq=seq,
                    op=kind,
                    table=table,
                    key=key,
                    changes=changes,
                    side_effects=side,
                    committed_at=dt.datetime.now(dt.UTC).isoformat(),
                )
                report.counts[kind] += 1
                if keep_operations:
                    report.operations.append(op)
                if log is not None:
                    log.write(operation_json(op) + "\n")
                    log.flush()
                if on_operation is not None:
                    on_operation(op)
        except KeyboardInterrupt:
            # Ctrl-C: the operation in flight is rolled back; everything logged was committed.
            conn.rollback()
            report.interrupted = True
        report.seconds = clock() - start
    report.finished_at = dt.datetime.now(dt.UTC).isoformat()
    return report


def read_log(path: Path) -> list[dict[str, Any]]:
    """The operations of a JSON-lines log written by `run_workload`."""
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]

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

This module makes the random choices; `writes.py` does the writing, for the workload and
for the legacy app alike. The workload drives the writes either by SQL (`via="sql"`: the
write functions on its own connection) or over HTTP (`via="http"`: the legacy app's
endpoints, which call the same functions; `seam legacy app`). The random choices depend
only on the seed and on what the database holds, so the same seed on the same seeded data
gives the same operations on PostgreSQL and MariaDB, by SQL or over HTTP.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, Literal, Protocol

from seam.connectors.engine import Flavour, connect, flavour_of
from seam.errors import ConfigError, DatabaseError
from seam.legacy_db import generator, writes
from seam.legacy_db.writes import LEGACY_TZ, Change, NewProduct, RowChange, Written, json_value
from seam.secrets import mask_url

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = ["LEGACY_TZ", "Change", "Operation", "RowChange", "WorkloadReport", "run_workload"]

Via = Literal["sql", "http"]

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
    database: str  # masked URL, or the app's URL over HTTP
    flavour: Flavour | None  # None over HTTP: the app does not say
    seed: int
    target_rate: float
    started_at: str
    via: Via = "sql"
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
            "via": self.via,
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


def operation_json(op: Operation) -> str:
    """One line of the JSON-lines log (values as JSON scalars; decimals and times as text)."""
    return json.dumps(op.as_dict(), default=json_value, ensure_ascii=False)


class _Choices:
    """The random choices of the legacy application's users, from one random stream."""

    def __init__(self, rng: random.Random, max_id: int, n_cat: int, n_supp: int) -> None:
        self.rng = rng
        self.max_id = max_id
        self.n_cat = n_cat
        self.n_supp = n_supp

    def pick(self, lookup: Callable[[int], dict[str, Any] | None]) -> dict[str, Any] | None:
        """A random live product (`lookup` gives it or None); None if none was found."""
        for _ in range(_PICK_TRIES):
            if self.max_id < 1:
                return None
            row = lookup(self.rng.randint(1, self.max_id))
            if row is not None:
                return row
        return None

    def new_product(self, prod_id: int) -> NewProduct:
        rng = self.rng
        cents = generator.price_cents(rng)
        sku = generator.warty_sku(rng, generator.canonical_sku(prod_id, rng))
        name = generator.product_name(rng)
        price_txt = generator.format_price_text(cents, generator.price_shape(rng))
        cat_id = rng.randint(1, max(1, self.n_cat))
        supp_id = 0 if rng.random() < 0.03 else rng.randint(1, max(1, self.n_supp))
        status = "a" if rng.random() < 0.05 else "A"
        ean = "" if rng.random() < 0.3 else str(rng.randrange(10**12, 10**13))
        descr = generator.description(rng)
        warehouse = rng.choice(generator.WAREHOUSES)
        qty = rng.randint(0, 200)
        tag = rng.choice(generator._TAGS) if rng.random() < 0.5 else None
        self.max_id = max(self.max_id, prod_id)
        return NewProduct(
            sku=sku,
            prod_name=name,
            price_txt=price_txt,
            price_cents=cents,
            cat_id=cat_id,
            supp_id=supp_id,
            status_cd=status,
            ean=ean,
            descr=descr,
            warehouse_cd=warehouse,
            qty_on_hand=qty,
            tag=tag,
        )

    def arguments(self, kind: str, row: dict[str, Any]) -> tuple[Any, ...]:
        """The values an update of `row` writes (see `writes`)."""
        rng = self.rng
        if kind == "price_change":
            old = row["price_cents"] or generator.price_cents(rng)
            new = max(99, old + rng.randint(-300, 300) * 10 + rng.choice((0, 9)))
            if new == old:
                new += 10
            text = generator.format_price_text(new, generator.price_shape(rng))
            return text, new, "eur" if rng.random() < 0.1 else "EUR"
        if kind == "rename":
            name = generator.product_name(rng)
            return (name + " II" if name == row["prod_name"] else name,)
        if kind == "recategorize":
            cat = rng.randint(1, max(1, self.n_cat))
            if cat == row["cat_id"]:
                cat = cat % max(1, self.n_cat) + 1
            return (cat,)
        if kind == "discontinue":
            return ("d" if rng.random() < 0.1 else "D",)
        return ()


class _Driver(Protocol):
    """Where the operations run: the database by SQL, or the legacy app over HTTP."""

    def reference(self) -> tuple[int, int, int]:
        """(largest product key, number of categories, number of suppliers)."""
        ...

    def next_id(self) -> int: ...

    def lookup(self, prod_id: int) -> dict[str, Any] | None: ...

    def insert(self, new: NewProduct) -> Written: ...

    def update(self, kind: str, row: dict[str, Any], args: tuple[Any, ...]) -> Written: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


_UPDATES: Final[dict[str, Callable[..., Written]]] = {
    "price_change": writes.price_change,
    "rename": writes.rename,
    "recategorize": writes.recategorize,
    "discontinue": writes.discontinue,
    "soft_delete": writes.soft_delete,
    "hard_delete": writes.hard_delete,
}


class _Sql:
    """The writes on one connection, one transaction per operation."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def reference(self) -> tuple[int, int, int]:
        n_cat, n_supp = writes.reference_counts(self.conn)
        max_id = writes.next_product_id(self.conn) - 1
        self.conn.commit()
        return max_id, n_cat, n_supp

    def next_id(self) -> int:
        return writes.next_product_id(self.conn)

    def lookup(self, prod_id: int) -> dict[str, Any] | None:
        return writes.live_product(self.conn, prod_id)

    def insert(self, new: NewProduct) -> Written:
        return writes.insert_product(self.conn, new)

    def update(self, kind: str, row: dict[str, Any], args: tuple[Any, ...]) -> Written:
        return _UPDATES[kind](self.conn, row, *args)

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()


@contextmanager
def _sql_driver(url: str) -> Iterator[_Sql]:
    with connect(url) as conn:
        from sqlalchemy import inspect

        if "products" not in inspect(conn).get_table_names():
            raise DatabaseError(
                f"{mask_url(url)} has no products table", hint="seed it first: seam legacy seed"
            )
        conn.commit()
        yield _Sql(conn)


def run_workload(
    url: str,
    *,
    rate: float = 10.0,
    duration: float | None = None,
    count: int | None = None,
    seed: int = 1,
    via: Via = "sql",
    log: IO[str] | None = None,
    keep_operations: bool = True,
    on_operation: Callable[[Operation], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> WorkloadReport:
    """Play the legacy application against `url` until `count` operations or `duration`
    seconds, at about `rate` operations per second (0: as fast as possible).

    `via="sql"`: `url` is the database, written by SQL. `via="http"`: `url` is the legacy
    app (`seam legacy app`), written through its endpoints; the operations recorded are the
    same, their values as JSON has them (decimals and times as text).
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
    if via == "sql":
        flavour: Flavour | None = flavour_of(url)
        where = mask_url(url)
    else:
        from seam.legacy_db.app_client import check_app_url

        flavour, where = None, check_app_url(url)
    rng = random.Random(f"seam-workload:{seed}")
    report = WorkloadReport(
        database=where,
        flavour=flavour,
        seed=seed,
        target_rate=rate,
        started_at=dt.datetime.now(dt.UTC).isoformat(),
        via=via,
    )
    if via == "sql":
        with _sql_driver(url) as sql:
            _play(
                sql, rng, report, count, duration, log, keep_operations, on_operation, clock, sleep
            )
    else:
        from seam.legacy_db.app_client import AppClient

        with AppClient(url) as client:
            _play(
                client,
                rng,
                report,
                count,
                duration,
                log,
                keep_operations,
                on_operation,
                clock,
                sleep,
            )
    report.finished_at = dt.datetime.now(dt.UTC).isoformat()
    return report


def _play(
    driver: _Driver,
    rng: random.Random,
    report: WorkloadReport,
    count: int | None,
    duration: float | None,
    log: IO[str] | None,
    keep_operations: bool,
    on_operation: Callable[[Operation], None] | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> None:
    rate = report.target_rate
    weights = [MIX[k] for k in KINDS]
    choices = _Choices(rng, *driver.reference())
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
            row = None if kind == "insert" else choices.pick(driver.lookup)
            if kind != "insert" and row is None:
                driver.rollback()
                report.skipped += 1
                kind = "insert"  # an empty catalog only grows
            if row is None:
                written = driver.insert(choices.new_product(driver.next_id()))
            else:
                written = driver.update(kind, row, choices.arguments(kind, row))
            driver.commit()
            seq += 1
            op = Operation(
                seq=seq,
                op=kind,
                table=written.table,
                key=written.key,
                changes=written.changes,
                side_effects=written.side_effects,
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
        # (Over HTTP the app commits each request itself: a request cut short by Ctrl-C may
        # have committed without being logged.)
        driver.rollback()
        report.interrupted = True
    report.seconds = clock() - start


def read_log(path: Path) -> list[dict[str, Any]]:
    """The operations of a JSON-lines log written by `run_workload`."""
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]

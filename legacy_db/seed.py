"""Create the legacy catalog schema and fill it with generated data, fast.

Bulk paths only: PostgreSQL gets the rows through `COPY ... FROM STDIN` (psycopg 3's
`cursor.copy()`), streamed while they are generated; MySQL/MariaDB through
`LOAD DATA LOCAL INFILE` from temporary files. Tables are created without secondary indexes,
loaded, then indexed, which is much faster than maintaining the indexes row by row.

Atomicity: on PostgreSQL everything (drop, create, load, index) is one transaction, so a
failure leaves the database as it was. MySQL commits DDL implicitly, so there a failure
drops the tables this run created; re-running with `--drop` is always safe.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, Literal

from seam.connectors.engine import Flavour, connect, flavour_of
from seam.errors import DatabaseError
from seam.legacy_db import generator
from seam.legacy_db.models import CATALOG_TABLES, COLUMNS, Base
from seam.legacy_db.tsv import decode_line, encode_rows
from seam.secrets import mask_url

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

# The publication of legacy_db/connectors/catalog-postgres.yaml (`seam connectors prepare`).
CATALOG_PUBLICATION: Final = "seam_catalog"
# Child rows wait here while products stream; beyond this they spill to disk.
_SPOOL_BYTES: Final = 64 * 1024 * 1024
_CHILD_TABLES: Final = ("product_prices", "stock_levels", "product_tags")
_INSERT_BATCH: Final = 5_000
# MySQL/MariaDB errors meaning "LOAD DATA LOCAL INFILE is not allowed here".
_LOCAL_INFILE_REFUSED: Final = frozenset({1148, 2068, 3948})
MysqlMethod = Literal["auto", "load-data", "insert"]
_SERIAL_KEYS: Final = {
    "categories": "cat_id",
    "suppliers": "supp_id",
    "products": "prod_id",
    "product_prices": "price_id",
}


@dataclass(frozen=True)
class SeedReport:
    """What `seed` did, for the CLI to render and tests to check."""

    database: str  # masked URL
    flavour: Flavour
    seed: int
    products: int
    rows: dict[str, int]
    dropped: list[str]
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def rows_per_second(self) -> float:
        return self.total_rows / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "total_rows": self.total_rows,
            "rows_per_second": round(self.rows_per_second),
            "products_per_second": round(self.products / self.seconds) if self.seconds else 0,
        }


def existing_catalog_tables(conn: Connection) -> list[str]:
    from sqlalchemy import inspect

    present = set(inspect(conn).get_table_names())
    return [t for t in CATALOG_TABLES if t in present]


def _drop(conn: Connection, flavour: Flavour, tables: Iterable[str]) -> None:
    from sqlalchemy import text

    for name in tables:
        # CASCADE (PostgreSQL) also removes views a DBA may have put on top.
        suffix = " CASCADE" if flavour == "postgres" else ""
        conn.execute(text(f"DROP TABLE IF EXISTS {name}{suffix}"))


def _create_tables(conn: Connection) -> None:
    from sqlalchemy.schema import CreateTable

    for name in CATALOG_TABLES:
        conn.execute(CreateTable(Base.metadata.tables[name]))


def _create_indexes(conn: Connection) -> None:
    for name in CATALOG_TABLES:
        for index in Base.metadata.tables[name].indexes:
            index.create(conn)


class _Sink:
    """Where one table's TSV bytes go: a COPY stream or a file for LOAD DATA."""

    def __init__(self, write: Callable[[bytes], Any]) -> None:
        self.write = write
        self.rows = 0


def _reference_rows(seed: int, size: generator.CatalogSize) -> dict[str, bytes]:
    return {
        "categories": encode_rows(generator.category_rows(seed, size)),
        "suppliers": encode_rows(generator.supplier_rows(seed, size)),
    }


def _load_postgres(conn: Connection, seed: int, size: generator.CatalogSize) -> dict[str, int]:
    raw: Any = conn.connection.driver_connection  # a psycopg.Connection, same transaction
    counts: dict[str, int] = {}

    def copy_sql(table: str) -> str:
        return f"COPY {table} ({', '.join(COLUMNS[table])}) FROM STDIN"

    with raw.cursor() as cur:
        for table, data in _reference_rows(seed, size).items():
            with cur.copy(copy_sql(table)) as copy:
                copy.write(data)
            counts[table] = data.count(b"\n")
        with contextlib.ExitStack() as stack:
            spools: dict[str, IO[bytes]] = {
                t: stack.enter_context(tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES))
                for t in _CHILD_TABLES
            }
            child_counts = dict.fromkeys(_CHILD_TABLES, 0)
            # Products stream straight into COPY while the server parses the previous chunk;
            # their children are spooled and copied after.
            with cur.copy(copy_sql("products")) as copy:
                n = 0
                for chunk in generator.product_chunks(seed, size):
                    copy.write("".join(chunk.products).encode("utf-8"))
                    n += len(chunk.products)
                    for t in _CHILD_TABLES:
                        lines: list[str] = getattr(chunk, t)
                        spools[t].write("".join(lines).encode("utf-8"))
                        child_counts[t] += len(lines)
            counts["products"] = n
            for t in _CHILD_TABLES:
                spool = spools[t]
                spool.seek(0)
                with cur.copy(copy_sql(t)) as copy:
                    while block := spool.read(1024 * 1024):
                        copy.write(block)
                counts[t] = child_counts[t]
    return counts


def _error_code(exc: BaseException) -> int | None:
    orig = getattr(exc, "orig", None)
    args = getattr(orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def _load_data(conn: Connection, table: str, path: Path) -> int:
    from sqlalchemy import text

    quoted = str(path).replace("\\", "\\\\").replace("'", "\\'")
    # The defaults (tab-separated, backslash escapes, \N for NULL) match `tsv`.
    result = conn.execute(
        text(
            f"LOAD DATA LOCAL INFILE '{quoted}' INTO TABLE {table} CHARACTER SET utf8mb4 "
            f"({', '.join(COLUMNS[table])})"
        )
    )
    return int(result.rowcount)


def _insert_tsv(conn: Connection, table: str, path: Path) -> int:
    """The file's rows as multi-row INSERTs (PyMySQL batches executemany into a few
    statements): slower than LOAD DATA, but needs no server setting."""
    raw: Any = conn.connection.driver_connection
    columns = COLUMNS[table]
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
    total = 0
    with path.open(encoding="utf-8", newline="\n") as fh, raw.cursor() as cur:
        batch: list[list[str | None]] = []
        for line in fh:
            batch.append(decode_line(line))
            if len(batch) >= _INSERT_BATCH:
                cur.executemany(sql, batch)
                total += len(batch)
                batch.clear()
        if batch:
            cur.executemany(sql, batch)
            total += len(batch)
    return total


def _load_mysql(
    conn: Connection, seed: int, size: generator.CatalogSize, method: MysqlMethod
) -> dict[str, int]:
    from sqlalchemy.exc import DBAPIError

    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="seam-seed-") as tmp:
        files = {t: (Path(tmp) / f"{t}.tsv").open("wb") for t in CATALOG_TABLES}
        try:
            for table, data in _reference_rows(seed, size).items():
                files[table].write(data)
                counts[table] = data.count(b"\n")
            for t in ("products", *_CHILD_TABLES):
                counts[t] = 0
            for chunk in generator.product_chunks(seed, size):
                for t in ("products", *_CHILD_TABLES):
                    lines: list[str] = getattr(chunk, t)
                    files[t].write("".join(lines).encode("utf-8"))
                    counts[t] += len(lines)
        finally:
            for fh in files.values():
                fh.close()
        for t in CATALOG_TABLES:
            path = Path(tmp) / f"{t}.tsv"
            loaded: int | None
            if method == "load-data":
                loaded = _load_data(conn, t, path)
            else:
                try:
                    loaded = _load_data(conn, t, path) if method == "auto" else None
                except DBAPIError as exc:
                    if _error_code(exc) not in _LOCAL_INFILE_REFUSED:
                        raise
                    loaded = None
                if loaded is None:
                    # LOAD DATA LOCAL is off on the server (MySQL 8's default): fall back to
                    # multi-row INSERTs, and stay with them for the remaining tables.
                    method = "insert"
                    loaded = _insert_tsv(conn, t, path)
            if loaded != counts[t]:
                raise DatabaseError(
                    f"loading {t} stored {loaded} rows, expected {counts[t]}",
                    hint="check SHOW WARNINGS on the server; the table's definition may differ from seam's",
                )
    return counts


def _fix_sequences(conn: Connection) -> None:
    """COPY with explicit keys leaves the SERIAL sequences at 1: move them past the data."""
    from sqlalchemy import text

    for table, column in _SERIAL_KEYS.items():
        conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                f"COALESCE(MAX({column}), 0) + 1, false) FROM {table}"
            )
        )


def _has_publication(conn: Connection) -> bool:
    from sqlalchemy import text

    return (
        conn.execute(
            text("SELECT 1 FROM pg_publication WHERE pubname = :p"), {"p": CATALOG_PUBLICATION}
        ).first()
        is not None
    )


class CatalogExistsError(DatabaseError):
    """The database already holds catalog tables and `drop` was not asked for."""


def seed(
    url: str,
    *,
    products: int,
    seed: int = 1,
    drop: bool = False,
    mysql_method: MysqlMethod = "auto",
) -> SeedReport:
    """Create the catalog schema in the database at `url` and fill it.

    Refuses to touch existing catalog tables unless `drop` is set. On MySQL/MariaDB,
    `mysql_method` picks LOAD DATA LOCAL INFILE, multi-row INSERTs, or (auto) the first with
    the second as fallback. Returns what it did.
    """
    from sqlalchemy import text

    flavour = flavour_of(url)
    size = generator.CatalogSize.for_products(products)
    started = time.perf_counter()
    notes: list[str] = []
    with connect(url) as conn:
        existing = existing_catalog_tables(conn)
        if existing and not drop:
            count = (
                conn.execute(text("SELECT COUNT(*) FROM products")).scalar_one()
                if "products" in existing
                else 0
            )
            conn.rollback()
            raise CatalogExistsError(
                f"{mask_url(url)} already has catalog tables ({', '.join(existing)}; {count} products)",
                hint="pass --drop to replace them (this deletes their data)",
            )
        if flavour == "postgres":
            had_publication = bool(existing) and _has_publication(conn)
            # One transaction: an error anywhere rolls back drop, create and load alike.
            _drop(conn, flavour, reversed(existing))
            _create_tables(conn)
            counts = _load_postgres(conn, seed, size)
            _create_indexes(conn)
            _fix_sequences(conn)
            conn.commit()
            if had_publication:
                notes.append(
                    "the dropped tables left the CDC publication: run `seam connectors prepare "
                    "legacy_db/connectors/catalog-postgres.yaml` again"
                )
            # ANALYZE outside the load transaction: planner statistics for the workload.
            conn.execute(text(f"ANALYZE {', '.join(CATALOG_TABLES)}"))
            conn.commit()
        else:
            _drop(conn, flavour, reversed(existing))
            _create_tables(conn)
            try:
                counts = _load_mysql(conn, seed, size, mysql_method)
                _create_indexes(conn)
                conn.commit()
            except BaseException:
                # MySQL committed the CREATEs already: leave no half-seeded catalog behind.
                with contextlib.suppress(Exception):
                    conn.rollback()
                    _drop(conn, flavour, reversed(CATALOG_TABLES))
                    conn.commit()
                raise
    return SeedReport(
        database=mask_url(url),
        flavour=flavour,
        seed=seed,
        products=products,
        rows={t: counts[t] for t in CATALOG_TABLES},
        dropped=list(existing),
        seconds=round(time.perf_counter() - started, 3),
        notes=notes,
    )

"""The legacy catalog against the real databases of the local stack.

Each test session works in its own databases (created through the superuser URL from the
settings, dropped at the end) and its own CDC users, so it never touches `catalog` or the
shared `seam_cdc` user.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from seam.connectors.engine import connect, create_database, drop_database, with_database
from seam.errors import DatabaseError
from seam.legacy_db import seed as seed_module
from seam.legacy_db.files import folder
from seam.legacy_db.generator import CatalogSize
from seam.legacy_db.models import CATALOG_TABLES, COLUMNS
from seam.legacy_db.seed import seed
from seam.legacy_db.workload import read_log, run_workload
from seam.settings import Settings

pytestmark = pytest.mark.integration

PRODUCTS = 3_000
SEED = 11
TIME_COLUMNS = {"updated_at", "created_at", "valid_from", "valid_to", "last_counted"}


@pytest.fixture(scope="module")
def dbs(stack: Settings) -> Iterator[dict[str, str]]:
    """URLs of two fresh databases, one per flavour, dropped afterwards."""
    name = f"seam_legacy_{uuid.uuid4().hex[:8]}"
    urls = {
        "postgres": with_database(stack.database_url("postgres"), name),
        "mysql": with_database(stack.database_url("mariadb"), name),
    }
    for url in urls.values():
        create_database(url)
    try:
        yield urls
    finally:
        for url in urls.values():
            drop_database(url)


@pytest.fixture
def cdc_user(dbs: dict[str, str]) -> Iterator[str]:
    """A CDC user name no one else uses; the user is dropped on both servers afterwards."""
    from sqlalchemy import text

    user = f"seam_cdc_{uuid.uuid4().hex[:8]}"
    yield user
    with connect(dbs["postgres"]) as conn:
        exists = conn.execute(
            text("SELECT 1 FROM pg_roles WHERE rolname = :u"), {"u": user}
        ).first()
        if exists:
            # The role holds privileges in this database: drop them before the role.
            conn.execute(text(f"DROP OWNED BY {user}"))
            conn.execute(text(f"DROP ROLE {user}"))
            conn.commit()
    with connect(dbs["mysql"]) as conn:
        conn.execute(text(f"DROP USER IF EXISTS '{user}'@'%'"))
        conn.commit()


def table_rows(url: str, table: str) -> list[tuple[Any, ...]]:
    from sqlalchemy import text

    with connect(url) as conn:
        rows = conn.execute(text(f"SELECT {', '.join(COLUMNS[table])} FROM {table}")).all()
    # Sorted in Python: the two databases collate ' bio', 'Bio' and 'bio' differently.
    return sorted((tuple(r) for r in rows), key=repr)


def scalar(url: str, sql: str, **params: Any) -> Any:
    from sqlalchemy import text

    with connect(url) as conn:
        return conn.execute(text(sql), params).scalar()


# --- seed -------------------------------------------------------------------------------


def test_seed_gives_identical_warty_data_on_both_databases(dbs: dict[str, str]) -> None:
    reports = {f: seed(url, products=PRODUCTS, seed=SEED, drop=True) for f, url in dbs.items()}
    assert reports["postgres"].rows == reports["mysql"].rows
    size = CatalogSize.for_products(PRODUCTS)
    assert reports["postgres"].rows["products"] == PRODUCTS
    assert reports["postgres"].rows["categories"] == size.categories
    assert reports["postgres"].rows["suppliers"] == size.suppliers
    assert "s3cret" not in reports["postgres"].database
    assert "******" in reports["postgres"].database

    for table in CATALOG_TABLES:
        pg, my = table_rows(dbs["postgres"], table), table_rows(dbs["mysql"], table)
        assert len(pg) == reports["postgres"].rows[table], table
        assert pg == my, f"{table} differs between PostgreSQL and MariaDB"

    for url in dbs.values():
        products = table_rows(url, "products")
        cols = COLUMNS["products"]
        by = [dict(zip(cols, row, strict=True)) for row in products]
        assert any(p["sku"] != p["sku"].strip() for p in by)  # W3
        assert {p["status_cd"] for p in by} >= {"A", "a", "D"}  # W4
        assert any(p["descr"] == "" for p in by)  # W5
        assert any(p["descr"] is None for p in by)
        assert any("Ã" in p["prod_name"] for p in by)  # W9
        assert any(p["price_cents"] is None for p in by)  # W2
        assert all(p["created_at"].tzinfo is None for p in by)  # W7
        assert {p["is_deleted"] for p in by} == {"Y", "N", None}  # W8


def test_product_tags_has_no_primary_key_and_the_others_do(dbs: dict[str, str]) -> None:
    from sqlalchemy import inspect

    seed(dbs["postgres"], products=200, seed=SEED, drop=True)
    seed(dbs["mysql"], products=200, seed=SEED, drop=True)
    for url in dbs.values():
        with connect(url) as conn:
            inspector = inspect(conn)
            assert inspector.get_pk_constraint("product_tags")["constrained_columns"] == []
            assert inspector.get_pk_constraint("products")["constrained_columns"] == ["prod_id"]
            assert inspector.get_pk_constraint("stock_levels")["constrained_columns"] == [
                "prod_id",
                "warehouse_cd",
            ]
            assert {i["name"] for i in inspector.get_indexes("products")} >= {"ix_products_sku"}


def test_seed_refuses_existing_tables_without_drop(dbs: dict[str, str]) -> None:
    for url in dbs.values():
        seed(url, products=100, seed=SEED, drop=True)
        with pytest.raises(DatabaseError, match="already has catalog tables") as info:
            seed(url, products=100, seed=SEED)
        assert info.value.hint is not None
        assert "--drop" in info.value.hint
        assert scalar(url, "SELECT COUNT(*) FROM products") == 100


def test_failed_reseed_leaves_postgres_as_it_was_and_mysql_clean(
    dbs: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for url in dbs.values():
        seed(url, products=500, seed=SEED, drop=True)
    real = seed_module.generator.product_chunks

    def failing(seed: int, size: CatalogSize) -> Iterator[Any]:
        for i, chunk in enumerate(real(seed, size)):
            if i == 1:
                raise OSError("disk full (simulated)")
            yield chunk

    monkeypatch.setattr(seed_module.generator, "product_chunks", failing)
    for url in dbs.values():
        with pytest.raises(DatabaseError, match="disk full"):
            seed(url, products=20_000, seed=SEED, drop=True)
    # PostgreSQL: one transaction, so the old catalog is intact.
    assert scalar(dbs["postgres"], "SELECT COUNT(*) FROM products") == 500
    # MySQL commits DDL: the half-made tables are gone, so a plain re-run works.
    assert (
        scalar(
            dbs["mysql"],
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'products'",
        )
        == 0
    )
    monkeypatch.undo()
    assert seed(dbs["mysql"], products=100, seed=SEED).rows["products"] == 100


# --- workload ---------------------------------------------------------------------------


def _comparable(op: dict[str, Any]) -> tuple[Any, ...]:
    """An operation without the clock: what must be equal on both databases."""

    def strip(changes: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in changes.items() if k not in TIME_COLUMNS}

    return (
        op["op"],
        op["table"],
        op["key"],
        json.dumps(strip(op["changes"]), sort_keys=True, default=str),
        [(s["table"], s["action"], s["key"]) for s in op["side_effects"]],
    )


def test_workload_is_deterministic_and_matches_what_the_database_holds(
    dbs: dict[str, str], tmp_path: Path
) -> None:
    logs: dict[str, list[dict[str, Any]]] = {}
    for flavour, url in dbs.items():
        seed(url, products=PRODUCTS, seed=SEED, drop=True)
        path = tmp_path / f"{flavour}.jsonl"
        with path.open("w", encoding="utf-8") as log:
            report = run_workload(url, rate=0, count=200, seed=5, log=log)
        assert report.total == 200
        assert all(report.counts[k] > 0 for k in report.counts), report.counts
        logs[flavour] = read_log(path)
        assert len(logs[flavour]) == 200
        assert [o["seq"] for o in logs[flavour]] == list(range(1, 201))
        assert logs[flavour][0] == json.loads(
            json.dumps(report.operations[0].as_dict(), default=str)
        )
    assert [_comparable(o) for o in logs["postgres"]] == [_comparable(o) for o in logs["mysql"]]

    for flavour, url in dbs.items():
        _check_database_against_log(url, logs[flavour])


def _check_database_against_log(url: str, log: list[dict[str, Any]]) -> None:
    from sqlalchemy import text

    final: dict[int, dict[str, Any]] = {}  # prod_id -> expected column values (None: gone)
    for op in log:
        prod_id = op["key"]["prod_id"]
        if op["op"] == "hard_delete":
            final[prod_id] = {}
            final[prod_id]["__gone__"] = True
            continue
        state = final.setdefault(prod_id, {})
        state.pop("__gone__", None)
        for column, change in op["changes"].items():
            if column not in TIME_COLUMNS:
                state[column] = change["new"]
    with connect(url) as conn:
        for prod_id, expected in final.items():
            row = (
                conn.execute(text("SELECT * FROM products WHERE prod_id = :p"), {"p": prod_id})
                .mappings()
                .first()
            )
            if expected.get("__gone__"):
                assert row is None, f"product {prod_id} was hard-deleted but is still there"
                for table in ("product_prices", "stock_levels", "product_tags"):
                    left = conn.execute(
                        text(f"SELECT COUNT(*) FROM {table} WHERE prod_id = :p"), {"p": prod_id}
                    ).scalar()
                    assert left == 0, (table, prod_id)
                continue
            assert row is not None, f"product {prod_id} should exist"
            for column, value in expected.items():
                assert row[column] == value, (prod_id, column, row[column], value)
            if "price_cents" in expected:
                open_amount = conn.execute(
                    text(
                        "SELECT amount FROM product_prices WHERE prod_id = :p AND valid_to IS NULL"
                    ),
                    {"p": prod_id},
                ).scalar_one()
                assert int(open_amount * 100) == expected["price_cents"]


def test_workload_keeps_to_the_target_rate(dbs: dict[str, str]) -> None:
    url = dbs["postgres"]
    seed(url, products=500, seed=SEED, drop=True)
    report = run_workload(url, rate=20, duration=1.5, seed=2, keep_operations=False)
    assert 20 <= report.total <= 31
    assert report.achieved_rate <= 22
    assert report.operations == []


# --- readiness for CDC: the example's connector specs, prepared by the toolkit -----------


def _example_spec(flavour: str, url: str, user: str, password: str, tmp_path: Path) -> Path:
    """legacy_db/connectors/catalog-<flavour>.yaml pointed at `url`, as `user`."""
    import yaml

    name = "catalog-postgres" if flavour == "postgres" else "catalog-mariadb"
    spec = yaml.safe_load((folder("connectors") / f"{name}.yaml").read_text())
    secret = tmp_path / "cdc.properties"
    secret.write_text(f"password={password}\n")
    spec.update(database=url, user=user, password={"file": str(secret)})
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _rendered(stack: Settings, path: Path) -> Any:
    from seam.connectors.render import render
    from seam.connectors.spec import load_specs

    (spec,) = load_specs([path])
    return render(spec, stack)


def _as_user(url: str, user: str, password: str) -> str:
    from seam.connectors.engine import parse_url

    parsed = parse_url(url).set(username=user, password=password)
    return parsed.render_as_string(hide_password=False)


def test_prepare_readies_the_postgres_catalog_least_privilege_and_idempotent(
    stack: Settings, dbs: dict[str, str], cdc_user: str, tmp_path: Path
) -> None:
    from sqlalchemy import text

    from seam.connectors.readiness import prepare
    from seam.connectors.readiness.preflight import run_preflight

    url = dbs["postgres"]
    seed(url, products=300, seed=SEED, drop=True)
    password = f"pw-{uuid.uuid4().hex}"
    item = _rendered(stack, _example_spec("postgres", url, cdc_user, password, tmp_path))
    first = prepare.apply(item, stack)
    assert first.applied
    assert first.report.ok, first.report.summary()
    assert password not in json.dumps(first.as_dict())
    assert run_preflight(item, stack).ok
    second = prepare.apply(item, stack)
    assert second.applied == []

    with connect(url) as conn:
        role = conn.execute(
            text("SELECT rolsuper, rolreplication, rolcanlogin FROM pg_roles WHERE rolname = :u"),
            {"u": cdc_user},
        ).one()
        assert (role.rolsuper, role.rolreplication, role.rolcanlogin) == (False, True, True)
        published = {
            r[0]
            for r in conn.execute(
                text("SELECT tablename FROM pg_publication_tables WHERE pubname = 'seam_catalog'")
            )
        }
        assert published == {*CATALOG_TABLES, "seam_heartbeat", "debezium_signal"}
        identity = dict(
            conn.execute(
                text(
                    "SELECT relname, relreplident FROM pg_class "
                    "WHERE relname IN ('products', 'product_tags', 'categories')"
                )
            ).all()
        )
        # products: the spec's replica_identity_full; product_tags: it has no key.
        assert identity == {"products": "f", "product_tags": "f", "categories": "d"}

    # The CDC role can do its job, and no more.
    as_cdc = _as_user(url, cdc_user, password)
    slot = f"seam_test_{uuid.uuid4().hex[:8]}"
    with connect(as_cdc) as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM products")).scalar() == 300
        conn.execute(text(item.config["heartbeat.action.query"]))
        conn.execute(
            text("INSERT INTO debezium_signal (id, type, data) VALUES ('t1', 'log', '{}')")
        )
        conn.commit()
        conn.execute(text("SELECT pg_create_logical_replication_slot(:s, 'pgoutput')"), {"s": slot})
        conn.execute(text("SELECT pg_drop_replication_slot(:s)"), {"s": slot})
        conn.commit()
    with pytest.raises(DatabaseError, match="permission denied"), connect(as_cdc) as conn:
        conn.execute(text("DELETE FROM products WHERE prod_id = 1"))

    # With the tables published, deletes from the key-less product_tags need FULL identity:
    # a workload with hard deletes must still run.
    report = run_workload(url, rate=0, count=60, seed=9, keep_operations=False)
    assert report.counts["hard_delete"] > 0


def test_prepare_readies_the_mariadb_catalog_and_resets_a_changed_password(
    stack: Settings, dbs: dict[str, str], cdc_user: str, tmp_path: Path
) -> None:
    from sqlalchemy import text

    from seam.connectors.readiness import prepare

    url = dbs["mysql"]
    seed(url, products=300, seed=SEED, drop=True)
    password = f"pw-{uuid.uuid4().hex}"
    path = _example_spec("mariadb", url, cdc_user, password, tmp_path)
    first = prepare.apply(_rendered(stack, path), stack)
    assert first.report.ok, first.report.summary()
    assert prepare.apply(_rendered(stack, path), stack).applied == []

    with connect(url) as conn:
        grants = " | ".join(
            r[0] for r in conn.execute(text("SHOW GRANTS FOR :u@'%'"), {"u": cdc_user})
        )
    for privilege in (
        "SELECT",
        "RELOAD",
        "SHOW DATABASES",
        "REPLICATION SLAVE",
        "BINLOG MONITOR",
        "LOCK TABLES",
    ):
        assert privilege in grants, privilege
    assert "ALL PRIVILEGES" not in grants
    assert "SUPER" not in grants

    as_cdc = _as_user(url, cdc_user, password)
    with connect(as_cdc) as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM products")).scalar() == 300
        assert conn.execute(text("SHOW BINARY LOGS")).first() is not None
        conn.execute(
            text("INSERT INTO debezium_signal (id, type, data) VALUES ('t1', 'log', '{}')")
        )
        conn.commit()
    with pytest.raises(DatabaseError, match="denied"), connect(as_cdc) as conn:
        conn.execute(text("DELETE FROM products WHERE prod_id = 1"))

    # A changed password is noticed and reset, without touching the rest.
    (tmp_path / "cdc.properties").write_text(f"password={password}x\n")
    third = prepare.apply(_rendered(stack, path), stack)
    assert [s.shown() for s in third.applied] == [
        f"ALTER USER '{cdc_user}'@'%' IDENTIFIED BY '******'"
    ]


# --- the command line -------------------------------------------------------------------


def _seam(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "seam.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_cli_seed_workload_and_prepare(dbs: dict[str, str], cdc_user: str, tmp_path: Path) -> None:
    url = dbs["postgres"]
    done = _seam(
        "legacy", "seed", "--database", url, "--products", "400", "--drop", "--output", "json"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"]["products"] == 400

    log = tmp_path / "ops.jsonl"
    done = _seam(
        "legacy",
        "workload",
        "-d",
        url,
        "--rate",
        "0",
        "--count",
        "25",
        "--report",
        str(log),
        "--output",
        "json",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["total"] == 25
    assert len(read_log(log)) == 25

    secret = f"pw-{uuid.uuid4().hex}"
    spec = _example_spec("postgres", url, cdc_user, secret, tmp_path)
    done = _seam("connectors", "prepare", "--yes", str(spec))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "publication" in done.stdout
    assert secret not in done.stdout + done.stderr
    again = _seam("connectors", "prepare", str(spec))
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stdout


@pytest.mark.parametrize(
    ("url", "expect"),
    [
        ("postgresql://postgres:wrong-pw@127.0.0.1:{pg}/postgres", "login refused"),
        ("postgresql://postgres:wrong-pw@127.0.0.1:1/postgres", "cannot reach"),
        ("mysql://root:wrong-pw@127.0.0.1:{my}/catalog", "login refused"),
        ("ftp://root:wrong-pw@127.0.0.1/catalog", "unsupported database scheme"),
    ],
)
def test_cli_failures_are_one_line_without_traceback(
    stack: Settings, url: str, expect: str
) -> None:
    url = url.format(pg=stack.stack.postgres_port, my=stack.stack.mariadb_port)
    done = _seam("legacy", "seed", "--database", url, "--products", "1")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert expect in done.stderr
    assert "wrong-pw" not in done.stderr
    assert done.stderr.startswith("error: ")
    assert "fix: " in done.stderr


def test_mysql_insert_fallback_loads_the_same_rows_as_load_data(dbs: dict[str, str]) -> None:
    url = dbs["mysql"]
    seed(url, products=700, seed=SEED, drop=True, mysql_method="load-data")
    by_load = {t: table_rows(url, t) for t in CATALOG_TABLES}
    report = seed(url, products=700, seed=SEED, drop=True, mysql_method="insert")
    assert report.rows["products"] == 700
    for table in CATALOG_TABLES:
        assert table_rows(url, table) == by_load[table], table


def test_interrupted_workload_reports_what_it_committed(dbs: dict[str, str]) -> None:
    url = dbs["postgres"]
    seed(url, products=300, seed=SEED, drop=True)
    naps = 0

    def sleep(seconds: float) -> None:
        nonlocal naps
        naps += 1
        if naps == 6:
            raise KeyboardInterrupt

    before = scalar(url, "SELECT COUNT(*) FROM product_prices")
    report = run_workload(url, rate=50, count=100, seed=4, sleep=sleep)
    assert report.interrupted
    assert 0 < report.total < 100
    assert len(report.operations) == report.total
    # The operation in flight was rolled back: price rows changed only by logged operations.
    inserted = sum(
        1
        for op in report.operations
        for s in op.side_effects
        if s.table == "product_prices" and s.action == "insert"
    )
    deleted = sum(
        1
        for op in report.operations
        for s in op.side_effects
        if s.table == "product_prices" and s.action == "delete"
    )
    assert scalar(url, "SELECT COUNT(*) FROM product_prices") == before + inserted - deleted

"""Preflight against databases that are NOT ready for CDC.

The shared stack's databases are correctly configured, so each test starts a private server
of its own with the wrong setting (PostgreSQL with wal_level=replica, MariaDB with
binlog_format=STATEMENT) on a free port, in a temporary directory, with the local stack's own
code for that database, and stops it by PID.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from seam.connectors.client import ConnectClient
from seam.connectors.plan import apply_plan, make_plan
from seam.connectors.readiness import prepare
from seam.connectors.readiness.preflight import run_preflight
from seam.connectors.render import render
from seam.connectors.spec import parse_specs
from seam.errors import SeamError
from seam.settings import LOCAL_PASSWORD, Settings, StackSettings
from seam.stack import process
from seam.stack.databases import MariaDb, Postgres
from seam.stack.part import StackPaths
from seam.stack.prereqs import find_programs
from tests.conftest import free_port

pytestmark = pytest.mark.integration


@contextmanager
def _private_server(flavour: str, overrides: dict[str, str]) -> Iterator[Postgres | MariaDb]:
    """A database of the local stack's kind, started by the stack's own code with `overrides`
    on free ports in a temporary directory, and stopped by PID at the end."""
    root = Path(tempfile.mkdtemp(prefix="seam-ct-db-", dir="/var/tmp"))
    root.chmod(0o755)
    settings = StackSettings(dir=root, postgres_port=free_port(), mariadb_port=free_port())
    paths = StackPaths(root)
    programs = find_programs()
    part: Postgres | MariaDb
    if flavour == "postgres":
        part = Postgres(settings, paths, programs.postgres_bin, overrides)
    else:
        part = MariaDb(settings, paths, programs.mariadbd, programs.mariadb_install_db, overrides)
    try:
        part.initialise()
        part.start()
        deadline = time.monotonic() + 60
        while not part.ready():
            assert time.monotonic() < deadline, f"private {flavour} did not come up"
            time.sleep(0.2)
        part.after_ready()
        yield part
    finally:
        process.stop(part.pidfile)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def replica_postgres() -> Iterator[str]:
    """A private PostgreSQL with wal_level=replica; yields an admin URL to database `shop`."""
    from sqlalchemy import text

    from seam.connectors.engine import connect

    with _private_server("postgres", {"wal_level": "replica"}) as server:
        admin = f"postgresql://postgres:{LOCAL_PASSWORD}@127.0.0.1:{server.settings.postgres_port}"
        with connect(f"{admin}/postgres", isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("CREATE DATABASE shop"))
            conn.execute(text("CREATE ROLE cdc LOGIN PASSWORD 'cdc-pw'"))
        with connect(f"{admin}/shop", isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("CREATE TABLE products (id int PRIMARY KEY, name text)"))
            conn.execute(text("CREATE TABLE legacy_log (line text)"))  # no primary key
            conn.execute(text("GRANT SELECT ON products, legacy_log TO cdc"))
        yield f"{admin}/shop"


@pytest.fixture(scope="module")
def statement_mariadb() -> Iterator[str]:
    """A private MariaDB with binlog_format=STATEMENT; yields a URL of user `cdc` on `shop`."""
    from sqlalchemy import text

    from seam.connectors.engine import connect

    with _private_server("mariadb", {"binlog-format": "STATEMENT", "server-id": "7"}) as server:
        port = server.settings.mariadb_port
        with connect(f"mysql://root:{LOCAL_PASSWORD}@127.0.0.1:{port}/catalog") as conn:
            for statement in (
                "CREATE DATABASE shop",
                "CREATE TABLE shop.products (id INT PRIMARY KEY, name TEXT)",
                "CREATE USER 'cdc'@'%' IDENTIFIED BY 'cdc-pw'",
                "GRANT SELECT ON shop.* TO 'cdc'@'%'",
            ):
                conn.execute(text(statement))
        yield f"mysql://cdc:cdc-pw@127.0.0.1:{port}/shop"


def _spec(stack: Settings, tmp_path: Path, flavour: str, url: str, **extra: str) -> Any:
    secret = tmp_path / "cdc.properties"
    secret.write_text("password=cdc-pw\n")
    name = f"seam-ct-pre-{uuid.uuid4().hex[:8]}"
    fields = {
        "name": name,
        "flavour": flavour,
        "database": url,
        "user": "cdc",
        "password": f"{{file: {secret}}}",
        "tables": "[products]",
        "heartbeat_table": "null",
        "signal_table": "null",
        **extra,
    }
    lines = [f"{k}: {v}" for k, v in fields.items()]
    (spec,) = parse_specs("\n".join(lines) + "\n", f"{name}.yaml")
    return render(spec, stack)


def _failed(report: Any) -> dict[str, Any]:
    return {c.name: c for c in report.checks if not c.ok}


def test_postgres_with_wal_level_replica_fails_with_fix(
    stack: Settings, replica_postgres: str, tmp_path: Path
) -> None:
    item = _spec(stack, tmp_path, "postgres", replica_postgres, tables="[products, legacy_log]")
    report = run_preflight(item, stack)
    failed = _failed(report)
    assert not report.ok
    assert failed["wal_level"].detail == "wal_level is 'replica', expected 'logical'"
    assert "ALTER SYSTEM SET wal_level = logical" in (failed["wal_level"].fix or "")
    assert "REPLICATION" in (failed["replication privilege"].fix or "")
    no_pk = failed["replica identity public.legacy_log"]
    assert no_pk.severity == "error"
    assert "UPDATE and DELETE" in (no_pk.why or "")
    assert failed["replica identity public.products"].severity == "info"
    assert failed["publication"].statements

    # prepare applies the fixes as the admin URL (a superuser here: it may give the role
    # REPLICATION); wal_level needs a restart, so it says so and leaves it.
    planned = prepare.plan(item, stack)
    assert [c.name for c in planned.planned.blocked] == ["wal_level"]
    assert "needs a server restart" in (planned.planned.blocked[0].fix or "")
    fixed = prepare.apply(item, stack)
    assert fixed.applied
    assert [c.name for c in fixed.report.errors] == ["wal_level"]
    assert [c.name for c in run_preflight(item, stack).errors] == ["wal_level"]
    assert prepare.apply(item, stack).applied == []


def test_apply_against_unready_postgres_changes_nothing(
    stack: Settings, replica_postgres: str, tmp_path: Path
) -> None:
    client = ConnectClient.from_settings(stack)
    item = _spec(stack, tmp_path, "postgres", replica_postgres)
    with pytest.raises(SeamError) as info:
        apply_plan(make_plan([item], client.list_connectors()), client, stack)
    assert "wal_level" in info.value.message or "replication" in info.value.message.lower()
    assert item.name not in client.list_connectors(expand=False)


def test_mariadb_with_statement_binlog_fails_with_fix(
    stack: Settings, statement_mariadb: str, tmp_path: Path
) -> None:
    item = _spec(stack, tmp_path, "mariadb", statement_mariadb)
    report = run_preflight(item, stack)
    failed = _failed(report)
    assert failed["binlog_format"].detail == "binlog_format is STATEMENT, expected ROW"
    assert "SET GLOBAL binlog_format = 'ROW'" in (failed["binlog_format"].fix or "")
    assert "REPLICATION SLAVE" in failed["grants"].detail
    assert "log_bin" not in failed
    assert "server id" not in failed
    assert "flavour" not in failed

    # The same URL scheme serves MySQL and MariaDB: only the server tells them apart.
    wrong = _spec(stack, tmp_path, "mysql", statement_mariadb)
    flavour = _failed(run_preflight(wrong, stack))["flavour"]
    assert flavour.detail.startswith("the spec's flavour is 'mysql' but the server is MariaDB")
    assert flavour.fix == "set 'flavour: mariadb' in the spec (needs a change to the spec)"

    clash = _spec(stack, tmp_path, "mariadb", statement_mariadb, server_id="7")
    assert "server id" in _failed(run_preflight(clash, stack))

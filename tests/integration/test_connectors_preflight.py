"""Preflight against databases that are NOT ready for CDC.

The shared stack's databases are correctly configured, so each test starts a private server
of its own with the wrong setting (PostgreSQL with wal_level=replica, MariaDB with
binlog_format=STATEMENT) on a free port, in a temporary directory, as `nobody` when the
tests run as root, and stops it by PID.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from seam.connectors.client import ConnectClient
from seam.connectors.plan import apply_plan, make_plan
from seam.connectors.preflight import run_preflight
from seam.connectors.render import render
from seam.connectors.spec import parse_specs
from seam.errors import SeamError
from seam.settings import Settings

pytestmark = pytest.mark.integration

PG_BIN = next(
    (p for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)),
    Path("/nonexistent"),
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as() -> dict[str, Any]:
    """subprocess arguments that drop to `nobody` when running as root (initdb refuses root)."""
    return {"user": "nobody", "group": "nogroup"} if os.geteuid() == 0 else {}


def _private_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="seam-ct-db-", dir="/tmp"))
    path.chmod(0o755)
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
    return path


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} did not come up in {timeout} s")


def _stop(process: subprocess.Popen[bytes], sig: int) -> None:
    if process.poll() is None:
        os.kill(process.pid, sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def replica_postgres() -> Iterator[str]:
    """A private PostgreSQL with wal_level=replica; yields an admin URL to database `shop`."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip("PostgreSQL server binaries are not installed")
    root = _private_dir()
    data = root / "data"
    subprocess.run(
        [str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
        **_run_as(),
    )
    port = _free_port()
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(
        [
            str(PG_BIN / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={root}",
            "-c",
            "wal_level=replica",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        **_run_as(),
    )
    admin = f"postgresql://postgres:unused@127.0.0.1:{port}/postgres"
    try:
        from sqlalchemy import text

        from seam.errors import DatabaseError
        from seam.legacy_db.engine import connect

        def up() -> bool:
            try:
                with connect(admin) as conn:
                    conn.execute(text("SELECT 1"))
                return True
            except DatabaseError:
                return False

        _wait_for(up, "private PostgreSQL")
        with connect(admin, isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("CREATE DATABASE shop"))
            conn.execute(text("CREATE ROLE cdc LOGIN PASSWORD 'cdc-pw'"))
        shop = admin.rsplit("/", 1)[0] + "/shop"
        with connect(shop, isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("CREATE TABLE products (id int PRIMARY KEY, name text)"))
            conn.execute(text("CREATE TABLE legacy_log (line text)"))  # no primary key
            conn.execute(text("GRANT SELECT ON products, legacy_log TO cdc"))
        yield shop
    finally:
        _stop(process, signal.SIGINT)  # fast shutdown
        log.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def statement_mariadb() -> Iterator[str]:
    """A private MariaDB with binlog_format=STATEMENT; yields a URL of user `cdc` on `shop`."""
    install = shutil.which("mariadb-install-db")
    server = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
    client = shutil.which("mariadb")
    if not install or not Path(server).exists() or not client:
        pytest.skip("MariaDB server binaries are not installed")
    root = _private_dir()
    data = root / "data"
    sock = root / "mariadb.sock"
    user = ["--user=nobody"] if os.geteuid() == 0 else []
    subprocess.run(
        [
            install,
            "--no-defaults",
            f"--datadir={data}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            *user,
        ],
        check=True,
        capture_output=True,
    )
    port = _free_port()
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(
        [
            server,
            "--no-defaults",
            f"--datadir={data}",
            f"--socket={sock}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            "--log-bin=mysql-bin",
            "--binlog-format=STATEMENT",
            "--server-id=7",
            "--skip-name-resolve",
            *user,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def sql(statement: str) -> bool:
        done = subprocess.run(
            [client, "--no-defaults", f"--socket={sock}", "-uroot", "-e", statement],
            capture_output=True,
        )
        return done.returncode == 0

    try:
        _wait_for(lambda: sql("SELECT 1"), "private MariaDB")
        assert sql(
            "CREATE DATABASE shop; CREATE TABLE shop.products (id INT PRIMARY KEY, name TEXT); "
            "CREATE USER 'cdc'@'%' IDENTIFIED BY 'cdc-pw'; GRANT SELECT ON shop.* TO 'cdc'@'%';"
        )
        yield f"mysql://cdc:cdc-pw@127.0.0.1:{port}/shop"
    finally:
        _stop(process, signal.SIGTERM)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


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
    assert failed["publication"].fix_sql

    # --fix applies the safe fixes (publication, replica identity) as the admin URL; the
    # server settings stay for the operator.
    fixed = run_preflight(item, stack, fix=True)
    now = _failed(fixed)
    assert "publication" not in now
    assert "replica identity public.legacy_log" not in now
    assert "wal_level" in now
    assert "replication privilege" in now


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

    clash = _spec(stack, tmp_path, "mariadb", statement_mariadb, server_id="7")
    assert "server id" in _failed(run_preflight(clash, stack))

"""Preflight and prepare on databases of their own, with tables that are not the catalog's.

Each test makes a fresh database (PostgreSQL: with a schema `shop` holding a keyed and a
key-less table; MariaDB: one table) and a CDC user that does not exist yet, on the stack's
servers, and drops all of it afterwards. The cycle: preflight fails naming what is wrong,
prepare shows the fix (never the password) and applies it, preflight passes, and prepare
again changes nothing.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seam.connectors.readiness import prepare
from seam.connectors.readiness.preflight import run_preflight
from seam.connectors.render import RenderedConnector, render
from seam.connectors.spec import parse_specs
from seam.errors import SeamError
from seam.settings import Settings

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Shop:
    flavour: str
    url: str  # admin URL of the fresh database
    user: str  # the CDC user, not created yet
    password: str
    spec_path: Path

    def rendered(self, stack: Settings) -> RenderedConnector:
        (spec,) = parse_specs(self.spec_path.read_text(), str(self.spec_path))
        return render(spec, stack)


def _make_shop(stack: Settings, tmp_path: Path, flavour: str) -> Iterator[Shop]:
    from sqlalchemy import text

    from seam.connectors.engine import connect, create_database, drop_database, with_database

    suffix = uuid.uuid4().hex[:10]
    name = user = f"seam_rdy_{suffix}"
    admin = stack.database_url("postgres" if flavour == "postgres" else "mariadb")
    url = with_database(admin, name)
    # A password needing quoting everywhere: quotes, '%', ':' and '@'.
    password = f"p'w%{secrets.token_hex(6)}:@"
    secret = tmp_path / "cdc.properties"
    secret.write_text(f"password={password}\n")
    # The Connect worker reads it too (apply validates by logging in).
    tmp_path.chmod(0o755)
    secret.chmod(0o644)
    create_database(url)
    try:
        with connect(url, isolation_level="AUTOCOMMIT") as conn:
            if flavour == "postgres":
                for statement in (
                    "CREATE SCHEMA shop",
                    "CREATE TABLE shop.orders (id int PRIMARY KEY, total numeric(10, 2))",
                    "CREATE TABLE shop.audit (line text)",  # no primary key
                    "INSERT INTO shop.orders VALUES (1, 9.50)",
                ):
                    conn.execute(text(statement))
            else:
                conn.execute(text("CREATE TABLE orders (id INT PRIMARY KEY, total DECIMAL(10,2))"))
        lines = [
            f"name: seam-rdy-{suffix}",
            f"flavour: {flavour}",
            f"database: {url}",
            f"user: {user}",
            f"password: {{file: {secret}}}",
            f"signal_table: {'shop.' if flavour == 'postgres' else ''}rdy_signal",
        ]
        if flavour == "postgres":
            lines += [
                "tables: [shop.orders, shop.audit]",
                "replica_identity_full: [shop.orders]",
                "heartbeat_table: shop.rdy_heartbeat",
                f"publication: seam_rdy_{suffix}",
                "overrides:",
                "  publication.autocreate.mode: disabled",
            ]
        else:
            lines.append("tables: [orders]")
        spec_path = tmp_path / f"{name}.yaml"
        spec_path.write_text("\n".join(lines) + "\n")
        yield Shop(flavour, url, user, password, spec_path)
    finally:
        drop_database(url)
        with connect(admin, isolation_level="AUTOCOMMIT") as conn:
            if flavour == "postgres":
                conn.execute(text(f'DROP ROLE IF EXISTS "{user}"'))
            else:
                conn.execute(text(f"DROP USER IF EXISTS '{user}'@'%'"))


@pytest.fixture
def pg_shop(stack: Settings, tmp_path: Path) -> Iterator[Shop]:
    yield from _make_shop(stack, tmp_path, "postgres")


@pytest.fixture
def maria_shop(stack: Settings, tmp_path: Path) -> Iterator[Shop]:
    yield from _make_shop(stack, tmp_path, "mariadb")


def _failed(report: object) -> dict[str, object]:
    return {c.name: c for c in report.checks if not c.ok}  # type: ignore[attr-defined]


def test_postgres_preflight_fails_prepare_fixes_preflight_passes_prepare_again_is_a_noop(
    stack: Settings, pg_shop: Shop
) -> None:
    from sqlalchemy import text

    from seam.connectors.engine import connect, parse_url

    item = pg_shop.rendered(stack)
    before = run_preflight(item, stack)
    failed = _failed(before)
    assert not before.ok
    assert f"role '{pg_shop.user}' does not exist" in failed["login"].detail  # type: ignore[attr-defined]
    for name in (
        "table shop.rdy_heartbeat",
        "table shop.rdy_signal",
        "select privilege",
        "publication",
        "replica identity shop.orders",
        "replica identity shop.audit",
    ):
        assert name in failed, (name, sorted(failed))
    assert "wal_level" not in failed

    planned = prepare.plan(item, stack)
    shown = json.dumps(planned.as_dict()) + str(planned.planned.as_dict())
    assert pg_shop.password not in shown
    assert "PASSWORD '******'" in shown
    assert not planned.planned.blocked

    done = prepare.apply(item, stack)
    assert done.applied
    assert done.report.ok, done.report.summary()
    assert any(c.fixed and c.name == "table shop.rdy_signal" for c in done.report.checks)
    after = run_preflight(item, stack)
    assert after.ok, after.summary()

    again = prepare.apply(item, stack)
    assert again.applied == []
    assert again.planned.fixable == []

    with connect(pg_shop.url) as conn:
        role = conn.execute(
            text("SELECT rolsuper, rolreplication, rolcanlogin FROM pg_roles WHERE rolname = :u"),
            {"u": pg_shop.user},
        ).one()
        assert tuple(role) == (False, True, True)
        identity = dict(
            conn.execute(
                text(
                    "SELECT relname, relreplident FROM pg_class c JOIN pg_namespace n "
                    "ON n.oid = c.relnamespace WHERE nspname = 'shop' AND relkind = 'r'"
                )
            ).all()
        )
        assert identity == {"orders": "f", "audit": "f", "rdy_heartbeat": "d", "rdy_signal": "d"}
        published = {
            r[0]
            for r in conn.execute(
                text("SELECT tablename FROM pg_publication_tables WHERE pubname = :p"),
                {"p": item.config["publication.name"]},
            )
        }
        assert published == {"orders", "audit", "rdy_heartbeat", "rdy_signal"}
    # The CDC user does its job (reads, writes the heartbeat), and no more.
    as_cdc = (
        parse_url(pg_shop.url)
        .set(username=pg_shop.user, password=pg_shop.password)
        .render_as_string(hide_password=False)
    )
    with connect(as_cdc) as conn:
        assert conn.execute(text("SELECT count(*) FROM shop.orders")).scalar() == 1
        conn.execute(text(item.config["heartbeat.action.query"]))
        conn.commit()
    with pytest.raises(Exception, match="permission denied"), connect(as_cdc) as conn:
        conn.execute(text("DELETE FROM shop.orders"))


def test_mariadb_preflight_fails_prepare_fixes_preflight_passes_prepare_again_is_a_noop(
    stack: Settings, maria_shop: Shop
) -> None:
    from sqlalchemy import text

    from seam.connectors.engine import connect

    item = maria_shop.rendered(stack)
    before = run_preflight(item, stack)
    failed = _failed(before)
    assert f"user '{maria_shop.user}' does not exist" in failed["login"].detail  # type: ignore[attr-defined]
    assert "table seam_rdy_" in " ".join(failed)  # the signal table
    assert "REPLICATION SLAVE" in failed["grants"].detail  # type: ignore[attr-defined]

    done = prepare.apply(item, stack)
    assert done.report.ok, done.report.summary()
    assert maria_shop.password not in json.dumps(done.as_dict())
    after = run_preflight(item, stack)
    assert after.ok, after.summary()
    assert not after.warnings  # the snapshot grants too
    again = prepare.apply(item, stack)
    assert again.applied == []

    with connect(maria_shop.url) as conn:
        grants = " | ".join(
            r[0] for r in conn.execute(text("SHOW GRANTS FOR :u@'%'"), {"u": maria_shop.user})
        )
    for privilege in ("REPLICATION SLAVE", "BINLOG MONITOR", "RELOAD", "LOCK TABLES", "SELECT"):
        assert privilege in grants, privilege
    assert "ALL PRIVILEGES" not in grants
    assert "SUPER" not in grants


def test_cli_prepare_asks_first_shows_no_secret_and_is_idempotent(
    stack: Settings, pg_shop: Shop
) -> None:
    from seam.cli.main import app

    runner = CliRunner()
    spec = str(pg_shop.spec_path)
    refused = runner.invoke(app, ["connectors", "prepare", spec])
    assert isinstance(refused.exception, SeamError)  # main() prints it as one line
    assert refused.exception.hint == "pass --yes to confirm without a prompt"
    assert "CREATE ROLE" in refused.output
    assert not run_preflight(pg_shop.rendered(stack), stack).ok  # nothing was changed

    done = runner.invoke(app, ["connectors", "prepare", "--yes", spec])
    assert done.exit_code == 0, done.output
    assert "applied 12 statement(s)" in done.output
    assert "[fixed] login" in done.output
    assert pg_shop.password not in done.output
    checked = runner.invoke(app, ["connectors", "preflight", spec])
    assert checked.exit_code == 0, checked.output
    again = runner.invoke(app, ["connectors", "prepare", spec])  # no --yes needed: nothing to do
    assert again.exit_code == 0, again.output
    assert "nothing to do" in again.output
    as_json = runner.invoke(app, ["connectors", "prepare", "--output", "json", spec])
    assert as_json.exit_code == 0, as_json.output
    (entry,) = json.loads(as_json.stdout)
    assert entry["applied"] == []
    assert entry["ok"] is True
    assert entry["blocked"] == []


def test_prepare_leaves_what_needs_a_spec_change_and_says_so(
    stack: Settings, pg_shop: Shop
) -> None:
    from seam.cli.main import app

    text = pg_shop.spec_path.read_text().replace("shop.audit]", "shop.audit, shop.ghost]")
    pg_shop.spec_path.write_text(text)
    item = pg_shop.rendered(stack)
    planned = prepare.plan(item, stack)
    (blocked,) = planned.planned.blocked
    assert blocked.name == "table shop.ghost"
    assert "remove it from 'tables'" in (blocked.fix or "")
    result = CliRunner().invoke(app, ["connectors", "prepare", "--yes", str(pg_shop.spec_path)])
    assert result.exit_code == 1
    assert "not applied (needs a change to the spec)" in result.output
    # The rest was fixed: only the missing table is left.
    assert [c.name for c in run_preflight(item, stack).errors] == ["table shop.ghost"]


def test_a_second_cdc_user_gets_every_grant_on_helper_tables_that_exist_already(
    stack: Settings, pg_shop: Shop
) -> None:
    """Helper tables made for an earlier user: a new role still needs its writes to them."""
    from sqlalchemy import text

    from seam.connectors.engine import connect

    assert prepare.apply(pg_shop.rendered(stack), stack).report.ok
    other = f"{pg_shop.user}_b"
    pg_shop.spec_path.write_text(
        pg_shop.spec_path.read_text().replace(f"user: {pg_shop.user}", f"user: {other}")
    )
    item = pg_shop.rendered(stack)
    try:
        failed = _failed(run_preflight(item, stack))
        assert "heartbeat/signal writes" in failed
        done = prepare.apply(item, stack)
        assert done.report.ok, done.report.summary()
        assert run_preflight(item, stack).ok
    finally:
        with connect(pg_shop.url, isolation_level="AUTOCOMMIT") as conn:
            if conn.execute(
                text("SELECT 1 FROM pg_roles WHERE rolname = :u"), {"u": other}
            ).first():
                conn.execute(text(f'DROP OWNED BY "{other}"'))
                conn.execute(text(f'DROP ROLE "{other}"'))


def test_without_a_superuser_prepare_leaves_the_role_and_its_grants_and_says_so(
    stack: Settings, tmp_path: Path
) -> None:
    """An owner that is no superuser cannot give a role REPLICATION: prepare says so, holds
    back the grants to that role, and applies the rest (its tables, publication, identity)."""
    from sqlalchemy import text

    from seam.connectors.engine import connect, create_database, drop_database, with_database

    suffix = uuid.uuid4().hex[:10]
    owner, user, dbname = f"seam_rdy_own_{suffix}", f"seam_rdy_cdc_{suffix}", f"seam_rdy_{suffix}"
    superuser = stack.database_url("postgres")
    with connect(superuser, isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"CREATE ROLE {owner} LOGIN CREATEDB PASSWORD 'owner-pw'"))
    url = with_database(superuser, dbname)
    parsed = url.split("@", 1)[1]
    owner_url = f"postgresql://{owner}:owner-pw@{parsed}"
    create_database(url)
    try:
        with connect(url, isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"ALTER DATABASE {dbname} OWNER TO {owner}"))
            conn.execute(text(f"ALTER SCHEMA public OWNER TO {owner}"))
        with connect(owner_url, isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("CREATE TABLE items (id int PRIMARY KEY, name text)"))
        secret = tmp_path / "cdc.properties"
        secret.write_text("password=cdc-pw\n")
        (spec,) = parse_specs(
            f"name: seam-rdy-{suffix}\nflavour: postgres\ndatabase: {owner_url}\n"
            f"user: {user}\npassword: {{file: {secret}}}\ntables: [items]\n"
            f"replica_identity_full: [items]\npublication: seam_rdy_{suffix}\n"
            "overrides:\n  publication.autocreate.mode: disabled\n",
            "owner.yaml",
        )
        item = render(spec, stack)
        planned = prepare.plan(item, stack).planned
        blocked = {c.name: c.manual for c in planned.blocked}
        assert blocked["login"] == "needs a superuser"
        assert blocked["select privilege"] == "needs 'login' fixed first"
        assert "CREATE ROLE" in (planned.checks[1].fix or "")
        done = prepare.apply(item, stack)
        assert done.applied  # the helper tables, the publication, the replica identity
        assert not any(f'"{user}"' in s.shown() for s in done.applied)
        assert [c.name for c in done.report.fixable] == []
        assert {c.name for c in done.report.errors} == {
            "login",
            "database and schema access",
            "select privilege",
            "heartbeat/signal writes",
        }
    finally:
        drop_database(url)
        with connect(superuser, isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"DROP ROLE IF EXISTS {owner}"))
            conn.execute(text(f"DROP ROLE IF EXISTS {user}"))


def test_apply_fix_prepares_through_the_same_code_before_its_preflight(
    stack: Settings, pg_shop: Shop
) -> None:
    from seam.connectors.client import ConnectClient
    from seam.connectors.plan import apply_plan, make_plan

    client = ConnectClient.from_settings(stack)
    item = pg_shop.rendered(stack)
    plan = make_plan([item], client.list_connectors())
    with pytest.raises(SeamError, match="password authentication failed"):
        apply_plan(plan, client, stack, dry_run=True)  # Connect's validation logs in first
    result = apply_plan(plan, client, stack, dry_run=True, fix=True)
    assert [r.ok for r in result.preflight] == [True]
    assert item.name not in client.list_connectors(expand=False)  # a dry run


def test_a_cdc_user_without_usage_on_the_schema_gets_a_report_not_an_error(
    stack: Settings, pg_shop: Shop
) -> None:
    from psycopg import sql
    from sqlalchemy import text

    from seam.connectors.engine import connect

    with connect(pg_shop.url, isolation_level="AUTOCOMMIT") as conn:
        raw = conn.connection.driver_connection
        statement = sql.SQL("CREATE ROLE {} LOGIN REPLICATION PASSWORD {}").format(
            sql.Identifier(pg_shop.user), sql.Literal(pg_shop.password)
        )
        conn.execute(text(statement.as_string(raw).replace(":", "\\:")))
    item = pg_shop.rendered(stack)
    failed = _failed(run_preflight(item, stack))
    assert "login" not in failed
    assert "USAGE on schema shop" in failed["database and schema access"].detail  # type: ignore[attr-defined]
    assert prepare.apply(item, stack).report.ok
    assert run_preflight(item, stack).ok

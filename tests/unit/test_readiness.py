"""The CDC readiness model: checks, fixes shown without secrets, targets from specs (no I/O)."""

from __future__ import annotations

import json
import re

import pytest

from seam.connectors.readiness.model import (
    PASSWORD,
    RESTART,
    SPEC_CHANGE,
    Check,
    PreflightError,
    Report,
    Statement,
    login_check,
    manual_check,
    sql_check,
    target_for,
)
from seam.connectors.readiness.prepare import _needs_superuser
from seam.connectors.readiness.sql import (
    heartbeat_table_ddl,
    my_account,
    my_quote,
    pg_quote,
    signal_table_ddl,
)
from seam.connectors.render import heartbeat_query, render
from seam.connectors.spec import parse_specs
from seam.errors import ConfigError
from seam.secrets import MASK, Secret
from seam.settings import load_settings

pytestmark = pytest.mark.unit

SETTINGS = load_settings(env={})
REMOTE = load_settings(env={"SEAM_DATABASES_SHOP": "postgresql://admin:a@db.example.com/shop"})
SHOP = """\
name: shop
flavour: postgres
database: postgres
user: shop_cdc
tables: [orders, billing.invoices, audit_log]
replica_identity_full: [orders]
heartbeat_table: shop_heartbeat
signal_table: shop_signal
"""


def target(text: str = SHOP, settings: object = SETTINGS, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    (spec,) = parse_specs(text, "shop.yaml")
    return target_for(render(spec, settings), settings, env or {})  # type: ignore[arg-type]


def test_a_secret_in_a_statement_shows_masked_and_runs_quoted() -> None:
    statement = Statement(f"ALTER ROLE x PASSWORD {PASSWORD}", Secret("s3cr'et"))
    assert statement.shown() == f"ALTER ROLE x PASSWORD '{MASK}'"
    assert "s3cr" not in repr(statement)
    assert statement.to_run(lambda v: "'" + v.replace("'", "''") + "'") == (
        "ALTER ROLE x PASSWORD 's3cr''et'"
    )


def test_a_fixable_check_shows_its_statements_and_keeps_none_once_it_passes() -> None:
    secret = Secret("hunter2")
    failing = sql_check(
        "login", False, "role 'x' does not exist", (Statement(f"CREATE ROLE x {PASSWORD}", secret),)
    )
    assert failing.fixable
    assert not failing.blocked
    assert failing.fix == f"CREATE ROLE x '{MASK}'; (seam connectors prepare runs it)"
    assert "hunter2" not in json.dumps(failing.as_dict())
    passing = sql_check("login", True, "", (Statement("CREATE ROLE x"),))
    assert passing.statements == ()
    assert not passing.fixable


def test_a_manual_check_says_why_seam_leaves_it_and_blocks_prepare() -> None:
    check = manual_check(
        "wal_level", False, "wal_level is 'replica'", "ALTER SYSTEM ...", manual=RESTART
    )
    assert check.blocked
    assert not check.fixable
    assert check.fix == f"ALTER SYSTEM ... ({RESTART})"
    assert check.manual == RESTART
    warning = manual_check(
        "retention", False, "short", "raise it", manual=SPEC_CHANGE, severity="warning"
    )
    assert not warning.blocked  # a warning never stops anything
    info = Check("identity", False, "DEFAULT", severity="info", statements=(Statement("X"),))
    assert not info.fixable  # informational findings are not applied


def test_report_sorts_checks_into_errors_fixable_and_blocked() -> None:
    fixable = sql_check("grants", False, "lacks SELECT", (Statement("GRANT SELECT ON t TO u"),))
    blocked = manual_check("wal_level", False, "replica", "restart", manual=RESTART)
    warn = sql_check(
        "snapshot grants", False, "lacks RELOAD", (Statement("GRANT RELOAD"),), severity="warning"
    )
    report = Report("c", "postgres", [fixable, blocked, warn, Check("ok", True, "")])
    assert not report.ok
    assert [c.name for c in report.errors] == ["grants", "wal_level"]
    assert [c.name for c in report.fixable] == ["grants", "snapshot grants"]
    assert [c.name for c in report.blocked] == ["wal_level"]
    error = PreflightError([report])
    assert "grants: lacks SELECT" in error.message
    assert "seam connectors prepare" in (error.hint or "")


def test_after_prepare_fixed_checks_say_what_ran_even_when_no_longer_checked() -> None:
    table = sql_check("table t", False, "missing", (Statement("CREATE TABLE t (id int)"),))
    grant = sql_check("grants", False, "lacks", (Statement("GRANT SELECT ON t TO u"),))
    again = Report("c", "postgres", [sql_check("grants", True, "", ())])
    after = again.marked_fixed([table, grant])
    by_name = {c.name: c for c in after.checks}
    assert by_name["grants"].fixed
    assert by_name["grants"].detail == "fixed: GRANT SELECT ON t TO u"
    assert by_name["table t"].fixed
    assert by_name["table t"].ok
    still = Report("c", "postgres", [sql_check("grants", False, "lacks", (Statement("G"),))])
    assert not still.marked_fixed([grant]).checks[0].ok  # a fix that did not take stays failed


def test_target_comes_from_the_spec_not_from_any_schema() -> None:
    t = target()
    assert t.tables == (
        "public.orders",
        "billing.invoices",
        "public.audit_log",
        "public.shop_heartbeat",
        "public.shop_signal",
    )
    assert t.helper_tables == ("public.shop_heartbeat", "public.shop_signal")
    assert t.full_identity == ("public.orders",)
    assert t.user == "shop_cdc"
    assert t.dbname == "catalog"
    assert t.publication == "seam_shop"
    assert t.slot == "seam_shop"
    mysql = target(
        "name: m\nflavour: mariadb\ndatabase: mariadb\ntables: [orders]\nsignal_table: sig\n"
    )
    assert mysql.tables == ("catalog.orders", "catalog.sig")
    assert mysql.heartbeat_table is None  # only PostgreSQL's heartbeat writes a row


def test_the_local_default_password_is_never_set_on_a_remote_database() -> None:
    assert not target().default_password_remote  # the local stack, on loopback
    remote = target(SHOP.replace("database: postgres", "database: shop"), REMOTE)
    assert remote.default_password_remote
    check = login_check(remote, f"CREATE ROLE x PASSWORD {PASSWORD}", "role missing", "refused")
    assert check.blocked
    assert "SEAM_CDC_PASSWORD" in (check.fix or "")
    chosen = target(
        SHOP.replace("database: postgres", "database: shop"),
        REMOTE,
        env={"SEAM_CDC_PASSWORD": "chosen"},
    )
    assert not chosen.default_password_remote
    assert login_check(chosen, f"CREATE ROLE x PASSWORD {PASSWORD}", "missing", "x").fixable


def test_giving_a_role_replication_needs_a_superuser() -> None:
    create = sql_check(
        "login", False, "", (Statement('CREATE ROLE "u" WITH LOGIN REPLICATION NOSUPERUSER'),)
    )
    alter = sql_check(
        "replication privilege", False, "", (Statement('ALTER ROLE "u" WITH REPLICATION'),)
    )
    password = sql_check("login", False, "", (Statement('ALTER ROLE "u" WITH LOGIN PASSWORD x'),))
    assert _needs_superuser(create)
    assert _needs_superuser(alter)
    assert not _needs_superuser(password)


def test_spec_replica_identity_full_names_captured_postgres_tables() -> None:
    with pytest.raises(ConfigError, match="nope in 'replica_identity_full' but not in 'tables'"):
        parse_specs(
            SHOP.replace("replica_identity_full: [orders]", "replica_identity_full: [nope]")
        )
    with pytest.raises(ConfigError, match="'replica_identity_full' applies to postgres only"):
        parse_specs(
            "name: m\nflavour: mysql\ndatabase: x\ntables: [a]\nreplica_identity_full: [a]\n"
        )


def test_identifiers_are_quoted_and_quotes_refused() -> None:
    assert pg_quote("billing.Invoices") == '"billing"."Invoices"'
    assert my_quote("shop.orders") == "`shop`.`orders`"
    assert my_account("cdc", "%") == "'cdc'@'%'"
    for bad in ('x"; DROP TABLE y; --', "a`b", "o'brien"):
        with pytest.raises(ConfigError, match="seam can quote"):
            pg_quote(bad)
    assert signal_table_ddl("s.sig", postgres=True).startswith(
        'CREATE TABLE "s"."sig" (id VARCHAR(42)'
    )
    assert signal_table_ddl("s.sig", postgres=False).endswith(
        "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    )


def test_the_heartbeat_table_holds_what_the_one_heartbeat_query_writes() -> None:
    create, seed_row = heartbeat_table_ddl("public.beat")
    query = heartbeat_query("public.beat")
    columns = re.search(r"\(([^)]*)\) VALUES", query)
    assert columns is not None
    for column in columns.group(1).split(", "):
        assert f"{column} " in create
    assert "ON CONFLICT (id)" in query
    assert "ON CONFLICT (id) DO NOTHING" in seed_row


def test_fixes_for_a_user_prepare_may_not_create_are_held_back_too() -> None:
    from dataclasses import replace

    from seam.connectors.readiness.model import SUPERUSER, hold_dependents

    login = sql_check("login", False, "no role", (Statement('CREATE ROLE "u" REPLICATION'),))
    grant = sql_check(
        "select privilege",
        False,
        "no SELECT",
        (Statement('GRANT SELECT ON t TO "u"'),),
        requires="login",
    )
    table = sql_check("table t", False, "missing", (Statement("CREATE TABLE t (id int)"),))
    assert hold_dependents([login, grant, table]) == [login, grant, table]  # all fixable
    blocked = replace(login, statements=(), manual=SUPERUSER)
    held = {c.name: c for c in hold_dependents([blocked, grant, table])}
    assert held["select privilege"].blocked
    assert held["select privilege"].manual == "needs 'login' fixed first"
    assert 'GRANT SELECT ON t TO "u"' in (held["select privilege"].fix or "")
    assert held["table t"].fixable  # independent of the user: still applied

"""Prepare: make a connector's database ready for CDC by fixing what preflight finds.

`plan` runs the same checks as preflight, as the settings' (administrative) database user,
and keeps each failing check's fix; `apply` runs those statements and checks again. Only
failing checks carry statements, so a second run finds nothing to do. What needs a server
restart, a superuser the settings' user is not, or a change to the spec is reported, never
applied in part. On PostgreSQL every statement of one connector runs in one transaction:
a failure changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from seam.connectors.engine import connect
from seam.connectors.readiness.model import (
    SUPERUSER,
    Check,
    Report,
    Statement,
    hold_dependents,
    target_for,
)
from seam.connectors.readiness.preflight import admin_url, cdc_url, login_error, probe
from seam.errors import DatabaseError
from seam.secrets import MASK, mask_url

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from seam.connectors.render import Rendered
    from seam.settings import Settings


@dataclass
class Prepared:
    """What prepare found, ran, and found afterwards, for one connector."""

    database: str  # masked URL of the database the fixes ran on
    planned: Report
    applied: list[Statement] = field(default_factory=list)
    after: Report | None = None

    @property
    def report(self) -> Report:
        return self.after or self.planned

    def as_dict(self) -> dict[str, Any]:
        return {
            "connector": self.planned.connector,
            "database": self.database,
            "applied": [s.shown() for s in self.applied],
            "blocked": [c.as_dict() for c in self.report.blocked],
            **{k: v for k, v in self.report.as_dict().items() if k != "connector"},
        }


def _superuser(conn: Connection, flavour: str) -> bool:
    from sqlalchemy import text

    if flavour != "postgres":
        return True  # MySQL has no single superuser flag; a missing grant fails the statement
    row = conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar()
    return bool(row)


def _needs_superuser(check: Check) -> bool:
    """PostgreSQL: giving a role REPLICATION takes a superuser."""
    return any(" REPLICATION" in s.sql and " ROLE " in s.sql for s in check.statements)


def plan(
    rendered: Rendered, settings: Settings, *, env: Mapping[str, str] | None = None
) -> Prepared:
    """The checks of the connector's database, as its administrator would fix them."""
    from seam.connectors.sink import RenderedSink

    if isinstance(rendered, RenderedSink):
        from seam.connectors.readiness import sink

        return sink.plan(rendered, settings, env=env)
    target = target_for(rendered, settings, env)
    admin = admin_url(rendered, settings)
    error = login_error(cdc_url(rendered, settings, target))
    checks = probe(admin, target, error)
    with connect(admin) as conn:
        superuser = _superuser(conn, target.flavour)
    if not superuser:
        checks = [
            replace(
                c,
                statements=(),
                manual=SUPERUSER,
                fix=f"{'; '.join(s.shown() for s in c.statements)}; as a superuser ({SUPERUSER})",
            )
            if c.fixable and _needs_superuser(c)
            else c
            for c in checks
        ]
    checks = hold_dependents(checks)
    return Prepared(mask_url(admin), Report(target.connector, target.flavour, checks))


def _quoter(conn: Any, flavour: str) -> Callable[[str], str]:
    """A function quoting a string literal the way the connection's driver does."""
    if flavour == "postgres":
        from psycopg import sql

        return lambda value: sql.Literal(value).as_string(conn)
    return lambda value: str(conn.escape(value))


def _run(url: str, flavour: str, statements: list[Statement]) -> None:
    """Run the statements as `url`'s user; on PostgreSQL in one transaction."""
    import psycopg
    import pymysql

    secrets = [s.secret.reveal() for s in statements if s.secret is not None]
    with connect(url) as conn:
        raw: Any = conn.connection.driver_connection
        quote = _quoter(raw, flavour)
        done = 0
        try:
            cursor = raw.cursor()
            for statement in statements:
                # The driver's own cursor, without parameters: the statement is run as is
                # (no %-formatting of a '%' host or a password).
                cursor.execute(statement.to_run(quote))
                done += 1
            raw.commit()
        except (psycopg.Error, pymysql.Error) as exc:
            raw.rollback()
            message = " ".join(str(exc).split())
            for secret in secrets:
                message = message.replace(secret, MASK)
            postgres = flavour == "postgres"
            raise DatabaseError(
                f"prepare failed on {mask_url(url)} at `{statements[min(done, len(statements) - 1)].shown()}`: "
                f"{message}",
                hint=("nothing was changed (one transaction); " if postgres else "")
                + "give the [databases] user the privilege it lacks (or run as an administrator), "
                "then run prepare again",
            ) from None


def apply(
    rendered: Rendered,
    settings: Settings,
    *,
    env: Mapping[str, str] | None = None,
) -> Prepared:
    """Plan afresh (what an earlier connector's fixes left to do) and run the fixes."""
    from seam.connectors.sink import RenderedSink

    if isinstance(rendered, RenderedSink):
        from seam.connectors.readiness import sink

        return sink.apply(rendered, settings, env=env)
    prepared = plan(rendered, settings, env=env)
    fixable = prepared.planned.fixable
    statements = [s for c in fixable for s in c.statements]
    if not statements:
        return prepared
    _run(admin_url(rendered, settings), prepared.planned.flavour, statements)
    prepared.applied = statements
    after = plan(rendered, settings, env=env).planned
    prepared.after = after.marked_fixed(fixable)
    return prepared

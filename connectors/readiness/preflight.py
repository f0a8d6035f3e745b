"""Preflight: is a connector's database ready for CDC? Check before creating the connector.

Debezium checks `wal_level`, `binlog_format` and friends only when its task starts, so a bad
database shows up as a FAILED task minutes after `apply`. The preflight logs in with the
spec's own CDC credentials (resolved here from the same env var / file the Connect worker
uses) and runs the flavour's checks: the ones Debezium would make, plus the ones it never
makes (replica identity, retained WAL, binlog retention). When the CDC user cannot log in,
the checks run through the settings' database URL instead, so the report still names
everything that is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from seam.connectors.engine import connect, parse_url
from seam.connectors.readiness import mysql, postgres
from seam.connectors.readiness.model import Check, Report, Target, target_for
from seam.errors import DatabaseError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from seam.connectors.render import Rendered, RenderedConnector
    from seam.settings import Settings

Probe = Callable[["Connection", Target, "str | None"], list[Check]]
PROBES: dict[str, Probe] = {
    "postgres": postgres.probe,
    "mysql": mysql.probe,
    "mariadb": mysql.probe,
}


def admin_url(rendered: RenderedConnector, settings: Settings) -> str:
    """The settings' URL of the spec's database: an owner or administrator."""
    return settings.database_url(rendered.spec.database)


def cdc_url(rendered: RenderedConnector, settings: Settings, target: Target) -> str:
    """The settings' database URL with the spec's CDC user and its (resolved) password."""
    base = parse_url(admin_url(rendered, settings))
    return base.set(username=target.user, password=target.password.reveal()).render_as_string(
        hide_password=False
    )


def login_error(url: str) -> str | None:
    """Why `url` cannot log in (None: it can)."""
    from sqlalchemy import text

    try:
        with connect(url) as conn:
            conn.execute(text("SELECT 1"))
    except DatabaseError as exc:
        return exc.message
    return None


def probe(url: str, target: Target, error: str | None) -> list[Check]:
    """The flavour's checks of `target`, through a connection to `url`."""
    with connect(url, isolation_level="AUTOCOMMIT") as conn:
        return PROBES[target.flavour](conn, target, error)


def run_preflight(
    rendered: Rendered, settings: Settings, *, env: Mapping[str, str] | None = None
) -> Report:
    """Check the spec's database as its CDC user (a sink's: as the user it writes as)."""
    from seam.connectors.sink import RenderedSink

    if isinstance(rendered, RenderedSink):
        from seam.connectors.readiness import sink

        return sink.preflight(rendered, settings, env=env)
    target = target_for(rendered, settings, env)
    report = Report(connector=target.connector, flavour=target.flavour)
    cdc = cdc_url(rendered, settings, target)
    error = login_error(cdc)
    admin = admin_url(rendered, settings)
    other = parse_url(admin).username != target.user
    if error is None:
        try:
            report.checks = probe(cdc, target, None)
            return report
        except DatabaseError:
            if not other:
                raise
            # The CDC user may not even look (no USAGE on a schema): ask as the settings' user.
            report.checks = probe(admin, target, None)
            return report
    if other:
        try:
            report.checks = probe(admin, target, error)
            return report
        except DatabaseError:
            pass  # the settings' user cannot log in either: report what is known
    report.checks = [
        Check(
            "login",
            False,
            f"cannot connect as '{target.user}': {error}",
            why="the connector logs in with exactly these credentials",
            fix="create the CDC user (`seam connectors prepare SPEC` with an administrator's "
            f"URL under [databases]) or fix the password reference ({target.password_source}),"
            f" and check the host and port of '{rendered.spec.database}'",
        )
    ]
    return report

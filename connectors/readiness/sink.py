"""Readiness of a sink connector's target: can it write its table, is its topic there?

The JDBC sink fails only once its task runs (a refused login, a missing database or table),
so the preflight checks first, as the sink's own user with its password resolved here: it
logs in, its database and table exist (an existing table: it may write it, keyed as the sink
upserts), and the topic it reads exists. `prepare` fixes what an administrator can: the
user, the database and the table, both owned by that user.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from seam.connectors.engine import connect, parse_url, server_url
from seam.connectors.readiness.model import (
    PASSWORD,
    Check,
    Report,
    Statement,
    default_password_remote,
    manual_check,
    sql_check,
)
from seam.connectors.readiness.prepare import Prepared, _quoter
from seam.connectors.sink import key_columns, qualified_table, table_ddl, target_url
from seam.connectors.spec import SINK_PASSWORD_ENV
from seam.errors import DatabaseError, SeamError
from seam.secrets import mask_url

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from seam.connectors.sink import RenderedSink
    from seam.secrets import Secret
    from seam.settings import Settings

FLAVOUR = "jdbc-sink"
LOGIN = "login"
DATABASE = "target database"
TABLE = "table"
TOPIC = "topic"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _password(rendered: RenderedSink, env: Mapping[str, str] | None) -> Secret:
    return rendered.spec.password.resolve(env)


def _login_error(url: str) -> str | None:
    from sqlalchemy import text

    try:
        with connect(url) as conn:
            conn.execute(text("SELECT 1"))
    except DatabaseError as exc:
        return exc.message
    return None


def _sink_url(rendered: RenderedSink, settings: Settings, env: Mapping[str, str] | None) -> str:
    """The target database as the sink's user, password resolved here."""
    spec = rendered.spec
    return target_url(spec, settings, user=spec.user, password=_password(rendered, env).reveal())


def _server_checks(
    conn: Connection,
    rendered: RenderedSink,
    secret: Secret,
    sink_url: str,
    remote_default: bool,
) -> list[Check]:
    """The user and the database, as the settings' (administrative) user sees them."""
    from sqlalchemy import text

    spec = rendered.spec
    dbname = parse_url(rendered.config["connection.url"].removeprefix("jdbc:")).database or ""
    role = conn.execute(
        text("SELECT rolcanlogin FROM pg_roles WHERE rolname = :u"), {"u": spec.user}
    ).first()
    exists = (
        conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": dbname}).first()
        is not None
    )
    # Until prepare makes the target database, the sink's user logs in to the server's own.
    error = _login_error(sink_url if exists else server_url(sink_url))
    password = rendered.spec.password
    why = "the connector logs in with exactly these credentials"
    checks: list[Check] = []
    if role is not None and role[0] and error is None:
        checks.append(Check(LOGIN, True, f"'{spec.user}' logs in"))
    elif remote_default:
        checks.append(
            manual_check(
                LOGIN,
                False,
                f"cannot log in as '{spec.user}': {error}",
                f"export {password.name}=<the sink user's password> (for seam and the Connect "
                "worker) and run prepare again",
                manual=f"{password.name} is not set, and the local default password is only "
                "set on databases on this machine",
                why=why,
            )
        )
    else:
        verb = "CREATE" if role is None else "ALTER"
        checks.append(
            sql_check(
                LOGIN,
                False,
                f"cannot log in as '{spec.user}': {error}",
                (
                    Statement(
                        f"{verb} ROLE {_quoted(spec.user)} WITH LOGIN PASSWORD {PASSWORD}",
                        secret,
                    ),
                ),
                why=why,
            )
        )
    checks.append(
        sql_check(
            DATABASE,
            exists,
            f"database '{dbname}'" + (" exists" if exists else " does not exist"),
            (Statement(f"CREATE DATABASE {_quoted(dbname)} OWNER {_quoted(spec.user)}"),),
            why="the sink writes its table there (a database of the new service's own)",
        )
    )
    return checks


def _missing_table(rendered: RenderedSink) -> Check:
    """The table is not there: prepare makes it, owned by the sink's user.

    Debezium 3.5's sink would make it from the first record it reads, and its task fails on
    a tombstone that comes first; prepare makes it from the same schema. The sink's user
    owns it: schema evolution (ALTER TABLE ... ADD COLUMN) takes the owner.
    """
    spec = rendered.spec
    schema, table = qualified_table(spec)
    return sql_check(
        TABLE,
        False,
        f"{schema}.{table} does not exist",
        (
            Statement(table_ddl(spec)),
            Statement(f"ALTER TABLE {schema}.{table} OWNER TO {_quoted(spec.user)}"),
        ),
        why="the sink fails on a delete (a tombstone) that arrives before its table exists "
        "(Debezium 3.5 makes a missing table from the first record, and a tombstone has no "
        "columns)",
        requires=DATABASE,
    )


def _table_checks(conn: Connection, rendered: RenderedSink) -> list[Check]:
    """Whether the sink's table is there, and its user may write it, keyed as it upserts."""
    from sqlalchemy import text

    spec = rendered.spec
    schema, table = qualified_table(spec)
    qualified = f"{_quoted(schema)}.{_quoted(table)}"
    found = conn.execute(text("SELECT to_regclass(:t)"), {"t": qualified}).scalar()
    why = "the sink upserts and deletes the rows of its table"
    if found is None:
        return [_missing_table(rendered)]
    rights = conn.execute(
        text("SELECT has_table_privilege(:u, :t, 'SELECT, INSERT, UPDATE, DELETE')"),
        {"u": spec.user, "t": qualified},
    ).scalar()
    keys = tuple(
        row[0]
        for row in conn.execute(
            text(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = CAST(:t AS regclass) "
                "AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)"
            ),
            {"t": qualified},
        )
    )
    checks = [
        sql_check(
            TABLE,
            bool(rights),
            f"'{spec.user}' may write {schema}.{table}"
            if rights
            else f"'{spec.user}' may not select, insert, update and delete in {schema}.{table}",
            (
                Statement(
                    f"GRANT SELECT, INSERT, UPDATE, DELETE ON {qualified} TO {_quoted(spec.user)}"
                ),
            ),
            why=why,
        )
    ]
    wanted = key_columns(spec)
    checks.append(
        manual_check(
            "table key",
            keys == wanted,
            f"{schema}.{table}'s primary key is ({', '.join(keys) or 'none'})",
            f"give {schema}.{table} the primary key ({', '.join(wanted)}), or drop it and let "
            "the sink create it",
            manual="the operator's decision",
            why="the sink upserts and deletes by the entity's key: the table's primary key",
        )
    )
    return checks


def _topic_check(rendered: RenderedSink, settings: Settings) -> Check:
    from seam.streams.kafka import Kafka

    topic = rendered.config.get("topics", "")
    why = "the sink reads the entity's latest topic; Kafka would create a missing one uncompacted"
    try:
        with Kafka(settings.kafka, timeout=5.0) as kafka:
            partitions = kafka.partitions(topic)
    except SeamError as exc:
        return Check(
            TOPIC,
            False,
            exc.message,
            why=why,
            fix="run the entity's pipeline once (seam transform run PIPELINE): it creates its "
            "topics; or fix 'topic:' in the spec",
        )
    return Check(TOPIC, True, f"'{topic}' exists ({len(partitions)} partition(s))")


def _probe(
    rendered: RenderedSink, settings: Settings, env: Mapping[str, str] | None
) -> list[Check]:
    """Every check, as seen from the settings' user (and the sink's own, when it logs in)."""
    secret = _password(rendered, env)
    sink_url = _sink_url(rendered, settings, env)
    admin = target_url(rendered.spec, settings)
    spec = rendered.spec
    remote_default = default_password_remote(
        spec.password, settings.database_url(spec.database), env, local=SINK_PASSWORD_ENV
    )
    with connect(server_url(admin), isolation_level="AUTOCOMMIT") as conn:
        checks = _server_checks(conn, rendered, secret, sink_url, remote_default)
    target_exists = all(c.ok for c in checks if c.name == DATABASE)
    if target_exists:
        with connect(admin, isolation_level="AUTOCOMMIT") as conn:
            checks += _table_checks(conn, rendered)
    else:
        checks.append(_missing_table(rendered))  # a new database holds no table
    checks.append(_topic_check(rendered, settings))
    return checks


def preflight(
    rendered: RenderedSink, settings: Settings, *, env: Mapping[str, str] | None = None
) -> Report:
    """The sink's target and topic, checked before the connector is made."""
    return Report(rendered.name, FLAVOUR, _probe(rendered, settings, env))


def plan(
    rendered: RenderedSink, settings: Settings, *, env: Mapping[str, str] | None = None
) -> Prepared:
    """The checks, with the statements that fix the failing ones."""
    admin = target_url(rendered.spec, settings)
    return Prepared(mask_url(admin), preflight(rendered, settings, env=env))


def apply(
    rendered: RenderedSink, settings: Settings, *, env: Mapping[str, str] | None = None
) -> Prepared:
    """Run the fixes: the user and the database on the server, then the table in it.

    Each statement runs on its own (CREATE DATABASE cannot run in a transaction), the user
    first, as the database is made owned by it.
    """
    prepared = plan(rendered, settings, env=env)
    fixable = prepared.planned.fixable
    if not fixable:
        return prepared
    admin = target_url(rendered.spec, settings)
    for name in (LOGIN, DATABASE, TABLE):
        for check in (c for c in fixable if c.name == name):
            with connect(
                admin if name == TABLE else server_url(admin), isolation_level="AUTOCOMMIT"
            ) as conn:
                raw: Any = conn.connection.driver_connection
                quote = _quoter(raw, "postgres")
                cursor = raw.cursor()
                for statement in check.statements:
                    # The driver's own cursor, without parameters: run as is (no %-formatting
                    # of a password), the secret quoted by the driver.
                    cursor.execute(statement.to_run(quote))
                    prepared.applied.append(statement)
    prepared.after = plan(rendered, settings, env=env).planned.marked_fixed(fixable)
    return prepared


__all__ = ["apply", "plan", "preflight"]

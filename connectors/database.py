"""Reach the database behind a live connector: slots, signals, the URL to use.

A connector on the cluster carries its host, port, database and user, and its password as a
config-provider reference. To act on its database (drop its slot, send a signal) seam
prefers a database from its own settings at the same host/port/database (usually an admin
or owner), and otherwise logs in as the connector's user with the reference resolved here.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from seam.connectors.spec import SecretRef
from seam.errors import ConfigError, DatabaseError

if TYPE_CHECKING:
    from seam.settings import Settings

_REFERENCE = re.compile(r"^\$\{(?P<provider>env|file):(?P<body>[^}]*)\}$")


def is_postgres_config(config: Mapping[str, str]) -> bool:
    return "postgresql" in config.get("connector.class", "").lower()


def is_debezium_database_config(config: Mapping[str, str]) -> bool:
    """A Debezium PostgreSQL, MySQL or MariaDB source: one seam can reach the database of."""
    return (
        config.get("connector.class", "")
        .lower()
        .startswith(
            (
                "io.debezium.connector.postgresql.",
                "io.debezium.connector.mysql.",
                "io.debezium.connector.mariadb.",
            )
        )
    )


def resolve_reference(value: str, where: str, env: Mapping[str, str] | None = None) -> str:
    """A config value with an `${env:X}` / `${file:path:key}` reference resolved locally."""
    match = _REFERENCE.match(value or "")
    if not match:
        return value
    if match["provider"] == "env":
        return SecretRef("env", match["body"], where=where).resolve(env).reveal()
    path, _, key = match["body"].rpartition(":")
    return SecretRef("file", path, key, where=where).resolve(env).reveal()


def _same_server(url: str, host: str, port: int, dbname: str) -> bool:
    from seam.connectors.engine import parse_url

    try:
        parsed = parse_url(url)
    except DatabaseError:
        return False
    default = 5432 if parsed.get_backend_name() == "postgresql" else 3306
    return (
        parsed.host == host
        and (parsed.port or default) == port
        and (parsed.database or "") == dbname
    )


def url_for_connector(
    name: str,
    config: Mapping[str, str],
    settings: Settings,
    *,
    env: Mapping[str, str] | None = None,
    dbname: str | None = None,
) -> str:
    """A database URL to reach the connector's database from here."""
    from urllib.parse import quote

    host = config.get("database.hostname", "")
    port = int(config.get("database.port") or (5432 if is_postgres_config(config) else 3306))
    postgres = is_postgres_config(config)
    db = dbname or (
        config.get("database.dbname", "")
        if postgres
        else config.get("database.include.list", "").split(",")[0]
    )
    for secret in settings.databases.values():
        if _same_server(secret.reveal(), host, port, db):
            return secret.reveal()
    user = config.get("database.user", "")
    password = resolve_reference(
        config.get("database.password", ""), f"connector '{name}', database.password", env
    )
    scheme = "postgresql" if postgres else "mysql"
    return f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{db}"


@dataclass(frozen=True)
class SlotInfo:
    name: str
    plugin: str | None
    database: str | None
    active: bool
    wal_status: str | None
    retained_bytes: int
    confirmed_flush_lsn: str | None
    restart_lsn: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "slot": self.name,
            "plugin": self.plugin,
            "database": self.database,
            "active": self.active,
            "wal_status": self.wal_status,
            "retained_bytes": self.retained_bytes,
            "confirmed_flush_lsn": self.confirmed_flush_lsn,
            "restart_lsn": self.restart_lsn,
        }


# Status and slot reports answer fast: a database that does not answer in this time is reported.
QUICK_CONNECT_S = 3


def list_slots(url: str, *, connect_timeout: int | None = None) -> list[SlotInfo]:
    """Every replication slot on the PostgreSQL server of `url`, with its retained WAL."""
    from sqlalchemy import text

    from seam.connectors.engine import connect

    kwargs: dict[str, Any] = {}
    if connect_timeout:
        kwargs["connect_args"] = {"connect_timeout": connect_timeout}
    with connect(url, **kwargs) as conn:
        rows = conn.execute(
            text(
                "SELECT slot_name, plugin, database, active, wal_status, "
                "COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint, "
                "confirmed_flush_lsn::text, restart_lsn::text "
                "FROM pg_replication_slots ORDER BY slot_name"
            )
        ).all()
    return [
        SlotInfo(
            name=r[0],
            plugin=r[1],
            database=r[2],
            active=bool(r[3]),
            wal_status=r[4],
            retained_bytes=int(r[5] or 0),
            confirmed_flush_lsn=r[6],
            restart_lsn=r[7],
        )
        for r in rows
    ]


@dataclass(frozen=True)
class Activity:
    """What a connector's database user is doing on the server right now."""

    sessions: int  # connections of the user (on the database, for PostgreSQL), ours excluded
    binlog_readers: int  # MySQL/MariaDB binlog dump threads of the user (0 on PostgreSQL)


def user_activity(
    url: str, user: str, *, postgres: bool, dbname: str, connect_timeout: int = QUICK_CONNECT_S
) -> Activity:
    """Sessions of `user` on the server of `url`. A connector that Debezium is restarting
    after a lost connection holds none (it closes them while it waits out its backoff)."""
    from sqlalchemy import text

    from seam.connectors.engine import connect

    with connect(url, connect_args={"connect_timeout": connect_timeout}) as conn:
        if postgres:
            sessions = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = :u AND datname = :d "
                    "AND pid <> pg_backend_pid()"
                ),
                {"u": user, "d": dbname},
            ).scalar()
            return Activity(int(sessions or 0), 0)
        row = conn.execute(
            text(
                "SELECT COUNT(*), COALESCE(SUM(COMMAND LIKE 'Binlog Dump%'), 0) "
                "FROM information_schema.PROCESSLIST WHERE USER = :u AND ID <> CONNECTION_ID()"
            ),
            {"u": user},
        ).one()
    return Activity(int(row[0] or 0), int(row[1] or 0))


def drop_slot(url: str, slot: str, *, wait_s: float = 15.0, appear_s: float = 0.0) -> bool:
    """Drop `slot` once no WAL sender holds it, and keep it dropped: the call returns once
    the slot has been absent for `appear_s` seconds. True if it was dropped (at least once).

    A connector just deleted can have a task still starting or stopping, which creates its
    slot after the DELETE has returned, or again after a drop (seen in CI: the slot of a
    pruned connector left behind). `wait_s` bounds how long a slot may stay in use."""
    import time

    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from seam.connectors.engine import connect

    deadline = time.monotonic() + wait_s
    dropped = False
    absent_since: float | None = None
    with connect(url, isolation_level="AUTOCOMMIT") as conn:
        while True:
            row = conn.execute(
                text("SELECT active, active_pid FROM pg_replication_slots WHERE slot_name = :s"),
                {"s": slot},
            ).first()
            now = time.monotonic()
            if row is None:
                absent_since = absent_since if absent_since is not None else now
                if now - absent_since >= appear_s:
                    return dropped
                time.sleep(0.5)
                continue
            absent_since = None
            if not row[0]:
                # Dropping can race a task that takes the slot between the read and the drop.
                try:
                    conn.execute(text("SELECT pg_drop_replication_slot(:s)"), {"s": slot})
                    dropped = True
                except DBAPIError as exc:  # taken or dropped meanwhile: look again
                    if now > deadline:
                        raise DatabaseError(
                            f"cannot drop replication slot '{slot}': {exc.orig}",
                            hint="stop or delete the connector that reads it, then drop it "
                            f"with SELECT pg_drop_replication_slot('{slot}')",
                        ) from None
                    time.sleep(0.2)
                continue
            if now > deadline:
                raise DatabaseError(
                    f"replication slot '{slot}' is still in use (pid {row[1]})",
                    hint="stop or delete the connector that reads it, then drop it with "
                    f"SELECT pg_drop_replication_slot('{slot}')",
                )
            time.sleep(0.5)


def send_snapshot_signal(
    url: str,
    signal_table: str,
    collections: list[str],
    *,
    postgres: bool,
    filters: Mapping[str, str] | None = None,
) -> str:
    """Ask the connector for an incremental snapshot of `collections`; returns the signal id.
    `filters`: per collection, a SQL condition on its columns that restricts the snapshot to
    the rows it holds (Debezium's `additional-conditions`)."""
    from sqlalchemy import text

    from seam.connectors.engine import connect

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)*", signal_table):
        raise ConfigError(f"signal table name {signal_table!r} is not a plain identifier")
    quote = '"' if postgres else "`"
    table = ".".join(f"{quote}{part}{quote}" for part in signal_table.split("."))
    signal_id = f"seam-{uuid.uuid4()}"
    signal: dict[str, Any] = {"data-collections": collections, "type": "incremental"}
    if filters:
        signal["additional-conditions"] = [
            {"data-collection": collection, "filter": condition}
            for collection, condition in filters.items()
        ]
    data = json.dumps(signal)
    with connect(url, isolation_level="AUTOCOMMIT") as conn:
        conn.execute(
            text(f"INSERT INTO {table} (id, type, data) VALUES (:id, 'execute-snapshot', :data)"),
            {"id": signal_id, "data": data},
        )
    return signal_id

"""SQL text the readiness checks share: quoting, and seam's own helper tables.

The heartbeat table is what the PostgreSQL connector's heartbeat action query upserts
(`seam.connectors.render.heartbeat_query`, the one copy of that statement); the signalling
table is Debezium's documented structure (id, type, data).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from seam.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

# Anything a quoted identifier can hold except the quote characters and control characters.
_IDENTIFIER = re.compile(r"[^\"`'\\\x00-\x1f]{1,64}")


def _parts(name: str) -> list[str]:
    parts = name.split(".")
    if not all(_IDENTIFIER.fullmatch(p) for p in parts):
        raise ConfigError(
            f"{name!r} is not a [schema.]name identifier seam can quote",
            hint="table, role and publication names must not contain quotes or backslashes",
        )
    return parts


def pg_quote(name: str) -> str:
    """`schema.table` as PostgreSQL quoted identifiers."""
    return ".".join(f'"{part}"' for part in _parts(name))


def my_quote(name: str) -> str:
    """`database.table` as MySQL quoted identifiers."""
    return ".".join(f"`{part}`" for part in _parts(name))


def my_account(user: str, host: str) -> str:
    """A MySQL account, `'user'@'host'`."""
    _parts(user)
    if "'" in host or "\\" in host:
        raise ConfigError(f"{host!r} is not a valid MySQL host pattern")
    return f"'{user}'@'{host}'"


def signal_table_ddl(table: str, *, postgres: bool) -> str:
    """Debezium's signalling table: id, type, data."""
    name = pg_quote(table) if postgres else my_quote(table)
    suffix = "" if postgres else " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    return (
        f"CREATE TABLE {name} (id VARCHAR(42) PRIMARY KEY, type VARCHAR(32) NOT NULL, "
        f"data TEXT){suffix}"
    )


def heartbeat_table_ddl(table: str) -> tuple[str, ...]:
    """The PostgreSQL heartbeat table, with the one row the heartbeat action query upserts."""
    name = pg_quote(table)
    return (
        f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, "
        "beat_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now())",
        f"INSERT INTO {name} (id) VALUES (1) ON CONFLICT (id) DO NOTHING",
    )


def scalar(conn: Connection, sql: str, params: Mapping[str, Any] | None = None) -> Any:
    from sqlalchemy import text

    return conn.execute(text(sql), dict(params or {})).scalar()


def rows(conn: Connection, sql: str, params: Mapping[str, Any] | None = None) -> list[Any]:
    from sqlalchemy import text

    return list(conn.execute(text(sql), dict(params or {})).all())

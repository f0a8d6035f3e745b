"""Make a legacy database ready for Debezium, the way a DBA would: idempotently, with least
privilege, and with a report of what was done and what already was.

PostgreSQL
    - a CDC role with LOGIN and REPLICATION (never SUPERUSER), USAGE on the schema, SELECT on
      the captured tables;
    - a publication `seam_catalog` FOR TABLE on exactly the captured tables (filtered, not
      FOR ALL TABLES, which needs superuser), so connectors run with
      `publication.name=seam_catalog` and `publication.autocreate.mode=disabled` (the CDC role
      does not own the publication and must not need to);
    - REPLICA IDENTITY FULL where before-images are needed, see `FULL_IDENTITY`;
    - a heartbeat table (the CDC role may INSERT/UPDATE it: Debezium's
      `heartbeat.action.query` keeps the slot moving on a quiet database) and a Debezium
      signalling table (the CDC role may INSERT: incremental snapshots write their watermarks
      there), both in the publication.

MySQL / MariaDB
    - a CDC user with the global privileges Debezium's binlog reader needs (RELOAD,
      SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT, which MariaDB >= 10.5.2 calls
      BINLOG MONITOR, LOCK TABLES), SELECT on the catalog database only, and the same
      heartbeat and signalling tables and grants as above.

Server-level settings (wal_level; log_bin, binlog_format, binlog_row_image) are checked and
reported, never changed: that needs a restart and is the operator's decision.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from seam.errors import ConfigError, DatabaseError
from seam.legacy_db.engine import Flavour, connect, database_name, flavour_of, parse_url
from seam.legacy_db.models import CATALOG_TABLES
from seam.secrets import Secret, mask_url

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

PUBLICATION: Final = "seam_catalog"
HEARTBEAT_TABLE: Final = "seam_heartbeat"
SIGNAL_TABLE: Final = "debezium_signal"
DEFAULT_CDC_USER: Final = "seam_cdc"
DEFAULT_PASSWORD_ENV: Final = "SEAM_CDC_PASSWORD"
# Only for databases on this machine (the local stack); anything else must set the variable.
LOCAL_CDC_PASSWORD: Final = "seam-cdc-local"

# Tables whose change events must carry the full old row. products: the transform stages
# turn updates into ProductPriceChanged / ProductRenamed / ProductRecategorized and need the
# old value next to the new one, and a delete must say what was deleted (not only the key).
# product_tags: it has no primary key, and PostgreSQL refuses UPDATE and DELETE on a table
# that publishes them without a replica identity; FULL is the only identity it can have.
# The other tables keep DEFAULT (the primary key): after-images are enough for reference
# data, and FULL would double the WAL written for the busy stock_levels table.
FULL_IDENTITY: Final = ("products", "product_tags")

Status = Literal["created", "changed", "already"]


@dataclass(frozen=True)
class Action:
    """One thing prepare-cdc made sure of."""

    what: str
    status: Status
    detail: str = ""


@dataclass(frozen=True)
class Check:
    """A server setting Debezium depends on, as found (reported, never changed)."""

    setting: str
    value: str | None
    expected: str
    ok: bool


@dataclass(frozen=True)
class CdcReport:
    database: str  # masked URL
    flavour: Flavour
    cdc_user: str
    actions: list[Action]
    checks: list[Check]
    connector_hints: dict[str, str] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return any(a.status != "already" for a in self.actions)

    @property
    def server_ready(self) -> bool:
        return all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "changed": self.changed, "server_ready": self.server_ready}


def heartbeat_action_query(flavour: Flavour) -> str:
    """The `heartbeat.action.query` a connector on this flavour should run."""
    if flavour == "postgres":
        return (
            f"INSERT INTO {HEARTBEAT_TABLE} (id, beat_at) VALUES (1, now()) "
            "ON CONFLICT (id) DO UPDATE SET beat_at = EXCLUDED.beat_at"
        )
    return (
        f"INSERT INTO {HEARTBEAT_TABLE} (id, beat_at) VALUES (1, NOW(3)) "
        "ON DUPLICATE KEY UPDATE beat_at = VALUES(beat_at)"
    )


def _is_local(url: str) -> bool:
    host = parse_url(url).host or "localhost"
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cdc_password(
    url: str, env_var: str = DEFAULT_PASSWORD_ENV, env: Mapping[str, str] | None = None
) -> Secret:
    """The CDC user's password from `env_var`; unset, the documented local default, but only
    for a database on this machine."""
    env = os.environ if env is None else env
    value = env.get(env_var)
    if value:
        return Secret(value)
    if _is_local(url):
        return Secret(LOCAL_CDC_PASSWORD)
    raise ConfigError(
        f"${env_var} is not set, and {mask_url(url)} is not a local database",
        hint=f"export {env_var}=<password for the CDC user> (the local default is only used on loopback)",
    )


def _check_identifier(name: str, what: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise ConfigError(
            f"{what} '{name}' is not a plain lower-case identifier",
            hint="use lower-case letters, digits and underscores",
        )
    return name


def _can_login(url: str, user: str, password: Secret) -> bool:
    from sqlalchemy import text
    from sqlalchemy.engine import URL

    p = parse_url(url)
    as_cdc = URL.create(
        p.drivername, user, password.reveal(), p.host, p.port, p.database, p.query
    ).render_as_string(hide_password=False)
    try:
        with connect(as_cdc) as conn:
            conn.execute(text("SELECT 1"))
        return True
    except DatabaseError:
        return False


def _require_catalog(conn: Connection, url: str) -> None:
    from sqlalchemy import inspect

    present = set(inspect(conn).get_table_names())
    missing = [t for t in CATALOG_TABLES if t not in present]
    if missing:
        raise DatabaseError(
            f"{mask_url(url)} has no catalog tables {', '.join(missing)}",
            hint="create them first: seam legacy seed",
        )


def prepare_cdc(
    url: str, *, cdc_user: str = DEFAULT_CDC_USER, password: Secret | None = None
) -> CdcReport:
    """Make the database at `url` ready for CDC (idempotent). `url` must carry an
    administrative user (one that may create roles and grant)."""
    _check_identifier(cdc_user, "CDC user name")
    if password is None:
        password = cdc_password(url)
    flavour = flavour_of(url)
    password_ok = _can_login(url, cdc_user, password)
    if flavour == "postgres":
        return _prepare_postgres(url, cdc_user, password, password_ok)
    return _prepare_mysql(url, cdc_user, password, password_ok)


# --- PostgreSQL -------------------------------------------------------------------------


def _prepare_postgres(url: str, user: str, password: Secret, password_ok: bool) -> CdcReport:
    from psycopg import sql
    from sqlalchemy import text

    actions: list[Action] = []
    db = database_name(url)
    with connect(url) as conn:
        _require_catalog(conn, url)
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        raw: Any = conn.connection.driver_connection

        def literal(value: str) -> str:
            return sql.Literal(value).as_string(raw)

        def ident(value: str) -> str:
            return sql.Identifier(value).as_string(raw)

        # The role: LOGIN REPLICATION, never SUPERUSER.
        role = conn.execute(
            text("SELECT rolsuper, rolreplication, rolcanlogin FROM pg_roles WHERE rolname = :u"),
            {"u": user},
        ).first()
        if role is None:
            conn.execute(
                text(
                    f"CREATE ROLE {ident(user)} WITH LOGIN REPLICATION NOSUPERUSER NOCREATEDB "
                    f"NOCREATEROLE PASSWORD {literal(password.reveal())}"
                )
            )
            actions.append(Action(f"role {user}", "created", "LOGIN REPLICATION, not superuser"))
        else:
            wrong = [
                w
                for w, bad in (
                    ("was SUPERUSER", role.rolsuper),
                    ("lacked REPLICATION", not role.rolreplication),
                    ("lacked LOGIN", not role.rolcanlogin),
                )
                if bad
            ]
            if wrong:
                conn.execute(text(f"ALTER ROLE {ident(user)} WITH LOGIN REPLICATION NOSUPERUSER"))
            actions.append(
                Action(
                    f"role {user}",
                    "changed" if wrong else "already",
                    "; ".join(wrong) or "LOGIN REPLICATION, not superuser",
                )
            )
            if password_ok:
                actions.append(Action(f"password of {user}", "already", "logs in"))
            else:
                conn.execute(
                    text(f"ALTER ROLE {ident(user)} PASSWORD {literal(password.reveal())}")
                )
                actions.append(Action(f"password of {user}", "changed", "set from the secret"))

        # Heartbeat and signalling tables.
        for table, ddl in (
            (
                HEARTBEAT_TABLE,
                f"CREATE TABLE {HEARTBEAT_TABLE} (id INTEGER PRIMARY KEY, "
                "beat_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now())",
            ),
            (
                SIGNAL_TABLE,
                f"CREATE TABLE {SIGNAL_TABLE} (id VARCHAR(42) PRIMARY KEY, "
                "type VARCHAR(32) NOT NULL, data TEXT)",
            ),
        ):
            exists = conn.execute(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": table})
            if exists.scalar_one():
                actions.append(Action(f"table {table}", "already"))
            else:
                conn.execute(text(ddl))
                actions.append(Action(f"table {table}", "created"))
        conn.execute(
            text(f"INSERT INTO {HEARTBEAT_TABLE} (id) VALUES (1) ON CONFLICT (id) DO NOTHING")
        )

        # Privileges: exactly what capture needs.
        wanted: list[tuple[str, str, str]] = [  # (privilege, object kind, object)
            ("CONNECT", "DATABASE", db),
            ("USAGE", "SCHEMA", schema),
            *(("SELECT", "TABLE", t) for t in (*CATALOG_TABLES, HEARTBEAT_TABLE, SIGNAL_TABLE)),
            ("INSERT", "TABLE", HEARTBEAT_TABLE),
            ("UPDATE", "TABLE", HEARTBEAT_TABLE),
            ("INSERT", "TABLE", SIGNAL_TABLE),
        ]
        checker = {
            "DATABASE": "has_database_privilege",
            "SCHEMA": "has_schema_privilege",
            "TABLE": "has_table_privilege",
        }
        for priv, kind, obj in wanted:
            target = obj if kind != "TABLE" else f"{schema}.{obj}"
            has = conn.execute(
                text(f"SELECT {checker[kind]}(:u, :o, :p)"), {"u": user, "o": target, "p": priv}
            ).scalar_one()
            # A fresh role may inherit CONNECT/USAGE from PUBLIC: grant anyway, explicitly,
            # so revoking PUBLIC's defaults later does not cut CDC off.
            conn.execute(
                text(
                    f"GRANT {priv} ON {kind} "
                    f"{ident(obj) if kind != 'TABLE' else f'{ident(schema)}.{ident(obj)}'} "
                    f"TO {ident(user)}"
                )
            )
            actions.append(
                Action(f"grant {priv} on {kind.lower()} {obj}", "already" if has else "created")
            )

        # Replica identity.
        for table in FULL_IDENTITY:
            ident_now = conn.execute(
                text("SELECT relreplident FROM pg_class WHERE oid = to_regclass(:t)"),
                {"t": table},
            ).scalar_one()
            if ident_now == "f":
                actions.append(Action(f"replica identity of {table}", "already", "FULL"))
            else:
                conn.execute(text(f"ALTER TABLE {table} REPLICA IDENTITY FULL"))
                actions.append(Action(f"replica identity of {table}", "changed", "FULL"))

        # The publication: filtered to the captured tables.
        captured = (*CATALOG_TABLES, HEARTBEAT_TABLE, SIGNAL_TABLE)
        pub = conn.execute(
            text("SELECT puballtables FROM pg_publication WHERE pubname = :p"), {"p": PUBLICATION}
        ).first()
        if pub is None:
            conn.execute(text(f"CREATE PUBLICATION {PUBLICATION} FOR TABLE {', '.join(captured)}"))
            actions.append(
                Action(f"publication {PUBLICATION}", "created", f"{len(captured)} tables")
            )
        elif pub.puballtables:
            raise DatabaseError(
                f"publication {PUBLICATION} on {mask_url(url)} is FOR ALL TABLES",
                hint=f"DROP PUBLICATION {PUBLICATION}; then run prepare-cdc again to create a filtered one",
            )
        else:
            present = {
                r.tablename
                for r in conn.execute(
                    text(
                        "SELECT tablename FROM pg_publication_tables "
                        "WHERE pubname = :p AND schemaname = :s"
                    ),
                    {"p": PUBLICATION, "s": schema},
                )
            }
            missing = [t for t in captured if t not in present]
            if missing:
                conn.execute(
                    text(f"ALTER PUBLICATION {PUBLICATION} ADD TABLE {', '.join(missing)}")
                )
            actions.append(
                Action(
                    f"publication {PUBLICATION}",
                    "changed" if missing else "already",
                    f"added {', '.join(missing)}" if missing else f"{len(captured)} tables",
                )
            )

        checks = _postgres_checks(conn)
        conn.commit()
    return CdcReport(
        database=mask_url(url),
        flavour="postgres",
        cdc_user=user,
        actions=actions,
        checks=checks,
        connector_hints={
            "publication.name": PUBLICATION,
            "publication.autocreate.mode": "disabled",
            # The signalling table must be captured too, or the connector never sees signals.
            "table.include.list": ",".join(
                f"{schema}.{t}" for t in (*CATALOG_TABLES, SIGNAL_TABLE)
            ),
            "signal.data.collection": f"{schema}.{SIGNAL_TABLE}",
            "heartbeat.action.query": heartbeat_action_query("postgres"),
        },
    )


def _postgres_checks(conn: Connection) -> list[Check]:
    from sqlalchemy import text

    def setting(name: str) -> str | None:
        value = conn.execute(
            text("SELECT setting FROM pg_settings WHERE name = :n"), {"n": name}
        ).scalar()
        return None if value is None else str(value)

    wal_level = setting("wal_level")
    slots = setting("max_replication_slots")
    senders = setting("max_wal_senders")
    return [
        Check("wal_level", wal_level, "logical", wal_level == "logical"),
        Check("max_replication_slots", slots, ">= 1", slots is not None and int(slots) >= 1),
        Check("max_wal_senders", senders, ">= 1", senders is not None and int(senders) >= 1),
    ]


# --- MySQL / MariaDB --------------------------------------------------------------------

_GRANT_LINE: Final = re.compile(r"^GRANT (?P<privs>.+?) ON (?P<obj>\S+) TO ", re.IGNORECASE)


def _grants_of(conn: Connection, user: str, host: str) -> dict[str, set[str]]:
    """The user's privileges per object (`*.*`, `db.*`, `db.table`, unquoted)."""
    from sqlalchemy import text

    out: dict[str, set[str]] = {}
    for (line,) in conn.execute(text("SHOW GRANTS FOR :u@:h"), {"u": user, "h": host}):
        match = _GRANT_LINE.match(line)
        if not match:
            continue
        # Database-level grants escape the LIKE wildcards in the name: `seam\_test`.*
        obj = match["obj"].replace("`", "").replace("\\_", "_").replace("\\%", "%")
        privs = {p.strip().upper() for p in match["privs"].split(",")}
        out.setdefault(obj, set()).update(privs)
    return out


def _prepare_mysql(url: str, user: str, password: Secret, password_ok: bool) -> CdcReport:
    from sqlalchemy import text

    actions: list[Action] = []
    db = database_name(url)
    host = "%"
    with connect(url) as conn:
        _require_catalog(conn, url)
        version = str(conn.execute(text("SELECT VERSION()")).scalar_one())
        mariadb = "mariadb" in version.lower()

        exists = conn.execute(
            text("SELECT 1 FROM mysql.user WHERE User = :u AND Host = :h"), {"u": user, "h": host}
        ).first()
        if exists is None:
            conn.execute(
                text("CREATE USER :u@:h IDENTIFIED BY :p"),
                {"u": user, "h": host, "p": password.reveal()},
            )
            actions.append(Action(f"user {user}@{host}", "created"))
        else:
            actions.append(Action(f"user {user}@{host}", "already"))
            if password_ok:
                actions.append(Action(f"password of {user}", "already", "logs in"))
            else:
                conn.execute(
                    text("ALTER USER :u@:h IDENTIFIED BY :p"),
                    {"u": user, "h": host, "p": password.reveal()},
                )
                actions.append(Action(f"password of {user}", "changed", "set from the secret"))

        for table, ddl in (
            (
                HEARTBEAT_TABLE,
                f"CREATE TABLE {HEARTBEAT_TABLE} (id INT PRIMARY KEY, "
                "beat_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) "
                "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            ),
            (
                SIGNAL_TABLE,
                f"CREATE TABLE {SIGNAL_TABLE} (id VARCHAR(42) PRIMARY KEY, "
                "type VARCHAR(32) NOT NULL, data TEXT) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            ),
        ):
            found = conn.execute(
                text(
                    "SELECT 1 FROM information_schema.tables "
                    "WHERE table_schema = DATABASE() AND table_name = :t"
                ),
                {"t": table},
            ).first()
            if found:
                actions.append(Action(f"table {table}", "already"))
            else:
                conn.execute(text(ddl))
                actions.append(Action(f"table {table}", "created"))
        conn.execute(text(f"INSERT IGNORE INTO {HEARTBEAT_TABLE} (id) VALUES (1)"))
        conn.commit()

        # REPLICATION CLIENT is called BINLOG MONITOR from MariaDB 10.5.2 on (the old name is
        # an alias there, and SHOW GRANTS prints the new one).
        client = "BINLOG MONITOR" if mariadb else "REPLICATION CLIENT"
        wanted: dict[str, tuple[str, ...]] = {
            "*.*": ("RELOAD", "SHOW DATABASES", "REPLICATION SLAVE", client, "LOCK TABLES"),
            f"{db}.*": ("SELECT",),
            f"{db}.{HEARTBEAT_TABLE}": ("INSERT", "UPDATE"),
            f"{db}.{SIGNAL_TABLE}": ("INSERT",),
        }
        have = _grants_of(conn, user, host)
        for obj, privs in wanted.items():
            held = have.get(obj, set())
            for priv in privs:
                status: Status = (
                    "already" if priv in held or "ALL PRIVILEGES" in held else "created"
                )
                if status == "created":
                    schema_part, table_part = obj.split(".")
                    if obj == "*.*":
                        target = "*.*"
                    elif table_part == "*":
                        # In a database-level grant '_' and '%' are wildcards: escape them so
                        # the grant covers this database only.
                        escaped = schema_part.replace("_", "\\_").replace("%", "\\%")
                        target = f"`{escaped}`.*"
                    else:
                        target = f"`{schema_part}`.`{table_part}`"
                    conn.execute(text(f"GRANT {priv} ON {target} TO :u@:h"), {"u": user, "h": host})
                actions.append(Action(f"grant {priv} on {obj}", status))
        extra = sorted(p for p in have.get("*.*", set()) if p not in wanted["*.*"] and p != "USAGE")
        if extra:
            actions.append(
                Action(
                    "global privileges beyond what CDC needs",
                    "already",
                    f"left in place: {', '.join(extra)}",
                )
            )
        checks = _mysql_checks(conn)
        conn.commit()
    return CdcReport(
        database=mask_url(url),
        flavour="mysql",
        cdc_user=user,
        actions=actions,
        checks=checks,
        connector_hints={
            "database.include.list": db,
            "table.include.list": ",".join(f"{db}.{t}" for t in (*CATALOG_TABLES, SIGNAL_TABLE)),
            "signal.data.collection": f"{db}.{SIGNAL_TABLE}",
            "heartbeat.action.query": heartbeat_action_query("mysql"),
            "connector": "MariaDbConnector" if mariadb else "MySqlConnector",
        },
    )


def _mysql_checks(conn: Connection) -> list[Check]:
    from sqlalchemy import text

    rows: dict[str, str] = {
        str(name): str(v)
        for name, v in conn.execute(
            text(
                "SHOW GLOBAL VARIABLES WHERE Variable_name IN "
                "('log_bin', 'binlog_format', 'binlog_row_image', 'server_id')"
            )
        )
    }

    def value(name: str) -> str | None:
        v = rows.get(name)
        return None if v is None else str(v)

    server_id = value("server_id")
    return [
        Check("log_bin", value("log_bin"), "ON", (value("log_bin") or "").upper() == "ON"),
        Check(
            "binlog_format",
            value("binlog_format"),
            "ROW",
            (value("binlog_format") or "").upper() == "ROW",
        ),
        Check(
            "binlog_row_image",
            value("binlog_row_image"),
            "FULL",
            (value("binlog_row_image") or "").upper() == "FULL",
        ),
        Check("server_id", server_id, "not 0", server_id not in (None, "0")),
    ]

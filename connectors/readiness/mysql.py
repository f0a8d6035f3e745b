"""MySQL and MariaDB: what a Debezium binlog connector needs of its database, and the fixes.

The checks run as the CDC user (preflight: its own grants) or as an administrator (prepare:
the CDC account's grants, read from the server). seam creates the CDC account, grants what
Debezium's binlog reader needs and creates the signalling table; the binlog settings need the
server's config file (and log_bin a restart), so they stay the operator's.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from seam.connectors.readiness.model import (
    OPERATOR,
    PASSWORD,
    RESTART,
    SPEC_CHANGE,
    Check,
    Statement,
    Target,
    login_check,
    manual_check,
    sql_check,
)
from seam.connectors.readiness.sql import my_account, my_quote, rows, scalar, signal_table_ddl

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

ONE_DAY_S: Final = 86_400
# Privilege names as SHOW GRANTS prints them, with the aliases MariaDB 10.5+ uses.
_REQUIRED_GRANTS: Final[dict[str, tuple[str, ...]]] = {
    "REPLICATION SLAVE": ("REPLICATION SLAVE", "REPLICATION REPLICA"),
    "REPLICATION CLIENT": ("REPLICATION CLIENT", "BINLOG MONITOR"),
}
_SNAPSHOT_GRANTS: Final[dict[str, tuple[str, ...]]] = {
    "RELOAD": ("RELOAD",),
    "SHOW DATABASES": ("SHOW DATABASES",),
    "LOCK TABLES": ("LOCK TABLES",),
}
_GRANT_LINE: Final = re.compile(r"^GRANT (?P<privs>.+?) ON (?P<obj>\S+) TO ", re.IGNORECASE)
# The host of the CDC account seam creates: the Connect worker connects from anywhere.
CDC_HOST: Final = "%"


def _variables(conn: Connection) -> dict[str, str]:
    names = (
        "log_bin",
        "binlog_format",
        "binlog_row_image",
        "server_id",
        "binlog_expire_logs_seconds",
        "expire_logs_days",
        "gtid_mode",
        "gtid_strict_mode",
        "version",
    )
    placeholders = ", ".join(f":n{i}" for i in range(len(names)))
    found = rows(
        conn,
        f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({placeholders})",
        {f"n{i}": n for i, n in enumerate(names)},
    )
    return {str(r[0]).lower(): str(r[1]) for r in found}


def _account(conn: Connection, user: str) -> str | None:
    """The host part of the CDC account: the connection's own when it is the CDC user,
    else looked up (as an administrator). None: there is no such account."""
    current = str(scalar(conn, "SELECT CURRENT_USER()") or "")
    name, _, host = current.rpartition("@")
    if name == user:
        return host
    hosts = [
        str(r[0]) for r in rows(conn, "SELECT Host FROM mysql.user WHERE User = :u", {"u": user})
    ]
    if not hosts:
        return None
    return CDC_HOST if CDC_HOST in hosts else hosts[0]


def _grants(conn: Connection, user: str, host: str) -> dict[str, set[str]]:
    """The account's privileges by object (`*.*`, `db.*`, `db.table`, unquoted, unescaped)."""
    found: dict[str, set[str]] = {}
    for (line,) in rows(conn, "SHOW GRANTS FOR :u@:h", {"u": user, "h": host}):
        match = _GRANT_LINE.match(str(line))
        if not match:
            continue
        # Database-level grants escape the LIKE wildcards in the name: `seam\_test`.*
        obj = match["obj"].replace("`", "").replace("\\_", "_").replace("\\%", "%")
        found.setdefault(obj, set()).update(p.strip().upper() for p in match["privs"].split(","))
    return found


def probe(conn: Connection, target: Target, login_error: str | None) -> list[Check]:
    """Every requirement of `target` on the server of `conn`. `login_error` is why the CDC
    user could not log in (None: it could)."""
    v = _variables(conn)
    mariadb = "mariadb" in v.get("version", "").lower()
    checks = _server(target, v, mariadb)
    host = _account(conn, target.user)
    checks.append(_login(target, host, login_error))
    grants = _grants(conn, target.user, host) if host is not None else {}
    account = my_account(target.user, host or CDC_HOST)
    missing = [
        t
        for t in target.tables
        if not scalar(
            conn,
            "SELECT 1 FROM information_schema.tables WHERE table_schema = :s AND table_name = :t",
            dict(zip(("s", "t"), t.split(".", 1), strict=True)),
        )
    ]
    checks += [_missing_table(target, t) for t in missing]
    checks += _privileges(target, grants, account, mariadb, host is not None)
    return checks


def _server(target: Target, v: dict[str, str], mariadb: bool) -> list[Check]:
    config_file = "and the same in the server's config file"
    # One URL scheme serves both servers: only the server can tell MySQL from MariaDB, and
    # Debezium's MySqlConnector fails on MariaDB (and the MariaDbConnector on MySQL) at start.
    kind = "mariadb" if mariadb else "mysql"
    fmt = v.get("binlog_format", "").upper()
    image = v.get("binlog_row_image", "").upper()
    server_id = target.config.get("database.server.id")
    seconds = int(v.get("binlog_expire_logs_seconds", "0") or 0)
    retention = seconds or int(float(v.get("expire_logs_days", "0") or 0) * ONE_DAY_S)
    checks = [
        manual_check(
            "flavour",
            target.flavour == kind,
            f"the spec's flavour is '{target.flavour}' but the server is "
            f"{'MariaDB' if mariadb else 'MySQL'} {v.get('version', '')}".rstrip(),
            f"set 'flavour: {kind}' in the spec",
            manual=SPEC_CHANGE,
            why=f"the {target.flavour} connector's task fails at start against this server "
            "(for MySQL on MariaDB: 'should support SHOW BINARY LOG STATUS')",
        ),
        manual_check(
            "log_bin",
            v.get("log_bin", "").upper() in ("ON", "1"),
            f"log_bin is {v.get('log_bin', 'unknown')}, expected ON",
            "set log_bin=mysql-bin in the server's config file, then restart the server",
            manual=RESTART,
            why="Debezium reads the binary log; without it there is nothing to stream",
        ),
        manual_check(
            "binlog_format",
            fmt == "ROW",
            f"binlog_format is {fmt or 'unknown'}, expected ROW",
            f"SET GLOBAL binlog_format = 'ROW'; {config_file}",
            manual=OPERATOR,
            why="only row-based events carry the changed rows; the task fails at start otherwise",
        ),
        manual_check(
            "binlog_row_image",
            image == "FULL",
            f"binlog_row_image is {image or 'unknown'}, expected FULL",
            f"SET GLOBAL binlog_row_image = 'FULL'; {config_file}",
            manual=OPERATOR,
            why="with MINIMAL/NOBLOB the events lack unchanged columns",
        ),
        manual_check(
            "server id",
            server_id != v.get("server_id"),
            f"database.server.id {server_id} equals the server's own server_id",
            "set 'server_id:' in the spec to another number",
            manual=SPEC_CHANGE,
            why="a replication client with the server's id is disconnected",
        ),
        manual_check(
            "binlog retention",
            retention == 0 or retention >= 3 * ONE_DAY_S,
            f"binary logs are purged after {retention / 3600:.0f} h",
            f"SET GLOBAL binlog_expire_logs_seconds = 604800; (7 days) {config_file}",
            manual=OPERATOR,
            severity="warning",
            why="if the connector is down longer than that, its position is purged and it "
            "needs a new snapshot",
        ),
    ]
    if mariadb:
        checks.append(
            Check(
                "gtid",
                True,
                f"MariaDB GTIDs are always on (gtid_strict_mode={v.get('gtid_strict_mode', '?')})",
                severity="info",
            )
        )
    else:
        mode = v.get("gtid_mode", "OFF").upper()
        checks.append(
            manual_check(
                "gtid_mode",
                mode == "ON",
                f"gtid_mode is {mode}",
                "SET GLOBAL enforce_gtid_consistency = ON; SET GLOBAL gtid_mode = ON "
                f"(stepwise); {config_file}",
                manual=OPERATOR,
                severity="warning",
                why="with GTIDs the connector can follow a failover to a replica",
            )
        )
    return checks


def _login(target: Target, host: str | None, error: str | None) -> Check:
    if host is None:
        account = my_account(target.user, CDC_HOST)
        statement = f"CREATE USER {account} IDENTIFIED BY {PASSWORD}"
        detail = f"user '{target.user}' does not exist"
    else:
        statement = f"ALTER USER {my_account(target.user, host)} IDENTIFIED BY {PASSWORD}"
        detail = f"cannot log in as '{target.user}' with the password from {target.password_source}"
    return login_check(target, statement, detail, error)


def _missing_table(target: Target, table: str) -> Check:
    detail = f"table {table} does not exist (or '{target.user}' cannot see it)"
    if table == target.signal_table:
        return sql_check(
            f"table {table}",
            False,
            detail,
            (Statement(signal_table_ddl(table, postgres=False)),),
            why="the connector captures it (its own signalling table, for ad-hoc snapshots)",
        )
    return manual_check(
        f"table {table}",
        False,
        detail,
        f"create {table} or remove it from 'tables'",
        manual=SPEC_CHANGE,
        why="the connector captures it",
    )


def _holds(grants: dict[str, set[str]], obj: str, aliases: tuple[str, ...]) -> bool:
    held = grants.get(obj, set())
    return "ALL PRIVILEGES" in held or bool(held.intersection(aliases))


def _privileges(
    target: Target, grants: dict[str, set[str]], account: str, mariadb: bool, exists: bool
) -> list[Check]:
    requires = None if exists else "login"  # grants to an account that prepare creates

    def lacking(names: dict[str, tuple[str, ...]]) -> list[str]:
        return [n for n, aliases in names.items() if not _holds(grants, "*.*", aliases)]

    # REPLICATION CLIENT is called BINLOG MONITOR from MariaDB 10.5.2 on (SHOW GRANTS prints
    # the new name).
    def named(privilege: str) -> str:
        return "BINLOG MONITOR" if mariadb and privilege == "REPLICATION CLIENT" else privilege

    required = [named(p) for p in lacking(_REQUIRED_GRANTS)]
    # SELECT: on the whole server or on the captured database alone (seam grants the latter).
    # In a database-level grant '_' and '%' are wildcards: escaped, it covers this one only.
    select = _holds(grants, "*.*", ("SELECT",)) or _holds(grants, f"{target.dbname}.*", ("SELECT",))
    escaped = target.dbname.replace("_", "\\_").replace("%", "\\%")
    statements = []
    if required:
        statements.append(Statement(f"GRANT {', '.join(required)} ON *.* TO {account}"))
    if not select:
        statements.append(Statement(f"GRANT SELECT ON `{escaped}`.* TO {account}"))
        required.append(f"SELECT on {target.dbname}")
    snapshot = lacking(_SNAPSHOT_GRANTS)
    signal = target.signal_table
    writes = signal is not None and not any(
        _holds(grants, obj, ("INSERT",)) for obj in ("*.*", f"{target.dbname}.*", signal)
    )
    return [
        sql_check(
            "grants",
            not required,
            f"'{target.user}' lacks {', '.join(required)}",
            tuple(statements),
            why="the connector reads tables for the snapshot and the binlog as a replica",
            requires=requires,
        ),
        sql_check(
            "snapshot grants",
            not snapshot,
            f"'{target.user}' lacks {', '.join(snapshot)}",
            (Statement(f"GRANT {', '.join(snapshot)} ON *.* TO {account}"),) if snapshot else (),
            severity="warning",
            why="without RELOAD / LOCK TABLES the snapshot cannot take a consistent lock",
            requires=requires,
        ),
        sql_check(
            "signal writes",
            not writes,
            f"'{target.user}' cannot INSERT into {signal}",
            (Statement(f"GRANT INSERT ON {my_quote(signal)} TO {account}"),) if signal else (),
            why="incremental snapshots write their watermarks to the signal table",
            requires=requires,
        ),
    ]

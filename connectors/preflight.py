"""Is the legacy database ready for the connector? Check before creating it.

Debezium checks `wal_level`, `binlog_format` and friends only when its task starts, so a bad
database shows up as a FAILED task minutes after `apply`. The preflight connects with the
spec's own CDC credentials (resolved here from the same env var / file the Connect worker
uses) and runs the checks Debezium would, plus the ones it never makes (replica identity,
retained WAL, binlog retention). Each failed check says what is wrong, why it matters, and
the exact SQL or setting that fixes it. `fix=True` applies the safe fixes (publication
membership, replica identity) through the settings' database URL (an owner or admin), or
the CDC user when that is all there is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final, Literal

from seam.connectors.health import human_bytes
from seam.connectors.render import (
    RenderedConnector,
    captured_tables,
    database_address,
    heartbeat_table,
    publication_name,
    signal_table,
    slot_name,
)
from seam.errors import DatabaseError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from seam.settings import Settings

Severity = Literal["error", "warning", "info"]

# A slot retaining more WAL than this gets a warning: the disk fills while the connector is down.
RETAINED_WAL_WARN_BYTES: Final = 1 << 30
ONE_DAY_S: Final = 86_400
MAX_FIX_ROUNDS: Final = 3


@dataclass(frozen=True)
class Check:
    """One preflight finding. `fix_sql` holds the statements `--fix` may run (safe ones only)."""

    name: str
    ok: bool
    detail: str
    severity: Severity = "error"
    why: str | None = None
    fix: str | None = None
    fix_sql: tuple[str, ...] = ()
    fixed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "ok": self.ok,
            "severity": self.severity,
            "detail": self.detail,
            "why": self.why,
            "fix": self.fix,
            "fixed": self.fixed,
        }


@dataclass
class PreflightReport:
    connector: str
    flavour: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> list[Check]:
        return [c for c in self.checks if not c.ok and c.severity == "error"]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if not c.ok and c.severity == "warning"]

    def summary(self) -> str:
        """One paragraph naming every failed error check and its fix."""
        parts = [
            f"{c.name}: {c.detail}" + (f" (fix: {c.fix})" if c.fix else "") for c in self.errors
        ]
        return f"connector '{self.connector}' failed preflight: " + "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "connector": self.connector,
            "flavour": self.flavour,
            "ok": self.ok,
            "checks": [c.as_dict() for c in self.checks],
        }


class PreflightError(DatabaseError):
    """One or more specs failed their preflight; nothing was changed."""

    def __init__(self, reports: list[PreflightReport]) -> None:
        failed = [r for r in reports if not r.ok]
        super().__init__(
            " | ".join(r.summary() for r in failed),
            hint="fix the database (or run `seam connectors preflight --fix SPEC`) and apply again",
        )
        self.reports = reports


def _missing_table(
    table: str, user: str, helper: str | None, create: tuple[str, ...] = ()
) -> Check:
    """A table the connector captures that is not there (or `user` cannot see it); `helper`
    names the role of a table seam's connectors need, `create` the statements making it."""
    return Check(
        f"table {table}",
        False,
        f"table {table} does not exist (or '{user}' cannot see it)",
        why="the connector captures it" + (f" ({helper})" if helper else ""),
        fix=f"{'; '.join(create)}; (or `seam connectors preflight --fix`)"
        if create
        else f"create {table} or remove it from 'tables'",
        fix_sql=create,
    )


def signal_table_ddl(table: str, *, postgres: bool) -> str:
    """Debezium's signalling table: id, type, data (its documented structure)."""
    name = _pg_quote(table) if postgres else _my_quote(table)
    suffix = "" if postgres else " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    return (
        f"CREATE TABLE {name} (id VARCHAR(42) PRIMARY KEY, type VARCHAR(32) NOT NULL, "
        f"data TEXT){suffix}"
    )


def heartbeat_table_ddl(table: str) -> tuple[str, ...]:
    """The heartbeat table the PostgreSQL heartbeat action query upserts, with its row."""
    name = _pg_quote(table)
    return (
        f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, "
        "beat_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now())",
        f"INSERT INTO {name} (id) VALUES (1) ON CONFLICT (id) DO NOTHING",
    )


def _my_quote(table: str) -> str:
    return ".".join(f"`{part}`" for part in table.split("."))


def cdc_url(
    rendered: RenderedConnector, settings: Settings, env: Mapping[str, str] | None = None
) -> str:
    """The settings' database URL with the spec's CDC user and its (resolved) password."""
    from seam.legacy_db.engine import parse_url

    spec = rendered.spec
    base = parse_url(settings.database_url(spec.database))
    password = spec.password.resolve(env).reveal()
    return base.set(username=spec.user, password=password).render_as_string(hide_password=False)


def run_preflight(
    rendered: RenderedConnector,
    settings: Settings,
    *,
    fix: bool = False,
    env: Mapping[str, str] | None = None,
) -> PreflightReport:
    """Check the spec's database as its CDC user; with `fix`, apply the safe fixes first."""
    from seam.legacy_db.engine import connect

    spec = rendered.spec
    report = PreflightReport(connector=spec.name, flavour=spec.flavour)
    url = cdc_url(rendered, settings, env)
    try:
        with connect(url, isolation_level="AUTOCOMMIT") as conn:
            if spec.is_postgres:
                report.checks.extend(_postgres_checks(conn, rendered, settings))
            else:
                report.checks.extend(_mysql_checks(conn, rendered, settings))
    except DatabaseError as exc:
        report.checks.append(
            Check(
                "login",
                False,
                f"cannot connect as '{spec.user}': {exc.message}",
                why="the connector logs in with exactly these credentials",
                fix=f"create the CDC user (seam legacy prepare-cdc) or fix the password reference "
                f"({spec.password.describe()}), and check the host and port of '{spec.database}'",
            )
        )
        return report
    # A fix can make the next one possible (a created signal table still needs its grants and
    # its place in the publication): check again after fixing, a few rounds at most.
    for _round in range(MAX_FIX_ROUNDS):
        if not fix or not any(c.fix_sql and not c.ok for c in report.checks):
            break
        fixed = _apply_fixes(report, rendered, settings, url)
        if not any(c.fixed for c in fixed.checks):
            return fixed
        again = run_preflight(rendered, settings, env=env)
        fixed_now = {c.name: c for c in fixed.checks if c.fixed}
        fixed_now.update({c.name: c for c in report.checks if c.fixed})
        names = {c.name for c in again.checks}
        # A check that passes now shows how it was fixed; one that still fails stays failed.
        checks = [fixed_now[c.name] if c.ok and c.name in fixed_now else c for c in again.checks]
        checks += [c for name, c in fixed_now.items() if name not in names]
        report = PreflightReport(again.connector, again.flavour, checks)
    return report


def _apply_fixes(
    report: PreflightReport, rendered: RenderedConnector, settings: Settings, cdc: str
) -> PreflightReport:
    """Run each failed check's safe fix SQL, as the admin URL, falling back to the CDC user."""
    from sqlalchemy import text

    from seam.legacy_db.engine import connect

    admin = settings.database_url(rendered.spec.database)
    checks: list[Check] = []
    for check in report.checks:
        if check.ok or not check.fix_sql:
            checks.append(check)
            continue
        error: str | None = None
        for url in (admin, cdc):
            try:
                with connect(url, isolation_level="AUTOCOMMIT") as conn:
                    for statement in check.fix_sql:
                        conn.execute(text(statement))
                error = None
                break
            except DatabaseError as exc:
                error = exc.message
        if error is None:
            checks.append(
                replace(check, ok=True, fixed=True, detail=f"fixed: {'; '.join(check.fix_sql)}")
            )
        else:
            checks.append(replace(check, detail=f"{check.detail} (--fix failed: {error})"))
    return PreflightReport(report.connector, report.flavour, checks)


# -- PostgreSQL -----------------------------------------------------------------------------


def _scalar(conn: Connection, sql: str, params: Mapping[str, Any] | None = None) -> Any:
    from sqlalchemy import text

    return conn.execute(text(sql), dict(params or {})).scalar()


def _rows(conn: Connection, sql: str, params: Mapping[str, Any] | None = None) -> list[Any]:
    from sqlalchemy import text

    return list(conn.execute(text(sql), dict(params or {})).all())


def _pg_quote(table: str) -> str:
    return ".".join(f'"{part}"' for part in table.split("."))


def _postgres_checks(
    conn: Connection, rendered: RenderedConnector, settings: Settings
) -> list[Check]:
    spec = rendered.spec
    address = database_address(spec, settings)
    tables = captured_tables(spec, address.dbname)
    slot = slot_name(spec)
    publication = publication_name(spec)
    checks: list[Check] = []

    wal_level = _scalar(conn, "SHOW wal_level")
    checks.append(
        Check(
            "wal_level",
            wal_level == "logical",
            f"wal_level is '{wal_level}', expected 'logical'",
            why="logical decoding (pgoutput) needs wal_level=logical; the task fails at start otherwise",
            fix="ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL",
        )
    )

    role = _rows(conn, "SELECT rolreplication, rolsuper FROM pg_roles WHERE rolname = current_user")
    can_replicate = bool(role and (role[0][0] or role[0][1]))
    checks.append(
        Check(
            "replication privilege",
            can_replicate,
            f"role '{spec.user}' has no REPLICATION attribute",
            why="only a role with REPLICATION may open a replication connection and create the slot",
            fix=f'ALTER ROLE "{spec.user}" WITH REPLICATION;',
        )
    )

    existing_slot = _rows(
        conn,
        "SELECT plugin, active, wal_status, "
        "pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint AS retained, database "
        "FROM pg_replication_slots WHERE slot_name = :s",
        {"s": slot},
    )
    max_slots = int(_scalar(conn, "SHOW max_replication_slots"))
    used_slots = int(_scalar(conn, "SELECT count(*) FROM pg_replication_slots"))
    free = max_slots - used_slots
    checks.append(
        Check(
            "replication slots",
            bool(existing_slot) or free > 0,
            f"all {max_slots} replication slots are in use",
            why=f"the connector needs its own slot '{slot}'",
            fix="drop unused slots (SELECT pg_drop_replication_slot(name)) or "
            "ALTER SYSTEM SET max_replication_slots = <more>; then restart PostgreSQL",
        )
    )
    max_senders = int(_scalar(conn, "SHOW max_wal_senders"))
    senders = int(
        _scalar(conn, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender'")
    )
    slot_active = bool(existing_slot and existing_slot[0][1])
    checks.append(
        Check(
            "wal senders",
            slot_active or senders < max_senders,
            f"all {max_senders} WAL senders are busy",
            why="each streaming connector holds one WAL sender",
            fix="ALTER SYSTEM SET max_wal_senders = <more>; then restart PostgreSQL",
        )
    )
    if existing_slot:
        plugin, active, wal_status, retained, slot_db = existing_slot[0]
        retained = int(retained or 0)
        if wal_status == "lost":
            checks.append(
                Check(
                    "existing slot",
                    False,
                    f"slot '{slot}' lost required WAL (wal_status=lost)",
                    why="the connector cannot resume from it; changes were missed",
                    fix=f"SELECT pg_drop_replication_slot('{slot}'); then reset the connector's offsets for a new snapshot",
                )
            )
        elif plugin != "pgoutput" or slot_db != address.dbname:
            checks.append(
                Check(
                    "existing slot",
                    False,
                    f"slot '{slot}' exists for plugin '{plugin}' on database '{slot_db}'",
                    why="Debezium reuses a slot by name; it must be a pgoutput slot on this database",
                    fix=f"SELECT pg_drop_replication_slot('{slot}'); or set 'slot:' in the spec",
                )
            )
        else:
            checks.append(
                Check(
                    "retained WAL",
                    retained < RETAINED_WAL_WARN_BYTES,
                    f"slot '{slot}' ({'active' if active else 'inactive'}) retains {human_bytes(retained)} of WAL",
                    severity="warning",
                    why="a slot keeps WAL until its connector confirms it; the disk fills while the connector is down",
                    fix="start the connector (seam connectors resume) or drop the slot if it is abandoned",
                )
            )

    missing = [
        t for t in tables if _scalar(conn, "SELECT to_regclass(:t)", {"t": _pg_quote(t)}) is None
    ]
    for table in missing:
        if table == signal_table(spec, address.dbname):
            checks.append(
                _missing_table(
                    table,
                    spec.user,
                    "its own signalling table, for ad-hoc snapshots",
                    (signal_table_ddl(table, postgres=True),),
                )
            )
        elif table == heartbeat_table(spec, address.dbname):
            checks.append(_missing_table(table, spec.user, "heartbeat", heartbeat_table_ddl(table)))
        else:
            checks.append(_missing_table(table, spec.user, None))
    present = [t for t in tables if t not in missing]

    no_select = [
        t
        for t in present
        if not _scalar(conn, "SELECT has_table_privilege(:t, 'SELECT')", {"t": _pg_quote(t)})
    ]
    helper_no_select = [
        t
        for t in no_select
        if t in {heartbeat_table(spec, address.dbname), signal_table(spec, address.dbname)}
    ]
    checks.append(
        Check(
            "select privilege",
            not no_select,
            f"'{spec.user}' cannot SELECT from {', '.join(no_select)}",
            why="the initial snapshot reads every captured table",
            fix=f'GRANT SELECT ON {", ".join(_pg_quote(t) for t in no_select)} TO "{spec.user}";',
            # Only seam's own helper tables are granted by --fix: the others are the user's call.
            fix_sql=(
                f'GRANT SELECT ON {", ".join(_pg_quote(t) for t in helper_no_select)} TO "{spec.user}"',
            )
            if helper_no_select and helper_no_select == no_select
            else (),
        )
    )
    writes = []
    hb = heartbeat_table(spec, address.dbname)
    sig = signal_table(spec, address.dbname)
    if hb in present:
        writes.append((hb, "INSERT,UPDATE"))
    if sig in present:
        writes.append((sig, "INSERT"))
    cannot_write = [
        t
        for t, priv in writes
        if not _scalar(conn, "SELECT has_table_privilege(:t, :p)", {"t": _pg_quote(t), "p": priv})
    ]
    checks.append(
        Check(
            "heartbeat/signal writes",
            not cannot_write,
            f"'{spec.user}' cannot write to {', '.join(cannot_write)}",
            why="the heartbeat action query upserts the heartbeat row; incremental snapshots write watermarks to the signal table",
            fix=f'GRANT INSERT, UPDATE ON {", ".join(_pg_quote(t) for t in cannot_write)} TO "{spec.user}";',
            fix_sql=(
                f'GRANT INSERT, UPDATE ON {", ".join(_pg_quote(t) for t in cannot_write)} TO "{spec.user}"',
            )
            if cannot_write
            else (),
        )
    )

    autocreate = rendered.config.get("publication.autocreate.mode", "all_tables")
    pub = _rows(
        conn,
        "SELECT pubupdate, pubdelete FROM pg_publication WHERE pubname = :p",
        {"p": publication},
    )
    if not pub:
        checks.append(
            Check(
                "publication",
                False,
                f"publication '{publication}' does not exist",
                severity="error" if autocreate == "disabled" else "warning",
                why="with publication.autocreate.mode=disabled the connector fails without it"
                if autocreate == "disabled"
                else "with publication.autocreate.mode=filtered Debezium creates it, which needs ownership of every captured table",
                fix=f"CREATE PUBLICATION {publication} FOR TABLE {', '.join(_pg_quote(t) for t in present)};"
                if present
                else f"create the captured tables first, then CREATE PUBLICATION {publication} FOR TABLE ...;",
                fix_sql=(
                    f"CREATE PUBLICATION {publication} FOR TABLE {', '.join(_pg_quote(t) for t in present)}",
                )
                if present
                else (),
            )
        )
    else:
        published = {
            f"{r[0]}.{r[1]}"
            for r in _rows(
                conn,
                "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = :p",
                {"p": publication},
            )
        }
        absent = [t for t in present if t not in published]
        checks.append(
            Check(
                "publication tables",
                not absent,
                f"publication '{publication}' lacks {', '.join(absent)}",
                why="pgoutput streams only tables in the publication; changes to the others never arrive",
                fix=f"ALTER PUBLICATION {publication} ADD TABLE {', '.join(_pg_quote(t) for t in absent)};",
                fix_sql=(
                    f"ALTER PUBLICATION {publication} ADD TABLE {', '.join(_pg_quote(t) for t in absent)}",
                )
                if absent
                else (),
            )
        )
        # In filtered mode Debezium rewrites an existing publication whose tables differ
        # from table.include.list (ALTER PUBLICATION ... SET TABLE), which only its owner
        # may do: the task then FAILS with "must be owner of publication".
        owns = _scalar(
            conn,
            "SELECT p.pubowner = r.oid OR r.rolsuper FROM pg_publication p, pg_roles r "
            "WHERE p.pubname = :p AND r.rolname = current_user",
            {"p": publication},
        )
        extra = sorted(published - set(tables))
        rewrite = autocreate == "filtered" and not owns and (absent or extra)
        checks.append(
            Check(
                "publication ownership",
                not rewrite,
                f"publication '{publication}' is not owned by '{spec.user}' and its tables differ "
                f"from the captured ones ({', '.join(extra + absent)}), so Debezium's "
                "publication.autocreate.mode=filtered would try to rewrite it",
                why="the task would FAIL with 'must be owner of publication'",
                fix="add 'publication.autocreate.mode: disabled' to the spec's overrides (the "
                "publication is managed outside the connector), or capture exactly its tables",
            )
        )

    helpers = {heartbeat_table(spec, address.dbname), signal_table(spec, address.dbname)}
    for table in present:
        row = _rows(
            conn,
            "SELECT c.relreplident, EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) "
            "FROM pg_class c WHERE c.oid = to_regclass(:t)",
            {"t": _pg_quote(table)},
        )
        if not row:
            continue
        ident, has_pk = row[0]
        statement = f"ALTER TABLE {_pg_quote(table)} REPLICA IDENTITY FULL"
        if ident == "n" or (ident == "d" and not has_pk):
            checks.append(
                Check(
                    f"replica identity {table}",
                    False,
                    f"{table} has no primary key and replica identity {'NOTHING' if ident == 'n' else 'DEFAULT'}",
                    why="once it is in the publication, UPDATE and DELETE on it FAIL in the legacy application, "
                    "and its events carry no key",
                    fix=statement + "; (or add a primary key)",
                    fix_sql=(statement,),
                )
            )
        elif ident == "d" and table not in helpers:
            checks.append(
                Check(
                    f"replica identity {table}",
                    False,
                    f"{table} has replica identity DEFAULT",
                    # A choice, not a fault: reference tables rarely need before-images.
                    severity="info",
                    why="updates carry no 'before' image, deletes only the key, and unchanged TOASTed "
                    "values arrive as __debezium_unavailable_value",
                    fix=statement + ";",
                    fix_sql=(statement,),
                )
            )
    return checks


# -- MySQL / MariaDB ------------------------------------------------------------------------

# Privilege names as SHOW GRANTS prints them, with the aliases MariaDB 10.5+ uses.
_REQUIRED_GRANTS: Final[dict[str, tuple[str, ...]]] = {
    "SELECT": ("SELECT",),
    "REPLICATION SLAVE": ("REPLICATION SLAVE", "REPLICATION REPLICA"),
    "REPLICATION CLIENT": ("REPLICATION CLIENT", "BINLOG MONITOR"),
}
_RECOMMENDED_GRANTS: Final[dict[str, tuple[str, ...]]] = {
    "RELOAD": ("RELOAD",),
    "SHOW DATABASES": ("SHOW DATABASES",),
    "LOCK TABLES": ("LOCK TABLES",),
}


def _variables(conn: Connection, names: list[str]) -> dict[str, str]:
    placeholders = ", ".join(f":n{i}" for i in range(len(names)))
    rows = _rows(
        conn,
        f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({placeholders})",
        {f"n{i}": n for i, n in enumerate(names)},
    )
    return {str(r[0]).lower(): str(r[1]) for r in rows}


def _granted(grants: list[str]) -> set[str]:
    """Privileges granted ON *.* (global), upper case."""
    found: set[str] = set()
    for grant in grants:
        match = re.match(r"GRANT (.+?) ON \*\.\* TO", grant, re.IGNORECASE)
        if match:
            found.update(p.strip().upper() for p in match.group(1).split(","))
    return found


def _mysql_checks(conn: Connection, rendered: RenderedConnector, settings: Settings) -> list[Check]:
    spec = rendered.spec
    address = database_address(spec, settings)
    config = rendered.config
    checks: list[Check] = []
    v = _variables(
        conn,
        [
            "log_bin",
            "binlog_format",
            "binlog_row_image",
            "server_id",
            "binlog_expire_logs_seconds",
            "expire_logs_days",
            "gtid_mode",
            "enforce_gtid_consistency",
            "gtid_strict_mode",
            "version",
        ],
    )
    is_mariadb = "mariadb" in v.get("version", "").lower()
    restart = "then restart the server"
    # One URL scheme serves both servers: only the server can tell MySQL from MariaDB, and
    # Debezium's MySqlConnector fails on MariaDB (and the MariaDbConnector on MySQL) at start.
    server_kind = "mariadb" if is_mariadb else "mysql"
    checks.append(
        Check(
            "flavour",
            spec.flavour == server_kind,
            f"the spec's flavour is '{spec.flavour}' but the server is "
            f"{'MariaDB' if is_mariadb else 'MySQL'} {v.get('version', '')}".rstrip(),
            why=f"the {spec.flavour} connector's task fails at start against this server "
            "(for MySQL on MariaDB: 'should support SHOW BINARY LOG STATUS')",
            fix=f"set 'flavour: {server_kind}' in the spec",
        )
    )
    checks.append(
        Check(
            "log_bin",
            v.get("log_bin", "").upper() in ("ON", "1"),
            f"log_bin is {v.get('log_bin', 'unknown')}, expected ON",
            why="Debezium reads the binary log; without it there is nothing to stream",
            fix=f"set log_bin=mysql-bin in the server's config file, {restart}",
        )
    )
    fmt = v.get("binlog_format", "").upper()
    checks.append(
        Check(
            "binlog_format",
            fmt == "ROW",
            f"binlog_format is {fmt or 'unknown'}, expected ROW",
            why="only row-based events carry the changed rows; the task fails at start otherwise",
            fix="SET GLOBAL binlog_format = 'ROW'; and binlog_format=ROW in the config file",
        )
    )
    image = v.get("binlog_row_image", "").upper()
    checks.append(
        Check(
            "binlog_row_image",
            image == "FULL",
            f"binlog_row_image is {image or 'unknown'}, expected FULL",
            why="with MINIMAL/NOBLOB the events lack unchanged columns",
            fix="SET GLOBAL binlog_row_image = 'FULL'; and binlog_row_image=FULL in the config file",
        )
    )
    server_id = config.get("database.server.id")
    checks.append(
        Check(
            "server id",
            server_id != v.get("server_id"),
            f"database.server.id {server_id} equals the server's own server_id",
            why="a replication client with the server's id is disconnected",
            fix="set 'server_id:' in the spec to another number",
        )
    )
    seconds = int(v.get("binlog_expire_logs_seconds", "0") or 0)
    days = float(v.get("expire_logs_days", "0") or 0)
    retention = seconds or int(days * ONE_DAY_S)
    checks.append(
        Check(
            "binlog retention",
            retention == 0 or retention >= 3 * ONE_DAY_S,
            f"binary logs are purged after {retention / 3600:.0f} h",
            severity="warning",
            why="if the connector is down longer than that, its position is purged and it needs a new snapshot",
            fix="SET GLOBAL binlog_expire_logs_seconds = 604800; (7 days) and in the config file",
        )
    )
    if is_mariadb:
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
            Check(
                "gtid_mode",
                mode == "ON",
                f"gtid_mode is {mode}",
                severity="warning",
                why="with GTIDs the connector can follow a failover to a replica",
                fix="SET GLOBAL enforce_gtid_consistency = ON; SET GLOBAL gtid_mode = ON (stepwise); and in the config file",
            )
        )
    grants = [str(r[0]) for r in _rows(conn, "SHOW GRANTS FOR CURRENT_USER()")]
    granted = _granted(grants)
    if "ALL PRIVILEGES" not in granted:
        missing = [
            name for name, aliases in _REQUIRED_GRANTS.items() if not granted.intersection(aliases)
        ]
        # SELECT may also be granted on the captured database only. A database-level grant
        # escapes the LIKE wildcards of its name (`catalog\_x`), which SHOW GRANTS keeps.
        if "SELECT" in missing and any(
            re.match(
                rf"GRANT .*SELECT.* ON [`]?{re.escape(address.dbname)}[`]?\.\*",
                g.replace("\\_", "_").replace("\\%", "%"),
                re.IGNORECASE,
            )
            for g in grants
        ):
            missing.remove("SELECT")
        checks.append(
            Check(
                "grants",
                not missing,
                f"'{spec.user}' lacks {', '.join(missing)}",
                why="the connector reads tables for the snapshot and the binlog as a replica",
                fix=f"GRANT {', '.join(missing)} ON *.* TO '{spec.user}'@'%';",
            )
        )
        advised = [
            name
            for name, aliases in _RECOMMENDED_GRANTS.items()
            if not granted.intersection(aliases)
        ]
        checks.append(
            Check(
                "snapshot grants",
                not advised,
                f"'{spec.user}' lacks {', '.join(advised)}",
                severity="warning",
                why="without RELOAD / LOCK TABLES the snapshot cannot take a consistent lock",
                fix=f"GRANT {', '.join(advised)} ON *.* TO '{spec.user}'@'%';",
            )
        )
    tables = captured_tables(spec, address.dbname)
    for table in tables:
        schema, _, name = table.partition(".")
        exists = _scalar(
            conn,
            "SELECT 1 FROM information_schema.tables WHERE table_schema = :s AND table_name = :t",
            {"s": schema, "t": name},
        )
        if not exists:
            if table == signal_table(spec, address.dbname):
                account = str(_scalar(conn, "SELECT CURRENT_USER()") or f"{spec.user}@%")
                user, _, host = account.rpartition("@")
                create = (
                    signal_table_ddl(table, postgres=False),
                    f"GRANT SELECT, INSERT ON {_my_quote(table)} TO '{user}'@'{host}'",
                )
                checks.append(
                    _missing_table(
                        table, spec.user, "its own signalling table, for ad-hoc snapshots", create
                    )
                )
            else:
                checks.append(_missing_table(table, spec.user, None))
    return checks

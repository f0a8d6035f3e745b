"""PostgreSQL: what a Debezium (pgoutput) connector needs of its database, and the fixes.

The checks run on any connection to the database, the CDC user's own (preflight) or an
administrator's (prepare): privileges are asked of the CDC role by name. Fixes seam applies
(the role, its grants, seam's helper tables, the publication, replica identities) run as the
administrator in one transaction; server settings (wal_level, slots, WAL senders) need a
restart and stay the operator's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from seam.connectors.health import human_bytes
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
from seam.connectors.readiness.sql import (
    heartbeat_table_ddl,
    pg_quote,
    rows,
    scalar,
    signal_table_ddl,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

# A slot retaining more WAL than this gets a warning: the disk fills while the connector is down.
RETAINED_WAL_WARN_BYTES: Final = 1 << 30


def probe(conn: Connection, target: Target, login_error: str | None) -> list[Check]:
    """Every requirement of `target` on the database of `conn`. `login_error` is why the CDC
    user could not log in (None: it could)."""
    role = rows(
        conn,
        "SELECT rolcanlogin, rolreplication, rolsuper FROM pg_roles WHERE rolname = :u",
        {"u": target.user},
    )
    exists = bool(role)
    checks = [_wal_level(conn), _login(target, exists, login_error)]
    if exists and not (role[0][1] or role[0][2]):
        checks.append(_replication(target))
    checks += _slots(conn, target)
    missing = [t for t in target.tables if _oid(conn, t) is None]
    checks += [_missing_table(target, t) for t in missing]
    present = [t for t in target.tables if t not in missing]
    # The tables there once prepare has run: seam creates its own helper tables.
    after = present + [t for t in missing if t in target.helper_tables]
    checks += _privileges(conn, target, exists, present, after)
    checks += _publication(conn, target, after)
    checks += _replica_identity(conn, target, present)
    return checks


def _wal_level(conn: Connection) -> Check:
    wal_level = scalar(conn, "SHOW wal_level")
    return manual_check(
        "wal_level",
        wal_level == "logical",
        f"wal_level is '{wal_level}', expected 'logical'",
        "ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL",
        manual=RESTART,
        why="logical decoding (pgoutput) needs wal_level=logical; the task fails at start otherwise",
    )


def _login(target: Target, exists: bool, error: str | None) -> Check:
    role = pg_quote(target.user)
    if exists:
        statement = f"ALTER ROLE {role} WITH LOGIN PASSWORD {PASSWORD}"
        detail = f"cannot log in as '{target.user}' with the password from {target.password_source}"
    else:
        # LOGIN REPLICATION and nothing more: never a superuser.
        statement = (
            f"CREATE ROLE {role} WITH LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE "
            f"PASSWORD {PASSWORD}"
        )
        detail = f"role '{target.user}' does not exist"
    return login_check(target, statement, detail, error)


def _replication(target: Target) -> Check:
    return sql_check(
        "replication privilege",
        False,
        f"role '{target.user}' has no REPLICATION attribute",
        (Statement(f"ALTER ROLE {pg_quote(target.user)} WITH REPLICATION"),),
        why="only a role with REPLICATION may open a replication connection and create the slot",
    )


def _slots(conn: Connection, target: Target) -> list[Check]:
    slot = target.slot
    existing = rows(
        conn,
        "SELECT plugin, active, wal_status, "
        "pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint AS retained, database "
        "FROM pg_replication_slots WHERE slot_name = :s",
        {"s": slot},
    )
    max_slots = int(scalar(conn, "SHOW max_replication_slots"))
    used = int(scalar(conn, "SELECT count(*) FROM pg_replication_slots"))
    max_senders = int(scalar(conn, "SHOW max_wal_senders"))
    senders = int(
        scalar(conn, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender'")
    )
    checks = [
        manual_check(
            "replication slots",
            bool(existing) or max_slots - used > 0,
            f"all {max_slots} replication slots are in use",
            "drop unused slots (SELECT pg_drop_replication_slot(name)) or "
            "ALTER SYSTEM SET max_replication_slots = <more>; then restart PostgreSQL",
            manual=RESTART,
            why=f"the connector needs its own slot '{slot}'",
        ),
        manual_check(
            "wal senders",
            bool(existing and existing[0][1]) or senders < max_senders,
            f"all {max_senders} WAL senders are busy",
            "ALTER SYSTEM SET max_wal_senders = <more>; then restart PostgreSQL",
            manual=RESTART,
            why="each streaming connector holds one WAL sender",
        ),
    ]
    if not existing:
        return checks
    plugin, active, wal_status, retained, slot_db = existing[0]
    drop = f"SELECT pg_drop_replication_slot('{slot}');"
    if wal_status == "lost":
        checks.append(
            manual_check(
                "existing slot",
                False,
                f"slot '{slot}' lost required WAL (wal_status=lost)",
                f"{drop} then reset the connector's offsets for a new snapshot",
                manual=OPERATOR,
                why="the connector cannot resume from it; changes were missed",
            )
        )
    elif plugin != "pgoutput" or slot_db != target.dbname:
        checks.append(
            manual_check(
                "existing slot",
                False,
                f"slot '{slot}' exists for plugin '{plugin}' on database '{slot_db}'",
                f"{drop} or set 'slot:' in the spec",
                manual=OPERATOR,
                why="Debezium reuses a slot by name; it must be a pgoutput slot on this database",
            )
        )
    else:
        retained = int(retained or 0)
        checks.append(
            manual_check(
                "retained WAL",
                retained < RETAINED_WAL_WARN_BYTES,
                f"slot '{slot}' ({'active' if active else 'inactive'}) retains "
                f"{human_bytes(retained)} of WAL",
                "start the connector (seam connectors resume) or drop the slot if it is abandoned",
                manual=OPERATOR,
                severity="warning",
                why="a slot keeps WAL until its connector confirms it; the disk fills while "
                "the connector is down",
            )
        )
    return checks


def _missing_table(target: Target, table: str) -> Check:
    detail = f"table {table} does not exist (or '{target.user}' cannot see it)"
    if table == target.signal_table:
        return sql_check(
            f"table {table}",
            False,
            detail,
            (Statement(signal_table_ddl(table, postgres=True)),),
            why="the connector captures it (its own signalling table, for ad-hoc snapshots)",
        )
    if table == target.heartbeat_table:
        return sql_check(
            f"table {table}",
            False,
            detail,
            tuple(Statement(s) for s in heartbeat_table_ddl(table)),
            why="the connector captures it (the heartbeat action query upserts its row)",
        )
    return manual_check(
        f"table {table}",
        False,
        detail,
        f"create {table} or remove it from 'tables'",
        manual=SPEC_CHANGE,
        why="the connector captures it",
    )


def _oid(conn: Connection, table: str) -> int | None:
    """The table's oid, from the catalogs: a name lookup (to_regclass, a privilege function
    given a name) fails outright for a user without USAGE on the table's schema."""
    schema, _, name = table.partition(".")
    found = scalar(
        conn,
        "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = :s AND c.relname = :t AND c.relkind IN ('r', 'p')",
        {"s": schema, "t": name},
    )
    return None if found is None else int(found)


def _lacking(conn: Connection, user: str, tables: list[str], privilege: str) -> list[str]:
    return [
        t
        for t in tables
        if not scalar(
            conn,
            "SELECT has_table_privilege(:u, CAST(:o AS oid), :p)",
            {"u": user, "o": _oid(conn, t), "p": privilege},
        )
    ]


def _privileges(
    conn: Connection, target: Target, exists: bool, present: list[str], after: list[str]
) -> list[Check]:
    """CONNECT and USAGE, SELECT on every captured table, writes to the helper tables. A
    table prepare creates (or a role it creates) has none yet."""
    user = target.user
    role = pg_quote(user)
    new = [t for t in after if t not in present]
    schemas = sorted({t.split(".")[0] for t in after})
    if exists:
        no_connect = not scalar(
            conn,
            "SELECT has_database_privilege(:u, :d, 'CONNECT')",
            {"u": user, "d": target.dbname},
        )
        no_usage = [
            s
            for s in schemas
            if not scalar(conn, "SELECT has_schema_privilege(:u, :s, 'USAGE')", {"u": user, "s": s})
        ]
        no_select = _lacking(conn, user, present, "SELECT") + new
    else:
        no_connect, no_usage, no_select = True, schemas, list(after)
    # The heartbeat action query upserts; incremental snapshots insert their watermarks.
    wanted = [(target.heartbeat_table, ("INSERT", "UPDATE")), (target.signal_table, ("INSERT",))]
    no_write = [
        (t, p)
        for t, privileges in wanted
        if t in after
        for p in privileges
        if not exists or t in new or _lacking(conn, user, [t], p)
    ]
    reach: list[Statement] = []
    if no_connect:
        reach.append(Statement(f"GRANT CONNECT ON DATABASE {pg_quote(target.dbname)} TO {role}"))
    if no_usage:
        reach.append(
            Statement(f"GRANT USAGE ON SCHEMA {', '.join(pg_quote(s) for s in no_usage)} TO {role}")
        )
    lacking = (["CONNECT on the database"] if no_connect else []) + [
        f"USAGE on schema {s}" for s in no_usage
    ]
    writes: dict[str, list[str]] = {}
    for table, privilege in no_write:
        writes.setdefault(table, []).append(privilege)
    requires = None if exists else "login"  # grants to a role that prepare creates
    return [
        sql_check(
            "database and schema access",
            not reach,
            f"'{user}' lacks {', '.join(lacking)}",
            tuple(reach),
            why="the connector reads the captured tables through these",
            requires=requires,
        ),
        sql_check(
            "select privilege",
            not no_select,
            f"'{user}' cannot SELECT from {', '.join(no_select)}",
            (Statement(f"GRANT SELECT ON {', '.join(pg_quote(t) for t in no_select)} TO {role}"),)
            if no_select
            else (),
            why="the initial snapshot reads every captured table",
            requires=requires,
        ),
        sql_check(
            "heartbeat/signal writes",
            not writes,
            f"'{user}' cannot write to "
            + ", ".join(f"{t} ({', '.join(p)})" for t, p in writes.items()),
            tuple(
                Statement(f"GRANT {', '.join(p)} ON {pg_quote(t)} TO {role}")
                for t, p in writes.items()
            ),
            why="the heartbeat action query upserts the heartbeat row; incremental snapshots "
            "write watermarks to the signal table",
            requires=requires,
        ),
    ]


def _publication(conn: Connection, target: Target, after: list[str]) -> list[Check]:
    publication = target.publication
    autocreate = target.config.get("publication.autocreate.mode", "all_tables")
    quoted = ", ".join(pg_quote(t) for t in after)
    pub = rows(
        conn, "SELECT puballtables FROM pg_publication WHERE pubname = :p", {"p": publication}
    )
    if not pub:
        return [
            sql_check(
                "publication",
                False,
                f"publication '{publication}' does not exist",
                (Statement(f"CREATE PUBLICATION {pg_quote(publication)} FOR TABLE {quoted}"),)
                if after
                else (),
                severity="error" if autocreate == "disabled" else "warning",
                why="with publication.autocreate.mode=disabled the connector fails without it"
                if autocreate == "disabled"
                else "with publication.autocreate.mode=filtered Debezium creates it, which "
                "needs ownership of every captured table",
            )
        ]
    published = {
        f"{r[0]}.{r[1]}"
        for r in rows(
            conn,
            "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = :p",
            {"p": publication},
        )
    }
    absent = [t for t in after if t not in published]
    checks = [
        sql_check(
            "publication tables",
            not absent,
            f"publication '{publication}' lacks {', '.join(absent)}",
            (
                Statement(
                    f"ALTER PUBLICATION {pg_quote(publication)} ADD TABLE "
                    f"{', '.join(pg_quote(t) for t in absent)}"
                ),
            )
            if absent
            else (),
            why="pgoutput streams only tables in the publication; changes to the others never arrive",
        )
    ]
    # In filtered mode Debezium rewrites an existing publication whose tables differ from
    # table.include.list (ALTER PUBLICATION ... SET TABLE), which only its owner may do: the
    # task then FAILS with "must be owner of publication". Missing tables prepare adds; extra
    # ones are the user's to sort out.
    owns = scalar(
        conn,
        "SELECT p.pubowner = r.oid OR r.rolsuper FROM pg_publication p, pg_roles r "
        "WHERE p.pubname = :p AND r.rolname = :u",
        {"p": publication, "u": target.user},
    )
    extra = sorted(published - set(target.tables))
    rewrite = autocreate == "filtered" and not owns and bool(extra) and not pub[0][0]
    checks.append(
        manual_check(
            "publication ownership",
            not rewrite,
            f"publication '{publication}' is not owned by '{target.user}' and also publishes "
            f"{', '.join(extra)}, so Debezium's publication.autocreate.mode=filtered would try "
            "to rewrite it",
            "add 'publication.autocreate.mode: disabled' to the spec's overrides (the "
            "publication is managed outside the connector), or capture exactly its tables",
            manual=SPEC_CHANGE,
            why="the task would FAIL with 'must be owner of publication'",
        )
    )
    return checks


def _replica_identity(conn: Connection, target: Target, present: list[str]) -> list[Check]:
    checks: list[Check] = []
    for table in present:
        row = rows(
            conn,
            "SELECT c.relreplident, EXISTS (SELECT 1 FROM pg_index i "
            "WHERE i.indrelid = c.oid AND i.indisprimary) "
            "FROM pg_class c WHERE c.oid = CAST(:o AS oid)",
            {"o": _oid(conn, table)},
        )
        if not row:
            continue
        ident, has_pk = row[0]
        full = (Statement(f"ALTER TABLE {pg_quote(table)} REPLICA IDENTITY FULL"),)
        if ident == "n" or (ident == "d" and not has_pk):
            checks.append(
                sql_check(
                    f"replica identity {table}",
                    False,
                    f"{table} has no primary key and replica identity "
                    f"{'NOTHING' if ident == 'n' else 'DEFAULT'}",
                    full,
                    why="once it is in the publication, UPDATE and DELETE on it FAIL in the "
                    "legacy application, and its events carry no key",
                )
            )
        elif table in target.full_identity and ident != "f":
            checks.append(
                sql_check(
                    f"replica identity {table}",
                    False,
                    f"{table} is in the spec's replica_identity_full but its replica identity "
                    f"is {'DEFAULT' if ident == 'd' else 'USING INDEX'}",
                    full,
                    why="updates would carry no 'before' image and deletes only the key",
                )
            )
        elif ident == "d" and table not in target.helper_tables:
            checks.append(
                Check(
                    f"replica identity {table}",
                    False,
                    f"{table} has replica identity DEFAULT",
                    # A choice, not a fault: reference tables rarely need before-images.
                    severity="info",
                    why="updates carry no 'before' image, deletes only the key, and unchanged "
                    "TOASTed values arrive as __debezium_unavailable_value",
                    fix="list it under 'replica_identity_full:' in the spec if its events need "
                    "the old row (seam connectors prepare then sets REPLICA IDENTITY FULL)",
                )
            )
    return checks

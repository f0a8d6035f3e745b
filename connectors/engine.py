"""Connections to a database: one place that turns a user's URL into an engine and every
connection failure into one clear `DatabaseError`. Toolkit code (readiness, slots, signals)
and the worked example both connect through here.

Users write plain URLs (`postgresql://user:pw@host:5432/shop`, `mysql://...`,
`mariadb://...`); SQLAlchemy needs the driver in the scheme. `sqlalchemy_url` is the only
place that mapping happens, so the rest of seam never names a driver.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final, Literal

from seam.errors import DatabaseError
from seam.secrets import MASK, mask_url

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, Engine

Flavour = Literal["postgres", "mysql"]

_SCHEMES: Final[dict[str, tuple[Flavour, str]]] = {
    "postgresql": ("postgres", "postgresql+psycopg"),
    "postgres": ("postgres", "postgresql+psycopg"),
    "postgresql+psycopg": ("postgres", "postgresql+psycopg"),
    "mysql": ("mysql", "mysql+pymysql"),
    "mariadb": ("mysql", "mysql+pymysql"),
    "mysql+pymysql": ("mysql", "mysql+pymysql"),
    "mariadb+pymysql": ("mysql", "mysql+pymysql"),
}

_SCHEME = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://")

# A dead host should fail in seconds, not after the OS's TCP timeout.
CONNECT_TIMEOUT_S: Final = 10


_BARE_CREDENTIALS = re.compile(r"^(?P<user>[^:/@\s]*):[^@\s]*@")


def display_url(url: str) -> str:
    """The URL fit for a message: the password masked, even in a URL missing its scheme."""
    masked = mask_url(url)
    if masked == url and "://" not in url:
        masked = _BARE_CREDENTIALS.sub(lambda m: f"{m['user']}:{MASK}@", url)
    return masked


def _scheme(url: str) -> str:
    match = _SCHEME.match(url)
    if not match:
        raise DatabaseError(
            f"'{display_url(url)}' is not a database URL",
            hint="expected postgresql://user:password@host:port/database or mysql://user:password@host:port/database",
        )
    return match["scheme"].lower()


def flavour_of(url: str) -> Flavour:
    """'postgres' or 'mysql' (MySQL and MariaDB are one flavour) for a database URL."""
    scheme = _scheme(url)
    try:
        return _SCHEMES[scheme][0]
    except KeyError:
        known = ", ".join(s for s in _SCHEMES if "+" not in s)
        raise DatabaseError(
            f"'{mask_url(url)}': unsupported database scheme '{scheme}'",
            hint=f"use one of {known} (drivers psycopg and pymysql are chosen for you)",
        ) from None


def sqlalchemy_url(url: str) -> str:
    """The URL with the driver SQLAlchemy should use (psycopg 3 or PyMySQL) in its scheme."""
    flavour_of(url)  # validates the scheme
    scheme = _scheme(url)
    return _SCHEMES[scheme][1] + url[len(scheme) :]


def parse_url(url: str) -> URL:
    """The SQLAlchemy URL object for `url`, with the driver filled in."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(sqlalchemy_url(url))
    except (ArgumentError, ValueError) as exc:
        raise DatabaseError(
            f"'{mask_url(url)}' is not a valid database URL: {exc}",
            hint="expected scheme://user:password@host:port/database (percent-encode special characters in the password)",
        ) from None


def database_name(url: str) -> str:
    """The database part of the URL; a URL without one is an error."""
    name = parse_url(url).database
    if not name:
        raise DatabaseError(
            f"'{mask_url(url)}' names no database",
            hint="append the database name to the URL, for example .../shop",
        )
    return name


def with_database(url: str, database: str | None) -> str:
    """The same server and credentials, another database (None: the server's default)."""
    from sqlalchemy.engine import URL

    p = parse_url(url)
    # URL.set() treats None as "leave unchanged", so build the URL anew.
    other = URL.create(p.drivername, p.username, p.password, p.host, p.port, database, p.query)
    rendered = other.render_as_string(hide_password=False)
    # Keep the user's scheme (postgresql://, mysql://): the URL may end up in messages.
    return _scheme(url) + rendered[len(p.drivername) :]


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url` with seam's connection defaults. Does not connect yet."""
    from sqlalchemy import create_engine

    parsed = parse_url(url)
    connect_args: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S}
    if parsed.get_backend_name() == "mysql":
        # utf8mb4: legacy data holds 4-byte characters; local_infile: LOAD DATA LOCAL bulk loads.
        connect_args.update(charset="utf8mb4", local_infile=True)
    else:
        connect_args["application_name"] = "seam"
    connect_args.update(kwargs.pop("connect_args", {}))
    return create_engine(parsed, connect_args=connect_args, pool_pre_ping=False, **kwargs)


def describe_failure(url: str, exc: BaseException) -> DatabaseError:
    """The `DatabaseError` that tells the user what went wrong with `url` and how to fix it."""
    orig = getattr(exc, "orig", None) or exc
    text = " ".join(str(orig).split()) or type(orig).__name__
    masked = mask_url(url)
    lowered = text.lower()
    code = orig.args[0] if getattr(orig, "args", None) and isinstance(orig.args[0], int) else None
    if "password authentication failed" in lowered or "access denied" in lowered or code == 1045:
        return DatabaseError(
            f"login refused by {masked}: {text}",
            hint="check the user and password in the URL (or the [databases] setting / SEAM_DATABASES_<NAME>)",
        )
    if ("database" in lowered and "does not exist" in lowered) or code == 1049:
        db = parse_url(url).database
        create = (
            f"CREATE DATABASE {db}"
            if flavour_of(url) == "postgres"
            else f"CREATE DATABASE {db} CHARACTER SET utf8mb4"
        )
        return DatabaseError(
            f"database '{db}' does not exist on {masked}",
            hint=f"create it as an administrator ({create}) or point the URL at an existing database",
        )
    if (
        "connection refused" in lowered
        or "could not connect" in lowered
        or "can't connect" in lowered
        or "timeout expired" in lowered
        or "timed out" in lowered
        or "name or service not known" in lowered
        or "could not translate host name" in lowered
        or code in (2003, 2005, 2006, 2013)
    ):
        return DatabaseError(
            f"cannot reach the database at {masked}: {text}",
            hint="start it (seam stack up for the local stack) or fix host and port in the URL",
        )
    if "does not have a replica identity" in lowered:
        return DatabaseError(
            f"{masked} refused a change: {text}",
            hint="the table is in a publication but has no replica identity: run "
            "`seam connectors prepare SPEC` (it sets REPLICA IDENTITY FULL on key-less tables)",
        )
    return DatabaseError(
        f"database error on {masked}: {text}",
        hint="see the database's message above; check the URL and the database's state",
    )


@contextmanager
def translate_errors(url: str) -> Iterator[None]:
    """Turn driver and SQLAlchemy errors raised inside the block into one `DatabaseError`."""
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    try:
        yield
    except DBAPIError as exc:
        raise describe_failure(url, exc) from None
    except SQLAlchemyError as exc:
        raise describe_failure(url, exc) from None
    except (OSError, UnicodeError) as exc:  # e.g. a temp file for LOAD DATA, a socket
        raise describe_failure(url, exc) from None


@contextmanager
def connect(url: str, **engine_kwargs: Any) -> Iterator[Connection]:
    """A connection to `url` whose failures (connect or later) are `DatabaseError`s."""
    with translate_errors(url):
        engine = make_engine(url, **engine_kwargs)
        try:
            with engine.connect() as conn:
                yield conn
        finally:
            engine.dispose()


def server_url(url: str) -> str:
    """A URL for administrative statements on the same server (no particular database)."""
    return with_database(url, "postgres" if flavour_of(url) == "postgres" else None)


def _quote_ident(flavour: Flavour, name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", name):
        raise DatabaseError(
            f"'{name}' is not a plain identifier",
            hint="use letters, digits and underscores only",
        )
    return f'"{name}"' if flavour == "postgres" else f"`{name}`"


def _database_exists(conn: Connection, flavour: Flavour, name: str) -> bool:
    from sqlalchemy import text

    query = (
        "SELECT 1 FROM pg_database WHERE datname = :n"
        if flavour == "postgres"
        else "SELECT 1 FROM information_schema.schemata WHERE schema_name = :n"
    )
    return conn.execute(text(query), {"n": name}).first() is not None


def create_database(url: str) -> bool:
    """Create the database the URL names, as the URL's (administrative) user. True if created."""
    from sqlalchemy import text

    flavour = flavour_of(url)
    name = database_name(url)
    with connect(server_url(url), isolation_level="AUTOCOMMIT") as conn:
        if _database_exists(conn, flavour, name):
            return False
        options = (
            "" if flavour == "postgres" else " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
        conn.execute(text(f"CREATE DATABASE {_quote_ident(flavour, name)}{options}"))
        return True


def drop_database(url: str) -> bool:
    """Drop the database the URL names, ending other sessions on it. True if it existed."""
    from sqlalchemy import text

    flavour = flavour_of(url)
    name = database_name(url)
    with connect(server_url(url), isolation_level="AUTOCOMMIT") as conn:
        if not _database_exists(conn, flavour, name):
            return False
        # PostgreSQL refuses to drop a database others are connected to unless forced.
        force = " WITH (FORCE)" if flavour == "postgres" else ""
        conn.execute(text(f"DROP DATABASE {_quote_ident(flavour, name)}{force}"))
        return True


def log_position(conn: Connection) -> str:
    """Where the database's log ends now, as `?after=` and the migration tools write it:
    `lsn:0/16B3748` (PostgreSQL) or `binlog:<file>:<position>` (MySQL/MariaDB).

    Read after a commit, it is at or past that commit. MySQL/MariaDB answer from the
    connection's transaction snapshot under repeatable read, so the caller ends its
    transaction first (commit or rollback) when it needs the position of now.
    """
    from sqlalchemy import text

    if conn.dialect.name == "postgresql":
        lsn = conn.execute(text("SELECT pg_current_wal_lsn()::text")).scalar_one()
        return f"lsn:{lsn}"
    row = None
    for statement in ("SHOW MASTER STATUS", "SHOW BINARY LOG STATUS"):  # MySQL 8.4 renamed it
        try:
            row = conn.execute(text(statement)).mappings().one_or_none()
            break
        except Exception:  # the other spelling is tried; a real failure repeats there
            if statement == "SHOW BINARY LOG STATUS":
                raise
    if row is None:
        raise DatabaseError(
            "the database has no binary log, so it has no position to wait for",
            hint="turn on row-based binary logging (log_bin, binlog_format=ROW): "
            "`seam connectors preflight` shows what else CDC needs",
        )
    return f"binlog:{row['File']}:{row['Position']}"


def log_gtid(conn: Connection) -> str:
    """The GTID of the connection's last committed transaction, as `?after=` takes it:
    `gtid:0-1-1234` (MariaDB's `@@last_gtid`, read in the session that committed). MySQL
    has no such variable: its `@@gtid_executed` (`gtid:<uuid>:1-1234`) stands for it when
    one server wrote everything (the service refuses a set of several)."""
    from sqlalchemy import text

    if conn.dialect.name == "postgresql":
        raise DatabaseError(
            "PostgreSQL has no GTIDs", hint="wait for its LSN instead (log_position: lsn:X/Y)"
        )
    is_mariadb = bool(getattr(conn.dialect, "is_mariadb", False))
    query = "SELECT @@last_gtid" if is_mariadb else "SELECT @@global.gtid_executed"
    gtid = str(conn.execute(text(query)).scalar_one() or "").replace("\n", "").strip()
    if not gtid:
        raise DatabaseError(
            "the database reports no GTID for the last transaction",
            hint="commit in this session first (MariaDB), or turn on gtid_mode (MySQL); "
            "log_position gives the binlog position instead",
        )
    return f"gtid:{gtid}"

"""URL helpers and the mapping of driver failures to one clear DatabaseError."""

from __future__ import annotations

import pytest

from seam.connectors.engine import (
    database_name,
    describe_failure,
    flavour_of,
    make_engine,
    server_url,
    sqlalchemy_url,
    with_database,
)
from seam.errors import DatabaseError

pytestmark = pytest.mark.unit

PG = "postgresql://postgres:s3cret@127.0.0.1:15432/catalog"
MY = "mysql://root:s3cret@127.0.0.1:13306/catalog"


@pytest.mark.parametrize(
    ("url", "flavour", "driver_url"),
    [
        (PG, "postgres", "postgresql+psycopg://postgres:s3cret@127.0.0.1:15432/catalog"),
        ("postgres://u@h/db", "postgres", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgres", "postgresql+psycopg://u@h/db"),
        (MY, "mysql", "mysql+pymysql://root:s3cret@127.0.0.1:13306/catalog"),
        ("mariadb://u:p@h/db", "mysql", "mysql+pymysql://u:p@h/db"),
        ("MySQL://u:p@h/db", "mysql", "mysql+pymysql://u:p@h/db"),
    ],
)
def test_flavour_and_driver(url: str, flavour: str, driver_url: str) -> None:
    assert flavour_of(url) == flavour
    assert sqlalchemy_url(url) == driver_url


@pytest.mark.parametrize(
    "url",
    [
        "http://root:s3cret@host/db",
        "postgresql+asyncpg://root:s3cret@host/db",
        "sqlite:///tmp/x.db",
        "not a url",
        "root:s3cret@host/db",
    ],
)
def test_unsupported_urls_are_a_database_error_without_the_password(url: str) -> None:
    with pytest.raises(DatabaseError) as info:
        flavour_of(url)
    assert "s3cret" not in str(info.value)
    assert info.value.hint


def test_database_name_and_swapping_it() -> None:
    assert database_name(PG) == "catalog"
    other = with_database(PG, "seam_test")
    assert database_name(other) == "seam_test"
    assert "s3cret" in other  # a usable URL, not a display one
    assert other.startswith("postgresql://")  # the user's scheme, not the driver's
    assert with_database(MY, "x") == "mysql://root:s3cret@127.0.0.1:13306/x"
    with pytest.raises(DatabaseError, match="names no database"):
        database_name("postgresql://u:p@h:5432")


def test_server_url_points_at_the_maintenance_database() -> None:
    assert database_name(server_url(PG)) == "postgres"
    assert server_url(MY).endswith("127.0.0.1:13306")


def test_make_engine_does_not_connect_and_picks_the_driver() -> None:
    engine = make_engine(MY)
    try:
        assert engine.dialect.driver == "pymysql"
    finally:
        engine.dispose()
    engine = make_engine(PG)
    try:
        assert engine.dialect.driver == "psycopg"
    finally:
        engine.dispose()


class _OrigError(Exception):
    pass


@pytest.mark.parametrize(
    ("orig", "url", "expect_message", "expect_hint"),
    [
        (
            _OrigError('FATAL:  password authentication failed for user "postgres"'),
            PG,
            "login refused",
            "password",
        ),
        (
            _OrigError(1045, "Access denied for user 'root'@'localhost'"),
            MY,
            "login refused",
            "password",
        ),
        (
            _OrigError('FATAL:  database "nope" does not exist'),
            PG.replace("catalog", "nope"),
            "database 'nope' does not exist",
            "CREATE DATABASE nope",
        ),
        (_OrigError(1049, "Unknown database 'nope'"), MY, "does not exist", "CREATE DATABASE"),
        (
            _OrigError("connection failed: Connection refused"),
            PG,
            "cannot reach",
            "seam stack up",
        ),
        (_OrigError(2003, "Can't connect to MySQL server"), MY, "cannot reach", "host and port"),
        (_OrigError("relation foo does not exist"), PG, "database error", "URL"),
        (
            _OrigError(
                'cannot delete from table "product_tags" because it does not have a replica '
                "identity and publishes deletes"
            ),
            PG,
            "refused a change",
            "seam connectors prepare",
        ),
    ],
)
def test_failures_become_one_clear_error(
    orig: Exception, url: str, expect_message: str, expect_hint: str
) -> None:
    error = describe_failure(url, orig)
    assert isinstance(error, DatabaseError)
    assert expect_message in error.message
    assert error.hint is not None
    assert expect_hint in error.hint
    assert "s3cret" not in str(error)
    assert "******" in error.message

"""prepare-cdc's pure parts: the password rule, the heartbeat query, report shape."""

from __future__ import annotations

import pytest

from seam.errors import ConfigError
from seam.legacy_db.cdc import (
    LOCAL_CDC_PASSWORD,
    Action,
    CdcReport,
    Check,
    cdc_password,
    heartbeat_action_query,
    prepare_cdc,
)

pytestmark = pytest.mark.unit


def test_password_comes_from_the_named_variable() -> None:
    secret = cdc_password("postgresql://u:p@db.example.com/c", "MY_PW", {"MY_PW": "hunter2"})
    assert secret.reveal() == "hunter2"
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in str(secret)


@pytest.mark.parametrize(
    "url",
    ["postgresql://u:p@127.0.0.1:15432/c", "mysql://u:p@localhost/c", "mysql://u:p@[::1]:3306/c"],
)
def test_unset_password_defaults_only_for_local_databases(url: str) -> None:
    assert cdc_password(url, "SEAM_CDC_PASSWORD", {}).reveal() == LOCAL_CDC_PASSWORD


def test_unset_password_for_a_remote_database_is_an_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="SEAM_CDC_PASSWORD") as info:
        cdc_password("postgresql://u:p@db.example.com/c", "SEAM_CDC_PASSWORD", {})
    assert info.value.hint is not None
    assert "export SEAM_CDC_PASSWORD" in info.value.hint


@pytest.mark.parametrize("name", ["Seam", "seam-cdc", "x; DROP ROLE postgres", "", "1abc"])
def test_odd_cdc_user_names_are_refused_before_any_connection(name: str) -> None:
    with pytest.raises(ConfigError, match="CDC user name"):
        prepare_cdc("postgresql://u:p@127.0.0.1:1/c", cdc_user=name)


def test_heartbeat_queries_upsert_row_one() -> None:
    pg = heartbeat_action_query("postgres")
    my = heartbeat_action_query("mysql")
    assert "seam_heartbeat" in pg
    assert "ON CONFLICT (id)" in pg
    assert "ON DUPLICATE KEY UPDATE" in my


def test_report_knows_whether_anything_changed_and_the_server_is_ready() -> None:
    report = CdcReport(
        database="postgresql://u:******@h/c",
        flavour="postgres",
        cdc_user="seam_cdc",
        actions=[Action("role seam_cdc", "already")],
        checks=[Check("wal_level", "replica", "logical", False)],
    )
    assert not report.changed
    assert not report.server_ready
    data = report.as_dict()
    assert data["changed"] is False
    assert data["checks"][0]["setting"] == "wal_level"

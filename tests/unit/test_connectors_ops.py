"""Operations that must not mislead: clashes, flavour vs URL, slot warnings, unknown names,
snapshot scoping, the worker's missing env var, status exit codes, prompts without a terminal,
tables that never cut an identifier (no I/O: Connect is a stub session or a fake client)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
from typer.testing import CliRunner

from seam.connectors.client import ConnectClient, RetryPolicy
from seam.connectors.database import SlotInfo
from seam.connectors.errors import ConnectNotFoundError
from seam.connectors.health import (
    Reading,
    assess_slot,
    load_readings,
    save_readings,
    slot_key,
)
from seam.connectors.operate import require_connectors, snapshot_tables
from seam.connectors.plan import (
    ValidationFailedError,
    env_references,
    find_clashes,
    make_plan,
    validate_configs,
)
from seam.connectors.render import render
from seam.connectors.spec import parse_specs
from seam.errors import ConfigError, SeamError, StackError
from seam.settings import load_settings

pytestmark = pytest.mark.unit

SETTINGS = load_settings(env={})
PG_URL = "postgresql://admin:s3cret@db.example:5432/shop"
OTHER_DB_URL = "postgresql://admin:s3cret@db.example:5432/other"
MY_URL = "mysql://root:s3cret@db.example:3306/shop"


def rendered(name: str, database: str = PG_URL, flavour: str = "postgres", extra: str = "") -> Any:
    text = f"name: {name}\nflavour: {flavour}\ndatabase: {database}\ntables: [products]\n" + extra
    (spec,) = parse_specs(text, f"{name}.yaml")
    return render(spec, SETTINGS)


def live(*items: Any, state: str = "RUNNING") -> dict[str, Any]:
    return {
        r.name: {
            "info": {"config": {"name": r.name, **r.config}},
            "status": {"connector": {"state": state}, "tasks": []},
        }
        for r in items
    }


def configs(entries: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {n: e["info"]["config"] for n, e in entries.items()}


# -- clashes --------------------------------------------------------------------------------


def test_topic_prefix_shared_by_two_specs_is_a_clash() -> None:
    a = rendered("a", extra="topic_prefix: shop\nsignal_table: sig_a\n")
    b = rendered("b", OTHER_DB_URL, extra="topic_prefix: shop\nsignal_table: sig_b\n")
    (clash,) = find_clashes([a, b], {})
    assert (clash.connector, clash.key, clash.value, clash.other) == (
        "b",
        "topic.prefix",
        "shop",
        "a",
    )
    assert "topic_prefix:" in clash.fix
    with pytest.raises(
        ConfigError, match=r"uses topic\.prefix=shop, already used by connector 'a'"
    ):
        make_plan([a, b], {})


def test_slot_is_named_per_server_so_another_database_clashes_too() -> None:
    """PostgreSQL slot names are unique per server: a slot on another database is the same slot."""
    first = rendered("first", extra="slot: shared\n")
    second = rendered("second", OTHER_DB_URL, extra="slot: shared\n")
    clashes = find_clashes([second], configs(live(first)))
    assert [(c.connector, c.key, c.other, c.other_where) for c in clashes] == [
        ("second", "slot.name", "first", "the cluster")
    ]
    assert "on the cluster" in clashes[0].describe()


def test_live_connector_on_the_same_names_is_not_a_clash_with_itself() -> None:
    item = rendered("same")
    assert find_clashes([item], configs(live(item))) == []


def test_two_connectors_on_one_database_cannot_share_the_signal_table() -> None:
    a, b = rendered("a"), rendered("b")  # both default to public.debezium_signal
    clashes = find_clashes([a, b], {})
    assert [(c.key, c.value) for c in clashes] == [
        ("signal.data.collection", "public.debezium_signal")
    ]
    assert "seam_signal_b" in clashes[0].fix
    own = rendered("b", extra="signal_table: seam_signal_b\n")
    assert find_clashes([a, own], {}) == []
    # Another database on the same server has its own public.debezium_signal.
    assert find_clashes([a, rendered("c", OTHER_DB_URL)], {}) == []


def test_loopback_names_are_one_server() -> None:
    a = rendered("a", "postgresql://u:p@localhost:5432/shop", extra="slot: s\nsignal_table: x\n")
    b = rendered("b", "postgresql://u:p@127.0.0.1:5432/other", extra="slot: s\nsignal_table: y\n")
    assert [c.key for c in find_clashes([a, b], {})] == ["slot.name"]


# -- flavour vs URL -------------------------------------------------------------------------


def test_mysql_spec_on_a_postgres_url_is_an_error_that_masks_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        rendered("m", PG_URL, flavour="mysql")
    message = info.value.message
    assert "flavour 'mysql'" in message
    assert "PostgreSQL URL" in message
    assert "s3cret" not in message + (info.value.hint or "")
    assert "flavour: postgres" in (info.value.hint or "")


def test_postgres_spec_on_a_mysql_url_is_an_error() -> None:
    with pytest.raises(ConfigError, match="MySQL/MariaDB URL"):
        rendered("p", MY_URL, flavour="postgres")
    rendered("ok", MY_URL, flavour="mariadb")  # one scheme serves both servers


# -- slots ----------------------------------------------------------------------------------


def slot(active: bool = False, retained: int = 184 << 10, restart: str = "0/1000") -> SlotInfo:
    return SlotInfo("s1", "pgoutput", "shop", active, "reserved", retained, "0/1000", restart)


def test_inactive_slot_warns_even_when_small() -> None:
    result = assess_slot(slot(), connector="c", connector_state="STOPPED", previous=None, now=10)
    assert not result.ok
    assert "inactive (its connector 'c' is STOPPED)" in result.warnings[0]
    healthy = assess_slot(
        slot(active=True), connector="c", connector_state="RUNNING", previous=None, now=10
    )
    assert healthy.ok


def test_growth_without_moving_warns_growth_with_progress_does_not() -> None:
    before = Reading(at=100.0, retained_bytes=184 << 10, restart_lsn="0/1000")
    grown = slot(active=True, retained=int(7.3 * (1 << 20)))
    stuck = assess_slot(grown, connector="c", connector_state="RUNNING", previous=before, now=160.0)
    assert stuck.growth_bytes == grown.retained_bytes - (184 << 10)
    assert stuck.growth_seconds == 60.0
    assert any(w.startswith("growing: +7.1 MiB in 60 s") for w in stuck.warnings)
    moving = slot(active=True, retained=int(7.3 * (1 << 20)), restart="0/9000")
    assert assess_slot(
        moving, connector="c", connector_state="RUNNING", previous=before, now=160.0
    ).ok


def test_readings_survive_a_round_trip_and_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "slot-readings.json"
    assert load_readings(path) == {}
    key = slot_key("postgresql://u:p@db:5433/x", "s1")
    assert key == "db:5433/s1"
    save_readings(path, {key: Reading(1.5, 42, "0/10")})
    assert load_readings(path) == {key: Reading(1.5, 42, "0/10")}
    path.write_text("{not json")
    assert load_readings(path) == {}


# -- unknown names --------------------------------------------------------------------------


def test_unknown_connector_names_the_closest_and_the_existing_ones() -> None:
    with pytest.raises(ConnectNotFoundError) as info:
        require_connectors(
            {"catalog-postgres": {}, "catalog-mariadb": {}}, ["catalog-postgre"], "http://c"
        )
    assert "did you mean 'catalog-postgres'?" in info.value.message
    assert "catalog-mariadb, catalog-postgres" in (info.value.hint or "")
    with pytest.raises(ConnectNotFoundError, match="none yet"):
        require_connectors({}, ["x"], "http://c")


# -- snapshot scoping -----------------------------------------------------------------------


class NoClient:
    base_url = "http://connect.test"


def test_snapshot_of_a_table_the_connector_does_not_capture_names_the_captured_ones() -> None:
    item = rendered("a", extra="signal_table: sig_a\n")
    with pytest.raises(ConfigError) as info:
        snapshot_tables(NoClient(), SETTINGS, "a", ["orders"], live=live(item))  # type: ignore[arg-type]
    assert "does not capture public.orders" in info.value.message
    assert "public.products" in info.value.message
    assert "sig_a" not in info.value.message  # its own signal table is not a captured table


def test_snapshot_is_refused_while_another_connector_reads_the_same_signal_table() -> None:
    a, b = rendered("a"), rendered("b")
    with pytest.raises(ConfigError) as info:
        snapshot_tables(NoClient(), SETTINGS, "a", ["products"], live=live(a, b))  # type: ignore[arg-type]
    assert "'b'" in info.value.message
    assert "public.debezium_signal" in info.value.message
    assert "signal_table:" in (info.value.hint or "")


# -- a secret the worker cannot resolve -----------------------------------------------------


class FakeValidator:
    """Connect's validate endpoint as a worker without SEAM_CDC_PASSWORD answers it."""

    base_url = "http://connect.test"

    def __init__(self, worker_env: dict[str, str]) -> None:
        self.worker_env = worker_env
        self.calls: list[dict[str, str]] = []

    def validate(self, plugin: str, config: dict[str, str]) -> dict[str, Any]:
        self.calls.append(config)
        if config.get("name") == "seam-env-probe":
            ref = config["topic.prefix"]
            var = ref[len("${env:") : -1]
            value = self.worker_env.get(var, ref)  # EnvVarConfigProvider keeps a missing one
            errors = [f"{value} has invalid format"] if not value.isalnum() else []
            return {"configs": [{"value": {"name": "topic.prefix", "errors": errors}}]}
        return {
            "error_count": 1,
            "configs": [
                {
                    "value": {
                        "name": "database.user",
                        "errors": ['FATAL: password authentication failed for user "seam_cdc"'],
                    }
                }
            ],
        }


def test_missing_env_var_on_the_worker_is_named_with_the_fix() -> None:
    item = rendered("a")
    assert env_references(item.config) == {"SEAM_CDC_PASSWORD": ["database.password"]}
    fake = FakeValidator(worker_env={})
    with pytest.raises(ValidationFailedError) as info:
        validate_configs(fake, [item])  # type: ignore[arg-type]
    assert "could not resolve ${env:SEAM_CDC_PASSWORD} (a database.password)" in info.value.message
    assert "missing from the Connect worker's environment" in info.value.message
    assert "password authentication failed" in info.value.message
    assert "SEAM_CDC_PASSWORD set" in (info.value.hint or "")


def test_worker_with_the_variable_gets_connects_own_message() -> None:
    fake = FakeValidator(worker_env={"SEAM_CDC_PASSWORD": "wr0ng!pass"})
    with pytest.raises(ValidationFailedError) as info:
        validate_configs(fake, [rendered("a")])  # type: ignore[arg-type]
    assert info.value.message.startswith("Kafka Connect rejected the config")
    assert "wr0ng" not in str(info.value)


# -- CLI ------------------------------------------------------------------------------------


def stub_client(*bodies: Any) -> ConnectClient:
    class Session(requests.Session):
        def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
            resp = requests.Response()
            resp.status_code = 200
            resp.url = str(url)
            resp._content = json.dumps(answers.pop(0)).encode()
            return resp

    answers = list(bodies)
    return ConnectClient("http://connect.test", session=Session(), retries=RetryPolicy(attempts=1))


def test_status_exits_1_when_a_task_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    from seam.cli import connectors as cli
    from seam.cli.main import app

    listing = {
        "broken": {
            "info": {"config": {"connector.class": "io.example.Source", "seam.managed": "true"}},
            "status": {
                "connector": {"state": "RUNNING", "worker_id": "w:1"},
                "tasks": [
                    {
                        "id": 0,
                        "state": "FAILED",
                        "worker_id": "w:1",
                        "trace": "org.example.BoomException: it broke",
                    }
                ],
            },
        }
    }
    monkeypatch.setattr(
        cli, "_client", lambda ctx, **kw: stub_client(listing, {"broken": {"topics": []}})
    )
    result = CliRunner().invoke(app, ["connectors", "status"])
    assert result.exit_code == 1, result.output
    assert "broken: FAILED: task 0 on w:1: it broke" in result.output
    assert "restart --failed broken" in result.output
    monkeypatch.setattr(
        cli, "_client", lambda ctx, **kw: stub_client(listing, {"broken": {"topics": []}})
    )
    as_json = CliRunner().invoke(app, ["connectors", "status", "-o", "json"])
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)[0]["failures"]


def test_offsets_show_prints_a_table_not_a_dict(monkeypatch: pytest.MonkeyPatch) -> None:
    from seam.cli import connectors as cli
    from seam.cli.main import app

    offsets = {"offsets": [{"partition": {"server": "shop"}, "offset": {"lsn": 123, "txId": 7}}]}
    monkeypatch.setattr(cli, "_client", lambda ctx, **kw: stub_client({"c": {}}, offsets))
    result = CliRunner().invoke(app, ["connectors", "offsets", "show", "c"])
    assert result.exit_code == 0, result.output
    assert "{" not in result.output
    assert "server=shop" in result.output
    assert next(line.split() for line in result.output.splitlines() if "lsn" in line)[-1] == "123"


def test_a_prompt_without_a_terminal_names_yes(tmp_path: Path) -> None:
    from seam.cli.main import app

    result = CliRunner().invoke(app, ["--stack-dir", str(tmp_path), "stack", "down", "--wipe"])
    assert isinstance(result.exception, SeamError)
    assert "stdin is not a terminal" in result.exception.message
    assert result.exception.hint == "pass --yes to confirm without a prompt"
    assert tmp_path.exists()


def test_stack_logs_rejects_negative_lines(tmp_path: Path) -> None:
    from seam.cli.main import app

    result = CliRunner().invoke(app, ["--stack-dir", str(tmp_path), "stack", "logs", "-n", "-1"])
    assert isinstance(result.exception, StackError)
    assert "--lines must be 0 or more, got -1" in result.exception.message

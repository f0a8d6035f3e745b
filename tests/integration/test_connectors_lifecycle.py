"""Connectors against the real stack: apply, snapshot events, plan no-op, diff, prune,
offsets reset, ad-hoc snapshot, and clear failures that apply nothing.

Each module run creates its own PostgreSQL database, CDC role, tables and publication
(with unique names), and deletes every connector, slot, database and role it made.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from seam.connectors.client import ConnectClient, RetryPolicy
from seam.connectors.errors import ConnectNotFoundError, ConnectUnreachableError
from seam.connectors.operate import reset_offsets, snapshot_tables, statuses
from seam.connectors.plan import ValidationFailedError, apply_plan, make_plan, wait_running
from seam.connectors.render import SPEED_DEFAULTS, RenderedConnector, render
from seam.connectors.spec import parse_specs
from seam.errors import ConfigError
from seam.kafka_config import client_config
from seam.settings import Settings

pytestmark = pytest.mark.integration

ROWS = 3


@dataclass
class SourceDb:
    name: str
    admin_url: str
    user: str
    password_file: Path


def _admin(stack: Settings) -> str:
    return stack.database_url("postgres")


@pytest.fixture(scope="module")
def source_db(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SourceDb]:
    """A private database prepared for CDC by hand, the way a DBA might have done it."""
    from sqlalchemy import text

    from seam.connectors.engine import connect, create_database, drop_database, with_database

    suffix = uuid.uuid4().hex[:8]
    name = f"seam_ct_{suffix}"
    user = f"seam_ct_{suffix}"
    password = secrets.token_hex(12)
    url = with_database(_admin(stack), name)
    create_database(url)
    secret_dir = tmp_path_factory.mktemp("secrets")
    secret_dir.chmod(0o755)
    password_file = secret_dir / "cdc.properties"
    password_file.write_text(f"password={password}\n")
    with connect(url, isolation_level="AUTOCOMMIT") as conn:
        for statement in (
            f"CREATE ROLE {user} LOGIN REPLICATION PASSWORD '{password}'",
            "CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2))",
            "CREATE TABLE categories (id int PRIMARY KEY, name text NOT NULL)",
            "CREATE TABLE seam_heartbeat (id int PRIMARY KEY, beat_at timestamptz NOT NULL DEFAULT now())",
            "CREATE TABLE debezium_signal (id varchar(42) PRIMARY KEY, type varchar(32) NOT NULL, data text)",
            "ALTER TABLE products REPLICA IDENTITY FULL",
            "ALTER TABLE categories REPLICA IDENTITY FULL",
            f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {user}",
            f"GRANT INSERT, UPDATE ON seam_heartbeat, debezium_signal TO {user}",
            "CREATE PUBLICATION seam_ct_pub FOR TABLE products, categories, seam_heartbeat, debezium_signal",
        ):
            conn.execute(text(statement))
        for i in range(1, ROWS + 1):
            conn.execute(
                text("INSERT INTO products VALUES (:i, :n, :p)"),
                {"i": i, "n": f"product {i}", "p": f"{i}.50"},
            )
        conn.execute(text("INSERT INTO categories VALUES (1, 'tools')"))
    try:
        yield SourceDb(name, url, user, password_file)
    finally:
        client = ConnectClient.from_settings(stack)
        for connector, entry in client.list_connectors(expand=True).items():
            config = (entry.get("info") or {}).get("config") or {}
            if config.get("database.dbname") == name:
                client.delete(connector)
        _drop_slots(url, name)
        drop_database(url)
        with connect(_admin(stack), isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"DROP ROLE IF EXISTS {user}"))


def _drop_slots(url: str, dbname: str) -> None:
    from seam.connectors.database import drop_slot, list_slots

    for slot in list_slots(url):
        if slot.database == dbname:
            drop_slot(url, slot.name, wait_s=20)


@pytest.fixture
def client(stack: Settings) -> ConnectClient:
    return ConnectClient.from_settings(stack)


SpecFactory = Callable[..., RenderedConnector]
# The YAML of each spec `make_spec` made, by connector name, for tests of the CLI.
SPEC_TEXTS: dict[str, str] = {}


@pytest.fixture
def make_spec(stack: Settings, source_db: SourceDb, client: ConnectClient) -> Iterator[SpecFactory]:
    """Render a spec for a uniquely named connector on the test database; delete it after.

    Connectors get no signal table unless one is named: two connectors of one database must
    not read the same one (plan refuses), and the tests run several at a time.
    """
    made: list[str] = []

    def make(
        overrides: dict[str, str] | None = None,
        name: str | None = None,
        autocreate: str | None = "disabled",
        signal_table: str | None = None,
        password: str | None = None,
    ) -> RenderedConnector:
        name = name or f"seam-ct-{uuid.uuid4().hex[:8]}"
        # The publication belongs to the admin, as after `seam connectors prepare`.
        merged = {"publication.autocreate.mode": autocreate} if autocreate else {}
        merged.update(overrides or {})
        text = (
            f"name: {name}\n"
            "flavour: postgres\n"
            f"database: {source_db.admin_url}\n"
            f"user: {source_db.user}\n"
            f"password: {password or f'{{file: {source_db.password_file}}}'}\n"
            "tables: [products]\n"
            f"topic_prefix: {name.replace('-', '_')}\n"
            "publication: seam_ct_pub\n"
            "heartbeat_interval_ms: 2000\n"
            f"signal_table: {signal_table or 'null'}\n"
        )
        if merged:
            text += "overrides:\n" + "".join(f"  {k}: {v}\n" for k, v in merged.items())
        (spec,) = parse_specs(text, f"{name}.yaml")
        made.append(name)
        SPEC_TEXTS[name] = text
        return render(spec, stack)

    yield make
    for name in made:
        with contextlib.suppress(ConnectNotFoundError):
            client.delete(name)
    _drop_slots(source_db.admin_url, source_db.name)


def consume(stack: Settings, topic: str, want: int, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Values of the first `want` records on `topic` (from the beginning, a fresh group)."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        client_config(
            stack.kafka_bootstrap_servers,
            {
                "group.id": f"seam-ct-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            },
        )
    )
    consumer.subscribe([topic])
    values: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < want and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            value = message.value()
            if value is not None:  # tombstones carry no value
                values.append(json.loads(value))
    finally:
        consumer.close()
    return values


def topic_of(item: RenderedConnector, table: str = "products") -> str:
    return f"{item.config['topic.prefix']}.public.{table}"


def test_apply_snapshot_reapply_diff_and_reset(
    stack: Settings, client: ConnectClient, make_spec: SpecFactory
) -> None:
    item = make_spec()
    plan = make_plan([item], client.list_connectors())
    assert [a.kind for a in plan.actions if a.name == item.name] == ["create"]

    result = apply_plan(plan, client, stack, wait=True, wait_timeout=90)
    assert result.applied == [item.name]
    assert result.states[item.name] == "RUNNING"
    assert all(r.ok for r in result.preflight)

    events = consume(stack, topic_of(item), ROWS)
    assert len(events) == ROWS
    assert {e["op"] for e in events} == {"r"}
    assert sorted(e["after"]["id"] for e in events) == list(range(1, ROWS + 1))
    assert events[0]["after"]["price"] == "1.50"  # decimal.handling.mode=string

    # Re-applying the same spec changes nothing.
    again = make_plan([item], client.list_connectors())
    assert [a.kind for a in again.actions if a.name == item.name] == ["unchanged"]
    assert apply_plan(again, client, stack).applied == []

    # A changed spec shows a field-level diff and applies.
    changed = make_spec({"max.batch.size": "1024"}, name=item.name)
    diff_plan = make_plan([changed], client.list_connectors())
    (action,) = [a for a in diff_plan.actions if a.name == item.name]
    assert action.kind == "update"
    rendered_default = SPEED_DEFAULTS["max.batch.size"]  # an override replaces seam's default
    assert [(c.key, c.old, c.new) for c in action.changes] == [
        ("max.batch.size", rendered_default, "1024")
    ]
    apply_plan(diff_plan, client, stack, wait=True, wait_timeout=90)
    assert client.get_config(item.name)["max.batch.size"] == "1024"
    assert not make_plan([changed], client.list_connectors()).has_changes

    # Status lists it with its topics. (Connect restarts the connector after the config
    # change; it may be UNASSIGNED for a moment after apply saw the old instance running.)
    wait_running(client, item.name, timeout=90)
    (status,) = statuses(client, [item.name])
    assert status.state == "RUNNING"
    assert status.managed
    assert topic_of(item) in status.topics

    # stop + offsets reset + resume => a new snapshot of every row.
    reset = reset_offsets(client, stack, item.name, drop_slot=True, resume=True)
    assert reset.previous_offsets
    assert reset.slot_dropped
    events = consume(stack, topic_of(item), 2 * ROWS)
    assert len(events) == 2 * ROWS
    assert [e["source"]["snapshot"] for e in events].count("first") == 2


def test_adhoc_snapshot_reemits_table(
    stack: Settings, client: ConnectClient, make_spec: SpecFactory
) -> None:
    item = make_spec(signal_table="debezium_signal")
    apply_plan(make_plan([item], client.list_connectors()), client, stack, wait=True)
    assert len(consume(stack, topic_of(item), ROWS)) == ROWS
    result = snapshot_tables(client, stack, item.name, ["products"])
    assert result["data-collections"] == ["public.products"]
    events = consume(stack, topic_of(item), 2 * ROWS)
    incremental = [e for e in events if e["source"].get("snapshot") == "incremental"]
    assert sorted(e["after"]["id"] for e in incremental) == list(range(1, ROWS + 1))


def test_prune_removes_orphan_and_its_slot(
    stack: Settings, client: ConnectClient, make_spec: SpecFactory, source_db: SourceDb
) -> None:
    from seam.connectors.database import list_slots

    keep, orphan = make_spec(), make_spec()
    apply_plan(make_plan([keep, orphan], client.list_connectors()), client, stack, wait=True)
    without = make_plan([keep], client.list_connectors())
    assert ("orphan", orphan.name) in [(a.kind, a.name) for a in without.actions]
    assert not without.has_changes or all(a.name != orphan.name for a in without.pending)

    pruning = make_plan([keep], client.list_connectors(), prune=True)
    assert ("delete", orphan.name) in [(a.kind, a.name) for a in pruning.pending]
    result = apply_plan(pruning, client, stack)
    assert result.deleted == [orphan.name]
    assert result.notes == []
    assert orphan.name not in client.list_connectors(expand=False)
    assert keep.name in client.list_connectors(expand=False)
    slots = {s.name for s in list_slots(source_db.admin_url)}
    assert orphan.config["slot.name"] not in slots
    assert keep.config["slot.name"] in slots


def test_cli_plan_exit_codes_and_masked_render(
    stack: Settings, client: ConnectClient, make_spec: SpecFactory, tmp_path: Path
) -> None:
    from seam.cli.main import app

    item = make_spec()
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(SPEC_TEXTS[item.name])
    runner = CliRunner()
    rendered = runner.invoke(app, ["connectors", "render", str(spec_file)])
    assert rendered.exit_code == 0
    assert f"${{file:{item.spec.password.name}:password}}" in rendered.output
    assert "seam-local" not in rendered.output  # the admin URL's password never shows
    pending = runner.invoke(app, ["connectors", "plan", "--exit-code", str(spec_file)])
    assert pending.exit_code == 2, pending.output
    applied = runner.invoke(app, ["connectors", "apply", "--wait", str(spec_file)])
    assert applied.exit_code == 0, applied.output
    assert f"applied {item.name}: RUNNING" in applied.output
    clean = runner.invoke(app, ["connectors", "plan", "--exit-code", str(spec_file)])
    assert clean.exit_code == 0, clean.output
    status = runner.invoke(app, ["connectors", "status", "-o", "json", item.name])
    assert json.loads(status.output)[0]["state"] == "RUNNING"


def test_unreachable_connect_is_a_clear_error(make_spec: SpecFactory) -> None:
    dead = ConnectClient(
        "http://127.0.0.1:1", retries=RetryPolicy(attempts=2, backoff=0.01), timeout=2
    )
    with pytest.raises(ConnectUnreachableError) as info:
        dead.list_connectors()
    assert "cannot reach Kafka Connect at http://127.0.0.1:1" in info.value.message
    assert "connect.url" in (info.value.hint or "")


def test_wrong_plugin_class_applies_nothing(
    stack: Settings, client: ConnectClient, make_spec: SpecFactory
) -> None:
    good = make_spec()
    bad = make_spec({"connector.class": "io.example.NoSuchConnector"})
    plan = make_plan([good, bad], client.list_connectors())
    with pytest.raises(ConfigError, match=r"io\.example\.NoSuchConnector is not installed"):
        apply_plan(plan, client, stack)
    names = client.list_connectors(expand=False)
    assert good.name not in names
    assert bad.name not in names


def test_rejected_config_applies_nothing(
    stack: Settings, client: ConnectClient, make_spec: SpecFactory, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong.properties"
    wrong.write_text("password=not-the-password\n")
    tmp_path.chmod(0o755)
    good = make_spec()
    bad = make_spec({"database.password": f"{{file: {wrong}}}"})
    plan = make_plan([good, bad], client.list_connectors())
    with pytest.raises(ValidationFailedError) as info:
        apply_plan(plan, client, stack, preflight=False)
    assert bad.name in info.value.message
    assert "password authentication failed" in info.value.message
    names = client.list_connectors(expand=False)
    assert good.name not in names
    assert bad.name not in names


def test_preflight_flags_publication_rewrite_and_apply_refuses(
    stack: Settings, client: ConnectClient, make_spec: SpecFactory
) -> None:
    from seam.connectors.readiness.model import PreflightError
    from seam.connectors.readiness.preflight import run_preflight

    item = make_spec(autocreate=None)  # filtered, on a publication owned by the admin
    report = run_preflight(item, stack)
    (failed,) = report.errors
    assert failed.name == "publication ownership"
    assert "public.categories" in failed.detail
    assert "publication.autocreate.mode: disabled" in (failed.fix or "")
    with pytest.raises(PreflightError, match="publication ownership"):
        apply_plan(make_plan([item], client.list_connectors()), client, stack)
    assert item.name not in client.list_connectors(expand=False)


# -- operations that must not mislead ------------------------------------------------------


def _wait_slot(url: str, slot: str, active: bool, timeout: float = 60.0) -> None:
    from seam.connectors.database import list_slots

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = {s.name: s for s in list_slots(url)}
        if slot in found and found[slot].active == active:
            return
        time.sleep(0.5)
    raise AssertionError(f"slot {slot} did not become {'active' if active else 'inactive'}")


def _write_wal(url: str, rows: int = 3000) -> None:
    """Changes on a table no connector here captures: the WAL grows, the topics do not."""
    from sqlalchemy import text

    from seam.connectors.engine import connect

    with connect(url, isolation_level="AUTOCOMMIT") as conn:
        conn.execute(
            text(
                "INSERT INTO categories SELECT g, repeat('x', 200) FROM generate_series(1000, 999 + :n) g "
                "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name || 'y'"
            ),
            {"n": rows},
        )


def test_stopped_connectors_slot_is_flagged_and_its_growth_seen(
    stack: Settings,
    client: ConnectClient,
    make_spec: SpecFactory,
    source_db: SourceDb,
    tmp_path: Path,
) -> None:
    from seam.cli.main import app
    from seam.connectors.health import slots_report
    from seam.connectors.operate import stop_and_wait

    item = make_spec()
    slot = item.config["slot.name"]
    apply_plan(make_plan([item], client.list_connectors()), client, stack, wait=True)
    _wait_slot(source_db.admin_url, slot, active=True)
    stop_and_wait(client, item.name)
    _wait_slot(source_db.admin_url, slot, active=False)

    readings = tmp_path / "readings.json"
    (first,) = [
        r
        for r in slots_report(
            stack, source_db.admin_url, client.list_connectors(), readings_path=readings
        )
        if r.slot.name == slot
    ]
    assert first.warnings[0].startswith(f"inactive (its connector '{item.name}' is STOPPED)")
    assert first.growth_bytes is None  # no reading before this one

    _write_wal(source_db.admin_url)
    (second,) = [
        r
        for r in slots_report(
            stack, source_db.admin_url, client.list_connectors(), readings_path=readings
        )
        if r.slot.name == slot
    ]
    assert second.growth_bytes is not None
    assert second.growth_bytes > 100_000
    assert any(w.startswith("growing: +") for w in second.warnings), second.warnings

    # status names the slot of the STOPPED connector and what it retains.
    (status,) = statuses(client, [item.name], settings=stack)
    assert status.state == "STOPPED"
    assert status.health is not None
    assert status.health.slot is not None
    assert status.health.slot["slot"] == slot
    assert status.health.slot["retained_bytes"] >= second.slot.retained_bytes
    assert any(
        n.startswith(f"STOPPED: its slot '{slot}' (inactive) retains") for n in status.health.notes
    )

    runner = CliRunner()
    shown = runner.invoke(
        app, ["connectors", "slots", "-d", source_db.admin_url, "--sample", "0.5"]
    )
    assert shown.exit_code == 0, shown.output
    assert (
        f"warning: slot {slot}: inactive (its connector '{item.name}' is STOPPED)" in shown.output
    )
    text_status = runner.invoke(app, ["connectors", "status", item.name])
    assert text_status.exit_code == 0, text_status.output
    assert f"{item.name}: STOPPED: its slot '{slot}' (inactive) retains" in text_status.output


def test_status_says_retrying_while_debezium_waits_to_reconnect(
    stack: Settings, client: ConnectClient, make_spec: SpecFactory, source_db: SourceDb
) -> None:
    from sqlalchemy import text

    from seam.connectors.engine import connect

    # A long restart wait keeps Debezium in its backoff long enough to look at it.
    item = make_spec({"retriable.restart.connector.wait.ms": "40000"})
    apply_plan(make_plan([item], client.list_connectors()), client, stack, wait=True)
    _wait_slot(source_db.admin_url, item.config["slot.name"], active=True)
    (before,) = statuses(client, [item.name], settings=stack)
    assert before.health is not None
    assert not before.health.retrying

    # Cut every connection of the connector's user, as a database restart would.
    with connect(source_db.admin_url, isolation_level="AUTOCOMMIT") as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE usename = :u AND datname = :d"
            ),
            {"u": source_db.user, "d": source_db.name},
        )
    deadline = time.monotonic() + 30
    while True:
        (status,) = statuses(client, [item.name], settings=stack)
        if status.health is not None and status.health.retrying:
            break
        assert time.monotonic() < deadline, status.health
        time.sleep(0.5)
    assert status.state == "RUNNING"  # Connect itself shows nothing wrong
    assert not status.failures
    assert any("Debezium is retrying after a lost connection" in n for n in status.health.notes)


def test_each_connector_snapshots_through_its_own_signal_table(
    stack: Settings, client: ConnectClient, make_spec: SpecFactory, source_db: SourceDb
) -> None:
    from seam.connectors.readiness import prepare
    from seam.connectors.readiness.preflight import run_preflight

    suffix = uuid.uuid4().hex[:6]
    a = make_spec(signal_table=f"seam_signal_a_{suffix}")
    b = make_spec(signal_table=f"seam_signal_b_{suffix}")
    # The tables do not exist yet: preflight says so, prepare makes them, grants them and
    # puts them in the publication (one transaction), and preflight then passes.
    assert not run_preflight(a, stack).ok
    for item in (a, b):
        fixed = prepare.apply(item, stack)
        assert fixed.report.ok, fixed.report.summary()
        assert any(c.fixed and c.name.startswith("table ") for c in fixed.report.checks)
        assert run_preflight(item, stack).ok
    apply_plan(make_plan([a, b], client.list_connectors()), client, stack, wait=True)
    assert len(consume(stack, topic_of(a), ROWS)) == ROWS
    assert len(consume(stack, topic_of(b), ROWS)) == ROWS

    snapshot_tables(client, stack, a.name, ["products"])
    events = consume(stack, topic_of(a), 2 * ROWS)
    assert [e["source"].get("snapshot") for e in events].count("incremental") == ROWS
    # b reads another signal table: it did not act on a's signal.
    time.sleep(5)
    others = consume(stack, topic_of(b), 2 * ROWS, timeout=5)
    assert [e["source"].get("snapshot") for e in others].count("incremental") == 0

    # A table the connector does not capture is refused, naming the captured ones.
    with pytest.raises(
        ConfigError, match=r"does not capture public\.categories; it captures public\.products"
    ):
        snapshot_tables(client, stack, a.name, ["categories"])
    # A third connector on a's signal table is refused by plan, against the live cluster.
    c = make_spec(signal_table=f"seam_signal_a_{suffix}")
    with pytest.raises(
        ConfigError,
        match=rf"signal\.data\.collection=public\.seam_signal_a_{suffix}, already used by connector '{a.name}'",
    ):
        make_plan([c], client.list_connectors())


def test_plan_and_preflight_catch_a_live_connectors_slot_and_prefix(
    stack: Settings, client: ConnectClient, make_spec: SpecFactory, tmp_path: Path
) -> None:
    from seam.cli.main import app

    first = make_spec()
    apply_plan(make_plan([first], client.list_connectors()), client, stack, wait=True)
    second = make_spec(
        {"slot.name": first.config["slot.name"], "topic.prefix": first.config["topic.prefix"]}
    )
    with pytest.raises(ConfigError) as info:
        make_plan([second], client.list_connectors())
    message = info.value.message
    assert (
        f"uses topic.prefix={first.config['topic.prefix']}, already used by connector '{first.name}' on the cluster"
        in message
    )
    assert (
        f"uses slot.name={first.config['slot.name']}, already used by connector '{first.name}'"
        in message
    )
    assert "slot:" in (info.value.hint or "")
    assert "topic_prefix:" in (info.value.hint or "")

    spec_file = tmp_path / "second.yaml"
    spec_file.write_text(SPEC_TEXTS[second.name])
    result = CliRunner().invoke(app, ["connectors", "preflight", "-o", "json", str(spec_file)])
    assert result.exit_code == 1, result.output
    (report,) = json.loads(result.stdout)
    (check,) = [c for c in report["checks"] if c["check"].startswith("unique slot")]
    assert not check["ok"]
    assert first.name in check["detail"]


def test_apply_names_the_env_var_the_worker_lacks(
    stack: Settings,
    client: ConnectClient,
    make_spec: SpecFactory,
    source_db: SourceDb,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from seam.connectors.database import resolve_reference

    var = f"SEAM_CT_PW_{uuid.uuid4().hex[:8].upper()}"
    # Set here (so the preflight could log in), unknown to the Connect worker.
    monkeypatch.setenv(
        var, resolve_reference(f"${{file:{source_db.password_file}:password}}", "test")
    )
    item = make_spec(password=f"{{env: {var}}}")
    with pytest.raises(ValidationFailedError) as info:
        apply_plan(make_plan([item], client.list_connectors()), client, stack, dry_run=True)
    assert f"could not resolve ${{env:{var}}}" in info.value.message
    assert "missing from the Connect worker's environment" in info.value.message
    assert f"{var} set" in (info.value.hint or "")
    assert item.name not in client.list_connectors(expand=False)


def test_unknown_connector_is_one_line_naming_the_closest(
    client: ConnectClient, make_spec: SpecFactory, stack: Settings
) -> None:
    from seam.cli.main import app

    item = make_spec()
    apply_plan(make_plan([item], client.list_connectors()), client, stack, wait=True)
    result = CliRunner().invoke(app, ["connectors", "pause", item.name[:-1]])
    assert isinstance(result.exception, ConnectNotFoundError)
    assert f"did you mean '{item.name}'?" in result.exception.message


def test_unreachable_database_is_said_not_guessed(stack: Settings) -> None:
    """seam may run where a connector's database cannot be reached: say so, do not call the
    connector retrying."""
    from seam.connectors.health import connector_health
    from seam.settings import load_settings

    config = {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "database.hostname": "127.0.0.1",
        "database.port": "1",
        "database.dbname": "nowhere",
        "database.user": "nobody",
        "database.password": "",
        "slot.name": "s",
    }
    health = connector_health("far", config, "RUNNING", load_settings(env={}))
    assert health.database_reachable is False
    assert not health.retrying
    assert health.notes[0].startswith("cannot reach its database from here")

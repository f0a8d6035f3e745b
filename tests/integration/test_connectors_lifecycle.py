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
    """A private database prepared for CDC the way `seam legacy prepare-cdc` does it."""
    from sqlalchemy import text

    from seam.legacy_db.engine import connect, create_database, drop_database, with_database

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


@pytest.fixture
def make_spec(stack: Settings, source_db: SourceDb, client: ConnectClient) -> Iterator[SpecFactory]:
    """Render a spec for a uniquely named connector on the test database; delete it after."""
    made: list[str] = []

    def make(
        overrides: dict[str, str] | None = None,
        name: str | None = None,
        autocreate: str | None = "disabled",
    ) -> RenderedConnector:
        name = name or f"seam-ct-{uuid.uuid4().hex[:8]}"
        # The publication belongs to the admin, as after `seam legacy prepare-cdc`.
        merged = {"publication.autocreate.mode": autocreate} if autocreate else {}
        merged.update(overrides or {})
        text = (
            f"name: {name}\n"
            "flavour: postgres\n"
            f"database: {source_db.admin_url}\n"
            f"user: {source_db.user}\n"
            f"password: {{file: {source_db.password_file}}}\n"
            "tables: [products]\n"
            f"topic_prefix: {name.replace('-', '_')}\n"
            "publication: seam_ct_pub\n"
            "heartbeat_interval_ms: 2000\n"
        )
        if merged:
            text += "overrides:\n" + "".join(f"  {k}: {v}\n" for k, v in merged.items())
        (spec,) = parse_specs(text, f"{name}.yaml")
        made.append(name)
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
        {
            "bootstrap.servers": stack.kafka_bootstrap_servers,
            "group.id": f"seam-ct-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
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
    item = make_spec()
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
    spec_file.write_text(
        "\n".join(
            f"{k}: {v}"
            for k, v in {
                "name": item.name,
                "flavour": "postgres",
                "database": item.spec.database,
                "user": item.spec.user,
                "password": f"{{file: {item.spec.password.name}}}",
                "tables": "[products]",
                "topic_prefix": item.config["topic.prefix"],
                "publication": "seam_ct_pub",
                "heartbeat_interval_ms": 2000,
                "overrides": "{publication.autocreate.mode: disabled}",
            }.items()
        )
        + "\n"
    )
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
    from seam.connectors.preflight import PreflightError, run_preflight

    item = make_spec(autocreate=None)  # filtered, on a publication owned by the admin
    report = run_preflight(item, stack)
    (failed,) = report.errors
    assert failed.name == "publication ownership"
    assert "public.categories" in failed.detail
    assert "publication.autocreate.mode: disabled" in (failed.fix or "")
    with pytest.raises(PreflightError, match="publication ownership"):
        apply_plan(make_plan([item], client.list_connectors()), client, stack)
    assert item.name not in client.list_connectors(expand=False)

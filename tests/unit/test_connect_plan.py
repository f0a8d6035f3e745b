"""Plan: normalisation, field diffs with masking, managed/orphan detection, clashes (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from seam.connectors.plan import (
    connector_failures,
    diff,
    make_plan,
    normalise,
    summarise_trace,
)
from seam.connectors.render import render
from seam.connectors.spec import parse_specs
from seam.errors import ConfigError
from seam.secrets import MASK
from seam.settings import load_settings

pytestmark = pytest.mark.unit

SETTINGS = load_settings(env={})
SPEC = """\
name: {name}
flavour: {flavour}
database: {database}
tables: [products, categories]
"""


def rendered(name: str = "pg", flavour: str = "postgres", extra: str = "") -> Any:
    database = "postgres" if flavour == "postgres" else "mariadb"
    (spec,) = parse_specs(SPEC.format(name=name, flavour=flavour, database=database) + extra)
    return render(spec, SETTINGS)


def live_entry(config: dict[str, str], state: str = "RUNNING") -> dict[str, Any]:
    return {
        "info": {"name": config.get("name"), "config": config, "tasks": [], "type": "source"},
        "status": {"connector": {"state": state, "worker_id": "w"}, "tasks": []},
    }


def as_connect_returns(config: dict[str, str], name: str) -> dict[str, str]:
    """What GET /connectors?expand=info gives back: the config plus `name`, keys reordered."""
    return {"name": name, **dict(reversed(list(config.items())))}


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("tombstones.on.delete", True, "true"),
        ("tombstones.on.delete", "TRUE", "true"),
        ("tasks.max", 1, "1"),
        ("heartbeat.interval.ms", " 010000 ", "10000"),
        ("table.include.list", "public.b, public.a,public.b", "public.a,public.b"),
        ("transforms", "b,a", "b,a"),  # order of SMTs matters: not a set
        ("x", None, ""),
    ],
)
def test_normalise(key: str, value: Any, expected: str) -> None:
    assert normalise(key, value) == expected


def test_applied_spec_shows_no_diff() -> None:
    item = rendered()
    live = {"pg": live_entry(as_connect_returns(item.config, "pg"))}
    plan = make_plan([item], live)
    assert [a.kind for a in plan.actions] == ["unchanged"]
    assert not plan.has_changes


def test_reordered_table_list_and_typed_values_are_no_diff() -> None:
    item = rendered()
    config = as_connect_returns(item.config, "pg")
    config["table.include.list"] = ",".join(reversed(config["table.include.list"].split(",")))
    config["heartbeat.interval.ms"] = "10000"
    assert diff(item.config, config) == []


def test_changed_spec_shows_field_level_diff() -> None:
    before = rendered()
    after = rendered(
        extra="snapshot_mode: no_data\noverrides:\n  provide.transaction.metadata: true\n"
    )
    live = {"pg": live_entry(as_connect_returns(before.config, "pg"))}
    (action,) = make_plan([after], live).actions
    assert action.kind == "update"
    changes = {c.key: (c.old, c.new) for c in action.changes}
    assert changes == {
        "snapshot.mode": ("initial", "no_data"),
        "provide.transaction.metadata": (None, "true"),
    }


def test_secret_values_are_masked_in_diffs() -> None:
    item = rendered()
    config = as_connect_returns(item.config, "pg")
    config["database.password"] = "hunter2"  # someone set a clear password by hand
    changes = diff(item.config, config)
    assert [(c.key, c.old, c.new) for c in changes] == [
        ("database.password", MASK, "${env:SEAM_CDC_PASSWORD}")
    ]


def test_create_lists_masked_config() -> None:
    (action,) = make_plan([rendered()], {}).actions
    assert action.kind == "create"
    assert all("hunter" not in str(c.new) for c in action.changes)


def test_managed_connector_without_spec_is_orphan_or_delete() -> None:
    other = rendered("old")
    live = {
        "old": live_entry(as_connect_returns(other.config, "old")),
        "unmanaged": live_entry({"name": "unmanaged", "connector.class": "x"}),
    }
    assert [(a.kind, a.name) for a in make_plan([], live).actions] == [("orphan", "old")]
    pruning = make_plan([], live, prune=True)
    assert [(a.kind, a.name) for a in pruning.actions] == [("delete", "old")]
    assert pruning.has_changes
    assert not make_plan([], live).has_changes


def test_server_id_clash_with_another_connector_is_an_error() -> None:
    first = rendered("my-a", "mariadb")
    clash = rendered("my-b", "mariadb", extra=f"server_id: {first.config['database.server.id']}\n")
    with pytest.raises(
        ConfigError, match=r"database.server.id=\d+, already used by connector 'my-a'"
    ):
        make_plan([first, clash], {})
    live = {"my-a": live_entry(as_connect_returns(first.config, "my-a"))}
    with pytest.raises(ConfigError, match="already used"):
        make_plan([clash], live)


def test_slot_clash_is_an_error() -> None:
    a = rendered("a", extra="slot: shared\n")
    b = rendered("b", extra="slot: shared\n")
    with pytest.raises(ConfigError, match=r"slot\.name=shared"):
        make_plan([a, b], {})


TRACE = """\
org.apache.kafka.connect.errors.ConnectException: An exception occurred in the change event producer. This connector will be stopped.
\tat io.debezium.pipeline.ErrorHandler.setProducerThrowable(ErrorHandler.java:67)
\tat java.base/java.lang.Thread.run(Thread.java:840)
Caused by: io.debezium.DebeziumException: Creation of replication slot failed
\tat io.debezium.connector.postgresql.PostgresConnectorTask.start(PostgresConnectorTask.java:140)
\t... 5 more
Caused by: org.postgresql.util.PSQLException: ERROR: logical decoding requires wal_level >= logical
\tat org.postgresql.core.v3.QueryExecutorImpl.receiveErrorResponse(QueryExecutorImpl.java:2725)
"""


def test_trace_becomes_one_paragraph() -> None:
    text = summarise_trace(TRACE)
    assert "\n" not in text
    assert "\tat" not in text
    assert " at io." not in text
    assert text.startswith("An exception occurred in the change event producer.")
    assert "Caused by: Creation of replication slot failed" in text
    assert text.endswith("ERROR: logical decoding requires wal_level >= logical")


def test_connector_failures_names_task_and_worker() -> None:
    status = {
        "connector": {"state": "RUNNING", "worker_id": "w1"},
        "tasks": [{"id": 0, "state": "FAILED", "worker_id": "w1", "trace": TRACE}],
    }
    (line,) = connector_failures(status)
    assert line.startswith("task 0 on w1: ")
    assert "wal_level" in line

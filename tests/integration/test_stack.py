"""The local stack's parts serve real clients, and its life cycle leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pymysql
import pytest
import requests

from seam.errors import StackError
from seam.kafka_config import client_config
from seam.settings import LOCAL_PASSWORD, Settings, load_settings
from seam.stack.kafka import DEBEZIUM_PLUGINS, SINK_PLUGINS
from seam.stack.local import PART_NAMES, LocalStack
from tests.conftest import private_stack_config

pytestmark = pytest.mark.integration


def test_broker_takes_and_serves_records(
    stack: Settings, unique_name: Callable[[str], str]
) -> None:
    from confluent_kafka import Consumer, Producer

    topic = unique_name("stack_smoke")
    producer = Producer(client_config(stack.kafka_bootstrap_servers))
    sent = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(20)]
    for key, value in sent:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0

    consumer = Consumer(
        client_config(
            stack.kafka_bootstrap_servers,
            {
                "group.id": unique_name("g"),
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            },
        )
    )
    consumer.subscribe([topic])
    received = []
    deadline = time.monotonic() + 30
    while len(received) < len(sent) and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is not None and msg.error() is None:
            received.append((msg.key(), msg.value()))
    consumer.close()
    assert received == sent


def test_connect_lists_the_debezium_connectors(stack: Settings) -> None:
    plugins = requests.get(
        f"{stack.connect_url}/connector-plugins", auth=stack.connect_auth(), timeout=10
    ).json()
    classes = {p["class"] for p in plugins}
    wanted = set(DEBEZIUM_PLUGINS)
    # A reused stack's Connect may predate the sink bundle; one this session started has it.
    if os.environ.get("SEAM_TEST_STACK") != "reuse":
        wanted |= set(SINK_PLUGINS)
    assert wanted <= classes
    assert {p["version"] for p in plugins if p["class"] in wanted} == {"3.5.0.Final"}


def test_postgres_has_logical_wal(stack: Settings) -> None:
    import psycopg

    with psycopg.connect(stack.database_url("postgres"), connect_timeout=5) as conn:
        settings = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN ('wal_level', 'max_replication_slots')"
            ).fetchall()
        )
    assert settings["wal_level"] == "logical"
    assert int(settings["max_replication_slots"]) >= 10


def test_mariadb_has_a_row_based_binlog(stack: Settings) -> None:
    port = stack.stack.mariadb_port
    conn = pymysql.connect(
        host="127.0.0.1", port=port, user="root", password=LOCAL_PASSWORD, database="catalog"
    )
    with conn, conn.cursor() as cur:
        cur.execute(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN "
            "('log_bin', 'binlog_format', 'binlog_row_image', 'server_id', 'gtid_strict_mode')"
        )
        variables = dict(cur.fetchall())
    assert variables == {
        "log_bin": "ON",
        "binlog_format": "ROW",
        "binlog_row_image": "FULL",
        "server_id": "1",
        "gtid_strict_mode": "ON",
    }


# -- life cycle, on a second private stack of its own ----------------------------------------


@pytest.fixture(scope="module")
def spare() -> Iterator[LocalStack]:
    root = Path(tempfile.mkdtemp(prefix="seam-spare-", dir="/var/tmp"))
    root.chmod(0o755)
    local = LocalStack(load_settings(config_file=private_stack_config(root), env={}).stack)
    try:
        yield local
    finally:
        local.down(wipe=True)
        root.joinpath("seam.toml").unlink(missing_ok=True)
        root.rmdir()


def _pids(local: LocalStack) -> dict[str, int]:
    return {s.name: s.pid for s in local.status() if s.pid is not None}


def test_up_is_idempotent_and_down_leaves_no_process(spare: LocalStack) -> None:
    assert spare.up() == list(PART_NAMES)
    first = _pids(spare)
    assert set(first) == set(PART_NAMES)
    assert {s.state for s in spare.status()} == {"running"}

    assert spare.up() == []  # everything runs already: nothing new is started
    assert _pids(spare) == first

    assert sorted(spare.down()) == sorted(PART_NAMES)
    for pid in first.values():
        assert not Path(f"/proc/{pid}").exists(), (
            pid,
            first,
            Path(f"/proc/{pid}/stat").read_text()[:80],
        )
    assert _processes_mentioning(spare.settings.dir) == []
    assert {s.state for s in spare.status()} == {"stopped"}
    # The data stays: the next up finds the initialised databases and broker log.
    assert (spare.paths.data("postgres") / "PG_VERSION").exists()


def test_a_part_killed_outright_is_restarted_alone(spare: LocalStack) -> None:
    spare.up()
    before = _pids(spare)
    os.kill(before["mariadb"], signal.SIGKILL)
    time.sleep(0.5)
    assert {s.name: s.state for s in spare.status()}["mariadb"] == "stale"

    assert spare.up() == ["mariadb"]
    after = _pids(spare)
    assert after["mariadb"] != before["mariadb"]
    assert {k: v for k, v in after.items() if k != "mariadb"} == {
        k: v for k, v in before.items() if k != "mariadb"
    }
    spare.down()


def test_a_taken_port_names_the_setting_and_starts_nothing(spare: LocalStack) -> None:
    spare.down()
    with socket.socket() as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", spare.settings.connect_port))
        blocker.listen()
        with pytest.raises(StackError, match=r"port \d+ .* local connect .*in use") as caught:
            spare.up()
    assert "stack.connect_port" in str(caught.value.hint)
    # The parts started before Connect's port was checked were stopped again.
    assert {s.state for s in spare.status()} == {"stopped"}


def test_only_the_named_parts_start_and_stop(spare: LocalStack) -> None:
    spare.down()
    assert spare.up(only=["connect"]) == ["kafka", "connect"]  # Connect brings Kafka
    assert {s.name: s.state for s in spare.status()} == {
        "postgres": "stopped",
        "mariadb": "stopped",
        "kafka": "running",
        "connect": "running",
    }
    assert spare.down(only=["connect"]) == ["connect"]
    assert {s.name: s.state for s in spare.status()}["kafka"] == "running"
    assert spare.down() == ["kafka"]


def _seam(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`seam --config CONFIG ARGS...` in a child process, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "seam.cli.main", "--config", str(config), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_cli_names_an_unknown_part_and_starts_nothing(spare: LocalStack) -> None:
    result = _seam(spare.settings.dir.parent / "seam.toml", "stack", "up", "--only", "kafka,conect")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "no part 'conect'" in result.stderr
    assert {s.state for s in spare.status()} == {"stopped"}


def test_cli_reports_errors_in_one_line_without_a_traceback(tmp_path: Path) -> None:
    config = tmp_path / "seam.toml"
    config.write_text("[stack]\nkafka_prot = 1\n")
    result = _seam(config, "stack", "status")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "unknown key 'kafka_prot' (did you mean 'kafka_port'?)" in result.stderr


def test_status_json_lists_every_part(spare: LocalStack) -> None:
    result = _seam(spare.settings.dir.parent / "seam.toml", "stack", "status", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert [row["name"] for row in json.loads(result.stdout)] == list(PART_NAMES)


def _processes_mentioning(path: Path) -> list[int]:
    """PIDs of processes whose command line names `path`: any part of that stack."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if str(path).encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def test_status_from_an_empty_dir_says_something_else_serves_the_ports(
    stack: Settings, tmp_path: Path
) -> None:
    """Nothing was started from this directory, but the running stack's ports answer: the
    status must not say "stopped"."""
    from dataclasses import replace

    elsewhere = LocalStack(replace(stack.stack, dir=tmp_path / "empty"))
    rows = {r.name: r for r in elsewhere.status()}
    connect = rows["connect"]
    assert connect.state == "foreign"
    assert connect.pid is None
    assert connect.note == (
        "not started from this directory; something serves "
        f"{stack.stack.host}:{stack.stack.connect_port}"
    )
    assert all(r.state == "foreign" for r in rows.values()), rows

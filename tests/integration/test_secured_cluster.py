"""seam on a secured cluster: the streams commands, a transform worker and the readback
through the broker's SASL/SCRAM listener and its TLS listener (client certificate
required), configured the way a user does it (SEAM_KAFKA_* variables, a password file),
and Kafka Connect's REST API behind basic auth.

The session's private stack runs with `secure_listeners` and `connect_basic_auth`
(tests/conftest.py). A reused stack (SEAM_TEST_STACK=reuse) may have neither: there, and
only there, these tests skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from confluent_kafka.admin import AdminClient
from typer.testing import CliRunner

from seam.cli.main import app
from seam.connectors.client import ConnectClient
from seam.connectors.errors import ConnectNotFoundError
from seam.kafka_config import KafkaSettings, client_config
from seam.legacy_db.synthetic import envelope
from seam.settings import LOCAL_PASSWORD, LOCAL_USER, Settings, load_settings
from seam.transforms.readback import read_to_end
from tests.integration import test_transform_worker as worker_tests
from tests.integration.test_transform_worker import Raw, changes, product, send

pytestmark = pytest.mark.integration

raw = worker_tests.raw  # the fixture: synthetic Debezium records on a raw topic of its own

REUSED = os.environ.get("SEAM_TEST_STACK") == "reuse"


def _require(stack: Settings, setting: str) -> None:
    if getattr(stack.stack, setting):
        return
    if REUSED:
        pytest.skip(f"the reused stack runs without stack.{setting} (start it with that setting)")
    pytest.fail(f"the session's private stack must run with stack.{setting} (tests/conftest.py)")


@dataclass(frozen=True)
class Secured:
    """One secured listener of the stack, as seam's settings reach it."""

    name: str
    env: dict[str, str]  # the SEAM_KAFKA_* variables a user sets
    kafka: KafkaSettings  # what load_settings makes of them

    def run(
        self, *args: str, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`seam ARGS` in its own process, as a user runs it."""
        return subprocess.run(
            [sys.executable, "-m", "seam.cli.main", *args],
            env={**os.environ, **self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=180,
        )


def _secured(stack: Settings, name: str, tmp_path: Path) -> Secured:
    s = stack.stack
    if name == "sasl":
        password_file = tmp_path / "kafka-password"
        password_file.write_text(LOCAL_PASSWORD + "\n")
        env = {
            "SEAM_KAFKA_BOOTSTRAP_SERVERS": f"{s.host}:{s.kafka_sasl_port}",
            "SEAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "SEAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "SEAM_KAFKA_SASL_USERNAME": LOCAL_USER,
            "SEAM_KAFKA_SASL_PASSWORD_FILE": str(password_file),
        }
    else:
        env = {
            "SEAM_KAFKA_BOOTSTRAP_SERVERS": f"{s.host}:{s.kafka_ssl_port}",
            "SEAM_KAFKA_SECURITY_PROTOCOL": "SSL",
            "SEAM_KAFKA_SSL_CA_LOCATION": str(s.tls_dir / "ca.pem"),
            "SEAM_KAFKA_SSL_CERTIFICATE_LOCATION": str(s.tls_dir / "client.pem"),
            "SEAM_KAFKA_SSL_KEY_LOCATION": str(s.tls_dir / "client.key"),
            "SEAM_KAFKA_SSL_KEY_PASSWORD": LOCAL_PASSWORD,
        }
    kafka = load_settings(config_file=stack.config_file, env=env).kafka
    return Secured(name, env, kafka)


@pytest.fixture(params=["sasl", "tls"])
def secured(request: pytest.FixtureRequest, stack: Settings, tmp_path: Path) -> Secured:
    _require(stack, "secure_listeners")
    return _secured(stack, str(request.param), tmp_path)


def test_streams_and_readback_through_the_secured_listener(
    secured: Secured,
) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"secured_{secured.name}_{os.urandom(5).hex()}.public.products"
    admin = AdminClient(client_config(secured.kafka))
    admin.create_topics([NewTopic(topic, num_partitions=1)])[topic].result(timeout=30)
    try:
        producer = Producer(client_config(secured.kafka))
        sent = [
            envelope("products", "c", None, product(pid, f"Mug {pid}"), pid) for pid in (1, 2, 3)
        ]
        for key, value in sent:
            producer.produce(topic, value, key)
        assert producer.flush(30) == 0

        runner = CliRunner()
        tail = runner.invoke(
            app,
            ["streams", "tail", topic, "--from", "beginning", "--limit", "3", "-o", "json"],
            env=secured.env,
        )
        assert tail.exit_code == 0, tail.output
        rows = [json.loads(line) for line in tail.output.splitlines() if line.strip()]
        assert len(rows) == 3
        assert LOCAL_PASSWORD not in tail.output

        history = runner.invoke(
            app, ["streams", "history", topic, "2", "-o", "json"], env=secured.env
        )
        assert history.exit_code == 0, history.output
        assert "Mug 2" in history.output
        assert "Mug 3" not in history.output

        records = read_to_end(secured.kafka, topic, timeout=30)
        assert [(r.key, r.value) for r in records] == sent
    finally:
        admin.delete_topics([topic])


def test_a_worker_runs_through_the_secured_listener(secured: Secured, raw: Raw) -> None:
    send(raw, list(changes(raw, 40)))
    done = secured.run(
        "transform", "run", str(raw.pipeline_file), "--instance-id", f"secured-{secured.name}",
        "--until-caught-up", "-o", "json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["events_out"] == 40
    assert summary["balanced"]
    events = [r.json() for r in read_to_end(secured.kafka, raw.spec.history.topic, timeout=30)]
    assert len(events) == 40
    assert {e["event_type"] for e in events} == {"ProductListed"}


def test_refused_credentials_are_one_clear_line(stack: Settings, raw: Raw, tmp_path: Path) -> None:
    _require(stack, "secure_listeners")
    sasl = _secured(stack, "sasl", tmp_path)
    env = {k: v for k, v in sasl.env.items() if k != "SEAM_KAFKA_SASL_PASSWORD_FILE"}
    env["SEAM_KAFKA_SASL_PASSWORD"] = "not-the-password-42"
    wrong = Secured("sasl", env, sasl.kafka)
    refused = wrong.run("streams", "list", "--timeout", "3")
    assert refused.returncode == 1
    assert "refused to authenticate seam" in refused.stderr
    assert "kafka.sasl_password" in refused.stderr  # the fix names the setting
    assert "Traceback" not in refused.stderr
    assert "not-the-password-42" not in refused.stderr + refused.stdout

    # A worker meets the same error before it creates anything, within its broker timeout.
    worker = wrong.run("transform", "run", str(raw.pipeline_file), "--broker-timeout", "3")
    assert worker.returncode == 1
    assert "refused to authenticate seam" in worker.stderr
    assert "Traceback" not in worker.stderr
    assert "not-the-password-42" not in worker.stderr + worker.stdout


def test_a_failed_tls_handshake_is_one_clear_line(stack: Settings, tmp_path: Path) -> None:
    _require(stack, "secure_listeners")
    tls = _secured(stack, "tls", tmp_path)
    # Without its certificate the broker refuses the client; without the CA the client
    # refuses the broker.
    for dropped in (
        (
            "SEAM_KAFKA_SSL_CERTIFICATE_LOCATION",
            "SEAM_KAFKA_SSL_KEY_LOCATION",
            "SEAM_KAFKA_SSL_KEY_PASSWORD",
        ),
        ("SEAM_KAFKA_SSL_CA_LOCATION",),
    ):
        env = {k: v for k, v in tls.env.items() if k not in dropped}
        failed = Secured("tls", env, tls.kafka).run("streams", "list", "--timeout", "3")
        assert failed.returncode == 1, failed.stdout
        assert "the TLS handshake with Kafka" in failed.stderr
        assert "kafka.ssl_ca_location" in failed.stderr
        assert "Traceback" not in failed.stderr


def test_connect_basic_auth(stack: Settings, tmp_path: Path) -> None:
    _require(stack, "connect_basic_auth")
    assert requests.get(f"{stack.connect_url}/connectors", timeout=10).status_code == 401
    # The right credentials (the settings' own): seam's client works.
    assert isinstance(ConnectClient.from_settings(stack).list_connectors(), dict)
    run = Secured("connect", {}, stack.kafka).run
    ok = run("connectors", "status")
    assert ok.returncode == 0, ok.stderr
    wrong = run("connectors", "status", extra_env={"SEAM_CONNECT_PASSWORD": "wrong-secret-77"})
    assert wrong.returncode == 1
    assert "Kafka Connect rejected the credentials (401)" in wrong.stderr
    assert "connect.password" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    assert "wrong-secret-77" not in wrong.stderr + wrong.stdout


def test_mariadb_schema_history_through_the_sasl_listener(
    stack: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The README's overrides for a secured cluster work: a MariaDB connector whose schema
    history producer and consumer reach Kafka through the SASL/SCRAM listener, their JAAS
    config and the database password resolved by the Connect worker from a file."""
    import pymysql

    from seam.connectors.render import render
    from seam.connectors.spec import parse_specs

    _require(stack, "secure_listeners")
    s = stack.stack
    suffix = os.urandom(4).hex()
    name, db, prefix = f"seam-sh-{suffix}", f"seam_sh_{suffix}", f"seam_sh_{suffix}"
    secrets_dir = tmp_path_factory.mktemp("connect-secrets")
    secrets_dir.chmod(0o755)
    secrets_file = secrets_dir / "secrets.properties"
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{LOCAL_USER}" password="{LOCAL_PASSWORD}";'
    )
    secrets_file.write_text(f"password={LOCAL_PASSWORD}\nhistory.jaas={jaas}\n")
    secured = {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.jaas.config": f"{{file: {secrets_file}, key: history.jaas}}",
    }
    overrides = {
        "schema.history.internal.kafka.bootstrap.servers": f"{s.host}:{s.kafka_sasl_port}",
        **{
            f"schema.history.internal.{c}.{k}": v
            for c in ("producer", "consumer")
            for k, v in secured.items()
        },
    }
    spec_text = (
        f"name: {name}\nflavour: mariadb\n"
        f"database: mysql://root@{s.host}:{s.mariadb_port}/{db}\n"
        f"user: root\npassword: {{file: {secrets_file}, key: password}}\n"
        f"tables: [items]\ntopic_prefix: {prefix}\n"
        "overrides:\n" + "".join(f"  {k}: {v}\n" for k, v in overrides.items())
    )
    (spec,) = parse_specs(spec_text, f"{name}.yaml")
    rendered = render(spec, stack)
    assert "seam-local" not in json.dumps(rendered.config)  # references, resolved by Connect
    my = pymysql.connect(
        host=s.host, port=s.mariadb_port, user="root", password=LOCAL_PASSWORD, autocommit=True
    )
    client = ConnectClient.from_settings(stack)
    sasl = _secured(stack, "sasl", tmp_path_factory.mktemp("sasl"))
    try:
        with my.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.items (id int PRIMARY KEY, name varchar(20))")
            cur.execute(f"INSERT INTO {db}.items VALUES (1, 'a')")
        client.put_config(name, rendered.config)
        deadline = time.monotonic() + 120
        records: list[object] = []
        while time.monotonic() < deadline and not records:
            try:
                status = client.status(name)
            except ConnectNotFoundError:  # created, its status not written yet
                time.sleep(0.5)
                continue
            states = [status["connector"]["state"], *(t["state"] for t in status["tasks"])]
            assert "FAILED" not in states, json.dumps(status)[:2000]
            topics = set(AdminClient(client_config(sasl.kafka)).list_topics(timeout=10).topics)
            if f"{prefix}.{db}.items" in topics:
                records = read_to_end(sasl.kafka, f"{prefix}.{db}.items", timeout=30)
            else:
                time.sleep(1)
        assert len(records) == 1
        history = read_to_end(sasl.kafka, rendered.config["schema.history.internal.kafka.topic"])
        assert any(b"CREATE TABLE" in (r.value or b"") for r in history)
    finally:
        with contextlib.suppress(Exception):
            client.delete(name)
        with my.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
        my.close()
        admin = AdminClient(client_config(stack.kafka))
        doomed = [t for t in admin.list_topics(timeout=10).topics if prefix in t or name in t]
        if doomed:
            admin.delete_topics(doomed)

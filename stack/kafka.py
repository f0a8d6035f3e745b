"""The Kafka broker (KRaft, single node) and the Kafka Connect worker (distributed mode)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

from seam.errors import StackError
from seam.kafka_config import KafkaSettings
from seam.settings import LOCAL_PASSWORD, LOCAL_USER, StackSettings
from seam.stack import process
from seam.stack.jars import JarLayout
from seam.stack.part import Part, StackPaths, port_open
from seam.stack.tls import TlsFiles, ensure_tls

DEBEZIUM_PLUGINS = (
    "io.debezium.connector.postgresql.PostgresConnector",
    "io.debezium.connector.mysql.MySqlConnector",
    "io.debezium.connector.mariadb.MariaDbConnector",
)
# On plugin.path too, but not what "ready" waits for: a worker started before seam had the
# sink stays usable for sources (a sink's apply names the missing plugin and the restart).
SINK_PLUGINS = ("io.debezium.connector.jdbc.JdbcSinkConnector",)
CONNECT_GROUP = "seam-connect"
# The CDC user's password reaches connectors through Connect's EnvVarConfigProvider, so it is
# in the worker's environment and never in a connector's stored config.
CDC_PASSWORD_ENV = "SEAM_CDC_PASSWORD"
LOCAL_CDC_PASSWORD = "seam-cdc-local"
# Likewise the password of the user sink connectors write as (connectors/spec.py, the same).
SINK_PASSWORD_ENV = "SEAM_SINK_PASSWORD"
LOCAL_SINK_PASSWORD = "seam-sink-local"
# The secure listeners' SCRAM mechanisms; the user LOCAL_USER gets a credential for each.
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
_SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
BASIC_AUTH_EXTENSION = (
    "org.apache.kafka.connect.rest.basic.auth.extension.BasicAuthSecurityRestExtension"
)


def _write_properties(path: Path, values: dict[str, str | int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))


class _JvmPart(Part):
    # Short pauses for the broker: every client's request waits out a pause.
    gc_options: tuple[str, ...] = ("-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20")

    def __init__(
        self, settings: StackSettings, paths: StackPaths, jars: JarLayout, java: Path
    ) -> None:
        super().__init__(settings, paths)
        self.jars = jars
        self.java = java

    def _java_args(self, heap: str, main: str, *args: str, jvm: tuple[str, ...] = ()) -> list[str]:
        log_config = resources.files("seam.stack").joinpath("log4j2.yaml")
        return [
            str(self.java),
            f"-Xms{min(heap, '256m', key=_megabytes)}",
            f"-Xmx{heap}",
            *self.gc_options,
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log_config}",
            *jvm,
            "-cp",
            f"{self.jars.kafka_classpath}/*",
            main,
            *args,
        ]


def _megabytes(size: str) -> int:
    units = {"k": 1 / 1024, "m": 1, "g": 1024}
    unit = size[-1].lower()
    return int(float(size[:-1]) * units[unit]) if unit in units else int(size) // (1024 * 1024)


def new_cluster_id() -> str:
    """A random KRaft cluster id as Kafka makes them (`Uuid.randomUuid`): URL-safe base64 of
    16 random bytes, never starting with '-' (`kafka-storage format -t -xyz...` would read it
    as an option and fail: one stack start in 64)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class Broker(_JvmPart):
    name = "kafka"

    def ports(self) -> dict[str, int]:
        ports = {
            "kafka_port": self.settings.kafka_port,
            "controller_port": self.settings.controller_port,
        }
        if self.settings.secure_listeners:
            ports["kafka_sasl_port"] = self.settings.kafka_sasl_port
            ports["kafka_ssl_port"] = self.settings.kafka_ssl_port
        return ports

    def endpoint(self) -> str:
        s = self.settings
        if not s.secure_listeners:
            return f"{s.host}:{s.kafka_port}"
        return (
            f"{s.host}:{s.kafka_port}, SASL_PLAINTEXT://{s.host}:{s.kafka_sasl_port}, "
            f"SSL://{s.host}:{s.kafka_ssl_port}"
        )

    def _listeners(self) -> dict[str, int]:
        """Client listener name (= its security protocol) -> port."""
        s = self.settings
        listeners = {"PLAINTEXT": s.kafka_port}
        if s.secure_listeners:
            listeners |= {"SASL_PLAINTEXT": s.kafka_sasl_port, "SSL": s.kafka_ssl_port}
        return listeners

    def _secure_properties(self, tls: TlsFiles) -> dict[str, str | int]:
        props: dict[str, str | int] = {"sasl.enabled.mechanisms": ",".join(SCRAM_MECHANISMS)}
        for mechanism in SCRAM_MECHANISMS:
            props[f"listener.name.sasl_plaintext.{mechanism.lower()}.sasl.jaas.config"] = (
                _SCRAM_LOGIN
            )
        # TLS with client certificates required: a client that passes its certificate and
        # key (kafka.ssl_certificate_location / ssl_key_location) gets in, no other.
        props |= {
            "listener.name.ssl.ssl.keystore.type": "PEM",
            "listener.name.ssl.ssl.keystore.location": str(tls.broker_keystore),
            "listener.name.ssl.ssl.truststore.type": "PEM",
            "listener.name.ssl.ssl.truststore.location": str(tls.ca),
            "listener.name.ssl.ssl.client.auth": "required",
        }
        return props

    def _properties(self, log_dir: Path) -> dict[str, str | int]:
        s = self.settings
        listeners = self._listeners()
        client = ",".join(f"{name}://{s.host}:{port}" for name, port in listeners.items())
        protocols = ",".join(f"{name}:{name}" for name in listeners)
        props: dict[str, str | int] = {
            "process.roles": "broker,controller",
            "node.id": 1,
            "controller.quorum.voters": f"1@{s.host}:{s.controller_port}",
            "listeners": f"{client},CONTROLLER://{s.host}:{s.controller_port}",
            "advertised.listeners": client,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": f"{protocols},CONTROLLER:PLAINTEXT",
            "log.dirs": str(log_dir),
            "num.partitions": 1,
            "offsets.topic.replication.factor": 1,
            "offsets.topic.num.partitions": 10,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "transaction.state.log.num.partitions": 10,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            "group.initial.rebalance.delay.ms": 0,
            "log.retention.hours": -1,
            "log.cleaner.min.compaction.lag.ms": 0,
        }
        if s.secure_listeners:
            props |= self._secure_properties(ensure_tls(s))
        return props

    def initialise(self) -> None:
        data = self.paths.data(self.name)
        if (data / "meta.properties").exists():
            return
        # Format into a scratch directory and rename it, so a killed run leaves no half-made log.
        scratch = data.with_name(data.name + ".init")
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        config = self.paths.run(self.name) / "format.properties"
        _write_properties(config, self._properties(scratch))
        cluster_id = new_cluster_id()
        # The SCRAM user exists from the start (KRaft keeps it in the metadata log).
        scram = [
            arg
            for mechanism in SCRAM_MECHANISMS
            for arg in ("--add-scram", f"{mechanism}=[name={LOCAL_USER},password={LOCAL_PASSWORD}]")
        ]
        args = self._java_args(
            "256m",
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(config),
            *(scram if self.settings.secure_listeners else ()),
        )
        result = subprocess.run(args, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            shutil.rmtree(scratch, ignore_errors=True)
            raise StackError(
                f"formatting the Kafka log directory failed: {result.stdout[-500:]}{result.stderr[-500:]}"
            )
        shutil.rmtree(data, ignore_errors=True)
        scratch.rename(data)

    def start(self) -> process.Recorded:
        config = self.paths.run(self.name) / "server.properties"
        _write_properties(config, self._properties(self.paths.data(self.name)))
        args = self._java_args(self.settings.kafka_heap, "kafka.Kafka", str(config))
        return process.spawn(args, pidfile=self.pidfile, logfile=self.logfile)

    def ready(self) -> bool:
        if not port_open(self.settings.host, self.settings.kafka_port):
            return False
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(self.plaintext().client_config({"log_level": 0}))
        try:
            metadata = admin.list_topics(timeout=2)
        except Exception:  # any client error means "not yet"
            return False
        return bool(metadata.brokers)

    def plaintext(self) -> KafkaSettings:
        """How the stack itself (and Connect) reaches the broker: the plaintext listener."""
        return KafkaSettings(bootstrap_servers=f"{self.settings.host}:{self.settings.kafka_port}")

    def after_ready(self) -> None:
        if self.settings.secure_listeners:
            self._ensure_scram_user()

    def _ensure_scram_user(self) -> None:
        """Give LOCAL_USER its SCRAM credentials on a broker formatted without them (one
        first started without secure listeners); a no-op once they exist."""
        import confluent_kafka.admin

        # The SCRAM classes are missing from confluent_kafka's stubs: typed Any here.
        kadmin: Any = confluent_kafka.admin
        admin: Any = kadmin.AdminClient(self.plaintext().client_config({"log_level": 0}))
        try:
            found = admin.describe_user_scram_credentials([LOCAL_USER])[LOCAL_USER].result(10)
            have = {info.mechanism for info in found.scram_credential_infos}
        except Exception:  # the user has no credentials yet: the future fails
            have = set()
        wanted = [getattr(kadmin.ScramMechanism, m.replace("-", "_")) for m in SCRAM_MECHANISMS]
        upserts = [
            kadmin.UserScramCredentialUpsertion(
                LOCAL_USER, kadmin.ScramCredentialInfo(mechanism, 4096), LOCAL_PASSWORD.encode()
            )
            for mechanism in wanted
            if mechanism not in have
        ]
        if not upserts:
            return
        for future in admin.alter_user_scram_credentials(upserts).values():
            future.result(10)


class Connect(_JvmPart):
    name = "connect"
    # G1's own pause goal (200 ms): with 20 ms, G1 kept the young generation at ~24 MB and a
    # 1M-row snapshot spent ~21 s of its ~60 s in ~10 collections a second (each copying the
    # records queued for Kafka); with the default, ~8 s and about 20% less CPU per row
    # (benchmarks/backfill_benchmark.py). Streaming keeps little alive, so its pauses stay short.
    gc_options = ("-XX:+UseG1GC",)

    def ports(self) -> dict[str, int]:
        return {"connect_port": self.settings.connect_port}

    def endpoint(self) -> str:
        return f"http://{self.settings.host}:{self.settings.connect_port}"

    @property
    def _jaas(self) -> Path:
        return self.paths.run(self.name) / "rest-jaas.conf"

    def _write_basic_auth(self) -> None:
        """The JAAS file of the REST API's basic auth and the credentials file it names
        (`user: password` lines, read by Connect's PropertyFileLoginModule)."""
        run = self.paths.run(self.name)
        run.mkdir(parents=True, exist_ok=True)
        credentials = run / "rest-credentials.properties"
        credentials.touch(mode=0o600)
        credentials.write_text(f"{LOCAL_USER}: {LOCAL_PASSWORD}\n")
        module = "org.apache.kafka.connect.rest.basic.auth.extension.PropertyFileLoginModule"
        self._jaas.write_text(
            f'KafkaConnect {{\n  {module} required\n  file="{credentials}";\n}};\n'
        )

    def _properties(self) -> dict[str, str | int]:
        s = self.settings
        props: dict[str, str | int] = {
            "bootstrap.servers": f"{s.host}:{s.kafka_port}",
            "group.id": CONNECT_GROUP,
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "config.storage.topic": f"{CONNECT_GROUP}-configs",
            "offset.storage.topic": f"{CONNECT_GROUP}-offsets",
            "status.storage.topic": f"{CONNECT_GROUP}-status",
            "config.storage.replication.factor": 1,
            "offset.storage.replication.factor": 1,
            "status.storage.replication.factor": 1,
            "offset.flush.interval.ms": 1000,
            "listeners": f"http://{s.host}:{s.connect_port}",
            "rest.advertised.host.name": s.host,
            "rest.advertised.port": s.connect_port,
            "plugin.path": str(self.jars.plugin_path),
            # Every bundle ships ServiceLoader manifests; skipping the reflective scan halves start-up.
            "plugin.discovery": "service_load",
            # seam renders the connector task's producer tuning as producer.override.*
            # (connectors/render.py); All is Kafka's default since 3.0, set here so it stays.
            "connector.client.config.override.policy": "All",
            "config.providers": "env,file",
            "config.providers.env.class": "org.apache.kafka.common.config.provider.EnvVarConfigProvider",
            "config.providers.env.param.allowlist.pattern": "^SEAM_.*",
            "config.providers.file.class": "org.apache.kafka.common.config.provider.FileConfigProvider",
        }
        if s.connect_basic_auth:
            props["rest.extension.classes"] = BASIC_AUTH_EXTENSION
        return props

    def start(self) -> process.Recorded:
        config = self.paths.run(self.name) / "connect-distributed.properties"
        _write_properties(config, self._properties())
        jvm: tuple[str, ...] = ()
        if self.settings.connect_basic_auth:
            self._write_basic_auth()
            jvm = (f"-Djava.security.auth.login.config={self._jaas}",)
        else:
            # The probe below asks with credentials exactly when this file says they are needed.
            self._jaas.unlink(missing_ok=True)
        env = dict(os.environ)
        env.setdefault(CDC_PASSWORD_ENV, LOCAL_CDC_PASSWORD)
        env.setdefault(SINK_PASSWORD_ENV, LOCAL_SINK_PASSWORD)
        args = self._java_args(
            self.settings.connect_heap,
            "org.apache.kafka.connect.cli.ConnectDistributed",
            str(config),
            jvm=jvm,
        )
        return process.spawn(args, pidfile=self.pidfile, logfile=self.logfile, env=env)

    def plugins(self) -> list[str]:
        """The connector classes the worker offers, or [] while it is not answering."""
        request = urllib.request.Request(f"{self.endpoint()}/connector-plugins")
        if self._jaas.exists():  # started with basic auth (a flag of `up` or the setting)
            token = base64.b64encode(f"{LOCAL_USER}:{LOCAL_PASSWORD}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=2) as resp:
                return [p["class"] for p in json.load(resp)]
        except (OSError, ValueError, urllib.error.URLError):
            return []

    def ready(self) -> bool:
        return set(DEBEZIUM_PLUGINS) <= set(self.plugins())

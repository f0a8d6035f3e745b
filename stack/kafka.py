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

from seam.errors import StackError
from seam.settings import StackSettings
from seam.stack import process
from seam.stack.jars import JarLayout
from seam.stack.part import Part, StackPaths, port_open

DEBEZIUM_PLUGINS = (
    "io.debezium.connector.postgresql.PostgresConnector",
    "io.debezium.connector.mysql.MySqlConnector",
    "io.debezium.connector.mariadb.MariaDbConnector",
)
CONNECT_GROUP = "seam-connect"
# The CDC user's password reaches connectors through Connect's EnvVarConfigProvider, so it is
# in the worker's environment and never in a connector's stored config.
CDC_PASSWORD_ENV = "SEAM_CDC_PASSWORD"
LOCAL_CDC_PASSWORD = "seam-cdc-local"


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

    def _java_args(self, heap: str, main: str, *args: str) -> list[str]:
        log_config = resources.files("seam.stack").joinpath("log4j2.yaml")
        return [
            str(self.java),
            f"-Xms{min(heap, '256m', key=_megabytes)}",
            f"-Xmx{heap}",
            *self.gc_options,
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log_config}",
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
        return {
            "kafka_port": self.settings.kafka_port,
            "controller_port": self.settings.controller_port,
        }

    def endpoint(self) -> str:
        return f"{self.settings.host}:{self.settings.kafka_port}"

    def _properties(self, log_dir: Path) -> dict[str, str | int]:
        s = self.settings
        return {
            "process.roles": "broker,controller",
            "node.id": 1,
            "controller.quorum.voters": f"1@{s.host}:{s.controller_port}",
            "listeners": f"PLAINTEXT://{s.host}:{s.kafka_port},CONTROLLER://{s.host}:{s.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{s.host}:{s.kafka_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
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
        args = self._java_args(
            "256m", "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)
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

        admin = AdminClient({"bootstrap.servers": self.endpoint(), "log_level": 0})
        try:
            metadata = admin.list_topics(timeout=2)
        except Exception:  # any client error means "not yet"
            return False
        return bool(metadata.brokers)


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

    def _properties(self) -> dict[str, str | int]:
        s = self.settings
        return {
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

    def start(self) -> process.Recorded:
        config = self.paths.run(self.name) / "connect-distributed.properties"
        _write_properties(config, self._properties())
        env = dict(os.environ)
        env.setdefault(CDC_PASSWORD_ENV, LOCAL_CDC_PASSWORD)
        args = self._java_args(
            self.settings.connect_heap,
            "org.apache.kafka.connect.cli.ConnectDistributed",
            str(config),
        )
        return process.spawn(args, pidfile=self.pidfile, logfile=self.logfile, env=env)

    def plugins(self) -> list[str]:
        """The connector classes the worker offers, or [] while it is not answering."""
        try:
            with urllib.request.urlopen(f"{self.endpoint()}/connector-plugins", timeout=2) as resp:
                return [p["class"] for p in json.load(resp)]
        except (OSError, ValueError, urllib.error.URLError):
            return []

    def ready(self) -> bool:
        return set(DEBEZIUM_PLUGINS) <= set(self.plugins())

"""Expand a `ConnectorSpec` into the flat Debezium/Connect config, with safe defaults.

Defaults per flavour (every one can be replaced through the spec's `overrides:`):

- PostgreSQL: `plugin.name=pgoutput` (built into PostgreSQL 10+, no server plugin),
  `publication.autocreate.mode=filtered` (creates/limits the publication to the captured
  tables and, unlike `all_tables`, needs no superuser), a publication and a replication slot
  named after the connector, a heartbeat whose action query writes to the heartbeat table
  (so the slot's confirmed LSN advances on a quiet database and WAL is not retained), and
  the signalling table for ad-hoc snapshots.
- MySQL/MariaDB: a `database.server.id` derived from the connector name (every binlog
  client needs its own), the schema-history topic `_seam.schema-history.<name>` (Debezium
  creates it with one partition) on the seam settings' Kafka bootstrap servers.
- Both: `decimal.handling.mode=string` (plain strings instead of base64 bytes), JSON
  converters, `topic.creation.default.*`, tombstones after deletes, and the marker
  `seam.managed=true`.
- Speed (`speed_defaults`): a 25 ms poll interval (a change reaches Kafka in tens of
  milliseconds, not after Debezium's default half second), bigger batches and queue for the
  snapshot, and the task producer's batch size and lz4 compression (`producer.override.*`,
  left out with the spec's `producer_overrides: false`).

Why a config key marks managed connectors: Connect stores a connector's config verbatim and
returns it unchanged from `GET /connectors?expand=info`, and its validate endpoint ignores
keys no ConfigDef declares (checked against Connect 4.3 / Debezium 3.5). So the marker
survives every round trip, needs no naming convention the user must follow, and needs no
extra state (a side topic could drift from the cluster and needs its own ACLs).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Generic, Protocol, TypeAlias, TypeVar, overload
from urllib.parse import unquote, urlsplit

from seam.connectors.spec import PROVIDER_REFERENCE, ConnectorSpec, SecretRef, is_secret_key
from seam.errors import ConfigError
from seam.secrets import MASK, mask_url

if TYPE_CHECKING:
    from seam.connectors.sink import RenderedSink, SinkSpec
    from seam.settings import Settings

MANAGED_KEY: Final = "seam.managed"
CONNECTOR_CLASSES: Final = {
    "postgres": "io.debezium.connector.postgresql.PostgresConnector",
    "mysql": "io.debezium.connector.mysql.MySqlConnector",
    "mariadb": "io.debezium.connector.mariadb.MariaDbConnector",
}
DEFAULT_PORTS: Final = {"postgres": 5432, "mysql": 3306, "mariadb": 3306}
JSON_CONVERTER: Final = "org.apache.kafka.connect.json.JsonConverter"
SCHEMA_HISTORY_PREFIX: Final = "_seam.schema-history."

# -- speed: how soon a change reaches Kafka, how fast the first snapshot loads -------------
# Plain Debezium / Connect keys rendered before the spec's `overrides:`, which replace any of
# them. Measured on Kafka Connect 4.3 / Debezium 3.5 with benchmarks/latency_benchmark.py and
# benchmarks/backfill_benchmark.py; connectors/README.md has the figures and the trade-offs.
SPEED_DEFAULTS: Final = {
    # Debezium waits out its poll interval (default 500 ms) twice per change: its PostgreSQL
    # reader sleeps that long whenever the slot has nothing new, and its queue hands Connect
    # a batch only once max.batch.size records are in or the interval has passed. Commit ->
    # raw record p50/p99 at 200 commits/s: 500 ms -> 507/935 ms, 25 ms -> 24/59 ms; an idle
    # task costs ~5% of a core at 25 ms (1% at 500, 11% at 10).
    "poll.interval.ms": "25",
    # Bigger hand-overs to Connect during a snapshot (a full batch is passed on at once, so
    # this adds no latency); the queue holds four batches.
    "max.batch.size": "8192",
    "max.queue.size": "32768",
    # Debezium's four context headers on every record (connector name, task, run id): nothing
    # in seam reads them (the value's `source` block says the same), and building them was a
    # quarter of Connect's CPU per snapshot row (44 -> 33 us).
    "extended.headers.enabled": "false",
}
# The connector task's Kafka producer, through Connect's per-connector client overrides
# (the Connect worker must allow them: connector.client.config.override.policy=All, the
# default since Kafka 3.0; `producer_overrides: false` in a spec leaves them out). Connect's
# source producer sends with acks=all and ONE request in flight, so its batch size sets the
# snapshot's pace: the producer default (16 KiB) carries ~20 Debezium records per round trip.
# lz4 shrinks Debezium's repetitive JSON several times over, for the broker and every reader.
PRODUCER_DEFAULTS: Final = {
    "producer.override.batch.size": "1048576",
    "producer.override.compression.type": "lz4",
}


def speed_defaults(spec: ConnectorSpec) -> dict[str, str]:
    """The latency and initial-load settings rendered for `spec` (its overrides come later)."""
    defaults = dict(SPEED_DEFAULTS)
    if spec.producer_overrides:
        defaults.update(PRODUCER_DEFAULTS)
    # Debezium rejects a queue no larger than a batch: a spec that raises only the batch size
    # gets a queue that still holds four of them.
    batch = spec.overrides.get("max.batch.size")
    if isinstance(batch, str) and batch.isdigit() and "max.queue.size" not in spec.overrides:
        queue = max(int(SPEED_DEFAULTS["max.queue.size"]), 4 * int(batch))
        defaults["max.queue.size"] = str(queue)
    return defaults


# MySQL server ids are unsigned 32-bit; keep clear of the small ids servers usually have.
_SERVER_ID_MIN: Final = 100_000
_SERVER_ID_SPAN: Final = 2**32 - 1 - _SERVER_ID_MIN
_PG_IDENTIFIER_MAX: Final = 63


@dataclass(frozen=True)
class DatabaseAddress:
    """Where the connector reaches the database (no credentials)."""

    host: str
    port: int
    dbname: str


class _Named(Protocol):
    @property
    def name(self) -> str: ...


SpecT = TypeVar("SpecT", bound=_Named)


@dataclass(frozen=True)
class RenderedBase(Generic[SpecT]):
    """A spec (source or sink) expanded into the config Connect receives."""

    spec: SpecT
    config: dict[str, str]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def connector_class(self) -> str:
        return self.config["connector.class"]

    def masked(self) -> dict[str, str]:
        return mask_config(self.config)


@dataclass(frozen=True)
class RenderedConnector(RenderedBase[ConnectorSpec]):
    """A source connector spec expanded into the config Connect receives."""


def pg_identifier(prefix: str, name: str) -> str:
    """A PostgreSQL slot/publication name for `name`: [a-z0-9_], at most 63 chars, stable."""
    clean = re.sub(r"[^a-z0-9_]", "_", f"{prefix}{name}".lower())
    if len(clean) <= _PG_IDENTIFIER_MAX:
        return clean
    digest = f"{zlib.crc32(name.encode()):08x}"
    return f"{clean[: _PG_IDENTIFIER_MAX - 9]}_{digest}"


def server_id_for(name: str) -> int:
    """A deterministic MySQL/MariaDB replication client id for the connector `name`."""
    return _SERVER_ID_MIN + zlib.crc32(name.encode()) % _SERVER_ID_SPAN


def slot_name(spec: ConnectorSpec) -> str:
    return spec.slot or pg_identifier("seam_", spec.name)


def publication_name(spec: ConnectorSpec) -> str:
    return spec.publication or pg_identifier("seam_", spec.name)


def topic_prefix(spec: ConnectorSpec) -> str:
    return spec.topic_prefix or re.sub(r"[^A-Za-z0-9_.-]", "_", spec.name)


# URL schemes by the spec flavours they can serve (MySQL and MariaDB share the protocol).
_SCHEME_FLAVOURS: Final = {
    "postgresql": ("postgres",),
    "postgres": ("postgres",),
    "mysql": ("mysql", "mariadb"),
    "mariadb": ("mysql", "mariadb"),
}


def check_flavour(spec: ConnectorSpec, url: str) -> None:
    """The database URL's scheme must fit the spec's flavour: a `mysql` spec rendered against
    a PostgreSQL URL would make a connector that fails later with an unrelated message."""
    scheme = urlsplit(url).scheme.split("+", 1)[0].lower()
    fits = _SCHEME_FLAVOURS.get(scheme)
    if fits is None or spec.flavour in fits:
        return  # an unknown scheme is reported where the URL is used
    kind = "PostgreSQL" if fits == ("postgres",) else "MySQL/MariaDB"
    wanted = "postgres" if fits == ("postgres",) else "mysql or mariadb"
    named = "" if "://" in spec.database else f" '{spec.database}'"  # a URL may hold a password
    raise ConfigError(
        f"{spec.source}: connector '{spec.name}' has flavour '{spec.flavour}' but its database"
        f"{named} is a {kind} URL ({mask_url(url)})",
        hint=f"set 'flavour: {wanted}' in the spec, or point 'database:' at a "
        f"{'PostgreSQL' if spec.is_postgres else 'MySQL/MariaDB'} database",
    )


def database_address(spec: ConnectorSpec, settings: Settings) -> DatabaseAddress:
    url = settings.database_url(spec.database)
    parts = urlsplit(url)
    check_flavour(spec, url)
    if not parts.hostname:
        raise ConfigError(
            f"{spec.source}: connector '{spec.name}': database {mask_url(url)!r} has no host",
            hint="use a URL like postgresql://host:5432/dbname",
        )
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname:
        raise ConfigError(
            f"{spec.source}: connector '{spec.name}': database {mask_url(url)!r} names no database",
            hint="end the URL with /<database name>",
        )
    return DatabaseAddress(
        host=spec.connect_host or parts.hostname,
        port=spec.connect_port or parts.port or DEFAULT_PORTS[spec.flavour],
        dbname=dbname,
    )


def qualify(spec: ConnectorSpec, table: str, dbname: str) -> str:
    """`schema.table` (PostgreSQL, default schema public) or `database.table` (MySQL)."""
    if "." in table:
        return table
    return f"public.{table}" if spec.is_postgres else f"{dbname}.{table}"


def captured_tables(spec: ConnectorSpec, dbname: str) -> list[str]:
    """The user's tables, plus the heartbeat and signalling tables the connector needs."""
    tables = [qualify(spec, t, dbname) for t in spec.tables]
    for extra in (heartbeat_table(spec, dbname), signal_table(spec, dbname)):
        if extra and extra not in tables:
            tables.append(extra)
    return tables


def heartbeat_table(spec: ConnectorSpec, dbname: str) -> str | None:
    # Only PostgreSQL needs the heartbeat to write a row: that is what moves the slot.
    if not spec.is_postgres or not spec.heartbeat_table or not spec.heartbeat_interval_ms:
        return None
    return qualify(spec, spec.heartbeat_table, dbname)


def signal_table(spec: ConnectorSpec, dbname: str) -> str | None:
    return qualify(spec, spec.signal_table, dbname) if spec.signal_table else None


def heartbeat_query(table: str) -> str:
    """An upsert of one row: a change in the publication that lets the slot advance."""
    # The one copy of the heartbeat SQL (the table it writes: readiness.sql.heartbeat_table_ddl),
    # schema-qualified so it does not depend on the CDC role's search_path.
    return (
        f"INSERT INTO {table} (id, beat_at) VALUES (1, now()) "
        "ON CONFLICT (id) DO UPDATE SET beat_at = EXCLUDED.beat_at"
    )


# A rendered source or sink: both have name, config, connector_class, masked() and spec.source.
Rendered: TypeAlias = "RenderedConnector | RenderedSink"


@overload
def render(spec: ConnectorSpec, settings: Settings) -> RenderedConnector: ...
@overload
def render(spec: SinkSpec, settings: Settings) -> RenderedSink: ...
def render(spec: ConnectorSpec | SinkSpec, settings: Settings) -> Rendered:
    """The full connector config for `spec`; secrets appear only as provider references."""
    if not isinstance(spec, ConnectorSpec):
        from seam.connectors.sink import render_sink

        return render_sink(spec, settings)
    return render_source(spec, settings)


def render_source(spec: ConnectorSpec, settings: Settings) -> RenderedConnector:
    """A source spec's Debezium config."""
    address = database_address(spec, settings)
    config: dict[str, str] = {
        "connector.class": CONNECTOR_CLASSES[spec.flavour],
        "tasks.max": str(spec.tasks_max),
        "database.hostname": address.host,
        "database.port": str(address.port),
        "database.user": spec.user,
        "database.password": spec.password.provider_reference(),
        "topic.prefix": topic_prefix(spec),
        "table.include.list": ",".join(captured_tables(spec, address.dbname)),
        "snapshot.mode": spec.snapshot_mode,
    }
    if spec.is_postgres:
        config.update(
            {
                "database.dbname": address.dbname,
                "plugin.name": "pgoutput",
                "slot.name": slot_name(spec),
                "publication.name": publication_name(spec),
                "publication.autocreate.mode": "filtered",
            }
        )
    else:
        config.update(
            {
                "database.server.id": str(spec.server_id or server_id_for(spec.name)),
                "database.include.list": address.dbname,
                "schema.history.internal.kafka.topic": SCHEMA_HISTORY_PREFIX + spec.name,
                "schema.history.internal.kafka.bootstrap.servers": settings.kafka_bootstrap_servers,
                "include.schema.changes": "false",
            }
        )
    if spec.heartbeat_interval_ms:
        config["heartbeat.interval.ms"] = str(spec.heartbeat_interval_ms)
        table = heartbeat_table(spec, address.dbname)
        if table:
            config["heartbeat.action.query"] = heartbeat_query(table)
    signals = signal_table(spec, address.dbname)
    if signals:
        config["signal.data.collection"] = signals
        config["signal.enabled.channels"] = "source"
    schemas = "true" if spec.schemas else "false"
    config.update(
        {
            "decimal.handling.mode": "string",
            "tombstones.on.delete": "true",
            "key.converter": JSON_CONVERTER,
            "key.converter.schemas.enable": schemas,
            "value.converter": JSON_CONVERTER,
            "value.converter.schemas.enable": schemas,
            "topic.creation.default.partitions": str(spec.topics.partitions),
            "topic.creation.default.replication.factor": str(spec.topics.replication_factor),
            "topic.creation.default.cleanup.policy": spec.topics.cleanup_policy,
        }
    )
    if spec.topics.retention_ms is not None:
        config["topic.creation.default.retention.ms"] = str(spec.topics.retention_ms)
    config.update(speed_defaults(spec))
    for key, value in spec.overrides.items():
        config[key] = value.provider_reference() if isinstance(value, SecretRef) else value
    config[MANAGED_KEY] = "true"
    return RenderedConnector(spec=spec, config=config)


def mask_value(key: str, value: str) -> str:
    """The value fit for display: secrets masked, provider references kept (they are not secrets)."""
    if is_secret_key(key):
        return value if PROVIDER_REFERENCE.match(value or "") else MASK
    return mask_url(value) if "://" in value else value


def mask_config(config: Mapping[str, str]) -> dict[str, str]:
    """The config with every secret value replaced by the mask."""
    return {
        key: mask_value(key, "" if value is None else str(value)) for key, value in config.items()
    }


def is_managed(config: Mapping[str, str]) -> bool:
    return str(config.get(MANAGED_KEY, "")).lower() == "true"

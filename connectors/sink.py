"""Sink connector specs: an entity's latest topic kept as a table of another database.

`kind: jdbc-sink` in a connector spec makes a Debezium JDBC sink connector
(`io.debezium.connector.jdbc.JdbcSinkConnector`) that keeps one PostgreSQL table equal to
an entity's latest topic: an upsert per state (by the entity's key), a delete per tombstone,
new columns added when the state schema gains fields (`schema.evolution=basic`). It goes
through the same `seam connectors render | preflight | prepare | plan | apply | status |
delete` as the source specs. Example:

    name: shop-orders-view
    kind: jdbc-sink
    pipeline: ../pipelines/orders.yaml  # the entity: its latest topic, key and state schema
    database: postgres                  # a database name from seam's settings, or a URL
    dbname: orders_view                 # the target database (default: the URL's)
    user: seam_sink                     # the user the connector writes as
    password: {env: SEAM_SINK_PASSWORD} # a reference, as for source specs
    table: orders                       # default: the entity's name

Why no envelope topic: the Debezium JDBC sink needs every field's type, and seam's latest
topics are schemaless JSON. Rather than a second, enveloped copy of every state (written
in the transform's transaction, stored twice), the connector's own converter is given the
schema: Kafka Connect's JsonConverter takes a fixed schema for schemaless records
(`value.converter.schema.content`, Kafka 4.0+), derived here from the state's JSON Schema
(`connect_schema.py` has the types). Nested objects are flattened into columns by Kafka's
`Flatten$Value` (`total_amount`), which passes tombstones through.

Keys: the latest topic's key is the key text. A one-field key is the table's primary key
column (`primary.key.mode=record_key`, which deletes need): an integer through JsonConverter
with the field's schema, a string through StringConverter. A composite key's text is a JSON
array (`[3,"B"]`): it becomes one text column (`key_column`, default `seam_key`) that is the
primary key, beside the key fields themselves. Kafka's `HoistField$Key` then wraps the key
in a struct of that one field: Debezium 3.5's JDBC sink reads a record_key key as a struct
(a primitive key fails its task with a ClassCastException).

Re-render after a new state schema version: the plan shows the schema change, apply
updates the connector, and the sink adds the new columns (it never drops or retypes one).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from seam.connectors.connect_schema import (
    Column,
    columns,
    has_structs,
    key_schema,
    value_schema,
)
from seam.connectors.render import RenderedBase
from seam.connectors.spec import (
    SINK_PASSWORD_ENV,
    SecretRef,
    _overrides,
    _secret_ref,
)
from seam.errors import ConfigError
from seam.keys import check_known_keys
from seam.secrets import mask_url

if TYPE_CHECKING:
    from collections.abc import Mapping

    from seam.settings import Settings

KIND: Final = "jdbc-sink"
SINK_CLASS: Final = "io.debezium.connector.jdbc.JdbcSinkConnector"
DEFAULT_SINK_USER: Final = "seam_sink"
DEFAULT_KEY_COLUMN: Final = "seam_key"
JSON_CONVERTER: Final = "org.apache.kafka.connect.json.JsonConverter"
STRING_CONVERTER: Final = "org.apache.kafka.connect.storage.StringConverter"
FLATTEN: Final = "org.apache.kafka.connect.transforms.Flatten$Value"
HOIST_KEY: Final = "org.apache.kafka.connect.transforms.HoistField$Key"
SCHEMA_EVOLUTION: Final = ("basic", "none")
SINK_KEYS: Final = (
    "name",
    "kind",
    "pipeline",
    "topic",
    "key",
    "key_column",
    "database",
    "dbname",
    "connect_host",
    "connect_port",
    "user",
    "password",
    "table",
    "schema_evolution",
    "tasks_max",
    "overrides",
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
# Plain lower-case SQL names: the sink writes them unquoted, and PostgreSQL folds unquoted
# names to lower case, so seam's checks and DDL name the same table and columns it does.
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}(\.[a-z_][a-z0-9_]{0,62})?$")
_COLUMN = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class SinkEntity:
    """What a sink reads: the latest topic, the entity's key fields and its state schema."""

    topic: str
    key: tuple[str, ...]
    name: str  # the entity's name (the default table)
    state: Mapping[str, Any]  # the JSON Schema of the topic's values
    state_source: str  # where that schema came from, for messages


@dataclass(frozen=True)
class SinkSpec:
    """A `kind: jdbc-sink` spec as the user wrote it, its entity read from the pipeline."""

    name: str
    entity: SinkEntity
    database: str
    table: str
    dbname: str | None = None
    user: str = DEFAULT_SINK_USER
    password: SecretRef = field(
        default_factory=lambda: SecretRef("env", SINK_PASSWORD_ENV, where="password")
    )
    key_column: str = DEFAULT_KEY_COLUMN
    schema_evolution: str = "basic"
    tasks_max: int = 1
    connect_host: str | None = None
    connect_port: int | None = None
    overrides: Mapping[str, str | SecretRef] = field(default_factory=dict)
    source: str = "<spec>"
    kind: str = KIND


@dataclass(frozen=True)
class RenderedSink(RenderedBase[SinkSpec]):
    """A sink spec expanded into the config Connect receives."""


def parse_sink_spec(data: Mapping[str, Any], source: str, at: Any) -> SinkSpec:
    """A sink spec from its YAML mapping; `at(key)` is the file:line of a key."""
    unknown = [k for k in data if k not in SINK_KEYS]
    if unknown:
        check_known_keys(data, SINK_KEYS, f"{at(unknown[0])}: sink spec")
    name = str(data.get("name") or "")
    if not name:
        raise ConfigError(f"{at()}: sink spec is missing 'name'", hint="add 'name: <connector>'")
    if not _NAME.match(name):
        raise ConfigError(
            f"{at('name')}: connector name {name!r} is not valid",
            hint="use letters, digits, '.', '_' or '-' (start with a letter or digit)",
        )
    for needed, hint in (
        ("pipeline", "add 'pipeline: <the pipeline file whose latest topic it keeps>'"),
        ("database", "add 'database: postgres' (a name under [databases]) or a URL"),
    ):
        if not data.get(needed):
            raise ConfigError(f"{at()}: sink '{name}' is missing '{needed}'", hint=hint)
    folder = Path(source).parent if source and not source.startswith("<") else Path()
    key = data.get("key")
    if key is not None and (
        not isinstance(key, list) or not key or not all(isinstance(k, str) for k in key)
    ):
        raise ConfigError(f"{at('key')}: sink '{name}': 'key' must be a list of field names")
    entity = read_entity(
        folder / str(data["pipeline"]),
        where=f"{at('pipeline')}: sink '{name}'",
        key=tuple(key) if key else None,
        topic=str(data["topic"]) if data.get("topic") else None,
    )
    table = str(data.get("table") or re.sub(r"[^a-z0-9_]", "_", entity.name.lower()))
    if not _IDENTIFIER.match(table):
        raise ConfigError(
            f"{at('table')}: sink '{name}': table {table!r} is not a plain SQL name",
            hint="use lower-case letters, digits and '_' (schema.table for another schema "
            "than public)",
        )
    key_column = str(data.get("key_column") or DEFAULT_KEY_COLUMN)
    evolution = str(data.get("schema_evolution", "basic"))
    if evolution not in SCHEMA_EVOLUTION:
        raise ConfigError(
            f"{at('schema_evolution')}: sink '{name}': unknown schema_evolution {evolution!r}",
            hint="basic (add a column for each new field) or none (the table stays as it is)",
        )
    tasks_max = data.get("tasks_max", 1)
    if isinstance(tasks_max, bool) or not isinstance(tasks_max, int) or tasks_max < 1:
        raise ConfigError(f"{at('tasks_max')}: sink '{name}': 'tasks_max' must be 1 or more")
    port = data.get("connect_port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
        raise ConfigError(f"{at('connect_port')}: sink '{name}': 'connect_port' must be a number")
    password = (
        _secret_ref(data["password"], f"{at('password')}: sink '{name}', password")
        if data.get("password") is not None
        else SecretRef("env", SINK_PASSWORD_ENV, where=f"{at()}: sink '{name}', password")
    )
    return SinkSpec(
        name=name,
        entity=entity,
        database=str(data["database"]),
        dbname=str(data["dbname"]) if data.get("dbname") else None,
        table=table,
        user=str(data.get("user") or DEFAULT_SINK_USER),
        password=password,
        key_column=key_column,
        schema_evolution=evolution,
        tasks_max=tasks_max,
        connect_host=str(data["connect_host"]) if data.get("connect_host") else None,
        connect_port=port,
        overrides=_overrides(data.get("overrides"), at("overrides"), name),
        source=at(),
    )


def read_entity(
    path: Path, *, where: str, key: tuple[str, ...] | None = None, topic: str | None = None
) -> SinkEntity:
    """The latest topic, key and state schema of the pipeline file at `path`.

    The state schema is the newest version of the one the validate stage checks every
    latest-topic value against (its `state_schema`, for a declared pipeline `<Entity>State`);
    a declared pipeline without a schema folder has it derived from its declaration.
    """
    from seam.transforms.declared.derive import derive, state_schema_name
    from seam.transforms.pipeline_file import load_pipeline
    from seam.transforms.schemas import SchemaSet

    pipeline = load_pipeline(path)
    declaration = pipeline.declaration
    if key is None and declaration is not None:
        key = tuple(declaration.entity.key)
    if not key:
        raise ConfigError(
            f"{where}: the pipeline {path} declares no entity, so its key is unknown",
            hint="add 'key: [<the key fields>]' to the sink spec",
        )
    options: dict[str, Any] = next(
        (dict(s.options) for s in pipeline.stages if s.use == "validate"), {}
    )
    name = options.get("state_schema") or (
        state_schema_name(declaration) if declaration is not None else None
    )
    if name is None:
        raise ConfigError(
            f"{where}: the pipeline {path} names no state schema",
            hint="give its validate stage 'state_schema: <Entity>State' (the sink takes the "
            "column types from it)",
        )
    folder = (
        (pipeline.folder or path.parent) / str(options["schemas"])
        if options.get("schemas")
        else pipeline.schemas
    )
    if folder is None and declaration is not None:
        state: Mapping[str, Any] = derive(declaration)[str(name)]
        origin = f"derived from {declaration.source}"
    else:
        latest = SchemaSet.load(folder or path.parent / "schemas").latest(str(name))
        if latest is None:
            raise ConfigError(
                f"{where}: no schema {name} in {folder}",
                hint=f"write it: seam transform schemas {path} --write",
            )
        state = latest[1]
        origin = f"{folder}/{name}/v{latest[0]}.json"
    entity = declaration.entity.name if declaration is not None else pipeline.name
    return SinkEntity(
        topic=topic or pipeline.latest.topic,
        key=key,
        name=entity,
        state=state,
        state_source=origin,
    )


def target_url(
    spec: SinkSpec, settings: Settings, *, user: str | None = None, password: str | None = None
) -> str:
    """The settings' URL of the server, on the target database: with the credentials given
    there, or as `user` with `password` (the URL keeps the user's scheme, for messages)."""
    from seam.connectors.engine import parse_url

    url = settings.database_url(spec.database)
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme not in ("postgresql", "postgres"):
        named = "" if "://" in spec.database else f" '{spec.database}'"
        raise ConfigError(
            f"{spec.source}: sink '{spec.name}': its database{named} is not PostgreSQL "
            f"({mask_url(url)})",
            hint="point 'database:' at a PostgreSQL server: seam's sinks write PostgreSQL tables",
        )
    parsed = parse_url(url)
    if spec.dbname:
        parsed = parsed.set(database=spec.dbname)
    if user is not None:
        parsed = parsed.set(username=user, password=password)
    if not parsed.database:
        raise ConfigError(
            f"{spec.source}: sink '{spec.name}': no target database",
            hint="add 'dbname: <database>' to the spec, or end the URL with /<database>",
        )
    rendered = str(parsed.render_as_string(hide_password=False))
    return scheme + rendered[len(parsed.drivername) :]


def jdbc_url(spec: SinkSpec, settings: Settings) -> str:
    """`jdbc:postgresql://host:port/db` as the Connect worker reaches it (no credentials)."""
    from seam.connectors.engine import parse_url

    parsed = parse_url(target_url(spec, settings))
    host = spec.connect_host or parsed.host or "localhost"
    port = spec.connect_port or parsed.port or 5432
    return f"jdbc:postgresql://{host}:{port}/{parsed.database}"


def qualified_table(spec: SinkSpec) -> tuple[str, str]:
    """(schema, table) of the target table (schema public unless the spec names one)."""
    schema, _, table = spec.table.rpartition(".")
    return schema or "public", table


def key_columns(spec: SinkSpec) -> tuple[str, ...]:
    """The primary key column(s) of the target table."""
    return spec.entity.key if len(spec.entity.key) == 1 else (spec.key_column,)


def table_ddl(spec: SinkSpec) -> str:
    """The CREATE TABLE of the sink's table, as the sink would create it from a state.

    Debezium 3.5's JDBC sink creates a missing table from the first record it reads, and its
    task fails on a tombstone that comes first (a table from a record without columns):
    seam creates the table beforehand (`prepare`), from the same schema.
    """
    where = f"{spec.source}: sink '{spec.name}' ({spec.entity.state_source})"
    found = columns(value_schema(spec.entity.state, where))
    keys = key_columns(spec)
    if len(spec.entity.key) > 1:
        found = [Column(spec.key_column, "text", False), *found]
    for column in found:
        if not _COLUMN.match(column.name):
            raise ConfigError(
                f"{where}: the column '{column.name}' is not a plain lower-case SQL name",
                hint="name the state's fields in lower case: letters, digits and '_'",
            )
    lines = [
        f"{c.name} {c.type}{'' if c.nullable and c.name not in keys else ' NOT NULL'}"
        for c in found
    ]
    schema, table = qualified_table(spec)
    return f"CREATE TABLE {schema}.{table} ({', '.join(lines)}, PRIMARY KEY ({', '.join(keys)}))"


def _key_config(spec: SinkSpec) -> dict[str, str]:
    entity = spec.entity
    where = f"{spec.source}: sink '{spec.name}' ({entity.state_source})"
    if len(entity.key) > 1:
        # The key text of a composite key is a JSON array: one text column holds it.
        return {"key.converter": STRING_CONVERTER, "primary.key.fields": spec.key_column}
    schema = key_schema(entity.state, entity.key[0], where)
    if schema["type"] == "string":
        return {"key.converter": STRING_CONVERTER, "primary.key.fields": entity.key[0]}
    if schema["type"] not in ("int64", "float64", "boolean"):
        raise ConfigError(
            f"{where}: the key field '{entity.key[0]}' is a {schema['type']}: not a key column",
            hint="a sink's key field must be an integer or a string",
        )
    return {
        "key.converter": JSON_CONVERTER,
        "key.converter.schemas.enable": "true",
        "key.converter.schema.content": _compact(schema),
        "primary.key.fields": entity.key[0],
    }


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def render_sink(spec: SinkSpec, settings: Settings) -> RenderedSink:
    """The full JDBC sink config; the password appears only as a provider reference."""
    from seam.connectors.render import MANAGED_KEY

    where = f"{spec.source}: sink '{spec.name}' ({spec.entity.state_source})"
    schema = value_schema(spec.entity.state, where)
    config: dict[str, str] = {
        "connector.class": SINK_CLASS,
        "tasks.max": str(spec.tasks_max),
        "topics": spec.entity.topic,
        "connection.url": jdbc_url(spec, settings),
        "connection.username": spec.user,
        "connection.password": spec.password.provider_reference(),
        "insert.mode": "upsert",
        "delete.enabled": "true",
        "primary.key.mode": "record_key",
        "schema.evolution": spec.schema_evolution,
        "collection.name.format": spec.table,
        "use.time.zone": "UTC",
        **_key_config(spec),
        "value.converter": JSON_CONVERTER,
        "value.converter.schemas.enable": "true",
        "value.converter.schema.content": _compact(schema),
    }
    # The key becomes a struct of one field (the sink's record_key mode in Debezium 3.5 casts
    # a primitive key to a struct and fails); nested state objects become columns.
    transforms = {
        "key": {"type": HOIST_KEY, "field": key_columns(spec)[0]},
        "flatten": {"type": FLATTEN, "delimiter": "_"},
    }
    if not has_structs(schema):
        del transforms["flatten"]
    config["transforms"] = ",".join(transforms)
    for alias, settings_of in transforms.items():
        config.update({f"transforms.{alias}.{k}": v for k, v in settings_of.items()})
    for key, value in spec.overrides.items():
        config[key] = value.provider_reference() if isinstance(value, SecretRef) else value
    config[MANAGED_KEY] = "true"
    return RenderedSink(spec=spec, config=config)


def is_sink_config(config: Mapping[str, str]) -> bool:
    return config.get("connector.class", "") == SINK_CLASS


def sink_group(name: str, config: Mapping[str, str]) -> str:
    """The consumer group of the sink connector `name` (Connect's default: connect-<name>)."""
    return config.get("consumer.override.group.id") or f"connect-{name}"


def committed_offsets(settings: Settings, group: str, topic: str) -> dict[int, int]:
    """The offsets consumer group `group` has committed on each partition of `topic` (-1: none
    yet). Reads them without subscribing, so it never joins the group."""
    from confluent_kafka import Consumer, TopicPartition

    from seam.kafka_config import client_config
    from seam.streams.kafka import Kafka

    with Kafka(settings.kafka, timeout=5.0) as kafka:
        partitions = [TopicPartition(topic, p) for p in kafka.partitions(topic)]
        reader = Consumer(
            client_config(settings.kafka, {"group.id": group}) | {"enable.auto.commit": False}
        )
        try:
            committed = kafka.call("reading offsets", reader.committed, partitions, timeout=5.0)
        finally:
            reader.close()
    return {tp.partition: tp.offset for tp in committed}


def sink_lag(settings: Settings, name: str, config: Mapping[str, str]) -> int:
    """How many records of its topics the sink has not committed yet (its consumer group's
    offsets against the topics' ends; a partition without an offset counts from its start)."""
    from confluent_kafka import Consumer, TopicPartition

    from seam.kafka_config import client_config
    from seam.streams.kafka import Kafka

    topics = [t.strip() for t in config.get("topics", "").split(",") if t.strip()]
    group = sink_group(name, config)
    lag = 0
    with Kafka(settings.kafka, timeout=5.0) as kafka:
        # Any consumer reads watermarks; this one never subscribes, so never joins a group.
        reader = Consumer(
            client_config(settings.kafka, {"group.id": group}) | {"enable.auto.commit": False}
        )
        try:
            for topic in topics:
                for partition, offset in committed_offsets(settings, group, topic).items():
                    low, high = kafka.call(
                        "reading offsets",
                        reader.get_watermark_offsets,
                        TopicPartition(topic, partition),
                        timeout=5.0,
                    )
                    lag += max(0, high - (offset if offset >= 0 else low))
        finally:
            reader.close()
    return lag


GROUP_EMPTIES_S: Final = 15.0  # how long a deleted sink's task may still be in its group


def drop_group(settings: Settings, name: str, config: Mapping[str, str]) -> str | None:
    """Delete the consumer group of a deleted sink (its committed offsets), so that a sink
    made again under the same name reads its topic from the start, rebuilding the table.
    Returns a note for the user when the group could not be deleted."""
    import time

    from seam.errors import SeamError
    from seam.streams.kafka import Kafka
    from seam.transforms.topics import delete_group

    group = sink_group(name, config)
    deadline = time.monotonic() + GROUP_EMPTIES_S
    try:
        with Kafka(settings.kafka, timeout=10.0) as kafka:
            while True:
                try:
                    delete_group(kafka, group)
                    return None
                except SeamError as exc:
                    # Members leave once the task has stopped; until then the group is busy.
                    if "has members" not in exc.message or time.monotonic() > deadline:
                        raise
                    time.sleep(0.3)
    except SeamError as exc:
        return (
            f"consumer group '{group}' was kept ({exc.message}); a sink made again under this "
            "name resumes from its offsets"
        )

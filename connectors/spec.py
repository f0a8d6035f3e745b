"""Declarative connector specs: YAML files that say what a user means, not Debezium's keys.

One connector per file, or a YAML list of them (or several YAML documents). Example:

    name: shop-postgres
    flavour: postgres              # postgres | mysql | mariadb
    database: postgres             # a database name from seam's settings, or a URL
    user: seam_cdc                 # the CDC user the connector logs in as
    password: {env: SEAM_CDC_PASSWORD}   # or {file: /etc/seam/cdc.properties, key: password}
    tables: [orders, customers]
    replica_identity_full: [orders]   # postgres: updates and deletes carry the whole old row
    topic_prefix: shop
    snapshot_mode: initial
    producer_overrides: true       # false: the Connect cluster forbids producer.override.*
    overrides:                     # raw Debezium / Connect keys, applied last
      poll.interval.ms: 100

Secrets are references, never values: `{env: VAR}` becomes `${env:VAR}` and
`{file: PATH, key: KEY}` becomes `${file:PATH:KEY}` in the connector config, which the
Connect worker resolves with its EnvVarConfigProvider / FileConfigProvider
(`config.providers=file,env`). NOTE: `${env:VAR}` is read from the *Connect worker's*
environment, not the shell running seam; seam resolves the same reference locally only to
run the preflight checks with the same credentials.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

from seam.errors import ConfigError
from seam.keys import check_known_keys
from seam.secrets import Secret
from seam.yamlfile import load_documents

if TYPE_CHECKING:
    from seam.connectors.sink import SinkSpec

Flavour = Literal["postgres", "mysql", "mariadb"]

_FLAVOURS: Final[dict[str, Flavour]] = {
    "postgres": "postgres",
    "postgresql": "postgres",
    "pg": "postgres",
    "mysql": "mysql",
    "mariadb": "mariadb",
}

# The CDC user (`seam connectors prepare` creates it), its password's env var and local default.
DEFAULT_CDC_USER: Final = "seam_cdc"
CDC_PASSWORD_ENV: Final = "SEAM_CDC_PASSWORD"
LOCAL_CDC_PASSWORD: Final = "seam-cdc-local"
# The sink user's password (a `kind: jdbc-sink` spec's default reference) and local default.
SINK_PASSWORD_ENV: Final = "SEAM_SINK_PASSWORD"
LOCAL_SINK_PASSWORD: Final = "seam-sink-local"
# The local stack gives its Connect worker these (stack/kafka.py); seam resolves the same.
LOCAL_PASSWORDS: Final = {
    CDC_PASSWORD_ENV: LOCAL_CDC_PASSWORD,
    SINK_PASSWORD_ENV: LOCAL_SINK_PASSWORD,
}
DEFAULT_HEARTBEAT_TABLE: Final = "seam_heartbeat"
DEFAULT_SIGNAL_TABLE: Final = "debezium_signal"

SNAPSHOT_MODES: Final = {
    "postgres": (
        "initial",
        "initial_only",
        "no_data",
        "never",
        "always",
        "when_needed",
        "recovery",
        "configuration_based",
        "custom",
    ),
    "mysql": (
        "initial",
        "initial_only",
        "no_data",
        "never",
        "always",
        "when_needed",
        "recovery",
        "schema_only",
        "schema_only_recovery",
        "configuration_based",
        "custom",
    ),
}

SPEC_KEYS: Final = (
    "name",
    "kind",
    "flavour",
    "database",
    "connect_host",
    "connect_port",
    "user",
    "password",
    "tables",
    "replica_identity_full",
    "topic_prefix",
    "snapshot_mode",
    "publication",
    "slot",
    "server_id",
    "heartbeat_interval_ms",
    "heartbeat_table",
    "signal_table",
    "schemas",
    "producer_overrides",
    "topics",
    "tasks_max",
    "overrides",
)
KINDS: Final = ("source", "jdbc-sink")
TOPIC_KEYS: Final = ("partitions", "replication_factor", "cleanup_policy", "retention_ms")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


@dataclass(frozen=True)
class SecretRef:
    """Where a secret lives: an environment variable or a key in a properties file.

    `where` says which spec field refers to it, for error messages.
    """

    kind: Literal["env", "file"]
    name: str  # the variable name, or the file path
    key: str = "password"  # the key inside a properties file
    where: str = ""

    def provider_reference(self) -> str:
        """The Kafka Connect config provider reference the worker resolves."""
        if self.kind == "env":
            return f"${{env:{self.name}}}"
        return f"${{file:{self.name}:{self.key}}}"

    def describe(self) -> str:
        return f"env var {self.name}" if self.kind == "env" else f"key '{self.key}' in {self.name}"

    def resolve(self, env: Mapping[str, str] | None = None) -> Secret:
        """The secret's value as seen from this machine (for preflight connections)."""
        env = os.environ if env is None else env
        if self.kind == "env":
            value = env.get(self.name)
            if value is None:
                # The local stack's CDC or sink password (stack/kafka.py gives Connect the same).
                value = LOCAL_PASSWORDS.get(self.name)
            if value is None:
                raise ConfigError(
                    f"{self.where}: the secret env var {self.name} is not set",
                    hint=f"export {self.name}=... here, and make sure the Connect worker has it too",
                )
            return Secret(value)
        return Secret(_read_properties_key(Path(self.name), self.key, self.where))


def _read_properties_key(path: Path, key: str, where: str) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{where}: cannot read the secret file {path}: {exc.strerror}",
            hint=f"create {path} with a line '{key}=...' (readable by seam and the Connect worker)",
        ) from None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "!")):
            continue
        match = re.match(r"([^=:\s]+)\s*[=:\s]\s*(.*)$", stripped)
        if match and match.group(1) == key:
            return match.group(2)
    raise ConfigError(
        f"{where}: the secret file {path} has no key '{key}'",
        hint=f"add a line '{key}=...' to {path}",
    )


@dataclass(frozen=True)
class TopicDefaults:
    """`topic.creation.default.*`: how Connect creates the change topics."""

    partitions: int = 1
    replication_factor: int = -1  # the broker's default.replication.factor
    # Raw change topics keep every change: replaying them from offset 0 must rebuild history,
    # which compaction would reduce to the latest row per key.
    cleanup_policy: str = "delete"
    retention_ms: int | None = -1


@dataclass(frozen=True)
class ConnectorSpec:
    """One connector as the user described it. Build with `load_specs` / `parse_spec`."""

    name: str
    flavour: Flavour
    database: str
    tables: tuple[str, ...]
    user: str = DEFAULT_CDC_USER
    password: SecretRef = field(
        default_factory=lambda: SecretRef("env", CDC_PASSWORD_ENV, where="password")
    )
    topic_prefix: str | None = None
    snapshot_mode: str = "initial"
    publication: str | None = None
    slot: str | None = None
    server_id: int | None = None
    heartbeat_interval_ms: int = 10_000
    heartbeat_table: str | None = DEFAULT_HEARTBEAT_TABLE
    signal_table: str | None = DEFAULT_SIGNAL_TABLE
    schemas: bool = False
    # Render the Connect producer tuning (`producer.override.*`); false for Connect clusters
    # whose connector.client.config.override.policy forbids per-connector client settings.
    producer_overrides: bool = True
    topics: TopicDefaults = field(default_factory=TopicDefaults)
    tasks_max: int = 1
    connect_host: str | None = None
    connect_port: int | None = None
    overrides: Mapping[str, str | SecretRef] = field(default_factory=dict)
    # PostgreSQL tables whose change events must carry the whole old row (REPLICA IDENTITY
    # FULL): what `seam connectors prepare` sets, and preflight requires.
    replica_identity_full: tuple[str, ...] = ()
    source: str = "<spec>"  # file:line, for messages

    @property
    def is_postgres(self) -> bool:
        return self.flavour == "postgres"


AnySpec: TypeAlias = "ConnectorSpec | SinkSpec"  # a source or a sink spec


def load_specs(paths: list[Path] | list[str]) -> list[AnySpec]:
    """Every connector spec in the given files (or directories of *.yaml / *.yml)."""
    specs: list[AnySpec] = []
    for path in _expand(paths):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read spec file {path}: {exc.strerror}") from None
        specs.extend(parse_specs(text, str(path)))
    seen: dict[str, str] = {}
    for spec in specs:
        if spec.name in seen:
            raise ConfigError(
                f"{spec.source}: connector '{spec.name}' is also defined at {seen[spec.name]}",
                hint="connector names must be unique across the specs applied together",
            )
        seen[spec.name] = spec.source
    if not specs:
        raise ConfigError(
            "no connector specs found", hint="pass YAML files or directories holding them"
        )
    return specs


def _expand(paths: list[Path] | list[str]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        else:
            yield path


def parse_specs(text: str, source: str = "<spec>") -> list[AnySpec]:
    """Parse YAML text holding one spec, a list of specs, or several documents."""
    specs: list[AnySpec] = []
    for doc in load_documents(text, source):
        if doc is None:
            continue
        items = doc if isinstance(doc, list) else [doc]
        for item in items:
            specs.append(parse_spec(item, source))
    return specs


def parse_spec(data: Any, source: str = "<spec>") -> AnySpec:
    """One spec from a parsed YAML mapping (a `YamlMap` keeps line numbers for errors):
    a source (`kind: source`, the default) or a sink (`kind: jdbc-sink`, `sink.py`)."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: a connector spec must be a mapping (name: ..., flavour: ...), got {type(data).__name__}"
        )
    lines: dict[str, int] = getattr(data, "lines", {})
    start = getattr(data, "line", None)

    def at(key: str | None = None) -> str:
        line = lines.get(key, start) if key else start
        return f"{source}:{line}" if line else source

    kind = str(data.get("kind") or "source")
    if kind not in KINDS:
        raise ConfigError(
            f"{at('kind')}: unknown connector kind {kind!r}",
            hint=f"expected one of: {', '.join(KINDS)} (source is the default)",
        )
    if kind != "source":
        from seam.connectors.sink import parse_sink_spec

        return parse_sink_spec(data, source, at)
    unknown = [k for k in data if k not in SPEC_KEYS]
    if unknown:
        check_known_keys(data, SPEC_KEYS, f"{at(unknown[0])}: connector spec")

    def required(key: str) -> Any:
        if data.get(key) in (None, "", []):
            raise ConfigError(
                f"{at()}: connector spec is missing '{key}'", hint=_REQUIRED_HINTS[key]
            )
        return data[key]

    name = str(required("name"))
    if not _NAME.match(name):
        raise ConfigError(
            f"{at('name')}: connector name {name!r} is not valid",
            hint="use letters, digits, '.', '_' or '-' (start with a letter or digit)",
        )
    raw_flavour = str(required("flavour")).lower()
    if raw_flavour not in _FLAVOURS:
        raise ConfigError(
            f"{at('flavour')}: connector '{name}': unknown flavour {raw_flavour!r}",
            hint="expected one of: postgres, mysql, mariadb",
        )
    flavour = _FLAVOURS[raw_flavour]
    tables = required("tables")
    if isinstance(tables, str):
        tables = [t for t in re.split(r"[,\s]+", tables) if t]
    if not isinstance(tables, list) or not all(isinstance(t, str) and t for t in tables):
        raise ConfigError(
            f"{at('tables')}: connector '{name}': 'tables' must be a list of table names"
        )

    def opt_int(key: str, default: int | None) -> int | None:
        value = data.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ConfigError(
                f"{at(key)}: connector '{name}': '{key}' must be an integer, got {value!r}"
            )
        try:
            return int(value)
        except ValueError:
            raise ConfigError(
                f"{at(key)}: connector '{name}': '{key}' must be an integer, got {value!r}"
            ) from None

    def opt_str(key: str, default: str | None = None) -> str | None:
        value = data.get(key, default)
        return None if value is None else str(value)

    snapshot_mode = str(data.get("snapshot_mode", "initial"))
    modes = SNAPSHOT_MODES["postgres" if flavour == "postgres" else "mysql"]
    if snapshot_mode not in modes:
        raise ConfigError(
            f"{at('snapshot_mode')}: connector '{name}': unknown snapshot_mode {snapshot_mode!r}",
            hint=f"expected one of: {', '.join(modes)}",
        )
    full = data.get("replica_identity_full") or []
    if isinstance(full, str):
        full = [t for t in re.split(r"[,\s]+", full) if t]
    if not isinstance(full, list) or not all(isinstance(t, str) and t for t in full):
        raise ConfigError(
            f"{at('replica_identity_full')}: connector '{name}': 'replica_identity_full' must be "
            "a list of table names"
        )
    strangers = [t for t in full if t not in tables]
    if strangers:
        raise ConfigError(
            f"{at('replica_identity_full')}: connector '{name}': {', '.join(strangers)} "
            "in 'replica_identity_full' but not in 'tables'",
            hint="name each table as it is written under 'tables'",
        )
    if flavour != "postgres":
        for pg_only in ("publication", "slot", "replica_identity_full"):
            if pg_only in data:
                raise ConfigError(
                    f"{at(pg_only)}: connector '{name}': '{pg_only}' applies to postgres only"
                )
    elif "server_id" in data:
        raise ConfigError(
            f"{at('server_id')}: connector '{name}': 'server_id' applies to mysql/mariadb only"
        )

    password = _secret_ref(data.get("password"), f"{at('password')}: connector '{name}', password")
    topics = _topic_defaults(data.get("topics"), at("topics"), name)
    overrides = _overrides(data.get("overrides"), at("overrides"), name)
    schemas = data.get("schemas", False)
    if not isinstance(schemas, bool):
        raise ConfigError(f"{at('schemas')}: connector '{name}': 'schemas' must be true or false")
    producer_overrides = data.get("producer_overrides", True)
    if not isinstance(producer_overrides, bool):
        raise ConfigError(
            f"{at('producer_overrides')}: connector '{name}': 'producer_overrides' must be true or false"
        )
    return ConnectorSpec(
        name=name,
        flavour=flavour,
        database=str(required("database")),
        tables=tuple(str(t) for t in tables),
        replica_identity_full=tuple(full),
        user=str(data.get("user") or DEFAULT_CDC_USER),
        password=password,
        topic_prefix=opt_str("topic_prefix"),
        snapshot_mode=snapshot_mode,
        publication=opt_str("publication"),
        slot=opt_str("slot"),
        server_id=opt_int("server_id", None),
        heartbeat_interval_ms=opt_int("heartbeat_interval_ms", 10_000) or 0,
        heartbeat_table=opt_str("heartbeat_table", DEFAULT_HEARTBEAT_TABLE),
        signal_table=opt_str("signal_table", DEFAULT_SIGNAL_TABLE),
        schemas=schemas,
        producer_overrides=producer_overrides,
        topics=topics,
        tasks_max=opt_int("tasks_max", 1) or 1,
        connect_host=opt_str("connect_host"),
        connect_port=opt_int("connect_port", None),
        overrides=overrides,
        source=at(),
    )


_REQUIRED_HINTS: Final = {
    "name": "add 'name: <connector name>'",
    "flavour": "add 'flavour: postgres' (or mysql, mariadb)",
    "database": "add 'database: postgres' (a name under [databases] in the settings) or a URL",
    "tables": "add 'tables: [schema.table, ...]'",
}


def _secret_ref(value: Any, where: str) -> SecretRef:
    if value is None:
        return SecretRef("env", CDC_PASSWORD_ENV, where=where)
    if isinstance(value, dict):
        check_known_keys(value, ("env", "file", "key"), where)
        if "env" in value and "file" not in value and "key" not in value:
            return SecretRef("env", str(value["env"]), where=where)
        if "file" in value and "env" not in value:
            return SecretRef(
                "file", str(value["file"]), str(value.get("key", "password")), where=where
            )
    raise ConfigError(
        f"{where}: a secret must be a reference, not a value",
        hint="write {env: VAR} or {file: /path/to.properties, key: password}; the Connect worker resolves it",
    )


def _topic_defaults(value: Any, where: str, name: str) -> TopicDefaults:
    if value is None:
        return TopicDefaults()
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: connector '{name}': 'topics' must be a mapping")
    check_known_keys(value, TOPIC_KEYS, f"{where}: connector '{name}', topics")
    try:
        return TopicDefaults(
            partitions=int(value.get("partitions", 1)),
            replication_factor=int(value.get("replication_factor", -1)),
            cleanup_policy=str(value.get("cleanup_policy", TopicDefaults.cleanup_policy)),
            retention_ms=int(value["retention_ms"])
            if value.get("retention_ms") is not None
            else TopicDefaults.retention_ms,
        )
    except (TypeError, ValueError):
        raise ConfigError(
            f"{where}: connector '{name}': topics.partitions, replication_factor and retention_ms must be integers"
        ) from None


# Names that hold secrets. Only their config-provider references may appear in a spec.
SECRET_KEY = re.compile(
    r"(password|passwd|secret|token|credential|jaas\.config|(^|[._-])(api|private|access|signing|secret)[._-]?key$)",
    re.IGNORECASE,
)
PROVIDER_REFERENCE = re.compile(r"^\$\{[a-zA-Z0-9_]+:[^}]*\}$")


def is_secret_key(key: str) -> bool:
    return SECRET_KEY.search(key) is not None


def _overrides(value: Any, where: str, name: str) -> dict[str, str | SecretRef]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(
            f"{where}: connector '{name}': 'overrides' must be a mapping of Connect keys"
        )
    lines: dict[str, int] = getattr(value, "lines", {})
    result: dict[str, str | SecretRef] = {}
    for key, raw in value.items():
        here = f"{where.rsplit(':', 1)[0]}:{lines[key]}" if key in lines else where
        if isinstance(raw, dict):
            result[key] = _secret_ref(raw, f"{here}: connector '{name}', overrides.{key}")
            continue
        if isinstance(raw, list | tuple):
            text = ",".join(str(v) for v in raw)
        elif isinstance(raw, bool):
            text = "true" if raw else "false"
        elif raw is None:
            text = ""
        else:
            text = str(raw)
        if is_secret_key(key) and text and not PROVIDER_REFERENCE.match(text):
            raise ConfigError(
                f"{here}: connector '{name}', overrides.{key}: secret values must not be written in clear",
                hint="write {env: VAR} or {file: /path/to.properties, key: KEY} instead",
            )
        result[key] = text
    return result

"""One settings object for every endpoint seam talks to.

Precedence, lowest first: built-in defaults (the embedded local stack), the config file,
environment variables, command-line flags. The config file is TOML:

    [kafka]
    bootstrap_servers = "127.0.0.1:19092"
    security_protocol = "SASL_SSL"    # PLAINTEXT (default), SSL, SASL_PLAINTEXT, SASL_SSL
    sasl_mechanism = "SCRAM-SHA-512"  # PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER
    sasl_username = "seam"
    sasl_password_file = "/run/secrets/kafka"  # or sasl_password, or SEAM_KAFKA_SASL_PASSWORD
    ssl_ca_location = "/etc/ssl/kafka-ca.pem"  # and ssl_certificate_location, ssl_key_location,
                                               # ssl_key_password(_file) for a client certificate

    [kafka.properties]          # any other librdkafka property, for every client
    "client.dns.lookup" = "use_all_dns_ips"

    [connect]
    url = "http://127.0.0.1:18083"
    username = "admin"          # optional basic auth
    password = "..."            # or SEAM_CONNECT_PASSWORD, or password_file
    verify_tls = true           # or a path to a CA bundle

    [databases]                 # legacy databases by name
    postgres = "postgresql://postgres:...@127.0.0.1:15432/catalog"
    mariadb = "mysql://root:...@127.0.0.1:13306/catalog"

    [stack]                     # the embedded local stack
    dir = "/var/lib/seam/stack"
    kafka_port = 19092
    secure_listeners = false    # also a SASL/SCRAM and a TLS listener (kafka_sasl_port, kafka_ssl_port)
    connect_basic_auth = false  # Connect's REST API asks for a password

Every key has an environment variable `SEAM_<SECTION>_<KEY>` (for example
`SEAM_CONNECT_URL`, `SEAM_DATABASES_POSTGRES`), except the [kafka.properties] table. Every
secret (`password`, `sasl_password`, `ssl_key_password`) may instead be read from a file named
by the same key with `_file` appended. Unknown keys in the file are an error.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from seam.errors import ConfigError
from seam.kafka_config import KafkaSettings
from seam.keys import check_known_keys
from seam.secrets import Secret, mask_url, read_secret_file

CONFIG_ENV: Final = "SEAM_CONFIG"
LOCAL_CONFIG_FILE: Final = Path("seam.toml")

# The local stack's own credentials. It listens on loopback only; real deployments set
# their own URLs and passwords through the config file or the environment.
LOCAL_PASSWORD: Final = "seam-local"
LOCAL_DATABASE: Final = "catalog"
# The user the local stack's SCRAM listener and Connect's basic auth know (password LOCAL_PASSWORD).
LOCAL_USER: Final = "seam"


def _default_stack_dir() -> Path:
    # As root the databases run as an unprivileged user, who cannot enter /root.
    if os.geteuid() == 0:
        return Path("/var/lib/seam/stack")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "seam" / "stack"


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "seam"


@dataclass(frozen=True)
class StackSettings:
    """Where the embedded local stack keeps its data and which ports it listens on."""

    dir: Path = field(default_factory=_default_stack_dir)
    cache_dir: Path = field(default_factory=_default_cache_dir)
    host: str = "127.0.0.1"
    kafka_port: int = 19092
    controller_port: int = 19093
    connect_port: int = 18083
    postgres_port: int = 15432
    mariadb_port: int = 13306
    # With secure_listeners the broker also listens with SASL/SCRAM (SASL_PLAINTEXT) and TLS
    # (client certificates required), for trying out and testing a secured cluster's settings.
    kafka_sasl_port: int = 19094
    kafka_ssl_port: int = 19095
    kafka_heap: str = "512m"
    connect_heap: str = "512m"
    secure_listeners: bool = False
    # Connect's REST API asks for basic auth (user LOCAL_USER, password LOCAL_PASSWORD).
    connect_basic_auth: bool = False

    def ports(self) -> dict[str, int]:
        """Each port setting by name, for checks that must name the setting to change."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name.endswith("_port")
        }

    @property
    def tls_dir(self) -> Path:
        """Where `secure_listeners` keeps the throwaway CA and the broker's and a client's
        certificates (ca.pem, client.pem, client.key, whose password is LOCAL_PASSWORD)."""
        return self.dir / "tls"


@dataclass(frozen=True)
class Settings:
    """Every endpoint seam talks to. Build it with `load_settings`."""

    stack: StackSettings
    kafka: KafkaSettings
    connect_url: str
    connect_username: str | None = None
    connect_password: Secret | None = None
    connect_verify_tls: bool | str = True
    databases: Mapping[str, Secret] = field(default_factory=dict)
    config_file: Path | None = None

    @property
    def kafka_bootstrap_servers(self) -> str:
        return self.kafka.bootstrap_servers

    def connect_auth(self) -> tuple[str, str] | None:
        """(username, password) for Connect's basic auth, or None without a username."""
        if not self.connect_username:
            return None
        password = self.connect_password.reveal() if self.connect_password else ""
        return (self.connect_username, password)

    def database_url(self, name_or_url: str) -> str:
        """The URL of a database given by settings name, or the URL itself."""
        if "://" in name_or_url:
            return name_or_url
        try:
            return self.databases[name_or_url].reveal()
        except KeyError:
            known = ", ".join(sorted(self.databases)) or "none"
            raise ConfigError(
                f"no database named '{name_or_url}' in the settings (known: {known})",
                hint=f"add it under [databases] in the config file or set SEAM_DATABASES_{name_or_url.upper()}",
            ) from None

    def describe(self) -> dict[str, Any]:
        """The settings as plain values with every secret masked, for display."""
        return {
            "config_file": str(self.config_file) if self.config_file else None,
            **self.kafka.describe(),
            "connect.url": self.connect_url,
            "connect.username": self.connect_username,
            "connect.password": str(self.connect_password) if self.connect_password else None,
            "connect.verify_tls": self.connect_verify_tls,
            **{f"databases.{k}": mask_url(v.reveal()) for k, v in sorted(self.databases.items())},
            **{
                f"stack.{f.name}": str(getattr(self.stack, f.name))
                for f in dataclasses.fields(self.stack)
            },
        }


_KAFKA_KEYS: Final = {
    "bootstrap_servers",
    "security_protocol",
    "sasl_mechanism",
    "sasl_username",
    "sasl_password",
    "sasl_password_file",
    "ssl_ca_location",
    "ssl_certificate_location",
    "ssl_key_location",
    "ssl_key_password",
    "ssl_key_password_file",
}
_SECTIONS: Final = {
    "kafka": _KAFKA_KEYS | {"properties"},
    "connect": {"url", "username", "password", "password_file", "verify_tls"},
    "stack": {f.name for f in dataclasses.fields(StackSettings)},
}
# Tables, not values: no environment variable sets them.
_NOT_FROM_ENV: Final = {"properties"}


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    check_known_keys(data, [*_SECTIONS, "databases"], f"config file {path}")
    for section, keys in _SECTIONS.items():
        body = data.get(section, {})
        if not isinstance(body, dict):
            raise ConfigError(f"config file {path}: [{section}] must be a table")
        check_known_keys(body, keys, f"config file {path}, section [{section}]")
    properties = data.get("kafka", {}).get("properties", {})
    if not isinstance(properties, dict) or not all(
        isinstance(v, str | int | float | bool) for v in properties.values()
    ):
        raise ConfigError(
            f"config file {path}: [kafka.properties] must map librdkafka property names to values",
            hint='for example: [kafka.properties] then "client.dns.lookup" = "use_all_dns_ips"',
        )
    databases = data.get("databases", {})
    if not isinstance(databases, dict) or not all(isinstance(v, str) for v in databases.values()):
        raise ConfigError(f"config file {path}: [databases] must map names to URL strings")
    return data


def _read_env(env: Mapping[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for section, keys in _SECTIONS.items():
        for key in keys - _NOT_FROM_ENV:
            value = env.get(f"SEAM_{section.upper()}_{key.upper()}")
            if value is not None:
                data.setdefault(section, {})[key] = value
    prefix = "SEAM_DATABASES_"
    for name, value in env.items():
        if name.startswith(prefix) and len(name) > len(prefix):
            data.setdefault("databases", {})[name[len(prefix) :].lower()] = value
    return data


def _merge(*layers: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for section, body in layer.items():
            values = {k: v for k, v in body.items() if v is not None}
            target = merged.setdefault(section, {})
            for key in values:
                # A secret given one way in a later layer replaces one given the other way.
                target.pop(
                    key.removesuffix("_file") if key.endswith("_file") else f"{key}_file", None
                )
            target.update(values)
    return merged


def _coerce_stack(values: Mapping[str, Any]) -> StackSettings:
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(StackSettings):
        if f.name not in values:
            continue
        raw = values[f.name]
        if f.name.endswith("_port"):
            try:
                port = int(raw)
            except (TypeError, ValueError):
                raise ConfigError(f"stack.{f.name}: expected a port number, got {raw!r}") from None
            if not 1 <= port <= 65535:
                raise ConfigError(
                    f"stack.{f.name}: expected a port between 1 and 65535, got {port}"
                )
            kwargs[f.name] = port
        elif f.name.endswith("dir"):
            kwargs[f.name] = Path(str(raw)).expanduser()
        elif f.type in (bool, "bool"):
            kwargs[f.name] = _coerce_bool(raw, f"stack.{f.name}")
        else:
            kwargs[f.name] = str(raw)
    return StackSettings(**kwargs)


def _coerce_bool(raw: Any, setting: str) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in {"true", "1", "yes"}:
        return True
    if text in {"false", "0", "no"}:
        return False
    raise ConfigError(f"{setting}: expected true or false, got {raw!r}")


def _secret(values: Mapping[str, Any], key: str, section: str) -> Secret | None:
    """The secret `key` of a section, given in clear or by a file (`<key>_file`), not both."""
    value, file = values.get(key), values.get(f"{key}_file")
    if value is not None and file is not None:
        raise ConfigError(
            f"both {section}.{key} and {section}.{key}_file are set",
            hint=f"keep one of them (SEAM_{section.upper()}_{key.upper()} or SEAM_{section.upper()}_{key.upper()}_FILE)",
        )
    if file is not None:
        return read_secret_file(str(file), f"{section}.{key}_file")
    return Secret(str(value)) if value not in (None, "") else None


def _path(value: Any) -> Path | None:
    return None if value in (None, "") else Path(str(value)).expanduser()


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _property_value(value: Any) -> str:
    # librdkafka reads every property as text; TOML's true is its "true".
    return str(value).lower() if isinstance(value, bool) else str(value)


def _coerce_kafka(values: Mapping[str, Any], stack: StackSettings) -> KafkaSettings:
    protocol = _text(values.get("security_protocol"))
    mechanism = _text(values.get("sasl_mechanism"))
    return KafkaSettings(
        bootstrap_servers=str(values.get("bootstrap_servers", f"{stack.host}:{stack.kafka_port}")),
        security_protocol=protocol.upper() if protocol else "PLAINTEXT",
        sasl_mechanism=mechanism.upper() if mechanism else None,
        sasl_username=_text(values.get("sasl_username")),
        sasl_password=_secret(values, "sasl_password", "kafka"),
        ssl_ca_location=_path(values.get("ssl_ca_location")),
        ssl_certificate_location=_path(values.get("ssl_certificate_location")),
        ssl_key_location=_path(values.get("ssl_key_location")),
        ssl_key_password=_secret(values, "ssl_key_password", "kafka"),
        properties={
            str(k): _property_value(v) for k, v in dict(values.get("properties", {})).items()
        },
    )


def _coerce_verify(raw: Any) -> bool | str:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip()
    if text.lower() in {"true", "1", "yes"}:
        return True
    if text.lower() in {"false", "0", "no"}:
        return False
    return text  # a CA bundle path


def find_config_file(explicit: Path | None, env: Mapping[str, str]) -> Path | None:
    """The config file to read: the flag, then $SEAM_CONFIG, then ./seam.toml if present."""
    if explicit is not None:
        return explicit
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    return LOCAL_CONFIG_FILE if LOCAL_CONFIG_FILE.is_file() else None


def load_settings(
    *,
    config_file: Path | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings from defaults, the config file, the environment and `overrides` (flags)."""
    env = os.environ if env is None else env
    path = find_config_file(config_file, env)
    file_data = _read_file(path) if path else {}
    merged = _merge(file_data, _read_env(env), overrides or {})

    stack = _coerce_stack(merged.get("stack", {}))
    kafka = merged.get("kafka", {})
    connect = merged.get("connect", {})
    databases = {
        "postgres": f"postgresql://postgres:{LOCAL_PASSWORD}@{stack.host}:{stack.postgres_port}/{LOCAL_DATABASE}",
        "mariadb": f"mysql://root:{LOCAL_PASSWORD}@{stack.host}:{stack.mariadb_port}/{LOCAL_DATABASE}",
        **merged.get("databases", {}),
    }
    username = connect.get("username")
    password = _secret(connect, "password", "connect")
    if stack.connect_basic_auth and "url" not in connect and username is None:
        # The local stack's Connect asks for its own local credentials.
        username, password = LOCAL_USER, password or Secret(LOCAL_PASSWORD)
    return Settings(
        stack=stack,
        kafka=_coerce_kafka(kafka, stack),
        connect_url=str(connect.get("url", f"http://{stack.host}:{stack.connect_port}")).rstrip(
            "/"
        ),
        connect_username=username,
        connect_password=password,
        connect_verify_tls=_coerce_verify(connect.get("verify_tls", True)),
        databases={name: Secret(str(url)) for name, url in databases.items()},
        config_file=path,
    )

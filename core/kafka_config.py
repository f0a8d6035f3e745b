"""The configuration of every Kafka client seam makes, built in this one place.

`KafkaSettings` is the `[kafka]` section of the settings: where the cluster is and how to
reach it (TLS, SASL, and a pass-through table of librdkafka properties for the rest).
`client_config` turns it into the librdkafka configuration of one client: the connection
part first, the pass-through properties next, and the client's own properties (a worker's
transactional id, a reader's isolation level) last, so that no setting can change what a
client guarantees. Every producer, consumer and admin client of seam is built from it.

confluent_kafka is not imported here: building a configuration needs no client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from seam.errors import ConfigError
from seam.secrets import MASK, Secret

SECURITY_PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
# OAUTHBEARER takes its own properties (`sasl.oauthbearer.*`) from the pass-through table.
SASL_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
_PASSWORD_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

# librdkafka properties that have a setting of their own: the pass-through table must not
# set them (two places for one value is one too many).
OWN_PROPERTIES: Final = {
    "bootstrap.servers": "bootstrap_servers",
    "metadata.broker.list": "bootstrap_servers",
    "security.protocol": "security_protocol",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.mechanisms": "sasl_mechanism",
    "sasl.username": "sasl_username",
    "sasl.password": "sasl_password",
    "ssl.ca.location": "ssl_ca_location",
    "ssl.certificate.location": "ssl_certificate_location",
    "ssl.key.location": "ssl_key_location",
    "ssl.key.password": "ssl_key_password",
}
# Words that make a pass-through property a secret: masked wherever settings are shown.
_SECRET_WORDS: Final = ("password", "secret", "token", "sasl.jaas.config")


def _env(key: str) -> str:
    return f"SEAM_KAFKA_{key.upper()}"


def _where(key: str) -> str:
    return f"kafka.{key} (or {_env(key)})"


def is_secret_property(name: str) -> bool:
    """Whether a librdkafka property holds a secret (its value is never shown)."""
    return any(word in name.lower() for word in _SECRET_WORDS)


@dataclass(frozen=True)
class KafkaSettings:
    """How seam's Kafka clients reach the cluster. Checked for consistency when built;
    the files it names are checked when a client is made (`client_config`), so that
    `seam stack up` can create the files the settings name."""

    bootstrap_servers: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: Secret | None = None
    ssl_ca_location: Path | None = None
    ssl_certificate_location: Path | None = None
    ssl_key_location: Path | None = None
    ssl_key_password: Secret | None = None
    properties: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._check()

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def _check(self) -> None:
        if not self.bootstrap_servers.strip():
            raise ConfigError(
                "kafka.bootstrap_servers is empty",
                hint="set it to HOST:PORT[,HOST:PORT...]: --kafka, SEAM_KAFKA_BOOTSTRAP_SERVERS or [kafka] in the config file",
            )
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise ConfigError(
                f"{_where('security_protocol')}: expected one of {', '.join(SECURITY_PROTOCOLS)}, "
                f"got {self.security_protocol!r}"
            )
        self._check_sasl()
        self._check_tls()
        for name in self.properties:
            if name in OWN_PROPERTIES:
                raise ConfigError(
                    f"[kafka.properties] sets '{name}', which has a setting of its own",
                    hint=f"set kafka.{OWN_PROPERTIES[name]} instead (or {_env(OWN_PROPERTIES[name])})",
                )

    def _check_sasl(self) -> None:
        given = [
            key
            for key in ("sasl_mechanism", "sasl_username", "sasl_password")
            if getattr(self, key) is not None
        ]
        if not self.uses_sasl:
            if given:
                raise ConfigError(
                    f"{', '.join('kafka.' + k for k in given)} set, but kafka.security_protocol is "
                    f"{self.security_protocol}, which does not use SASL",
                    hint="set kafka.security_protocol to SASL_SSL (or SASL_PLAINTEXT), or drop the SASL settings",
                )
            return
        if self.sasl_mechanism is None:
            raise ConfigError(
                f"kafka.security_protocol is {self.security_protocol} but no SASL mechanism is set",
                hint=f"set {_where('sasl_mechanism')} to one of {', '.join(SASL_MECHANISMS)}",
            )
        if self.sasl_mechanism not in SASL_MECHANISMS:
            raise ConfigError(
                f"{_where('sasl_mechanism')}: expected one of {', '.join(SASL_MECHANISMS)}, "
                f"got {self.sasl_mechanism!r}"
            )
        if self.sasl_mechanism in _PASSWORD_MECHANISMS:
            missing = [
                key for key in ("sasl_username", "sasl_password") if getattr(self, key) is None
            ]
            if missing:
                raise ConfigError(
                    f"SASL mechanism {self.sasl_mechanism} needs "
                    + " and ".join(f"kafka.{k}" for k in missing),
                    hint=f"set {' and '.join(_env(k) for k in missing)} (the password may also "
                    "come from a file: kafka.sasl_password_file)",
                )
        elif self.sasl_username is not None or self.sasl_password is not None:
            raise ConfigError(
                "SASL mechanism OAUTHBEARER takes no kafka.sasl_username / kafka.sasl_password",
                hint="configure the token source with sasl.oauthbearer.* properties in [kafka.properties]",
            )

    def _check_tls(self) -> None:
        given = [
            key
            for key in (
                "ssl_ca_location",
                "ssl_certificate_location",
                "ssl_key_location",
                "ssl_key_password",
            )
            if getattr(self, key) is not None
        ]
        if given and not self.uses_tls:
            raise ConfigError(
                f"{', '.join('kafka.' + k for k in given)} set, but kafka.security_protocol is "
                f"{self.security_protocol}, which does not use TLS",
                hint="set kafka.security_protocol to SSL or SASL_SSL, or drop the ssl_* settings",
            )
        if (self.ssl_certificate_location is None) != (self.ssl_key_location is None):
            have, lack = (
                ("ssl_certificate_location", "ssl_key_location")
                if self.ssl_key_location is None
                else ("ssl_key_location", "ssl_certificate_location")
            )
            raise ConfigError(
                f"kafka.{have} is set without kafka.{lack}: a client certificate needs its key",
                hint=f"set {_where(lack)} too, or neither",
            )
        if self.ssl_key_password is not None and self.ssl_key_location is None:
            raise ConfigError(
                "kafka.ssl_key_password is set without kafka.ssl_key_location",
                hint="set the key's path in kafka.ssl_key_location, or drop the password",
            )

    def _check_files(self) -> None:
        for key in ("ssl_ca_location", "ssl_certificate_location", "ssl_key_location"):
            path: Path | None = getattr(self, key)
            if path is not None and not path.is_file():
                raise ConfigError(
                    f"{_where(key)}: the file {path} does not exist",
                    hint=f"point kafka.{key} at the PEM file"
                    + (
                        " (seam stack up --secure-listeners writes the local stack's)"
                        if "ca" in key
                        else ""
                    ),
                )

    def connection_config(self) -> dict[str, Any]:
        """The librdkafka properties that say where the cluster is and how to reach it."""
        self._check_files()
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism is not None:
            config["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username is not None:
            config["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            config["sasl.password"] = self.sasl_password.reveal()
        for key in ("ssl_ca_location", "ssl_certificate_location", "ssl_key_location"):
            path = getattr(self, key)
            if path is not None:
                config[key.replace("_", ".")] = str(path)
        if self.ssl_key_password is not None:
            config["ssl.key.password"] = self.ssl_key_password.reveal()
        config.update(self.properties)
        return config

    def client_config(self, own: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The whole configuration of one client: the connection, then the client's `own`
        properties (which win: they are what the client relies on)."""
        return {**self.connection_config(), **(own or {})}

    def describe(self) -> dict[str, Any]:
        """The settings as plain values for display, every secret masked."""

        def shown(value: Any) -> Any:
            if isinstance(value, Secret):
                return str(value)
            return str(value) if isinstance(value, Path) else value

        out: dict[str, Any] = {
            f"kafka.{key}": shown(getattr(self, key))
            for key in (
                "bootstrap_servers",
                "security_protocol",
                "sasl_mechanism",
                "sasl_username",
                "sasl_password",
                "ssl_ca_location",
                "ssl_certificate_location",
                "ssl_key_location",
                "ssl_key_password",
            )
        }
        for name, value in sorted(self.properties.items()):
            out[f"kafka.properties.{name}"] = MASK if is_secret_property(name) else value
        return out

    def __repr__(self) -> str:
        shown = ", ".join(f"{k.removeprefix('kafka.')}={v!r}" for k, v in self.describe().items())
        return f"KafkaSettings({shown})"


def kafka_settings(kafka: KafkaSettings | str) -> KafkaSettings:
    """`kafka` itself, or for a bare bootstrap address (scripts, tests) a plaintext cluster."""
    return kafka if isinstance(kafka, KafkaSettings) else KafkaSettings(bootstrap_servers=kafka)


def client_config(
    kafka: KafkaSettings | str, own: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The configuration of one client of the cluster `kafka` (see `KafkaSettings.client_config`)."""
    return kafka_settings(kafka).client_config(own)

"""The Kafka client settings: what each client is configured with, the contradictions and
omissions refused with the setting to fix, and secrets that never show."""

from __future__ import annotations

from pathlib import Path

import pytest

from seam.errors import ConfigError
from seam.kafka_config import KafkaSettings, client_config
from seam.secrets import MASK, Secret
from seam.settings import LOCAL_PASSWORD, LOCAL_USER, load_settings

pytestmark = pytest.mark.unit


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_by_default_a_client_gets_the_address_and_plaintext() -> None:
    kafka = load_settings(env={}).kafka
    assert kafka.client_config() == {
        "bootstrap.servers": "127.0.0.1:19092",
        "security.protocol": "PLAINTEXT",
    }
    assert client_config("h:1", {"group.id": "g"}) == {
        "bootstrap.servers": "h:1",
        "security.protocol": "PLAINTEXT",
        "group.id": "g",
    }


def test_a_managed_cluster_from_file_and_environment(tmp_path: Path) -> None:
    ca = _write(tmp_path / "ca.pem", "CA")
    config = _write(
        tmp_path / "seam.toml",
        f"""
[kafka]
bootstrap_servers = "broker.example:9093"
security_protocol = "sasl_ssl"
sasl_mechanism = "scram-sha-512"
sasl_username = "svc-seam"
ssl_ca_location = "{ca}"

[kafka.properties]
"client.dns.lookup" = "use_all_dns_ips"
"socket.keepalive.enable" = true
"client.id" = "from-the-table"
""",
    )
    settings = load_settings(config_file=config, env={"SEAM_KAFKA_SASL_PASSWORD": "s3cret"})
    conf = settings.kafka.client_config({"client.id": "the-worker", "enable.idempotence": True})
    assert conf == {
        "bootstrap.servers": "broker.example:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc-seam",
        "sasl.password": "s3cret",
        "ssl.ca.location": str(ca),
        "client.dns.lookup": "use_all_dns_ips",
        "socket.keepalive.enable": "true",
        # The client's own properties win over the pass-through table.
        "client.id": "the-worker",
        "enable.idempotence": True,
    }


def test_a_client_certificate_with_an_encrypted_key(tmp_path: Path) -> None:
    files = {n: _write(tmp_path / n, n) for n in ("ca.pem", "client.pem", "client.key")}
    kafka = KafkaSettings(
        "b:9093",
        security_protocol="SSL",
        ssl_ca_location=files["ca.pem"],
        ssl_certificate_location=files["client.pem"],
        ssl_key_location=files["client.key"],
        ssl_key_password=Secret("k3y"),
    )
    conf = kafka.client_config()
    assert conf["ssl.certificate.location"] == str(files["client.pem"])
    assert conf["ssl.key.location"] == str(files["client.key"])
    assert conf["ssl.key.password"] == "k3y"


def test_secrets_come_from_files_and_the_later_layer_wins(tmp_path: Path) -> None:
    secret = _write(tmp_path / "pw", "from-a-file\n")
    config = _write(
        tmp_path / "seam.toml",
        '[kafka]\nsecurity_protocol = "SASL_PLAINTEXT"\nsasl_mechanism = "PLAIN"\n'
        'sasl_username = "u"\nsasl_password = "in-the-file"\n',
    )
    env = {"SEAM_KAFKA_SASL_PASSWORD_FILE": str(secret)}
    kafka = load_settings(config_file=config, env=env).kafka
    assert kafka.sasl_password == Secret("from-a-file")
    both = _write(
        tmp_path / "both.toml",
        '[connect]\npassword = "a"\npassword_file = "/nowhere"\n',
    )
    with pytest.raises(ConfigError, match=r"both connect\.password and connect\.password_file"):
        load_settings(config_file=both, env={})
    with pytest.raises(
        ConfigError, match=r"kafka.sasl_password_file: the file /no/such does not exist"
    ):
        load_settings(config_file=config, env={"SEAM_KAFKA_SASL_PASSWORD_FILE": "/no/such"})


@pytest.mark.parametrize(
    ("env", "message", "fix"),
    [
        (
            {"SEAM_KAFKA_SECURITY_PROTOCOL": "TLS"},
            "expected one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL, got 'TLS'",
            None,
        ),
        (
            {"SEAM_KAFKA_SASL_MECHANISM": "PLAIN"},
            "kafka.sasl_mechanism set, but kafka.security_protocol is PLAINTEXT",
            "SASL_SSL",
        ),
        (
            {"SEAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
            "no SASL mechanism is set",
            "SEAM_KAFKA_SASL_MECHANISM",
        ),
        (
            {"SEAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "SEAM_KAFKA_SASL_MECHANISM": "GSSAPI"},
            "got 'GSSAPI'",
            None,
        ),
        (
            {
                "SEAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "SEAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
                "SEAM_KAFKA_SASL_PASSWORD": "x",
            },
            "SASL mechanism SCRAM-SHA-256 needs kafka.sasl_username",
            "SEAM_KAFKA_SASL_USERNAME",
        ),
        (
            {
                "SEAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "SEAM_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
                "SEAM_KAFKA_SASL_USERNAME": "u",
            },
            "OAUTHBEARER takes no kafka.sasl_username",
            "sasl.oauthbearer",
        ),
        (
            {"SEAM_KAFKA_SSL_CA_LOCATION": "/ca.pem"},
            "kafka.ssl_ca_location set, but kafka.security_protocol is PLAINTEXT",
            "SSL or SASL_SSL",
        ),
        (
            {"SEAM_KAFKA_SECURITY_PROTOCOL": "SSL", "SEAM_KAFKA_SSL_CERTIFICATE_LOCATION": "/c"},
            "kafka.ssl_certificate_location is set without kafka.ssl_key_location",
            "SEAM_KAFKA_SSL_KEY_LOCATION",
        ),
        (
            {"SEAM_KAFKA_SECURITY_PROTOCOL": "SSL", "SEAM_KAFKA_SSL_KEY_PASSWORD": "x"},
            "kafka.ssl_key_password is set without kafka.ssl_key_location",
            None,
        ),
        (
            {"SEAM_KAFKA_BOOTSTRAP_SERVERS": " "},
            "kafka.bootstrap_servers is empty",
            None,
        ),
    ],
)
def test_contradictory_or_incomplete_settings_name_the_fix(
    env: dict[str, str], message: str, fix: str | None
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env=env)
    assert message in caught.value.message
    if fix:
        assert fix in (caught.value.hint or "")


def test_the_pass_through_table_cannot_set_what_has_a_setting(tmp_path: Path) -> None:
    config = _write(tmp_path / "seam.toml", '[kafka.properties]\n"sasl.password" = "x"\n')
    with pytest.raises(ConfigError, match=r"'sasl\.password', which has a setting of its own") as e:
        load_settings(config_file=config, env={})
    assert "kafka.sasl_password" in (e.value.hint or "")
    bad = _write(tmp_path / "bad.toml", "[kafka]\nproperties = 3\n")
    with pytest.raises(ConfigError, match=r"\[kafka.properties\] must map"):
        load_settings(config_file=bad, env={})


def test_missing_files_are_named_when_a_client_is_made_not_before(tmp_path: Path) -> None:
    env = {"SEAM_KAFKA_SECURITY_PROTOCOL": "SSL", "SEAM_KAFKA_SSL_CA_LOCATION": "/no/ca.pem"}
    kafka = load_settings(env=env).kafka  # `seam stack up` may be about to create it
    with pytest.raises(ConfigError) as caught:
        kafka.client_config()
    assert caught.value.message == (
        "kafka.ssl_ca_location (or SEAM_KAFKA_SSL_CA_LOCATION): the file /no/ca.pem does not exist"
    )


def test_secrets_never_show(tmp_path: Path) -> None:
    key = _write(tmp_path / "k", "k")
    config = _write(
        tmp_path / "seam.toml",
        f"""
[kafka]
security_protocol = "SASL_SSL"
sasl_mechanism = "OAUTHBEARER"
ssl_certificate_location = "{key}"
ssl_key_location = "{key}"
ssl_key_password = "key-pw-1"
[kafka.properties]
"sasl.oauthbearer.method" = "oidc"
"sasl.oauthbearer.client.secret" = "oidc-secret-2"
""",
    )
    settings = load_settings(config_file=config, env={})
    shown = settings.describe()
    assert shown["kafka.ssl_key_password"] == MASK
    assert shown["kafka.properties.sasl.oauthbearer.client.secret"] == MASK
    assert shown["kafka.properties.sasl.oauthbearer.method"] == "oidc"
    for text in (str(shown), repr(settings), repr(settings.kafka)):
        assert "key-pw-1" not in text
        assert "oidc-secret-2" not in text
    sasl = KafkaSettings(
        "b:1",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="u",
        sasl_password=Secret("pw-3"),
    )
    assert "pw-3" not in repr(sasl)
    assert sasl.describe()["kafka.sasl_password"] == MASK


def test_the_local_stacks_connect_basic_auth_brings_its_credentials(tmp_path: Path) -> None:
    config = _write(tmp_path / "seam.toml", "[stack]\nconnect_basic_auth = true\n")
    assert load_settings(config_file=config, env={}).connect_auth() == (LOCAL_USER, LOCAL_PASSWORD)
    # Another Connect (its own URL) gets only the credentials the settings give it.
    elsewhere = load_settings(config_file=config, env={"SEAM_CONNECT_URL": "http://c:8083"})
    assert elsewhere.connect_auth() is None
    with pytest.raises(ConfigError, match=r"stack\.secure_listeners: expected true or false"):
        load_settings(env={"SEAM_STACK_SECURE_LISTENERS": "maybe"})


def test_librdkafka_errors_that_no_retry_cures_are_named() -> None:
    from confluent_kafka import KafkaError

    from seam.streams.kafka import (
        KafkaAuthenticationError,
        KafkaTlsError,
        connection_problem,
    )

    refused = connection_problem(
        KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error: invalid credentials"),
        "b:9096",
    )
    assert isinstance(refused, KafkaAuthenticationError)
    assert refused.message.startswith("Kafka at b:9096 refused to authenticate seam")
    unverified = connection_problem(
        KafkaError(KafkaError._SSL, "SSL handshake failed: certificate verify failed"), "b:9096"
    )
    assert isinstance(unverified, KafkaTlsError)
    assert "kafka.ssl_ca_location" in (unverified.hint or "")
    # The broker's refusal of a client without a certificate arrives as a transport error.
    no_cert = connection_problem(
        KafkaError(KafkaError._TRANSPORT, "Receive failed: ssl/tls alert bad certificate"), "b:1"
    )
    assert isinstance(no_cert, KafkaTlsError)
    assert (
        connection_problem(KafkaError(KafkaError._TRANSPORT, "Connection refused"), "b:1") is None
    )

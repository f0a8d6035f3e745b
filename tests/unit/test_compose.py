"""docker-compose.yml runs the same topology as the local stack, on the documented settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from seam.settings import StackSettings, load_settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def _host_ports(service: dict[str, Any]) -> dict[int, int]:
    """host port -> container port"""
    mapping = {}
    for entry in service.get("ports", []):
        *_, host, container = str(entry).split(":")
        mapping[int(host)] = int(container)
    return mapping


def test_services_are_the_local_stacks_parts(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"kafka", "connect", "postgres", "mysql"}


def test_host_ports_are_the_local_stacks_defaults(compose: dict[str, Any]) -> None:
    defaults = StackSettings()
    services = compose["services"]
    assert defaults.kafka_port in _host_ports(services["kafka"])
    assert _host_ports(services["connect"]) == {defaults.connect_port: 8083}
    assert _host_ports(services["postgres"]) == {defaults.postgres_port: 5432}
    assert _host_ports(services["mysql"]) == {defaults.mariadb_port: 3306}
    advertised = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert f"127.0.0.1:{defaults.kafka_port}" in advertised


def test_databases_are_configured_for_cdc(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]["command"]
    assert "wal_level=logical" in postgres
    mysql = compose["services"]["mysql"]["command"]
    for flag in ("--binlog-format=ROW", "--binlog-row-image=FULL", "--gtid-mode=ON"):
        assert flag in mysql
    assert any(f.startswith("--server-id=") for f in mysql)


def test_connect_has_the_config_providers_seam_renders_secrets_for(compose: dict[str, Any]) -> None:
    env = compose["services"]["connect"]["environment"]
    assert set(env["CONNECT_CONFIG_PROVIDERS"].split(",")) == {"env", "file"}
    assert "SEAM_CDC_PASSWORD" in env


def test_connect_allows_the_producer_overrides_seam_renders(compose: dict[str, Any]) -> None:
    from seam.connectors.render import PRODUCER_DEFAULTS
    from seam.stack.jars import JarLayout
    from seam.stack.kafka import Connect
    from seam.stack.part import StackPaths

    assert all(key.startswith("producer.override.") for key in PRODUCER_DEFAULTS)
    env = compose["services"]["connect"]["environment"]
    assert env["CONNECT_CONNECTOR_CLIENT_CONFIG_OVERRIDE_POLICY"] == "All"
    jars = JarLayout(kafka_classpath=Path("/jars/kafka"), plugin_path=Path("/jars/plugins"))
    local = Connect(StackSettings(), StackPaths(Path("/stack")), jars, Path("/usr/bin/java"))
    assert local._properties()["connector.client.config.override.policy"] == "All"


def test_documented_settings_reach_the_compose_services(compose: dict[str, Any]) -> None:
    settings = load_settings(config_file=ROOT / "examples" / "compose.toml", env={})
    services = compose["services"]
    assert (
        settings.connect_url == f"http://127.0.0.1:{next(iter(_host_ports(services['connect'])))}"
    )
    for name, service in (("postgres", "postgres"), ("mysql", "mysql")):
        url = urlsplit(settings.database_url(name))
        assert url.port in _host_ports(services[service])
        assert url.path == "/catalog"
    pg_env = services["postgres"]["environment"]
    assert urlsplit(settings.database_url("postgres")).password == pg_env["POSTGRES_PASSWORD"]
    assert (
        urlsplit(settings.database_url("mysql")).password
        == services["mysql"]["environment"]["MYSQL_ROOT_PASSWORD"]
    )

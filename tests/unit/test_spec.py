"""Connector specs: parsing, errors that point at the line, expansion and masking (no I/O)."""

from __future__ import annotations

from pathlib import Path

import pytest

from seam.connectors.render import (
    MANAGED_KEY,
    mask_config,
    pg_identifier,
    render,
    server_id_for,
)
from seam.connectors.spec import SecretRef, load_specs, parse_specs
from seam.errors import ConfigError
from seam.legacy_db.files import folder
from seam.secrets import MASK
from seam.settings import load_settings

pytestmark = pytest.mark.unit

SETTINGS = load_settings(env={})

PG = """\
name: catalog-postgres
flavour: postgres
database: postgres
user: seam_cdc
password: {env: SEAM_CDC_PASSWORD}
tables: [products, public.categories]
topic_prefix: catalog
publication: seam_catalog
overrides:
  max.batch.size: 4096
  provide.transaction.metadata: true
"""

MARIADB = """\
name: catalog-mariadb
flavour: mariadb
database: mariadb
password: {file: /etc/seam/cdc.properties}
tables: [products]
"""


def one(text: str) -> dict[str, str]:
    (spec,) = parse_specs(text, "spec.yaml")
    return render(spec, SETTINGS).config


def test_postgres_expansion_has_safe_defaults() -> None:
    config = one(PG)
    assert config["connector.class"] == "io.debezium.connector.postgresql.PostgresConnector"
    assert config["plugin.name"] == "pgoutput"
    assert config["publication.autocreate.mode"] == "filtered"
    assert config["publication.name"] == "seam_catalog"
    assert config["slot.name"] == "seam_catalog_postgres"
    assert config["database.hostname"] == "127.0.0.1"
    assert config["database.port"] == "15432"
    assert config["database.dbname"] == "catalog"
    assert config["database.user"] == "seam_cdc"
    assert config["database.password"] == "${env:SEAM_CDC_PASSWORD}"
    assert config["table.include.list"] == (
        "public.products,public.categories,public.seam_heartbeat,public.debezium_signal"
    )
    assert "public.seam_heartbeat" in config["heartbeat.action.query"]
    assert config["heartbeat.interval.ms"] == "10000"
    assert config["signal.data.collection"] == "public.debezium_signal"
    assert config["decimal.handling.mode"] == "string"
    assert config["tombstones.on.delete"] == "true"
    assert config["value.converter"] == "org.apache.kafka.connect.json.JsonConverter"
    assert config["topic.creation.default.partitions"] == "1"
    assert config["topic.creation.default.replication.factor"] == "-1"
    assert config["max.batch.size"] == "4096"
    assert config["provide.transaction.metadata"] == "true"
    assert config[MANAGED_KEY] == "true"
    # the superuser credentials of the settings URL never reach the connector
    assert "seam-local" not in str(config)


def test_mariadb_expansion() -> None:
    config = one(MARIADB)
    assert config["connector.class"] == "io.debezium.connector.mariadb.MariaDbConnector"
    assert config["database.server.id"] == str(server_id_for("catalog-mariadb"))
    assert config["database.include.list"] == "catalog"
    assert config["table.include.list"] == "catalog.products,catalog.debezium_signal"
    assert config["schema.history.internal.kafka.topic"] == "_seam.schema-history.catalog-mariadb"
    assert config["schema.history.internal.kafka.bootstrap.servers"] == "127.0.0.1:19092"
    assert config["database.password"] == "${file:/etc/seam/cdc.properties:password}"
    assert config["database.user"] == "seam_cdc"
    assert "plugin.name" not in config
    assert "heartbeat.action.query" not in config


def test_server_ids_are_deterministic_distinct_and_in_range() -> None:
    ids = {server_id_for(f"connector-{i}") for i in range(500)}
    assert len(ids) == 500
    assert all(100_000 <= i < 2**32 for i in ids)
    assert server_id_for("a") == server_id_for("a")


def test_pg_identifiers_are_valid_slot_names() -> None:
    assert pg_identifier("seam_", "Catalog-PG.v2") == "seam_catalog_pg_v2"
    long = pg_identifier("seam_", "x" * 100)
    assert len(long) == 63
    assert long != pg_identifier("seam_", "x" * 99)


def test_masking_hides_secrets_but_keeps_references() -> None:
    masked = mask_config(
        {
            "database.password": "hunter2",
            "sasl.jaas.config": "org.apache... password='x';",
            "ssl.truststore.password": "${file:/etc/p:pw}",
            "aws.secret.key": "abc",
            "api.key": "abc",
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "message.key.columns": "a:b",
            "url": "postgresql://u:pw@h/db",
        }
    )
    assert masked["database.password"] == MASK
    assert masked["sasl.jaas.config"] == MASK
    assert masked["ssl.truststore.password"] == "${file:/etc/p:pw}"
    assert masked["aws.secret.key"] == MASK
    assert masked["api.key"] == MASK
    assert masked["key.converter"].endswith("JsonConverter")
    assert masked["message.key.columns"] == "a:b"
    assert masked["url"] == f"postgresql://u:{MASK}@h/db"


def test_malformed_yaml_names_file_and_line() -> None:
    text = "name: x\nflavour: postgres\ntables: [a, b\ndatabase: postgres\n"
    with pytest.raises(ConfigError) as info:
        parse_specs(text, "bad.yaml")
    assert info.value.message.startswith("bad.yaml:")
    line = int(info.value.message.split(":")[1])
    assert line in (3, 4, 5)


def test_unknown_key_suggests_closest_with_line() -> None:
    text = PG + "snapshot_mod: never\n"
    with pytest.raises(ConfigError) as info:
        parse_specs(text, "pg.yaml")
    assert "pg.yaml:12" in info.value.message
    assert "'snapshot_mod'" in info.value.message
    assert "did you mean 'snapshot_mode'" in info.value.message


def test_duplicate_key_is_an_error() -> None:
    with pytest.raises(ConfigError, match="duplicate key 'tables'"):
        parse_specs(PG + "tables: [x]\n", "pg.yaml")


def test_missing_required_key() -> None:
    with pytest.raises(ConfigError, match="missing 'tables'") as info:
        parse_specs("name: x\nflavour: postgres\ndatabase: postgres\n", "s.yaml")
    assert "tables:" in (info.value.hint or "")


def test_clear_text_password_is_rejected() -> None:
    with pytest.raises(ConfigError, match="must be a reference"):
        parse_specs(PG.replace("{env: SEAM_CDC_PASSWORD}", "hunter2"), "pg.yaml")
    with pytest.raises(ConfigError, match="not be written in clear") as info:
        parse_specs(PG + "  database.password: hunter2\n", "pg.yaml")
    assert "hunter2" not in str(info.value)


def test_override_secret_reference_renders_as_provider_reference() -> None:
    config = one(PG + "  database.password: {env: OTHER_PW}\n")
    assert config["database.password"] == "${env:OTHER_PW}"


def test_missing_env_secret_says_which_one() -> None:
    ref = SecretRef("env", "SEAM_TEST_NOT_SET", where="pg.yaml:5: connector 'x', password")
    with pytest.raises(ConfigError) as info:
        ref.resolve(env={})
    assert "SEAM_TEST_NOT_SET" in info.value.message
    assert "pg.yaml:5" in info.value.message


def test_cdc_password_env_falls_back_to_local_default() -> None:
    assert SecretRef("env", "SEAM_CDC_PASSWORD").resolve(env={}).reveal() == "seam-cdc-local"
    assert (
        SecretRef("env", "SEAM_CDC_PASSWORD").resolve(env={"SEAM_CDC_PASSWORD": "p"}).reveal()
        == "p"
    )


def test_file_secret_resolution(tmp_path: Path) -> None:
    path = tmp_path / "cdc.properties"
    path.write_text("# comment\npassword = s3cret\nother=1\n")
    assert SecretRef("file", str(path)).resolve().reveal() == "s3cret"
    with pytest.raises(ConfigError, match="has no key 'nope'"):
        SecretRef("file", str(path), "nope").resolve()
    with pytest.raises(ConfigError, match="cannot read the secret file"):
        SecretRef("file", str(tmp_path / "missing")).resolve()


def test_unknown_flavour_and_snapshot_mode() -> None:
    with pytest.raises(ConfigError, match="unknown flavour 'oracle'"):
        parse_specs(PG.replace("flavour: postgres", "flavour: oracle"))
    with pytest.raises(ConfigError, match="unknown snapshot_mode 'sometimes'"):
        parse_specs(PG + "snapshot_mode: sometimes\n")


def test_list_and_multi_document_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(PG + "---\n" + MARIADB)
    listed = "- " + PG.replace("\n", "\n  ").replace("catalog-postgres", "other").rstrip() + "\n"
    (tmp_path / "b.yml").write_text(listed)
    specs = load_specs([tmp_path])
    assert [s.name for s in specs] == ["catalog-postgres", "catalog-mariadb", "other"]


def test_duplicate_connector_names_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(PG)
    (tmp_path / "b.yaml").write_text(PG)
    with pytest.raises(ConfigError, match="also defined"):
        load_specs([tmp_path])


def test_unknown_database_name_names_the_setting() -> None:
    (spec,) = parse_specs(PG.replace("database: postgres", "database: legacy"))
    with pytest.raises(ConfigError, match="no database named 'legacy'"):
        render(spec, SETTINGS)


def test_examples_parse_and_render() -> None:
    root = folder("connectors")
    specs = load_specs([root])
    assert {s.name for s in specs} >= {"catalog-postgres", "catalog-mariadb"}
    for spec in specs:
        config = render(spec, SETTINGS).config
        assert config["database.password"] == "${env:SEAM_CDC_PASSWORD}"

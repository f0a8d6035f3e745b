from __future__ import annotations

from pathlib import Path

import pytest

from seam.errors import ConfigError
from seam.secrets import MASK, Secret, mask_url
from seam.settings import load_settings

pytestmark = pytest.mark.unit


def test_defaults_point_at_the_local_stack() -> None:
    settings = load_settings(env={})
    assert settings.kafka_bootstrap_servers == "127.0.0.1:19092"
    assert settings.connect_url == "http://127.0.0.1:18083"
    assert settings.database_url("postgres").startswith("postgresql://postgres:")
    assert ":15432/catalog" in settings.database_url("postgres")
    assert ":13306/catalog" in settings.database_url("mariadb")


def test_ports_changed_in_the_file_move_the_default_endpoints(tmp_path: Path) -> None:
    config = tmp_path / "seam.toml"
    config.write_text("[stack]\nkafka_port = 29092\nconnect_port = 28083\n")
    settings = load_settings(config_file=config, env={})
    assert settings.kafka_bootstrap_servers == "127.0.0.1:29092"
    assert settings.connect_url == "http://127.0.0.1:28083"


def test_precedence_is_file_then_environment_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "seam.toml"
    config.write_text('[connect]\nurl = "http://file:1"\n[kafka]\nbootstrap_servers = "file:9"\n')
    env = {"SEAM_CONNECT_URL": "http://env:2"}
    settings = load_settings(
        config_file=config, env=env, overrides={"kafka": {"bootstrap_servers": "flag:3"}}
    )
    assert settings.connect_url == "http://env:2"
    assert settings.kafka_bootstrap_servers == "flag:3"


def test_unknown_keys_are_named_with_the_closest_valid_key(tmp_path: Path) -> None:
    config = tmp_path / "seam.toml"
    config.write_text('[connect]\nurll = "http://x"\n')
    with pytest.raises(ConfigError, match=r"unknown key 'urll' \(did you mean 'url'\?\)"):
        load_settings(config_file=config, env={})


def test_unknown_section_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "seam.toml"
    config.write_text("[kafak]\nbootstrap_servers = 'x'\n")
    with pytest.raises(ConfigError, match="'kafak' \\(did you mean 'kafka'\\?\\)"):
        load_settings(config_file=config, env={})


def test_malformed_file_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "seam.toml"
    config.write_text("[connect\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config_file=config, env={})


def test_bad_port_says_what_was_expected(tmp_path: Path) -> None:
    config = tmp_path / "seam.toml"
    config.write_text("[stack]\nkafka_port = 'abc'\n")
    with pytest.raises(ConfigError, match=r"stack\.kafka_port: expected a port number, got 'abc'"):
        load_settings(config_file=config, env={})


def test_databases_from_environment_and_unknown_name() -> None:
    settings = load_settings(env={"SEAM_DATABASES_SHOP": "postgresql://u:pw@h/db"})
    assert settings.database_url("shop") == "postgresql://u:pw@h/db"
    with pytest.raises(ConfigError, match="no database named 'nope'"):
        settings.database_url("nope")


def test_secrets_never_show_in_clear() -> None:
    settings = load_settings(
        env={"SEAM_CONNECT_PASSWORD": "hunter2", "SEAM_DATABASES_SHOP": "mysql://u:hunter2@h/db"}
    )
    shown = repr(settings) + str(settings.describe())
    assert "hunter2" not in shown
    assert MASK in shown
    assert str(Secret("x")) == MASK


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:pw@h:5432/db", f"postgresql://u:{MASK}@h:5432/db"),
        ("mysql+pymysql://root:p%40ss@h/db", f"mysql+pymysql://root:{MASK}@h/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("http://h:8083", "http://h:8083"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked

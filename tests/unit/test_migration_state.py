"""The migration directory: atomic JSON records, and a damaged one is a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from seam.errors import ConfigError
from seam.migration.state import DEFAULT_DIR, MigrationStore, migration_dir

pytestmark = pytest.mark.unit


def test_the_directory_comes_from_the_option_then_the_environment_then_the_default(
    tmp_path: Path,
) -> None:
    assert migration_dir(tmp_path, env={"SEAM_MIGRATION_DIR": "/elsewhere"}) == tmp_path
    assert migration_dir(None, env={"SEAM_MIGRATION_DIR": "/elsewhere"}) == Path("/elsewhere")
    assert migration_dir(None, env={}) == DEFAULT_DIR


def test_a_record_round_trips_and_a_missing_one_is_none(tmp_path: Path) -> None:
    store = MigrationStore(tmp_path / "m")
    assert store.read("parity/things.json") is None
    store.write("parity/things.json", {"clean": True, "differing": [3, 7]})
    assert store.read("parity/things.json") == {"clean": True, "differing": [3, 7]}
    store.write("parity/things.json", {"clean": False})
    assert store.read("parity/things.json") == {"clean": False}
    assert [p.name for p in (tmp_path / "m" / "parity").iterdir()] == ["things.json"]


def test_a_damaged_record_names_the_file(tmp_path: Path) -> None:
    store = MigrationStore(tmp_path)
    store.path("routes.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"routes\.json is damaged") as raised:
        store.read("routes.json")
    assert raised.value.hint

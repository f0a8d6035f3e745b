"""`seam history ...` without a broker: bad input is one SeamError naming the fix, before
any Kafka call; the default index path is per cluster and topic."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from seam.cli.main import app
from seam.errors import SeamError
from seam.legacy_db.files import folder
from seam.services.history_index import default_index

pytestmark = pytest.mark.unit

CATALOG = folder("pipelines") / "catalog.yaml"
NO_BROKER = ("--kafka", "127.0.0.1:1")


def run(tmp_path: Path, *args: str) -> SeamError:
    index = str(tmp_path / "index.sqlite")
    result = CliRunner().invoke(
        app, [*NO_BROKER, "history", *args, "--index", index, "--no-update"]
    )
    assert result.exit_code == 1
    assert isinstance(result.exception, SeamError)
    return result.exception


def test_bad_input_is_one_error_with_a_hint(tmp_path: Path) -> None:
    both = run(tmp_path, "as-of", str(CATALOG), "42", "--at", "2026-01-01", "--position", "0/1")
    assert both.message == "--at and --position both given"
    bad = run(tmp_path, "as-of", str(CATALOG), "42", "--position", "yesterday")
    assert bad.message == "'yesterday' is not a source position"
    assert bad.hint is not None
    assert "0/16B3748" in bad.hint
    field = run(tmp_path, "why", str(CATALOG), "42", "prise")
    assert "(did you mean 'price'?)" in field.message
    # The index is empty (nothing read: --no-update): the key is unknown, and says how to fix.
    missing = run(tmp_path, "timeline", str(CATALOG), "42")
    assert missing.message.startswith("key 42 has no events in 'catalog.product-events'")
    assert missing.hint is not None
    assert "seam history index" in missing.hint


def test_default_index_is_per_cluster_and_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", "/data")
    path = default_index("broker-1:9092,broker-2:9092", "shop.order-events")
    assert path == Path("/data/seam/history/broker-1_9092/shop.order-events.sqlite")

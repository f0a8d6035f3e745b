"""`seam legacy strangle`'s set-up: its state directory and the copies of the service and
routes files it runs (the walkthrough itself: tests/integration/test_strangle.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from seam.errors import SeamError
from seam.legacy_db.files import folder
from seam.legacy_db.strangle import (
    MARKER,
    Options,
    prepare_state,
    routes_file,
    service_file,
    writes_file,
)
from seam.migration.routes import load_routes
from seam.settings import load_settings

pytestmark = pytest.mark.unit


def options(state: Path) -> Options:
    return Options(
        settings=load_settings(env={}),
        database="postgres",
        pipeline=folder("pipelines") / "catalog.yaml",
        service=folder("services") / "catalog.yaml",
        routes=folder("migration") / "routes.yaml",
        state=state,
        facade_port=9701,
        app_port=9791,
        service_port=9781,
    )


def test_the_state_directory_is_fresh_each_run_and_a_foreign_one_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    prepare_state(state)
    (state / "routes").mkdir()
    (state / "routes" / "product-details.json").write_text("{}")  # a previous run's record
    prepare_state(state)
    assert sorted(p.name for p in state.iterdir()) == [MARKER, "logs"]
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(SeamError) as caught:
        prepare_state(foreign)
    assert "holds files the walkthrough did not make" in caught.value.message
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_the_copies_take_the_walkthroughs_ports_and_state(tmp_path: Path) -> None:
    o = options(tmp_path)
    prepare_state(tmp_path)
    routes = load_routes(routes_file(o))
    assert routes.legacy_url == "http://127.0.0.1:9791"
    assert routes.new == {"catalog": "http://127.0.0.1:9781"}
    assert routes.capability("product-details") is not None
    service = yaml.safe_load(service_file(o).read_text())
    assert service["port"] == 9781
    assert Path(service["pipeline"]) == o.pipeline.resolve()
    assert service["snapshot"]["path"].startswith(str(tmp_path.resolve()))
    assert "history" not in service


@pytest.mark.parametrize(
    ("database", "source"),
    [("postgres", "writes.yaml"), ("mysql://u:p@127.0.0.1:3306/shop", "writes-mariadb.yaml")],
)
def test_the_service_copy_serves_the_commands_of_the_walkthroughs_writes_file(
    tmp_path: Path, database: str, source: str
) -> None:
    o = Options(**{**options(tmp_path).__dict__, "database": database})
    prepare_state(tmp_path)
    service = yaml.safe_load(service_file(o).read_text())
    assert Path(service["writes"]) == writes_file(o).resolve()
    writes = yaml.safe_load(writes_file(o).read_text())
    original = yaml.safe_load((folder("migration") / source).read_text())
    assert writes["commands"] == original["commands"]
    assert writes["apply"] == original["apply"]  # the flavour's SQL
    assert (writes["name"], writes["database"]) == (original["name"], database)
    assert Path(writes["pipeline"]) == o.pipeline.resolve()


def test_the_routes_copy_rewrites_the_legacy_write_paths_to_the_commands(tmp_path: Path) -> None:
    prepare_state(tmp_path)
    routes = load_routes(routes_file(options(tmp_path)))
    for capability, legacy, command in [
        ("rename", "/products/42/rename", "/product/42/name"),
        ("reprice", "/products/42/price", "/product/42/price"),
    ]:
        cap = routes.capability(capability)
        assert cap is not None
        assert cap.mode.kind == "legacy"  # until the walkthrough routes it
        params = next(m for p in cap.patterns if (m := p.match("POST", legacy)) is not None)
        assert cap.new_path(legacy, params) == command

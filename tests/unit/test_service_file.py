"""The service file: what it takes from the pipeline, and one clear error per problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from seam.errors import ConfigError
from seam.legacy_db.files import folder
from seam.services.service_file import load_service

pytestmark = pytest.mark.unit

PIPELINE = folder("pipelines") / "catalog.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "svc.yaml"
    path.write_text(text)
    return path


def test_the_example_service_takes_its_entity_from_the_declared_pipeline() -> None:
    spec = load_service(folder("services") / "catalog.yaml")
    assert spec.entity == "product"
    assert spec.key == ("product_id",)
    assert spec.topic == "catalog.products-latest"
    assert spec.fields[:2] == ("product_id", "sku")
    assert spec.indexes == ("sku", "ean")
    assert "category.id" in spec.filters
    assert spec.search == ("name", "description")
    assert spec.pipeline.group == "seam-transform-catalog"
    assert spec.port == 8780
    assert spec.snapshot_path.name == "product-catalog.products-latest.snapshot"


def test_paths_are_relative_to_the_service_file(tmp_path: Path) -> None:
    spec = load_service(
        write(tmp_path, f"pipeline: {PIPELINE}\nsnapshot: {{path: snap/img.bin, interval_s: 0}}\n")
    )
    assert spec.snapshot_path == tmp_path / "snap" / "img.bin"
    assert spec.snapshot_interval_s == 0
    assert spec.indexes == ()
    assert spec.page_size == 50


def test_history_is_off_unless_asked_for_and_its_index_is_relative_to_the_file(
    tmp_path: Path,
) -> None:
    assert not load_service(write(tmp_path, f"pipeline: {PIPELINE}\n")).history
    on = load_service(write(tmp_path, f"pipeline: {PIPELINE}\nhistory: true\n"))
    assert on.history
    assert on.history_index is None
    empty = load_service(write(tmp_path, f"pipeline: {PIPELINE}\nhistory:\n"))
    assert empty.history
    placed = load_service(
        write(tmp_path, f"pipeline: {PIPELINE}\nhistory: {{index: idx/h.sqlite}}\n")
    )
    assert placed.history
    assert placed.history_index == tmp_path / "idx" / "h.sqlite"
    path = write(tmp_path, f"pipeline: {PIPELINE}\nhistory: {{indx: h.sqlite}}\n")
    with pytest.raises(ConfigError) as caught:
        load_service(path)
    assert "'indx' (did you mean 'index'?)" in caught.value.message


def test_an_unknown_key_names_the_closest_valid_one_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, f"pipeline: {PIPELINE}\nindexs: [sku]\n")
    with pytest.raises(ConfigError) as caught:
        load_service(path)
    assert f"{path}:2:1" in caught.value.message
    assert "'indexs' (did you mean 'indexes'?)" in caught.value.message


def test_an_unknown_field_names_the_closest_state_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"pipeline: {PIPELINE}\nindexes: [sku]\nfilters: [staus, category.id]\n"
        "snapshot: {intervall_s: 3}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_service(path)
    message = caught.value.message
    assert f"{path}:3:11: filters: 'staus' is not a state field" in message
    assert "(did you mean 'status'?)" in message
    assert f"{path}:4:12" in message
    assert "'intervall_s' (did you mean 'interval_s'?)" in message


def test_a_pipeline_that_declares_no_entity_is_refused(tmp_path: Path) -> None:
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        "name: p\ngroup: g\ninputs: [t]\nstages: [{use: decode}]\noutputs:\n"
        "  history: {topic: h}\n  latest: {topic: l}\n  dead_letter: {topic: d}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_service(write(tmp_path, "pipeline: p.yaml\n"))
    assert "declares no entity" in caught.value.message
    assert caught.value.hint
    assert "declared pipeline" in caught.value.hint


def test_a_missing_pipeline_or_file_says_which(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_service(write(tmp_path, "pipeline: nowhere.yaml\n"))
    assert "nowhere.yaml" in caught.value.message
    with pytest.raises(ConfigError) as caught:
        load_service(tmp_path / "absent.yaml")
    assert "cannot read service file" in caught.value.message
    with pytest.raises(ConfigError) as caught:
        load_service(write(tmp_path, "indexes: [sku]\n"))
    assert "missing 'pipeline'" in caught.value.message

"""`seam transform schemas PIPELINE --write DIR`: derived schemas kept as versioned files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seam.errors import ConfigError
from seam.legacy_db.files import folder
from seam.transforms.compat import check_schema_set
from seam.transforms.declared.derive import derive
from seam.transforms.declared.schema_files import write_schemas
from seam.transforms.pipeline_file import load_pipeline
from seam.transforms.schemas import SchemaSet

pytestmark = pytest.mark.unit


def _derived() -> dict[str, dict]:  # type: ignore[type-arg]
    spec = load_pipeline(folder("pipelines") / "catalog-declared.yaml")
    assert spec.declaration is not None
    return derive(spec.declaration)


def test_writes_v1_then_nothing_then_the_next_version(tmp_path: Path) -> None:
    derived = _derived()
    first = write_schemas(derived, tmp_path)
    assert {r.result for r in first} == {"new"}
    assert (
        json.loads((tmp_path / "ProductRenamed" / "v1.json").read_text())
        == derived["ProductRenamed"]
    )
    again = write_schemas(derived, tmp_path)
    assert {r.result for r in again} == {"unchanged"}
    # A new optional field in the state is a compatible change: v2 is written.
    state = json.loads(json.dumps(derived["ProductState"]))
    state["properties"]["colour"] = {"type": "string"}
    changed = write_schemas({"ProductState": state}, tmp_path)
    assert [(r.name, r.version, r.result) for r in changed] == [("ProductState", 2, "written")]
    assert not [r for r in check_schema_set(SchemaSet.load(tmp_path).versions) if r.problems]


def test_an_incompatible_change_writes_nothing(tmp_path: Path) -> None:
    derived = _derived()
    write_schemas(derived, tmp_path)
    state = json.loads(json.dumps(derived["ProductState"]))
    state["required"].append("ean")  # a field that may be missing becomes required
    renamed = json.loads(json.dumps(derived["ProductRenamed"]))
    renamed["properties"]["data"]["properties"]["new_name"]["maxLength"] = 10
    with pytest.raises(ConfigError, match="ProductState") as raised:
        write_schemas({"ProductState": state, "ProductRenamed": renamed}, tmp_path)
    assert "nothing was written" in str(raised.value.hint)
    assert not (tmp_path / "ProductState" / "v2.json").exists()
    assert not (tmp_path / "ProductRenamed" / "v2.json").exists()


def test_events_of_the_declared_catalog_validate_against_the_derived_schemas() -> None:
    """A declared pipeline validates against its derived schemas until they are written."""
    from seam.changes import RawRecord
    from seam.legacy_db.synthetic import typical_changes
    from seam.transforms.pipeline import Produced
    from seam.transforms.pipeline_file import parse_pipeline
    from seam.yamlfile import load_documents

    path = folder("pipelines") / "catalog-declared.yaml"
    document = load_documents(path.read_text(), str(path))[0]
    del document["schemas"]  # no folder named: the derived schemas
    document["stages"] = [
        {"use": "decode"},
        {"use": "clean"},
        {"use": "events"},
        {"use": "validate"},
    ]
    pipeline = parse_pipeline(document, str(path), folder=path.parent).build()
    validate = pipeline.stages[-1]
    assert validate.state_schema == "ProductState"  # type: ignore[attr-defined]
    documents = validate.schemas.documents  # type: ignore[attr-defined]
    assert documents["ProductState"] == (1, _derived()["ProductState"])
    produced = 0
    for i, (key, value) in enumerate(typical_changes(1500)):
        outcome = pipeline.run(RawRecord(key, value, "catalog.public.products", 0, i))
        assert isinstance(outcome, Produced), outcome
        produced += len(outcome.events)
    assert produced > 1000


def test_a_history_key_that_is_not_an_entity_key_field_is_an_error(tmp_path: Path) -> None:
    pipeline = folder("pipelines") / "prices.yaml"
    text = pipeline.read_text().replace("  history: {", "  history: {key: product_id, ", 1)
    assert "key: product_id" in text
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "inventory.yaml").write_text(
        (folder("pipelines") / "tables" / "inventory.yaml").read_text()
    )
    (tmp_path / "prices.yaml").write_text(text)
    with pytest.raises(
        ConfigError,
        match=r"prices.yaml:\d+:\d+: outputs.history.key: "
        r"'product_id' is not a key field of entity 'product_price'",
    ):
        load_pipeline(tmp_path / "prices.yaml")


def test_a_schemas_folder_not_written_yet_stops_the_pipeline_with_the_command(
    tmp_path: Path,
) -> None:
    pipelines = folder("pipelines")
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "inventory.yaml").write_text(
        (pipelines / "tables" / "inventory.yaml").read_text()
    )
    text = (pipelines / "stock.yaml").read_text().replace("schemas: ../schemas", "schemas: mine")
    (tmp_path / "stock.yaml").write_text(text)
    spec = load_pipeline(tmp_path / "stock.yaml")
    with pytest.raises(ConfigError, match=r"no schemas written in .*mine yet") as raised:
        spec.build()
    assert "seam transform schemas" in str(raised.value.hint)
    assert spec.declaration is not None
    assert spec.schemas is not None
    write_schemas(derive(spec.declaration), spec.schemas)
    assert [s.name for s in spec.build().stages][-1] == "validate"


def test_a_declared_pipeline_types_only_the_columns_its_rules_read() -> None:
    spec = load_pipeline(folder("pipelines") / "catalog-declared.yaml")
    assert spec.declaration is not None
    read = spec.declaration.columns_read()
    assert read["products"][:4] == ("prod_id", "sku", "prod_name", "price_cents")
    assert "price_txt" in read["products"]
    assert set(read) == {"products", "categories", "suppliers"}
    assert "descr" in read["categories"]

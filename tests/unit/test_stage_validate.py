"""The validate stage: compiled validators (jsonschema-rs) agree with the reference
implementation (jsonschema) on valid and invalid events."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from seam.changes import RawRecord
from seam.legacy_db.files import folder
from seam.transforms.model import Item, Reject
from seam.transforms.schemas import CompiledSchemas, SchemaSet
from seam.transforms.stages.validate import ValidateStage

pytestmark = pytest.mark.unit

PROV = {
    "source_db": "catalog",
    "connector": "postgresql",
    "server_name": "catalog",
    "table": "public.products",
    "position": {"lsn": 1, "tx_id": 2},
    "source_ts": "2026-01-01T00:00:00Z",
    "snapshot": False,
    "topic": "t",
    "partition": 0,
    "offset": 5,
}
STATE = {
    "product_id": 1,
    "sku": "AB-1",
    "name": "Mug",
    "status": "active",
    "price": {"amount": "1.00", "currency": "EUR"},
}


def event(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": "0b7c0b4e-3c1f-5d0a-9a53-1f2e3d4c5b6a",
        "event_type": event_type,
        "schema_version": 2,
        "entity": "product",
        "product_id": 1,
        "occurred_at": "2026-01-01T00:00:00Z",
        "data": data,
        "provenance": PROV,
    }


VALID = [
    event("ProductListed", {"product": STATE}),
    event("ProductRenamed", {"old_name": None, "new_name": "x"}),
    event(
        "ProductPriceChanged",
        {"old_price": None, "new_price": {"amount": "2.50", "currency": "EUR"}},
    ),
    event(
        "ProductRecategorized",
        {"old_category": {"id": 1}, "new_category": {"id": 2, "name": "Tea"}},
    ),
    event("ProductDelisted", {"reason": "deleted"}),
    event("ProductDiscontinued", {"previous_status": "active"}),
    # v2: the legacy columns' limits, exactly; LF in a description; unresolved references.
    event(
        "ProductListed",
        {
            "product": {
                **STATE,
                "product_id": 2**31 - 1,
                "sku": "S" * 32,
                "name": "\u00e9" * 200,
                "description": "Line one.\nLine two." + "d" * 65_515,
                "category": {"id": 999, "resolved": False},
                "supplier": {"id": 2**31 - 1, "name": "R" * 120},
                "price": {"amount": "21474836.47", "currency": "EUR"},
            }
        },
    ),
    event(
        "ProductRecategorized", {"old_category": None, "new_category": {"id": 9, "resolved": False}}
    ),
    {**event("ProductRenamed", {"old_name": None, "new_name": "x"}), "schema_version": 1},  # v1's
]


def broken(base: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(base)
    target = doc
    for p in path[:-1]:
        target = target[p]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


INVALID = [
    broken(VALID[0], ["data", "product", "status"], "gone"),  # enum
    broken(VALID[0], ["data", "product", "sku"], "A B"),  # pattern
    broken(VALID[0], ["product_id"], "1"),  # type
    broken(VALID[1], ["data", "new_name"], KeyError),  # required
    broken(VALID[2], ["data", "new_price", "amount"], "2.5"),  # two places
    broken(VALID[2], ["data", "new_price", "currency"], "USD"),
    broken(VALID[3], ["data", "extra"], 1),  # additionalProperties
    broken(VALID[4], ["data", "reason"], "whim"),
    broken(VALID[5], ["event_type"], "ProductRenamed"),  # const
    broken(VALID[0], ["provenance", "snapshot"], "no"),
    # v2's limits: what the legacy columns cannot hold, and control characters.
    broken(VALID[0], ["data", "product", "name"], "N" * 201),
    broken(VALID[0], ["data", "product", "name"], "Mug\x00"),
    broken(VALID[0], ["data", "product", "name"], "Mug\x07 blue"),
    broken(VALID[0], ["data", "product", "sku"], "S" * 33),
    broken(VALID[0], ["data", "product", "sku"], "AB-1\x7f"),
    broken(VALID[0], ["data", "product", "description"], "Bell\x07"),
    broken(VALID[0], ["data", "product", "description"], "d" * 65_536),
    broken(VALID[0], ["data", "product", "product_id"], 2**31),
    broken(VALID[0], ["product_id"], 2**31),
    broken(VALID[0], ["data", "product", "price", "amount"], "100000000.00"),
    broken(VALID[0], ["data", "product", "category"], {"id": 3, "name": "C" * 101}),
    broken(VALID[0], ["data", "product", "category"], {"id": 3, "resolved": True}),
    broken(VALID[1], ["data", "new_name"], "x\x1b[31m"),
    broken(VALID[3], ["data", "new_category"], {"id": 2**31, "name": "Tea"}),
    broken(VALID[1], ["schema_version"], 3),
]


@pytest.fixture(scope="module")
def schemas() -> SchemaSet:
    return SchemaSet.load(folder("schemas"))


@pytest.mark.parametrize("doc", VALID + INVALID)
def test_compiled_and_reference_validators_agree(schemas: SchemaSet, doc: dict[str, Any]) -> None:
    compiled = CompiledSchemas(schemas)  # jsonschema-rs
    name = doc["event_type"]
    latest = schemas.latest(name)
    assert latest is not None
    reference_ok = Draft202012Validator(latest[1]).is_valid(doc)
    result = compiled.errors(name, doc)
    assert result is not None
    assert (not result[1]) == reference_ok
    assert reference_ok == (doc in VALID)


def test_stage_rejects_invalid_and_unknown_types(schemas: SchemaSet) -> None:
    stage = ValidateStage(CompiledSchemas(schemas), state_schema="ProductState")
    raw = RawRecord(None, None)
    (item,) = stage.process(Item(raw, event=copy.deepcopy(VALID[1])))
    assert item.event is not None
    assert item.event["schema_version"] == 2
    with pytest.raises(Reject, match="ProductListed v2 invalid"):
        list(stage.process(Item(raw, event=copy.deepcopy(INVALID[0]))))
    with pytest.raises(Reject, match="no schema"):
        list(stage.process(Item(raw, event={**VALID[1], "event_type": "ProductTeleported"})))
    with pytest.raises(Reject, match="ProductState"):
        list(stage.process(Item(raw, latest_key="1", state={**STATE, "status": "?"})))


def test_a_reason_quotes_a_huge_value_shortened(schemas: SchemaSet) -> None:
    stage = ValidateStage(CompiledSchemas(schemas), state_schema="ProductState")
    huge = broken(VALID[1], ["data", "new_name"], "N" * 200_000)
    with pytest.raises(Reject) as info:
        list(stage.process(Item(RawRecord(None, None), event=huge)))
    assert "longer than 200 characters" in info.value.reason
    assert len(info.value.reason) < 400


def test_the_schemas_state_the_limits_the_clean_stage_enforces(schemas: SchemaSet) -> None:
    """Schemas, clean.TABLES and (test_stage_clean) the legacy columns agree on every limit."""
    from seam.legacy_db.rules import MAX_INT
    from seam.legacy_db.stages.clean import TABLES

    width = {(t, f.name): f.max_length for t, fields in TABLES.items() for f in fields}

    def latest(name: str) -> dict[str, Any]:
        found = schemas.latest(name)
        assert found is not None
        return dict(found[1])

    def at(doc: dict[str, Any], *path: str) -> dict[str, Any]:
        for name in path:
            doc = doc["properties"][name]
        return doc

    state = latest("ProductState")
    assert at(state, "sku")["maxLength"] == width[("products", "sku")]
    assert at(state, "name")["maxLength"] == width[("products", "name")]
    assert at(state, "description")["maxLength"] == width[("products", "description")]
    assert at(state, "category", "name")["maxLength"] == width[("categories", "name")]
    assert at(state, "supplier", "name")["maxLength"] == width[("suppliers", "name")]
    for ident in (("product_id",), ("category", "id"), ("supplier", "id")):
        assert at(state, *ident)["maximum"] == MAX_INT
    events = {
        ("ProductRenamed", "new_name"): ("products", "name"),
        ("ProductRenamed", "old_name"): ("products", "name"),
        ("ProductIdentifiersChanged", "new_sku"): ("products", "sku"),
        ("ProductIdentifiersChanged", "old_sku"): ("products", "sku"),
        ("ProductDescriptionChanged", "new_description"): ("products", "description"),
        ("ProductDescriptionChanged", "old_description"): ("products", "description"),
    }
    for (event_type, field), column in events.items():
        assert at(latest(event_type), "data", field)["maxLength"] == width[column]
    for side in ("old", "new"):
        recategorized = at(latest("ProductRecategorized"), "data", f"{side}_category", "name")
        assert recategorized["maxLength"] == width[("categories", "name")]
        supplier = at(latest("ProductSupplierChanged"), "data", f"{side}_supplier", "name")
        assert supplier["maxLength"] == width[("suppliers", "name")]
    for name in schemas.versions:  # every event's entity id: products, stock, prices
        if not name.endswith("State"):
            doc = latest(name)
            ids = [f for f in ("product_id", "price_id") if f in doc["properties"]]
            assert ids, name
            for ident in ids:
                assert at(doc, ident)["maximum"] == MAX_INT, name

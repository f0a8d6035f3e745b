"""The validate stage: compiled validators (jsonschema-rs) agree with the reference
implementation (jsonschema) on valid and invalid events."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from seam.streams.decode import RawRecord
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
        "schema_version": 1,
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
]


@pytest.fixture(scope="module")
def schemas() -> SchemaSet:
    return SchemaSet.load()


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
    stage = ValidateStage(CompiledSchemas(schemas))
    raw = RawRecord(None, None)
    (item,) = stage.process(Item(raw, event=copy.deepcopy(VALID[1])))
    assert item.event is not None
    assert item.event["schema_version"] == 1
    with pytest.raises(Reject, match="ProductListed v1 invalid"):
        list(stage.process(Item(raw, event=copy.deepcopy(INVALID[0]))))
    with pytest.raises(Reject, match="no schema"):
        list(stage.process(Item(raw, event={**VALID[1], "event_type": "ProductTeleported"})))
    with pytest.raises(Reject, match="ProductState"):
        list(stage.process(Item(raw, latest_key="1", state={**STATE, "status": "?"})))

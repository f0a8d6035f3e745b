"""The map stage (with decode, clean and enrich before it): changes -> domain events."""

from __future__ import annotations

from typing import Any

import pytest

from seam.changes import RawRecord
from seam.legacy_db.files import folder
from seam.legacy_db.stages import clean, enrich, map
from seam.legacy_db.synthetic import envelope, micros
from seam.transforms.pipeline import Pipeline, Produced, Rejected
from seam.transforms.stages import decode, validate

pytestmark = pytest.mark.unit

ROW: dict[str, Any] = {
    "prod_id": 7,
    "sku": "AB-0000007",
    "prod_name": "Classic Mug",
    "price_txt": "12.50",
    "price_cents": 1250,
    "cat_id": 3,
    "supp_id": 4,
    "status_cd": "A",
    "is_deleted": "N",
    "ean": "4006381333931",
    "descr": "Dishwasher safe.",
    "created_at": micros("2024-03-01 10:11:12"),
    "updated_at": None,
}


@pytest.fixture
def pipeline() -> Pipeline:
    stages = [
        decode.create({}),
        clean.create({}),
        enrich.create({"categories": "c.public.categories", "suppliers": "c.public.suppliers"}),
        map.create({}),
        validate.create({"schemas": str(folder("schemas")), "state_schema": "ProductState"}),
    ]
    p = Pipeline(stages)
    for table, row, lsn in (
        (
            "categories",
            {"cat_id": 3, "parent_id": 0, "cat_name": "Tea 3", "descr": "", "created_at": None},
            1,
        ),
        (
            "categories",
            {"cat_id": 5, "parent_id": 1, "cat_name": "CafÃ© 5", "descr": None, "created_at": None},
            2,
        ),
        (
            "suppliers",
            {
                "supp_id": 4,
                "supp_name": "Rossi AG",
                "email": "",
                "phone": None,
                "country": "Germany",
                "created_at": None,
            },
            3,
        ),
    ):
        key, value = envelope(table, "r", None, row, lsn)
        p.observe(RawRecord(key, value, topic=f"c.public.{table}"))
    return p


def run(
    p: Pipeline,
    op: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    lsn: int = 500,
) -> Produced:
    key, value = envelope("products", op, before, after, lsn)
    outcome = p.run(RawRecord(key, value, topic="c.public.products", offset=lsn))
    assert isinstance(outcome, Produced), outcome
    return outcome


def types(outcome: Produced) -> list[str]:
    return [i.event["event_type"] for i in outcome.events if i.event]


def test_snapshot_lists_with_enriched_state(pipeline: Pipeline) -> None:
    out = run(pipeline, "r", None, ROW)
    (item,) = out.events
    assert item.event is not None
    assert item.event["event_type"] == "ProductListed"
    assert item.event["schema_version"] == 2
    assert item.latest_key == "7"
    assert item.state == {
        "product_id": 7,
        "sku": "AB-0000007",
        "name": "Classic Mug",
        "status": "active",
        "price": {"amount": "12.50", "currency": "EUR"},
        "category": {"id": 3, "name": "Tea 3"},
        "supplier": {"id": 4, "name": "Rossi AG"},
        "ean": "4006381333931",
        "description": "Dishwasher safe.",
        "created_at": "2024-03-01T09:11:12Z",
    }
    prov = item.event["provenance"]
    assert prov["position"] == {"lsn": 500, "tx_id": 705, "sequence": '[null,"500"]'}
    assert prov["table"] == "public.products"
    assert prov["source_db"] == "catalog"


@pytest.mark.parametrize(
    ("change", "expected", "data"),
    [
        (
            {"prod_name": "Classic Mug II"},
            ["ProductRenamed"],
            {"old_name": "Classic Mug", "new_name": "Classic Mug II"},
        ),
        (
            {"price_txt": "13,00 €", "price_cents": 1300},
            ["ProductPriceChanged"],
            {
                "old_price": {"amount": "12.50", "currency": "EUR"},
                "new_price": {"amount": "13.00", "currency": "EUR"},
            },
        ),
        (
            {"cat_id": 5},
            ["ProductRecategorized"],
            {
                "old_category": {"id": 3, "name": "Tea 3"},
                "new_category": {"id": 5, "name": "Café 5"},
            },
        ),
        (
            {"cat_id": 999},
            ["ProductRecategorized"],  # W10: an orphan keeps its id, marked unresolved
            {
                "old_category": {"id": 3, "name": "Tea 3"},
                "new_category": {"id": 999, "resolved": False},
            },
        ),
        (
            {"supp_id": 0},
            ["ProductSupplierChanged"],
            {"old_supplier": {"id": 4, "name": "Rossi AG"}, "new_supplier": None},
        ),
        ({"status_cd": "d"}, ["ProductDiscontinued"], {"previous_status": "active"}),
        ({"is_deleted": "Y"}, ["ProductDelisted"], {"reason": "soft_deleted"}),
        ({"status_cd": "X"}, ["ProductDelisted"], {"reason": "status_delisted"}),
        (
            {"descr": ""},
            ["ProductDescriptionChanged"],
            {"old_description": "Dishwasher safe.", "new_description": None},
        ),
        (
            {"ean": ""},
            ["ProductIdentifiersChanged"],
            {
                "old_sku": "AB-0000007",
                "new_sku": "AB-0000007",
                "old_ean": "4006381333931",
                "new_ean": None,
            },
        ),
    ],
)
def test_update_to_one_event(
    pipeline: Pipeline, change: dict[str, Any], expected: list[str], data: dict[str, Any]
) -> None:
    out = run(pipeline, "u", ROW, {**ROW, **change, "updated_at": micros("2025-01-02 03:04:05")})
    assert types(out) == expected
    assert out.events[0].event is not None
    assert out.events[0].event["data"] == data


def test_one_update_several_events_and_one_state(pipeline: Pipeline) -> None:
    after = {
        **ROW,
        "prod_name": "Deluxe Mug",
        "price_txt": "$14.00",
        "price_cents": 1400,
        "status_cd": "D",
    }
    out = run(pipeline, "u", ROW, after)
    assert types(out) == ["ProductRenamed", "ProductPriceChanged", "ProductDiscontinued"]
    ids = {i.event["event_id"] for i in out.events if i.event}
    assert len(ids) == 3
    assert all(i.state is out.events[0].state for i in out.events)
    assert out.events[0].state is not None
    assert out.events[0].state["status"] == "discontinued"


def test_warts_only_changes_are_a_counted_no_op(pipeline: Pipeline) -> None:
    # The SKU's case and the price text's shape change, the meaning does not.
    after = {
        **ROW,
        "sku": " ab-0000007",
        "price_txt": "EUR 12,50",
        "updated_at": micros("2025-01-02 03:04:05"),
    }
    out = run(pipeline, "u", ROW, after)
    assert types(out) == []
    assert out.zero_reason == "no-op update"
    (item,) = out.items
    assert item.latest_key == "7"
    assert item.state is not None
    assert item.state["updated_at"] == "2025-01-02T02:04:05Z"


def test_relisted_after_soft_delete(pipeline: Pipeline) -> None:
    out = run(pipeline, "u", {**ROW, "is_deleted": "Y"}, ROW)
    assert types(out) == ["ProductRelisted"]


def test_reactivated(pipeline: Pipeline) -> None:
    out = run(pipeline, "u", {**ROW, "status_cd": "D"}, ROW)
    assert types(out) == ["ProductReactivated"]


def test_unlisted_rows_write_tombstones_without_events(pipeline: Pipeline) -> None:
    out = run(pipeline, "r", None, {**ROW, "is_deleted": "Y"})
    assert types(out) == []
    assert out.zero_reason is not None
    (item,) = out.items
    assert item.latest_key == "7"
    assert item.state is None


def test_hard_delete_and_tombstone(pipeline: Pipeline) -> None:
    out = run(pipeline, "d", ROW, None)
    assert types(out) == ["ProductDelisted"]
    assert out.events[0].event is not None
    assert out.events[0].event["data"] == {"reason": "deleted"}
    assert out.events[0].state is None
    assert out.events[0].latest_key == "7"
    tomb = pipeline.run(RawRecord(b'{"prod_id":7}', None, topic="c.public.products"))
    assert isinstance(tomb, Produced)
    assert tomb.zero_reason == "tombstone"


def test_update_without_old_row_is_rejected(pipeline: Pipeline) -> None:
    key, value = envelope("products", "u", None, ROW, 900)
    outcome = pipeline.run(RawRecord(key, value, topic="c.public.products"))
    assert isinstance(outcome, Rejected)
    assert outcome.stage == "map"
    assert "REPLICA IDENTITY FULL" in outcome.reason


def test_event_ids_are_deterministic(pipeline: Pipeline) -> None:
    after = {**ROW, "prod_name": "Other"}
    first = run(pipeline, "u", ROW, after, lsn=777)
    again = run(pipeline, "u", ROW, after, lsn=777)
    later = run(pipeline, "u", ROW, after, lsn=778)
    ids = [i.event["event_id"] for i in first.events if i.event]
    assert ids == [i.event["event_id"] for i in again.events if i.event]
    assert ids != [i.event["event_id"] for i in later.events if i.event]


def test_reference_data_follows_changes(pipeline: Pipeline) -> None:
    key, value = envelope(
        "categories",
        "u",
        None,
        {"cat_id": 3, "parent_id": 0, "cat_name": "Teas", "descr": None, "created_at": None},
        3000,
    )
    pipeline.observe(RawRecord(key, value, topic="c.public.categories"))
    out = run(pipeline, "r", None, ROW)
    assert out.events[0].state is not None
    assert out.events[0].state["category"] == {
        "id": 3,
        "name": "Teas",
    }
    key, value = envelope(
        "categories",
        "d",
        {"cat_id": 3, "parent_id": 0, "cat_name": "Teas", "descr": None, "created_at": None},
        None,
        3001,
    )
    pipeline.observe(RawRecord(key, value, topic="c.public.categories"))
    out = run(pipeline, "r", None, ROW)
    assert out.events[0].state is not None
    assert out.events[0].state["category"] == {"id": 3, "resolved": False}


def test_unknown_references_are_kept_and_marked_unresolved(pipeline: Pipeline) -> None:
    # W10: about 0.5% of products name a category that does not exist; a supplier may be
    # unknown too (its row not seen yet). Neither is dropped, both say so.
    out = run(pipeline, "r", None, {**ROW, "cat_id": 999, "supp_id": 998})
    (item,) = out.events
    assert item.event is not None
    assert item.event["event_type"] == "ProductListed"
    assert item.state is not None
    assert item.state["category"] == {"id": 999, "resolved": False}
    assert item.state["supplier"] == {"id": 998, "resolved": False}
    assert item.event["data"]["product"] is item.state
    # A known one carries its name and no mark; none at all (NULL, W6's 0) is left out.
    known = run(pipeline, "r", None, {**ROW, "supp_id": 0}).events[0].state
    assert known is not None
    assert known["category"] == {"id": 3, "name": "Tea 3"}
    assert "supplier" not in known


def test_an_unknown_old_supplier_is_marked_in_the_event(pipeline: Pipeline) -> None:
    out = run(pipeline, "u", {**ROW, "supp_id": 77}, ROW)
    assert out.events[0].event is not None
    assert out.events[0].event["data"] == {
        "old_supplier": {"id": 77, "resolved": False},
        "new_supplier": {"id": 4, "name": "Rossi AG"},
    }


def test_a_category_row_its_rules_reject_leaves_its_references_unresolved(
    pipeline: Pipeline,
) -> None:
    row = {"cat_id": 6, "parent_id": 0, "cat_name": "Tea\x07", "descr": None, "created_at": None}
    key, value = envelope("categories", "r", None, row, 4000)
    pipeline.observe(RawRecord(key, value, topic="c.public.categories"))
    state = run(pipeline, "r", None, {**ROW, "cat_id": 6}).events[0].state
    assert state is not None
    assert state["category"] == {"id": 6, "resolved": False}


@pytest.mark.parametrize(
    ("change", "column", "rule"),
    [
        ({"prod_name": "A" * 200_000}, "prod_name", "longer than 200 characters"),
        ({"sku": "S" * 5_000}, "sku", "longer than 32 characters"),
        ({"prod_name": "Mug\x00"}, "prod_name", "control character U+0000"),
        ({"prod_name": "Mug\x07"}, "prod_name", "control character U+0007"),
    ],
)
def test_the_poison_of_issue_10_is_rejected_by_clean(
    pipeline: Pipeline, change: dict[str, Any], column: str, rule: str
) -> None:
    key, value = envelope("products", "c", None, {**ROW, **change}, 600)
    outcome = pipeline.run(RawRecord(key, value, topic="c.public.products"))
    assert isinstance(outcome, Rejected)
    assert outcome.stage == "clean"
    assert outcome.reason.startswith(f"products: {column}: {rule}")
    assert len(outcome.reason) < 200

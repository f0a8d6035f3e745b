"""The parity check's pure parts: reasons and field diffs, the memory image's digest endpoint
(the real router over a real `Image`), bisection against it, and the legacy side's two paths
(the compiled engine and the Python stages) agreeing on the same rows."""

from __future__ import annotations

import random
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from seam.migration.digest import canonical
from seam.migration.parity import (
    IMAGE,
    LEAF,
    ImageClient,
    LegacyIndex,
    compare_image,
    compare_key,
    field_diffs,
)
from seam.migration.parity_legacy import LegacyCut, LegacySide, _log_fields
from seam.services.image import Image, Shape
from seam.services.parity_http import router

pytestmark = pytest.mark.unit


def state(i: int, name: str | None = None) -> dict[str, Any]:
    return {"id": i, "name": name or f"thing {i}", "price": {"amount": f"{i}.50"}}


def cut_of(states: dict[str, dict[str, Any]], **extra: Any) -> LegacyCut:
    cut = LegacyCut("lsn:0/1", rows=len(states))
    cut.states = {k: canonical(v) for k, v in states.items()}
    for name, value in extra.items():
        setattr(cut, name, value)
    return cut


def test_each_reason_is_named() -> None:
    cut = cut_of({"1": state(1)}, rejected={"7": "clean: sku: empty"}, gone={"8": "deleted"})
    same = canonical(state(1))
    assert compare_key("1", same, same, "topic", cut) is None
    missing = compare_key("1", same, None, "topic", cut)
    assert missing is not None
    assert missing.reason == "missing"
    for key, why in (("7", "rejected by the cleaning (clean: sku: empty)"), ("8", "(deleted)")):
        extra = compare_key(key, None, canonical(state(int(key))), "image", cut)
        assert extra is not None
        assert extra.reason == "extra"
        assert why in extra.detail
    changed = compare_key("1", same, canonical(state(1, "other")), "topic", cut)
    assert changed is not None
    assert changed.reason == "values"
    assert changed.fields == {"name": {"legacy": "thing 1", "topic": "other"}}


def test_field_diffs_see_a_field_present_on_one_side_only() -> None:
    a = canonical({"x": 1, "gone": None})
    b = canonical({"x": 1})
    assert field_diffs(a, b, "topic") == {"gone": {"legacy": None, "topic": None}}


class Session:
    """requests' `post` over a FastAPI TestClient."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def post(self, url: str, data: bytes, headers: dict[str, str], timeout: float) -> Any:
        return self.client.post(url.split("testserver", 1)[1], content=data, headers=headers)


def image_client(values: dict[str, dict[str, Any]], image: Image | None = None) -> ImageClient:
    if image is None:
        image = Image(Shape(("id", "name", "price")), compress=True)
    for key, value in values.items():
        image.apply(key, orjson.dumps(value))
    service = SimpleNamespace(
        spec=SimpleNamespace(wait_ms=10, max_wait_ms=10),
        image=image,
        applied=lambda: {0: 5},
    )
    app = FastAPI()
    app.include_router(router(service))  # type: ignore[arg-type]
    return ImageClient("http://testserver", 1.0, session=Session(TestClient(app)))


def test_a_clean_image_moves_digests_and_no_row() -> None:
    states = {str(i): state(i) for i in range(1, 20_001)}  # compressed past 10,000
    cut = cut_of(states)
    client = image_client(states)
    found, count, moved = compare_image(cut, LegacyIndex(cut), client, None)
    assert found == []
    assert count == 20_000
    assert moved["rows"] == 0
    assert client.requests == 1


def test_a_state_the_image_replaces_is_hashed_again() -> None:
    """The endpoint keeps each key's hash while its stored value stays the same object: a
    value applied since is hashed again, so a second check sees the change."""
    states = {str(i): state(i) for i in range(1, 501)}
    image = Image(Shape(("id", "name", "price")), compress=False)
    client = image_client(states, image)
    cut = cut_of(states)
    assert compare_image(cut, LegacyIndex(cut), client, None)[0] == []
    image.apply("42", orjson.dumps(state(42, "changed since")))
    found, _count, _moved = compare_image(cut, LegacyIndex(cut), client, None)
    assert [(d.key, d.reason) for d in found] == [("42", "values")]


def test_bisection_finds_every_planted_difference_moving_few_rows() -> None:
    states = {str(i): state(i) for i in range(1, 20_001)}
    served = dict(states)
    rng = random.Random(3)
    changed = {str(k) for k in rng.sample(range(1, 20_001), 5)}
    for key in changed:
        served[key] = state(int(key), "stale")
    missing = "777"
    changed.discard(missing)
    served.pop(missing)
    served["20500"] = state(20_500)  # past the last legacy key: an open-ended range
    served["0"] = state(0)  # before the first
    cut = cut_of(states)
    found, count, moved = compare_image(cut, LegacyIndex(cut), image_client(served), None)
    got = {(d.key, d.reason) for d in found}
    assert got == {
        *((k, "values") for k in changed),
        (missing, "missing"),
        ("20500", "extra"),
        ("0", "extra"),
    }
    assert all(d.side == IMAGE for d in found)
    assert count == len(served)
    assert moved["rows"] <= 8 * LEAF  # a few leaf ranges, not 20,000 rows


def test_the_endpoint_answers_named_keys_and_refuses_a_bad_position() -> None:
    client = image_client({"1": state(1), "2": state(2)})
    answer = client.ask(None, keys=["2", "9"])
    assert answer["keys"] == {"2": state(2), "9": None}
    assert answer["position"] == {"offsets": {"0": 5}}
    with pytest.raises(Exception, match="HTTP 400"):
        client.ask("lsn:nonsense")


def rows() -> list[dict[str, Any]]:
    """Product rows as the database driver hands them, warts and all."""
    base = {
        "sku": " ab-12 ",
        "prod_name": "Deluxe  Grinder",
        "price_txt": "12,50 €",
        "price_cents": 1250,
        "cat_id": 3,
        "supp_id": 0,
        "status_cd": "a",
        "is_deleted": "N",
        "ean": "",
        "descr": "Ideal fÃ¼r CafÃ©",
        "created_at": datetime(2021, 3, 28, 2, 30),
        "updated_at": None,
    }
    return [
        {"prod_id": 1, **base},
        {"prod_id": 2, **base, "is_deleted": "Y"},  # gone: soft deleted
        {"prod_id": 3, **base, "sku": "  "},  # rejected: sku empty
        {"prod_id": 4, **base, "price_txt": "$13.00"},  # rejected: the prices disagree
        {"prod_id": 5, **base, "status_cd": "X", "updated_at": datetime(2024, 10, 27, 2, 30)},
    ]


def test_the_compiled_and_python_paths_agree_on_legacy_rows() -> None:
    from seam.legacy_db.files import pipeline_document
    from seam.transforms.pipeline_file import parse_pipeline

    spec = parse_pipeline(pipeline_document("catalog"), "catalog")
    side = LegacySide(spec, "postgresql://unused")
    side.at, side.database = _log_fields("lsn:0/16B3748"), "catalog"
    where = side.where("products")
    pipeline = spec.build()
    fast = side._compiled(pipeline)
    assert fast is not None  # the module is built (scripts/setup.sh)
    python, merged = LegacyCut("lsn:0/16B3748"), LegacyCut("lsn:0/16B3748")
    ran_compiled = 0
    for row in rows():
        side._one(pipeline, where, row, "postgresql", "lsn:0/16B3748", python)
        # As a read runs them: the engine, the Python stages where it steps aside.
        if side._fast(fast, where, row, "postgresql", merged):
            ran_compiled += 1
        else:
            side._one(pipeline, where, row, "postgresql", "lsn:0/16B3748", merged)
    assert ran_compiled >= 2  # the engine ran some of them
    assert merged.states == python.states
    assert set(merged.gone) == set(python.gone)
    assert set(python.states) == {"1"}
    assert set(python.gone) | set(python.rejected) == {"2", "3", "4", "5"}

"""The validate stage skips re-checking a product state embedded in an event only when the
event's schema checks it exactly as the state schema does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from seam.legacy_db.files import folder
from seam.transforms.schemas import SchemaSet
from seam.transforms.stages.validate import state_embedding

pytestmark = pytest.mark.unit

SCHEMAS = folder("schemas")


def test_the_events_that_embed_the_state_are_found() -> None:
    assert {"ProductListed": "product", "ProductRelisted": "product"}.items() <= state_embedding(
        SchemaSet.load(SCHEMAS), "ProductState"
    ).items()


def test_an_event_whose_embedded_state_differs_is_validated_in_full(tmp_path: Path) -> None:
    copy = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, copy)
    listed = max((copy / "ProductListed").glob("v*.json"), key=lambda p: int(p.stem[1:]))
    doc = json.loads(listed.read_text())
    product = doc["properties"]["data"]["properties"]["product"]
    product["required"] = [*product["required"], "extra"]
    listed.write_text(json.dumps(doc))

    embedded = state_embedding(SchemaSet.load(copy), "ProductState")
    assert "ProductListed" not in embedded
    assert "ProductRelisted" in embedded

"""Property tests: whatever arrives, the pipeline yields events or a dead letter, never an
exception; and every row the legacy generator seeds (all the warts) cleans without one."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seam.changes import RawRecord
from seam.legacy_db.files import folder
from seam.legacy_db.synthetic import envelope, product_rows, reference_rows
from seam.transforms.pipeline import Pipeline, Produced, Rejected
from seam.transforms.pipeline_file import load_pipeline

pytestmark = pytest.mark.unit

_pipeline: Pipeline | None = None


def pipeline() -> Pipeline:
    global _pipeline
    if _pipeline is None:
        _pipeline = load_pipeline(folder("pipelines") / "catalog.yaml").build()
    return _pipeline


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(["", " ", "A", "x", "Y", "N", "12,50", "1,234", "$1.00", "CafÃ©", "\r\n"]),
)
COLUMNS = [
    "prod_id",
    "sku",
    "prod_name",
    "price_txt",
    "price_cents",
    "cat_id",
    "supp_id",
    "status_cd",
    "is_deleted",
    "ean",
    "descr",
    "created_at",
    "updated_at",
]
rows = st.fixed_dictionaries({}, optional=dict.fromkeys(COLUMNS, scalars))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    before=st.one_of(st.none(), rows),
    after=st.one_of(st.none(), rows),
    op=st.sampled_from(["c", "u", "d", "r", "t", "x"]),
)
def test_any_row_gives_events_or_a_dead_letter(
    before: dict[str, Any] | None, after: dict[str, Any] | None, op: str
) -> None:
    value = orjson.dumps(
        {
            "before": before,
            "after": after,
            "op": op,
            "source": {
                "connector": "postgresql",
                "db": "catalog",
                "schema": "public",
                "table": "products",
                "lsn": 1,
                "ts_ms": 1,
            },
        }
    )
    outcome = pipeline().run(RawRecord(b'{"prod_id": 1}', value, topic="catalog.public.products"))
    assert isinstance(outcome, Produced | Rejected)
    if isinstance(outcome, Produced):
        assert outcome.events or outcome.zero_reason


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.one_of(st.none(), st.binary(max_size=30)))
def test_any_bytes_give_a_dead_letter_or_an_outcome(value: bytes, key: bytes | None) -> None:
    outcome = pipeline().run(RawRecord(key, value, topic="catalog.public.products"))
    assert isinstance(outcome, Produced | Rejected)


def test_every_seeded_row_cleans() -> None:
    p = load_pipeline(folder("pipelines") / "catalog.yaml").build()
    for i, (table, row) in enumerate(reference_rows(6000)):
        key, value = envelope(table, "r", None, row, i)
        p.observe(RawRecord(key, value, topic=f"catalog.public.{table}"))
    seen: Counter[str] = Counter()
    for i, row in enumerate(product_rows(6000)):
        key, value = envelope("products", "r", None, row, 10_000 + i, snapshot="true")
        outcome = p.run(RawRecord(key, value, topic="catalog.public.products"))
        assert isinstance(outcome, Produced), outcome
        seen[outcome.zero_reason or "listed"] += 1
    assert seen["listed"] > 5000
    assert sum(seen.values()) == 6000

"""The decode stage in a pipeline: records of other kinds are counted no-events, malformed
ones dead letters, key-only deletes stay sensible, on real records of tests/corpus."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from seam.changes import ControlRecord, RawRecord
from seam.legacy_db.files import folder
from seam.legacy_db.synthetic import envelope, micros
from seam.streams.decode import decode
from seam.transforms.fast_path import load_fast_path
from seam.transforms.outputs import publication
from seam.transforms.pipeline import Pipeline, Produced, Rejected
from seam.transforms.pipeline_file import load_pipeline
from seam.transforms.stages import decode as decode_stage

pytestmark = pytest.mark.unit

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "debezium.jsonl"
TOPIC = "catalog.public.products"


def corpus() -> list[RawRecord]:
    out = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        out.append(
            RawRecord(
                None if row["key"] is None else row["key"].encode(),
                None if row["value"] is None else row["value"].encode(),
                row["topic"],
                row["partition"],
                row["offset"],
                row["timestamp"],
            )
        )
    return out


@pytest.fixture(scope="module")
def catalog() -> Pipeline:
    return load_pipeline(folder("pipelines") / "catalog.yaml").build()


def test_records_of_other_kinds_are_counted_no_events(catalog: Pipeline) -> None:
    """Heartbeats, transaction BEGIN/END, schema changes and schema history, as the real
    connectors wrote them: through the catalog pipeline and through decode alone."""
    alone = Pipeline([decode_stage.create({})])
    notes: dict[str, int] = {}
    for raw in corpus():
        item = decode(raw)
        if not isinstance(item, ControlRecord):
            continue
        for pipeline in (catalog, alone):
            outcome = pipeline.run(raw)
            assert isinstance(outcome, Produced), outcome
            assert outcome.zero_reason == f"{item.kind.value} record"
            assert publication(outcome) == ([], None, f"{item.kind.value} record")
        notes[item.kind.value] = notes.get(item.kind.value, 0) + 1
    assert set(notes) == {
        "heartbeat",
        "transaction BEGIN",
        "transaction END",
        "schema change",
        "schema history",
    }


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b'{"schema":{},"payload":null}', "a schema but a null payload"),
        (
            b'{"op":"c","source":{"connector":"postgresql","db":"catalog"},"after":{"prod_id":1}}',
            "create event without a table",
        ),
        (b'{"op":"t","source":{"connector":"postgresql"}}', "truncate event without a table"),
        (b'{"ts_ms": 1}', "not a Debezium change event"),  # a heartbeat's value, another key
    ],
)
def test_malformed_envelopes_are_dead_letters(catalog: Pipeline, value: bytes, reason: str) -> None:
    outcome = catalog.run(RawRecord(b'{"prod_id":1}', value, TOPIC, 0, 0))
    assert isinstance(outcome, Rejected)
    assert outcome.stage == "decode"
    assert reason in outcome.reason


def test_a_real_tombstone_stays_a_tombstone(catalog: Pipeline) -> None:
    outcome = catalog.run(RawRecord(b'{"prod_id":1}', None, TOPIC, 0, 0))
    assert isinstance(outcome, Produced)
    assert outcome.zero_reason == "tombstone"


# A catalog product's delete as PostgreSQL with REPLICA IDENTITY DEFAULT sends it: the key,
# and Debezium's fill-ins for every other column ("" and 0 for the NOT NULL ones).
KEY_ONLY: dict[str, Any] = {
    "prod_id": 7,
    "sku": "",
    "prod_name": "",
    "price_txt": None,
    "price_cents": None,
    "cat_id": None,
    "supp_id": 0,
    "status_cd": "",
    "is_deleted": None,
    "ean": None,
    "descr": None,
    "created_at": 0,
    "updated_at": None,
}


def test_a_key_only_delete_delists_the_product_and_takes_the_python_path(
    catalog: Pipeline,
) -> None:
    key, value = envelope("products", "d", KEY_ONLY, None, 4242)
    raw = RawRecord(key, value, TOPIC, 0, 0)
    change = decode(raw)
    assert not isinstance(change, ControlRecord)
    assert getattr(change, "key_only", False)
    outcome = catalog.run(raw)
    assert isinstance(outcome, Produced), outcome
    (event,) = [i.event for i in outcome.items if i.event is not None]
    assert event["event_type"] == "ProductDelisted"
    assert event["data"] == {"reason": "deleted"}
    assert event["product_id"] == 7
    # The compiled engine leaves it to Python: its decoder makes the other columns unknown.
    spec = load_pipeline(folder("pipelines") / "catalog.yaml")
    fast = load_fast_path(spec, catalog)
    assert fast is not None, "seam_engine is not installed: run scripts/setup.sh"
    assert fast.process(raw) is None


def test_a_full_delete_is_unchanged(catalog: Pipeline) -> None:
    row = {
        **KEY_ONLY,
        "sku": "AB-7",
        "prod_name": "Mug",
        "status_cd": "A",
        "created_at": micros("2024-01-01 10:00:00"),
    }
    key, value = envelope("products", "d", row, None, 4243)
    outcome = catalog.run(RawRecord(key, value, TOPIC, 0, 0))
    assert isinstance(outcome, Produced)
    (event,) = [i.event for i in outcome.items if i.event is not None]
    assert event["data"] == {"reason": "deleted"}
    unlisted = {**row, "status_cd": "X"}
    key, value = envelope("products", "d", unlisted, None, 4244)
    outcome = catalog.run(RawRecord(key, value, TOPIC, 0, 0))
    assert isinstance(outcome, Produced)
    assert outcome.zero_reason == "delete of a gone product"


def test_envelope_fields_of_the_synthetic_records_match_the_corpus() -> None:
    """The key-only record above has the shape the real connector gave the corpus."""
    deletes = [
        orjson.loads(raw.value)
        for raw in corpus()
        if raw.value is not None
        and raw.topic == "corpus_pg_string_bare.seam_corpus.products"
        and b'"op":"d"' in raw.value
    ]
    (real,) = deletes
    before = real["before"]
    assert before["id"] == 3
    assert before["sku"] == ""  # NOT NULL: Debezium's fill-in, not the row's value
    assert all(v is None for k, v in before.items() if k not in ("id", "sku"))

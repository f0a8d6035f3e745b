"""Own writes (seam.transforms.own_writes): which changes are seam's writer's, and that the
compiled engine and the Python path publish the same thing for them: the latest state, no
event, counted as no event `own_write`."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from seam.changes import RawRecord
from seam.legacy_db.files import folder
from seam.legacy_db.synthetic import envelope, reference_rows, typical_changes
from seam.transforms.declared.compiled import CompiledPath
from seam.transforms.fast_path import load_fast_path
from seam.transforms.handling import RecordHandler
from seam.transforms.own_writes import (
    OWN_WRITE,
    OwnOrigin,
    OwnWrites,
    ledger_entry,
    pg_tx_id,
)
from seam.transforms.pipeline import Pipeline
from seam.transforms.pipeline_file import PipelineSpec, load_pipeline
from seam.transforms.progress import Counts
from seam.transforms.redelivery import Marks
from tests.catalog_rows import mariadb
from tests.unit.test_compiled_engine import (
    MIDDLE,
    TOPIC,
    FakeMessage,
    RecordingProducer,
    split_paths,
    with_source,
)

pytestmark = pytest.mark.unit


def entry(tx_id: int) -> bytes:
    return ledger_entry(tx_id, "test", 0)[1]


def test_the_ledger_ids_are_masked_bounded_and_the_oldest_evicted() -> None:
    origin = OwnOrigin(OwnWrites(ledger="l"), bound=3)
    epoch = 5 << 32
    for tx_id in (epoch + 10, 11, 12):
        origin.add(entry(tx_id))
    origin.add(b"not json")  # ignored, as is a record of another shape
    origin.add(b'{"tx_id": "13"}')
    origin.add(None)
    assert (list(origin.tx_ids), origin.evicted) == ([10, 11, 12], 0)
    origin.add(entry(13))
    assert (list(origin.tx_ids), origin.evicted) == ([11, 12, 13], 1)
    assert origin.is_own({"connector": "postgresql", "txId": 12})
    assert not origin.is_own({"connector": "postgresql", "txId": 10})  # evicted
    assert not origin.is_own({"connector": "postgresql", "txId": "12"})
    assert not origin.is_own({"connector": "postgresql"})
    assert pg_tx_id(epoch + 10) == 10


def test_the_gtid_domain_decides_for_mariadb() -> None:
    origin = OwnOrigin(OwnWrites(gtid_domain=77))
    assert origin.is_own({"gtid": "77-1-1234"})
    assert origin.is_own({"gtid": "077-1-1234"})
    for other in ("0-1-1234", "7-77-1", "77-1", "77-1-x", "", None, 77):
        assert not origin.is_own({"gtid": other}), other
    assert not OwnOrigin(OwnWrites(ledger="l")).is_own({"gtid": "77-1-1"})


def paths(own: OwnOrigin) -> tuple[PipelineSpec, Pipeline, CompiledPath]:
    spec = load_pipeline(folder("pipelines") / "catalog.yaml")
    pipeline = spec.build()
    for i, (table, row) in enumerate(reference_rows(2000)):
        key, value = envelope(table, "r", None, row, i + 1)
        pipeline.observe(RawRecord(key, value, f"catalog.public.{table}", 0, i))
    fast = load_fast_path(spec, pipeline, own)
    assert isinstance(fast, CompiledPath), "seam_engine is not installed: run scripts/setup.sh"
    return spec, pipeline, fast


def python_path(
    spec: PipelineSpec, pipeline: Pipeline, own: OwnOrigin, messages: list[FakeMessage]
) -> tuple[list[Any], Counts]:
    calls: list[Any] = []

    def produce(topic: str, key: bytes, value: bytes | None, headers: Any = None) -> None:
        calls.append((topic, value, key, headers))

    handler = RecordHandler(spec, pipeline, None, own=own)
    batch, marks = Counts(), Marks()
    for msg in messages:
        handler.handle(msg, batch, marks, produce)
    return calls, batch


@pytest.mark.parametrize("flavour", ["postgresql", "mariadb"])
def test_both_paths_publish_the_state_of_an_own_write_and_no_event(flavour: str) -> None:
    """Every third change is the writer's: the engine's publish and the Python path produce
    the same records, none of an own write's on the history topic, and count it."""
    own = OwnOrigin(
        OwnWrites(ledger="ledger") if flavour == "postgresql" else OwnWrites(gtid_domain=77)
    )
    spec, pipeline, fast = paths(own)
    messages = []
    mine = set()
    for i, (key, value) in enumerate(typical_changes(120, seed=7)):
        if flavour == "mariadb":
            value = mariadb(value, i)
        if i % 3 == 0 and i >= 60:  # the updates, not the snapshot reads
            mine.add(i)
            if flavour == "postgresql":
                value = with_source(value, txId=900_000 + i)
                own.add(entry((3 << 32) + 900_000 + i))  # the ledger holds the epoch too
            else:
                value = with_source(value, gtid=f"77-1-{5000 + i}")
        messages.append(FakeMessage(RawRecord(key, value, TOPIC, 0, i)))

    producer = RecordingProducer(full_on=set())
    native = Counts()
    assert fast.publish(messages, 0, producer, spec, native, Marks()) == len(messages)
    expected, reference = python_path(spec, pipeline, own, messages)
    assert producer.calls == expected
    assert native.no_event == reference.no_event
    assert native.no_event[OWN_WRITE] == len(mine)
    assert native.records_in == reference.records_in == len(messages)
    assert native.balanced
    assert reference.balanced
    assert native.latest_out == reference.latest_out == len(messages)
    history = [c for c in expected if c[0] == spec.history.topic]
    published = {orjson.loads(c[1])["provenance"]["position"].get("lsn") for c in history}
    for i in mine:  # no event of an own write; the others keep theirs
        lsn = orjson.loads(messages[i].value() or b"")["source"].get("lsn")
        assert flavour != "postgresql" or lsn not in published
    assert reference.records_with_events == len(messages) - len(mine) - sum(
        n for reason, n in reference.no_event.items() if reason != OWN_WRITE
    )


def test_without_own_writes_the_same_changes_publish_their_events() -> None:
    own = OwnOrigin(OwnWrites(ledger="ledger"))
    spec, _pipeline, fast = paths(own)
    messages = [
        FakeMessage(RawRecord(k, v, TOPIC, 0, i))
        for i, (k, v) in enumerate(typical_changes(40, seed=7))
    ]
    producer = RecordingProducer(full_on=set())
    batch = Counts()
    fast.publish(messages, 0, producer, spec, batch, Marks())
    assert OWN_WRITE not in batch.no_event
    assert batch.records_with_events > 0


def test_a_non_ascii_gtid_is_left_to_python() -> None:
    own = OwnOrigin(OwnWrites(gtid_domain=77))
    _spec, _pipeline, fast = paths(own)
    key, value = typical_changes(2, seed=1)[0]
    raw = RawRecord(key, with_source(mariadb(value, 0), gtid="\u0667\u0667-1-1"), TOPIC, 0, 0)
    assert fast.process(raw) is None
    assert own.is_own({"gtid": "\u0667\u0667-1-1"})  # Python reads Unicode digits: it decides


def test_around_a_python_stage_an_own_write_publishes_no_event() -> None:
    """The split path (the engine around a Python stage) goes through the Python handler,
    which applies the decision: the same records as the Python path, own writes' history
    left out."""
    spec, pipeline, path = split_paths("catalog", MIDDLE)
    own = OwnOrigin(OwnWrites(ledger="ledger"))
    messages = []
    for i, (key, value) in enumerate(typical_changes(120, seed=5)):
        if i >= 60 and i % 2 == 0:
            value = with_source(value, txId=800_000 + i)
            own.add(entry(800_000 + i))
        messages.append(FakeMessage(RawRecord(key, value, TOPIC, 0, i)))
    calls: dict[str, list[Any]] = {"python": [], "split": []}
    counts = {"python": Counts(), "split": Counts()}
    for name, handler in (
        ("python", RecordHandler(spec, pipeline, None, own=own)),
        ("split", RecordHandler(spec, pipeline, None, split=path, own=own)),
    ):
        for msg in messages:
            handler.handle(msg, counts[name], Marks(), lambda *a, n=name: calls[n].append(a))
    assert calls["split"] == calls["python"]
    assert counts["split"].native > 0
    assert counts["split"].no_event == counts["python"].no_event
    assert counts["python"].no_event[OWN_WRITE] > 0
    # Each own write still wrote its state: one latest-topic write per record, as without.
    latest = [c for c in calls["python"] if c[0] == spec.latest.topic]
    assert len(latest) == counts["python"].latest_out
    assert counts["python"].balanced

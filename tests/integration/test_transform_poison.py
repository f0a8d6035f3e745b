"""Poison values through the real worker on the real broker (issue 10, §3): a value its
legacy column cannot hold or with control characters is dead-lettered with its reason, a
reference to an unknown category or supplier is published marked unresolved, and nothing
is lost: every input record is an event, a dead letter or a counted no-event record.

Uses the raw-topic fixture of test_transform_worker (synthetic Debezium records on a raw
topic of its own, reference topics filled from the legacy generator).
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest

from seam.legacy_db.files import folder
from seam.legacy_db.synthetic import envelope
from seam.transforms.readback import compacted, read_to_end
from seam.transforms.schemas import SchemaSet
from tests.integration import test_transform_worker as worker_tests
from tests.integration.test_transform_worker import Raw, changes, product, run_in_thread, send

pytestmark = pytest.mark.integration

raw = worker_tests.raw  # the fixture

UNKNOWN_CATEGORY = 999_999
UNKNOWN_SUPPLIER = 999_998
# (row changes, the column, and the rule kind and what it says, as its reason must name them)
POISON: dict[int, tuple[dict[str, Any], str, str]] = {
    901: ({"prod_name": "A" * 200_000}, "prod_name", "max_length: longer than 200 characters"),
    902: ({"sku": "S" * 5_000}, "sku", "max_length: longer than 32 characters"),
    903: ({"prod_name": "Mug\x00"}, "prod_name", "no_control: control character U+0000"),
    904: ({"prod_name": "Mug\x07 blue"}, "prod_name", "no_control: control character U+0007"),
    905: ({"descr": "Rings\x07 a bell."}, "descr", "no_control: control character U+0007"),
}


def _next(raw: Raw, op: str, before: Any, after: Any) -> tuple[bytes, bytes]:
    raw.lsn += 1
    return envelope("products", op, before, after, raw.lsn)


def test_poison_values_are_dead_lettered_and_unknown_references_marked(raw: Raw) -> None:
    # In source-log order (positions only grow along the stream, as Debezium writes it):
    # ten products listed, the poison, an orphan, ten more products, a move.
    good = list(changes(raw, 10))
    poison = {
        pid: _next(raw, "c", None, {**product(pid, "Mug"), **row})
        for pid, (row, _c, _r) in POISON.items()
    }
    orphan = _next(
        raw,
        "c",
        None,
        {**product(950, "Orphan mug"), "cat_id": UNKNOWN_CATEGORY, "supp_id": UNKNOWN_SUPPLIER},
    )
    more = list(changes(raw, 10))
    # Product 1 moves to a category that does not exist (an update: ProductRecategorized).
    moved = _next(
        raw, "u", product(1, "Mug 0"), {**product(1, "Mug 0"), "cat_id": UNKNOWN_CATEGORY}
    )
    records = good + list(poison.values()) + [orphan] + more + [moved]
    send(raw, records)

    worker, thread, errors = run_in_thread(raw, "poison-values", stop_when_caught_up=True)
    thread.join(120)
    assert not thread.is_alive()
    assert not errors, errors
    counts = worker.progress.counts
    assert counts.records_in == len(records)
    assert counts.dead_lettered == len(POISON)
    assert counts.events_out == 20 + 1 + 1
    assert counts.balanced
    assert counts.native > 0  # the compiled fast path took the plain records

    # Every poison record is in the dead-letter topic, as it came, with its reason.
    dead = read_to_end(raw.bootstrap, raw.spec.dead_letter.topic)
    by_value = {d.value: d for d in dead}
    assert len(dead) == len(POISON)
    for pid, (_row, column, rule) in POISON.items():
        letter = by_value[poison[pid][1]]
        assert letter.headers["seam.stage"] == b"clean"
        reason = (letter.headers["seam.reason"] or b"").decode()
        assert reason.startswith(f"products: {column}: {rule}"), reason
        assert len(reason) < 300  # the value quoted shortened, not 200,000 characters

    # The unknown references are published, marked, on both outputs.
    events = [r.json() for r in read_to_end(raw.bootstrap, raw.spec.history.topic)]
    listed = [e for e in events if e["product_id"] == 950]
    assert [e["event_type"] for e in listed] == ["ProductListed"]
    state = listed[0]["data"]["product"]
    assert state["category"] == {"id": UNKNOWN_CATEGORY, "resolved": False}
    assert state["supplier"] == {"id": UNKNOWN_SUPPLIER, "resolved": False}
    (recategorized,) = [e for e in events if e["event_type"] == "ProductRecategorized"]
    assert recategorized["product_id"] == 1
    assert recategorized["data"]["new_category"] == {"id": UNKNOWN_CATEGORY, "resolved": False}
    assert "name" in recategorized["data"]["old_category"]  # a known one keeps its name
    latest = compacted(read_to_end(raw.bootstrap, raw.spec.latest.topic))
    assert latest[b"950"]["category"] == {"id": UNKNOWN_CATEGORY, "resolved": False}
    assert latest[b"1"]["category"] == {"id": UNKNOWN_CATEGORY, "resolved": False}
    assert not {str(pid).encode() for pid in POISON} & set(latest)

    # What a consumer reads can be trusted: every event valid against the latest schemas.
    schemas = SchemaSet.load(folder("schemas"))
    for event in events:
        found = schemas.latest(event["event_type"])
        assert found is not None
        assert event["schema_version"] == found[0] == 2
        assert jsonschema_rs.validator_for(dict(found[1])).is_valid(event), event["event_type"]

    # Nothing lost: each input record is an event's source or a dead letter.
    source = read_to_end(raw.bootstrap, raw.products)
    published = {(e["provenance"]["partition"], e["provenance"]["offset"]) for e in events}
    dead_lettered = {
        (
            int(d.headers["seam.source.partition"] or b""),
            int(d.headers["seam.source.offset"] or b""),
        )
        for d in dead
    }
    assert not published & dead_lettered
    assert published | dead_lettered == {(r.partition, r.offset) for r in source}

"""A declared entity end to end, without Kafka: Debezium-shaped change records of a small
non-catalog table (orders, composite key [region, order_no], a status gone-condition, a
soft-delete flag) through decode, clean, events and validate (against the schemas derived
from the same declaration)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from seam.changes import RawRecord
from seam.transforms.declared.derive import derive
from seam.transforms.declared.envelope import event_id, key_text
from seam.transforms.pipeline import Pipeline, Produced, Rejected
from seam.transforms.pipeline_file import PipelineSpec, load_pipeline

pytestmark = pytest.mark.unit

TOPIC = "shop.public.orders"

PIPELINE = """\
name: orders
group: seam-transform-orders
inputs: [shop.public.orders]
stages:
  - use: decode
  - use: clean
  - use: events
  - use: validate
    with: {schemas: schemas, state_schema: OrderState}
outputs:
  history: {topic: shop.order-events}
  latest: {topic: shop.orders-latest}
  dead_letter: {topic: shop.orders-dead-letter}
tables:
  orders:
    key: [region, order_no]
    columns:
      region: {required: true, rules: [trim, {case: upper}, {pattern: '[A-Z]{2}'}]}
      order_no: {from: order_number, required: true, rules: [integer, {range: {min: 1}}]}
      status:
        from: status_cd
        required: true
        rules: [trim, {case: upper}, {codes: {N: new, S: shipped, C: cancelled}}]
      total: {rules: [{decimal: {scale: 2}}]}
      placed_at: {rules: [{timestamp: {zone: Europe/Berlin}}]}
      note: {on_fail: absent, rules: [trim, empty_as_absent, {max_length: 20}]}
      deleted: {from: del_flag, rules: [{boolean: {null: false}}]}
entity:
  name: order
  table: orders
  key: [region, order_no]
  state: [region, order_no, status, total, placed_at, note]
  gone:
    - {field: deleted, reason: soft_deleted}
    - {field: status, in: [cancelled], reason: cancelled}
events:
  OrderPlaced: {on: created, data: {order: state}}
  OrderRestored: {on: returned, data: {order: state, how: '=restored'}}
  OrderClosed:
    on: gone
    data: {reason: gone_reason, region: key.region, last_status: old.status}
  OrderShipped:
    on: changed
    fields: [status]
    when: {status: shipped}
    data: {previous: old.status, now: new.status, total: new.total}
  OrderRepriced: {on: changed, fields: [total]}
  OrderNoteChanged: {on: changed, fields: [note]}
"""


def write_pipeline(folder: Path) -> PipelineSpec:
    path = folder / "orders.yaml"
    path.write_text(PIPELINE, encoding="utf-8")
    spec = load_pipeline(path)
    assert spec.declaration is not None
    for name, schema in derive(spec.declaration).items():
        (folder / "schemas" / name).mkdir(parents=True)
        (folder / "schemas" / name / "v1.json").write_text(json.dumps(schema), encoding="utf-8")
    return spec


@pytest.fixture
def pipeline(tmp_path: Path) -> Pipeline:
    return write_pipeline(tmp_path).build()


def row(**values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "region": " eu ",
        "order_number": 7,
        "status_cd": "N",
        "total": "12.50",
        "placed_at": 1_790_000_000_000_000,  # MicroTimestamp, Berlin wall-clock time
        "note": " first ",
        "del_flag": None,
    }
    base.update(values)
    return base


_OFFSET = iter(range(10**9))


def record(
    op: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    lsn: int,
    *,
    table: str = "orders",
    offset: int | None = None,
    snapshot: str = "false",
) -> RawRecord:
    """One change record as Debezium's PostgreSQL connector writes it (JSON, no schema)."""
    keyed = after if after is not None else before
    assert keyed is not None
    key = orjson.dumps({"region": keyed["region"], "order_number": keyed["order_number"]})
    ts = 1_795_392_989_806 + lsn
    source = {
        "version": "3.5.0.Final",
        "connector": "postgresql",
        "name": "shop",
        "ts_ms": ts,
        "snapshot": snapshot,
        "db": "shop",
        "sequence": f'[null,"{lsn}"]',
        "schema": "public",
        "table": table,
        "txId": 900 + lsn,
        "lsn": lsn,
        "xmin": None,
    }
    value = orjson.dumps(
        {"before": before, "after": after, "source": source, "op": op, "ts_ms": ts + 5}
    )
    return RawRecord(
        key, value, f"shop.public.{table}", 0, next(_OFFSET) if offset is None else offset
    )


def produced(outcome: Produced | Rejected) -> Produced:
    assert isinstance(outcome, Produced), outcome
    return outcome


def events(outcome: Produced | Rejected) -> list[dict[str, Any]]:
    return [i.event for i in produced(outcome).events if i.event is not None]


def test_a_created_order(pipeline: Pipeline) -> None:
    outcome = produced(pipeline.run(record("c", None, row(), 100)))
    (item,) = outcome.items
    event = item.event
    assert event is not None
    state = {
        "region": "EU",
        "order_no": 7,
        "status": "new",
        "total": "12.50",
        "placed_at": "2026-09-21T12:13:20Z",
        "note": "first",
    }
    # The key fields at the top level, beside the envelope's own; validated (version set).
    assert event["event_type"] == "OrderPlaced"
    assert event["entity"] == "order"
    assert (event["region"], event["order_no"]) == ("EU", 7)
    assert event["data"] == {"order": state}
    assert event["schema_version"] == 1
    assert event["occurred_at"] == "2026-11-23T00:16:29.906000Z"
    assert event["provenance"]["table"] == "public.orders"
    assert event["provenance"]["position"] == {
        "lsn": 100,
        "tx_id": 1000,
        "sequence": '[null,"100"]',
    }
    # A composite key is a JSON array, in declared order.
    assert item.latest_key == '["EU",7]'
    assert item.state == state


def test_the_snapshot_reads_a_row_as_created(pipeline: Pipeline) -> None:
    (event,) = events(pipeline.run(record("r", None, row(), 100, snapshot="true")))
    assert event["event_type"] == "OrderPlaced"
    assert event["provenance"]["snapshot"] is True


def test_key_text() -> None:
    assert key_text(("EU", 7)) == '["EU",7]'
    assert key_text((7,)) == "7"
    assert key_text(("a b",)) == "a b"
    assert json.loads(key_text(("x", 1, None))) == ["x", 1, None]


def test_event_ids_are_deterministic(tmp_path: Path) -> None:
    spec = write_pipeline(tmp_path)
    first = events(spec.build().run(record("c", None, row(), 100, offset=5)))[0]
    # The same change delivered again (at another offset), to another worker: the same id.
    again = events(spec.build().run(record("c", None, row(), 100, offset=77)))[0]
    assert again["event_id"] == first["event_id"]
    # Another position, another key or another type: another id.
    later = events(spec.build().run(record("c", None, row(), 101)))[0]
    other = events(spec.build().run(record("c", None, row(order_number=8), 100)))[0]
    assert len({first["event_id"], later["event_id"], other["event_id"]}) == 3
    assert first["event_id"] == event_id(first["provenance"], '["EU",7]', "OrderPlaced")
    assert event_id(first["provenance"], '["EU",7]', "OrderShipped") != first["event_id"]


def test_one_update_yields_several_events_in_declared_order(pipeline: Pipeline) -> None:
    before = row()
    after = row(status_cd="S", total="14.00", note="changed")
    outcome = produced(pipeline.run(record("u", before, after, 200)))
    found = events(outcome)
    assert [e["event_type"] for e in found] == ["OrderShipped", "OrderRepriced", "OrderNoteChanged"]
    assert found[0]["data"] == {"previous": "new", "now": "shipped", "total": "14.00"}
    assert found[1]["data"] == {"old_total": "12.50", "new_total": "14.00"}
    assert found[2]["data"] == {"old_note": "first", "new_note": "changed"}
    assert len({e["event_id"] for e in found}) == 3
    assert {i.latest_key for i in outcome.items} == {'["EU",7]'}
    assert outcome.items[0].state is not None
    assert outcome.items[0].state["status"] == "shipped"


def test_a_changed_event_with_when_only_for_the_listed_values(pipeline: Pipeline) -> None:
    # new -> (back from shipped) new: status changed, but not to 'shipped'.
    outcome = produced(pipeline.run(record("u", row(status_cd="S"), row(status_cd="N"), 201)))
    assert outcome.events == []
    assert outcome.zero_reason == "no-op update"


def test_a_no_op_update(pipeline: Pipeline) -> None:
    # Only what the rules clean away changed: nothing happened to the order.
    outcome = produced(pipeline.run(record("u", row(note=" first"), row(note="first  "), 202)))
    assert outcome.zero_reason == "no-op update"
    (item,) = outcome.items
    assert item.latest_key == '["EU",7]'
    assert item.state is not None


def test_gone_by_status_and_by_soft_delete(pipeline: Pipeline) -> None:
    outcome = produced(pipeline.run(record("u", row(), row(status_cd="C"), 300)))
    (event,) = events(outcome)
    assert event["event_type"] == "OrderClosed"
    assert event["data"] == {"reason": "cancelled", "region": "EU", "last_status": "new"}
    # Gone: the latest topic gets a tombstone under the key.
    assert outcome.items[0].latest_key == '["EU",7]'
    assert outcome.items[0].state is None
    (event,) = events(pipeline.run(record("u", row(), row(del_flag="Y"), 301)))
    assert event["data"]["reason"] == "soft_deleted"


def test_returned(pipeline: Pipeline) -> None:
    outcome = produced(pipeline.run(record("u", row(status_cd="C"), row(status_cd="N"), 400)))
    (event,) = events(outcome)
    assert event["event_type"] == "OrderRestored"
    assert event["data"]["how"] == "restored"
    assert event["data"]["order"] == outcome.items[0].state


def test_changes_of_a_gone_order_yield_nothing(pipeline: Pipeline) -> None:
    outcome = produced(pipeline.run(record("c", None, row(del_flag="Y"), 500)))
    assert outcome.zero_reason == "created order is gone (soft_deleted)"
    assert outcome.items[0].state is None
    outcome = produced(
        pipeline.run(record("u", row(status_cd="C"), row(status_cd="C", total="1.00"), 501))
    )
    assert outcome.zero_reason == "update of a gone order"
    outcome = produced(pipeline.run(record("d", row(status_cd="C"), None, 502)))
    assert outcome.zero_reason == "delete of a gone order"


def test_a_delete_of_a_live_row_and_of_an_unknown_row(pipeline: Pipeline) -> None:
    (event,) = events(pipeline.run(record("d", row(), None, 600)))
    assert event["data"] == {"reason": "deleted", "region": "EU", "last_status": "new"}
    # REPLICA IDENTITY DEFAULT: the old row holds the key only. The order may have been
    # live: it is gone now, and what it was is unknown.
    only_key = dict.fromkeys(row()) | {"region": "us", "order_number": 9}
    outcome = produced(pipeline.run(record("d", only_key, None, 601)))
    (event,) = events(outcome)
    assert event["event_type"] == "OrderClosed"
    assert (event["region"], event["order_no"]) == ("US", 9)
    assert event["data"] == {"reason": "deleted", "region": "US", "last_status": None}
    assert outcome.items[0].latest_key == '["US",9]'
    assert outcome.items[0].state is None


def test_an_update_without_the_old_row_is_rejected(pipeline: Pipeline) -> None:
    outcome = pipeline.run(record("u", None, row(status_cd="S"), 700))
    assert isinstance(outcome, Rejected)
    assert outcome.stage == "events"
    assert "update without the old row: cannot tell what changed" in outcome.reason
    assert "REPLICA IDENTITY FULL" in outcome.reason
    assert "replica_identity_full:" in outcome.reason


def test_tombstones_and_other_tables_are_noted(pipeline: Pipeline) -> None:
    tombstone = RawRecord(orjson.dumps({"region": "eu", "order_number": 7}), None, TOPIC, 0, 1)
    outcome = produced(pipeline.run(tombstone))
    assert outcome.zero_reason == "tombstone"
    assert outcome.items[0].latest_key is None
    other = record("c", None, row(), 800, table="customers")
    outcome = produced(pipeline.run(other))
    assert outcome.zero_reason == "table customers has no domain events"
    assert outcome.items[0].latest_key is None


def test_a_value_no_rule_can_fix_rejects_the_record(pipeline: Pipeline) -> None:
    outcome = pipeline.run(record("c", None, row(status_cd="Q"), 900))
    assert isinstance(outcome, Rejected)
    assert outcome.stage == "clean"
    assert outcome.reason == (
        "orders: status_cd: codes: unknown code 'Q' (expected one of N, S, C)"
    )


def test_an_absent_value_is_left_out_of_the_state(pipeline: Pipeline) -> None:
    outcome = produced(pipeline.run(record("c", None, row(note="x" * 50, total=None), 901)))
    (item,) = outcome.items
    assert item.state == {
        "region": "EU",
        "order_no": 7,
        "status": "new",
        "placed_at": "2026-09-21T12:13:20Z",
    }
    assert item.extra["absent"] == [
        "note: max_length: longer than 20 characters: 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'... (50 characters)"
    ]
    assert item.event is not None
    assert item.event["schema_version"] == 1  # validated against the derived schema


def test_a_bad_old_value_never_rejects_an_update(pipeline: Pipeline) -> None:
    outcome = produced(pipeline.run(record("u", row(status_cd="Q"), row(status_cd="S"), 902)))
    (event,) = events(outcome)
    assert event["event_type"] == "OrderShipped"
    assert event["data"]["previous"] is None
    assert outcome.items[0].extra["before_unknown"] == [
        "status_cd: codes: unknown code 'Q' (expected one of N, S, C)"
    ]

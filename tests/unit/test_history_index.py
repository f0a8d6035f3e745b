"""The history index and its fold, without Kafka: domain events made by the real declared
pipeline (decode, clean, events, validate) from Debezium-shaped records of a table with a
composite key (tests/unit/test_declared_entity.py's orders), indexed into SQLite, then
timelines, as-of states and "why" answers checked against what the changes were; positions
compared across binlog files; the catalog declaration's tracked fields."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from seam.legacy_db.files import folder as example_folder
from seam.services.history_fold import Folding
from seam.services.history_index import (
    HistoryError,
    HistoryIndex,
    KeyNotFoundError,
    parse_time,
)
from seam.services.history_positions import (
    BEFORE_ROWS,
    Position,
    PositionError,
    event_positions,
    parse_position,
)
from seam.transforms.declared.envelope import envelope
from seam.transforms.pipeline import Pipeline
from seam.transforms.pipeline_file import load_pipeline
from tests.unit.test_declared_entity import events, record, row, write_pipeline

pytestmark = pytest.mark.unit

KEY = '["EU",7]'


def at(lsn: int) -> datetime:
    """The source time `record` gives the change at `lsn`."""
    return datetime.fromtimestamp((1_795_392_989_806 + lsn) / 1000, tz=UTC)


class Topic:
    """Events as the worker would publish them: one partition, offsets in order."""

    def __init__(self, index: HistoryIndex, pipeline: Pipeline) -> None:
        self.index = index
        self.pipeline = pipeline
        self.offset = 0
        self.published: list[dict[str, Any]] = []

    def change(self, op: str, before: Any, after: Any, lsn: int) -> list[dict[str, Any]]:
        found = events(self.pipeline.run(record(op, before, after, lsn)))
        self.publish(found)
        return found

    def publish(self, found: list[dict[str, Any]]) -> None:
        rows = []
        for event in found:
            key = self.index.normalize_key(
                orjson.dumps([event["region"], event["order_no"]]).decode()
            )
            made = self.index.row(key.encode(), orjson.dumps(event), 0, self.offset)
            assert made is not None
            rows.append(made)
            self.offset += 1
            self.published.append(event)
        self.index.add(rows, {0: self.offset})


@pytest.fixture
def topic(tmp_path: Path) -> Topic:
    spec = write_pipeline(tmp_path)
    index = HistoryIndex(tmp_path / "index.sqlite", spec.history.topic, spec.declaration)
    return Topic(index, spec.build())


def life(topic: Topic) -> None:
    """Placed at lsn 100; total changed twice (200, 300); shipped with a new total (400);
    cancelled (500: gone); restored (600); deleted (700)."""
    first = row()
    topic.change("c", None, first, 100)
    second = row(total="13.00")
    topic.change("u", first, second, 200)
    third = row(total="14.00")
    topic.change("u", second, third, 300)
    shipped = row(total="15.00", status_cd="S", note="sent")
    topic.change("u", third, shipped, 400)
    cancelled = row(total="15.00", status_cd="C", note="sent")
    topic.change("u", shipped, cancelled, 500)
    back = row(total="9.99", status_cd="N", note="again")
    topic.change("u", cancelled, back, 600)
    topic.change("d", back, None, 700)


def test_the_timeline_lists_each_event_with_its_provenance_and_changes(topic: Topic) -> None:
    life(topic)
    timeline = topic.index.timeline("EU,7")  # a composite key, as text or JSON
    assert timeline.key == KEY
    types = [e.event.event_type for e in timeline.entries]
    assert types == [
        "OrderPlaced",
        "OrderRepriced",
        "OrderRepriced",
        "OrderShipped",  # one update: shipped, a new total, a new note
        "OrderRepriced",
        "OrderNoteChanged",
        "OrderClosed",
        "OrderRestored",
        "OrderClosed",
    ]
    second = timeline.entries[1]
    assert second.event.position == "lsn 0/C8 tx 1100"
    assert second.provenance["table"] == "public.orders"
    assert second.provenance["position"]["lsn"] == 200
    assert [(c.field, c.old, c.new, c.columns) for c in second.changes] == [
        ("total", "12.50", "13.00", ("total",))
    ]
    shipped = timeline.entries[3]
    assert {c.field: (c.old, c.new) for c in shipped.changes} == {
        "status": ("new", "shipped"),
        "total": ("14.00", "15.00"),
    }
    assert timeline.entries[4].changes == ()  # the same total, from the same change
    assert {c.field for c in timeline.entries[5].changes} == {"note"}
    gone = timeline.entries[6]
    assert gone.trigger == "gone"
    assert {c.new for c in gone.changes} == {None}
    assert [e.event.offset for e in timeline.entries] == list(range(9))


def test_state_as_of_times_between_the_changes(topic: Topic) -> None:
    life(topic)
    index = topic.index
    before = index.as_of(KEY, at=at(50))
    assert (before.exists, before.live, before.state) == (False, False, None)
    placed = index.as_of(KEY, at=at(100))
    assert placed.state is not None
    assert placed.state["total"] == "12.50"
    assert placed.state["status"] == "new"
    # A field changed twice: each time gives its own value.
    assert index.as_of(KEY, at=at(250)).state["total"] == "13.00"  # type: ignore[index]
    assert index.as_of(KEY, at=at(399)).state["total"] == "14.00"  # type: ignore[index]
    shipped = index.as_of(KEY, at=at(450))
    assert shipped.state == {
        "region": "EU",
        "order_no": 7,
        "status": "shipped",
        "total": "15.00",
        "placed_at": "2026-09-21T12:13:20Z",
        "note": "sent",
    }
    # The shipping change's first event set the total; the next one only repeated it.
    assert shipped.set_by["total"].event_type == "OrderShipped"
    assert shipped.set_by["total"].position == "lsn 0/190 tx 1300"
    assert shipped.set_by["order_no"].event_type == "OrderPlaced"  # keys never change
    assert shipped.set_by["placed_at"].event_type == "OrderPlaced"
    # Cancelled is a gone condition: not live, with the reason its event carries.
    cancelled = index.as_of(KEY, at=at(550))
    assert (cancelled.exists, cancelled.live, cancelled.gone_reason) == (True, False, "cancelled")
    restored = index.as_of(KEY, at=at(650))
    assert restored.state is not None
    assert (restored.state["total"], restored.state["note"]) == ("9.99", "again")
    assert restored.events == 1  # the fold starts at the event that reset the state
    deleted = index.as_of(KEY)
    assert (deleted.live, deleted.gone_reason, deleted.cut) == (False, "deleted", "latest")


def test_the_fold_equals_the_pipelines_own_state_after_every_change(tmp_path: Path) -> None:
    """What the latest topic got (the events stage's state) is what the fold of the events
    says, for every tracked field, after each change."""
    spec = write_pipeline(tmp_path)
    index = HistoryIndex(tmp_path / "index.sqlite", spec.history.topic, spec.declaration)
    topic = Topic(index, spec.build())
    folding = index.folding
    assert folding is not None
    rows = [
        row(),
        row(total="1.00"),
        row(total="2.00", note="x"),
        row(total="2.00", note=None),
        row(total="3.00", status_cd="S"),
        row(total="3.00", status_cd="S", note="y"),
    ]
    for lsn, (old, new) in enumerate(zip([None, *rows], rows, strict=False), start=1):
        outcome = topic.pipeline.run(record("c" if old is None else "u", old, new, lsn * 10))
        state = outcome.items[-1].state  # type: ignore[union-attr]
        topic.publish(events(outcome))
        got = index.as_of(KEY, at=at(lsn * 10))
        assert got.state is not None
        assert state is not None
        tracked = {k: v for k, v in state.items() if k in folding.tracked}
        assert {k: got.state.get(k) for k in tracked} == tracked


def test_tracked_and_untracked_fields(topic: Topic) -> None:
    folding = topic.index.folding
    assert folding is not None
    # status: 'new' is reached without an event (OrderShipped only says 'shipped');
    # placed_at: no event names it.
    assert folding.untracked == ("status", "placed_at")
    life(topic)
    latest = topic.index.as_of(KEY, at=at(450))
    assert latest.untracked == ("status", "placed_at")


def test_the_catalog_declaration_tracks_all_but_the_times() -> None:
    spec = load_pipeline(example_folder("pipelines") / "catalog.yaml")
    assert spec.declaration is not None
    folding = Folding(spec.declaration)
    # status is tracked: discontinued and active by their events' `when`, delisted by a
    # gone condition; created_at and updated_at change without an event of their own.
    assert folding.untracked == ("created_at", "updated_at")


def test_why_names_the_event_that_set_the_value_and_its_raw_record(topic: Topic) -> None:
    life(topic)
    read: list[tuple[str, int, int]] = []

    def reader(t: str, p: int, o: int) -> dict[str, Any]:
        read.append((t, p, o))
        return {"op": "u", "offset": o}

    why = topic.index.why(KEY, "total", at=at(350), raw_reader=reader)
    assert why.value == "14.00"
    assert why.event is not None
    assert why.event.event.event_type == "OrderRepriced"
    assert why.event.provenance["position"]["lsn"] == 300
    assert read == [("shop.public.orders", 0, why.event.provenance["offset"])]
    assert why.raw == {"op": "u", "offset": why.event.provenance["offset"]}
    # Without a cut: the latest; the order is gone, so the gone event is why.
    latest = topic.index.why(KEY, "total")
    assert latest.live is False
    assert latest.event is not None
    assert latest.event.event.event_type == "OrderClosed"
    untracked = topic.index.why(KEY, "placed_at", at=at(450))
    assert untracked.untracked
    assert any("without an event" in n for n in untracked.notes)
    gone_raw = topic.index.why(KEY, "note", at=at(450), raw_reader=lambda *_: None)
    assert any("not in Kafka any more" in n for n in gone_raw.notes)


def test_unknown_keys_fields_and_bad_cuts_are_clear_errors(topic: Topic) -> None:
    life(topic)
    with pytest.raises(KeyNotFoundError, match=r'key \["EU",8\] has no events'):
        topic.index.timeline('["EU",8]')
    with pytest.raises(HistoryError, match=r"'totl' is not a state field.*did you mean 'total'"):
        topic.index.why(KEY, "totl")
    with pytest.raises(HistoryError, match=r"binlog position; the events of key .* carry lsn"):
        topic.index.as_of(KEY, position=parse_position("mysql-bin.000001:4"))
    with pytest.raises(HistoryError, match="is not a time"):
        parse_time("yesterday")
    with pytest.raises(PositionError, match="is not a source position"):
        parse_position("nowhere")


def test_as_of_an_lsn(topic: Topic) -> None:
    life(topic)
    index = topic.index
    assert index.as_of(KEY, position=parse_position("299")).state["total"] == "13.00"  # type: ignore[index]
    assert index.as_of(KEY, position=parse_position("0/12C")).state["total"] == "14.00"  # type: ignore[index]
    assert not index.as_of(KEY, position=parse_position("99")).exists


def test_a_duplicate_delivery_is_folded_once(topic: Topic) -> None:
    life(topic)
    repriced = topic.published[1]  # total 12.50 -> 13.00, delivered again at the end
    topic.publish([repriced])
    timeline = topic.index.timeline(KEY)
    assert timeline.entries[-1].duplicate
    assert timeline.entries[-1].changes == ()
    assert topic.index.as_of(KEY).gone_reason == "deleted"


def test_events_of_a_key_first_seen_changing_mark_the_rest_unknown(tmp_path: Path) -> None:
    """A topic whose retention dropped the creation: what the events carry is known."""
    spec = write_pipeline(tmp_path)
    index = HistoryIndex(tmp_path / "index.sqlite", spec.history.topic, spec.declaration)
    topic = Topic(index, spec.build())
    topic.change("u", row(), row(total="2.00"), 100)
    state = index.as_of(KEY)
    assert state.state == {"region": "EU", "order_no": 7, "total": "2.00"}
    assert set(state.unknown) == {"status", "placed_at", "note"}


# -- positions across binlog files and GTIDs ------------------------------------------------


def binlog_event(file: str, pos: int, row_no: int, gtid: str, total: str, n: int) -> dict[str, Any]:
    provenance = {
        "source_db": "shop",
        "connector": "mariadb",
        "server_name": "shop",
        "table": "shop.orders",
        "position": {"binlog_file": file, "binlog_pos": pos, "binlog_row": row_no, "gtid": gtid},
        "source_ts": f"2026-12-01T00:00:0{n}Z",
        "snapshot": False,
        "topic": "shop.shop.orders",
        "partition": 0,
        "offset": n,
    }
    data = {"old_total": None, "new_total": total}
    return envelope("OrderRepriced", "order", {"region": "EU", "order_no": 7}, data, provenance)


def test_binlog_positions_compare_by_file_number_then_position(topic: Topic) -> None:
    listed = envelope(
        "OrderPlaced",
        "order",
        {"region": "EU", "order_no": 7},
        {"order": {"region": "EU", "order_no": 7, "status": "new", "total": "1.00"}},
        {
            "table": "shop.orders",
            "position": {
                "binlog_file": "mysql-bin.000009",
                "binlog_pos": 900,
                "binlog_row": 0,
                "gtid": "0-1-8",
            },
            "source_ts": "2026-12-01T00:00:00Z",
            "topic": "shop.shop.orders",
            "partition": 0,
            "offset": 0,
        },
    )
    topic.publish(
        [
            listed,
            binlog_event("mysql-bin.000009", 1200, 0, "0-1-9", "2.00", 1),
            # A later file with a smaller position (and a name that sorts first as text).
            binlog_event("mysql-bin.000010", 4, 0, "0-1-10", "3.00", 2),
            binlog_event("mysql-bin.000010", 4, 1, "0-1-10", "4.00", 3),
        ]
    )
    index = topic.index

    def total(position: str) -> Any:
        got = index.as_of(KEY, position=parse_position(position))
        return got.state["total"] if got.state is not None else None

    assert total("mysql-bin.000009:899") is None
    assert total("mysql-bin.000009:1000") == "1.00"
    assert total("mysql-bin.000009:999999") == "2.00"
    assert total("mysql-bin.000010:4:0") == "3.00"
    assert total("mysql-bin.000010:4:1") == "4.00"
    # A coordinate without a row: where the next event starts, so not that event.
    assert total("mysql-bin.000010:4") == "2.00"
    assert total("mysql-bin.000010:5") == "4.00"
    assert total("0-1-9") == "2.00"
    assert total("0-1-10") == "4.00"
    with pytest.raises(HistoryError, match="GTID 5-1-3 is of stream 5"):
        index.as_of(KEY, position=parse_position("5-1-3"))


def test_parse_position_forms() -> None:
    assert parse_position("0/16B3748") == Position("lsn", (0x16B3748,), text="0/16B3748")
    assert parse_position("1/0").order == (1 << 32,)
    assert parse_position("seam-bin.000003:1234").order == (3, 1234, BEFORE_ROWS)
    assert parse_position("seam-bin.000003:1234:2").order == (3, 1234, 2)
    mysql = parse_position("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-77")
    assert (mysql.kind, mysql.stream, mysql.order) == (
        "gtid",
        "3e11fa47-71ca-11e1-9e33-c80aa9429562",
        (77,),
    )
    log, gtid = event_positions({"binlog_file": "b.000002", "binlog_pos": 7, "gtid": "0-1-5"})
    assert log == Position("binlog", (2, 7, 0))
    assert gtid is not None
    assert gtid.order == (5,)
    assert event_positions({"sequence": '[null,"5"]'}) == (None, None)


def test_an_index_of_another_topic_is_refused(tmp_path: Path) -> None:
    spec = write_pipeline(tmp_path)
    HistoryIndex(tmp_path / "i.sqlite", "a", spec.declaration).close()
    with pytest.raises(HistoryError, match="is of topic 'a'"):
        HistoryIndex(tmp_path / "i.sqlite", "b", spec.declaration)


def test_a_pipeline_without_a_declaration_has_timelines_only(tmp_path: Path) -> None:
    index = HistoryIndex(tmp_path / "i.sqlite", "shop.events", None)
    event = {"event_id": "e1", "event_type": "Anything", "occurred_at": "2026-12-01T00:00:00Z"}
    made = index.row(b"k-1", orjson.dumps(event), 0, 0)
    assert made is not None
    assert index.row(b"k-1", b"not json", 0, 1) is None
    assert index.row(b"k-1", None, 0, 2) is None  # a tombstone is no event
    index.add([made], {0: 3})
    (entry,) = index.timeline("k-1").entries
    assert (entry.event.event_type, entry.trigger, entry.changes) == ("Anything", None, ())
    assert index.offsets() == {0: 3}
    with pytest.raises(HistoryError, match="declares no entity"):
        index.as_of("k-1")

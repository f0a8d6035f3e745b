"""Pure parts of `seam streams`: argument parsing, filters, history timeline, key bytes,
text/JSON rendering. No Kafka here (see tests/integration/test_streams_live.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from seam.changes import UNAVAILABLE, ChangeEvent, Op, RawRecord, json_default
from seam.legacy_db.files import folder
from seam.streams.decode import decode
from seam.streams.filters import EventFilter, as_text, parse_key, parse_ops, parse_where
from seam.streams.format import event_json, event_text, history_text, raw_json, value_text
from seam.streams.history import UNKNOWN, key_bytes_like, timeline
from seam.streams.kafka import StreamsUsageError
from seam.streams.partitioner import partition_for_key
from seam.streams.reader import StartAt, keep, parse_from
from seam.streams.topics import is_internal

pytestmark = pytest.mark.unit

SOURCE = {
    "connector": "postgresql",
    "name": "shop",
    "db": "catalog",
    "schema": "public",
    "table": "products",
    "txId": 5,
    "lsn": 100,
    "ts_ms": 1700000000000,
    "snapshot": "false",
}


def event(
    op: str, after: Any = None, before: Any = None, key: Any = None, offset: int = 0
) -> ChangeEvent:
    payload = {"before": before, "after": after, "source": SOURCE, "op": op, "ts_ms": 1700000000001}
    row = after or before or {}
    raw = RawRecord(
        key=orjson.dumps(key if key is not None else {"id": row.get("id", 0)}),
        value=orjson.dumps(payload, default=json_default),  # UNAVAILABLE -> placeholder
        topic="shop.public.products",
        offset=offset,
        timestamp_ms=1700000000002,
    )
    result = decode(raw)
    assert isinstance(result, ChangeEvent)
    return result


def tombstone(key: Any, offset: int) -> ChangeEvent:
    result = decode(
        RawRecord(key=orjson.dumps(key), value=None, topic="shop.public.products", offset=offset)
    )
    assert isinstance(result, ChangeEvent)
    return result


def test_parse_from() -> None:
    assert parse_from(None) == StartAt("newest")
    assert parse_from("beginning") == StartAt("beginning")
    assert parse_from("latest") == StartAt("latest")
    assert parse_from("1200") == StartAt("offset", 1200)
    assert parse_from("2026-11-23T10:00:00Z") == StartAt(
        "time", int(datetime(2026, 11, 23, 10, tzinfo=UTC).timestamp() * 1000)
    )
    naive = parse_from("2026-11-23T10:00:00")  # naive means UTC
    assert naive.value == int(datetime(2026, 11, 23, 10, tzinfo=UTC).timestamp() * 1000)
    plus_two = parse_from("2026-11-23T12:00:00+02:00")
    assert plus_two.value == naive.value
    with pytest.raises(StreamsUsageError, match="--from"):
        parse_from("yesterday")


def test_parse_ops_keys_and_where() -> None:
    assert parse_ops("c,u") == frozenset({Op.CREATE, Op.UPDATE})
    assert parse_ops("r, tombstone") == frozenset({Op.READ, Op.TOMBSTONE})
    assert parse_ops(None) is None
    with pytest.raises(StreamsUsageError, match="unknown operation 'z'"):
        parse_ops("c,z")
    assert parse_key("42") == "42"
    assert parse_key("id=42,region=eu") == {"id": "42", "region": "eu"}
    assert parse_key('{"id": 42, "ok": true}') == {"id": "42", "ok": "true"}
    with pytest.raises(StreamsUsageError, match="not valid JSON"):
        parse_key("{nope")
    assert parse_where(["status=active", "price = 1.50"]) == (
        ("status", "active"),
        ("price", "1.50"),
    )
    with pytest.raises(StreamsUsageError, match="column=value"):
        parse_where(["status"])


def test_as_text_is_what_a_user_types() -> None:
    assert as_text(None) == "null"
    assert as_text(True) == "true"
    assert as_text(42) == "42"
    assert as_text(Decimal("19.90")) == "19.90"
    assert as_text(date(2024, 3, 1)) == "2024-03-01"
    assert as_text(["a"]) == '["a"]'


def test_event_filter() -> None:
    create = event("c", {"id": 1, "status": "active", "price": "1.50"})
    update = event("u", {"id": 2, "status": "gone", "text": UNAVAILABLE}, None)
    delete = event("d", None, {"id": 3, "status": "active"})
    dead = tombstone({"id": 3}, 9)
    assert EventFilter(ops=frozenset({Op.CREATE})).matches(create)
    assert not EventFilter(ops=frozenset({Op.CREATE})).matches(update)
    assert EventFilter(key="1").matches(create)
    assert not EventFilter(key="1").matches(update)
    assert EventFilter(key={"id": "3"}).matches(dead)
    status_active = EventFilter(where=(("status", "active"),))
    assert status_active.matches(create)
    assert status_active.matches(delete)  # a delete's row is its before image
    assert not status_active.matches(update)
    assert not status_active.matches(dead)  # no row at all
    assert not EventFilter(where=(("missing", "x"),)).matches(create)
    assert not EventFilter(where=(("text", "__debezium_unavailable_value"),)).matches(update)


def test_raw_prefilter_only_skips_sure_misses() -> None:
    filt = EventFilter(key="42")
    assert filt.may_match_raw(RawRecord(key=b'{"id":42}', value=None))
    assert filt.may_match_raw(RawRecord(key=b'{"id":142}', value=None))  # decoded check decides
    assert not filt.may_match_raw(RawRecord(key=b'{"id":7}', value=None))
    assert not filt.may_match_raw(RawRecord(key=None, value=b"{}"))
    quoted = EventFilter(key='a"b')  # not plain: no byte check
    assert quoted.may_match_raw(RawRecord(key=b'{"id":"a\\"b"}', value=None))


def test_keep_shows_undecodable_only_without_filters() -> None:
    garbage = RawRecord(key=b"k", value=b"\x00garbage")
    assert keep(EventFilter(), garbage) is not None
    assert keep(EventFilter(ops=frozenset({Op.CREATE})), garbage) is None


def test_timeline_fills_missing_before_and_unavailable_values() -> None:
    events = [
        event("r", {"id": 1, "name": "a", "price": "1.00", "text": "long"}, offset=0),
        event("u", {"id": 1, "name": "a", "price": "2.00", "text": UNAVAILABLE}, offset=1),
        event(
            "u",
            {"id": 1, "name": "b", "price": "2.00", "text": "new"},
            {"id": 1, "name": "a", "price": "2.00", "text": "long"},
            offset=2,
        ),
        event("d", None, {"id": 1, "name": "b", "price": "2.00", "text": "new"}, offset=3),
        tombstone({"id": 1}, 4),
    ]
    entries = timeline(events)
    assert entries[0].full_row
    assert [c.column for c in entries[0].changes] == ["id", "name", "price", "text"]
    # No before image: compared with the previous row; the TOASTed text carries over.
    assert [(c.column, c.old, c.new) for c in entries[1].changes] == [("price", "1.00", "2.00")]
    assert entries[1].state is not None
    assert entries[1].state["text"] == "long"
    assert [(c.column, c.old, c.new) for c in entries[2].changes] == [
        ("name", "a", "b"),
        ("text", "long", "new"),
    ]
    assert entries[3].state is None
    assert entries[4].changes == ()
    text = history_text(entries[1])
    assert "~ price: '1.00' → '2.00'" in text
    assert "tombstone" in history_text(entries[4])


def test_timeline_without_any_earlier_row_marks_old_unknown() -> None:
    (entry,) = timeline([event("u", {"id": 1, "name": "x"})])
    assert entry.full_row
    assert all(c.old is UNKNOWN for c in entry.changes)


def test_key_bytes_are_rebuilt_exactly_like_debezium_writes_them() -> None:
    assert key_bytes_like(b'{"id":7}', "42") == b'{"id":42}'
    assert key_bytes_like(b'{"sku":"A-1"}', "B-2") == b'{"sku":"B-2"}'
    assert key_bytes_like(b'{"a":1,"b":"x"}', {"b": "y", "a": "2"}) == b'{"a":2,"b":"y"}'
    with_schema = b'{"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"}],"optional":false,"name":"p.Key"},"payload":{"id":1}}'
    rebuilt = key_bytes_like(with_schema, "99")
    assert rebuilt == with_schema.replace(b'{"id":1}', b'{"id":99}')
    assert key_bytes_like(b'{"id":7}', "not-a-number") is None
    assert key_bytes_like(b'{"a":1,"b":2}', "1") is None  # bare value for a two-column key
    assert key_bytes_like(b"garbage", "1") == b"1"  # a plain text key, as it is
    assert partition_for_key(key_bytes_like(b'{"id":7}', "42") or b"", 3) == partition_for_key(
        b'{"id":42}', 3
    )


def test_event_text_shows_only_changed_columns() -> None:
    update = event(
        "u", {"id": 1, "name": "b", "price": "2.00"}, {"id": 1, "name": "a", "price": "2.00"}
    )
    text = event_text(update)
    assert text.splitlines()[0].startswith("update  public.products  id=1")
    assert "lsn=100 txId=5" in text
    assert "~ name: 'a' → 'b'" in text
    assert "price" not in text
    no_before = event_text(event("u", {"id": 1, "name": "b", "text": UNAVAILABLE}))
    assert "REPLICA IDENTITY DEFAULT" in no_before
    assert "text" not in no_before.split("\n", 1)[1]
    snapshot = event_text(event("r", {"id": 1, "name": "a"}))
    assert len(snapshot.splitlines()) == 2


def test_json_and_raw_output() -> None:
    update = event("u", {"id": 1, "p": "2.00"}, {"id": 1, "p": "1.00"})
    data = orjson.loads(event_json(update))
    assert data["op"] == "update"
    assert data["changed"] == ["p"]
    assert data["position"] == {"lsn": 100, "tx_id": 5}
    raw = orjson.loads(
        raw_json(RawRecord(key=b"\xff\x00", value=b'{"a":1}', headers=(("h", b"v"),)))
    )
    assert raw["key_b64"] == "/wA="
    assert raw["value"] == '{"a":1}'
    assert raw["headers"] == {"h": "v"}


def test_value_text() -> None:
    assert value_text("x" * 100).endswith("(102 chars)")
    assert value_text(UNAVAILABLE).startswith("(unavailable")
    assert value_text(b"\x01") == "0x01"
    assert value_text(None) == "null"


def test_internal_topics() -> None:
    assert is_internal("__consumer_offsets")
    assert is_internal("__debezium-heartbeat.shop")
    assert is_internal("seam-connect-offsets")
    assert is_internal("shop.schema-history")
    assert not is_internal("shop.public.products")
    assert not is_internal("shop.public.order_status")


def test_json_records_that_are_not_change_events_show_as_json() -> None:
    from seam.changes import Undecodable
    from seam.streams.format import undecodable_text

    event = b'{"event_type":"ProductRenamed","product_id":7,"data":{"new_name":"Pan"}}'
    item = decode(RawRecord(key=b"7", value=event, topic="catalog.product-events", offset=3))
    assert isinstance(item, Undecodable)
    text = undecodable_text(item)
    assert text.startswith("record  [catalog.product-events p0@3]  key=7\n")
    assert '    "event_type": "ProductRenamed",' in text
    assert orjson.loads(event_json(item))["value"] == orjson.loads(event)
    garbage = decode(RawRecord(key=None, value=b"\x00garbage"))
    assert isinstance(garbage, Undecodable)
    assert undecodable_text(garbage).startswith("undecodable  [")
    assert "undecodable" in orjson.loads(event_json(garbage))


DEAD_LETTER_HEADERS = (
    ("seam.pipeline", b"catalog"),
    ("seam.stage", b"clean"),
    ("seam.reason", b"products: status_cd: unknown status code 'Q' (expected one of A, D, X)"),
)


def test_dead_letters_show_their_stage_and_reason() -> None:
    """A dead letter holds the original record: often a valid change event, sometimes not
    JSON at all. Text and JSON both show why it is there."""
    from seam.streams.format import undecodable_text

    payload = {"before": None, "after": {"id": 1}, "source": SOURCE, "op": "c"}
    change = decode(
        RawRecord(b'{"id":1}', orjson.dumps(payload), "dlq", 0, 4, None, DEAD_LETTER_HEADERS)
    )
    assert isinstance(change, ChangeEvent)
    text = event_text(change)
    assert "header seam.stage: clean" in text
    assert "header seam.reason: products: status_cd: unknown status code 'Q'" in text
    assert "(expected one of A, D, X)" in text  # whole, not cut
    assert orjson.loads(event_json(change))["headers"]["seam.stage"] == "clean"
    garbage = decode(RawRecord(b"\xff\x01", b"\xffgarbage", "dlq", 0, 5, None, DEAD_LETTER_HEADERS))
    assert "header seam.reason: products" in undecodable_text(garbage)
    data = orjson.loads(event_json(garbage))
    assert data["headers"]["seam.reason"].startswith("products: status_cd")
    assert data["key_b64"] == "/wE="  # the key is kept, exactly
    assert data["value_b64"] == "/2dhcmJhZ2U="
    assert "undecodable" in data


def test_json_output_keeps_the_whole_key_of_any_record() -> None:
    long_key = b"k" * 200
    item = decode(RawRecord(long_key, b"not json", "t", 0, 1))
    assert orjson.loads(event_json(item))["key"] == long_key.decode()
    domain = decode(RawRecord(b"42", b'{"event_type":"ProductRenamed"}', "events", 0, 2))
    assert orjson.loads(event_json(domain))["key"] == "42"


def test_records_of_other_kinds_show_by_kind() -> None:
    from seam.streams.format import undecodable_text

    begin = decode(
        RawRecord(
            b'{"id":"1052:45517480"}',
            b'{"status":"BEGIN","id":"1052:45517480","event_count":null,'
            b'"data_collections":null,"ts_ms":1796155628153}',
            "shop.transaction",
            0,
            20,
        )
    )
    end = decode(
        RawRecord(
            b'{"id":"1052:45517960"}',
            b'{"status":"END","id":"1052:45517960","event_count":3,"data_collections":'
            b'[{"data_collection":"public.products","event_count":3}],"ts_ms":1796155628153}',
            "shop.transaction",
            0,
            21,
        )
    )
    beat = decode(
        RawRecord(b'{"serverName":"shop"}', b'{"ts_ms":1796155621542}', "__debezium-heartbeat.shop")
    )
    begin_text, end_text = undecodable_text(begin), undecodable_text(end)
    assert begin_text.startswith("transaction BEGIN  id=1052  2026-")
    assert end_text.startswith("transaction END  id=1052  3 events (public.products 3)  2026-")
    assert undecodable_text(beat).startswith("heartbeat  shop  2026-")
    data = orjson.loads(event_json(end))
    assert data["kind"] == "transaction END"
    assert data["transaction_id"] == "1052"  # as the transaction's change events give it
    assert data["key"] == {"id": "1052:45517960"}
    assert data["value"]["event_count"] == 3
    # Kept when there is no filter, like any record that is not a change event.
    assert keep(EventFilter(), begin.raw) is not None


def test_a_key_only_delete_reads_as_one() -> None:
    delete = event("d", before={"id": 3, "sku": UNAVAILABLE, "name": UNAVAILABLE})
    text = event_text(delete)
    assert "- id=3  (only the key was sent" in text
    assert "sku" not in text
    full = event_text(event("d", before={"id": 3, "sku": "A-1", "name": None}))
    assert "- id=3, sku='A-1', name=null" in full


def test_plural() -> None:
    from seam.text import plural
    from seam.transforms.progress import Counts, Progress

    assert plural(1, "event") == "1 event"
    assert plural(0, "event") == "0 events"
    assert plural(2, "partition") == "2 partitions"
    assert plural(2, "entry", "entries") == "2 entries"
    line = Progress("p", "exactly_once", Counts(), started=0.0, assigned=1).line()
    assert line.endswith("| 1 partition")


def test_domain_event_topics_match_plain_keys() -> None:
    """seam's history and latest topics are keyed by the entity id as plain text."""
    from seam.streams.filters import key_matches, record_key

    renamed = b'{"event_type":"ProductRenamed","product_id":42,"data":{"new_name":"Pan"}}'
    raw = RawRecord(b"42", renamed, "catalog.product-events", 1, 7)
    assert record_key(b"42") == "42"
    assert record_key(b'"sku-1"') == "sku-1"  # a JSON string key, without its quotes
    assert record_key(b'{"id": 1}') == {"id": 1}  # Debezium's keys stay what they were
    assert record_key(None) is None
    assert key_matches("42", "42")
    assert not key_matches({"id": "42"}, "42")
    assert keep(EventFilter(key=parse_key("42")), raw) is not None
    assert keep(EventFilter(key=parse_key("43")), raw) is None
    assert keep(EventFilter(key=parse_key("4")), raw) is None
    assert keep(EventFilter(ops=parse_ops("c"), key=parse_key("42")), raw) is None
    where = EventFilter(where=parse_where(["event_type=ProductRenamed", "data.new_name=Pan"]))
    assert keep(where, raw) is not None
    assert keep(EventFilter(where=parse_where(["data.new_name=Pot"])), raw) is None
    assert keep(EventFilter(where=parse_where(["data.missing=null"])), raw) is None


def test_plain_key_bytes_are_rebuilt_for_the_partition() -> None:
    assert key_bytes_like(b"42", "42") == b"42"
    assert key_bytes_like(b'"sku-1"', "sku-2") == b'"sku-2"'
    assert key_bytes_like(b"42", {"id": "42"}) is None
    assert partition_for_key(key_bytes_like(b"7", "42") or b"", 3) == partition_for_key(b"42", 3)


def test_an_ambiguous_table_name_lists_the_name_that_picks_each() -> None:
    from seam.streams.kafka import TopicNotFoundError
    from seam.streams.topics import resolve_topic, shortest_name

    raw_topics = ["catalog.public.products", "catalog_mariadb.catalog.products"]
    assert shortest_name(raw_topics[0], raw_topics) == "public.products"
    assert shortest_name(raw_topics[1], raw_topics) == "catalog.products"
    assert shortest_name("a.x.t", ["a.x.t", "b.x.t"]) == "a.x.t"

    class Topics:
        bootstrap_servers = "k:9092"

        def topic_names(self) -> dict[str, int]:
            return dict.fromkeys([*raw_topics, "catalog.product-events"], 1)

    kafka: Any = Topics()
    assert resolve_topic(kafka, "public.products") == "catalog.public.products"
    with pytest.raises(TopicNotFoundError) as err:
        resolve_topic(kafka, "products")
    assert "'products' matches 2 topics" in str(err.value)
    assert err.value.hint is not None
    assert "public.products (catalog.public.products)" in err.value.hint
    assert "catalog.products (catalog_mariadb.catalog.products)" in err.value.hint


def test_the_readme_history_examples_name_one_topic_of_the_quickstart() -> None:
    """The quickstart captures the catalog from PostgreSQL and MariaDB, so `products` alone
    names two topics: the README's examples must each pick one."""
    import re
    from pathlib import Path

    import yaml

    from seam.connectors.render import captured_tables
    from seam.connectors.spec import load_specs
    from seam.streams.kafka import TopicNotFoundError
    from seam.streams.topics import resolve_topic
    from seam.transforms.pipeline_file import load_pipeline

    repo = Path(__file__).resolve().parents[2]
    topics = [
        f"{spec.topic_prefix}.{table}"
        for spec in load_specs([folder("connectors")])
        for table in captured_tables(spec, "catalog")
    ]
    files = sorted(folder("pipelines").glob("*.yaml"))
    # A file another pipeline includes (a declaration's tables) is no pipeline of its own.
    included = {
        (f.parent / name).resolve()
        for f in files
        for name in (yaml.safe_load(f.read_text()) or {}).get("include", [])
    }
    for pipeline in files:
        if pipeline.resolve() not in included:
            topics.extend(out.topic for out in load_pipeline(pipeline).outputs)

    class Quickstart:
        bootstrap_servers = "k:9092"

        def topic_names(self) -> dict[str, int]:
            return dict.fromkeys(topics, 1)

    kafka: Any = Quickstart()
    examples = re.findall(r"seam streams history (\S+) (\S+)", (repo / "README.md").read_text())
    assert examples
    for name, _key in examples:
        assert resolve_topic(kafka, name) in topics
    with pytest.raises(TopicNotFoundError):
        resolve_topic(kafka, "products")

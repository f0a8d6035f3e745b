"""Source positions and high-water marks (seam.transforms.redelivery), and the compiled fast
path held to them: the same records dropped, the same marks left behind."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seam.changes import ChangeEvent, RawRecord
from seam.legacy_db.files import folder
from seam.legacy_db.synthetic import envelope, typical_changes
from seam.streams.decode import decode
from seam.transforms.pipeline_file import load_pipeline
from seam.transforms.progress import Counts
from seam.transforms.redelivery import Marks, parse_metadata, source_mark
from seam.transforms.worker import Worker, WorkerOptions
from tests.unit.fake_kafka import FakeClients, FakeCluster, FakeMessage

pytestmark = pytest.mark.unit

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "debezium.jsonl"
TOPIC = "catalog.public.products"


def decoded(key: bytes | None, value: bytes | None, offset: int = 0) -> ChangeEvent:
    event = decode(RawRecord(key, value, TOPIC, 0, offset))
    assert isinstance(event, ChangeEvent)
    return event


def with_source(value: bytes, **source: Any) -> bytes:
    doc = orjson.loads(value)
    doc["source"].update(source)
    return orjson.dumps(doc)


def corpus() -> dict[str, list[ChangeEvent]]:
    streams: dict[str, list[ChangeEvent]] = {}
    for line in CORPUS.read_text().splitlines():
        r = json.loads(line)
        value = None if r["value"] is None else r["value"].encode()
        key = None if r["key"] is None else r["key"].encode()
        event = decode(RawRecord(key, value, r["topic"], r["partition"], r["offset"]))
        if isinstance(event, ChangeEvent):
            streams.setdefault(r["topic"], []).append(event)
    return streams


def test_real_streams_have_rising_marks_and_snapshots_have_none() -> None:
    checked = 0
    for events in corpus().values():
        marks = [source_mark(e) for e in events]
        for event, mark in zip(events, marks, strict=True):
            if event.is_snapshot or event.is_tombstone:
                assert mark is None
        ordered = [m for m in marks if m is not None]
        assert ordered == sorted(ordered)
        assert len(set(ordered)) == len(ordered)  # no two changes share a mark
        checked += len(ordered)
    assert checked > 40


# Two transactions interleaved in the WAL, as captured from PostgreSQL through Debezium
# (T2 commits first; T1's first insert has a lower LSN than T2's; T1 then changes a
# primary key: a delete and a create from one WAL record).
INTERLEAVED = [
    ("c", 2, '[null,"45277824"]'),
    ("c", 1, '["45278000","45277600"]'),
    ("c", 3, '["45278000","45278000"]'),
    ("d", 1, '["45278000","45278128"]'),
    ("c", 4, '["45278000","45278128"]'),
    ("u", 2, '["45278328","45278328"]'),
    ("u", 2, '["45278328","45278416"]'),
]


def interleaved() -> list[ChangeEvent]:
    events = []
    for i, (op, pid, sequence) in enumerate(INTERLEAVED):
        row = {"prod_id": pid}
        key, value = envelope(
            "products", op, row if op != "c" else None, row if op != "d" else None, 1
        )
        events.append(decoded(key, with_source(value, sequence=sequence), i))
    return events


def test_interleaved_transactions_and_a_key_change_are_all_new() -> None:
    marks = Marks()
    assert [marks.redelivered(TOPIC, 0, e) for e in interleaved()] == [False] * len(INTERLEAVED)


def test_a_redelivered_tail_is_dropped_and_new_changes_pass() -> None:
    events = interleaved()
    marks = Marks()
    for e in events:
        marks.redelivered(TOPIC, 0, e)
    # Debezium resumes from an older offset: the last four again, then a new change.
    again = [marks.redelivered(TOPIC, 0, e) for e in events[3:]]
    assert again == [True] * 4
    row = {"prod_id": 9}
    key, value = envelope("products", "c", None, row, 1)
    new = decoded(key, with_source(value, sequence='["45278500","45278600"]'))
    assert not marks.redelivered(TOPIC, 0, new)
    assert not marks.redelivered(TOPIC, 1, events[0])  # another partition: its own marks


def test_mariadb_marks_follow_the_binlog_and_a_snapshot_starts_over() -> None:
    row = {"prod_id": 1}
    key, value = envelope("products", "u", row, row, 1)

    def binlog(file: str, pos: int, r: int = 0, **extra: Any) -> ChangeEvent:
        source = {"connector": "mariadb", "file": file, "pos": pos, "row": r, "server_id": 1}
        source.update(extra)
        doc = orjson.loads(value)
        doc["source"] = {
            k: v for k, v in doc["source"].items() if k not in ("lsn", "txId", "sequence")
        }
        doc["source"].update(source)
        return decoded(key, orjson.dumps(doc))

    marks = Marks()
    assert not marks.redelivered(TOPIC, 0, binlog("seam-bin.000009", 500))
    assert not marks.redelivered(TOPIC, 0, binlog("seam-bin.000009", 500, 1))
    assert not marks.redelivered(TOPIC, 0, binlog("seam-bin.000010", 4))
    assert marks.redelivered(TOPIC, 0, binlog("seam-bin.000009", 900))
    # A new snapshot (its rows say server id 0) forgets the stream's marks.
    snap_key, snap = envelope("products", "r", None, row, 1, snapshot="last")
    doc = orjson.loads(snap)
    doc["source"].update(connector="mariadb", server_id=0)
    assert not marks.redelivered(TOPIC, 0, decoded(snap_key, orjson.dumps(doc)))
    assert not marks.redelivered(TOPIC, 0, binlog("seam-bin.000001", 4))


def test_a_binlog_change_with_a_gtid_moves_the_domains_gtid_mark() -> None:
    row = {"prod_id": 1}
    key, value = envelope("products", "u", row, row, 1)
    doc = orjson.loads(value)
    for name in ("lsn", "txId", "sequence"):
        doc["source"].pop(name)
    marks = Marks()
    for pos, gtid in ((500, "0-1-41"), (900, "0-1-42"), (700, "0-1-40")):
        doc["source"].update(connector="mariadb", file="b.000002", pos=pos, row=0, gtid=gtid)
        marks.redelivered(TOPIC, 0, decoded(key, orjson.dumps(doc)))
    # The third is re-delivered (its position is below the mark): the GTID mark stays.
    assert marks.table[(TOPIC, 0, "mariadb|catalog|gtid:0")] == (42,)
    assert parse_metadata(marks.metadata(TOPIC, 0))["mariadb|catalog|gtid:0"] == (42,)


def test_marks_travel_as_commit_metadata() -> None:
    marks = Marks()
    for e in interleaved():
        marks.redelivered(TOPIC, 0, e)
    text = marks.metadata(TOPIC, 0)
    assert len(text) < 200  # well within the broker's offset.metadata.max.bytes (4096)
    assert marks.metadata(TOPIC, 1) == ""
    restored = Marks()
    restored.load(TOPIC, 0, text)
    assert restored.table == marks.table
    assert parse_metadata("not json") == parse_metadata('{"v": 99}') == parse_metadata(None) == {}


# ----------------------------------------------------------- the compiled fast path


def batch_with_redeliveries(seed: int) -> list[RawRecord]:
    """Typical changes on four partitions, some stretches delivered twice, a snapshot in
    the middle of one partition, and primary-key changes (delete + create, one position)."""
    rng = random.Random(seed)
    records = [
        RawRecord(k, v, TOPIC, i % 4, 0) for i, (k, v) in enumerate(typical_changes(300, seed))
    ]
    out: list[RawRecord] = []
    for r in records:
        out.append(r)
        if rng.random() < 0.05:  # a stretch of this partition's last changes, again
            mine = [x for x in out if x.partition == r.partition]
            out.extend(mine[-rng.randint(1, 6) :])
    offsets: dict[int, int] = {}
    numbered = []
    for r in out:
        offset = offsets.get(r.partition, 0)
        offsets[r.partition] = offset + 1
        numbered.append(RawRecord(r.key, r.value, r.topic, r.partition, offset))
    return numbered


_workers: dict[bool, tuple[Worker, FakeCluster]] = {}


def transform(
    records: list[RawRecord], fast_path: bool
) -> tuple[list[Any], Counts, dict[Any, Any]]:
    """What the worker's transform step publishes for `records` (one batch, at least once)
    with or without the compiled fast path, its counts and the marks it leaves."""
    if fast_path not in _workers:  # built once: building compiles every schema
        spec = load_pipeline(folder("pipelines") / "catalog.yaml").with_guarantee("at_least_once")
        cluster = FakeCluster()
        options = WorkerOptions(fast_path=fast_path)
        worker = Worker(spec, "fake:9092", options, clients=FakeClients(cluster))
        assert (worker._handler.fast is not None) == fast_path
        worker._delivery.start()
        _workers[fast_path] = worker, cluster
    worker, cluster = _workers[fast_path]
    for out in worker.spec.outputs:
        cluster.topics[out.topic] = [[]]
    batch, marks = Counts(), Marks()
    messages = [FakeMessage(r.topic, r.partition, r.offset, r.key, r.value) for r in records]
    worker._handler.transform(messages, batch, marks, worker._delivery)
    published = [
        (m.topic(), m.key(), m.value(), m.headers())
        for out in worker.spec.outputs
        for m in cluster.records(out.topic)
    ]
    return published, batch, marks.table


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_fast_path_drops_what_python_drops(seed: int) -> None:
    records = batch_with_redeliveries(seed)
    fast, fast_counts, fast_marks = transform(records, fast_path=True)
    slow, slow_counts, slow_marks = transform(records, fast_path=False)
    assert fast_counts.redelivered == slow_counts.redelivered > 0
    assert fast_counts.native > 0.9 * len(records)
    assert fast == slow
    assert fast_marks == slow_marks
    assert fast_counts.balanced
    assert slow_counts.balanced


sources = st.fixed_dictionaries(
    {
        "connector": st.sampled_from(["postgresql", "mariadb", "mysql", None, 5]),
        "name": st.sampled_from(["catalog", None, "x|y"]),
        "sequence": st.one_of(
            st.none(),
            st.builds(lambda a, b: f'["{a}","{b}"]', st.integers(0, 2**70), st.integers(0, 2**70)),
            st.builds(lambda b: f'[null,"{b}"]', st.integers(0, 2**70)),
            st.sampled_from(['["1", "2"]', "[1,2]", '["a","b"]', "[", '["1"]', '["²","3"]']),
        ),
        "file": st.one_of(st.none(), st.sampled_from(["bin.000003", "bin.3x", "bin", "bin.٣", 7])),
        "pos": st.one_of(st.none(), st.integers(-5, 2**64 - 1), st.booleans()),
        "row": st.one_of(st.none(), st.integers(0, 3), st.just("1")),
        "server_id": st.one_of(st.none(), st.integers(0, 3), st.just(True)),
        "gtid": st.one_of(
            st.none(),
            st.builds(
                lambda d, n: f"{d}-1-{n}", st.sampled_from(["0", "00", "12"]), st.integers(0, 2**70)
            ),
            st.sampled_from(
                [
                    "3E11FA47-71CA-11E1-9E33-C80AA9429562:23",
                    "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-23",
                    "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-2-3",
                    "0-1-",
                    "0-1-٣",
                    "gtid",
                ]
            ),
            st.just(7),
        ),
        "lsn": st.one_of(st.none(), st.integers(-1, 2**63 - 1), st.just("12")),
        "ts_ms": st.one_of(st.none(), st.integers(-(2**40), 2**45), st.just("5")),
        "snapshot": st.sampled_from(
            ["false", "true", "last", "incremental", False, True, 0, 1, None, 0.0]
        ),
    }
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=sources, op=st.sampled_from(["c", "u", "d", "r"]), again=st.booleans())
def test_any_source_block_the_two_paths_agree(source: dict[str, Any], op: str, again: bool) -> None:
    base = next(iter(typical_changes(2, seed=5)))
    doc = orjson.loads(base[1])
    doc["op"] = op
    if op == "d":
        doc["before"], doc["after"] = doc["after"], None
    elif op == "u":
        doc["before"] = dict(doc["after"])
    doc["source"].update({k: v for k, v in source.items() if v is not None})
    value = orjson.dumps(doc)
    records = [RawRecord(base[0], value, TOPIC, 0, 0)]
    if again:
        records.append(RawRecord(base[0], value, TOPIC, 0, 1))
    fast, fast_counts, fast_marks = transform(records, fast_path=True)
    slow, slow_counts, slow_marks = transform(records, fast_path=False)
    assert fast == slow
    assert fast_marks == slow_marks
    assert fast_counts.redelivered == slow_counts.redelivered

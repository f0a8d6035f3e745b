"""Poison records on a raw topic: real Debezium records of the catalog with records that are
not JSON, not an envelope, or break the cleaning rules between them. Each poison record
lands in the dead-letter topic with the original key and value and its reason, the good ones
become their events, the worker keeps going, and the balance holds."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from seam.kafka_config import client_config
from tests.catalog_checks import expected_events
from tests.faults.kit import Catalog, Pipeline, WorkerProcess, assert_balanced, replay

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]


def _snapshot_records(catalog: Catalog, count: int) -> list[Any]:
    from seam.transforms.readback import read_to_end

    records = [
        r
        for r in read_to_end(catalog.bootstrap, catalog.raw_topic)
        if r.value is not None and orjson.loads(r.value)["op"] == "r"
    ]
    assert len(records) >= count
    return records[:count]


def _broken(record: Any, **after: Any) -> bytes:
    """A real change record of the catalog with some `after` columns replaced."""
    value = orjson.loads(record.value)
    value["after"].update(after)
    return orjson.dumps(value)


def _run(
    catalog: Catalog,
    pipelines: Callable[..., Pipeline],
    tmp_path: Path,
    good: list[Any],
    poison: list[tuple[bytes, bytes, str]],
) -> tuple[Pipeline, dict[str, Any], dict[int, tuple[bytes, str]]]:
    """The good records with the poison between them on a topic of their own, through a
    worker until caught up. Returns the pipeline, the summary, and the poison by offset."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"seam-fault.poison-{uuid.uuid4().hex[:6]}.products"
    admin = AdminClient(client_config(catalog.bootstrap))
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result(timeout=30)
    pipeline = pipelines("poison", inputs=[topic])
    stride = max(1, len(good) // (len(poison) + 1))
    records: list[tuple[bytes | None, bytes, str | None]] = [(r.key, r.value, None) for r in good]
    for i, (key, value, reason) in enumerate(poison):
        records.insert((i + 1) * stride + i, (key, value, reason))
    producer = Producer(client_config(catalog.bootstrap, {"enable.idempotence": True}))
    for key, value, _ in records:
        producer.produce(topic, value, key)
    assert producer.flush(30) == 0
    at = {i: (value, reason) for i, (_k, value, reason) in enumerate(records) if reason is not None}

    worker = WorkerProcess(pipeline.path, "w1", tmp_path, "--until-caught-up")
    with worker:
        worker.wait_exit(120, "its start (--until-caught-up)")
    assert worker.proc.returncode == 0, worker.tail()
    summary: dict[str, Any] = orjson.loads(worker.out.read_bytes())
    return pipeline, summary, at


def _check(
    catalog: Catalog,
    pipeline: Pipeline,
    summary: dict[str, Any],
    poison: dict[int, tuple[bytes, str]],
    good: list[Any],
) -> None:
    from seam.transforms.readback import read_to_end

    assert_balanced(summary)
    assert summary["records_in"] == len(good) + len(poison)
    assert summary["dead_lettered"] == len(poison), {
        k: summary[k] for k in ("dead_lettered", "dead_letter_reasons", "no_event")
    }
    dlq = read_to_end(catalog.bootstrap, pipeline.dead_letter)
    by_offset = {int(r.headers["seam.source.offset"] or b"-1"): r for r in dlq}
    assert len(by_offset) == len(dlq) == len(poison), [r.headers for r in dlq]
    for offset, (value, reason) in poison.items():
        record = by_offset.get(offset)
        assert record is not None, (
            f"poison record at offset {offset} not dead-lettered: {value[:80]!r}"
        )
        assert record.value == value  # the original, untouched
        got = (record.headers["seam.reason"] or b"").decode()
        assert reason in got, f"offset {offset}: reason {got!r}, expected {reason!r}"
        assert record.headers["seam.pipeline"] == b"catalog"
        assert record.headers["seam.source.topic"] == pipeline.inputs[0].encode()

    history = read_to_end(catalog.bootstrap, pipeline.history)
    events = [orjson.loads(r.value) for r in history]
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids))
    pids = {orjson.loads(r.key)["prod_id"] for r in good}
    want = expected_events({pid: catalog.initial[pid] for pid in pids}, [])
    assert Counter((e["product_id"], e["event_type"]) for e in events) == want

    # A clean replay of the same topic: the same events and the same dead letters.
    again = replay(pipeline, ".replay")
    assert_balanced(again)
    assert {k: again[k] for k in ("records_in", "dead_lettered", "records_with_events")} == {
        k: summary[k] for k in ("records_in", "dead_lettered", "records_with_events")
    }
    replayed = read_to_end(catalog.bootstrap, pipeline.history + ".replay")
    assert sorted(orjson.loads(r.value)["event_id"] for r in replayed) == sorted(ids)
    replay_dlq = read_to_end(catalog.bootstrap, pipeline.dead_letter + ".replay")
    assert [(r.headers["seam.source.offset"], r.headers["seam.reason"]) for r in replay_dlq] == [
        (r.headers["seam.source.offset"], r.headers["seam.reason"]) for r in dlq
    ]


def test_poison_records_are_dead_lettered_with_their_reason(
    catalog: Catalog, pipelines: Callable[..., Pipeline], tmp_path: Path
) -> None:
    good = _snapshot_records(catalog, 60)
    key = b'{"prod_id":999001}'
    poison = [
        (key, b"\xff\xfe this is not JSON", "not JSON"),
        (key, b"[1, 2, 3]", "not an object"),
        (key, b'{"hello": "world"}', "not a Debezium change event"),
        # Rules broken (W-rules with policy reject): a name that is only blanks, a price
        # whose text and cents disagree.
        (good[3].key, _broken(good[3], prod_name="   "), "prod_name: not_empty: empty"),
        (
            good[7].key,
            _broken(good[7], price_txt="12,34 €", price_cents=99999),
            "disagrees with price_cents",
        ),
    ]
    pipeline, summary, at = _run(catalog, pipelines, tmp_path, good, poison)
    _check(catalog, pipeline, summary, at, good)


def test_malformed_envelopes_are_dead_lettered(
    catalog: Catalog, pipelines: Callable[..., Pipeline], tmp_path: Path
) -> None:
    good = _snapshot_records(catalog, 20)
    change = orjson.loads(good[0].value)
    del change["source"]["table"]
    change["op"] = "u"
    poison = [
        (good[0].key, orjson.dumps(change), "table"),
        (good[0].key, b'{"schema":{},"payload":null}', "payload"),
    ]
    pipeline, summary, at = _run(catalog, pipelines, tmp_path, good[1:], poison)
    _check(catalog, pipeline, summary, at, good[1:])

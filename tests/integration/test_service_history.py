"""`seam serve` with `history:` on the real broker: the history queries of a declared
entity (here a non-catalog one: orders with a composite key) served beside its memory image.

The test runs the real declared pipeline (decode, clean, events, validate) on Debezium-shaped
changes of one order, writes the events to a history topic and the states to a latest topic
of its own, starts the service as a subprocess, and asks it for the order's timeline, its
state as of a time between the changes, and why a field holds its value. Every topic and
process it makes, it deletes or stops.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from seam.settings import Settings
from seam.transforms.pipeline import Produced
from tests.integration.test_service_image import Served, Topic
from tests.unit.test_declared_entity import record, row, write_pipeline

pytestmark = pytest.mark.integration

KEY = '["EU",7]'


@pytest.fixture
def topics(stack: Settings, unique_name: Callable[[str], str]) -> Iterator[tuple[Topic, Topic]]:
    latest = Topic(stack, unique_name("svc.orders-latest"))
    history = Topic(stack, unique_name("svc.order-events"))
    try:
        yield latest, history
    finally:
        latest.delete()
        history.delete()


def test_the_service_answers_history_queries_beside_its_image(
    tmp_path: Path, topics: tuple[Topic, Topic], unique_name: Callable[[str], str]
) -> None:
    latest, history = topics
    spec = write_pipeline(tmp_path)
    text = (tmp_path / "orders.yaml").read_text()  # (its `on:` keys survive no YAML dump)
    for old, new in (
        ("shop.orders-latest", latest.name),
        ("shop.order-events", history.name),
        ("seam-transform-orders", unique_name("svc-orders")),
    ):
        assert old in text
        text = text.replace(old, new)
    (tmp_path / "orders.yaml").write_text(text)
    (tmp_path / "service.yaml").write_text(
        "pipeline: orders.yaml\nsnapshot: {path: image.snapshot}\n"
        "history: {index: history.sqlite}\n"
    )

    # An order placed, repriced, then shipped: three changes, three events, three states.
    pipeline = spec.build()
    changes = [
        record("c", None, row(), 100),
        record("u", row(), row(total="15.00"), 200),
        record("u", row(total="15.00"), row(total="15.00", status_cd="S"), 300),
    ]
    events: list[dict[str, Any]] = []
    for change in changes:
        outcome = pipeline.run(change)
        assert isinstance(outcome, Produced)
        for item in outcome.items:
            assert item.event is not None
            events.append(item.event)
            latest.write([(KEY, item.state)])
    history.write([(KEY, event) for event in events])
    assert [e["event_type"] for e in events] == ["OrderPlaced", "OrderRepriced", "OrderShipped"]

    served = Served(tmp_path / "service.yaml")
    try:
        served.up()
        seen = served.until_ready()
        # The index follows the topic only once the image is ready.
        assert all(a["history"] == "waiting for the image" for a in seen if not a["ready"])
        assert served.get("/health").json()["history"] == "following"
        assert served.get(f"/order/{quote(KEY)}").json()["data"]["status"] == "shipped"

        timeline = served.get(f"/order/history/{quote(KEY)}/timeline")
        for _ in range(100):  # the index catches up in the background, about once a second
            if timeline.status_code == 200 and len(timeline.json()["entries"]) == 3:
                break
            time.sleep(0.1)
            timeline = served.get(f"/order/history/{quote(KEY)}/timeline")
        body = timeline.json()
        assert [e["event"]["event_type"] for e in body["entries"]] == [
            "OrderPlaced",
            "OrderRepriced",
            "OrderShipped",
        ]
        assert [e["provenance"] for e in body["entries"]] == [e["provenance"] for e in events]
        positions = [e["event"]["position"].split(" tx ")[0] for e in body["entries"]]
        assert positions == ["lsn 0/64", "lsn 0/C8", "lsn 0/12C"]  # 100, 200, 300

        # As of the moment between the repricing and the shipping: repriced, not shipped.
        between = events[2]["occurred_at"]
        cut = served.get(
            f"/order/history/{quote(KEY)}/as-of", position="0/" + format(250, "X")
        ).json()
        assert cut["state"]["total"] == "15.00"
        assert cut["state"]["status"] == "new"
        at = served.get(f"/order/history/{quote(KEY)}/as-of", at=between).json()
        assert at["state"]["status"] == "shipped"

        why = served.get(f"/order/history/{quote(KEY)}/why/total").json()
        assert why["event"]["event"]["event_type"] == "OrderRepriced"
        assert orjson.dumps(why["value"]) == b'"15.00"'

        unknown = served.get("/order/history/" + quote('["EU",8]') + "/timeline")
        assert unknown.status_code == 404
        assert served.stop() == 0
    finally:
        served.close()

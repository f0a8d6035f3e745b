"""The history router (seam.services.history_http) on FastAPI's TestClient: the same
answers as the index's, status codes for unknown keys and bad input."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from seam.services.history_http import router
from tests.unit.test_history_index import KEY, Topic, at, life, topic

pytestmark = pytest.mark.unit

__all__ = ["topic"]  # the fixture, used by name


@pytest.fixture
def client(topic: Topic) -> TestClient:
    life(topic)

    def reader(t: str, p: int, o: int) -> dict[str, Any]:
        return {"topic": t, "partition": p, "offset": o, "op": "u"}

    app = FastAPI()
    app.include_router(router(topic.index, raw_reader=reader))
    return TestClient(app)


def test_timeline_as_of_and_why(client: TestClient) -> None:
    key = quote(KEY, safe="")
    timeline = client.get(f"/history/{key}/timeline")
    assert timeline.status_code == 200
    entries = timeline.json()["entries"]
    assert entries[1]["event"]["event_type"] == "OrderRepriced"
    assert entries[1]["provenance"]["position"]["lsn"] == 200
    assert entries[1]["changes"][0]["field"] == "total"
    moment = at(250).isoformat()
    as_of = client.get(f"/history/{key}/as-of", params={"at": moment})
    assert as_of.status_code == 200
    assert as_of.json()["state"]["total"] == "13.00"
    by_lsn = client.get("/history/EU,7/as-of", params={"position": "0/12C"})
    assert by_lsn.json()["state"]["total"] == "14.00"
    why = client.get(f"/history/{key}/why/total", params={"at": moment})
    body = why.json()
    assert body["value"] == "13.00"
    assert body["event"]["event"]["event_type"] == "OrderRepriced"
    assert body["raw"]["offset"] == body["event"]["provenance"]["offset"]


def test_errors_are_404_and_400_with_a_hint(client: TestClient) -> None:
    missing = client.get("/history/EU,9/timeline")
    assert missing.status_code == 404
    assert "has no events" in missing.json()["detail"]["detail"]
    bad_time = client.get(f"/history/{quote(KEY, safe='')}/as-of", params={"at": "soon"})
    assert bad_time.status_code == 400
    assert bad_time.json()["detail"]["hint"]
    bad_field = client.get(f"/history/{quote(KEY, safe='')}/why/totl")
    assert bad_field.status_code == 400
    assert "did you mean 'total'" in bad_field.json()["detail"]["detail"]
    both = client.get("/history/EU,7/as-of", params={"at": "2026-01-01", "position": "1"})
    assert both.status_code == 400

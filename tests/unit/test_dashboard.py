"""The dashboard's parts that need no stack: its file, the worker metrics it reads back, the
chart series, the page (offline, no buttons when read-only) and the action endpoint's
refusals, and that an error shown on the page carries no password."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from seam.dashboard.actions import Actions
from seam.dashboard.app import create_app
from seam.dashboard.collect import CHART_POINTS, HOUR_S, Collector, Series, _problem
from seam.dashboard.config import DashboardConfig, load_dashboard
from seam.errors import ConfigError, SeamError
from seam.settings import load_settings
from seam.transforms.progress import Counts, Progress, prometheus_text
from seam.transforms.status import parse_metrics

pytestmark = pytest.mark.unit


def test_the_dashboard_file_resolves_paths_beside_it(tmp_path: Path) -> None:
    (tmp_path / "board").mkdir()
    path = tmp_path / "board" / "dashboard.yaml"
    path.write_text(
        "pipelines:\n  - file: ../p/orders.yaml\n    metrics: http://127.0.0.1:9464/metrics\n"
        "  - p/other.yaml\n"
        "services: http://127.0.0.1:8080\nslots: [pg]\nparity: {database: pg}\n"
    )
    config = load_dashboard(path)
    assert [p.file for p in config.pipelines] == [
        (tmp_path / "p" / "orders.yaml").resolve(),
        (tmp_path / "board" / "p" / "other.yaml").resolve(),
    ]
    assert config.pipelines[0].metrics == "http://127.0.0.1:9464/metrics"
    assert config.services == ("http://127.0.0.1:8080",)
    assert config.slots == ("pg",)
    assert config.parity == {"database": "pg"}
    flags = config.extended(
        pipelines=[Path("x.yaml")], services=["http://b"], slots=["pg", "pg2"], facade="http://f"
    )
    assert flags.slots == ("pg", "pg2")
    assert flags.services == ("http://127.0.0.1:8080", "http://b")
    assert flags.facade == "http://f"


def test_a_bad_dashboard_file_is_one_error_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "dashboard.yaml"
    path.write_text("pipelines:\n  - {metrics: http://x}\nservice: [http://a]\n")
    with pytest.raises(ConfigError) as error:
        load_dashboard(path)
    text = error.value.message + (error.value.hint or "")
    assert f"{path}:2" in text
    assert "missing 'file'" in text
    assert f"{path}:3" in text
    assert "unknown key 'service' (did you mean 'services'?)" in text


def test_worker_metrics_read_back_as_the_workers_counts() -> None:
    counts = Counts(
        records_in=10,
        records_with_events=6,
        events_out=9,
        dead_lettered=2,
        redelivered=1,
        no_event={"ignored table": 1},
    )
    text = prometheus_text(Progress("orders", "exactly_once", counts, started=0, lag=None))
    parsed = parse_metrics(text)
    assert parsed["records_in"] == 10
    assert parsed["events_out"] == 9
    assert parsed["dead_lettered"] == 2
    assert parsed["no_event"] == {"ignored table": 1}
    assert parsed["lag"] is None  # NaN: unknown


def test_series_keep_the_hour_and_send_few_points_with_the_newest() -> None:
    series = Series(interval_s=1.0)
    for t in range(0, 7200):
        series.add(float(t), float(t))
    shown = series.shown(now=7199.0)
    assert len(shown) <= CHART_POINTS
    assert shown[-1] == [7199.0, 7199.0]
    assert shown[0][0] >= 7199.0 - HOUR_S
    series.add(7200.0, None)  # unknown: no point
    assert series.shown(now=7200.0)[-1] == [7199.0, 7199.0]


def test_an_error_shown_on_the_page_carries_no_password() -> None:
    shown = _problem(SeamError("cannot reach postgresql://cdc:s3cret@db:5432/x", hint="h"))
    assert "s3cret" not in json.dumps(shown)
    unexpected = _problem(RuntimeError("http://u:s3cret@host"))
    assert "s3cret" not in json.dumps(unexpected)


def _app(tmp_path: Path, allow: bool) -> TestClient:
    settings = load_settings(env={})
    config = DashboardConfig()
    collector = Collector(settings, config, tmp_path)
    actions = Actions(settings, config, tmp_path) if allow else None
    return TestClient(create_app(collector, actions))


def test_the_page_loads_nothing_from_outside_and_has_no_buttons_when_read_only(
    tmp_path: Path,
) -> None:
    page = _app(tmp_path, allow=False).get("/")
    assert page.status_code == 200
    # Every src/href is inline (data:) or relative: the page works without a network.
    for url in re.findall(r'(?:src|href)="([^"]*)"', page.text):
        assert url.startswith(("data:", "/", "#")), url
    assert "const ALLOW_ACTIONS = false;" in page.text
    assert "const ALLOW_ACTIONS = true;" in _app(tmp_path, allow=True).get("/").text


def test_actions_are_refused_unless_allowed_asked_for_and_confirmed(tmp_path: Path) -> None:
    body = {"action": "pause", "target": "c", "confirmed": True}
    refused = _app(tmp_path, allow=False).post(
        "/api/action", json=body, headers={"X-Seam-Dashboard": "1"}
    )
    assert refused.status_code == 403
    assert "--allow-actions" in refused.json()["hint"]
    client = _app(tmp_path, allow=True)
    assert client.post("/api/action", json=body).status_code == 403  # no header: cross-site
    unconfirmed = {**body, "confirmed": False}
    headers = {"X-Seam-Dashboard": "1"}
    assert client.post("/api/action", json=unconfirmed, headers=headers).status_code == 400
    unknown = client.post("/api/action", json={**body, "action": "drop"}, headers=headers)
    assert unknown.status_code == 409
    assert "no action 'drop'" in unknown.json()["error"]
    parity = client.post(
        "/api/action", json={**body, "action": "parity", "target": "orders"}, headers=headers
    )
    assert parity.status_code == 409
    assert parity.json()["hint"] == "add parity: {database: NAME} to the dashboard file"
    route = client.post(
        "/api/action",
        json={**body, "action": "route", "target": "details", "mode": "new"},
        headers=headers,
    )
    assert route.status_code == 409  # no facade ever ran with this directory
    assert "no facade has run with the migration directory" in route.json()["error"]
    assert not (tmp_path / "routes").exists()
    # Each action that passed the checks is logged, failed or not, with who and when.
    lines = (tmp_path / "dashboard/actions.jsonl").read_text().splitlines()
    logged = [json.loads(line) for line in lines]
    assert [e["action"] for e in logged] == ["drop", "parity", "route"]
    assert all(e["by"] and e["at"] and e["error"] for e in logged)
    assert logged[2]["mode"] == "new"

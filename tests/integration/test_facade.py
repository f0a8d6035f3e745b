"""The facade as `seam facade run`, in front of real HTTP upstreams started by the tests.

Each mode routes as declared; an upstream down is a clear 502 (or legacy, with fallback);
a shadow comparison finds a planted mismatch, counts an answer the new side could not give
at the legacy position as unsettled, and never changes the user's answer or its latency;
a route set with `seam migrate route` applies without a restart and survives kill -9; a
routes file that breaks keeps the running routes; SIGTERM stops the facade cleanly.
"""

from __future__ import annotations

import signal
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from seam.migration.shadow import read_mismatches
from tests.facade_procs import Facade, Upstream, seam, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def upstreams(tmp_path: Path) -> Iterator[tuple[Upstream, Upstream]]:
    legacy = Upstream("legacy", tmp_path)
    new = Upstream("new", tmp_path)
    try:
        yield legacy, new
    finally:
        legacy.close()
        new.close()


def routes_file(folder: Path, legacy: str, new: str, caps: str) -> Path:
    path = folder / "routes.yaml"
    path.write_text(f"legacy: {{url: '{legacy}'}}\nnew: {{svc: '{new}'}}\ncapabilities:\n{caps}")
    return path


CAPS = """\
  old:
    requests: ["GET /items/{id}", "PUT /items/{id}"]
  moved:
    requests: ["GET /moved/{id}"]
    mode: new
    rewrite: /items/{id}
  halves:
    requests: ["GET /echo/halves"]
    mode: split 50%
    cohort: header:X-User
  by-cookie:
    requests: ["GET /echo/cookie"]
    mode: split 100%
    cohort: cookie:session
"""


def side(answer: object) -> str:
    return str(answer.headers["x-upstream"])  # type: ignore[attr-defined]


def test_each_mode_routes_as_declared_and_passes_requests_through(
    upstreams: tuple[Upstream, Upstream], tmp_path: Path
) -> None:
    legacy, new = upstreams
    legacy.put("1", {"side": "legacy"})
    new.put("1", {"side": "new"})
    facade = Facade(routes_file(tmp_path, legacy.url, new.url, CAPS), tmp_path / "state")
    try:
        web = facade.client
        assert web.get("/items/1").json() == {"side": "legacy"}
        moved = web.get("/moved/1")
        assert moved.json() == {"side": "new"}  # rewritten to /items/1 on the new side
        assert side(moved) == "new"
        # Unmatched requests go to legacy, with method, path, query, body and headers.
        echo = web.post(
            "/echo/x?a=1&b=two",
            content=b"payload",
            headers={"X-Trace": "t-1", "Connection": "keep-alive"},
        ).json()
        assert echo["method"] == "POST"
        assert echo["path"] == "/echo/x"
        assert echo["query"] == "a=1&b=two"
        assert echo["body"] == "payload"
        sent = dict(echo["headers"])
        assert sent["x-trace"] == "t-1"
        assert sent["host"] == legacy.url.removeprefix("http://")
        web.put("/items/2", json={"side": "legacy", "written": True})  # a write, through
        assert legacy.client.get("/items/2").json() == {"side": "legacy", "written": True}
        # A split: each user always lands on the same side, about half on each.
        sides = {
            user: side(web.get("/echo/halves", headers={"X-User": user}))
            for user in map(str, range(200))
        }
        again = {
            user: side(web.get("/echo/halves", headers={"X-User": user}))
            for user in map(str, range(200))
        }
        assert sides == again
        assert 60 < list(sides.values()).count("new") < 140
        assert side(web.get("/echo/halves")) == "legacy"  # no cohort key: legacy
        assert side(web.get("/echo/cookie", headers={"Cookie": "theme=dark; session=s1"})) == "new"
        status = facade.status()["capabilities"]
        assert status["moved"]["requests"] == {"legacy": 0, "new": 1}
        metrics = web.get("/_seam/metrics").text
        assert 'seam_facade_requests_total{capability="moved",side="new"} 1' in metrics
        assert (
            'seam_facade_latency_seconds_bucket{capability="old",side="legacy",le="+Inf"}'
            in metrics
        )
    finally:
        facade.close()


def test_an_upstream_down_is_a_clear_502_or_legacy_when_the_route_falls_back(
    upstreams: tuple[Upstream, Upstream], tmp_path: Path
) -> None:
    legacy, _new = upstreams
    legacy.put("1", {"side": "legacy"})
    caps = """\
  strict:
    requests: ["GET /items/{id}"]
    mode: new
  lenient:
    requests: ["GET /echo/lenient/{id}"]
    mode: new
    rewrite: /items/{id}
    fallback: legacy
"""
    routes = routes_file(tmp_path, legacy.url, "http://127.0.0.1:9", caps)  # nothing on :9
    facade = Facade(routes, tmp_path / "state")
    try:
        down = facade.client.get("/items/1")
        assert down.status_code == 502
        body = down.json()
        assert body["side"] == "new:svc"
        assert body["capability"] == "strict"
        assert "cannot connect" in body["reason"]
        fallback = facade.client.get("/echo/lenient/1")
        assert fallback.status_code == 200
        assert side(fallback) == "legacy"
        assert fallback.json()["path"] == "/echo/lenient/1"  # legacy's own path
        legacy.close()
        gone = facade.client.get("/anything")
        assert gone.status_code == 502
        assert gone.json()["side"] == "legacy"
    finally:
        facade.close()


def test_a_route_change_applies_without_restart_and_survives_kill_9(
    upstreams: tuple[Upstream, Upstream], tmp_path: Path
) -> None:
    legacy, new = upstreams
    routes = routes_file(tmp_path, legacy.url, new.url, CAPS)
    state = tmp_path / "state"
    facade = Facade(routes, state)
    try:
        assert side(facade.client.get("/echo/a")) == "legacy"
        # An unknown capability is refused, naming the closest.
        typo = seam("migrate", "route", "olt", "--mode", "new", "--routes", str(routes))
        assert typo.returncode != 0
        assert "did you mean 'old'" in typo.stderr
        assert "Traceback" not in typo.stderr
        done = seam(
            "migrate",
            "route",
            "old",
            "--mode",
            "new",
            "--state",
            str(state),
            "--routes",
            str(routes),
        )
        assert done.returncode == 0, done.stderr
        began = time.monotonic()
        wait_until(lambda: side(facade.client.get("/items/1")) == "new", 5, "the new mode")
        assert time.monotonic() - began < 2.0
        assert facade.process is not None
        pid = facade.process.pid
        (child,) = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        facade.signal(signal.SIGKILL)
        # Its shadow process sees its pipe close and ends too: no orphan.
        wait_until(lambda: not Path(f"/proc/{child}").exists(), 10, "the shadow process gone")
        facade.start()  # a restarted facade keeps the mode set
        assert side(facade.client.get("/items/1")) == "new"
        # status from the facade's last record, without --routes
        shown = wait_until(
            lambda: (
                (r := seam("migrate", "status", "--state", str(state))).returncode == 0
                and "requests legacy 0, new 1" in r.stdout
                and r
            ),
            5,
            "the restarted facade's status",
        )
        assert "old: new (route record)" in shown.stdout
        assert "parity: no entity named" in shown.stdout
        back = seam("migrate", "rollback", "old", "--state", str(state))
        assert back.returncode == 0, back.stderr
        assert "new -> legacy" in back.stdout
        wait_until(lambda: side(facade.client.get("/items/1")) == "legacy", 5, "the rollback")
        # The routes file edited: taken up; broken: the running routes stay.
        routes.write_text(routes.read_text().replace("mode: split 50%", "mode: new"))
        wait_until(
            lambda: side(facade.client.get("/echo/halves", headers={"X-User": "u"})) == "new",
            5,
            "the reloaded file",
        )
        routes.write_text(routes.read_text() + "  broken: {requests: [FETCH]}\n")
        time.sleep(1.5)
        assert side(facade.client.get("/echo/halves", headers={"X-User": "u"})) == "new"
        log = facade.log.read_text()
        assert log.count("the routes file was not reloaded") == 1
        assert "FETCH" in log
    finally:
        facade.close()


def test_sigterm_stops_the_facade_cleanly(
    upstreams: tuple[Upstream, Upstream], tmp_path: Path
) -> None:
    legacy, new = upstreams
    state = tmp_path / "state"
    facade = Facade(routes_file(tmp_path, legacy.url, new.url, CAPS), state)
    try:
        facade.client.get("/items/1")
        began = time.monotonic()
        assert facade.signal(signal.SIGTERM) == 0
        assert time.monotonic() - began < 5
        assert "Traceback" not in facade.log.read_text()
        status = (state / "facade" / "status.json").read_text()
        assert '"legacy": 1' in status  # its last status, written on the way out
    finally:
        facade.close()


SHADOW = """\
  shadowed:
    requests: ["GET /items/{id}"]
    mode: shadow
    shadow:
      wait_ms: 300
      compare: {ignore: [stamp], normalise: {title: [trim, lower]}}
"""


def test_shadow_finds_a_planted_mismatch_and_counts_an_unsettled_answer_apart(
    upstreams: tuple[Upstream, Upstream], tmp_path: Path
) -> None:
    legacy, new = upstreams
    legacy.put("1", {"title": " Blue Mug", "stamp": 1})
    new.put("1", {"title": "blue mug", "stamp": 2})  # equal under the rules
    legacy.put("2", {"title": "Red"})
    new.put("2", {"title": "Green"})  # planted
    legacy.control(position="lsn:0/10")
    state = tmp_path / "state"
    facade = Facade(routes_file(tmp_path, legacy.url, new.url, SHADOW), state)
    try:
        assert facade.client.get("/items/1").json() == {"title": " Blue Mug", "stamp": 1}
        assert facade.client.get("/items/2").json() == {"title": "Red"}
        shadow = lambda: facade.status()["capabilities"]["shadowed"]["shadow"]  # noqa: E731
        wait_until(lambda: shadow()["match"] + shadow()["mismatch"] == 2, 10, "two comparisons")
        assert shadow()["mismatch"] == 1
        (kept,) = read_mismatches(state / "shadow" / "mismatches.sqlite")
        assert kept["path"] == "/items/2"
        assert kept["diff"] == [{"field": "title", "legacy": "red", "new": "green"}]
        assert kept["legacy_position"] == "lsn:0/10"
        assert '"Green"' in kept["new_body"]
        assert '"Red"' in kept["legacy_body"]
        # The new side has not applied the position in time (504): unsettled, not a mismatch.
        new.control(status=504)
        facade.client.get("/items/2")
        wait_until(lambda: shadow()["unsettled"] == 1, 10, "an unsettled comparison")
        assert shadow()["mismatch"] == 1
        # No position at all (no header, no database): unsettled too, never compared.
        new.control(status=0)
        legacy.control(position=None)
        facade.client.get("/items/2")
        wait_until(lambda: shadow()["unsettled"] == 2, 10, "a comparison with no position")
        assert shadow()["mismatch"] == 1
        shown = seam("migrate", "status", "--facade", facade.url, "--state", str(state))
        assert "shadow 50.00% mismatched (1 match, 1 mismatch, 2 unsettled" in shown.stdout
    finally:
        facade.close()


def test_a_slow_or_failing_new_side_never_changes_the_users_answer_or_latency(
    upstreams: tuple[Upstream, Upstream], tmp_path: Path
) -> None:
    legacy, new = upstreams
    legacy.put("1", {"title": "Blue"})
    legacy.control(position="lsn:0/10")
    facade = Facade(routes_file(tmp_path, legacy.url, new.url, SHADOW), tmp_path / "state")
    try:

        def latencies() -> list[float]:
            out = []
            for _ in range(60):
                began = time.perf_counter()
                answer = facade.client.get("/items/1")
                out.append(time.perf_counter() - began)
                assert answer.status_code == 200
                assert answer.json() == {"title": "Blue"}
                assert side(answer) == "legacy"
            return out

        new.control(status=0)
        new.put("1", {"title": "Blue"})
        baseline = statistics.median(latencies())
        new.control(delay_ms=2000)  # slower than the shadow's wait: every one times out
        slow = statistics.median(latencies())
        new.control(delay_ms=0, status=500)
        failing = statistics.median(latencies())
        new.close()  # down altogether
        down = statistics.median(latencies())
        # A shadow that waited for the new side would add its 2 s (slow) or a connect error's
        # round trip; the margin only absorbs the noise of a shared machine.
        for measured in (slow, failing, down):
            assert measured < baseline + 0.025, (baseline, slow, failing, down)
        shadow = facade.status()["capabilities"]["shadowed"]["shadow"]
        assert shadow["mismatch"] == 0
        wait_until(
            lambda: facade.status()["capabilities"]["shadowed"]["shadow"]["error"] >= 120,
            15,
            "the failures counted as shadow errors",
        )
    finally:
        facade.close()

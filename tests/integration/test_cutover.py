"""`seam migrate cutover` on the record a real shadow run leaves: the facade (`seam facade
run`) shadows requests to real HTTP upstreams and is stopped; cutover then reads the
per-minute outcomes its shadow process wrote, refuses while parity is missing and the
mismatch rate is over the limit (changing nothing), and on clean evidence sets the mode to
new and records it, which a restarted facade serves and `seam migrate status` shows.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from seam.migration.state import MigrationStore
from tests.facade_procs import SHADOW_ROUTES as ROUTES
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


def test_cutover_refuses_then_moves_on_the_evidence_of_a_real_shadow_run(
    upstreams: tuple[Upstream, Upstream], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    legacy, new = upstreams
    for key in ("1", "2", "3", "4"):
        legacy.put(key, {"title": f"thing {key}"})
        new.put(key, {"title": f"thing {key}"})
    legacy.put("5", {"title": "Red"})
    new.put("5", {"title": "Green"})  # planted: one mismatch
    legacy.control(position="lsn:0/10")
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES.format(legacy=legacy.url, new=new.url))
    state = tmp_path / "state"

    facade = Facade(routes, state)
    try:
        for _ in range(10):
            for key in ("1", "2", "3", "4"):
                assert facade.client.get(f"/items/{key}").json() == {"title": f"thing {key}"}
        assert facade.client.get("/items/5").json() == {"title": "Red"}
        shadow = lambda: facade.status()["capabilities"]["details"]["shadow"]  # noqa: E731
        wait_until(lambda: shadow()["match"] + shadow()["mismatch"] == 41, 20, "41 comparisons")
        assert facade.signal(signal.SIGTERM) == 0  # the outcomes outlive the facade
    finally:
        facade.close()

    cutover = ("migrate", "cutover", "details", "--routes", str(routes), "--state", str(state))
    refused = seam(*cutover, "--min-compared", "41")
    assert refused.returncode == 1, refused.stderr
    assert "40 match, 1 mismatch" in refused.stdout
    assert "NO  parity: parity of thing has never run" in refused.stdout
    assert "NO  mismatch rate: 2.4390% mismatched in the last 1h" in refused.stdout
    assert "ok  compared: 41 comparisons" in refused.stdout
    assert "error: details stays where it is; unmet: parity, mismatch rate" in refused.stderr
    assert "seam migrate parity thing" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (state / "routes" / "details.json").exists()
    assert not (state / "cutover").exists()

    # Parity (another command) records a clean result; the rate limit is raised to 5%.
    MigrationStore(state).write(
        "parity/thing.json",
        {
            "entity": "thing",
            "clean": True,
            "finished_at": datetime.now(UTC).isoformat(),
            "position": "lsn:0/10",
            "differing": 0,
            "counts": {"legacy": 5, "topic": 5, "store": 5},
        },
    )
    too_few = seam(*cutover, "--max-mismatch-rate", "0.05", "--min-compared", "42")
    assert too_few.returncode == 1
    assert "unmet: compared" in too_few.stderr

    monkeypatch.setenv("SEAM_ACTOR", "release-42")
    done = seam(*cutover, "--max-mismatch-rate", "0.05", "--min-compared", "41", "-o", "json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)["cutover"]
    assert shown["by"] == "release-42"
    assert shown["evidence"]["shadow"]["compared"] == 41
    assert shown["evidence"]["parity"]["clean"] is True
    kept = json.loads((state / "cutover" / "details.json").read_text())
    assert kept == shown
    route = json.loads((state / "routes" / "details.json").read_text())
    assert (route["mode"], route["set_by"]) == ("new", "release-42")

    facade = Facade(routes, state)  # a restarted facade serves the capability from new
    try:
        answer = facade.client.get("/items/5")
        assert (answer.headers["x-upstream"], answer.json()) == ("new", {"title": "Green"})
        status = seam("migrate", "status", "--facade", facade.url, "--state", str(state))
        assert status.returncode == 0, status.stderr
        assert "details: new (route record)" in status.stdout
        assert "last 1h: 2.44% mismatched of 41 compared" in status.stdout
        assert "cut over to new by release-42 at " in status.stdout
    finally:
        facade.close()

"""Shadow mode against a real memory image: the legacy database's catalog captured by
Debezium, the transform, `seam serve`, and `seam facade run` in front of a legacy app
reading that database (tests/db_upstream.py).

The race others report as false positives: a product renamed in legacy and read at once
through the facade; legacy answers the new name while the image has not applied it yet. The
facade reads the legacy log position right after the answer and asks the image to wait for
it, so the comparison is a match, never a mismatch. A planted legacy bug is found with its
field-level diff and both positions; an image given no time to catch up is unsettled.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from seam.migration.shadow import read_mismatches
from tests.facade_procs import Facade, Proc, wait_until
from tests.integration.test_service_image import Served
from tests.integration.test_service_read_your_writes import (  # noqa: F401 - fixtures
    commit_rename,
    running,
)
from tests.integration.test_transform_e2e import Catalog, catalog  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


@pytest.fixture
def writer(running: tuple[Catalog, Served]) -> Iterator[int]:  # noqa: F811
    """A workload renaming one product every 200 ms: later changes prove positions passed."""
    legacy, served = running
    other = int(served.get("/product", status="active", limit=3).json()["keys"][2])
    stop = threading.Event()

    def work() -> None:
        while not stop.wait(0.2):
            commit_rename(legacy.url, other, f"Busy {time.monotonic_ns()}")

    thread = threading.Thread(target=work)
    thread.start()
    try:
        yield other
    finally:
        stop.set()
        thread.join()


@pytest.mark.parametrize("catalog", ["postgres"], indirect=True)
def test_shadow_counts_a_planted_mismatch_and_not_the_race(
    running: tuple[Catalog, Served],  # noqa: F811
    writer: int,
    tmp_path: Path,
) -> None:
    legacy, served = running
    keys = [int(k) for k in served.get("/product", status="active", limit=12).json()["keys"]]
    products = [k for k in keys if k != writer][:8]
    app = Proc(
        [sys.executable, "-m", "tests.db_upstream", "{port}", legacy.url],
        tmp_path / "legacy-app.log",
        f"/products/{products[0]}",
    )
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        f"legacy: {{url: '{app.url}', database: '{legacy.url}'}}\n"
        f"new: {{image: '{served.url}'}}\n"
        "capabilities:\n"
        "  details:\n"
        "    entity: product\n"
        '    requests: ["GET /products/{id}"]\n'
        "    mode: shadow\n"
        "    rewrite: /product/{id}\n"
        "    shadow:\n"
        "      wait_ms: 20000\n"
        "      compare: {new_root: data, rename: {prod_name: name}, only: [name]}\n"
        "  hurried:\n"
        '    requests: ["GET /lagging/products/{id}"]\n'
        "    mode: shadow\n"
        "    rewrite: /product/{id}\n"
        "    shadow:\n"
        "      wait_ms: 0\n"
        "      compare: {new_root: data, rename: {prod_name: name}, only: [name]}\n"
    )
    state = tmp_path / "state"
    facade = Facade(routes, state)
    try:
        shadow = lambda cap: facade.status()["capabilities"][cap]["shadow"]  # noqa: E731
        # The race: renamed in legacy, read through the facade at once, six times over.
        for i, product in enumerate(products[:6]):
            commit_rename(legacy.url, product, f"Renamed {i} {time.monotonic_ns()}")
            answer = facade.client.get(f"/products/{product}")
            assert answer.status_code == 200
            assert answer.json()["prod_name"].startswith(f"Renamed {i} ")
        wait_until(lambda: shadow("details")["match"] == 6, 90, "six settled comparisons")
        assert shadow("details")["mismatch"] == 0
        # A planted legacy bug is a mismatch, kept with both bodies, the diff and positions.
        planted = products[6]
        commit_rename(legacy.url, planted, "Planted")
        app.client.post("/_control", json={"corrupt": planted}).raise_for_status()
        facade.client.get(f"/products/{planted}")
        wait_until(lambda: shadow("details")["mismatch"] == 1, 90, "the planted mismatch")
        (kept,) = read_mismatches(state / "shadow" / "mismatches.sqlite", "details")
        assert kept["diff"] == [
            {"field": "name", "legacy": "Planted (legacy typo)", "new": "Planted"}
        ]
        assert kept["legacy_position"].startswith("lsn:")
        assert kept["new_position"]  # the image's offsets it answered at
        # No time to catch up on a fresh change: unsettled, not a mismatch.
        commit_rename(legacy.url, products[7], f"Hurried {time.monotonic_ns()}")
        facade.client.get(f"/lagging/products/{products[7]}")
        wait_until(lambda: shadow("hurried")["unsettled"] == 1, 30, "the unsettled comparison")
        assert shadow("hurried")["mismatch"] == 0
    finally:
        facade.close()
        app.close()

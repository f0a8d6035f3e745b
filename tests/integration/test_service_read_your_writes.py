"""Read your writes across CDC: a legacy commit, then `GET ...?after=<its log position>`.

The whole path runs for real: the seeded catalog in its own database (PostgreSQL, and
MariaDB), its Debezium connector, the transform worker, `seam serve` on the latest topic.
A request that names the position of a legacy commit answers only once the image holds the
commit's change, and says which source position it reflects.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from seam.settings import Settings
from tests.catalog_checks import wait_for
from tests.integration.test_service_image import Served, transform_and_serve
from tests.integration.test_transform_e2e import Catalog, catalog  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


def commit_rename(url: str, product: int, name: str) -> str:
    """Rename a product in the legacy database; the log position after the commit."""
    from seam.connectors.engine import connect, log_position

    with connect(url) as conn:
        conn.execute(
            text("UPDATE products SET prod_name = :name WHERE prod_id = :id"),
            {"name": name, "id": product},
        )
        conn.commit()
        return log_position(conn)


@pytest.fixture
def running(stack: Settings, catalog: Catalog, tmp_path: Path) -> Iterator[tuple[Catalog, Served]]:  # noqa: F811
    """The transform worker and the service, both stopped at the end."""
    service_file = tmp_path / "service.yaml"
    service_file.write_text(
        f"pipeline: {catalog.pipeline}\nindexes: [sku]\nfilters: [status]\n"
        "snapshot: {path: image.snapshot, interval_s: 0}\n"
    )
    with transform_and_serve(stack, catalog.pipeline, catalog.latest, service_file, "w1") as served:
        yield catalog, served


def listed_product(served: Served) -> tuple[int, dict[str, Any]]:
    page = served.get("/product", status="active", limit=2).json()
    return int(page["keys"][0]), page["items"][0]


def test_a_request_after_a_legacy_commit_sees_it(
    running: tuple[Catalog, Served], request: pytest.FixtureRequest
) -> None:
    legacy, served = running
    flavour = "postgres" if "postgres" in request.node.callspec.id else "mariadb"
    product, before = listed_product(served)
    other = int(served.get("/product", status="active", limit=2).json()["keys"][1])
    name = f"Renamed {time.monotonic_ns()}"
    position = commit_rename(legacy.url, product, name)

    # The position is proven passed by a later change: the workload's next commit.
    def later() -> None:
        time.sleep(1.0)
        commit_rename(legacy.url, other, f"Other {time.monotonic_ns()}")

    writer = threading.Thread(target=later)
    writer.start()
    try:
        answer = served.get(f"/product/{product}", after=position, wait_ms=60_000)
    finally:
        writer.join()
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["data"]["name"] == name != before["name"]
    assert body["position"]["source"] == position
    assert answer.headers["Seam-Position"]

    # A position far ahead is not reached: 504 within the wait, naming it.
    if flavour == "postgres":
        ahead = "lsn:FFFFFFF/0"
    else:
        file, _pos = position.removeprefix("binlog:").rsplit(":", 1)
        ahead = f"binlog:{file}:999999999"
    began = time.monotonic()
    late = served.get(f"/product/{product}", after=ahead, wait_ms=500)
    assert late.status_code == 504, late.text
    assert late.json()["wanted"] == ahead
    assert time.monotonic() - began < 10


def _metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_records_carry_the_source_commit_and_the_service_lags_from_it(
    stack: Settings, running: tuple[Catalog, Served]
) -> None:
    """The transform puts the source commit time and position of each change on its latest
    and history records, equal to the raw Debezium record's; the service's lag in seconds
    counts from them."""
    from seam.transforms.readback import read_to_end

    legacy, served = running
    product, _before = listed_product(served)
    earlier = served.get("/health").json()["last_applied_source"]["ts_ms"]
    assert earlier is not None  # the snapshot's records carry their read time
    name = f"Lagged {time.monotonic_ns()}"
    after = commit_rename(legacy.url, product, name)
    commit_rename(legacy.url, product + 1, f"Next {time.monotonic_ns()}")  # passes `after`
    answer = served.get(f"/product/{product}", after=after, wait_ms=60_000)
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"]["name"] == name

    raw = [
        r.json()
        for r in read_to_end(stack.kafka, legacy.raw_topic)
        if r.value is not None and (r.json().get("after") or {}).get("prod_name") == name
    ]
    assert len(raw) == 1
    source = raw[0]["source"]
    if source["connector"] == "postgresql":
        lsn = source["lsn"]
        position = f"lsn:{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"
    else:
        position = f"binlog:{source['file']}:{source['pos']}"
    expected = {
        "seam-source-ts-ms": str(source["ts_ms"]).encode(),
        "seam-source-position": position.encode(),
    }

    latest = [
        r
        for r in read_to_end(stack.kafka, legacy.latest)
        if r.value is not None and r.json().get("name") == name
    ]
    assert len(latest) == 1
    assert {k: latest[0].headers.get(k) for k in expected} == expected
    renamed = [
        r
        for r in read_to_end(stack.kafka, legacy.history)
        if r.value is not None and name.encode() in r.value
    ]
    assert renamed
    assert all({k: r.headers.get(k) for k in expected} == expected for r in renamed)
    # The position is one ?after= takes, and it is reached once the change is applied.
    assert served.get(f"/product/{product}", after=position, wait_ms=10_000).status_code == 200

    # Caught up: 0 s behind; the last applied record's source time is a commit at or past ours.
    def caught_up() -> bool:
        text = served.get("/metrics").text
        return _metric(text, "seam_service_lag_seconds") == 0.0

    wait_for(caught_up, 30, "lag 0", step=0.1)
    text = served.get("/metrics").text
    last = _metric(text, "seam_service_last_applied_source_timestamp_seconds")
    assert last is not None
    assert last >= int(source["ts_ms"]) / 1000 > earlier / 1000  # it moved with the commit
    health = served.get("/health").json()
    assert health["lag_seconds"] == 0.0
    assert health["last_applied_source"]["ts_ms"] >= int(source["ts_ms"])
    assert health["last_applied_source"]["position"].split(":")[0] == position.split(":")[0]


@pytest.mark.parametrize("catalog", ["mariadb"], indirect=True)  # GTIDs are MySQL/MariaDB's
def test_a_request_after_a_mariadb_gtid_sees_its_commit(running: tuple[Catalog, Served]) -> None:
    from seam.connectors.engine import connect, log_gtid

    legacy, served = running
    product, before = listed_product(served)
    other = int(served.get("/product", status="active", limit=2).json()["keys"][1])
    name = f"Gtid {time.monotonic_ns()}"
    with connect(legacy.url) as conn:
        conn.execute(
            text("UPDATE products SET prod_name = :name WHERE prod_id = :id"),
            {"name": name, "id": product},
        )
        conn.commit()
        gtid = log_gtid(conn)
    assert gtid.startswith("gtid:"), gtid
    assert gtid.count("-") == 2, gtid

    # Not passed until a later transaction of the domain has gone through the transform.
    early = served.get(f"/product/{product}", after=gtid, wait_ms=300)
    assert early.status_code == 504, early.text
    assert early.json()["wanted"] == gtid

    def later() -> None:
        time.sleep(1.0)
        commit_rename(legacy.url, other, f"Other {time.monotonic_ns()}")

    writer = threading.Thread(target=later)
    writer.start()
    try:
        answer = served.get(f"/product/{product}", after=gtid, wait_ms=60_000)
    finally:
        writer.join()
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["data"]["name"] == name != before["name"]
    assert body["position"]["source"] == gtid

    bad = served.get(f"/product/{product}", after="gtid:0-1-5,1-2-6")
    assert bad.status_code == 400
    assert "does not say which one" in bad.json()["detail"]

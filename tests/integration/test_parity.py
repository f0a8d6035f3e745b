"""`seam migrate parity` on the real path: the seeded catalog in its own database (PostgreSQL
and MariaDB), its Debezium connector, the transform worker and `seam serve`.

A clean run is clean while a workload changes other rows; differences planted in each side
(a legacy change the connector does not capture, records produced into the latest topic, a
service started from a snapshot that holds a value the topic does not, rows edited by hand
in a JDBC sink's table) are all found, each with its reason, and recorded for `seam migrate
status`.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from seam.connectors.client import ConnectClient
from seam.settings import Settings
from tests.integration.test_jdbc_sink import connect_client, remove, target, write_spec  # noqa: F401
from tests.integration.test_jdbc_sink import seam as sink_cli
from tests.integration.test_service_image import Served, transform_and_serve
from tests.integration.test_transform_e2e import Catalog, catalog  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


@dataclass
class Running:
    catalog: Catalog
    served: Served
    service_file: Path
    flavour: str


class Workload:
    """Renames products of `keys` a few times a second, in a thread, until stopped: changes
    in flight during a check, and the later changes that prove a cut passed."""

    def __init__(self, url: str, keys: list[int]) -> None:
        self.url, self.keys = url, keys
        self.stop = threading.Event()
        self.writes = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        from seam.connectors.engine import connect

        rng = random.Random(7)
        with connect(self.url) as conn:
            while not self.stop.is_set():
                conn.execute(
                    text("UPDATE products SET prod_name = :n WHERE prod_id = :id"),
                    {"n": f"Workload {time.monotonic_ns()}", "id": rng.choice(self.keys)},
                )
                conn.commit()
                self.writes += 1
                time.sleep(0.1)

    def __enter__(self) -> Workload:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


@pytest.fixture
def running(
    stack: Settings,
    catalog: Catalog,  # noqa: F811
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Running]:
    service_file = tmp_path / "service.yaml"
    service_file.write_text(
        f"pipeline: {catalog.pipeline}\nsnapshot: {{path: image.snapshot, interval_s: 0}}\n"
        "read_your_writes: {wait_ms: 2000, max_wait_ms: 120000}\n"
    )
    flavour = "postgres" if "postgres" in request.node.callspec.id else "mariadb"
    with transform_and_serve(stack, catalog.pipeline, catalog.latest, service_file, "p1") as served:
        # A test may restart the service (and close the one it replaces): it closes its own.
        yield Running(catalog, served, service_file, flavour)


def parity(run: Running, state: Path, *options: str) -> tuple[int, dict[str, Any], str]:
    """`seam migrate parity` as a user runs it: (exit code, JSON output, stderr)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "seam.cli.main",
            "migrate",
            "parity",
            str(run.catalog.pipeline),
            "--database",
            run.catalog.url,
            "--state",
            str(state),
            "--wait",
            "90",
            "--output",
            "json",
            *options,
        ],
        capture_output=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        timeout=600,
        check=False,
    )
    out = done.stdout.decode()
    return done.returncode, json.loads(out) if out.strip() else {}, done.stderr.decode()


def product_keys(run: Running) -> list[int]:
    return sorted(int(k) for k in run.served.all_states("/product"))


def test_a_clean_catalog_is_clean_while_a_workload_runs(running: Running, tmp_path: Path) -> None:
    keys = product_keys(running)
    with Workload(running.catalog.url, keys[:40]) as workload:
        code, result, err = parity(running, tmp_path / "state", "--service", running.served.url)
    assert workload.writes > 5  # changes were in flight during the check
    assert code == 0, (result, err)
    assert result["clean"] is True
    assert result["differing"] == 0
    counts = result["counts"]
    assert counts["legacy_states"] == counts["topic"] == counts["image"] == len(keys) > 100
    assert (
        counts["legacy_rows"]
        == counts["legacy_states"] + counts["legacy_gone"] + counts["legacy_rejected"]
    )
    assert counts["legacy_gone"] + counts["legacy_rejected"] > 0  # the seed's warts: not listed
    record = json.loads((tmp_path / "state" / "parity" / "product.json").read_text())
    assert record["clean"] is True
    assert record["entity"] == "product"
    assert record["position"].startswith("lsn:" if running.flavour == "postgres" else "binlog:")
    assert record["finished_at"].endswith("Z")
    assert record["differing"] == 0
    # The image was compared by digests: only rows of ranges the workload changed moved.
    assert record["moved"]["rows"] < counts["image"] / 2, record
    assert record["moved"]["requests"] >= 1


def uncaptured_rename(run: Running, product: int, name: str) -> None:
    """Rename a product in the legacy database so that the connector never sees it."""
    from seam.connectors.engine import connect

    with connect(run.catalog.url) as conn:
        if run.flavour == "postgres":
            conn.execute(text("ALTER PUBLICATION seam_catalog DROP TABLE products"))
            conn.commit()
            conn.execute(
                text("UPDATE products SET prod_name = :n WHERE prod_id = :id"),
                {"n": name, "id": product},
            )
            conn.commit()
            conn.execute(text("ALTER PUBLICATION seam_catalog ADD TABLE products"))
            conn.commit()
        else:
            conn.execute(text("SET SESSION sql_log_bin = 0"))
            conn.execute(
                text("UPDATE products SET prod_name = :n WHERE prod_id = :id"),
                {"n": name, "id": product},
            )
            conn.commit()
            conn.execute(text("SET SESSION sql_log_bin = 1"))


def legacy_name(run: Running, product: int) -> str:
    """The product's name as the legacy table holds it (before any cleaning)."""
    from seam.connectors.engine import connect

    with connect(run.catalog.url) as conn:
        query = text("SELECT prod_name FROM products WHERE prod_id = :id")
        return str(conn.execute(query, {"id": product}).scalar_one())


def produce(stack: Settings, topic: str, key: str, value: dict[str, Any] | None) -> None:
    """One record into `topic` (None: a tombstone)."""
    from confluent_kafka import Producer

    producer = Producer(stack.kafka.client_config({}))
    body = None if value is None else json.dumps(value).encode()
    producer.produce(topic, key=key.encode(), value=body)
    assert producer.flush(30) == 0


def restart_from_tampered_snapshot(run: Running, product: str, name: str) -> Served:
    """Stop the service (it writes its snapshot), change one state in the snapshot file,
    start it again from there: it serves a value the topic does not hold."""
    from seam.services import snapshot as snapshot_file
    from seam.services.service_file import load_service

    spec = load_service(run.service_file)
    assert run.served.stop() == 0
    run.served.close()
    path = spec.snapshot_path
    snap = snapshot_file.read(path, topic=spec.topic, fields=spec.fields)
    assert snap.dictionary is None  # 300 products: stored as plain JSON
    at = snap.keys.index(product)
    state = json.loads(snap.values[at])
    state["name"] = name
    snap.values[at] = json.dumps(state).encode()
    snapshot_file.write(path, snap)
    served = Served(run.service_file)
    served.up()
    served.until_ready()
    return served


def test_planted_differences_are_found_with_their_reasons(
    running: Running, stack: Settings, tmp_path: Path
) -> None:
    keys = product_keys(running)
    legacy_only, topic_wrong, image_wrong = keys[-1], keys[-2], keys[-3]
    served = restart_from_tampered_snapshot(running, str(image_wrong), "Stale in the image")
    running.served = served
    before: dict[str, Any] | None = None
    original = legacy_name(running, legacy_only)
    try:
        uncaptured_rename(running, legacy_only, "Renamed behind the connector's back")
        before = served.get(f"/product/{topic_wrong}").json()["data"]
        # A valid ProductState (a sink on this topic must be able to write it), wrong price.
        wrong = {**before, "price": {**before["price"], "amount": "0.01"}}
        produce(stack, running.catalog.latest, str(topic_wrong), wrong)
        produce(stack, running.catalog.latest, "99999999", {**before, "product_id": 99999999})
        with Workload(running.catalog.url, keys[:40]):
            code, result, err = parity(running, tmp_path / "state", "--service", served.url)
    finally:
        served.close()
        # The topic outlives this test (the catalog is the module's): take the plants back.
        if before is not None:
            produce(stack, running.catalog.latest, str(topic_wrong), before)
            produce(stack, running.catalog.latest, "99999999", None)
        uncaptured_rename(running, legacy_only, original)  # and the legacy one
    assert code == 1, (result, err)
    assert result["clean"] is False
    found = {(d["key"], d["side"]): d for d in result["differences"]}
    assert set(found) == {
        (str(legacy_only), "topic"),
        (str(legacy_only), "image"),
        (str(topic_wrong), "topic"),
        (str(topic_wrong), "image"),
        ("99999999", "topic"),
        ("99999999", "image"),
        (str(image_wrong), "image"),
    }, result["differences"]
    assert result["differing"] == 4
    for side in ("topic", "image"):
        renamed = found[(str(legacy_only), side)]
        assert renamed["reason"] == "values"
        assert set(renamed["fields"]) == {"name"}
        assert renamed["fields"]["name"]["legacy"] == "Renamed behind the connector's back"
        priced = found[(str(topic_wrong), side)]
        assert priced["reason"] == "values"
        assert set(priced["fields"]) == {"price"}
        assert priced["fields"]["price"][side]["amount"] == "0.01"
        assert priced["fields"]["price"]["legacy"] == before["price"]
        extra = found[("99999999", side)]
        assert extra["reason"] == "extra"
        assert "no such row in the legacy table" in extra["detail"]
    stale = found[(str(image_wrong), "image")]
    assert stale["reason"] == "values"
    assert stale["fields"]["name"]["image"] == "Stale in the image"
    record = json.loads((tmp_path / "state" / "parity" / "product.json").read_text())
    assert record["clean"] is False
    assert record["differing"] == 4
    assert len(record["cuts"]) >= 2  # the differing keys were checked again at a newer cut


def test_a_cut_that_cannot_be_reached_is_exit_code_2(running: Running, tmp_path: Path) -> None:
    """No later change proves the cut passed (a quiet database): no verdict, never 'clean'."""
    code, _result, err = parity(running, tmp_path / "state", "--wait", "3")
    assert code == 2, err
    assert "could not compare" in err
    assert "has not published" in err
    record = json.loads((tmp_path / "state" / "parity" / "product.json").read_text())
    assert record["clean"] is False
    assert record["compared"] is False


def test_repair_snapshots_the_differing_rows_again(running: Running, tmp_path: Path) -> None:
    """`--repair`: an incremental snapshot filtered to the differing key brings the change
    the connector missed, and the check then finds the sides agree."""
    keys = product_keys(running)
    missed = keys[-1]
    uncaptured_rename(running, missed, "Missed, then repaired")
    with Workload(running.catalog.url, keys[:40]):
        code, result, err = parity(
            running,
            tmp_path / "state",
            "--service",
            running.served.url,
            "--repair",
            "--connector",
            running.catalog.connector,
        )
    assert code == 0, (result, err)
    assert result["clean"] is True
    repair = result["repair"]
    assert repair["keys"] == 1
    assert repair["repaired"] == 1
    assert str(missed) in repair["filter"]
    answer = running.served.get(f"/product/{missed}").json()
    assert answer["data"]["name"] == "Missed, then repaired"


def test_repair_needs_the_connector(running: Running, tmp_path: Path) -> None:
    code, _result, err = parity(running, tmp_path / "state", "--repair")
    assert code == 1
    assert "--connector" in err
    assert "Traceback" not in err


def test_a_sink_table_is_compared_at_the_cut_and_hand_edits_are_found(
    running: Running,
    stack: Settings,
    connect_client: ConnectClient,  # noqa: F811 - the fixture
    target: tuple[str, str],  # noqa: F811 - the fixture
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    """`--sink`: a real JDBC sink keeps the latest topic as a table. Clean while a workload
    runs; a row deleted and a row changed in the table by hand are found (missing, values
    with both values); a paused sink never reaches the cut: exit code 2, not a verdict."""
    from seam.connectors.engine import connect, with_database

    dbname, user = target
    name = unique_name("parity-sink")
    pipeline = running.catalog.pipeline
    spec = write_spec(
        tmp_path / "sink.yaml",
        name,
        pipeline.name,
        running.catalog.latest,
        dbname,
        user,
        "products",
        pipelines=pipeline.parent,
    )
    sink_cli("connectors", "prepare", "--yes", str(spec))
    try:
        sink_cli("connectors", "apply", "--wait", "--timeout", "120", str(spec))
        keys = product_keys(running)
        with Workload(running.catalog.url, keys[:40]):
            code, result, err = parity(running, tmp_path / "state", "--sink", str(spec))
        assert code == 0, (result.get("counts"), result.get("differences"), err)
        counts = result["counts"]
        assert counts["sink"] == counts["legacy_states"] == len(keys) > 100
        assert result["timings_s"]["sink_compare"] >= 0

        deleted, changed = keys[-5], keys[-6]
        view = with_database(stack.database_url("postgres"), dbname)
        with connect(view) as conn:
            conn.execute(text("DELETE FROM products WHERE product_id = :k"), {"k": deleted})
            conn.execute(
                text("UPDATE products SET name = 'Changed in the sink' WHERE product_id = :k"),
                {"k": changed},
            )
            conn.commit()
        legacy_name = running.served.get(f"/product/{changed}").json()["data"]["name"]
        with Workload(running.catalog.url, keys[:40]):
            code, result, err = parity(running, tmp_path / "state", "--sink", name)
        assert code == 1, (result, err)
        found = {(d["key"], d["side"]): d for d in result["differences"]}
        assert set(found) == {(str(deleted), "sink"), (str(changed), "sink")}, found
        assert found[(str(deleted), "sink")]["reason"] == "missing"
        values = found[(str(changed), "sink")]
        assert values["reason"] == "values"
        assert values["fields"] == {"name": {"legacy": legacy_name, "sink": "Changed in the sink"}}
        assert result["counts"]["sink"] == len(keys) - 1

        connect_client.pause(name)
        with Workload(running.catalog.url, keys[:40]):
            code, result, err = parity(running, tmp_path / "state", "--sink", name, "--wait", "5")
        assert code == 2, (result, err)
        assert "could not compare" in err
        assert f"the sink {name} has not committed" in err
    finally:
        remove(stack, name)

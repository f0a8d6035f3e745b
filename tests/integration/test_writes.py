"""Writes moved to the new side: commands on `seam serve`, and the seam writer keeping the
legacy database in step (PostgreSQL and MariaDB).

The whole path runs for real: the seeded catalog in its own database, its Debezium connector,
the transform worker, `seam serve` with the catalog's writes file (legacy_db/migration/), and
`seam migrate writer` in its own process (killed with SIGKILL in one test).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import text

from seam.legacy_db.files import folder
from seam.migration.writes import ORIGIN_HEADER
from seam.settings import Settings
from seam.transforms.readback import Record, read_to_end
from tests.catalog_checks import wait_for
from tests.conftest import start_transform_worker
from tests.integration.test_service_image import Served
from tests.integration.test_transform_e2e import Catalog, catalog  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration

DOMAIN = 77


@dataclass
class Moved:
    catalog: Catalog
    flavour: str
    served: Served
    writes: Path  # the writes file
    name: str  # the writer's name: its events' origin
    ledger: str | None
    pipeline: Path
    root: Path


@pytest.fixture(scope="module")
def moved(
    stack: Settings,
    catalog: Catalog,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Moved]:
    """The transform worker and the service with the catalog's commands, over a catalog of
    its own (its pipeline declaring own_writes)."""
    flavour = "postgres" if catalog.raw_topic.split(".")[1] == "public" else "mariadb"
    root = tmp_path_factory.mktemp("writes")
    prefix = catalog.raw_topic.split(".")[0]
    pipeline = yaml.safe_load(catalog.pipeline.read_text())
    ledger = f"{prefix}.own-writes" if flavour == "postgres" else None
    pipeline["own_writes"] = {"ledger": ledger} if ledger else {"gtid_domain": DOMAIN}
    pipeline_path = root / "catalog.yaml"
    pipeline_path.write_text(yaml.safe_dump(pipeline))
    source = "writes.yaml" if flavour == "postgres" else "writes-mariadb.yaml"
    writes = yaml.safe_load((folder("migration") / source).read_text())
    name = f"{prefix}-writes"
    writes.update(name=name, pipeline=str(pipeline_path), database=catalog.url)
    writes_path = root / "writes.yaml"
    writes_path.write_text(yaml.safe_dump(writes, sort_keys=False))
    service_file = root / "service.yaml"
    service_file.write_text(
        f"pipeline: {pipeline_path}\nwrites: {writes_path}\nfilters: [status]\n"
        "snapshot: {path: image.snapshot, interval_s: 0}\n"
    )
    worker = start_transform_worker(pipeline_path, "w1", capture_stdout=False)
    served: Served | None = None
    try:

        def latest_filled() -> bool:
            from seam.streams.kafka import TopicNotFoundError

            assert worker.poll() is None, worker.communicate()[1].decode()[-3000:]
            try:
                return len(read_to_end(stack.kafka, catalog.latest)) >= 100
            except TopicNotFoundError:
                return False

        wait_for(latest_filled, 180, "the latest topic", step=0.5)
        served = Served(service_file, "--rebuild")
        served.up()
        served.until_ready()
        yield Moved(catalog, flavour, served, writes_path, name, ledger, pipeline_path, root)
    finally:
        if served is not None:
            served.close()
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=60)


def own_records(stack: Settings, moved: Moved) -> list[Record]:
    return [
        r
        for r in read_to_end(stack.kafka, moved.catalog.history)
        if r.headers.get(ORIGIN_HEADER) == moved.name.encode()
    ]


def listed(moved: Moved, count: int, offset: int = 0) -> list[tuple[int, dict[str, Any]]]:
    page = moved.served.get("/product", status="active", limit=count + offset).json()
    pairs = [(int(k), s) for k, s in zip(page["keys"], page["items"], strict=True)]
    return pairs[offset:]


def post(moved: Moved, path: str, body: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else None
    return moved.served.client.post(
        path, content=content, json=None if content is not None else body
    )


def writer(moved: Moved, *options: str, url: str | None = None) -> subprocess.Popen[bytes]:
    extra = ("--database", url) if url else ()
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "seam.cli.main",
            "migrate",
            "writer",
            str(moved.writes),
            *extra,
            *options,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def finish(process: subprocess.Popen[bytes], timeout: float = 180) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out.decode(), err.decode()


def legacy_row(moved: Moved, product: int) -> dict[str, Any]:
    from seam.connectors.engine import connect

    with connect(moved.catalog.url) as conn:
        row = conn.execute(
            text("SELECT prod_name, price_txt, price_cents FROM products WHERE prod_id = :i"),
            {"i": product},
        ).mappings()
        return dict(row.one())


def price_rows(moved: Moved, products: list[int]) -> dict[int, int]:
    from seam.connectors.engine import connect

    with connect(moved.catalog.url) as conn:
        rows = conn.execute(
            text(
                "SELECT prod_id, COUNT(*) FROM product_prices "
                f"WHERE prod_id IN ({', '.join(str(p) for p in products)}) GROUP BY prod_id"
            )
        ).all()
    return {int(p): int(n) for p, n in rows}


def test_a_command_publishes_one_validated_event_with_its_origin(
    stack: Settings, moved: Moved
) -> None:
    from seam.transforms.schemas import CompiledSchemas, SchemaSet

    ((product, before),) = listed(moved, 1)
    seen = len(own_records(stack, moved))
    name = f"Renamed by a command {time.monotonic_ns()}"
    answer = post(moved, f"/product/{product}/name", {"name": name})
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["origin"] == moved.name
    (written,) = body["events"]
    event = written["event"]
    assert event["event_type"] == "ProductRenamed"
    assert event["product_id"] == product
    assert event["data"] == {"old_name": before["name"], "new_name": name}
    assert event["provenance"]["connector"] == "seam-command"
    assert event["provenance"]["server_name"] == moved.name

    records = own_records(stack, moved)
    assert len(records) == seen + 1
    record = records[-1]
    assert (record.topic, record.partition, record.offset) == (
        written["topic"],
        written["partition"],
        written["offset"],
    )
    assert record.json() == event
    assert record.key == str(product).encode()
    assert record.headers["seam.event_type"] == b"ProductRenamed"
    schemas = CompiledSchemas(SchemaSet.load(folder("schemas")))
    assert schemas.errors("ProductRenamed", record.json()) == (event["schema_version"], [])

    # A second command on the same product names the first one's name as the old one,
    # though the image has not seen it yet (no writer runs in this test).
    again = post(moved, f"/product/{product}/name", {"name": name + " again"})
    assert again.status_code == 202, again.text
    assert again.json()["events"][0]["event"]["data"]["old_name"] == name
    # Setting the name it has now changes nothing: 200, no event.
    same = post(moved, f"/product/{product}/name", {"name": name + " again"})
    assert (same.status_code, same.json()["events"]) == (200, []), same.text
    assert len(own_records(stack, moved)) == seen + 2


def test_bad_commands_are_refused_and_publish_nothing(stack: Settings, moved: Moved) -> None:
    ((product, _state),) = listed(moved, 1, offset=1)
    seen = len(own_records(stack, moved))
    cases = [
        ("/product/999999/name", {"name": "Nobody"}, 404, "no product with key 999999"),
        ("/product/abc/name", {"name": "Nobody"}, 400, "product_id"),
        (f"/product/{product}/name", {"nme": "x"}, 400, "nme"),
        (f"/product/{product}/name", {}, 400, "name: missing"),
        (f"/product/{product}/name", {"name": ""}, 400, "name:"),
        (f"/product/{product}/name", {"name": 42}, 400, "name:"),
        (f"/product/{product}/name", b"{not json", 400, "not JSON"),
        (
            f"/product/{product}/price",
            {"price": {"amount": "12,50", "currency": "EUR"}},
            400,
            "price:",
        ),
        (
            f"/product/{product}/price",
            {"price": {"amount": "1.00", "currency": "USD"}},
            400,
            "price:",
        ),
    ]
    for path, body, status, says in cases:
        answer = post(moved, path, body)
        assert answer.status_code == status, (path, body, answer.text)
        assert says in answer.json()["detail"], (path, body, answer.text)
    assert len(own_records(stack, moved)) == seen


def test_the_writer_applies_each_event_once_across_a_kill_9(stack: Settings, moved: Moved) -> None:
    from seam.connectors.engine import connect
    from seam.migration.writer import OFFSETS_TABLE, rejects

    targets = listed(moved, 20, offset=2)
    products = [p for p, _s in targets]
    rows_before = price_rows(moved, products)
    rounds = 5
    last: dict[int, str] = {}
    names: dict[int, str] = {}
    for round_no in range(rounds):
        for product, _state in targets:
            cents = 1000 + product * 10 + round_no
            amount = f"{cents // 100}.{cents % 100:02d}"
            answer = post(
                moved, f"/product/{product}/price", {"price": {"amount": amount, "currency": "EUR"}}
            )
            assert answer.status_code == 202, answer.text
            last[product] = amount
    for product, _state in targets[:4]:
        names[product] = f"Written back {product} {time.monotonic_ns()}"
        assert post(moved, f"/product/{product}/name", {"name": names[product]}).status_code == 202
    own = own_records(stack, moved)
    total = rounds * len(products)

    first = writer(moved, "--batch-size", "1")
    with connect(moved.catalog.url) as conn:
        in_list = ", ".join(str(p) for p in products)
        count = text(f"SELECT COUNT(*) FROM product_prices WHERE prod_id IN ({in_list})")

        def applied() -> int:
            found = int(conn.execute(count).scalar_one())
            conn.commit()
            return found - sum(rows_before.values())

        try:
            wait_for(
                lambda: applied() >= 5 or first.poll() is not None, 120, "events applied", 0.01
            )
            first.send_signal(signal.SIGKILL)
            _out, first_err = first.communicate(timeout=30)
        finally:
            if first.poll() is None:
                first.kill()
        assert first.returncode == -signal.SIGKILL, first_err.decode()
        assert applied() < total, (
            "the writer finished before it was killed: nothing was interrupted"
        )

    # A running writer holds its name: a second one is refused; SIGTERM stops the first.
    running = writer(moved)
    try:
        assert running.stderr is not None
        assert "Ctrl-C stops" in running.stderr.readline().decode()
        code, _out, err = finish(writer(moved, "--until-caught-up"), 60)
        assert code == 1, err
        assert "another writer" in err, err
        running.send_signal(signal.SIGTERM)
        code, _out, err = finish(running, 60)
        assert code == 0, err
    finally:
        if running.poll() is None:
            running.kill()

    code, _out, err = finish(writer(moved, "--until-caught-up", "--output", "json"))
    assert code == 0, err
    # Each reprice inserted exactly one product_prices row, none twice, none lost.
    after = price_rows(moved, products)
    assert {p: after[p] - rows_before.get(p, 0) for p in products} == dict.fromkeys(
        products, rounds
    )
    for product in products:
        row = legacy_row(moved, product)
        assert row["price_txt"] == last[product]
        assert int(row["price_cents"]) == round(float(last[product]) * 100)
    for product, name in names.items():
        assert legacy_row(moved, product)["prod_name"] == name
    with connect(moved.catalog.url) as conn:
        stored = conn.execute(
            text(f"SELECT partition_no, next_offset FROM {OFFSETS_TABLE} WHERE writer = :w"),
            {"w": moved.name},
        ).all()
        assert rejects(conn, moved.name) == []
    last_own = {}
    for record in own:
        last_own[record.partition] = record.offset
    for partition, offset in last_own.items():
        assert dict(stored)[partition] > offset

    # The origin tag is in the raw change Debezium captured of the writer's rename.
    product, name = next(iter(names.items()))

    def raw_change() -> dict[str, Any] | None:
        for record in reversed(read_to_end(stack.kafka, moved.catalog.raw_topic)):
            value = record.json()
            after_row = (value or {}).get("after") or {}
            if after_row.get("prod_id") == product and after_row.get("prod_name") == name:
                return value  # type: ignore[no-any-return]
        return None

    wait_for(lambda: raw_change() is not None, 60, "the raw change of the writer's rename")
    source = (raw_change() or {})["source"]
    if moved.flavour == "mariadb":
        assert str(source["gtid"]).startswith(f"{DOMAIN}-"), source
    else:
        assert moved.ledger is not None
        ledger = {r.json()["tx_id"] for r in read_to_end(stack.kafka, moved.ledger)}
        assert source["txId"] in ledger, (source, sorted(ledger)[-5:])


def test_an_event_whose_legacy_row_is_gone_is_rejected_not_lost(
    stack: Settings, moved: Moved
) -> None:
    from seam.connectors.engine import connect
    from seam.migration.writer import NOT_FOUND, rejects

    ((product, _state),) = listed(moved, 1, offset=20)
    answer = post(moved, f"/product/{product}/name", {"name": "Renamed after delisting"})
    assert answer.status_code == 202, answer.text
    with connect(moved.catalog.url) as conn:  # the legacy app delists it meanwhile
        conn.execute(
            text("UPDATE products SET is_deleted = 'Y' WHERE prod_id = :i"), {"i": product}
        )
        conn.commit()
    code, _out, err = finish(writer(moved, "--until-caught-up"))
    assert code == 0, err
    assert "rejected ProductRenamed" in err, err
    assert "seam_writer_rejects" in err, err
    with connect(moved.catalog.url) as conn:
        found = [r for r in rejects(conn, moved.name) if r["event"]["product_id"] == product]
    assert [(r["event_type"], r["reason"]) for r in found] == [("ProductRenamed", NOT_FOUND)]
    assert found[0]["event"] == answer.json()["events"][0]["event"]
    assert legacy_row(moved, product)["prod_name"] != "Renamed after delisting"


def test_writer_errors_are_one_clear_message(stack: Settings, moved: Moved) -> None:
    from seam.connectors.engine import connect, parse_url

    # A pipeline without own_writes: the writer would loop, so it refuses to start.
    bare = yaml.safe_load(moved.pipeline.read_text())
    bare.pop("own_writes")
    bare_path = moved.root / "bare.yaml"
    bare_path.write_text(yaml.safe_dump(bare))
    writes = yaml.safe_load(moved.writes.read_text())
    writes["pipeline"] = str(bare_path)
    bare_writes = moved.root / "bare-writes.yaml"
    bare_writes.write_text(yaml.safe_dump(writes, sort_keys=False))
    code, _out, err = finish(
        subprocess.Popen(
            [sys.executable, "-m", "seam.cli.main", "migrate", "writer", str(bare_writes)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ),
        60,
    )
    assert code == 1, err
    assert "declares no own_writes" in err, err
    assert "loop" in err, err
    assert "Traceback" not in err

    # Wrong credentials: one line naming the login, the password masked.
    parsed = parse_url(moved.catalog.url)
    wrong = moved.catalog.url.replace(f":{parsed.password}@", ":not-the-password@", 1)
    code, _out, err = finish(writer(moved, "--until-caught-up", url=wrong), 60)
    assert code == 1, err
    assert "login refused" in err, err
    assert "not-the-password" not in err, err
    assert "Traceback" not in err

    # The database unreachable (nothing listens on the port): one line naming it.
    closed = moved.catalog.url.replace(f":{parsed.port}/", ":1/", 1)
    code, _out, err = finish(writer(moved, "--until-caught-up", url=closed), 60)
    assert code == 1, err
    assert "cannot reach the database" in err, err
    assert "Traceback" not in err

    if moved.flavour == "mariadb":
        # A user who may write the tables but not set the session's GTID domain.
        user = f"w{moved.name.split('-')[0][-8:]}"
        database = parsed.database
        with connect(moved.catalog.url, isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY 'pw{user}'"))
            conn.execute(
                text(
                    f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON {database}.* TO '{user}'@'%'"
                )
            )
        try:
            limited = moved.catalog.url.replace(
                f"//{parsed.username}:{parsed.password}@", f"//{user}:pw{user}@", 1
            )
            code, _out, err = finish(writer(moved, "--until-caught-up", url=limited), 60)
            assert code == 1, err
            assert "gtid_domain_id" in err, err
            assert "GRANT" in err, err
            assert "Traceback" not in err
        finally:
            with connect(moved.catalog.url, isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text(f"DROP USER IF EXISTS '{user}'@'%'"))


def test_the_writers_change_comes_back_as_no_second_event(stack: Settings, moved: Moved) -> None:
    ((product, _state),) = listed(moved, 1, offset=30)
    name = f"Once only {time.monotonic_ns()}"
    assert post(moved, f"/product/{product}/name", {"name": name}).status_code == 202
    code, _out, err = finish(writer(moved, "--until-caught-up"))
    assert code == 0, err
    # The transform has handled the writer's change once the latest state shows it.
    wait_for(
        lambda: moved.served.get(f"/product/{product}").json().get("data", {}).get("name") == name,
        120,
        "the latest state of the writer's rename",
    )
    renamed = [
        r
        for r in read_to_end(stack.kafka, moved.catalog.history)
        if (r.json() or {}).get("event_type") == "ProductRenamed"
        and (r.json() or {}).get("data", {}).get("new_name") == name
    ]
    assert [r.headers.get(ORIGIN_HEADER) for r in renamed] == [moved.name.encode()]

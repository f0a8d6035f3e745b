"""The legacy app (`seam legacy app`) against the real databases of the local stack, run as
an operator runs it (its own process), on PostgreSQL and MariaDB:

- every endpoint answers what the database holds, with its warts, and says its position;
- the workload over HTTP records the same operations and leaves the same tables as the
  workload by SQL with the same seed on the same data;
- writes over HTTP produce the Debezium change events their operations record, exactly as
  writes by SQL do (a real connector captures both);
- bad input is a clear 4xx; SIGTERM stops the app without a traceback.

Each test works in databases of its own (created through the superuser URL, dropped after).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from seam.connectors.engine import connect, create_database, drop_database, with_database
from seam.legacy_db.app import legacy_product
from seam.legacy_db.models import COLUMNS
from seam.legacy_db.seed import seed
from seam.legacy_db.workload import KINDS, operation_json, run_workload
from seam.settings import Settings
from tests.catalog_checks import capture, release, wait_for
from tests.conftest import free_port

pytestmark = pytest.mark.integration

PRODUCTS = 400
SEED = 11
TIME_COLUMNS = {"updated_at", "created_at", "valid_from", "valid_to", "last_counted"}
SEAM = (sys.executable, "-m", "seam.cli.main", "legacy")
POSITION = re.compile(r"lsn:[0-9A-F]+/[0-9A-F]+|binlog:[^:]+:\d+")


@pytest.fixture(params=["postgres", "mariadb"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextlib.contextmanager
def fresh_database(stack: Settings, flavour: str, products: int = PRODUCTS) -> Iterator[str]:
    """A database of its own holding a seeded catalog; dropped afterwards."""
    url = with_database(stack.database_url(flavour), f"seam_app_{uuid.uuid4().hex[:8]}")
    create_database(url)
    try:
        seed(url, products=products, seed=SEED)
        yield url
    finally:
        drop_database(url)


def start_app(url: str, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "seam.cli.main", "legacy", "app", "-d", url, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@contextlib.contextmanager
def running_app(url: str) -> Iterator[str]:
    """`seam legacy app` over `url` in its own process; yields its URL; SIGTERM at the end."""
    port = free_port()
    proc = start_app(url, port)
    app_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"seam legacy app exited {proc.returncode}: {proc.communicate()[1]}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{app_url}/products/new", timeout=5).ok:
                    break
            if time.monotonic() > deadline:
                pytest.fail("seam legacy app did not answer within 30 s")
            time.sleep(0.1)
        yield app_url
    finally:
        if proc.poll() is None:
            stop(proc)


def stop(proc: subprocess.Popen[str]) -> str:
    """SIGTERM: the app must end within 15 s, exit 0 and print no traceback; its stderr."""
    proc.send_signal(signal.SIGTERM)
    try:
        _, stderr = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("seam legacy app did not stop on SIGTERM within 15 s")
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    return stderr


def rows(url: str, sql: str, **params: Any) -> list[dict[str, Any]]:
    from sqlalchemy import text

    with connect(url) as conn:
        return [dict(r) for r in conn.execute(text(sql), params).mappings()]


def position_key(position: str) -> tuple[Any, ...]:
    """A position as something ordered: (hi, lo) of an LSN, (file, offset) of a binlog."""
    assert POSITION.fullmatch(position), position
    kind, _, rest = position.partition(":")
    if kind == "lsn":
        hi, lo = rest.split("/")
        return (int(hi, 16), int(lo, 16))
    file, offset = rest.rsplit(":", 1)
    return (file, int(offset))


def log_position_now(url: str) -> tuple[Any, ...]:
    from seam.connectors.engine import log_position

    with connect(url) as conn:
        return position_key(log_position(conn))


# --- every endpoint ---------------------------------------------------------------------


def test_every_endpoint_on_the_real_database(stack: Settings, flavour: str) -> None:
    with fresh_database(stack, flavour) as url, running_app(url) as app:
        http = requests.Session()

        def call(method: str, path: str, body: Any = None) -> tuple[Any, tuple[Any, ...]]:
            response = http.request(method, app + path, json=body, timeout=30)
            assert response.status_code == 200, (path, response.text)
            assert response.headers["content-type"] == "application/json"
            return response.json(), position_key(response.headers["Seam-Legacy-Position"])

        def stored(prod_id: int) -> dict[str, Any] | None:
            found = rows(url, "SELECT * FROM products WHERE prod_id = :p", p=prod_id)
            return legacy_product(found[0]) if found else None

        # the form: the next number is MAX+1
        form, _ = call("GET", "/products/new")
        assert form["prod_id"] == PRODUCTS + 1
        assert form["categories"] > 0
        assert form["suppliers"] > 0

        # one product, as stored (A1, A2, A3)
        product, _ = call("GET", "/products/1")
        assert product == stored(1)
        never = rows(url, "SELECT MIN(prod_id) AS p FROM products WHERE updated_at IS NULL")
        product, _ = call("GET", f"/products/{never[0]['p']}")
        assert product["updated_at"] == "0000-00-00 00:00:00"
        assert re.fullmatch(r"\d\d\.\d\d\.\d{4} \d\d:\d\d:\d\d", product["created_at"])
        # A4: not there is a 200 with an error body
        missing, _ = call("GET", "/products/999999")
        assert missing == {"error": "Product 999999 not found"}

        # pages of live products in number order (A6)
        live = [
            r["prod_id"]
            for r in rows(
                url,
                "SELECT prod_id FROM products WHERE is_deleted IS NULL OR is_deleted <> 'Y' "
                "ORDER BY prod_id",
            )
        ]
        first, _ = call("GET", "/products?per_page=7")
        second, _ = call("GET", "/products?page=2&per_page=7")
        assert [p["prod_id"] for p in first["products"] + second["products"]] == live[:14]
        assert (first["page"], first["per_page"], first["total"]) == (1, 7, str(len(live)))
        assert first["products"][0] == stored(live[0])
        beyond, _ = call("GET", "/products?page=1000")
        assert beyond["products"] == []

        # search: case-sensitive substring on both databases, soft-deleted ones too (A8)
        names = rows(url, "SELECT prod_id, prod_name FROM products ORDER BY prod_id")
        for q in ("Mug", "mug", "ea", "Tea"):
            found, _ = call("GET", f"/products/search?q={q}")
            expected = [r["prod_id"] for r in names if q in r["prod_name"]][:50]
            assert expected or q == "mug", q
            assert [p["prod_id"] for p in found["products"]] == expected, q
            assert found["count"] == len(expected)
        wildcard, _ = call("GET", "/products/search?q=M_g")
        assert any("Mug" in p["prod_name"] for p in wildcard["products"])

        # writes: each answers the product as stored after it, and a position past its commit
        before = log_position_now(url)
        created, at_create = call(
            "POST",
            "/products",
            {"sku": " zz-0000401", "prod_name": "Grüner Tee ", "price": "EUR 3,50", "tag": "Bio"},
        )
        assert created == stored(PRODUCTS + 1)
        assert created["prod_id"] == PRODUCTS + 1
        assert (created["sku"], created["prod_name"]) == (" zz-0000401", "Grüner Tee ")
        assert (created["price_txt"], created["price_cents"]) == ("EUR 3,50", 350)
        assert at_create > before
        assert at_create <= log_position_now(url)
        stock = rows(url, "SELECT * FROM stock_levels WHERE prod_id = :p", p=PRODUCTS + 1)
        assert [(s["warehouse_cd"], s["qty_on_hand"]) for s in stock] == [("BER", 0)]

        renamed, at_rename = call("POST", "/products/3/rename", {"prod_name": "Fresh Tea  "})
        assert renamed == stored(3)
        assert renamed["prod_name"] == "Fresh Tea  "  # trailing spaces kept (A2)
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", renamed["updated_at"])
        assert at_rename > at_create

        repriced, at_price = call("POST", "/products/3/price", {"price": "7,90 €"})
        assert (repriced["price_txt"], repriced["price_cents"]) == ("7,90 €", 790)
        open_prices = rows(
            url, "SELECT amount FROM product_prices WHERE prod_id = 3 AND valid_to IS NULL"
        )
        assert [r["amount"] for r in open_prices] == [Decimal("7.90")]
        assert at_price > at_rename

        moved, _ = call("POST", "/products/3/category", {"cat_id": 2})
        assert moved["cat_id"] == 2 == stored(3)["cat_id"]  # type: ignore[index]
        stopped, _ = call("POST", "/products/3/discontinue", {})
        assert stopped["status_cd"] == "D" == stored(3)["status_cd"]  # type: ignore[index]

        delisted, _ = call("POST", "/products/3/delist")
        assert delisted["is_deleted"] == "Y" == stored(3)["is_deleted"]  # type: ignore[index]
        still, _ = call("GET", "/products/3")  # A4: GET still shows a soft-deleted product
        assert still["is_deleted"] == "Y"
        listed, _ = call("GET", "/products?per_page=5")
        assert 3 not in [p["prod_id"] for p in listed["products"]]
        again = http.post(f"{app}/products/3/rename", json={"prod_name": "x"}, timeout=30)
        assert again.status_code == 404
        assert "no live product 3" in again.text

        gone, at_delete = call("DELETE", "/products/4")
        assert gone == {"deleted": 1, "prod_id": 4}
        assert stored(4) is None
        for table in ("product_prices", "stock_levels", "product_tags"):
            assert rows(url, f"SELECT * FROM {table} WHERE prod_id = 4") == [], table
        assert at_delete > at_price
        # a read says the position after its transaction: at or past every commit before it
        _, at_read = call("GET", "/products/4")
        assert at_read >= at_delete


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "text"),
    [
        ("GET", "/products/x1", None, 400, "product number"),
        ("GET", "/products?per_page=500", None, 400, "per_page: expected a number 1..100"),
        ("POST", "/products", {"sku": "A", "prod_name": "B", "price": "1,234"}, 400, "ambiguous"),
        ("POST", "/products", {"sku": "A" * 40, "prod_name": "B", "price": "1"}, 400, "sku"),
        ("POST", "/products/2/price", {"price": "12.50", "price_cents": 1}, 400, "disagree"),
        ("POST", "/products/2/category", {"cat_id": "three"}, 400, "cat_id"),
        ("POST", "/products/999999/rename", {"prod_name": "x"}, 404, "no live product 999999"),
        ("DELETE", "/products/999999", None, 404, "no live product 999999"),
    ],
)
def test_bad_input_is_a_clear_4xx_and_changes_nothing(
    stack: Settings, method: str, path: str, body: Any, status: int, text: str
) -> None:
    with fresh_database(stack, "postgres", 20) as url, running_app(url) as app:
        before = rows(url, "SELECT * FROM products ORDER BY prod_id")
        response = requests.request(method, app + path, json=body, timeout=30)
        assert response.status_code == status
        assert response.headers["content-type"].startswith("text/html")
        assert text in response.text
        assert rows(url, "SELECT * FROM products ORDER BY prod_id") == before


def test_concurrent_creates_each_get_their_own_key(stack: Settings) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with fresh_database(stack, "postgres", 20) as url, running_app(url) as app:

        def create(i: int) -> tuple[int, str]:
            body = {"sku": f"CC-{i:07d}", "prod_name": f"Parallel {i}", "price": "1.00"}
            response = requests.post(f"{app}/products", json=body, timeout=30)
            return response.status_code, response.text

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(create, range(24)))
        assert [status for status, _ in answers] == [200] * 24, answers
        keys = sorted(json.loads(text)["prod_id"] for _, text in answers)
        assert keys == list(range(21, 45))


# --- the workload over HTTP -------------------------------------------------------------


def comparable(op: dict[str, Any]) -> tuple[Any, ...]:
    """An operation as JSON without the clock: what SQL and HTTP must both record."""

    def strip(changes: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in changes.items() if k not in TIME_COLUMNS}

    return (
        op["op"],
        op["table"],
        op["key"],
        json.dumps(strip(op["changes"]), sort_keys=True, default=str),
        [
            (s["table"], s["action"], s["key"], json.dumps(strip(s["changes"]), sort_keys=True))
            for s in op["side_effects"]
        ],
    )


def table_state(url: str) -> dict[str, list[tuple[Any, ...]]]:
    from sqlalchemy import text

    state = {}
    with connect(url) as conn:
        for table, columns in COLUMNS.items():
            kept = [c for c in columns if c not in TIME_COLUMNS]
            found = conn.execute(text(f"SELECT {', '.join(kept)} FROM {table}")).all()
            state[table] = sorted((tuple(r) for r in found), key=repr)
    return state


def test_the_workload_over_http_writes_what_it_writes_by_sql(stack: Settings, flavour: str) -> None:
    with fresh_database(stack, flavour) as by_sql, fresh_database(stack, flavour) as by_http:
        sql = run_workload(by_sql, rate=0, count=150, seed=5)
        with running_app(by_http) as app:
            http = run_workload(app, rate=0, count=150, seed=5, via="http")
        assert http.via == "http"
        assert http.total == 150
        assert all(http.counts[k] > 0 for k in KINDS), http.counts
        assert http.counts == sql.counts
        as_json = [[json.loads(operation_json(o)) for o in r.operations] for r in (sql, http)]
        assert [comparable(o) for o in as_json[1]] == [comparable(o) for o in as_json[0]]
        assert table_state(by_http) == table_state(by_sql)


def test_the_cli_drives_the_workload_over_http(stack: Settings, tmp_path: Path) -> None:
    with fresh_database(stack, "mariadb", 50) as url, running_app(url) as app:
        log = tmp_path / "ops.jsonl"
        done = subprocess.run(
            [
                *SEAM,
                *("workload", "--via", "http", "--app-url", app, "--rate", "0"),
                *("--count", "12", "--report", str(log), "--output", "json"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert (summary["via"], summary["total"], summary["database"]) == ("http", 12, app)
        assert len(log.read_text().splitlines()) == 12
    nobody = f"http://127.0.0.1:{free_port()}"
    refused = subprocess.run(
        [*SEAM, "workload", "--via", "http", "--count", "1", "--app-url", nobody],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    assert "cannot reach the legacy app" in refused.stderr


# --- the change events ------------------------------------------------------------------

CAPTURED = ("products", "product_prices", "stock_levels")
# The columns compared per table: what a write chose (times are the clock's).
COMPARED = {
    "products": [c for c in COLUMNS["products"] if c not in TIME_COLUMNS],
    "product_prices": ["price_id", "prod_id", "amount", "currency"],
    "stock_levels": ["prod_id", "warehouse_cd", "qty_on_hand"],
}
_OP = {"insert": "c", "update": "u", "delete": "d"}


def _plain(table: str, column: str, value: Any) -> Any:
    if column == "amount" and value is not None:
        return Decimal(str(value))  # '7.9' (the record) and '7.90' (Debezium) are one amount
    return value


def expected_events(ops: list[dict[str, Any]]) -> dict[str, list[tuple[Any, ...]]]:
    """(op, key, compared after-values) per captured table, in commit order, as the
    operations recorded them."""
    events: dict[str, list[tuple[Any, ...]]] = {t: [] for t in CAPTURED}

    def add(table: str, action: str, key: dict[str, Any], changes: dict[str, Any]) -> None:
        if table not in events:
            return
        after = {c: _plain(table, c, v["new"]) for c, v in changes.items() if c in COMPARED[table]}
        events[table].append((_OP[action], key, None if action == "delete" else after))

    for op in ops:
        main = {"insert": "insert", "hard_delete": "delete"}.get(op["op"], "update")
        add(op["table"], main, op["key"], op["changes"])
        for s in op["side_effects"]:
            add(s["table"], s["action"], s["key"], s["changes"])
    return events


def stream_events(records: list[tuple[Any, Any]], table: str) -> list[tuple[Any, ...]]:
    """The change events of a topic (no snapshot reads, no tombstones) as (op, key, the
    compared columns of the row after)."""
    out = []
    for key, value in records:
        if value is None or value["op"] == "r":
            continue
        op = value["op"]
        if op == "d":
            out.append((op, key, None))
            continue
        after = {c: _plain(table, c, value["after"][c]) for c in COMPARED[table]}
        out.append((op, key, after))
    return out


@pytest.fixture
def captured(stack: Settings, flavour: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A seeded catalog of its own captured by a connector of its own; yields (url, prefix)."""
    suffix = uuid.uuid4().hex[:8]
    name, prefix, connector = f"seam_app_{suffix}", f"app{suffix}", f"seam-app-{suffix}"
    url = with_database(stack.database_url(flavour), name)
    create_database(url)
    try:
        seed(url, products=PRODUCTS, seed=SEED)
        capture(
            stack,
            flavour,
            url,
            user=name,
            connector=connector,
            prefix=prefix,
            tables=CAPTURED,
            secret_dir=tmp_path,
            publication=f"pub_{suffix}",
        )
        yield url, prefix
    finally:
        release(stack, flavour, url, user=name, connector=connector, prefix=prefix)


def read_topic(stack: Settings, topic: str) -> list[tuple[Any, Any]]:
    """Every record of a one-partition topic, as (key, value) JSON (None: a tombstone)."""
    from confluent_kafka import Consumer, TopicPartition

    from seam.kafka_config import client_config

    consumer = Consumer(
        client_config(
            stack.kafka_bootstrap_servers,
            {"group.id": f"seam-app-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False},
        )
    )
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, 0)])
        out: list[tuple[Any, Any]] = []
        deadline = time.monotonic() + 30
        while len(out) < high and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            value = msg.value()
            out.append((json.loads(msg.key()), json.loads(value) if value else None))
        return out
    finally:
        consumer.close()


def test_http_writes_produce_the_change_events_their_operations_record_as_sql_writes_do(
    stack: Settings, flavour: str, captured: tuple[str, str]
) -> None:
    url, prefix = captured
    namespace = "public" if flavour == "postgres" else url.rsplit("/", 1)[1]
    by_sql = run_workload(url, rate=0, count=50, seed=3)
    with running_app(url) as app:
        by_http = run_workload(app, rate=0, count=50, seed=4, via="http")
    assert all(by_http.counts[k] > 0 for k in KINDS), by_http.counts
    halves = [[json.loads(operation_json(o)) for o in r.operations] for r in (by_sql, by_http)]
    expected = expected_events(halves[0] + halves[1])

    def topic(table: str) -> str:
        return f"{prefix}.{namespace}.{table}"

    def arrived() -> bool:
        return all(
            len(stream_events(read_topic(stack, topic(t)), t)) >= len(expected[t]) for t in CAPTURED
        )

    wait_for(arrived, 120, "the workload's change events", step=2)
    for table in CAPTURED:
        events = stream_events(read_topic(stack, topic(table)), table)
        assert len(events) == len(expected[table]), table
        for got, want in zip(events, expected[table], strict=True):
            op, key, after = got
            assert (op, key) == want[:2], (table, got, want)
            if want[2] is not None:
                # An update records the columns it changed; the event has the whole row.
                assert {c: after[c] for c in want[2]} == want[2], (table, got, want)


# --- the process ------------------------------------------------------------------------


def test_the_app_stops_on_sigterm_and_refuses_what_it_cannot_serve(stack: Settings) -> None:
    with fresh_database(stack, "postgres", 20) as url:
        port = free_port()
        proc = start_app(url, port)
        wait_for(lambda: _answers(port), 30, "the legacy app", step=0.1)
        # a second app on the same port: one clear line
        busy = subprocess.run(
            [*SEAM, "app", "-d", url, "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        stderr = stop(proc)
        assert f"on http://127.0.0.1:{port}" in stderr
        assert "seam-local" not in stderr  # the password of the URL
        assert busy.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port}" in busy.stderr
        assert "Traceback" not in busy.stderr
    with contextlib.ExitStack() as cleanup:
        empty = with_database(stack.database_url("mariadb"), f"seam_app_{uuid.uuid4().hex[:8]}")
        create_database(empty)
        cleanup.callback(drop_database, empty)
        done = subprocess.run(
            [*SEAM, "app", "-d", empty, "--port", str(free_port())],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 1
        assert "has no products table" in done.stderr
        assert "seam legacy seed" in done.stderr
        assert "Traceback" not in done.stderr


def _answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/products/1", timeout=5).ok
    except requests.RequestException:
        return False

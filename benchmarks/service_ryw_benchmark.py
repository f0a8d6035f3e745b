"""Read your writes across CDC: a legacy commit -> visible in `seam serve`, per leg.

    .venv/bin/python benchmarks/service_ryw_benchmark.py                   # 200 commits/s, 20 s
    .venv/bin/python benchmarks/service_ryw_benchmark.py --database mariadb --rate 100

Sets up what latency_benchmark.py sets up (a fresh legacy database seeded with --products,
the example connector under a unique name, a transform worker on the run's topics) and
`seam serve` on the run's latest topic. Then, at --rate commits/s, one thread renames a
listed product per transaction (UPDATE + COMMIT, as the legacy app writes) and reads the log
position after the commit (`pg_current_wal_lsn()`, or `SHOW MASTER STATUS`), in a process
of its own; each commit's `GET /product/<id>?after=<position>` is sent at once, from a
pool of threads with keep-alive connections, and must answer with the new name (the client's own delay is printed:
position read -> GET sent). Per commit (ms):

  commit -> raw record      COMMIT returned -> the raw change record received (Debezium's leg)
  raw -> domain event       -> its ProductRenamed received, read_committed (the transform's)
  event -> visible          -> the service's answer received (marks read, image applied)
  commit -> visible         the total: what a user who writes then reads waits

The position counts as passed once a later commit of that database has gone through (see
seam.services.position): at --rate commits/s the next one follows within 1/rate s.
Everything it started is stopped at the end (service, worker, connector, topics, database).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import multiprocessing
import os
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import orjson
from cdc_bench import (
    LegacyDatabase,
    Run,
    connect_database,
    end_offsets,
    maybe_private_stack,
    stop_process,
    summary,
    wait_for,
)
from latency_benchmark import NAME_PREFIX, Reader, committed, listed_products


@dataclass
class Visible:
    committed_at: float
    positioned_at: float | None = None  # when the log position after the commit was read
    started_at: float | None = None  # when a pool thread began the request
    answered_at: float | None = None
    ok: bool = False
    status: int = 0


@dataclass
class Results:
    visible: dict[str, Visible] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    health_ms: list[float] = field(default_factory=list)


def position_after_commit(cur: Any, flavour: str) -> str:
    if flavour == "postgres":
        cur.execute("SELECT pg_current_wal_lsn()::text")
        return f"lsn:{cur.fetchone()[0]}"
    cur.execute("SHOW MASTER STATUS")
    row = cur.fetchone()
    return f"binlog:{row[0]}:{row[1]}"


def commit_loop(
    flavour: str,
    url: str,
    run_id: str,
    ids: list[int],
    rate: float,
    seconds: float,
    out: Any,
) -> None:
    """In a process of its own: rename at `rate`/s for `seconds`, putting (name, product,
    position, committed_at, positioned_at) on `out` per commit, then None. Apart from the
    requests: a pure-Python driver (pymysql) holding the GIL beside the client made the
    client queue requests for seconds (measured: 3.2 s p50 from the position read to the
    GET sent), which the first MariaDB figures took for the service's latency."""
    conn = connect_database(flavour, url)
    cur = conn.cursor()
    count = int(rate * seconds)
    began = time.monotonic()
    for i in range(count):
        due = began + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        name = f"{NAME_PREFIX} {run_id} {i}"
        product = ids[i % len(ids)]
        cur.execute("UPDATE products SET prod_name = %s WHERE prod_id = %s", (name, product))
        conn.commit()
        committed_at = time.time()
        position = position_after_commit(cur, flavour)
        positioned_at = time.time()
        conn.commit()  # the position query's own transaction (MariaDB: repeatable read)
        out.put((name, product, position, committed_at, positioned_at))
    out.put(None)
    conn.close()


def drive(run: Run, ids: list[int], rate: float, seconds: float, url: str) -> Results:
    """Rename at `rate`/s for `seconds` (in another process); each commit's read-your-writes
    GET at once, from a pool of threads, each with a keep-alive connection of its own
    (http.client: the lightest client; httpx's costs made the client the bottleneck)."""
    results = Results()
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    writer = context.Process(
        target=commit_loop,
        args=(run.flavour, run.db.url, run.id, ids, rate, seconds, queue),
        daemon=True,
    )
    parts = urlsplit(url)
    local = threading.local()

    def get(path: str) -> tuple[int, bytes]:
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = http.client.HTTPConnection(
                parts.hostname, parts.port, timeout=60
            )
        try:
            connection.request("GET", path)
            answer = connection.getresponse()
            return answer.status, answer.read()
        except (OSError, http.client.HTTPException):
            connection.close()
            local.connection = None
            raise

    def read(name: str, product: int, position: str) -> None:
        seen = results.visible[name]
        seen.started_at = time.time()
        query = urlencode({"after": position, "wait_ms": 30_000})
        status, body = get(f"/product/{product}?{query}")
        seen.answered_at = time.time()
        seen.status = status
        seen.ok = status == 200 and orjson.loads(body)["data"]["name"] == name

    def probe() -> None:  # the service's own responsiveness: /health, every 50 ms
        while not probing.is_set():
            sent = time.monotonic()
            get("/health")
            results.health_ms.append((time.monotonic() - sent) * 1000)
            probing.wait(0.05)

    probing = threading.Event()
    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=128)
    writer.start()
    futures = []
    while (item := queue.get()) is not None:
        name, product, position, committed_at, positioned_at = item
        results.visible[name] = Visible(committed_at, positioned_at)
        futures.append(pool.submit(read, name, product, position))
    concurrent.futures.wait(futures, timeout=120)
    probing.set()
    prober.join(10)
    pool.shutdown(wait=False, cancel_futures=True)
    writer.join(30)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=200.0, help="legacy commits per second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds driven")
    parser.add_argument("--database", choices=("postgres", "mariadb"), default="postgres")
    parser.add_argument("--products", type=int, default=10_000, help="products seeded")
    parser.add_argument("--private-stack", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the database and topics")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]

    with (
        maybe_private_stack(args.private_stack),
        LegacyDatabase(args.database, label="ryw", keep=args.keep) as db,
        Run(db, keep=args.keep) as run,
    ):
        db.seed(args.products)
        spec = run.write_spec({})
        pipeline, data = run.write_pipeline()
        run.apply(spec)
        raw_topic = run.topics.raw("products")
        bootstrap = run.bootstrap
        products = db.count("products")
        wait_for(
            "the snapshot of products",
            lambda: sum(end_offsets(bootstrap, raw_topic).values()) >= products,
            600,
            every=0.5,
        )
        worker = run.start_worker(pipeline)
        wait_for(
            "the worker to catch up",
            lambda: committed(bootstrap, data["group"], raw_topic) >= products,
            600,
            every=0.5,
        )
        latest = data["outputs"]["latest"]["topic"]
        ids = listed_products(bootstrap, latest)
        random.Random(1).shuffle(ids)
        service_file = run.dir / "service.yaml"
        service_file.write_text(
            f"pipeline: {pipeline}\nindexes: [sku]\nsnapshot: {{path: image.snapshot}}\n"
        )
        port = 19780 + random.randrange(500)
        log = (run.dir / "serve.log").open("wb")
        run.callback(log.close)
        service = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "seam.cli.main",
                "serve",
                str(service_file),
                "--port",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        run.callback(stop_process, service)
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            if service.poll() is not None:
                raise SystemExit((run.dir / "serve.log").read_text())
            try:
                return httpx.get(f"{url}/ready", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_for("the service to be ready", ready, 120, every=0.2)
        reader = Reader(bootstrap, raw_topic, data["outputs"]["history"]["topic"])
        reader.start()
        run.callback(reader.stop)
        time.sleep(1.0)
        print(
            f"{args.database}: {len(ids):,} listed products; {args.rate:g} commits/s for "
            f"{args.duration:g} s, each read back with ?after=<its position>"
        )
        results = drive(run, ids, args.rate, args.duration, url)
        time.sleep(2.0)  # the reader's last records
        if worker.poll() is not None:
            raise SystemExit(f"the worker exited:\n{run.worker_log()}")

        legs: dict[str, list[float]] = {"debezium": [], "worker": [], "service": [], "total": []}
        failed = 0
        for name, seen in results.visible.items():
            if not seen.ok or seen.answered_at is None:
                failed += 1
                continue
            legs["total"].append((seen.answered_at - seen.committed_at) * 1000)
            topics = reader.seen.get(name)
            if topics is None or topics.raw_at is None or topics.event_at is None:
                continue
            legs["debezium"].append((topics.raw_at - seen.committed_at) * 1000)
            legs["worker"].append((topics.event_at - topics.raw_at) * 1000)
            legs["service"].append((seen.answered_at - topics.event_at) * 1000)
        print(f"{len(results.visible)} commits, {failed} not visible with their name in time")
        for label, key in (
            ("commit -> raw record", "debezium"),
            ("raw -> domain event", "worker"),
            ("event -> visible", "service"),
            ("commit -> visible", "total"),
        ):
            if legs[key]:
                s = summary(legs[key])
                print(
                    f"  {label:22} p50 {s['p50']:7.1f} ms  p99 {s['p99']:7.1f} ms  "
                    f"max {s['max']:7.1f} ms  (n={len(legs[key])})"
                )
        for label, pairs in (
            (
                "commit -> position read",
                [(v.committed_at, v.positioned_at) for v in results.visible.values()],
            ),
            (
                "position -> GET sent",
                [(v.positioned_at, v.started_at) for v in results.visible.values()],
            ),
        ):
            spans = [(b - a) * 1000 for a, b in pairs if a is not None and b is not None]
            if spans:
                s = summary(spans)
                print(
                    f"  {label:22} p50 {s['p50']:7.1f} ms  p99 {s['p99']:7.1f} ms  "
                    f"max {s['max']:7.1f} ms  (the client's side)"
                )
        if results.health_ms:
            s = summary(results.health_ms)
            print(
                f"  {'GET /health meanwhile':22} p50 {s['p50']:7.1f} ms  p99 {s['p99']:7.1f} ms  "
                f"max {s['max']:7.1f} ms  (n={len(results.health_ms)})"
            )
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        steps = [
            line
            for line in metrics.splitlines()
            if line.startswith(("seam_service_wait", "seam_service_marks"))
        ]
        print("  seconds the requests spent waiting, summed by step:")
        for line in steps:
            print(f"    {line}")
        stop_process(service)
        slow = [
            line
            for line in (run.dir / "serve.log").read_text().splitlines()
            if "WARNING" in line or "passed" in line
        ]
        print(f"  service log: {len(slow)} slow-wait or warning lines")
        for line in slow[:20]:
            print(f"    {line}")
    print(f"command: {' '.join(sys.argv)}")


if __name__ == "__main__":
    main()

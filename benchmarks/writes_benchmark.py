"""Writes moved to the new side: command latency (to 202) and the seam writer's throughput.

    .venv/bin/python benchmarks/writes_benchmark.py                       # PostgreSQL
    .venv/bin/python benchmarks/writes_benchmark.py --database mariadb --commands 2000

Sets up a fresh legacy database seeded with --products (the catalog), its states cleaned by
the pipeline's own stages (the parity check's legacy side) and produced to a latest topic of
the run's own, and `seam serve` on it with the catalog's writes file (legacy_db/migration/)
on history and ledger topics of the run's own. No connector or transform runs: the command
path (image -> derived events -> validated -> one Kafka transaction) and the writer (history
-> legacy SQL + offsets in one transaction, the origin tag) are measured alone.

  command latency     POST /product/<id>/price (a reprice: one ProductPriceChanged) sent one
                      at a time over a keep-alive connection, request sent -> 202 received
  writer throughput   `seam migrate writer` (in process) from the first event to the last,
                      events applied per second, at --batch-size events per transaction and
                      at 1 per transaction (each with its ledger entry acknowledged on
                      PostgreSQL)

Everything it started is stopped at the end (service, topics, database).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", default="postgres", help="settings name: postgres|mariadb")
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--commands", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()

    import httpx
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from seam.connectors.engine import create_database, drop_database, with_database
    from seam.legacy_db.files import folder, pipeline_document
    from seam.legacy_db.seed import seed
    from seam.migration.parity_legacy import LegacySide
    from seam.migration.writer import Writer
    from seam.migration.writes import load_writes
    from seam.settings import load_settings
    from seam.transforms.pipeline_file import load_pipeline
    from tests.conftest import free_port

    settings = load_settings()
    flavour = "postgres" if args.database.startswith("postgres") else "mariadb"
    suffix = uuid.uuid4().hex[:8]
    name = f"seam_wbench_{suffix}"
    url = with_database(settings.database_url(args.database), name)
    prefix = f"wb{suffix}"
    topics = {k: f"{prefix}.{k}" for k in ("history", "latest", "dead-letter", "own-writes")}
    admin = AdminClient(settings.kafka.client_config({}))
    service: subprocess.Popen[bytes] | None = None
    create_database(url)
    try:
        with TemporaryDirectory() as tmp:
            root = Path(tmp)
            began = time.monotonic()
            seed(url, products=args.products, seed=3)
            print(
                f"seeded {args.products} products into {flavour} in {time.monotonic() - began:.1f}s"
            )
            doc = pipeline_document("catalog" if flavour == "postgres" else "catalog-mariadb")
            namespace = "public" if flavour == "postgres" else name
            doc["inputs"] = [f"{prefix}.{namespace}.products"]
            doc["group"] = f"{prefix}-transform"
            for key, out in (
                ("history", "history"),
                ("latest", "latest"),
                ("dead_letter", "dead-letter"),
            ):
                doc["outputs"][key]["topic"] = topics[out]
            doc["own_writes"] = (
                {"ledger": topics["own-writes"]} if flavour == "postgres" else {"gtid_domain": 77}
            )
            pipeline_path = root / "pipeline.yaml"
            pipeline_path.write_text(yaml.safe_dump(doc))
            for future in admin.create_topics(
                [
                    NewTopic(topics["history"], 3, -1),
                    NewTopic(topics["latest"], 3, -1, config={"cleanup.policy": "compact"}),
                ]
            ).values():
                future.result(timeout=30)
            cut = LegacySide(load_pipeline(pipeline_path), url).read()
            producer = Producer(settings.kafka.client_config({"linger.ms": 20}))
            for key, value in cut.states.items():
                producer.produce(topics["latest"], value, key.encode())
            producer.flush(60)
            print(f"latest topic: {len(cut.states)} states")

            source = "writes.yaml" if flavour == "postgres" else "writes-mariadb.yaml"
            writes = yaml.safe_load((folder("migration") / source).read_text())
            writes.update(name=f"{prefix}-writes", pipeline=str(pipeline_path), database=url)
            writes_path = root / "writes.yaml"
            writes_path.write_text(yaml.safe_dump(writes, sort_keys=False))
            service_file = root / "service.yaml"
            service_file.write_text(
                f"pipeline: {pipeline_path}\nwrites: {writes_path}\n"
                "snapshot: {path: image.snapshot, interval_s: 0}\n"
            )
            port = free_port()
            service = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "seam.cli.main",
                    "serve",
                    str(service_file),
                    "--port",
                    str(port),
                    "--rebuild",
                ],
                stdout=subprocess.DEVNULL,
                stderr=(root / "serve.log").open("wb"),
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
            deadline = time.monotonic() + 120
            while True:
                try:
                    if client.get("/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or service.poll() is not None:
                    raise SystemExit(
                        "the service did not get ready: " + (root / "serve.log").read_text()[-2000:]
                    )
                time.sleep(0.1)

            keys = sorted(int(k) for k in cut.states)
            latencies: list[float] = []
            statuses: dict[int, int] = {}
            for i in range(args.commands):
                product = keys[i % len(keys)]
                cents = 100 + i
                body = {"price": {"amount": f"{cents // 100}.{cents % 100:02d}", "currency": "EUR"}}
                sent = time.perf_counter()
                answer = client.post(f"/product/{product}/price", json=body)
                latencies.append((time.perf_counter() - sent) * 1000)
                statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            ms = latencies[len(latencies) // 10 :]  # the first tenth warms up
            print(
                f"command latency (reprice -> 202, {len(ms)} of {len(latencies)} measured): "
                f"p50 {statistics.median(ms):.2f} ms, p99 {percentile(ms, 0.99):.2f} ms, "
                f"max {max(ms):.2f} ms; statuses {statuses}"
            )

            spec = load_writes(writes_path)
            first = Writer(spec, settings.kafka, url, batch_size=args.batch_size)
            report = first.run(threading.Event(), until_caught_up=True)
            rate = report.applied / report.applying_s if report.applying_s else 0.0
            print(
                f"writer, {args.batch_size} events a transaction: {report.applied} applied in "
                f"{report.applying_s:.2f}s ({rate:.0f}/s; the run {report.seconds:.2f}s), "
                f"{report.transactions} transactions, {report.rejected} rejected"
            )
            # Again from the start (its offsets deleted), one event a transaction.
            single = Writer(spec, settings.kafka, url, batch_size=1)
            from sqlalchemy import text

            from seam.connectors.engine import connect

            with connect(url) as conn:
                conn.execute(text("DELETE FROM seam_writer_offsets"))
                conn.commit()
            report = single.run(threading.Event(), until_caught_up=True)
            rate = report.applied / report.applying_s if report.applying_s else 0.0
            print(
                f"writer, 1 event a transaction: {report.applied} applied in "
                f"{report.applying_s:.2f}s ({rate:.0f}/s; the run {report.seconds:.2f}s)"
            )
    finally:
        if service is not None:
            service.terminate()
            service.wait(30)
        for future in admin.delete_topics(list(topics.values())).values():
            with contextlib.suppress(Exception):  # a topic never made
                future.result(timeout=30)
        drop_database(url)


if __name__ == "__main__":
    main()

"""The memory-image service (`seam serve`) on N catalog products: how fast it is ready, how
much memory it holds, how fast it answers while the topic changes.

    .venv/bin/python benchmarks/service_benchmark.py --products 1000000
    .venv/bin/python benchmarks/service_benchmark.py --products 100000 --rate 1000 --duration 20
    .venv/bin/python benchmarks/service_benchmark.py --products 1000000 --cpu 0   # pin to core 0

On the stack of the settings (SEAM_CONFIG), it fills a latest topic of its own (3 partitions,
compacted) with N product states of the catalog's shape (ProductState: sku, name, status,
price, category, supplier, ean, description, times; built from the legacy generator's
values, the clean forms the transform publishes), written in transactions as the transform
writes them, then measures:

  cold ready       `seam serve --rebuild` spawned -> /ready answers 200 (the topic from offset 0)
  snapshot ready   after a SIGTERM (which writes the snapshot) `seam serve` spawned -> /ready 200
  RSS              the service's resident memory once ready (VmRSS), after each start
  GET by key       p50/p99/max latency of GET /product/<random key> sent at --rate requests/s
                   (open loop: each request is due at its time; lateness counts) for
                   --duration s while a writer applies --events updates/s to random products

The service runs as a subprocess (`--cpu N` pins it to one core with taskset; the benchmark
itself then runs on the others). Everything it starts it stops; the topic is deleted at the
end (`--keep` keeps it, and its snapshot file).
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import yaml
from latest_topic import fill

from seam.legacy_db import generator
from seam.legacy_db.files import pipeline_document
from seam.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
STATUS = ("active",) * 17 + ("discontinued",) * 3


def product_state(i: int, rng: random.Random, version: int = 0) -> dict[str, Any]:
    """A ProductState as the catalog's transform publishes it."""
    cents = generator.price_cents(rng) + version
    state: dict[str, Any] = {
        "product_id": i,
        "sku": generator.canonical_sku(i, rng),
        "name": generator.product_name(rng),
        "status": STATUS[rng.randrange(len(STATUS))],
        "price": {"amount": f"{cents // 100}.{cents % 100:02d}", "currency": "EUR"},
        "category": {"id": rng.randint(1, 500), "name": f"Garden Tools {rng.randint(1, 500)}"},
        "supplier": {"id": rng.randint(1, 2000), "name": f"Meyer & Sons {rng.randint(1, 99)} GmbH"},
    }
    if rng.random() < 0.8:
        state["ean"] = "".join(str(rng.randrange(10)) for _ in range(13))
    text = generator.description(rng)
    if text and text.strip():
        state["description"] = " ".join(text.split())
    state["created_at"] = (
        f"20{rng.randint(10, 23)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T08:15:00Z"
    )
    state["updated_at"] = "2024-06-01T12:00:00Z"
    return state


def fill_products(settings: Any, topic: str, products: int) -> float:
    """Create `topic` and write `products` states (`latest_topic.fill`); seconds taken."""
    rng = random.Random(1)
    sizes = 0

    def states() -> Iterator[tuple[str, bytes]]:
        nonlocal sizes
        for i in range(1, products + 1):
            value = orjson.dumps(product_state(i, rng))
            sizes += len(value)
            yield str(i), value

    took = fill(settings, topic, states())
    print(f"  {products} states, {sizes / max(products, 1):.0f} bytes of JSON each on average")
    return took


class Service:
    def __init__(self, service_file: Path, port: int, cpu: int | None, *options: str) -> None:
        command = [
            sys.executable,
            "-m",
            "seam.cli.main",
            "serve",
            str(service_file),
            "--port",
            str(port),
            *options,
        ]
        if cpu is not None:
            command = ["taskset", "-c", str(cpu), *command]
        self.port = port
        self.log = service_file.parent / f"serve-{port}-{time.monotonic_ns()}.log"
        self._log_file = self.log.open("wb")
        self.began = time.monotonic()
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self._log_file)

    def get(self, path: str) -> tuple[int, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("GET", path)
            answer = connection.getresponse()
            return answer.status, orjson.loads(answer.read() or b"null")
        finally:
            connection.close()

    def until_ready(self, timeout: float = 600) -> float:
        deadline = time.monotonic() + timeout
        self.first_answer: float | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the service stopped: {self.log.read_text()}")
            try:
                status, _body = self.get("/ready")
                if self.first_answer is None:
                    self.first_answer = time.monotonic() - self.began
                if status == 200:
                    return time.monotonic() - self.began
            except OSError:
                pass
            time.sleep(0.01)
        raise SystemExit(f"not ready within {timeout}s")

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the service has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        pid = self.process.pid
        if Path(f"/proc/{pid}/status").exists():
            # taskset execs the service in place: the pid is the service's.
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log_file.close()


def writer(settings: Any, topic: str, products: int, rate: int, stop: threading.Event) -> None:
    """Apply `rate` updates/s (transactions of 10 ms) to random products until `stop`."""
    from confluent_kafka import Producer

    producer = Producer(
        settings.kafka.client_config({"transactional.id": f"{topic}-writer", "linger.ms": 1})
    )
    producer.init_transactions(30)
    rng = random.Random(7)
    tick = 0.01
    per_tick = max(1, round(rate * tick))
    due = time.monotonic()
    version = 1
    while not stop.is_set():
        producer.begin_transaction()
        for _ in range(per_tick):
            i = rng.randint(1, products)
            producer.produce(
                topic,
                key=str(i).encode(),
                value=orjson.dumps(product_state(i, random.Random(i), version)),
            )
            version += 1
        producer.commit_transaction(30)
        due += tick
        time.sleep(max(0.0, due - time.monotonic()))
    producer.flush(10)


def load(port: int, products: int, rate: int, duration: float) -> dict[str, float]:
    """GET /product/<random key> at `rate`/s for `duration` s, open loop, one connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    rng = random.Random(3)
    latencies: list[float] = []
    late = 0
    errors = 0
    began = time.monotonic()
    n = int(rate * duration)
    for k in range(n):
        due = began + k / rate
        now = time.monotonic()
        if now < due:
            time.sleep(due - now)
        start = due  # latency counted from when it was due (open loop)
        connection.request("GET", f"/product/{rng.randint(1, products)}")
        answer = connection.getresponse()
        answer.read()
        done = time.monotonic()
        if answer.status not in (200, 404):
            errors += 1
        if done - due > 1 / rate:
            late += 1
        latencies.append((done - start) * 1000)
    connection.close()
    latencies.sort()
    elapsed = time.monotonic() - began
    return {
        "requests": n,
        "achieved_rps": n / elapsed,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        "max_ms": latencies[-1],
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=1000, help="GET requests/s")
    parser.add_argument("--events", type=int, default=1000, help="updates/s applied meanwhile")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--cpu", type=int, default=None, help="pin the service to this core")
    parser.add_argument("--keep", action="store_true", help="keep the topic (and files)")
    parser.add_argument(
        "--topic", help="an existing topic of --products states (from --keep): not refilled"
    )
    args = parser.parse_args()

    settings = load_settings()
    topic = args.topic or f"bench.products-latest-{uuid.uuid4().hex[:8]}"
    keep = args.keep or args.topic is not None
    folder = Path(tempfile.mkdtemp(prefix="seam-service-bench-"))
    doc = pipeline_document("catalog")
    doc["outputs"]["latest"]["topic"] = topic
    (folder / "pipeline.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    service_file = folder / "service.yaml"
    service_file.write_text(
        "pipeline: pipeline.yaml\nindexes: [sku]\nfilters: [status, category.id]\n"
        "search: [name, description]\nsnapshot: {path: image.snapshot, interval_s: 0}\n"
    )
    if args.topic is None:
        print(f"filling {topic} with {args.products} products ...")
        print(f"  written in {fill_products(settings, topic, args.products):.1f}s")
    services: list[Service] = []
    port = 18780 + random.randrange(1000)
    try:
        cold = Service(service_file, port, args.cpu, "--rebuild")
        services.append(cold)
        ready = cold.until_ready()
        cpu = cold.cpu_s()
        _status, body = cold.get("/ready")
        print(
            f"cold ready:      {ready:.2f}s, {cpu:.1f} CPU-s (first answer at {cold.first_answer:.2f}s)\n"
            f"                 (ready {body['ready_after_s']:.2f}s after it began loading; "
            f"{body['entities']} entities)"
        )
        print(f"  RSS:           {cold.rss_mb():.0f} MB")
        cold.stop()
        size = (folder / "image.snapshot").stat().st_size
        print(f"  snapshot file: {size / 1e6:.0f} MB (written on SIGTERM)")

        warm = Service(service_file, port + 1, args.cpu)
        services.append(warm)
        ready = warm.until_ready()
        cpu = warm.cpu_s()
        _status, body = warm.get("/ready")
        print(
            f"snapshot ready:  {ready:.2f}s, {cpu:.1f} CPU-s (first answer at "
            f"{warm.first_answer:.2f}s; ready {body['ready_after_s']:.2f}s after the snapshot "
            f"began loading)\n                 {body['start']}"
        )
        print(f"  RSS:           {warm.rss_mb():.0f} MB")

        stop = threading.Event()
        thread = threading.Thread(
            target=writer, args=(settings, topic, args.products, args.events, stop)
        )
        thread.start()
        try:
            time.sleep(1.0)
            figures = load(warm.port, args.products, args.rate, args.duration)
        finally:
            stop.set()
            thread.join()
        _status, body = warm.get("/ready")
        print(
            f"GET by key at {args.rate}/s for {args.duration:g}s while {args.events} updates/s apply: "
            f"p50 {figures['p50_ms']:.2f} ms, p99 {figures['p99_ms']:.2f} ms, max {figures['max_ms']:.1f} ms "
            f"({figures['requests']:.0f} requests, {figures['achieved_rps']:.0f}/s achieved, "
            f"{figures['errors']:.0f} errors; {body['entities']} entities)"
        )
        print(f"  RSS after:     {warm.rss_mb():.0f} MB")
        warm.stop()
    finally:
        for service in services:
            service.stop()
        if not keep:
            from confluent_kafka.admin import AdminClient

            admin = AdminClient(settings.kafka.client_config())  # kept alive until done
            admin.delete_topics([topic])[topic].result(timeout=30)
            for path in folder.iterdir():
                path.unlink()
            folder.rmdir()
        else:
            print(f"kept topic {topic} and {folder}")
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")


if __name__ == "__main__":
    main()

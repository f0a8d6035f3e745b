"""The parity check (`seam migrate parity`) on N catalog products: digests and bisection
against a plain full-table comparison, with no difference and with planted ones.

    .venv/bin/python benchmarks/parity_benchmark.py --products 1000000
    .venv/bin/python benchmarks/parity_benchmark.py --products 100000 --repeat 3
    .venv/bin/python benchmarks/parity_benchmark.py --seeded seam_parity_1m --keep   # reuse a seeded database

On the stack of the settings (SEAM_CONFIG), with PostgreSQL: seeds a catalog of its own
(`seam legacy seed`, unless `--seeded`), makes the new side agree with it (the legacy side's
own states, as the parity check computes them through the pipeline's cleaning, written to a
latest topic of its own in transactions, 3 partitions, compacted) and serves that topic with
`seam serve`. Then, `--repeat` times each:

  clean      the check with no difference: the legacy side (read + cleaning), the latest topic
             (read + compare) and the memory image compared by key-range digests
  planted    the same after `--differences` states were changed in the latest topic (so in
             the image too): every one must be found, on both sides
  plain      a plain full-table comparison of the image: every state fetched through the
             service's listing API (`GET /product?limit=`, pages of 10,000) and compared
             with the legacy side's, row by row

The transform's wait for the cut is not timed: no transform runs here (the new side is
written directly), and in a real check it is a wait for a lagging pipeline, not work. Nor
are re-checks (none is needed: nothing is in flight). Prints medians and ranges and where
the time goes. Everything it made is deleted at the end (`--keep` keeps the database).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml
from latest_topic import fill

from seam.legacy_db.files import pipeline_document
from seam.settings import load_settings

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    def __init__(self, service_file: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = service_file.with_suffix(".log").open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "seam.cli.main",
                "serve",
                str(service_file),
                "--rebuild",
                "--port",
                str(self.port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def ready(self, timeout: float = 600) -> float:
        began = time.monotonic()
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while time.monotonic() - began < timeout:
                assert self.process.poll() is None, "seam serve exited"
                try:
                    if client.get("/ready").status_code == 200:
                        return time.monotonic() - began
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        raise SystemExit(f"the service was not ready in {timeout}s")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def plain(url: str, legacy_states: dict[str, bytes], entity: str) -> tuple[float, int]:
    """Every state of the image through its listing, compared row by row: (s, differing)."""
    from seam.migration.digest import canonical

    began = time.monotonic()
    fetched: dict[str, bytes] = {}
    with httpx.Client(base_url=url, timeout=120) as client:
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 10_000}
            if cursor:
                params["cursor"] = cursor
            page = orjson.loads(client.get(f"/{entity}", params=params).content)
            for key, state in zip(page["keys"], page["items"], strict=True):
                fetched[key] = canonical(state)
            cursor = page["next_cursor"]
            if cursor is None:
                break
    differing = sum(
        1 for k in legacy_states.keys() | fetched.keys() if legacy_states.get(k) != fetched.get(k)
    )
    return time.monotonic() - began, differing


def check(spec: Any, settings: Any, url: str, service: str) -> dict[str, Any]:
    """One parity check's work, timed by part: legacy, topic, image."""
    from seam.migration.parity import (
        ImageClient,
        LegacyIndex,
        compare_all,
        compare_image,
        read_topic,
    )
    from seam.migration.parity_legacy import LegacySide

    began = time.monotonic()
    cut = LegacySide(spec, url).read()
    legacy_s = time.monotonic() - began
    started = time.monotonic()
    topic = read_topic(settings.kafka, spec.latest.topic, 120)
    topic_read_s = time.monotonic() - started
    topic_found = compare_all(cut, topic.states, "topic")
    topic_s = time.monotonic() - started
    started = time.monotonic()
    client = ImageClient(service, 60)
    image_found, count, moved = compare_image(cut, LegacyIndex(cut), client, topic.after)
    image_s = time.monotonic() - started
    return {
        "total_s": time.monotonic() - began,
        "legacy_s": legacy_s,
        "legacy_read_s": cut.read_s,
        "legacy_clean_s": cut.clean_s,
        "topic_s": topic_s,
        "topic_read_s": topic_read_s,
        "image_s": image_s,
        "image_requests": client.requests,
        "image_rows_moved": moved["rows"],
        "image_ranges": moved["ranges"],
        "image_count": count,
        "legacy_states": len(cut.states),
        "found_topic": {d.key for d in topic_found},
        "found_image": {d.key for d in image_found},
    }


def summary(label: str, values: list[float]) -> str:
    if not values:
        return f"{label}: -"
    return (
        f"{label}: median {statistics.median(values):.2f}s "
        f"(range {min(values):.2f}-{max(values):.2f}, n={len(values)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--differences", type=int, default=100)
    parser.add_argument("--seeded", help="a database already seeded with the catalog")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()

    from confluent_kafka.admin import AdminClient

    from seam.connectors.engine import create_database, drop_database, with_database
    from seam.legacy_db.seed import seed
    from seam.migration.parity_legacy import LegacySide
    from seam.transforms.pipeline_file import load_pipeline

    settings = load_settings()
    suffix = uuid.uuid4().hex[:8]
    name = args.seeded or f"seam_parity_{suffix}"
    url = with_database(settings.database_url("postgres"), name)
    topic = f"parity-bench-{suffix}.products-latest"
    work = Path(tempfile.mkdtemp(prefix="parity-bench-"))
    served: Served | None = None
    try:
        if not args.seeded:
            create_database(url)
            began = time.monotonic()
            seed(url, products=args.products, seed=3)
            print(f"seeded {args.products} products in {time.monotonic() - began:.1f}s")
        doc = pipeline_document("catalog")
        doc["group"] = f"parity-bench-{suffix}"
        doc["outputs"]["latest"]["topic"] = topic
        pipeline = work / "catalog.yaml"
        pipeline.write_text(yaml.safe_dump(doc))
        spec = load_pipeline(pipeline)
        entity = spec.declaration.entity.name if spec.declaration else "product"
        began = time.monotonic()
        cut = LegacySide(spec, url).read()
        print(
            f"the new side: {len(cut.states)} states of {cut.rows} rows computed in "
            f"{time.monotonic() - began:.1f}s",
            end="",
        )
        states = dict(cut.states.items())
        took = fill(settings, topic, states.items())
        print(f", written to {topic} in {took:.1f}s", end="")
        service_file = work / "service.yaml"
        service_file.write_text(
            f"pipeline: {pipeline}\nmax_page_size: 10000\n"
            f"snapshot: {{path: {work / 'image.snapshot'}, interval_s: 0}}\n"
            "read_your_writes: {wait_ms: 60000, max_wait_ms: 600000}\n"
        )
        served = Served(service_file)
        print(f", served in {served.ready():.1f}s")

        results: dict[str, list[dict[str, Any]]] = {"clean": [], "planted": []}
        plain_s: list[float] = []
        rng = random.Random(11)
        keys = sorted(states)
        for run in range(args.repeat):
            clean = check(spec, settings, url, served.url)
            found = clean["found_topic"] | clean["found_image"]
            assert not found, f"differences in a clean run: {sorted(found)[:10]}"
            results["clean"].append(clean)
            seconds, differing = plain(served.url, states, entity)
            assert differing == 0
            plain_s.append(seconds)
            # Plant: change `differences` states in the topic (the image follows it).
            chosen = rng.sample(keys, args.differences)
            changed = {}
            for key in chosen:
                state = orjson.loads(states[key])
                state["name"] = f"planted {run} {state.get('name')}"
                changed[key] = orjson.dumps(state)
            from confluent_kafka import Producer

            producer = Producer(settings.kafka.client_config({}))
            for key, value in changed.items():
                producer.produce(topic, key=key.encode(), value=value)
            assert producer.flush(30) == 0
            time.sleep(2)  # the image applies them (the check waits for the topic's ends)
            planted = check(spec, settings, url, served.url)
            assert planted["found_topic"] == set(chosen), "the topic's planted differences"
            assert planted["found_image"] == set(chosen), "the image's planted differences"
            results["planted"].append(planted)
            # Put them back, for the next run.
            producer = Producer(settings.kafka.client_config({}))
            for key in chosen:
                producer.produce(topic, key=key.encode(), value=states[key])
            assert producer.flush(30) == 0
            time.sleep(2)
            print(
                f"run {run + 1}: clean {clean['total_s']:.1f}s, planted {planted['total_s']:.1f}s "
                f"(all {args.differences} found on both sides), plain {seconds:.1f}s"
            )

        print(f"\n{args.products} products, {len(states)} listed states")
        for label, runs in results.items():
            print(summary(f"{label} check, total", [r["total_s"] for r in runs]))
            for part in (
                "legacy_read_s",
                "legacy_clean_s",
                "topic_read_s",
                "topic_s",
                "image_s",
            ):
                print("  " + summary(part, [r[part] for r in runs]))
            print(
                f"  image: {runs[-1]['image_requests']} requests, {runs[-1]['image_ranges']} "
                f"ranges, {runs[-1]['image_rows_moved']} rows moved"
            )
        print(summary("plain full-table comparison of the image", plain_s))
        print(
            summary(
                "digest comparison of the image (clean)",
                [r["image_s"] for r in results["clean"]],
            )
        )
    finally:
        if served is not None:
            served.stop()
        admin = AdminClient(settings.kafka.client_config())
        for future in admin.delete_topics([topic]).values():
            try:
                future.result(timeout=30)
            except Exception as exc:  # not made: nothing to delete
                print(f"(topic {topic}: {exc})")
        if not args.keep and not args.seeded:
            drop_database(url)


if __name__ == "__main__":
    main()

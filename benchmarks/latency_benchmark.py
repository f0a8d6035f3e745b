"""End-to-end latency: from a legacy commit to its domain event, readable with read_committed.

    .venv/bin/python benchmarks/latency_benchmark.py                   # 200 commits/s for 30 s
    .venv/bin/python benchmarks/latency_benchmark.py --repeat 3 --private-stack
    .venv/bin/python benchmarks/latency_benchmark.py --override poll.interval.ms=500   # Debezium's default
    .venv/bin/python benchmarks/latency_benchmark.py --database mariadb

Sets up what it needs on the stack of the settings (SEAM_CONFIG, or `--private-stack` for a
stack of its own): a fresh legacy database seeded with `--products` products and prepared for
CDC, the example connector spec applied under a unique name (`seam connectors apply --wait`,
with the rendered defaults and any `--override`), and a worker (`seam transform run` of the
example pipeline on the run's topics). Once the worker has caught up with the snapshot and a
probe rename has come through as a domain event, it measures the idle CPU (`--idle` s), then
drives renames of listed products (one UPDATE + COMMIT per transaction, the way the legacy app
writes) at `--rate` commits/s for `--warmup` + `--duration` s from a child process, and reads
the raw change topic and the history topic with one read_committed consumer (fetch.wait.max.ms
10, so the reader adds at most ~10 ms). Only commits after the warm-up count. Each leg, per
commit (ms):

  commit -> raw record      when this script's COMMIT returned -> when the consumer got the
                            Debezium record; split by Debezium's own clocks (same host) into
                            -> Debezium read it (the envelope's ts_us), -> Connect produced it
                            (the Kafka record's CreateTime, ms), -> the consumer had it
  raw -> domain event       the worker's leg: raw record received -> its ProductRenamed
                            received (the worker's transaction committed)
  commit -> domain event    the total

with p50/p95/p99/max and counts. Every clock is this machine's wall clock. The commit time
is when COMMIT returned to the application, the moment it knows the change is made; the
database's own commit time (source.ts_ms, to the millisecond only) lies up to the
"UPDATE+COMMIT" row earlier. Also the CPU of the worker (and of Connect, the broker and the
database) over the driving window and while idle, as % of one core and per commit.
Targets: total p50 <= 100 ms, p99 <= 300 ms at 200 commits/s; the worker's leg p50 <= 20 ms.
Everything it started is stopped at the end (worker, connector and slot, topics, group,
database; `--keep` keeps the database and topics).
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import random
import shlex
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from cdc_bench import (
    CpuMeter,
    LegacyDatabase,
    Run,
    connect_database,
    end_offsets,
    maybe_private_stack,
    median_range,
    parse_overrides,
    stack_pids,
    summary,
    wait_for,
)

from seam.kafka_config import KafkaSettings, client_config
from seam.legacy_db.workload import LEGACY_TZ

NAME_PREFIX = "Latency"
TARGETS = {"total_p50": 100.0, "total_p99": 300.0, "worker_p50": 20.0}


# --- the legacy application's commits ---------------------------------------------------


def drive(
    flavour: str,
    url: str,
    ids: Sequence[int],
    names: Sequence[str],
    rate: float,
    start_at: float,
    pipe: Any,
) -> None:
    """In a child process: rename `ids[i]` to `names[i]` at `rate` commits/s from the wall
    clock time `start_at`, one transaction each; send [(i, commit started, COMMIT returned)]."""
    conn = connect_database(flavour, url)
    cur = conn.cursor()
    sql = "UPDATE products SET prod_name = %s, updated_at = %s WHERE prod_id = %s"
    done: list[tuple[int, float, float]] = []
    for i, (prod_id, name) in enumerate(zip(ids, names, strict=True)):
        delay = start_at + i / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        began = time.time()
        # W7: the legacy app writes local wall-clock time, whole seconds.
        now = dt.datetime.now(LEGACY_TZ).replace(tzinfo=None, microsecond=0)
        cur.execute(sql, (name, now, prod_id))
        conn.commit()
        done.append((i, began, time.time()))
    conn.close()
    pipe.send(done)
    pipe.close()


# --- reading the topics -----------------------------------------------------------------


@dataclass
class Seen:
    raw_at: float | None = None  # when the consumer received the raw record (s, epoch)
    raw_read_ms: float | None = None  # Debezium's envelope ts_ms: when it read the change
    raw_produced_ms: float | None = None  # the raw record's Kafka CreateTime
    event_at: float | None = None  # when the consumer received the domain event


@dataclass
class Reader:
    """One read_committed consumer on the raw products topic and the history topic, from
    their current ends, noting when each benchmark rename shows up on each."""

    bootstrap: KafkaSettings | str
    raw_topic: str
    history_topic: str
    seen: dict[str, Seen] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer(
            client_config(
                self.bootstrap,
                {
                    "group.id": f"seam-latency-reader-{time.time_ns()}",  # never joins or commits
                    "isolation.level": "read_committed",
                    "enable.auto.commit": False,
                    "fetch.wait.max.ms": 10,
                },
            )
        )
        assignment = []
        for topic in (self.raw_topic, self.history_topic):
            for partition, end in end_offsets(self.bootstrap, topic).items():
                assignment.append(TopicPartition(topic, partition, end))
        consumer.assign(assignment)
        self._thread = threading.Thread(target=self._loop, args=(consumer,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _loop(self, consumer: Any) -> None:
        try:
            while not self._stop.is_set():
                # poll() returns as soon as a record is there (consume(n, t) would wait for
                # n records or t seconds): the receive time is the record's own.
                msg = consumer.poll(0.1)
                if msg is not None and msg.error() is None and msg.value() is not None:
                    self._note(msg, time.time())
        finally:
            consumer.close()

    def _note(self, msg: Any, now: float) -> None:
        try:
            value = orjson.loads(msg.value())
        except orjson.JSONDecodeError:
            return
        if msg.topic() == self.raw_topic:
            name = ((value.get("after") or {}) if isinstance(value, dict) else {}).get("prod_name")
            if isinstance(name, str) and name.startswith(NAME_PREFIX):
                seen = self.seen.setdefault(name, Seen())
                seen.raw_at = now
                # Debezium 2.6+ also gives its clocks in microseconds.
                read_us = value.get("ts_us")
                seen.raw_read_ms = read_us / 1000 if read_us else value.get("ts_ms")
                seen.raw_produced_ms = msg.timestamp()[1]
        elif value.get("event_type") == "ProductRenamed":
            name = (value.get("data") or {}).get("new_name")
            if isinstance(name, str) and name.startswith(NAME_PREFIX):
                self.seen.setdefault(name, Seen()).event_at = now


def listed_products(bootstrap: KafkaSettings | str, topic: str) -> list[int]:
    """The keys of the latest topic that hold a state (not a tombstone): listed products."""
    from confluent_kafka import Consumer, TopicPartition

    ends = end_offsets(bootstrap, topic)
    consumer = Consumer(
        client_config(
            bootstrap,
            {
                "group.id": f"seam-latency-listed-{time.time_ns()}",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            },
        )
    )
    consumer.assign([TopicPartition(topic, p, 0) for p, end in ends.items() if end > 0])
    state: dict[bytes, bool] = {}
    pending = {p for p, end in ends.items() if end > 0}
    try:
        while pending:
            for msg in consumer.consume(10_000, 1.0):
                if msg.error() is not None:
                    pending.discard(msg.partition())
                    continue
                state[msg.key()] = msg.value() is not None
    finally:
        consumer.close()
    return sorted(int(k) for k, listed in state.items() if listed and k and k.isdigit())


def committed(bootstrap: KafkaSettings | str, group: str, topic: str) -> int:
    """The offsets the group committed on `topic`, summed over its partitions."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(client_config(bootstrap, {"group.id": group}))
    try:
        parts = [TopicPartition(topic, p) for p in end_offsets(bootstrap, topic)]
        return sum(max(0, tp.offset) for tp in consumer.committed(parts, timeout=10))
    finally:
        consumer.close()


# --- one measured window ----------------------------------------------------------------


@dataclass
class Window:
    commits: list[tuple[int, float, float]]  # (i, began, committed)
    names: list[str]
    cpu: dict[str, float]
    seconds: float
    warmup: int  # the first commits, not counted


def measure(
    run: Run,
    reader: Reader,
    ids: Sequence[int],
    offset: int,
    args: argparse.Namespace,
    meter: CpuMeter,
) -> Window:
    warmup = int(args.rate * args.warmup)
    count = warmup + int(args.rate * args.duration)
    names = [f"{NAME_PREFIX} {run.id} {offset + i}" for i in range(count)]
    targets = [ids[(offset + i) % len(ids)] for i in range(count)]
    # Spawned, not forked: this process runs a librdkafka consumer thread, and a fork of a
    # process with running threads may inherit a lock held by one of them.
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    start_at = time.time() + 2.0  # a spawned interpreter takes a moment to start
    child = context.Process(
        target=drive,
        args=(run.flavour, run.db.url, targets, names, args.rate, start_at, sender),
        daemon=True,  # never outlives an interrupted benchmark
    )
    child.start()
    sender.close()
    time.sleep(max(0.0, start_at - time.time() + args.warmup))
    meter.start()  # CPU over the measured commits only, not the warm-up
    # The child's report fills the pipe: read it as soon as it comes, or both would wait.
    commits: list[tuple[int, float, float]] = []
    while not commits and (child.is_alive() or receiver.poll(0)):
        meter.sample()
        if receiver.poll(0.5):
            commits = receiver.recv()
    child.join(10)
    if len(commits) != count:
        raise SystemExit(f"the commit driver stopped after {len(commits)} of {count} commits")
    # Drain: wait for the last events (or give up after --drain s: they count as missing).
    counted = names[warmup:]

    def arrived() -> bool:
        meter.sample()
        return all(
            (s := reader.seen.get(n)) is not None and s.event_at is not None for n in counted
        )

    with_drain = True
    try:
        wait_for("the last domain events", arrived, args.drain)
    except SystemExit:
        with_drain = False
    cpu = meter.stop()
    if not with_drain:
        print(f"  (some events did not arrive within --drain {args.drain:.0f}s)")
    return Window(commits, names, cpu, meter.wall, warmup)


@dataclass
class Legs:
    debezium: list[float] = field(default_factory=list)
    read: list[float] = field(default_factory=list)  # commit -> Debezium read it
    queued: list[float] = field(default_factory=list)  # read -> Connect produced it
    delivered: list[float] = field(default_factory=list)  # produced -> consumer had it
    worker: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    commit: list[float] = field(default_factory=list)  # UPDATE + COMMIT round trip
    missing_raw: int = 0
    missing_event: int = 0


def legs_of(window: Window, reader: Reader) -> Legs:
    legs = Legs()
    for i, began, committed_at in window.commits[window.warmup :]:
        seen = reader.seen.get(window.names[i])
        legs.commit.append((committed_at - began) * 1000)
        if seen is None or seen.raw_at is None:
            legs.missing_raw += 1
            continue
        legs.debezium.append((seen.raw_at - committed_at) * 1000)
        if seen.raw_read_ms is not None and seen.raw_produced_ms is not None:
            legs.read.append(seen.raw_read_ms - committed_at * 1000)
            legs.queued.append(seen.raw_produced_ms - seen.raw_read_ms)
            legs.delivered.append(seen.raw_at * 1000 - seen.raw_produced_ms)
        if seen.event_at is None:
            legs.missing_event += 1
            continue
        legs.worker.append((seen.event_at - seen.raw_at) * 1000)
        legs.total.append((seen.event_at - committed_at) * 1000)
    return legs


def print_legs(legs: Legs, window: Window, counted: int) -> None:
    rows = [
        ("commit -> raw record", legs.debezium),
        ("  commit -> Debezium read", legs.read),
        ("  read -> Connect produced", legs.queued),
        ("  produced -> consumer", legs.delivered),
        ("raw -> domain event", legs.worker),
        ("commit -> domain event", legs.total),
        ("(UPDATE+COMMIT itself)", legs.commit),
    ]
    print(f"  {'leg (ms)':28} {'n':>6} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}")
    for label, values in rows:
        s = summary(values)
        print(
            f"  {label:28} {s['n']:>6} {s['p50']:>8.1f} {s['p95']:>8.1f} {s['p99']:>8.1f} "
            f"{s['max']:>8.1f}"
        )
    print(
        f"  commits counted {counted}, raw records missing {legs.missing_raw}, "
        f"domain events missing {legs.missing_event}"
    )
    print_cpu("  CPU while driving", window.cpu, window.seconds, counted)


def print_cpu(title: str, cpu: dict[str, float], seconds: float, commits: int = 0) -> None:
    parts = []
    for name, used in cpu.items():
        share = used / seconds * 100 if seconds else 0.0
        per = f", {used / commits * 1e6:,.0f} us/commit" if commits else ""
        parts.append(f"{name} {share:.1f}%{per}")
    print(f"{title} ({seconds:.1f}s; % of one core): " + "; ".join(parts))


# --- the run ----------------------------------------------------------------------------


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The description as written, and each option's default."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--rate", type=float, default=200.0, help="legacy commits per second")
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds driven, not counted")
    parser.add_argument("--drain", type=float, default=30.0, help="seconds to wait for stragglers")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle CPU measured")
    parser.add_argument("--repeat", type=int, default=1, help="measured runs (one set-up)")
    parser.add_argument("--database", choices=("postgres", "mariadb"), default="postgres")
    parser.add_argument("--products", type=int, default=10_000, help="products seeded")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="connector config key added to the spec's overrides (repeatable)",
    )
    parser.add_argument(
        "--worker-args", default="", help="extra options for `seam transform run`, quoted"
    )
    parser.add_argument(
        "--private-stack", action="store_true", help="start a stack of its own, wiped at the end"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database and topics")
    args = parser.parse_args()
    overrides = parse_overrides(args.override)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress, when piped

    with (
        maybe_private_stack(args.private_stack),
        LegacyDatabase(args.database, label="lat", keep=args.keep) as db,
        Run(db, keep=args.keep) as run,
    ):
        started = time.perf_counter()
        seeded = db.seed(args.products)
        spec = run.write_spec(overrides)
        pipeline, data = run.write_pipeline()
        print(
            f"run {run.name}: {args.database} database {db.dbname} seeded with "
            f"{args.products:,} products in {seeded:.1f}s; connector {run.name}"
            + (f" with {overrides}" if overrides else ""),
            flush=True,
        )
        run.apply(spec)
        raw_topic = run.topics.raw("products")
        bootstrap = run.bootstrap
        products = db.count("products")

        def snapshot_done() -> bool:
            run.check_connector()
            return sum(end_offsets(bootstrap, raw_topic).values()) >= products

        wait_for("the snapshot of products", snapshot_done, 600, every=0.5)
        # Started once its input topic exists (a worker refuses a missing topic).
        worker = run.start_worker(pipeline, *shlex.split(args.worker_args))

        def caught_up() -> bool:
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited ({worker.returncode}):\n{run.worker_log()}")
            return committed(bootstrap, data["group"], raw_topic) >= products

        wait_for("the worker to catch up with the snapshot", caught_up, 600, every=0.5)
        ids = listed_products(bootstrap, data["outputs"]["latest"]["topic"])
        if not ids:
            raise SystemExit("the latest topic lists no product to rename")
        random.Random(1).shuffle(ids)
        reader = Reader(bootstrap, raw_topic, data["outputs"]["history"]["topic"])
        reader.start()
        run.callback(reader.stop)

        # A probe: the connector streams once every table's snapshot is done.
        probe = f"{NAME_PREFIX} {run.id} probe"
        conn = db.connect()

        def probed() -> bool:
            seen = reader.seen.get(probe)
            if seen is not None and seen.event_at is not None:
                return True
            cur = conn.cursor()
            cur.execute("UPDATE products SET prod_name = %s WHERE prod_id = %s", (probe, ids[-1]))
            conn.commit()
            cur.execute(
                "UPDATE products SET prod_name = %s WHERE prod_id = %s", (probe + "!", ids[-1])
            )
            conn.commit()
            return False

        wait_for("a probe rename to come through as a domain event", probed, 600, every=2.0)
        conn.close()
        ids = ids[:-1]
        print(f"set up in {time.perf_counter() - started:.1f}s; {len(ids):,} listed products")

        pids = {"worker": worker.pid, **stack_pids(run.settings)}
        pids.pop("mariadb" if args.database == "postgres" else "postgres", None)
        meter = CpuMeter(pids, with_children={"postgres"})
        meter.start()
        time.sleep(args.idle)
        print_cpu("CPU while idle", meter.stop(), meter.wall)

        results: list[Legs] = []
        cpu_worker: list[float] = []
        offset = 0
        for rep in range(args.repeat):
            window = measure(run, reader, ids, offset, args, meter)
            offset += len(window.commits)
            counted = len(window.commits) - window.warmup
            legs = legs_of(window, reader)
            results.append(legs)
            cpu_worker.append(window.cpu.get("worker", 0.0) / max(1, counted) * 1e6)
            print(
                f"--- run {rep + 1}/{args.repeat}: {counted} commits at {args.rate:g}/s "
                f"(after {window.warmup} warm-up)"
            )
            print_legs(legs, window, counted)
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited ({worker.returncode}):\n{run.worker_log()}")

        def med(pick: str, q: str) -> list[float]:
            return [summary(getattr(legs, pick))[q] for legs in results]

        print(f"--- summary: median (range) of {args.repeat} run(s), ms")
        for label, pick in (
            ("commit -> raw record", "debezium"),
            ("raw -> domain event", "worker"),
            ("commit -> domain event", "total"),
        ):
            print(
                f"  {label:24} p50 {median_range(med(pick, 'p50'))}  "
                f"p99 {median_range(med(pick, 'p99'))}"
            )
        print(f"  worker CPU per commit (us)  {median_range(cpu_worker)}")
        total50 = statistics.median(med("total", "p50"))
        total99 = statistics.median(med("total", "p99"))
        worker50 = statistics.median(med("worker", "p50"))
        for label, value, target in (
            ("total p50", total50, TARGETS["total_p50"]),
            ("total p99", total99, TARGETS["total_p99"]),
            ("worker leg p50", worker50, TARGETS["worker_p50"]),
        ):
            verdict = "met" if value <= target else "NOT met"
            print(f"  {label:16} {value:8.1f} ms  target <= {target:.0f} ms: {verdict}")


if __name__ == "__main__":
    main()

"""Backfill: the initial snapshot of a real-sized legacy table, from `apply` to domain events.

    .venv/bin/python benchmarks/backfill_benchmark.py --private-stack            # 1,000,000 products
    .venv/bin/python benchmarks/backfill_benchmark.py --private-stack --worker none --repeat 3
    .venv/bin/python benchmarks/backfill_benchmark.py --worker after --worker-args "--batch-size 5000"
    .venv/bin/python benchmarks/backfill_benchmark.py --worker none --repeat 3 \
        --variant "" --variant "poll.interval.ms=500,extended.headers.enabled=true"
    .venv/bin/python benchmarks/backfill_benchmark.py --keep ...   # then --seeded bf_1234abcd

Seeds `--products` products into a fresh database on the stack of the settings (SEAM_CONFIG,
or `--private-stack` for a stack of its own: use one for 1M rows, not a shared stack) with
`seam legacy seed`, then for each of `--repeat` runs prepares (`seam connectors prepare`)
and applies the example connector spec under a new name (its own slot and topics, so every
run snapshots afresh; the rendered defaults plus any `--override`; with several `--variant`s,
each variant's overrides on top, the variants taking turns) and times, from just before
`seam connectors apply` (t=0):

  Debezium's leg      t of the first and the last product record on the raw topic (its high
                      watermark reaches the table's row count), and with `--until all` of the
                      snapshot of every captured table (each raw topic holds its table's
                      rows: 4.6 rows per product, so minutes more for 1M products)
  the worker          `--worker concurrent` starts `seam transform run` of the example
                      pipeline (on the run's topics) as soon as its input topic exists (with
                      the first product record) and stops it once done; `after`
                      starts `seam transform run --until-caught-up` when the last product
                      record is on the topic; `none` runs no worker. Its time, records/s,
                      CPU (% of one core, share of the machine, us per record)
  t of the last domain event readable on the latest topic: when the worker's group has
                      committed the products topic's last offset (an exactly-once worker
                      commits its offsets in the transaction of its outputs, so its outputs
                      are then readable with read_committed); target <= 60 s for 1M rows

and the CPU of Connect, the broker, PostgreSQL/MariaDB and the worker over the run (the pid
files of `seam stack up`: a stack started otherwise shows the machine total only), per row
(steadier than times on a shared machine), and the seconds Connect's JVM spent collecting
garbage (with a JDK's `jstat`). Prints medians and ranges over the runs. Everything it
started is stopped: worker, connector (its slot dropped), topics, group, database, and the
private stack.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from cdc_bench import (
    CpuMeter,
    LegacyDatabase,
    Run,
    jvm_gc_seconds,
    machine_cpu,
    maybe_private_stack,
    median_range,
    parse_overrides,
    process_cpu,
    stack_pids,
    stop_process,
)

from seam.kafka_config import KafkaSettings, client_config

TABLES = ("categories", "suppliers", "products", "product_prices", "stock_levels", "product_tags")
TARGET_S = 60.0


@dataclass
class Result:
    first_product: float | None = None
    products_done: float | None = None
    snapshot_done: float | None = None
    worker_started: float | None = None
    worker_done: float | None = None  # the group committed the last product offset
    worker_exited: float | None = None
    cpu: dict[str, float] = field(default_factory=dict)
    worker_cpu: float = 0.0  # CPU seconds of the worker from its start to done
    machine_busy_worker: float = 0.0  # all processes' CPU seconds over the same interval
    wall: float = 0.0
    rows_read: int = 0  # rows of the tables whose snapshot was done when the run ended
    connect_gc: float | None = None  # seconds Connect's JVM spent collecting garbage

    def per_row(self, part: str) -> float:
        """CPU microseconds of `part` per snapshotted row."""
        return self.cpu.get(part, 0.0) / max(1, self.rows_read) * 1e6


class Probe:
    """High watermarks of the raw topics and the worker group's committed offsets, with one
    long-lived client each (a few cheap requests per second)."""

    def __init__(self, bootstrap: KafkaSettings | str, group: str) -> None:
        from confluent_kafka import Consumer

        self.consumer = Consumer(
            client_config(bootstrap, {"group.id": "seam-backfill-probe", "log_level": 0})
        )
        self.group = Consumer(client_config(bootstrap, {"group.id": group, "log_level": 0}))
        self._partitions: dict[str, list[int]] = {}

    def close(self) -> None:
        self.consumer.close()
        self.group.close()

    def partitions(self, topic: str) -> list[int]:
        if topic not in self._partitions:
            meta = self.consumer.list_topics(topic, timeout=5).topics.get(topic)
            if meta is None or meta.error is not None or not meta.partitions:
                return []
            self._partitions[topic] = sorted(meta.partitions)
        return self._partitions[topic]

    def end(self, topic: str) -> int:
        from confluent_kafka import KafkaException, TopicPartition

        total = 0
        for p in self.partitions(topic):
            # A topic just made has no leader for a moment: nothing on it yet.
            with contextlib.suppress(KafkaException):
                watermarks = self.consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=5
                )
                total += watermarks[1]
        return total

    def committed(self, topic: str) -> int:
        from confluent_kafka import TopicPartition

        parts = [TopicPartition(topic, p) for p in self.partitions(topic)]
        if not parts:
            return 0
        return sum(max(0, tp.offset) for tp in self.group.committed(parts, timeout=5))


def one_run(
    db: LegacyDatabase,
    rows: dict[str, int],
    args: argparse.Namespace,
    overrides: dict[str, str],
) -> Result:
    result = Result()
    with Run(db) as run:
        spec = run.write_spec(overrides)
        pipeline, data = run.write_pipeline()
        products_topic = run.topics.raw("products")
        probe = Probe(run.bootstrap, data["group"])
        run.callback(probe.close)
        pids = stack_pids(run.settings)
        pids.pop("mariadb" if db.flavour == "postgres" else "postgres", None)
        meter = CpuMeter(pids, with_children={"postgres"})
        worker: Any = None
        worker_cpu_at = machine_at = 0.0

        def start_worker(t: float, *options: str) -> Any:
            nonlocal worker_cpu_at, machine_at
            proc = run.start_worker(pipeline, *options, *shlex.split(args.worker_args))
            meter.pids["worker"] = proc.pid
            result.worker_started = t
            worker_cpu_at, machine_at = 0.0, machine_cpu()[0]
            return proc

        gc_before = jvm_gc_seconds(pids["connect"]) if "connect" in pids else None
        meter.start()
        t0 = time.monotonic()
        run.apply(spec, wait=False)
        print(f"  applied {run.name} in {time.monotonic() - t0:.1f}s", flush=True)
        pending = {t: n for t, n in rows.items() if n > 0}
        deadline = t0 + args.timeout
        checked = 0.0
        while time.monotonic() < deadline:
            now = time.monotonic() - t0
            meter.sample()
            if now - checked > 2.0:
                checked = now
                run.check_connector()
            if worker is not None:
                worker_cpu_at = process_cpu(worker.pid) or worker_cpu_at
            ends = {t: probe.end(run.topics.raw(t)) for t in list(pending)}
            if result.first_product is None and ends.get("products", rows["products"]) > 0:
                result.first_product = now
                # The worker needs its input topic: it starts with the first product record.
                if args.worker == "concurrent":
                    worker = start_worker(now)
            for table, end in ends.items():
                if end >= pending[table]:
                    del pending[table]
                    if table == "products":
                        result.products_done = now
                        print(f"  t={now:6.1f}s last product record on {products_topic}")
                        if args.worker == "after":
                            worker = start_worker(now, "--until-caught-up")
            if not pending and result.snapshot_done is None:
                result.snapshot_done = now
                print(f"  t={now:6.1f}s snapshot of every table done", flush=True)
            if worker is not None and result.worker_done is None:
                if probe.committed(products_topic) >= rows["products"]:
                    result.worker_done = now
                    result.worker_cpu = worker_cpu_at
                    result.machine_busy_worker = machine_cpu()[0] - machine_at
                    print(f"  t={now:6.1f}s last domain event readable", flush=True)
                elif worker.poll() is not None and worker.returncode != 0:
                    raise SystemExit(
                        f"the worker failed ({worker.returncode}):\n{run.worker_log()}"
                    )
            snapshot = result.snapshot_done if args.until == "all" else result.products_done
            if snapshot is not None and (args.worker == "none" or result.worker_done is not None):
                break
            time.sleep(0.2)
        else:
            raise SystemExit(f"not done within --timeout {args.timeout:.0f}s")
        if worker is not None:
            if args.worker == "concurrent":
                stop_process(worker)
            else:
                worker.wait(60)
            result.worker_exited = time.monotonic() - t0
        result.rows_read = sum(n for table, n in rows.items() if table not in pending)
        result.cpu = meter.stop()
        gc_after = jvm_gc_seconds(pids["connect"]) if "connect" in pids else None
        if gc_before is not None and gc_after is not None:
            result.connect_gc = gc_after - gc_before
        result.wall = meter.wall
        if worker is not None:
            print(f"  worker: {run.worker_log().strip().splitlines()[-1:]}")
    return result


def report(result: Result, rows: dict[str, int], args: argparse.Namespace) -> None:
    n = rows["products"]
    total_rows = sum(rows.values())

    def t(value: float | None) -> str:
        return "-" if value is None else f"{value:6.1f}s"

    print(f"  apply -> first product record      {t(result.first_product)}")
    rate = n / result.products_done if result.products_done else 0.0
    print(f"  apply -> last product record       {t(result.products_done)}  ({rate:,.0f} rows/s)")
    rate = total_rows / result.snapshot_done if result.snapshot_done else 0.0
    print(
        f"  apply -> snapshot of every table   {t(result.snapshot_done)}  "
        f"({total_rows:,} rows, {rate:,.0f} rows/s)"
    )
    if result.worker_started is not None and result.worker_done is not None:
        took = result.worker_done - result.worker_started
        cpu = result.worker_cpu
        share = cpu / result.machine_busy_worker * 100 if result.machine_busy_worker else 0.0
        print(
            f"  worker: started t={result.worker_started:.1f}s, done after {took:.1f}s "
            f"({n / took if took else 0:,.0f} records/s); CPU {cpu:.1f}s = "
            f"{cpu / took * 100 if took else 0:.0f}% of one core, {share:.0f}% of all busy CPU, "
            f"{cpu / n * 1e6:.1f} us/record"
        )
        verdict = "met" if result.worker_done <= TARGET_S else "NOT met"
        print(
            f"  apply -> last domain event readable {t(result.worker_done)}  "
            f"target <= {TARGET_S:.0f}s: {verdict}"
        )
    parts = [
        f"{name} {used:.1f}s ({result.per_row(name):.1f} us/row)"
        for name, used in result.cpu.items()
    ]
    print(f"  CPU over {result.wall:.1f}s, {result.rows_read:,} rows read: " + "; ".join(parts))
    if result.connect_gc is not None:
        print(f"  Connect's JVM spent {result.connect_gc:.1f}s collecting garbage")


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The description as written, and each option's default."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--products", type=int, default=1_000_000, help="products seeded")
    parser.add_argument("--database", choices=("postgres", "mariadb"), default="postgres")
    parser.add_argument(
        "--worker",
        choices=("concurrent", "after", "none"),
        default="concurrent",
        help="start the worker with the first product record, after the last, or not at all",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs on the one seeded database")
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
        "--variant",
        action="append",
        default=[],
        metavar="K=V,K=V",
        help="a set of overrides to compare ('' for the rendered defaults; repeatable)",
    )
    parser.add_argument(
        "--until",
        choices=("products", "all"),
        default="products",
        help="a run ends when the products (and the worker) are done, or every table too",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per run at most")
    parser.add_argument(
        "--private-stack", action="store_true", help="start a stack of its own, wiped at the end"
    )
    parser.add_argument("--keep", action="store_true", help="keep the seeded database")
    parser.add_argument(
        "--seeded",
        default="",
        metavar="DBNAME",
        help="use the database an earlier --keep run seeded (skips the seed; kept)",
    )
    args = parser.parse_args()
    overrides = parse_overrides(args.override)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress, when piped

    with (
        maybe_private_stack(args.private_stack),
        LegacyDatabase(args.database, label="bf", keep=args.keep, existing=args.seeded) as db,
    ):
        seeded = 0.0 if args.seeded else db.seed(args.products)
        rows = {table: db.count(table) for table in TABLES}
        args.products = rows["products"]
        print(
            f"seeded {args.products:,} products ({sum(rows.values()):,} rows in "
            f"{len(rows)} tables) into {db.dbname} in {seeded:.1f}s; worker: {args.worker}"
            + (f"; overrides {overrides}" if overrides else ""),
            flush=True,
        )
        variants = [parse_overrides([p for p in v.split(",") if p]) for v in args.variant] or [{}]
        results: dict[int, list[Result]] = {i: [] for i in range(len(variants))}
        # Variants take turns (A, B, A, B, ...): a noisy stretch of the machine weighs on all.
        for rep in range(args.repeat):
            for i, variant in enumerate(variants):
                label = f" variant {i + 1} {variant}" if len(variants) > 1 else ""
                print(f"--- run {rep + 1}/{args.repeat}{label}", flush=True)
                result = one_run(db, rows, args, {**overrides, **variant})
                report(result, rows, args)
                results[i].append(result)
        for i, variant in enumerate(variants):
            summarise(results[i], rows, args, variant if len(variants) > 1 else None)


def summarise(
    results: list[Result], rows: dict[str, int], args: argparse.Namespace, variant: Any
) -> None:
    def values(pick: str) -> list[float]:
        return [v for r in results if (v := getattr(r, pick)) is not None]

    label = f" variant {variant}" if variant is not None else ""
    print(f"--- summary{label}: median (range) of {len(results)} run(s), seconds from apply")
    print(f"  last product record      {median_range(values('products_done'))}")
    print(f"  snapshot of every table  {median_range(values('snapshot_done'))}")
    if args.worker != "none":
        took = [
            r.worker_done - r.worker_started
            for r in results
            if r.worker_done is not None and r.worker_started is not None
        ]
        us = [r.worker_cpu / rows["products"] * 1e6 for r in results if r.worker_done]
        print(f"  worker time              {median_range(took)}")
        print(f"  worker CPU us/record     {median_range(us)}")
        print(f"  last domain event        {median_range(values('worker_done'))}")
    gc = [r.connect_gc for r in results if r.connect_gc is not None]
    if gc:
        print(f"  Connect GC seconds       {median_range(gc)}")
    for part in ("connect", "kafka", "postgres", "mariadb", "machine"):
        used = [r.per_row(part) for r in results if part in r.cpu]
        if used:
            print(f"  {part + ' CPU us/row':24} {median_range(used)}")


if __name__ == "__main__":
    main()

"""How fast the transform worker turns raw change events into domain events, in one process.

    .venv/bin/python benchmarks/transform_benchmark.py                  # 200,000 events
    .venv/bin/python benchmarks/transform_benchmark.py --events 1000000 --modes exactly_once
    .venv/bin/python benchmarks/transform_benchmark.py --repeat 5         # medians of 5 runs
    .venv/bin/python benchmarks/transform_benchmark.py --pipeline stock   # a non-catalog table

Produces synthetic typical catalog change events (the legacy generator's rows with all their
warts: snapshot reads, then updates that reprice, rename, recategorise, discontinue,
soft-delete) to a fresh raw topic, then runs, each with its own group and output topics:

* pass-through: consume + produce each record unchanged (no stages, no transaction);
* at_least_once: the full catalog pipeline, produce then commit offsets;
* exactly_once: the full pipeline, one transaction per batch;
* output_floor: at-least-once, producing the very records the at_least_once mode produces
  (the pool's publications, computed before the run) with no transform at all: what the
  output alone costs (two records per input, headers, twice the bytes), so the highest
  ALO / pass-through ratio any transform could reach.

The catalog pipeline is declared (legacy_db/pipelines/tables/catalog.yaml): both full-pipeline
modes run it on the compiled engine (transforms/native, seam_engine) unless `--no-fast-path`
sends every record through the Python stages. The process (the worker and
its librdkafka threads) is pinned to one core unless `--all-cores`.

Prints events/s (input records per second from the first batch to the last) and the ratios
against the targets (ALO >= 50,000/s, ALO >= 60% of pass-through, EOS >= 85% of ALO, ALO's
worker CPU per record <= 1.6x the output floor's), and
the process RSS at intervals (flat over a long run = no leak). Also the worker process's CPU
time per input record (its librdkafka threads included): on a machine shared with the broker
and other work, throughput swings by +-20% between identical runs, CPU per record much less.
Deletes its topics at the end.

    .venv/bin/python benchmarks/transform_benchmark.py --stage-cpu      # no Kafka

`--stage-cpu` runs the same pool through the catalog pipeline in this process and prints
the CPU microseconds per input record of each stage (and of the whole run of one record
through all stages), the best of a few repetitions: the figure to watch when optimising the
stages, much steadier than throughput on a machine shared with the broker.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import multiprocessing
import os
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from seam.changes import RawRecord
from seam.kafka_config import KafkaSettings, client_config
from seam.legacy_db.files import pipeline_document
from seam.legacy_db.synthetic import (
    envelope,
    reference_rows,
    typical_changes,
    typical_stock_changes,
)
from seam.settings import load_settings
from seam.transforms.delivery import produce_when_room
from seam.transforms.fast_path import FastPath, load_fast_path
from seam.transforms.outputs import Publication, publication
from seam.transforms.pipeline import Pipeline, Produced
from seam.transforms.pipeline_file import PipelineSpec, parse_pipeline
from seam.transforms.progress import Counts, Progress
from seam.transforms.worker import Worker, WorkerOptions

POOL = 20_000
# The example pipelines a run can take (--pipeline): its raw table and its pool of changes.
EXAMPLES: dict[str, tuple[str, Callable[[int], list[tuple[bytes, bytes]]]]] = {
    "catalog": ("products", typical_changes),
    "stock": ("stock_levels", typical_stock_changes),
}
_example = "catalog"  # set by main; children forked later see it too


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pool() -> list[tuple[bytes, bytes]]:
    return EXAMPLES[_example][1](POOL)


def catalog_data() -> dict[str, Any]:
    """The document of the example pipeline the run takes."""
    return pipeline_document(_example)


def raw_table() -> str:
    return EXAMPLES[_example][0]


def pool_in_process(
    data: dict[str, Any], folder: Path | None = None
) -> tuple[Pipeline, list[RawRecord], FastPath | None]:
    """The pipeline of `data` (a pipeline file's document; `folder`: the file's), its
    reference data loaded, the pool as raw records, and its compiled engine (or fast path):
    the stages run in this process, no Kafka."""
    spec = parse_pipeline(data, "in-process", folder=folder)
    pipeline = spec.build()
    server = data["inputs"][0].split(".")[0]  # the topics' prefix: catalog, or the run's own
    for i, (table, row) in enumerate(reference_rows(POOL)):
        key, value = envelope(table, "r", None, row, i + 1)
        pipeline.observe(RawRecord(key, value, f"{server}.public.{table}", 0, i))
    products = f"{server}.public.{raw_table()}"
    raws = [RawRecord(k, v, products, i % 4, i) for i, (k, v) in enumerate(pool())]
    return pipeline, raws, load_fast_path(spec, pipeline)


def stage_cpu(repeat: int = 5) -> None:
    """CPU us per input record of each stage of the catalog pipeline, on the pool."""
    import gc

    from seam.transforms.model import Item

    pipeline, raws, fast = pool_in_process(catalog_data())
    for raw in raws:  # warm up: rule memos, schema caches
        pipeline.run(raw)
    best: dict[str, float] = {}

    def keep(name: str, seconds: float) -> None:
        best[name] = min(best.get(name, seconds), seconds)

    for _ in range(repeat):
        started = time.process_time()
        for raw in raws:
            pipeline.run(raw)
        keep("all stages (Pipeline.run)", time.process_time() - started)
        # Stage by stage over the whole pool: the items of all records stay alive in
        # between, so collections would be timed too; they are not what is measured here.
        gc.disable()
        try:
            batches: list[list[Item]] = [[Item(raw)] for raw in raws]
            for stage in pipeline.stages:
                started = time.process_time()
                after: list[list[Item]] = []
                for items in batches:
                    out: list[Item] = []
                    try:
                        for item in items:
                            out.extend(stage.process(item))
                    except Exception:  # a rejected record goes no further
                        out = []
                    after.append(out)
                keep(stage.name, time.process_time() - started)
                batches = after
        finally:
            gc.enable()
    if fast is not None:
        for _ in range(repeat):
            started = time.process_time()
            for raw in raws:
                if fast.process(raw) is None:
                    pipeline.run(raw)
            keep("compiled (seam_engine)", time.process_time() - started)
    print(f"CPU us per input record ({len(raws):,} typical records, best of {repeat}):")
    for name, seconds in best.items():
        print(f"  {name:28} {seconds / len(raws) * 1e6:6.1f}")


class OutputFloor:
    """Stands in for the worker's fast path (`worker._handler.fast`): publishes the pool's
    precomputed publications in turn, one per input record. A plain loop, as tight as the
    engine's own: the worker's `_publish` adds ~2 us per record of Python around each
    produce, which the fast path does not pay. (The producer's queue holds far more than
    a batch, which is flushed at its end: no BufferError to retry.)"""

    def __init__(self, publications: list[Publication]) -> None:
        self._next = itertools.cycle(publications).__next__

    def publish(
        self,
        messages: list[Any],
        start: int,
        producer: Any,
        spec: PipelineSpec,
        batch: Counts,
        marks: Any,
    ) -> int:
        produce, history_topic, latest_topic = (
            producer.produce,
            spec.history.topic,
            spec.latest.topic,
        )
        for _ in range(start, len(messages)):
            history, (key, state), note = self._next()
            for event_key, event, headers in history:
                produce(history_topic, event, event_key, headers=headers)
            produce(latest_topic, state, key)
            batch.latest_out += 1
            if history:
                batch.records_with_events += 1
                batch.events_out += len(history)
            else:
                reason = note or "no event"
                batch.no_event[reason] = batch.no_event.get(reason, 0) + 1
        batch.records_in += len(messages) - start
        return len(messages)


def floor_publications_of(data: dict[str, Any], folder: Path | None = None) -> list[Publication]:
    """`floor_publications`, made in a child: generating the pool takes ~250 MB that this
    process would otherwise keep for the rest of its modes."""
    with multiprocessing.get_context("fork").Pool(1) as helper:
        publications: list[Publication] = helper.apply(floor_publications, (data, folder))
    return publications


def floor_publications(data: dict[str, Any], folder: Path | None = None) -> list[Publication]:
    """The pool's publications, as the ALO mode makes them, with the pipeline of `data`:
    by its compiled fast path, or by the Python stages for a pipeline without one (the same
    bytes: the fast path's parity tests hold it to them). Dead-lettered records are left out."""
    pipeline, raws, fast = pool_in_process(data, folder)
    spec = parse_pipeline(data, "in-process", folder=folder)
    if fast is not None:
        return [p for p in map(fast.process, raws) if p is not None]
    outcomes = (pipeline.run(raw) for raw in raws)
    return [publication(o, spec.history.key) for o in outcomes if isinstance(o, Produced)]


def produce(bootstrap: KafkaSettings | str, prefix: str, events: int) -> None:
    from confluent_kafka import Producer

    raw = f"{prefix}.public.{raw_table()}"
    producer = Producer(
        client_config(
            bootstrap,
            {
                "linger.ms": 20,
                "compression.type": "lz4",
                "queue.buffering.max.messages": 1_000_000,
                "partitioner": "murmur2_random",
            },
        )
    )
    for i, (table, row) in enumerate(reference_rows(POOL)):
        key, value = envelope(table, "r", None, row, i + 1)
        producer.produce(f"{prefix}.public.{table}", value, key)
    records = pool()
    started = time.perf_counter()
    for i in range(events):
        key, value = records[i % POOL]
        produce_when_room(producer, raw, key, value)
    producer.flush(120)
    size = sum(len(v) for _, v in records) / POOL
    print(
        f"produced {events:,} records (avg {size:.0f} B) in {time.perf_counter() - started:.1f}s",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument(
        "--pipeline",
        choices=sorted(EXAMPLES),
        default="catalog",
        help="the example's declared pipeline: catalog (products, two lookups) or stock "
        "(stock_levels: a composite key, no lookup)",
    )
    parser.add_argument("--modes", default="passthrough,at_least_once,exactly_once,output_floor")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=PipelineSpec.batch_size,
        help="the most records per batch (default: the pipelines' default)",
    )
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per mode, taking turns; figures are medians"
    )
    parser.add_argument("--stage-cpu", action="store_true", help="per-stage CPU us, no Kafka")
    parser.add_argument(
        "--no-fast-path", action="store_true", help="every record through the Python stages"
    )
    parser.add_argument(
        "--all-cores", action="store_true", help="do not pin this process to one core"
    )
    parser.add_argument(
        "--no-own-writes",
        action="store_true",
        help="drop the pipeline's own_writes (the catalog's PostgreSQL ledger): its cost is "
        "the difference",
    )
    args = parser.parse_args()
    global _example
    _example = args.pipeline
    if args.stage_cpu:
        stage_cpu()
        return
    if not args.all_cores:
        # "On one core": the worker and its librdkafka threads share one CPU (the broker and
        # the rest of the machine may use every core, as they would anyway).
        core = max(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        print(f"pinned to core {core} (--all-cores to lift)")

    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    bootstrap = load_settings().kafka
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    raw = f"{prefix}.public.{raw_table()}"
    admin = AdminClient(client_config(bootstrap))
    topics = {
        raw: args.partitions,
        f"{prefix}.public.categories": 1,
        f"{prefix}.public.suppliers": 1,
    }
    try:
        for future in admin.create_topics(
            [NewTopic(t, num_partitions=n, replication_factor=1) for t, n in topics.items()]
        ).values():
            future.result(30)
    except (TimeoutError, KafkaException) as exc:
        raise SystemExit(
            f"cannot create the benchmark's topics on {bootstrap.bootstrap_servers} ({str(exc) or 'timed out'}): "
            "is the stack up? (SEAM_CONFIG names its settings)"
        ) from None
    try:
        # Produced by a child process, so this process's RSS is the worker's alone.
        child = multiprocessing.get_context("fork").Process(
            target=produce, args=(bootstrap, prefix, args.events)
        )
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"producing the raw records failed ({child.exitcode})")
        print(f"rss before the first worker: {rss_mb():.0f} MB")

        runs: dict[str, list[float]] = {}
        rss: dict[str, list[tuple[int, float]]] = {}
        cpu_runs: dict[str, list[float]] = {}
        # Modes take turns (pass-through, ALO, EOS, pass-through, ...): a noisy stretch of
        # the machine then weighs on every mode alike.
        for rep, mode in [(r, m) for r in range(args.repeat) for m in args.modes.split(",")]:
            data = catalog_data()
            text = yaml.safe_dump(data).replace("catalog.", f"{prefix}.")
            data = yaml.safe_load(text)
            data["group"] = f"{prefix}-{mode}-{rep}"
            for out in data["outputs"].values():
                out["topic"] += f".{mode}{rep}"
                out["partitions"] = args.partitions
            data["processing"] = {
                **data.get("processing", {}),
                "guarantee": "at_least_once" if mode != "exactly_once" else "exactly_once",
                "batch_size": args.batch_size,
                "batch_timeout_ms": PipelineSpec.batch_timeout_ms,
            }
            if args.no_own_writes:
                data.pop("own_writes", None)
            spec = parse_pipeline(data, f"bench-{mode}")
            pipeline = Pipeline([]) if mode == "passthrough" else None
            samples: list[tuple[float, int, float]] = []

            def sample(
                p: Progress, samples: list[tuple[float, int, float]] = samples, mode: str = mode
            ) -> None:
                samples.append((p.elapsed, p.counts.records_in, rss_mb()))
                print(
                    f"  {mode:14} t={p.elapsed:6.1f}s in={p.counts.records_in:>9,} "
                    f"rate={p.rate:>9,.0f}/s rss={rss_mb():6.1f} MB",
                    flush=True,
                )

            worker = Worker(
                spec,
                bootstrap,
                WorkerOptions(
                    instance_id="bench",
                    max_records=args.events,
                    progress_interval=5.0,
                    fast_path=not args.no_fast_path,
                ),
                pipeline=pipeline,
                on_progress=sample,
            )
            if mode == "output_floor":
                worker._handler.fast = OutputFloor(floor_publications_of(data))  # type: ignore[assignment]
            cpu_started = time.process_time()
            progress = worker.run()
            ledger = worker._ledger
            if ledger is not None and ledger.catch_ups:
                print(
                    f"  own-writes ledger: {ledger.catch_ups:,} reads to its end offsets, "
                    f"{ledger.seconds / ledger.catch_ups * 1000:.2f} ms per batch "
                    f"({ledger.seconds:.2f} s in all), its start {ledger.start_seconds:.2f} s"
                )
            del worker  # and the output floor's publications with it, before the next mode
            # CPU of this process (the worker and its librdkafka threads) per input record,
            # setup included: steadier than throughput when others share the machine, and
            # 1e6 / cpu_us is what one dedicated core could sustain.
            cpu_runs.setdefault(mode, []).append(
                (time.process_time() - cpu_started) / max(1, progress.counts.records_in) * 1e6
            )
            rss[mode] = [(n, mb) for _t, n, mb in samples]
            first, last = progress.first_input_at, progress.last_input_at
            seconds = last - first if first is not None and last is not None else 0.0
            # The first batch's records are not inside the interval: leave them out.
            first_batch = min(args.batch_size, progress.counts.records_in)
            rate = (progress.counts.records_in - first_batch) / seconds if seconds > 0 else 0.0
            runs.setdefault(mode, []).append(rate)
            c = progress.counts
            print(
                f"{mode:14} records={c.records_in:,} events={c.events_out:,} latest={c.latest_out:,} "
                f"dead={c.dead_lettered:,} no_event={sum(c.no_event.values()):,} native={c.native:,} "
                f"balanced={c.balanced} "
                f"seconds={seconds:.2f} events/s={rate:,.0f} rss={rss_mb():.0f}MB"
            )
        results = {mode: statistics.median(rates) for mode, rates in runs.items()}
        cpu_us = {mode: statistics.median(cpus) for mode, cpus in cpu_runs.items()}
        print(
            f"--- summary (fast path: {'off' if args.no_fast_path else 'on'}; "
            f"median of {args.repeat} run{'s' if args.repeat > 1 else ''} per mode)"
        )
        for mode, rate in results.items():
            cpu = cpu_us.get(mode, 0.0)
            spread = f" ({min(runs[mode]):,.0f}-{max(runs[mode]):,.0f})" if args.repeat > 1 else ""
            print(
                f"{mode:14} {rate:>10,.0f} input records/s{spread}   worker CPU {cpu:5.1f} "
                f"us/record (one core: {1e6 / cpu if cpu else 0:,.0f}/s)"
            )
        alo, eos, passthrough = (
            results.get("at_least_once"),
            results.get("exactly_once"),
            results.get("passthrough"),
        )

        def verdict(ok: bool) -> str:
            return "met" if ok else "NOT met"

        if alo:
            print(f"ALO >= 50,000/s              {alo:>10,.0f}/s  {verdict(alo >= 50_000)}")
        if alo and passthrough:
            ratio = alo / passthrough
            print(f"ALO / pass-through >= 60%    {ratio:>10.0%}    {verdict(ratio >= 0.6)}")
        floor_rate = results.get("output_floor")
        if floor_rate and passthrough:
            print(
                f"output floor / pass-through {floor_rate / passthrough:>10.0%}    "
                "(ALO's outputs with no transform: the ceiling of the ratio above)"
            )
        if alo and eos:
            ratio = eos / alo
            print(f"EOS / ALO >= 85%             {ratio:>10.0%}    {verdict(ratio >= 0.85)}")
        floor_cpu = cpu_us.get("output_floor")
        if cpu_us.get("at_least_once") and floor_cpu:
            ratio = cpu_us["at_least_once"] / floor_cpu
            print(
                f"ALO CPU / output floor CPU <= 1.6x {ratio:>6.2f}x    {verdict(ratio <= 1.6)} "
                "(worker CPU per input record, same run)"
            )
        alo_cpu, pass_cpu = cpu_us.get("at_least_once"), cpu_us.get("passthrough")
        if alo_cpu and pass_cpu:
            # Pass-through is bound by the broker (little worker CPU), ALO by the worker's
            # CPU: the difference is what the stages and their outputs cost per record.
            print(
                f"worker CPU per record: ALO {alo_cpu:.1f} us - pass-through {pass_cpu:.1f} us "
                f"= {alo_cpu - pass_cpu:.1f} us for the stages and their outputs"
            )
        for mode, points in rss.items():
            if not points:
                continue
            shown = ", ".join(f"{n:,}:{mb:.0f}" for n, mb in points)
            # Flat: after the first quarter (buffers and memos filled) it grows < 10%.
            settled = [mb for n, mb in points if n >= args.events // 4] or [points[-1][1]]
            growth = max(settled) / settled[0] - 1 if settled[0] else 0.0
            print(
                f"RSS {mode:14} records:MB {shown}\n"
                f"    after the first quarter {settled[0]:.0f} -> max {max(settled):.0f} MB "
                f"({growth:+.0%}): {'flat' if growth < 0.10 else 'GROWING'}"
            )
    finally:
        names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
        with contextlib.suppress(Exception):
            for future in admin.delete_topics(names).values():
                future.result(30)


if __name__ == "__main__":
    main()

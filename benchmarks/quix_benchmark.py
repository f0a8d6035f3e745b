"""seam's transform worker against Quix Streams on the same job, side by side in one run.

Quix Streams is an optional extra (`bench`) that pins confluent-kafka itself (3.28: <2.13,
older than seam's own venv gets): give it a venv of its own, with the example's compiled
fast path, so that both frameworks run on the same confluent-kafka/librdkafka:

    python3 -m venv .venv-bench
    .venv-bench/bin/pip install -e '.[bench]' ./transforms/native
    SEAM_CONFIG=/work/devstack/seam.toml .venv-bench/bin/python benchmarks/quix_benchmark.py --repeat 3
    .venv-bench/bin/python benchmarks/quix_benchmark.py --pipeline my/catalog.yaml --events 100000
    .venv-bench/bin/python benchmarks/quix_benchmark.py --profile quix_alo,seam_alo_python
    .venv-bench/bin/python benchmarks/quix_benchmark.py --stage-cost     # no Kafka

One raw topic is seeded with typical catalog change records (as transform_benchmark.py
does), then every mode reads all of it, each with its own group and output topics, in a
fresh child process (one core unless --all-cores), modes taking turns over --repeat rounds:

* passthrough, output_floor: seam's worker copying records / producing the pipeline's
  precomputed outputs with no transform (see transform_benchmark.py);
* seam_alo, seam_eos: seam's worker on the pipeline (--pipeline, default the example's
  legacy_db/pipelines/catalog.yaml), its compiled fast path on, at least / exactly once;
* seam_alo_python, seam_eos_python: the same with every record through the Python stages;
* quix_alo, quix_eos: a Quix Streams application doing the same job with the very same
  stage objects (built by seam's pipeline loader from the pipeline file, reference data
  loaded first, as the worker does): raw record -> `Pipeline.run` -> the same encoded
  history events, latest states and dead letters (`sdf.apply(..., expand=True)`, headers by
  `set_headers`, topic chosen per output by `to_topic`), processing_guarantee at-least-once
  / exactly-once, everything else Quix's defaults (it commits every 5 s; seam per batch);
* touch_seam_alo/eos, touch_quix_alo/eos: the trivial user stage (trivial_stage.touch:
  decode the value's JSON, add a field): under seam a pipeline `decode` + that stage, under
  Quix `sdf.apply(touch)`; both produce the result to a history and a latest topic keyed by
  the input key. The stage's own cost is measured alone, in a loop over the same records.

For each mode: input records/s (from the first record processed to the last, first batch
excluded for seam) and the worker process's CPU per input record (user+sys of the child
process, librdkafka's threads included, setup included): medians and ranges over the
rounds. Then the ratios issue 12 names: compiled seam's throughput (and CPU) against
Quix's on the same rules (target >= 5x), and the trivial stage's framework overhead, CPU
per record minus the stage's own cost, Quix's over seam's (target >= 1.5x).

--profile MODES runs those modes once each under cProfile (main thread only: librdkafka's
threads are not in it) and prints the top entries by own time, instead of measuring.
Deletes the topics and groups it made.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import importlib.metadata
import io
import multiprocessing
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from transform_benchmark import OutputFloor, floor_publications, pool, produce
from trivial_stage import touch

from seam.changes import RawRecord
from seam.kafka_config import KafkaSettings, client_config
from seam.legacy_db.files import folder as example_folder
from seam.settings import load_settings
from seam.transforms.clients import KafkaClients
from seam.transforms.handling import DLQ_PREFIX
from seam.transforms.outputs import publication
from seam.transforms.pipeline import Pipeline, Produced
from seam.transforms.pipeline_file import PipelineSpec, parse_pipeline
from seam.transforms.reference import ReferenceFeed
from seam.transforms.worker import Worker, WorkerOptions

BENCHMARKS = Path(__file__).resolve().parent
QUIX_MISSING = (
    "Quix Streams is not installed here: python3 -m venv .venv-bench && "
    ".venv-bench/bin/pip install -e '.[bench]' ./transforms/native, then run this with "
    ".venv-bench/bin/python (it pins its own confluent-kafka)"
)
SEAM_MODES = (
    "passthrough",
    "output_floor",
    "seam_alo",
    "seam_eos",
    "seam_alo_python",
    "seam_eos_python",
)
QUIX_MODES = ("quix_alo", "quix_eos")
TOUCH_MODES = ("touch_seam_alo", "touch_seam_eos", "touch_quix_alo", "touch_quix_eos")
ALL_MODES = SEAM_MODES + QUIX_MODES + TOUCH_MODES


# ---------------------------------------------------------------------------- figures


class Spread(NamedTuple):
    median: float
    low: float
    high: float


def spread(values: Iterable[float]) -> Spread:
    """Median and range of `values` (at least one)."""
    data = list(values)
    return Spread(statistics.median(data), min(data), max(data))


@dataclass(frozen=True)
class Ratio:
    label: str
    value: float
    target: float | None = None  # the bar, when it sets one

    @property
    def verdict(self) -> str:
        if self.target is None:
            return ""
        return "met" if self.value >= self.target else "NOT met"


def ratios(rate: dict[str, float], cpu_us: dict[str, float], stage_us: float | None) -> list[Ratio]:
    """The comparisons the issue names, from the medians of each mode (records/s and worker
    CPU us per input record); a comparison whose modes did not run is left out.

    Compiled: seam with its fast path against Quix on the same rules, by throughput and by
    CPU per record (the steadier of the two on a shared machine), target 5x. A user's Python
    stage: framework overhead = CPU per record - the stage's own cost, Quix's over seam's,
    target 1.5x."""
    found: list[Ratio] = []
    for guarantee in ("alo", "eos"):
        seam, seam_py, quix = f"seam_{guarantee}", f"seam_{guarantee}_python", f"quix_{guarantee}"
        name = guarantee.upper()
        if rate.get(seam) and rate.get(quix):
            found.append(
                Ratio(f"{name} compiled seam / Quix, records/s", rate[seam] / rate[quix], 5.0)
            )
        if cpu_us.get(seam) and cpu_us.get(quix):
            found.append(
                Ratio(
                    f"{name} compiled seam / Quix, by CPU per record",
                    cpu_us[quix] / cpu_us[seam],
                    5.0,
                )
            )
        if cpu_us.get(seam_py) and cpu_us.get(quix):
            found.append(
                Ratio(
                    f"{name} Python stages seam / Quix, by CPU per record",
                    cpu_us[quix] / cpu_us[seam_py],
                )
            )
        touch_seam, touch_quix = f"touch_seam_{guarantee}", f"touch_quix_{guarantee}"
        if stage_us is not None and touch_seam in cpu_us and touch_quix in cpu_us:
            seam_over = cpu_us[touch_seam] - stage_us
            quix_over = cpu_us[touch_quix] - stage_us
            if seam_over > 0:
                found.append(
                    Ratio(
                        f"{name} user stage: Quix overhead / seam overhead",
                        quix_over / seam_over,
                        1.5,
                    )
                )
    return found


# ---------------------------------------------------------------------------- the runs


@dataclass(frozen=True)
class Run:
    """One mode's run, as its child process measured it."""

    records: int  # input records processed
    timed: int  # of them, those processed inside `seconds`
    seconds: float  # from the first record (seam: batch) processed to the last
    cpu_seconds: float  # user+sys of the process, its threads included, setup included
    cpu_timed: float  # of it, what was spent inside `seconds`
    detail: str = ""

    @property
    def rate(self) -> float:
        return self.timed / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us(self) -> float:
        """CPU per record while records flow: setup (group join, topics, reference data,
        schemas) and shutdown left out, so the figure does not depend on the run's length."""
        return self.cpu_timed / max(1, self.timed) * 1e6

    @property
    def cpu_us_all(self) -> float:
        """CPU per record over the whole run, setup and shutdown included."""
        return self.cpu_seconds / max(1, self.records) * 1e6


def in_child(target: Callable[..., Run], *args: Any) -> Run:
    """`target(*args)` in a fresh process: its CPU and memory are its own, and no client
    of an earlier run (librdkafka threads finishing up) is counted."""
    with multiprocessing.get_context("fork").Pool(1, maxtasksperchild=1) as child:
        run: Run = child.apply(target, args)
    return run


@contextlib.contextmanager
def profiled(enabled: bool, title: str, top: int = 12) -> Any:
    if not enabled:
        yield
        return
    profile = cProfile.Profile()
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(top)
        text = out.getvalue()
        print(f"--- profile of {title} (main thread, top {top} by own time)")
        print(text[text.find("   ncalls") :].rstrip(), flush=True)


def run_seam(
    spec: PipelineSpec,
    kafka: KafkaSettings,
    events: int,
    fast_path: bool,
    floor_data: dict[str, Any] | None,
    profile: str,
) -> Run:
    pipeline = Pipeline([]) if spec.name == "passthrough" else spec.build()
    floor = None if floor_data is None else OutputFloor(floor_publications(floor_data, spec.folder))
    started = time.process_time()
    with profiled(bool(profile), profile):
        worker = Worker(
            spec,
            kafka,
            WorkerOptions(
                instance_id="bench",
                max_records=events,
                progress_interval=3600.0,
                fast_path=fast_path,
            ),
            pipeline=pipeline,
        )
        if floor is not None:
            worker._handler.fast = floor  # type: ignore[assignment]
        # The CPU used when each batch is done: the first and last mark the timed interval,
        # as progress.first_input_at and last_input_at mark its time.
        done: list[float] = []
        process_batch = worker._process_batch

        def timed_batch(messages: list[Any]) -> None:
            process_batch(messages)
            done.append(time.process_time())

        worker._process_batch = timed_batch  # type: ignore[method-assign]
        progress = worker.run()
    cpu = time.process_time() - started
    c = progress.counts
    first, last = progress.first_input_at, progress.last_input_at
    seconds = last - first if first is not None and last is not None else 0.0
    # The first batch ends where the interval starts: its records are not inside it.
    timed = c.records_in - min(spec.batch_size, c.records_in)
    detail = (
        f"events={c.events_out:,} latest={c.latest_out:,} dead={c.dead_lettered:,} "
        f"no_event={sum(c.no_event.values()):,} native={c.native:,} balanced={c.balanced}"
    )
    return Run(c.records_in, timed, seconds, cpu, done[-1] - done[0] if done else 0.0, detail)


def run_quix(
    spec: PipelineSpec,
    kafka: KafkaSettings,
    events: int,
    job: str,
    profile: str,
) -> Run:
    """The same job as seam's worker, as a Quix Streams application (`job`: "pipeline" or
    "touch")."""
    from quixstreams import Application, message_context
    from quixstreams.kafka.configuration import ConnectionConfig
    from quixstreams.models.serializers import Serializer

    pipeline = spec.build() if job == "pipeline" else None
    state_dir = tempfile.mkdtemp(prefix="quix-bench-state-")
    seen = {"count": 0, "first": 0.0, "last": 0.0, "cpu_first": 0.0, "cpu_last": 0.0}
    started = time.process_time()
    try:
        with profiled(bool(profile), profile):
            # As the worker's setup does: the output topics, then the reference data.
            KafkaClients(kafka).prepare(spec, pipeline.reference_topics if pipeline else [], 30.0)
            if pipeline is not None and pipeline.reference_topics:
                from confluent_kafka import Consumer

                feed = ReferenceFeed(
                    pipeline, lambda conf: Consumer(client_config(kafka, conf)), 60.0
                )
                feed.load(lambda: False)
                feed.close()

            app: Any = None

            def processed(topic: str, partition: int, offset: int) -> None:
                now = time.perf_counter()
                seen["count"] += 1
                if seen["count"] == 1:
                    seen["first"], seen["cpu_first"] = now, time.process_time()
                seen["last"] = now
                if seen["count"] >= events:
                    seen["cpu_last"] = time.process_time()
                    app.stop()

            app = Application(
                broker_address=ConnectionConfig.from_librdkafka_dict(
                    client_config(kafka), ignore_extras=True
                ),
                consumer_group=spec.group,
                processing_guarantee="exactly-once"
                if spec.guarantee == "exactly_once"
                else "at-least-once",
                auto_offset_reset="earliest",
                state_dir=state_dir,
                loglevel="WARNING",
                auto_create_topics=False,
                use_changelog_topics=False,
                on_message_processed=processed,
            )
            source = app.topic(spec.inputs[0], key_deserializer="bytes", value_deserializer="bytes")
            sdf = app.dataframe(source)
            if pipeline is None:
                # The trivial stage: Quix decodes nothing (bytes in), the stage decodes and
                # Quix encodes its dict, to both topics, keyed by the input key.
                history = app.topic(
                    spec.history.topic, key_serializer="bytes", value_serializer="json"
                )
                latest = app.topic(
                    spec.latest.topic, key_serializer="bytes", value_serializer="json"
                )
                sdf = sdf.apply(touch)
                sdf.to_topic(history)
                sdf.to_topic(latest)
            else:

                class Encoded(Serializer):
                    """The output's value, encoded already by seam's `publication`."""

                    def __call__(self, value: Any, ctx: Any) -> Any:
                        return value[2]

                def out_topic(name: str) -> Any:
                    return app.topic(name, key_serializer="bytes", value_serializer=Encoded())

                history = out_topic(spec.history.topic)
                latest = out_topic(spec.latest.topic)
                dead = out_topic(spec.dead_letter.topic)
                stages, history_key, name = pipeline, spec.history.key, spec.name.encode()

                def outputs(value: Any, key: Any, timestamp: int, headers: Any) -> list[Any]:
                    """One raw record through the pipeline's stages: (topic, key, value,
                    headers) of each record the worker would produce for it."""
                    ctx = message_context()
                    raw = RawRecord(
                        key, value, ctx.topic, ctx.partition, ctx.offset, timestamp,
                        tuple(headers) if headers else (),
                    )  # fmt: skip
                    outcome = stages.run(raw)
                    if isinstance(outcome, Produced):
                        events_, state, _note = publication(outcome, history_key)
                        out = [(history, k, v, h) for k, v, h in events_]
                        if state is not None:
                            out.append((latest, state[0], state[1], []))
                        return out
                    # The worker's dead-letter headers (seam.transforms.handling).
                    reason = outcome.reason.encode("utf-8", "replace")[:4000]
                    return [
                        (
                            dead,
                            key,
                            value,
                            [
                                *raw.headers,
                                (DLQ_PREFIX + "pipeline", name),
                                (DLQ_PREFIX + "stage", outcome.stage.encode()),
                                (DLQ_PREFIX + "reason", reason),
                                (DLQ_PREFIX + "source.topic", raw.topic.encode()),
                                (DLQ_PREFIX + "source.partition", str(raw.partition).encode()),
                                (DLQ_PREFIX + "source.offset", str(raw.offset).encode()),
                            ],
                        )
                    ]

                sdf = sdf.apply(outputs, metadata=True, expand=True)
                sdf = sdf.set_headers(lambda value, key, timestamp, headers: value[3])
                sdf.to_topic(lambda value, key, timestamp, headers: value[0], key=lambda v: v[1])
            app.run()
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
    cpu = time.process_time() - started
    # The first record starts the interval: it is not inside it.
    count = int(seen["count"])
    timed_cpu = seen["cpu_last"] - seen["cpu_first"]
    return Run(count, max(0, count - 1), seen["last"] - seen["first"], cpu, timed_cpu)


# ---------------------------------------------------------------------------- the job


def guarantee(mode: str) -> str:
    """The processing guarantee of a mode: exactly once for the *eos* modes."""
    return "exactly_once" if "eos" in mode.split("_") else "at_least_once"


def pipeline_data(
    path: Path, prefix: str, mode: str, round_: int, partitions: int, batch_size: int
) -> dict[str, Any]:
    """The pipeline file at `path` for one run of `mode`: its topics renamed onto this
    run's raw topics (`<prefix>.public.<table>`), its outputs and group its own."""
    doc = yaml.safe_load(path.read_text())
    server = doc["inputs"][0].split(".")[0]  # the topics' prefix: catalog, in the example
    include = doc.pop("include", None)  # file names, not topics: kept as they are
    data: dict[str, Any] = yaml.safe_load(yaml.safe_dump(doc).replace(f"{server}.", f"{prefix}."))
    if include is not None:
        data["include"] = include
    if data["inputs"] != [f"{prefix}.public.products"]:
        raise SystemExit(
            f"{path}: the benchmark seeds <server>.public.products with catalog changes; "
            f"this pipeline reads {doc['inputs']}"
        )
    data["group"] = f"{prefix}-{mode}{round_}"
    for out in data["outputs"].values():
        out["topic"] += f".{mode}{round_}"
        out["partitions"] = partitions
    data["processing"] = {
        **data.get("processing", {}),
        "guarantee": guarantee(mode),
        "batch_size": batch_size,
    }
    return data


def touch_data(
    prefix: str, mode: str, round_: int, partitions: int, batch_size: int
) -> dict[str, Any]:
    """The trivial stage's pipeline for one run of `mode`: decode, then the stage."""
    name = f"{mode}{round_}"
    return {
        "name": "touch",
        "group": f"{prefix}-{name}",
        "inputs": [f"{prefix}.public.products"],
        "stages": [{"use": "decode"}, {"use": "trivial_stage:create"}],
        "outputs": {
            output: {"topic": f"{prefix}.{output}.{name}", "partitions": partitions}
            for output in ("history", "latest", "dead_letter")
        },
        "processing": {
            "guarantee": guarantee(mode),
            "batch_size": batch_size,
        },
    }


def one_run(
    mode: str,
    args: argparse.Namespace,
    prefix: str,
    kafka: KafkaSettings,
    round_: int,
    profile: bool,
) -> Run:
    title = mode if profile else ""
    if mode.startswith("touch_"):
        spec = parse_pipeline(
            touch_data(prefix, mode, round_, args.partitions, args.batch_size),
            mode,
            folder=BENCHMARKS,
        )
        if "_quix_" in mode:
            return in_child(run_quix, spec, kafka, args.events, "touch", title)
        return in_child(run_seam, spec, kafka, args.events, False, None, title)
    data = pipeline_data(args.pipeline, prefix, mode, round_, args.partitions, args.batch_size)
    if mode == "passthrough":
        data["name"] = "passthrough"
    spec = parse_pipeline(data, str(args.pipeline), folder=args.pipeline.resolve().parent)
    if mode.startswith("quix_"):
        return in_child(run_quix, spec, kafka, args.events, "pipeline", title)
    floor = data if mode == "output_floor" else None
    fast = not mode.endswith("_python")
    return in_child(run_seam, spec, kafka, args.events, fast, floor, title)


def cost_alone(function: Callable[[Any], Any], inputs: list[Any], repeat: int = 5) -> float:
    """CPU us per call of `function` over `inputs`, in a loop, the best of `repeat`."""
    for value in inputs:  # warm up
        function(value)
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        for value in inputs:
            function(value)
        best = min(best, time.process_time() - started)
    return best / len(inputs) * 1e6


def stage_cost() -> float:
    """CPU us per record of the trivial stage alone over the pool's values; prints it, and
    what seam's worker adds to every record on the Python path before any stage: decoding
    the Debezium record (for its re-delivery check, then handed to the stages)."""
    from seam.streams.decode import decode

    records = pool()
    stage_us = cost_alone(touch, [v for _k, v in records])
    raws = [RawRecord(k, v, "catalog.public.products", 0, i) for i, (k, v) in enumerate(records)]
    decode_us = cost_alone(decode, raws)
    print(
        f"trivial stage alone (trivial_stage.touch): {stage_us:.2f} us CPU per record; "
        f"seam's Debezium decode of the same records (every record, Python path): {decode_us:.2f} us"
    )
    return stage_us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=1, help="rounds; figures are medians")
    parser.add_argument(
        "--pipeline",
        type=Path,
        default=example_folder("pipelines") / "catalog.yaml",
        help="the pipeline file both frameworks run (default: the example's catalog.yaml)",
    )
    parser.add_argument("--modes", default=",".join(ALL_MODES), help=f"of {', '.join(ALL_MODES)}")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=PipelineSpec.batch_size)
    parser.add_argument("--profile", default="", help="modes to run once each under cProfile")
    parser.add_argument("--stage-cost", action="store_true", help="the trivial stage's cost only")
    parser.add_argument("--all-cores", action="store_true", help="do not pin to one core")
    args = parser.parse_args()
    modes = [m for m in (args.profile or args.modes).split(",") if m]
    unknown = [m for m in modes if m not in ALL_MODES]
    if unknown:
        raise SystemExit(f"unknown mode {', '.join(unknown)}: choose from {', '.join(ALL_MODES)}")
    if not args.all_cores:
        core = max(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        print(f"pinned to core {core} (--all-cores to lift)")
    stage_us = (
        stage_cost() if any(m.startswith("touch_") for m in modes) or args.stage_cost else None
    )
    if args.stage_cost:
        return
    if any("quix" in m for m in modes):
        try:
            import quixstreams
        except ImportError:
            raise SystemExit(QUIX_MISSING) from None
        import confluent_kafka

        print(
            f"quixstreams {quixstreams.__version__}, confluent-kafka "
            f"{importlib.metadata.version('confluent-kafka')} "
            f"(librdkafka {confluent_kafka.libversion()[0]}), pipeline {args.pipeline}"
        )

    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    kafka = load_settings().kafka
    prefix = f"quixbench{uuid.uuid4().hex[:6]}"
    admin = AdminClient(client_config(kafka))
    topics = {
        f"{prefix}.public.products": args.partitions,
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
            f"cannot create the benchmark's topics on {kafka.bootstrap_servers} "
            f"({str(exc) or 'timed out'}): is the stack up? (SEAM_CONFIG names its settings)"
        ) from None
    runs: dict[str, list[Run]] = {}
    try:
        child = multiprocessing.get_context("fork").Process(
            target=produce, args=(kafka, prefix, args.events)
        )
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"producing the raw records failed ({child.exitcode})")
        rounds = 1 if args.profile else args.repeat
        # Modes take turns: a noisy stretch of the machine weighs on every mode alike.
        for round_, mode in [(r, m) for r in range(rounds) for m in modes]:
            run = one_run(mode, args, prefix, kafka, round_, bool(args.profile))
            runs.setdefault(mode, []).append(run)
            print(
                f"{mode:16} records={run.records:,} seconds={run.seconds:.2f} "
                f"records/s={run.rate:,.0f} cpu={run.cpu_us:.1f}us/record "
                f"(whole run {run.cpu_us_all:.1f}) {run.detail}",
                flush=True,
            )
    finally:
        with contextlib.suppress(Exception):
            groups = [f"{prefix}-{m}{r}" for m in modes for r in range(args.repeat)]
            for future in admin.delete_consumer_groups(groups, request_timeout=30).values():
                with contextlib.suppress(Exception):
                    future.result(30)
        names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
        with contextlib.suppress(Exception):
            for future in admin.delete_topics(names).values():
                future.result(30)
    if not args.profile:
        summary(runs, stage_us, args.repeat)


def summary(runs: dict[str, list[Run]], stage_us: float | None, repeat: int) -> None:
    print(f"--- summary: median (range) of {repeat} run{'s' if repeat > 1 else ''} per mode")
    rate: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for mode, done in runs.items():
        r, c = spread(run.rate for run in done), spread(run.cpu_us for run in done)
        rate[mode], cpu[mode] = r.median, c.median
        line = (
            f"{mode:16} {r.median:>9,.0f} records/s ({r.low:,.0f}-{r.high:,.0f})   "
            f"CPU {c.median:6.1f} us/record ({c.low:.1f}-{c.high:.1f})"
        )
        if mode.startswith("touch_") and stage_us is not None:
            line += f"   framework overhead {c.median - stage_us:5.1f} us"
        print(line)
    if stage_us is not None:
        print(f"{'touch alone':16} CPU {stage_us:.2f} us/record (best of 5, in a loop)")
    for ratio in ratios(rate, cpu, stage_us):
        target = f"(target >= {ratio.target:g}x) {ratio.verdict}" if ratio.target else ""
        print(f"{ratio.label:52} {ratio.value:6.2f}x  {target}")


if __name__ == "__main__":
    sys.exit(main())

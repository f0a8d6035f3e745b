"""CPU per record of a declared pipeline with a user's Python stage among the built-in
ones: every stage in Python vs the compiled engine around the Python stage
(`seam.transforms.declared.compiled.SplitPath`), in this process, no Kafka.

    .venv/bin/python benchmarks/split_benchmark.py [--pool 10000] [--repeat 5]

Per input record, what the worker does for a batch (`RecordHandler.transform`): its one
decode (for its re-delivery check), the stages, the encoding of the publication and the
produce calls, to a producer that drops them (the client's own cost is the same for both). The user stage is trivial (`touch`: it notes
one thing in `item.extra`), placed between clean and events, then after events. The
whole chain compiled (no user stage) is shown for scale. Medians of `--repeat` runs, the
two paths interleaved.
"""

from __future__ import annotations

import argparse
import functools
import gc
import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from seam.changes import RawRecord
from seam.legacy_db.files import pipeline_document
from seam.legacy_db.synthetic import (
    envelope,
    reference_rows,
    typical_changes,
    typical_stock_changes,
)
from seam.transforms.fast_path import load_fast_path, load_split_path
from seam.transforms.handling import RecordHandler
from seam.transforms.model import Item
from seam.transforms.pipeline_file import parse_pipeline
from seam.transforms.progress import Counts
from seam.transforms.redelivery import Marks

EXAMPLES: dict[str, tuple[str, Callable[[int], list[tuple[bytes, bytes]]]]] = {
    "catalog": ("products", typical_changes),
    "stock": ("stock_levels", typical_stock_changes),
}
TOUCH = "split_benchmark:touch"
ARRANGEMENTS: dict[str, list[str]] = {
    "chain": ["decode", "clean", "events", "validate"],
    "between clean and events": ["decode", "clean", TOUCH, "events", "validate"],
    "after events": ["decode", "clean", "events", TOUCH, "validate"],
}


class Touch:
    """The trivial user stage."""

    name = "touch"

    def process(self, item: Item) -> Iterable[Item]:
        item.extra["touched"] = True
        return (item,)


def touch(options: Mapping[str, Any]) -> Touch:
    return Touch()


def _document(example: str, stages: list[str]) -> dict[str, Any]:
    doc = pipeline_document(example)
    validate: dict[str, Any] = next(
        (s for s in doc.get("stages") or () if s.get("use") == "validate"), {}
    )
    doc["stages"] = [
        {"use": s, **({"with": validate["with"]} if s == "validate" and "with" in validate else {})}
        for s in stages
    ]
    return doc


class _Message:
    """The accessors of a consumed message that the worker reads."""

    def __init__(self, raw: RawRecord) -> None:
        self.raw = raw

    def key(self) -> bytes | None:
        return self.raw.key

    def value(self) -> bytes | None:
        return self.raw.value

    def topic(self) -> str:
        return self.raw.topic

    def partition(self) -> int:
        return self.raw.partition

    def offset(self) -> int:
        return self.raw.offset

    def timestamp(self) -> tuple[int, int]:
        return (0, 0)

    def headers(self) -> None:
        return None


class _Nowhere:
    """A producer (and the worker's `Delivery`) that drops what it is given."""

    def __init__(self) -> None:
        self.producer = self

    def produce(self, *args: Any, **kwargs: Any) -> None:
        pass

    def poll(self, timeout: float) -> int:
        return 0


def _run(handler: RecordHandler, messages: list[Any]) -> None:
    """A batch as the worker transforms it (producing aside), with no marks yet."""
    handler.transform(messages, Counts(), Marks(), _Nowhere())  # type: ignore[arg-type]


def measure(example: str, pool: int, repeat: int) -> None:
    table, changes = EXAMPLES[example]
    records = changes(pool)
    print(f"{example}: CPU us per record ({pool:,} typical records, median of {repeat})")
    for arrangement, stages in ARRANGEMENTS.items():
        spec = parse_pipeline(_document(example, stages), "in-process")
        pipeline = spec.build()
        for i, (ref, row) in enumerate(reference_rows(2000)):
            key, value = envelope(ref, "r", None, row, i + 1)
            pipeline.observe(RawRecord(key, value, f"catalog.public.{ref}", 0, i))
        raws = [
            RawRecord(k, v, f"catalog.public.{table}", i % 4, i) for i, (k, v) in enumerate(records)
        ]
        messages = [_Message(raw) for raw in raws]
        split = load_split_path(spec, pipeline)
        fast = load_fast_path(spec, pipeline)
        runs: dict[str, Callable[[], None]] = {
            "all Python": functools.partial(_run, RecordHandler(spec, pipeline, None), messages),
            "split" if split is not None else "chain": functools.partial(
                _run, RecordHandler(spec, pipeline, fast, split=split), messages
            ),
        }
        for run in runs.values():
            run()  # warm up: memos, caches
        # Interleaved, so that the machine's swings hit both alike.
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(repeat):
            for name, run in runs.items():
                gc.collect()
                started = time.process_time()
                run()
                times[name].append(time.process_time() - started)
        for name, taken in times.items():
            per = statistics.median(taken) / len(raws) * 1e6
            print(f"  {arrangement:26} {name:10} {per:6.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pipeline", choices=sorted(EXAMPLES), action="append")
    args = parser.parse_args()
    for example in args.pipeline or sorted(EXAMPLES):
        measure(example, args.pool, args.repeat)


if __name__ == "__main__":
    main()

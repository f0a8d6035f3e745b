"""CPU per record of a declared pipeline with a user's Python stage among the built-in
ones: every stage in Python vs the compiled engine around the Python stage
(`seam.transforms.declared.compiled.SplitPath`), in this process, no Kafka.

    .venv/bin/python benchmarks/split_benchmark.py [--pool 10000] [--repeat 5]

Per input record: the worker's one decode (for its re-delivery check), the stages, and the
encoding of the publication (`outputs.publication`), as `RecordHandler.handle` does them;
producing is left out (the same for both). The user stage is trivial (`touch`: it notes
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
from seam.streams.decode import decode
from seam.transforms.declared.compiled import SplitPath
from seam.transforms.fast_path import FastPath, load_fast_path, load_split_path
from seam.transforms.model import Item
from seam.transforms.outputs import publication
from seam.transforms.pipeline import Pipeline, Produced
from seam.transforms.pipeline_file import parse_pipeline

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
    validate = next((s for s in doc.get("stages") or () if s.get("use") == "validate"), {})
    doc["stages"] = [
        {"use": s, **({"with": validate["with"]} if s == "validate" and "with" in validate else {})}
        for s in stages
    ]
    return doc


def _python(pipeline: Pipeline, raws: list[RawRecord], key: str | None) -> None:
    for raw in raws:
        outcome = pipeline.run(raw, decode(raw))  # type: ignore[arg-type]
        if isinstance(outcome, Produced):
            publication(outcome, key)


def _compiled(
    pipeline: Pipeline,
    raws: list[RawRecord],
    key: str | None,
    fast: FastPath | None,
    split: SplitPath | None,
) -> None:
    if fast is not None:
        for raw in raws:
            if fast.process(raw) is None:
                _python(pipeline, [raw], key)
        return
    assert split is not None
    for raw in raws:
        outcome, _native = split.run(raw, decode(raw))
        if isinstance(outcome, Produced):
            publication(outcome, key)


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
        key = spec.history.key
        split = load_split_path(spec, pipeline)
        fast = load_fast_path(spec, pipeline)

        runs: dict[str, Callable[[], None]] = {
            "all Python": functools.partial(_python, pipeline, raws, key),
            "split" if split is not None else "chain": functools.partial(
                _compiled, pipeline, raws, key, fast, split
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

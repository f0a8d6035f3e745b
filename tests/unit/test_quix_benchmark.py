"""The arithmetic and the job set-up of benchmarks/quix_benchmark.py (the benchmark itself
runs against a broker and is not a test): the ratios the issue names, each run's figures,
the per-run pipeline, and that the trivial stage gives under seam the records Quix produces."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import orjson
import pytest

from seam.changes import RawRecord
from seam.legacy_db.files import folder
from seam.legacy_db.synthetic import typical_changes
from seam.transforms.outputs import publication
from seam.transforms.pipeline import Produced
from seam.transforms.pipeline_file import parse_pipeline

pytestmark = pytest.mark.unit

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCHMARKS))  # as when the script runs: its folder first
    try:
        import quix_benchmark

        yield quix_benchmark
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_spread_is_median_and_range(bench: ModuleType) -> None:
    assert bench.spread([3.0, 1.0, 10.0]) == (3.0, 1.0, 10.0)
    assert bench.spread([2.0, 4.0]).median == 3.0


def test_run_figures_count_only_the_timed_records(bench: ModuleType) -> None:
    run = bench.Run(records=1000, timed=800, seconds=2.0, cpu_seconds=0.05, cpu_timed=0.02)
    assert run.rate == 400.0
    assert run.cpu_us == pytest.approx(25.0)  # 0.02 s over the 800 timed records
    assert run.cpu_us_all == pytest.approx(50.0)  # setup included, over all records
    assert bench.Run(10, 0, 0.0, 0.0, 0.0).rate == 0.0


def test_ratios_compare_compiled_seam_and_framework_overheads(bench: ModuleType) -> None:
    rate = {"seam_alo": 50_000.0, "quix_alo": 5_000.0, "seam_eos": 20_000.0, "quix_eos": 5_000.0}
    cpu = {
        "seam_alo": 20.0,
        "quix_alo": 200.0,
        "seam_alo_python": 160.0,
        "touch_seam_alo": 24.0,
        "touch_quix_alo": 34.0,
    }
    found = {r.label: r for r in bench.ratios(rate, cpu, stage_us=4.0)}
    assert found["ALO compiled seam / Quix, records/s"].value == 10.0
    assert found["ALO compiled seam / Quix, by CPU per record"].value == 10.0
    assert found["EOS compiled seam / Quix, records/s"].value == 4.0
    assert found["EOS compiled seam / Quix, records/s"].verdict == "NOT met"  # target 5x
    assert found["ALO Python stages seam / Quix, by CPU per record"].value == 1.25
    assert found["ALO Python stages seam / Quix, by CPU per record"].verdict == ""  # no target
    overhead = found["ALO user stage: Quix overhead / seam overhead"]
    assert overhead.value == 1.5  # (34 - 4) / (24 - 4)
    assert overhead.verdict == "met"
    # Modes that did not run give no line; no EOS CPU figures, no EOS CPU ratio.
    assert "EOS compiled seam / Quix, by CPU per record" not in found
    assert "EOS user stage: Quix overhead / seam overhead" not in found
    # Without the stage's own cost there is no overhead to compare.
    assert not [r for r in bench.ratios(rate, cpu, None) if "user stage" in r.label]


def test_the_run_pipeline_reads_the_seeded_topics_and_writes_its_own(bench: ModuleType) -> None:
    path = folder("pipelines") / "catalog.yaml"
    data = bench.pipeline_data(path, "qb1", "seam_eos_python", 0, 4, 500)
    spec = parse_pipeline(data, str(path), folder=path.parent)
    assert spec.inputs == ("qb1.public.products",)
    assert spec.group == "qb1-seam_eos_python0"
    assert spec.history.topic == "qb1.product-events.seam_eos_python0"
    assert spec.latest.partitions == 4
    assert spec.guarantee == "exactly_once"
    assert spec.batch_size == 500
    assert spec.declaration is not None  # declared: the compiled engine (the mode turns it off)
    assert spec.build().reference_topics == ["qb1.public.categories", "qb1.public.suppliers"]
    alo = bench.pipeline_data(path, "qb1", "quix_alo", 0, 4, 500)
    assert alo["processing"]["guarantee"] == "at_least_once"
    # Every mode's guarantee is the one its name says, whatever the round.
    eos = [m for m in bench.ALL_MODES if bench.guarantee(m) == "exactly_once"]
    assert eos == ["seam_eos", "seam_eos_python", "quix_eos", "touch_seam_eos", "touch_quix_eos"]


def test_a_pipeline_on_other_topics_is_refused(bench: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "orders.yaml"
    path.write_text("name: orders\ninputs: [shop.public.orders]\noutputs: {}\n")
    with pytest.raises(SystemExit, match=r"shop\.public\.orders"):
        bench.pipeline_data(path, "qb1", "seam_alo", 0, 4, 500)


def test_the_trivial_stage_under_seam_produces_what_quix_does(bench: ModuleType) -> None:
    """Quix keeps the input key and encodes touch's dict with orjson: seam's history event
    and latest state must be those very bytes, so both frameworks do the same work."""
    spec = parse_pipeline(bench.touch_data("qb1", "touch_seam_eos", 1, 4, 500), folder=BENCHMARKS)
    pipeline = spec.build()
    assert spec.guarantee == "exactly_once"
    key, value = typical_changes(100)[0]  # a record of the benchmark's raw topic
    outcome = pipeline.run(RawRecord(key, value, "qb1.public.products", 0, 3))
    assert isinstance(outcome, Produced)
    history, latest, _note = publication(outcome, spec.history.key)
    expected = orjson.dumps({**orjson.loads(value), "touched": True})
    assert [(k, v) for k, v, _headers in history] == [(key, expected)]
    assert latest == (key, expected)

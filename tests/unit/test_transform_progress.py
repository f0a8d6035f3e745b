"""Worker bookkeeping without a broker: the balance, the Prometheus text, replay names."""

from __future__ import annotations

import pytest

from seam.legacy_db.files import folder
from seam.transforms.pipeline_file import load_pipeline
from seam.transforms.progress import Counts, Progress, prometheus_text
from seam.transforms.worker import transactional_id

pytestmark = pytest.mark.unit


def test_counts_balance_and_add_up() -> None:
    total = Counts()
    batch = Counts(records_in=5, records_with_events=2, events_out=4, dead_lettered=1)
    batch.no_event = {"tombstone": 1, "no-op update": 1}
    total.add(batch)
    total.add(batch)
    assert total.records_in == 10
    assert total.no_event == {"tombstone": 2, "no-op update": 2}
    assert total.balanced
    total.records_in += 1  # a record counted nowhere else breaks the balance
    assert not total.balanced


def test_prometheus_text() -> None:
    counts = Counts(
        records_in=7, records_with_events=6, events_out=9, latest_out=7, dead_lettered=1
    )
    progress = Progress(
        "catalog", "exactly_once", counts, started=0.0, lag=3, assigned=2, rate=12.5
    )
    text = prometheus_text(progress)
    assert 'seam_transform_records_in_total{pipeline="catalog"} 7' in text
    assert 'seam_transform_dead_lettered_total{pipeline="catalog"} 1' in text
    assert 'seam_transform_lag{pipeline="catalog"} 3' in text
    assert "# TYPE seam_transform_rate gauge" in text
    assert "lag 3" in progress.line()
    assert progress.as_dict()["balanced"] is True


def test_replay_suffix_renames_outputs_and_group_not_inputs() -> None:
    spec = load_pipeline(folder("pipelines") / "catalog.yaml")
    again = spec.with_suffix(".v2")
    assert again.inputs == spec.inputs
    assert again.group == spec.group + ".v2"
    assert [o.topic for o in again.outputs] == [o.topic + ".v2" for o in spec.outputs]
    assert again.with_guarantee("at_least_once").guarantee == "at_least_once"


def test_transactional_ids_are_stable_per_instance() -> None:
    assert transactional_id("g", "w1") == transactional_id("g", "w1")
    assert transactional_id("g", "w1") != transactional_id("g", "w2")

"""A stage that raises (a bug, not a Reject): its records are dead-lettered, the first
traceback of each stage and error type is logged, the rest counted, and past the pipeline's
max_stage_errors the worker is told to stop (no broker: the pure parts)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import pytest

from seam.changes import RawRecord
from seam.legacy_db.files import folder
from seam.transforms.model import Item, Reject
from seam.transforms.pipeline import Pipeline, Rejected, StageErrorLimitError, StageErrors
from seam.transforms.pipeline_file import load_pipeline
from seam.transforms.progress import Counts, Progress, prometheus_text

pytestmark = pytest.mark.unit

CATALOG = folder("pipelines") / "catalog.yaml"


class Buggy:
    """Raises by the record's value: b"value" ValueError, b"key" KeyError, b"no" Reject."""

    name = "buggy"

    def process(self, item: Item) -> Iterable[Item]:
        value = item.raw.value
        if value == b"value":
            raise ValueError("bad value")
        if value == b"key":
            raise KeyError("price")
        if value == b"no":
            raise Reject("refused")
        return (item,)


def record(value: bytes, offset: int) -> RawRecord:
    return RawRecord(b"k", value, topic="t", partition=1, offset=offset)


def stage_logs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "seam.transform.stages"]


def test_the_first_traceback_of_each_stage_and_error_type_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    now = [0.0]
    pipeline = Pipeline([Buggy()])
    pipeline.errors = StageErrors(interval=60.0, clock=lambda: now[0])
    outcomes = [pipeline.run(record(v, i)) for i, v in enumerate([b"value"] * 3 + [b"key"] * 2)]
    assert outcomes[0] == Rejected("buggy", "stage raised ValueError: bad value", "ValueError")
    assert outcomes[3] == Rejected("buggy", "stage raised KeyError: 'price'", "KeyError")
    logged = stage_logs(caplog)
    assert len(logged) == 2  # one per (stage, error type), not one per record
    first = logged[0]
    assert first.levelno == logging.ERROR
    assert first.exc_info is not None  # with the traceback
    assert first.getMessage().startswith(
        "stage 'buggy' raised ValueError: bad value on t[1]@0; the record goes to the "
        "dead-letter topic"
    )
    assert "Reject" in first.getMessage()  # says how to refuse a record on purpose
    assert logged[1].getMessage().startswith("stage 'buggy' raised KeyError: 'price' on t[1]@3")

    # Later errors of a kind are summed up, at most once per interval, without traceback.
    now[0] = 30.0
    pipeline.run(record(b"value", 5))
    assert len(stage_logs(caplog)) == 2
    now[0] = 61.0
    pipeline.run(record(b"value", 6))
    summary = stage_logs(caplog)[-1]
    assert summary.getMessage() == (
        "stage 'buggy' raised ValueError on 4 more records (5 so far), the last: "
        "ValueError: bad value"
    )
    assert summary.exc_info is None
    assert pipeline.errors.describe() == (
        "stage 'buggy' ValueError: bad value (5 records), stage 'buggy' KeyError: 'price' "
        "(2 records)"
    )


def test_a_reject_is_no_stage_error(caplog: pytest.LogCaptureFixture) -> None:
    pipeline = Pipeline([Buggy()])
    assert pipeline.run(record(b"no", 1)) == Rejected("buggy", "refused")
    assert not stage_logs(caplog)
    assert pipeline.errors.describe() == ""


def test_the_limit_stops_past_max_stage_errors() -> None:
    spec = load_pipeline(CATALOG)
    pipeline = Pipeline([Buggy()])
    for i in range(101):
        pipeline.run(record(b"value", i))
    spec.check_stage_errors({"buggy": 100}, pipeline)  # the default allows 100
    with pytest.raises(StageErrorLimitError) as info:
        spec.check_stage_errors({"buggy": 101}, pipeline)
    assert info.value.message == (
        "pipeline 'catalog' stopped: its stages raised on 101 records, more than "
        "processing.max_stage_errors (100): stage 'buggy' ValueError: bad value (101 records)"
    )
    hint = info.value.hint or ""
    assert "catalog.products-dead-letter" in hint
    assert f"processing.max_stage_errors in {CATALOG}" in hint
    assert "--max-stage-errors" in hint

    never = replace(spec, max_stage_errors=-1)
    never.check_stage_errors({"buggy": 10**6}, pipeline)
    strict = replace(spec, max_stage_errors=0)
    strict.check_stage_errors({}, pipeline)
    with pytest.raises(StageErrorLimitError):
        strict.check_stage_errors({"buggy": 1}, pipeline)


def test_stage_errors_in_the_summary_and_the_metrics(tmp_path: Path) -> None:
    total = Counts()
    batch = Counts(records_in=3, dead_lettered=3)
    batch.dead_letter_reasons = {"buggy": 3}
    batch.stage_errors = {"buggy": 2}
    total.add(batch)
    total.add(batch)
    assert total.stage_errors == {"buggy": 4}
    progress = Progress("catalog", "exactly_once", total, started=0.0)
    assert progress.as_dict()["stage_errors"] == {"buggy": 4}
    assert "dead-lettered 6 (4 by stage errors)" in progress.line()
    text = prometheus_text(progress)
    assert 'seam_transform_stage_errors_total{pipeline="catalog",stage="buggy"} 4' in text

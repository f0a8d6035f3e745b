"""Lag in seconds behind the source commit: the source headers a loader keeps, and the
definition /metrics and /health use."""

from __future__ import annotations

import pytest

from seam.services import metrics
from seam.services.loader import Progress, _note_source
from seam.transforms.outputs import source_headers

pytestmark = pytest.mark.unit


def test_the_loader_keeps_the_source_headers_the_transform_writes() -> None:
    progress = Progress()
    headers = source_headers(
        {"connector": "postgresql", "lsn": (3 << 32) + 0x1F, "ts_ms": 1_700_000_000_250}
    )
    _note_source(progress, [("seam.event_type", b"X"), *headers])
    assert progress.last_source_ts_ms == 1_700_000_000_250
    assert progress.last_source_position == "lsn:3/1F"
    _note_source(progress, None)  # a record without them keeps what the last one said
    _note_source(progress, [("seam-source-ts-ms", b"not a number"), ("seam-source-ts-ms", None)])
    assert progress.last_source_ts_ms == 1_700_000_000_250


def test_lag_seconds_is_zero_when_applied_and_counts_from_the_source_commit_when_behind() -> None:
    progress = Progress(applied={0: 10, 1: 5}, ends={0: 10, 1: 5})
    assert progress.lag_seconds(2_000_000_000.0) == 0.0
    progress.ends = {0: 10, 1: 7}  # two records to apply, no source time seen yet
    assert progress.lag_seconds(2_000_000_000.0) is None
    progress.last_source_ts_ms = 1_999_999_997_500
    assert progress.lag_seconds(2_000_000_000.0) == pytest.approx(2.5)
    progress.applied = {0: 10, 1: 7}
    assert progress.lag_seconds(2_000_000_000.0) == 0.0


def render(lag: float | None) -> str:
    return metrics.render(
        entity="thing",
        topic="t",
        entities=1,
        ready=True,
        applied={0: 1},
        ends={0: 2},
        behind_since=None,
        lag_seconds=lag,
        last_source_ts_ms=None if lag is None else 1_700_000_000_000,
        last_record_ts_ms=None,
        records=1,
        ready_after_s=None,
        snapshots_written=0,
    )


def test_the_metric_has_no_sample_while_unknown() -> None:
    assert 'seam_service_lag_seconds{entity="thing"} 2.5\n' in render(2.5)
    assert (
        'seam_service_last_applied_source_timestamp_seconds{entity="thing"} 1700000000.0\n'
        in render(2.5)
    )
    text = render(None)
    assert "# TYPE seam_service_lag_seconds gauge" in text
    assert 'seam_service_lag_seconds{entity="thing"}' not in text


def test_the_history_follower_starts_once_the_image_is_ready() -> None:
    import threading

    from seam.services.runtime import follow_when_ready

    checks: list[bool] = []
    followed: list[int] = []

    def ready() -> bool:
        checks.append(len(checks) >= 3)  # ready at the fourth look
        return checks[-1]

    stop = threading.Event()
    assert follow_when_ready(ready, stop, lambda: followed.append(len(checks)), every=0.001)
    assert followed == [4]  # called once, after the image said ready
    stop.set()
    assert not follow_when_ready(lambda: False, stop, lambda: followed.append(0), every=0.001)
    assert followed == [4]  # stopped before ready: never followed

"""Prometheus text exposition of a service (format 0.0.4), written by hand: a dozen gauges
and counters need no client library.

Lag in records: per partition, the end offset (the last stable offset the consumer last
saw) minus the applied offset.

Lag in seconds (`seam_service_lag_seconds`): seconds behind the source commit. 0 when the
image has applied the end offsets it last saw; while records remain to apply, now less the
source commit time of the last record applied (its `seam-source-ts-ms` header, Debezium's
`source.ts_ms`, put there by the transform). It counts every leg (Debezium, the transform,
the service) and assumes the database's clock and the service's agree. No sample while the
image is behind and no applied record has carried a source time yet (nothing applied since
start, or records written by a transform without source headers).

Also: how long the image has been behind at all (`seam_service_behind_seconds`: since it
last had applied everything it had seen), the source commit time of the last record
applied, and the Kafka timestamp of the last record applied (the transform's produce time).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _labels(labels: Mapping[str, object]) -> str:
    if not labels:
        return ""
    inner = ",".join(
        f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in labels.items()
    )
    return "{" + inner + "}"


class Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def metric(
        self,
        name: str,
        kind: str,
        help_text: str,
        samples: Iterable[tuple[Mapping[str, object], float]],
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            # repr: every digit (`:g` kept six, which turned timestamps into 1.7e+09)
            self.lines.append(f"{name}{_labels(labels)} {value!r}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render(
    *,
    entity: str,
    topic: str,
    entities: int,
    ready: bool,
    applied: Mapping[int, int],
    ends: Mapping[int, int],
    behind_since: float | None,
    lag_seconds: float | None,
    last_source_ts_ms: int | None,
    last_record_ts_ms: int | None,
    records: int,
    ready_after_s: float | None,
    snapshots_written: int,
    waited: Mapping[str, float] | None = None,
    marks_reads: tuple[int, float, int] | None = None,
) -> str:
    """The exposition; `marks_reads`: (reads of the transform's committed offsets for
    requests waiting on a source position, the slowest in seconds, the failed ones)."""
    base = {"entity": entity}
    out = Exposition()
    out.metric(
        "seam_service_entities", "gauge", "Entities in the memory image.", [(base, entities)]
    )
    out.metric(
        "seam_service_ready",
        "gauge",
        "1 once caught up to the end offsets seen at start.",
        [(base, 1 if ready else 0)],
    )
    out.metric(
        "seam_service_applied_offset",
        "gauge",
        "Next offset of the latest topic the image will apply, per partition.",
        [({**base, "topic": topic, "partition": p}, o) for p, o in sorted(applied.items())],
    )
    out.metric(
        "seam_service_end_offset",
        "gauge",
        "End offset (last stable offset) of the latest topic as last seen, per partition.",
        [({**base, "topic": topic, "partition": p}, o) for p, o in sorted(ends.items())],
    )
    out.metric(
        "seam_service_lag_records",
        "gauge",
        "Records of the latest topic not yet applied, per partition.",
        [
            ({**base, "topic": topic, "partition": p}, max(0, e - applied.get(p, 0)))
            for p, e in sorted(ends.items())
        ],
    )
    out.metric(
        "seam_service_lag_seconds",
        "gauge",
        "Seconds behind the source commit: now less the source commit time of the last "
        "record applied while records remain to apply, 0 once the end offsets last seen "
        "are applied.",
        [] if lag_seconds is None else [(base, lag_seconds)],
    )
    out.metric(
        "seam_service_behind_seconds",
        "gauge",
        "Seconds since the image last had applied every record it had seen (0: current).",
        [(base, 0.0 if behind_since is None else max(0.0, time.time() - behind_since))],
    )
    out.metric(
        "seam_service_last_applied_source_timestamp_seconds",
        "gauge",
        "Source commit time of the last record applied that carried one.",
        [] if last_source_ts_ms is None else [(base, last_source_ts_ms / 1000)],
    )
    out.metric(
        "seam_service_last_applied_timestamp_seconds",
        "gauge",
        "Timestamp of the last record applied (when the transform published it).",
        [(base, (last_record_ts_ms or 0) / 1000)],
    )
    out.metric(
        "seam_service_records_applied_total",
        "counter",
        "Latest-topic records applied.",
        [(base, records)],
    )
    if ready_after_s is not None:
        out.metric(
            "seam_service_ready_after_seconds",
            "gauge",
            "Seconds from start to ready.",
            [(base, ready_after_s)],
        )
    out.metric(
        "seam_service_snapshots_written_total",
        "counter",
        "Snapshot files written.",
        [(base, snapshots_written)],
    )
    if waited:
        out.metric(
            "seam_service_wait_seconds_total",
            "counter",
            "Seconds requests with after= spent in each step, summed.",
            [({**base, "step": step}, seconds) for step, seconds in sorted(waited.items())],
        )
    if marks_reads is not None:
        reads, slowest, failed = marks_reads
        out.metric(
            "seam_service_marks_reads_total",
            "counter",
            "Reads of the transform's committed offsets and marks (for after= positions).",
            [(base, reads)],
        )
        out.metric(
            "seam_service_marks_read_seconds_max",
            "gauge",
            "The slowest read of the transform's committed offsets.",
            [(base, slowest)],
        )
        out.metric(
            "seam_service_marks_read_errors_total",
            "counter",
            "Reads of the transform's committed offsets that failed.",
            [(base, failed)],
        )
    return out.text()

"""Counters of a running worker, and their Prometheus text form.

The balance a worker keeps and reports: every input record is counted exactly once as a
record with events, a dead letter, a record with no event (by reason), or a change the
source had delivered before (dropped, see `seam.transforms.redelivery`), so
`records_in == records_with_events + dead_lettered + sum(no_event.values()) + redelivered`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from seam.text import plural
from seam.transforms.calls import CallTimedOutError, bounded


@dataclass
class Counts:
    records_in: int = 0
    records_with_events: int = 0
    events_out: int = 0
    latest_out: int = 0
    dead_lettered: int = 0
    native: int = 0  # of records_in, those the compiled fast path published
    redelivered: int = 0  # changes dropped: the source had delivered them before
    no_event: dict[str, int] = field(default_factory=dict)
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)  # by stage
    # Of the dead letters, those whose stage raised (a bug, not a Reject), by stage.
    stage_errors: dict[str, int] = field(default_factory=dict)

    def add(self, other: Counts) -> None:
        self.records_in += other.records_in
        self.records_with_events += other.records_with_events
        self.events_out += other.events_out
        self.latest_out += other.latest_out
        self.dead_lettered += other.dead_lettered
        self.native += other.native
        self.redelivered += other.redelivered
        for k, v in other.no_event.items():
            self.no_event[k] = self.no_event.get(k, 0) + v
        for k, v in other.dead_letter_reasons.items():
            self.dead_letter_reasons[k] = self.dead_letter_reasons.get(k, 0) + v
        for k, v in other.stage_errors.items():
            self.stage_errors[k] = self.stage_errors.get(k, 0) + v

    @property
    def balanced(self) -> bool:
        return self.records_in == (
            self.records_with_events
            + self.dead_lettered
            + sum(self.no_event.values())
            + self.redelivered
        )


@dataclass
class Progress:
    """A snapshot for the progress line, log lines and metrics."""

    pipeline: str
    guarantee: str
    counts: Counts
    started: float
    elapsed: float = 0.0
    rate: float = 0.0  # input records/s over the last interval
    lag: int | None = None  # records behind on the assigned partitions
    assigned: int = 0
    batches: int = 0
    aborted_batches: int = 0
    reference_records: int = 0
    state: str = "starting"  # starting | running | stopping | stopped
    first_input_at: float | None = None  # monotonic time of the first batch's end
    last_input_at: float | None = None  # monotonic time of the last batch's end

    def as_dict(self) -> dict[str, Any]:
        c = self.counts
        return {
            "pipeline": self.pipeline,
            "guarantee": self.guarantee,
            "state": self.state,
            "elapsed_s": round(self.elapsed, 1),
            "records_in": c.records_in,
            "records_with_events": c.records_with_events,
            "events_out": c.events_out,
            "latest_out": c.latest_out,
            "dead_lettered": c.dead_lettered,
            "no_event": dict(c.no_event),
            "stage_errors": dict(c.stage_errors),
            "native": c.native,
            "redelivered": c.redelivered,
            "balanced": c.balanced,
            "rate_per_s": round(self.rate, 1),
            "lag": self.lag,
            "assigned_partitions": self.assigned,
            "batches": self.batches,
            "aborted_batches": self.aborted_batches,
            "reference_records": self.reference_records,
        }

    def line(self) -> str:
        c = self.counts
        lag = "?" if self.lag is None else str(self.lag)
        errors = sum(c.stage_errors.values())
        return (
            f"{self.pipeline} [{self.guarantee}] in {c.records_in} -> events {c.events_out}, "
            f"dead-lettered {c.dead_lettered}"
            + (f" ({errors} by stage errors)" if errors else "")
            + f", no event {sum(c.no_event.values())}"
            + (f", re-delivered {c.redelivered}" if c.redelivered else "")
            + " | "
            f"{self.rate:,.0f} rec/s | lag {lag} | {plural(self.assigned, 'partition')}"
        )


def prometheus_text(p: Progress) -> str:
    c = p.counts
    labels = f'pipeline="{p.pipeline}"'
    lines = [
        "# TYPE seam_transform_records_in_total counter",
        f"seam_transform_records_in_total{{{labels}}} {c.records_in}",
        "# TYPE seam_transform_events_out_total counter",
        f"seam_transform_events_out_total{{{labels}}} {c.events_out}",
        "# TYPE seam_transform_latest_out_total counter",
        f"seam_transform_latest_out_total{{{labels}}} {c.latest_out}",
        "# TYPE seam_transform_dead_lettered_total counter",
        f"seam_transform_dead_lettered_total{{{labels}}} {c.dead_lettered}",
        "# TYPE seam_transform_native_total counter",
        f"seam_transform_native_total{{{labels}}} {c.native}",
        "# TYPE seam_transform_redelivered_total counter",
        f"seam_transform_redelivered_total{{{labels}}} {c.redelivered}",
        "# TYPE seam_transform_no_event_total counter",
        *(
            f'seam_transform_no_event_total{{{labels},reason="{reason}"}} {n}'
            for reason, n in sorted(c.no_event.items())
        ),
        "# TYPE seam_transform_stage_errors_total counter",
        *(
            f'seam_transform_stage_errors_total{{{labels},stage="{stage}"}} {n}'
            for stage, n in sorted(c.stage_errors.items())
        ),
        "# TYPE seam_transform_aborted_batches_total counter",
        f"seam_transform_aborted_batches_total{{{labels}}} {p.aborted_batches}",
        "# TYPE seam_transform_rate gauge",
        f"seam_transform_rate{{{labels}}} {p.rate:.1f}",
        "# TYPE seam_transform_lag gauge",
        f"seam_transform_lag{{{labels}}} {p.lag if p.lag is not None else 'NaN'}",
        "# TYPE seam_transform_assigned_partitions gauge",
        f"seam_transform_assigned_partitions{{{labels}}} {p.assigned}",
    ]
    return "\n".join(lines) + "\n"


class MetricsServer:
    """Serves the latest Progress as Prometheus text on http://host:port/metrics."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self._lock = threading.Lock()
        self._text = ""
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    body = server._text.encode()
                self.send_response(200 if self.path in ("/", "/metrics") else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return  # no access log on stderr

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def update(self, progress: Progress) -> None:
        text = prometheus_text(progress)
        with self._lock:
            self._text = text

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def now() -> float:
    return time.monotonic()


def consumer_lag(consumer: Any, assigned: set[tuple[str, int]]) -> int | None:
    """Records between a consumer's position and the end of its `assigned` partitions (its
    committed offset where it has no position yet), or None when unknown: what a running
    worker still has to read. The group's committed lag, for anyone, is `seam.streams.lag`."""
    from confluent_kafka import KafkaException, TopicPartition

    if not assigned:
        return None
    tps = [TopicPartition(t, p) for t, p in sorted(assigned)]
    try:
        positions = consumer.position(tps)
        unknown = [tp for tp in positions if tp.offset < 0]
        committed = {
            (tp.topic, tp.partition): tp.offset
            for tp in (
                bounded(
                    "reading the committed offsets", 5.0, consumer.committed, unknown, timeout=5
                )
                if unknown
                else []
            )
        }
        total = 0
        for tp in positions:
            pos = tp.offset if tp.offset >= 0 else committed.get((tp.topic, tp.partition), -1)
            # The high watermark of the last fetch response (milliseconds old while the
            # worker reads) costs nothing; asking the broker cost ~40 ms per partition on
            # a busy broker, every progress interval. Asked only when nothing is cached.
            lo, hi = consumer.get_watermark_offsets(tp, cached=True)
            if hi < 0 or (pos < 0 and lo < 0):
                lo, hi = bounded(
                    "reading the watermarks", 5.0, consumer.get_watermark_offsets, tp, timeout=5
                )
            if pos < 0:
                pos = lo
            total += max(0, hi - pos)
        return total
    except (KafkaException, CallTimedOutError):
        return None

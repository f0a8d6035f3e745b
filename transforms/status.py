"""A pipeline's status seen from outside its workers: the group's lag and committed input,
its output topics, the newest dead letters with their reasons, and, when a worker serves its
metrics (`seam transform run --metrics-port`), that worker's exact counts and balance.

Kafka answers for every pipeline that ever ran; the counts of records in, events out, dead
letters and no-event records exist only inside a worker (`seam.transforms.progress`), so
the balance is shown from its metrics or not at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from seam.errors import SeamError
from seam.transforms.handling import DLQ_PREFIX

if TYPE_CHECKING:
    from seam.streams.kafka import Kafka
    from seam.transforms.pipeline_file import PipelineSpec

_SAMPLE: Final = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)$")
_LABEL: Final = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
_PREFIX: Final = "seam_transform_"


def parse_metrics(text: str) -> dict[str, Any]:
    """The counters of `seam.transforms.progress.prometheus_text` back as the keys of
    `Progress.as_dict` (records_in, events_out, dead_lettered, no_event by reason, ...)."""
    out: dict[str, Any] = {"no_event": {}, "stage_errors": {}}
    for line in text.splitlines():
        found = _SAMPLE.match(line.strip())
        if not found or not found.group(1).startswith(_PREFIX):
            continue
        name = found.group(1)[len(_PREFIX) :].removesuffix("_total")
        labels = dict(_LABEL.findall(found.group(3) or ""))
        try:
            value = float(found.group(4))
        except ValueError:
            continue
        number: float | int | None = None if value != value else value  # NaN: unknown
        if number is not None and number == int(number):
            number = int(number)
        if name == "no_event":
            out["no_event"][labels.get("reason", "?")] = number
        elif name == "stage_errors":
            out["stage_errors"][labels.get("stage", "?")] = number
        else:
            out[name] = number
    return out


def worker_counts(metrics_url: str, timeout: float = 3.0) -> dict[str, Any]:
    """A running worker's counts from its metrics URL, with the balance
    records_in = with events + dead letters + no event + re-delivered."""
    import requests

    from seam.secrets import mask_url

    try:
        answer = requests.get(metrics_url, timeout=timeout)
        answer.raise_for_status()
    except requests.RequestException as exc:
        raise SeamError(
            f"cannot read the worker's metrics at {mask_url(metrics_url)}: {type(exc).__name__}",
            hint="start the worker with --metrics-port PORT, or check the metrics URL",
        ) from None
    counts = parse_metrics(answer.text)
    if "records_in" not in counts:
        raise SeamError(
            f"{mask_url(metrics_url)} serves no seam transform metrics",
            hint="point it at a worker's --metrics-port (http://HOST:PORT/metrics)",
        )
    explained = (
        counts.get("dead_lettered", 0)
        + sum(v or 0 for v in counts["no_event"].values())
        + counts.get("redelivered", 0)
    )
    # The exposition has no records_with_events: the balance is read as in - the rest.
    counts["records_with_events"] = counts["records_in"] - explained
    counts["balanced"] = counts["records_with_events"] >= 0
    return counts


@dataclass
class PipelineWatch:
    """Looks at one pipeline again and again; remembers the dead letters last read so
    that they are read again only when the topic grew."""

    spec: PipelineSpec
    metrics_url: str | None = None
    reasons: int = 5
    _dead_end: int = -1
    _topics: dict[str, int] | None = None
    _group_state: str | None = None
    _dead: list[dict[str, Any]] = field(default_factory=list)

    def look(self, kafka: Kafka, *, full: bool = True) -> dict[str, Any]:
        """The pipeline's status. `full` also reads the group's state and the topics'
        partitions (cluster metadata: what costs the broker most); otherwise those of the
        last full look are used."""
        from seam.streams.lag import group_lag, group_names

        spec = self.spec
        if full or self._topics is None:
            self._topics = kafka.topic_names()
            self._group_state = group_names(kafka).get(spec.group)
        topics = self._topics
        result: dict[str, Any] = {
            "pipeline": spec.name,
            "source": str(spec.source),
            "group": spec.group,
            "inputs": list(spec.inputs),
        }
        if self._group_state is None:
            result.update(group_state="none (no worker ever committed)", lag=None)
        else:
            lag = group_lag(kafka, spec.group, self._group_state)
            result.update(
                group_state=lag.state,
                lag=lag.total_lag,
                committed_in=sum(p.committed or 0 for p in lag.partitions),
            )
        result["topics"] = {
            role: sum(r.count for r in kafka.ranges(out.topic, range(topics[out.topic])))
            if out.topic in topics
            else None
            for role, out in (("history", spec.history), ("latest", spec.latest))
        }
        result["dead_letters"] = self._dead_letters(kafka, topics.get(spec.dead_letter.topic))
        if self.metrics_url:
            try:
                result["worker"] = worker_counts(self.metrics_url)
            except SeamError as exc:
                result["worker"] = {"error": exc.message, "hint": exc.hint}
        else:
            result["worker"] = None
        return result

    def _dead_letters(self, kafka: Kafka, partitions: int | None) -> dict[str, Any]:
        from seam.changes import RawRecord
        from seam.streams.kafka import read_ranges

        topic = self.spec.dead_letter.topic
        if not partitions:
            return {"topic": topic, "offsets": 0, "latest": []}
        ranges = kafka.ranges(topic, range(partitions))
        end = sum(r.high for r in ranges)
        if end != self._dead_end:
            # A transactional topic's markers take offsets too: read a wider window.
            window = 4 * self.reasons + 2
            todo: dict[int, tuple[int, int | None]] = {
                r.partition: (max(r.low, r.high - window), r.high) for r in ranges
            }
            found = []
            for msg in read_ranges(kafka, topic, todo):
                raw = RawRecord.from_message(msg)
                headers = {k: (v or b"").decode("utf-8", "replace") for k, v in raw.headers}
                found.append(
                    {
                        "at_ms": raw.timestamp_ms,
                        "partition": raw.partition,
                        "offset": raw.offset,
                        "stage": headers.get(DLQ_PREFIX + "stage"),
                        "reason": headers.get(DLQ_PREFIX + "reason"),
                    }
                )
            found.sort(key=lambda d: (d["at_ms"] or 0, d["partition"], d["offset"]))
            self._dead, self._dead_end = found[-self.reasons :][::-1], end
        return {"topic": topic, "offsets": sum(r.count for r in ranges), "latest": self._dead}

"""The parity check: the legacy table (through the declared cleaning), the entity's latest
topic and a service's store, compared at one source position.

1. The legacy side is read in one transaction and its log position noted
   (`seam.migration.parity_legacy`).
2. The transform is waited for until it has published every change up to that position
   (`seam.services.source.SourceWatch`: its committed high-water marks), then the latest topic
   is read to its end: it holds the position, and perhaps a little more.
3. A memory image (`seam serve`) is asked, with `after=` the latest topic's end offsets just
   read, for digests of key ranges (`seam.services.parity_http`); ranges whose digest differs
   from the legacy side's are bisected down to rows. A clean comparison moves digests.
   A JDBC sink's table is compared once the sink's consumer group has committed those
   offsets, its rows read in key ranges (`seam.migration.parity_sink` says why not digests).
4. A key that differs anywhere is read again at a newer cut (legacy, topic, image and sink,
   each at or past a new position) before it counts: a change in flight when the first cut was
   taken settles and is not reported. What still differs is reported with its reason:
   `missing` (the legacy side has a state, the side does not), `extra` (the side has a state
   the legacy side has none for: the row is gone, rejected by the cleaning or absent) or
   `values` (both have one: the fields that differ).
"""

from __future__ import annotations

import asyncio
import bisect
import concurrent.futures
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from seam.errors import SeamError
from seam.kafka_config import KafkaSettings
from seam.migration.digest import canonical, canonical_json, combine, row_hash
from seam.migration.parity_legacy import LegacyCut, LegacySide
from seam.migration.parity_sink import SinkReader
from seam.services.image import order_key
from seam.transforms.pipeline_file import PipelineSpec

LEGACY: Final = "legacy"
TOPIC: Final = "topic"
IMAGE: Final = "image"
SINK: Final = "sink"
FANOUT: Final = 16  # sub-ranges a differing range is split into
FIRST_RANGES: Final = 64  # ranges of the first round
LEAF: Final = 256  # a differing range of at most this many keys is compared row by row
REPORTED: Final = 100  # differences kept in the record and shown


class CannotCompareError(SeamError):
    """A side could not be brought to the cut, or read: no verdict (exit code 2)."""


@dataclass
class Difference:
    key: str
    side: str  # topic, image or sink
    reason: str  # missing, extra, values
    detail: str
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": self.key,
            "side": self.side,
            "reason": self.reason,
            "detail": self.detail,
        }
        if self.fields:
            out["fields"] = self.fields
        return out


@dataclass
class Report:
    entity: str
    position: str
    counts: dict[str, int]
    differences: list[Difference]
    settled: int  # keys that differed at the first cut and agreed at a later one
    cuts: list[str]  # every position compared at
    timings: dict[str, float]
    moved: dict[str, int]  # what the image comparison moved: requests, ranges, rows
    finished_at: str = ""
    repair: dict[str, Any] | None = None  # what --repair asked for and what it fixed

    @property
    def differing(self) -> int:
        return len({d.key for d in self.differences})

    @property
    def clean(self) -> bool:
        return not self.differences

    def as_json(self, limit: int = REPORTED) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "clean": self.clean,
            "finished_at": self.finished_at,
            "position": self.position,
            "cuts": self.cuts,
            "differing": self.differing,
            "settled": self.settled,
            "counts": self.counts,
            "differences": [d.as_json() for d in self.differences[:limit]],
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
            "moved": self.moved,
            "repair": self.repair,
        }


# ---------------------------------------------------------------------------- comparing


def field_diffs(legacy: bytes, other: bytes, side: str) -> dict[str, dict[str, Any]]:
    """The fields whose values differ between two canonical states."""
    a, b = orjson.loads(legacy), orjson.loads(other)
    if not isinstance(a, dict) or not isinstance(b, dict):
        return {"": {LEGACY: a, side: b}}
    return {
        name: {LEGACY: a.get(name), side: b.get(name)}
        for name in sorted(a.keys() | b.keys())
        if a.get(name) != b.get(name) or (name in a) != (name in b)
    }


def explain_absent(key: str, cut: LegacyCut) -> str:
    if key in cut.rejected:
        return f"the legacy row is rejected by the cleaning ({cut.rejected[key]})"
    if key in cut.gone:
        return f"the legacy row has no state ({cut.gone[key]})"
    return "no such row in the legacy table"


def compare_key(
    key: str, legacy: bytes | None, other: bytes | None, side: str, cut: LegacyCut
) -> Difference | None:
    """How one key differs between the legacy side and `side` (None: it agrees)."""
    if legacy == other:
        return None
    if other is None:
        return Difference(key, side, "missing", f"the legacy table has it, the {side} does not")
    if legacy is None:
        return Difference(key, side, "extra", f"in the {side}, but {explain_absent(key, cut)}")
    return Difference(
        key, side, "values", f"field values differ in the {side}", field_diffs(legacy, other, side)
    )


def compare_all(
    cut: LegacyCut, states: Mapping[str, bytes], side: str, keys: Sequence[str] | None = None
) -> list[Difference]:
    """Every differing key between the legacy side and a side held whole in memory."""
    wanted = keys if keys is not None else list(cut.states.keys() | states.keys())
    out = []
    for key in wanted:
        found = compare_key(key, cut.states.get(key), states.get(key), side, cut)
        if found is not None:
            out.append(found)
    return out


# ---------------------------------------------------------------------------- the image


class ImageClient:
    """A memory image's parity endpoint (`POST /_parity/digest`)."""

    def __init__(self, url: str, wait_s: float, session: Any = None) -> None:
        import requests

        self.url = url.rstrip("/")
        self.wait_s = wait_s
        self.session = session or requests.Session()
        self.requests = 0

    def ask(
        self,
        after: str | None,
        ranges: Sequence[tuple[str | None, str | None]] = (),
        rows_up_to: int = 0,
        keys: Sequence[str] = (),
    ) -> dict[str, Any]:
        import requests

        body = {
            "after": after,
            "wait_ms": int(self.wait_s * 1000),
            "ranges": [list(r) for r in ranges],
            "rows_up_to": rows_up_to,
            "keys": list(keys),
        }
        self.requests += 1
        try:
            answer = self.session.post(
                f"{self.url}/_parity/digest",
                data=orjson.dumps(body),
                headers={"content-type": "application/json"},
                timeout=self.wait_s + 120,
            )
        except requests.RequestException as exc:
            raise CannotCompareError(
                f"cannot reach the service at {self.url}: {exc}",
                hint="start it (`seam serve SERVICE_FILE`) or pass the right --service URL",
            ) from None
        if answer.status_code == 404:
            raise CannotCompareError(
                f"the service at {self.url} has no parity endpoint (POST /_parity/digest)",
                hint="run a seam version whose `seam serve` has it, or leave --service out",
            )
        if answer.status_code != 200:
            try:
                detail = answer.json().get("detail")
            except ValueError:
                detail = answer.text[:200]
            raise CannotCompareError(
                f"the service at {self.url} could not answer at the cut "
                f"(HTTP {answer.status_code}): {detail}",
                hint="check that the service follows the entity's latest topic and keeps up "
                "(its /ready and /metrics), or raise --wait",
            )
        result: dict[str, Any] = answer.json()
        return result


def _as_canonical(rows: Mapping[str, Any]) -> dict[str, bytes]:
    return {k: canonical(v) for k, v in rows.items() if v is not None}


class LegacyIndex:
    """The legacy states in the image's key order, with prefix sums of their hashes, so
    any key range's count and digest is two bisections away."""

    def __init__(self, cut: LegacyCut) -> None:
        self.keys = sorted(cut.states, key=order_key)
        self.orders = [order_key(k) for k in self.keys]
        self.prefix = [0]
        total = 0
        for key in self.keys:
            total += row_hash(key, cut.states[key])
            self.prefix.append(total)

    def span(self, lo: str | None, hi: str | None) -> tuple[int, int]:
        start = 0 if lo is None else bisect.bisect_left(self.orders, order_key(lo))
        stop = len(self.keys) if hi is None else bisect.bisect_left(self.orders, order_key(hi))
        return start, stop

    def digest(self, start: int, stop: int) -> int:
        return combine([self.prefix[stop] - self.prefix[start]])

    def split(
        self, lo: str | None, hi: str | None, parts: int
    ) -> list[tuple[str | None, str | None]]:
        """The range [lo, hi) cut at legacy keys into about `parts` ranges."""
        start, stop = self.span(lo, hi)
        size = max(1, -(-(stop - start) // parts))
        edges: list[str | None] = [lo, *(self.keys[i] for i in range(start + size, stop, size)), hi]
        return [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


def compare_image(
    cut: LegacyCut, index: LegacyIndex, client: ImageClient, after: str | None
) -> tuple[list[Difference], int, dict[str, int]]:
    """Bisect the image's key ranges against the legacy side's: (differences, the image's
    key count, what moved)."""
    moved = {"ranges": 0, "rows": 0}
    ranges = index.split(None, None, FIRST_RANGES)
    differences: list[Difference] = []
    count = -1
    while ranges:
        answer = client.ask(after, ranges, rows_up_to=LEAF)
        after = None  # reached once: later rounds read the image as it is, at or past it
        count = answer["count"] if count < 0 else count
        moved["ranges"] += len(ranges)
        next_ranges: list[tuple[str | None, str | None]] = []
        for (lo, hi), got in zip(ranges, answer["ranges"], strict=True):
            start, stop = index.span(lo, hi)
            if got["count"] == stop - start and int(got["digest"], 16) == index.digest(start, stop):
                continue
            if "rows" in got:
                rows = _as_canonical(got["rows"])
                moved["rows"] += len(rows)
                keys = list(dict.fromkeys([*index.keys[start:stop], *rows]))
                differences.extend(compare_all(cut, rows, IMAGE, keys))
            elif stop - start <= LEAF:
                # Few legacy keys, many in the image: its extra keys, a page at a time.
                next_ranges.extend(_split_image_range(lo, hi, index.keys[start:stop]))
            else:
                next_ranges.extend(index.split(lo, hi, FANOUT))
        ranges = next_ranges
    return differences, max(count, 0), moved


def _split_image_range(
    lo: str | None, hi: str | None, legacy_keys: Sequence[str]
) -> list[tuple[str | None, str | None]]:
    """A range the image holds many more keys of than the legacy side: cut it at each
    legacy key (and, with none, give up bisecting: the whole range is fetched)."""
    if not legacy_keys:
        raise CannotCompareError(
            f"the image holds more than {LEAF} keys in [{lo}, {hi}) that the legacy table "
            "has none of",
            hint="the service is probably serving another entity's or database's topic: "
            "check --service and the pipeline",
        )
    edges: list[str | None] = [lo, *legacy_keys[1:], hi]
    return [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


# ---------------------------------------------------------------------------- the cut


def wait_transform(
    kafka: KafkaSettings, spec: PipelineSpec, position: str, timeout_s: float
) -> bool:
    """Whether the transform has published every change up to the legacy `position`
    within `timeout_s` (its committed high-water marks, as `seam serve`'s `after=` reads
    them)."""
    from seam.services.position import SourcePosition, parse_after
    from seam.services.source import SourceWatch

    target = parse_after(position)
    assert isinstance(target, SourcePosition)
    watch = SourceWatch(kafka, spec.group, spec.inputs)
    executor = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="seam-parity")
    try:
        deadline = time.monotonic() + timeout_s
        return asyncio.run(watch.wait(target, deadline, executor)) is not None
    finally:
        watch.close()
        executor.shutdown(wait=False, cancel_futures=True)


@dataclass
class TopicCut:
    states: dict[str, bytes]
    after: str  # partition:next offset of each partition read, as `after=` takes it
    records: int
    read_s: float = 0.0


def read_topic(kafka: KafkaSettings, topic: str, timeout_s: float) -> TopicCut:
    from seam.streams.kafka import TopicNotFoundError
    from seam.transforms.readback import read_to_end

    try:
        records = read_to_end(kafka, topic, timeout=timeout_s)
    except TopicNotFoundError:
        raise CannotCompareError(
            f"the latest topic {topic} does not exist",
            hint="run the transform (`seam transform run PIPELINE`) so that it publishes the "
            "entity's states",
        ) from None
    ends: dict[int, int] = {}
    latest: dict[bytes, bytes] = {}  # compacted as a consumer sees it, values left as bytes
    for r in records:
        ends[r.partition] = max(ends.get(r.partition, 0), r.offset + 1)
        if r.key is None:
            continue
        if r.value is None:
            latest.pop(r.key, None)
        else:
            latest[r.key] = r.value
    count = len(records)
    del records  # a million records: let them go before the states are made
    states = {k.decode(): canonical_json(v) for k, v in latest.items()}
    after = ",".join(f"{p}:{o}" for p, o in sorted(ends.items()))
    return TopicCut(states, after, count)


# ---------------------------------------------------------------------------- the check


@dataclass
class ParityCheck:
    spec: PipelineSpec
    kafka: KafkaSettings
    database_url: str
    service_url: str | None = None
    wait_s: float = 60.0
    rechecks: int = 2
    say: Callable[[str], None] = lambda _text: None
    settings: Any = None  # seam.settings.Settings: Connect's address, for --repair
    repair_connector: str | None = None  # ask this connector to snapshot differing keys
    sink: str | None = None  # a JDBC sink's spec file or connector name: its table compared too

    def run(self) -> Report:
        began = time.monotonic()
        timings: dict[str, float] = {}
        legacy = LegacySide(self.spec, self.database_url)
        assert self.spec.declaration is not None
        entity = self.spec.declaration.entity.name

        sink = self._sink()  # a sink that cannot be found fails before anything is read
        cut = legacy.read()
        timings["legacy_read"] = cut.read_s
        timings["legacy_clean"] = cut.clean_s
        self.say(f"legacy: {cut.rows} rows read at {cut.position}")
        topic, waited = self._reach(cut.position)
        timings["transform_wait"] = waited
        started = time.monotonic()
        found = compare_all(cut, topic.states, TOPIC)
        timings["topic_read_compare"] = time.monotonic() - started + topic.read_s
        counts = {
            "legacy_rows": cut.rows,
            "legacy_states": len(cut.states),
            "legacy_gone": len(cut.gone),
            "legacy_rejected": len(cut.rejected),
            "topic": len(topic.states),
        }
        moved: dict[str, int] = {}
        client = None
        if self.service_url is not None:
            client = ImageClient(self.service_url, self.wait_s)
            started = time.monotonic()
            index = LegacyIndex(cut)
            image_found, counts["image"], moved = compare_image(cut, index, client, topic.after)
            found.extend(image_found)
            timings["image_compare"] = time.monotonic() - started
            moved["requests"] = client.requests
        if sink is not None:
            started = time.monotonic()
            self._reach_sink(sink, topic.after)
            timings["sink_wait"] = time.monotonic() - started
            started = time.monotonic()
            sink_found, counts["sink"] = compare_sink(cut, sink)
            found.extend(sink_found)
            timings["sink_compare"] = time.monotonic() - started
        cuts = [cut.position]
        first = {d.key for d in found}
        for _round in range(self.rechecks):
            if not found:
                break
            keys = sorted({d.key for d in found}, key=order_key)
            self.say(f"{len(keys)} keys differ: checking them again at a newer cut")
            started = time.monotonic()
            found = self._recheck(legacy, keys, client, cuts, sink)
            timings[f"recheck_{len(cuts) - 1}"] = time.monotonic() - started
        repair = None
        if found and self.repair_connector is not None:
            started = time.monotonic()
            found, repair = self._repair(legacy, found, client, cuts, sink)
            timings["repair"] = time.monotonic() - started
        timings["total"] = time.monotonic() - began
        found.sort(key=lambda d: (order_key(d.key), d.side))
        report = Report(
            entity,
            cut.position,
            counts,
            found,
            len(first - {d.key for d in found}),
            cuts,
            timings,
            moved,
        )
        report.repair = repair
        report.finished_at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        return report

    def _reach(self, position: str) -> tuple[TopicCut, float]:
        started = time.monotonic()
        if not wait_transform(self.kafka, self.spec, position, self.wait_s):
            raise CannotCompareError(
                f"the transform of pipeline '{self.spec.name}' has not published {position} "
                f"within {self.wait_s:g} s",
                hint="check that the connector and `seam transform run` are running and keep "
                "up; a position is proven passed by a later captured change, so a quiet "
                "database needs a Debezium heartbeat whose action query writes to a captured "
                "table (or raise --wait)",
            )
        waited = time.monotonic() - started
        read_began = time.monotonic()
        topic = read_topic(self.kafka, self.spec.latest.topic, max(self.wait_s, 30.0))
        topic.read_s = time.monotonic() - read_began
        return topic, waited

    def _repair(
        self,
        legacy: LegacySide,
        found: list[Difference],
        client: ImageClient | None,
        cuts: list[str],
        sink: SinkReader | None,
    ) -> tuple[list[Difference], dict[str, Any]]:
        """Ask the connector for an incremental snapshot of the differing keys' rows, wait
        until they came through (or --wait passed), and check them again."""
        from seam.connectors.client import ConnectClient
        from seam.connectors.operate import snapshot_tables

        assert self.settings is not None
        assert self.repair_connector is not None
        keys = sorted({d.key for d in found}, key=order_key)
        now = legacy.read(keys)
        present = [k for k in keys if k in now.states or k in now.gone or k in now.rejected]
        info: dict[str, Any] = {
            "connector": self.repair_connector,
            "keys": len(keys),
            # A key the legacy table has no row for: a snapshot cannot remove it.
            "not_in_legacy": [k for k in keys if k not in present],
        }
        if not present:
            info["repaired"] = 0
            return found, info
        where = legacy.where(legacy.entity_table)
        collection = f"{where.namespace}.{where.table}"
        condition = legacy.key_condition(present)
        asked = snapshot_tables(
            ConnectClient.from_settings(self.settings),
            self.settings,
            self.repair_connector,
            [collection],
            filters={collection: condition},
        )
        info["signal_id"] = asked["signal_id"]
        info["filter"] = condition
        self.say(f"asked {self.repair_connector} to snapshot {len(present)} keys again")
        deadline = time.monotonic() + self.wait_s
        remaining = found
        while time.monotonic() < deadline:
            time.sleep(1.0)
            remaining = self._recheck(legacy, keys, client, cuts, sink)
            if not {d.key for d in remaining} & set(present):
                break
        info["repaired"] = len(set(keys) - {d.key for d in remaining})
        return remaining, info

    def _sink(self) -> SinkReader | None:
        if self.sink is None:
            return None
        from seam.migration.parity_sink import resolve_sink

        assert self.settings is not None
        table = resolve_sink(self.settings, self.sink)
        if table.topic != self.spec.latest.topic:
            raise CannotCompareError(
                f"the sink {table.connector} reads {table.topic}, not the entity's latest "
                f"topic {self.spec.latest.topic}",
                hint="pass the sink that keeps this pipeline's latest topic as a table",
            )
        return SinkReader(table)

    def _reach_sink(self, sink: SinkReader, after: str) -> None:
        from seam.migration.parity_sink import wait_sink

        assert self.settings is not None
        if not wait_sink(self.settings, sink.sink, after, self.wait_s):
            raise CannotCompareError(
                f"the sink {sink.sink.connector} has not committed the latest topic up to "
                f"{after} within {self.wait_s:g} s",
                hint="check that the sink connector runs and keeps up (`seam connectors "
                f"status {sink.sink.connector}`: its state and lag), or raise --wait",
            )

    def _recheck(
        self,
        legacy: LegacySide,
        keys: list[str],
        client: ImageClient | None,
        cuts: list[str],
        sink: SinkReader | None = None,
    ) -> list[Difference]:
        """The differing `keys` again: legacy at a new cut, the sides at or past it. A side
        that agrees with the legacy rows as read again right after it (a change newer than
        the cut, already applied) is in step too: only a key that matches neither counts."""
        cut = legacy.read(keys)
        cuts.append(cut.position)
        topic, _waited = self._reach(cut.position)
        sides = [(TOPIC, topic.states)]
        if client is not None:
            answer = client.ask(topic.after, keys=keys)
            sides.append((IMAGE, _as_canonical(answer["keys"])))
        later = legacy.read(keys)
        found = _unsettled(cut, later, sides, keys)
        if sink is not None:
            # Read after the others, with its own "a moment later": a wait for the sink
            # between the topic and the later read would let a key change twice in between.
            self._reach_sink(sink, topic.after)
            rows = dict(sink.rows(keys))
            found += _unsettled(sink.flat(cut), sink.flat(legacy.read(keys)), [(SINK, rows)], keys)
        return found


def _unsettled(
    cut: LegacyCut,
    later: LegacyCut,
    sides: Sequence[tuple[str, Mapping[str, bytes]]],
    keys: Sequence[str],
) -> list[Difference]:
    """The differences of `sides` from the legacy `cut` that the legacy rows as read
    `later` do not explain either."""
    found = []
    for side, states in sides:
        for difference in compare_all(cut, states, side, keys):
            key = difference.key
            if compare_key(key, later.states.get(key), states.get(key), side, later) is None:
                continue  # in step with the legacy table a moment later
            found.append(difference)
    return found


def compare_sink(cut: LegacyCut, sink: SinkReader) -> tuple[list[Difference], int]:
    """Every differing key between the legacy side and the sink's table read whole (a page
    at a time), and the table's row count."""
    found = []
    seen: set[str] = set()
    for key, row in sink.rows():
        seen.add(key)
        difference = compare_key(key, sink.legacy_row(cut.states.get(key)), row, SINK, cut)
        if difference is not None:
            found.append(difference)
    for key in cut.states.keys() - seen:
        missing = compare_key(key, cut.states[key], None, SINK, cut)
        if missing is not None:
            found.append(missing)
    return found, len(seen)


__all__ = [
    "CannotCompareError",
    "Difference",
    "ImageClient",
    "ParityCheck",
    "Report",
    "compare_all",
    "compare_key",
    "field_diffs",
]

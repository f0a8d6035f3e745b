"""One running service: its image, the loader that keeps it current, its snapshot file.

Start: the snapshot file, if there is one and it fits (same topic and fields, its offsets
within the topic's offsets now, and younger than the topic's delete.retention.ms when the
topic is compacted), is loaded and the loader tails from its offsets; else the image is
built from offset 0 (`rebuild=True` skips the file). Either way the service is
ready only once it has applied the end offsets seen at start: a restarted instance never
serves its snapshot as if it were current. The snapshot is written every
`snapshot_interval_s` and on a clean stop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from seam.kafka_config import KafkaSettings, kafka_settings
from seam.services import snapshot as snapshot_file
from seam.services.history_index import HistoryIndex, default_index
from seam.services.image import Image, Shape
from seam.services.loader import Loader
from seam.services.position import Offsets, SourcePosition, reached
from seam.services.service_file import ServiceSpec
from seam.services.source import SourceWatch
from seam.streams.kafka import Kafka, KafkaUnavailableError

if TYPE_CHECKING:
    from seam.services.commands import Commands

log = logging.getLogger(__name__)

# Margin on a snapshot's age against the topic's delete.retention.ms: the loader's lag checks
# (every 0.5 s) and a clock difference between this host and the broker.
TOMBSTONE_SLACK_S: Final = 60.0


@dataclass
class StartNote:
    """How the image started: from a snapshot (its offsets, load time) or from offset 0."""

    from_snapshot: bool
    detail: str
    load_s: float = 0.0


class Service:
    def __init__(
        self,
        spec: ServiceSpec,
        kafka: KafkaSettings | str,
        *,
        rebuild: bool = False,
        snapshot_path: Path | None = None,
    ) -> None:
        self.spec = spec
        self.kafka = kafka_settings(kafka)
        self.rebuild = rebuild
        self.snapshot_path = snapshot_path or spec.snapshot_path
        shape = Shape(spec.fields, spec.indexes, spec.filters, spec.search)
        self.image = Image(shape)
        self.loader = Loader(self.image, spec.topic, self.kafka)
        self.source = SourceWatch(self.kafka, spec.pipeline.group, spec.pipeline.inputs)
        self.note = StartNote(False, "not started")
        # The history queries (service file `history:`): an index of the pipeline's history
        # topic, kept current by a thread of its own while the service runs.
        self.history: HistoryIndex | None = None
        if spec.history:
            topic = spec.pipeline.history.topic
            path = spec.history_index or default_index(self.kafka.bootstrap_servers, topic)
            self.history = HistoryIndex(path, topic, spec.pipeline.declaration)
        # Clients of their own: one for the follower's catch-ups, one for the raw change
        # records `why` shows (read in request threads).
        self._history_kafka = Kafka(self.kafka) if spec.history else None
        self.raw_kafka = Kafka(self.kafka) if spec.history else None
        self._follower: threading.Thread | None = None
        # The commands of the service file's writes file (None: it takes none).
        self.commands: Commands | None = None
        if spec.writes is not None:
            from seam.services.commands import Commands

            self.commands = Commands(spec.writes, self.kafka)
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._write_lock = threading.Lock()
        # Requests waiting for a source position block a thread each: a pool of their own,
        # so they neither starve nor are starved by the other endpoints' threads.
        self.waiters = concurrent.futures.ThreadPoolExecutor(256, thread_name_prefix="seam-wait")
        self.started = False  # the loader was started (after the snapshot, if any, loaded)
        self.snapshots_written = 0
        self.last_snapshot_s: float | None = None

    # ------------------------------------------------------------------ life

    def start(self) -> None:
        began = time.monotonic()
        marks = self.loader.partitions()
        start = self._restore(marks)
        self.loader.start_offsets = start
        self.loader.start(marks, began=began)
        self.started = True
        if self.history is not None and self._history_kafka is not None:
            # Once the image is ready: the index's first catch-up (the whole history topic
            # on a cold start) would compete with the image's load for the CPU.
            follow = functools.partial(self.history.follow, self._history_kafka, self._stop)
            self._follower = threading.Thread(
                target=follow_when_ready,
                args=(lambda: self.loader.progress.ready, self._stop, follow),
                name="seam-serve-history",
                daemon=True,
            )
            self._follower.start()
        if self.spec.snapshot_interval_s > 0:
            self._writer = threading.Thread(
                target=self._write_periodically, name="seam-serve-snapshot", daemon=True
            )
            self._writer.start()

    def _restore(self, marks: dict[int, tuple[int, int]]) -> dict[int, int]:
        if self.rebuild:
            self.note = StartNote(False, "rebuilt from offset 0 (--rebuild)")
            return {}
        path = self.snapshot_path
        if not path.exists():
            self.note = StartNote(False, f"no snapshot file at {path}: built from offset 0")
            return {}
        began = time.monotonic()
        try:
            found = snapshot_file.read(path, topic=self.spec.topic, fields=self.spec.fields)
        except snapshot_file.SnapshotError as exc:
            self.note = StartNote(False, f"{exc.message}: rebuilt from offset 0")
            log.warning("%s", self.note.detail)
            return {}
        problem = _misfit(found.offsets, marks)
        if not problem:
            try:
                problem = _outlived(found.current_at, self._tombstones_kept_s(), time.time())
            except KafkaUnavailableError as exc:  # e.g. not allowed to describe the topic
                problem = (
                    f"cannot be checked against the topic's delete.retention.ms ({exc.message})"
                )
        if problem:
            self.note = StartNote(False, f"snapshot file {path} {problem}: rebuilt from offset 0")
            log.warning("%s", self.note.detail)
            return {}
        with self.image.lock:
            self.image.restore(found.keys, found.values, found.indexes, found.dictionary)
        self.note = StartNote(
            True,
            f"loaded {len(found.keys)} entities from snapshot file {path}, written at "
            f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(found.written_at))}",
            time.monotonic() - began,
        )
        log.info("%s in %.2fs", self.note.detail, self.note.load_s)
        return found.offsets

    def _tombstones_kept_s(self) -> float | None:
        """How long the broker keeps a tombstone of the topic at least (its
        delete.retention.ms); None when the topic is not compacted (nothing is removed
        above the log start offset, which `_misfit` checks)."""
        with Kafka(self.kafka) as cluster:
            config = cluster.topic_config(self.spec.topic)
        if "compact" not in config.get("cleanup.policy", ""):
            return None
        return int(config.get("delete.retention.ms", "86400000")) / 1000

    def write_snapshot(self) -> int:
        """Write the image and the offsets it reflects to the snapshot file; its size."""
        with self._write_lock:
            image = self.image
            with image.lock:
                keys, values = image.contents()
                dictionary = image.dictionary
                offsets = dict(self.loader.progress.applied)
                now = time.time()
                behind = self.loader.progress.behind_since
                current_at = now if behind is None else min(now, behind)
            texts = {
                name: [image.index_text(name, v) for v in values] for name in image.shape.indexes
            }
            size = snapshot_file.write(
                self.snapshot_path,
                snapshot_file.Snapshot(
                    self.spec.topic,
                    self.spec.fields,
                    offsets,
                    keys,
                    values,
                    texts,
                    now,
                    dictionary,
                    current_at,
                ),
            )
            self.snapshots_written += 1
            self.last_snapshot_s = time.time()
            return size

    def _write_periodically(self) -> None:
        while not self._stop.wait(self.spec.snapshot_interval_s):
            if not self.loader.progress.ready:
                continue  # a half-loaded image is no better than the last snapshot
            try:
                self.write_snapshot()
            except OSError as exc:
                log.warning("cannot write snapshot file %s: %s", self.snapshot_path, exc)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop tailing and write the snapshot (when the image has caught up once)."""
        self._stop.set()
        self.source.close()
        self.waiters.shutdown(wait=False, cancel_futures=True)
        self.loader.stop(timeout)
        if self._writer is not None:
            self._writer.join(timeout)
        if self._follower is not None:
            self._follower.join(timeout)
        # A catch-up still reading (a long first one) keeps its client: the thread is a
        # daemon and ends with the process.
        follower_done = self._follower is None or not self._follower.is_alive()
        if self._history_kafka is not None and follower_done:
            self._history_kafka.close()
        if self.raw_kafka is not None:
            self.raw_kafka.close()
        if self.commands is not None:
            self.commands.close()
        if self.history is not None:
            self.history.close()
        if self.loader.progress.ready:
            try:
                self.write_snapshot()
            except OSError as exc:
                log.warning("cannot write snapshot file %s: %s", self.snapshot_path, exc)

    # ------------------------------------------------------------------ positions

    def applied(self) -> Offsets:
        return self.loader.progress.applied

    async def wait_offsets(self, wanted: Offsets, deadline: float) -> bool:
        """Wait (without blocking the event loop) until the image has applied `wanted`."""
        progress = self.loader.progress
        began = time.monotonic()
        done = await self.loader.applied_signal.until(
            lambda: reached(progress.applied, wanted), deadline - time.monotonic()
        )
        self.source.spent["image_applied"] = (
            self.source.spent.get("image_applied", 0.0) + time.monotonic() - began
        )
        return done

    async def wait_source(self, position: SourcePosition, deadline: float) -> Offsets | None:
        """Wait until the transform has published `position`; the latest topic's end
        offsets then (None: the deadline passed first)."""
        passed = await self.source.wait(position, deadline, self.waiters)
        if passed is None:
            return None
        # End offsets read after the read that showed the transform through: shared by
        # every request that read showed through.
        began = time.monotonic()
        loop = asyncio.get_running_loop()
        ends = await loop.run_in_executor(self.waiters, self.loader.end_offsets, passed)
        self.source.spent["latest_ends"] = (
            self.source.spent.get("latest_ends", 0.0) + time.monotonic() - began
        )
        return ends

    @property
    def healthy(self) -> bool:
        """Up: starting, or tailing without a stopped loader."""
        return not self.started or self.loader.alive

    def status(self) -> dict[str, Any]:
        progress = self.loader.progress
        return {
            "ready": progress.ready,
            "entities": len(self.image),
            "applied": {str(p): o for p, o in sorted(progress.applied.items())},
            "end_offsets_at_start": {str(p): o for p, o in sorted(progress.ends_at_start.items())},
            "ready_after_s": progress.ready_after_s,
            # Seconds behind the source commit (seam.services.metrics), None: not known yet.
            "lag_seconds": progress.lag_seconds(time.time()),
            "last_applied_source": {
                "ts_ms": progress.last_source_ts_ms,
                "position": progress.last_source_position,
            },
            "start": self.note.detail,
            # The history index follows the topic once the image is ready (None: no history).
            "history": None
            if self.history is None
            else "following"
            if progress.ready and self._follower is not None
            else "waiting for the image",
            "loader": "running" if self.loader.alive else "stopped" if self.started else "starting",
            "error": progress.error,
        }


def follow_when_ready(
    ready: Callable[[], bool],
    stop: threading.Event,
    follow: Callable[[], None],
    every: float = 0.05,
) -> bool:
    """Call `follow` once `ready()` holds; False (not called) when `stop` is set first."""
    while not ready():
        if stop.wait(every):
            return False
    follow()
    return True


def _misfit(offsets: dict[int, int], marks: dict[int, tuple[int, int]]) -> str | None:
    """Why a snapshot's offsets cannot be tailed from on the topic as it is now."""
    if set(offsets) - set(marks):
        return "names partitions the topic does not have (was it recreated?)"
    for partition, offset in offsets.items():
        low, end = marks[partition]
        if offset > end:
            return f"is ahead of partition {partition} ({offset} > its end {end}: recreated?)"
        if offset < low:
            return f"is behind partition {partition}'s first offset {low} (records deleted)"
    return None


def _outlived(current_at: float, tombstones_kept_s: float | None, now: float) -> str | None:
    """Why a snapshot may miss deletes: the broker keeps a tombstone at least the topic's
    delete.retention.ms, then compaction may remove it. A delete written after the snapshot
    was current and since removed would never reach the image tailing from its offsets
    (the key would stay, served as if current); only a read from offset 0 is then right."""
    if tombstones_kept_s is None:
        return None
    age = now - current_at
    if age + TOMBSTONE_SLACK_S < tombstones_kept_s:
        return None
    return (
        f"was current {age:.0f}s ago, longer than the topic keeps deletes "
        f"(delete.retention.ms {tombstones_kept_s * 1000:.0f} less {TOMBSTONE_SLACK_S:.0f}s): "
        "compaction may have removed tombstones written since"
    )

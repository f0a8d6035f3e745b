"""What the page shows, collected once per interval by one thread, whatever the number of
pages open: each poll of the page reads the last collection, so ten tabs cost the stack what
one does. Every panel is collected by the helpers the CLI uses (`seam connectors status`,
`seam connectors slots`, `seam migrate status`, a service's /health, the pipeline's group
and topics); a panel that fails carries its error instead of its rows and the others still
show. The time series of the charts (the last hour) are kept in memory.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson

from seam.errors import SeamError
from seam.secrets import mask_url

if TYPE_CHECKING:
    from seam.dashboard.config import DashboardConfig
    from seam.settings import Settings
    from seam.streams.kafka import Kafka
    from seam.transforms.status import PipelineWatch

log = logging.getLogger("seam.dashboard")

HOUR_S: Final = 3600.0
CHART_POINTS: Final = 180  # points per series sent to the page (the hour in 20 s steps)
SLOT_READINGS: Final = "dashboard-slot-readings.json"  # apart from `seam connectors slots`'
DIFFS_SHOWN: Final = 3
DATABASE_EVERY_S: Final = 30.0
# The cluster's metadata (topics, the groups' states): a new pipeline topic or group shows
# within this; offsets and lag are read every collection.
METADATA_EVERY_S: Final = 10.0
HEALTH_KEYS: Final = ("slot", "notes", "retrying", "database_reachable", "lag")


def _problem(exc: BaseException) -> dict[str, Any]:
    """A panel's error for the page: SeamError's message and hint, else the type only (an
    unexpected exception's text may quote a URL with its password)."""
    if isinstance(exc, SeamError):
        return {"error": mask_url(exc.message), "hint": exc.hint}
    return {"error": f"unexpected {type(exc).__name__} (see the dashboard's log)", "hint": None}


class Series:
    """(time, value) points of one measure over the last hour."""

    def __init__(self, interval_s: float) -> None:
        self.points: deque[tuple[float, float]] = deque(maxlen=int(HOUR_S / interval_s) + 2)

    def add(self, at: float, value: float | None) -> None:
        if value is not None:
            self.points.append((round(at, 1), float(value)))

    def shown(self, now: float) -> list[list[float]]:
        kept = [p for p in self.points if p[0] >= now - HOUR_S]
        step = max(1, -(-len(kept) // CHART_POINTS))
        # The last point of each step, the newest always included.
        picked = kept[len(kept) - 1 :: -step][::-1] if kept else []
        return [[t, v] for t, v in picked]


class Collector:
    """Collects every panel every `interval_s` in a thread of its own."""

    def __init__(
        self,
        settings: Settings,
        config: DashboardConfig,
        state: Path,
        *,
        interval_s: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from seam.transforms.pipeline_file import load_pipeline
        from seam.transforms.status import PipelineWatch

        self.settings = settings
        self.config = config
        self.state = state
        self.interval_s = interval_s
        self.clock = clock
        # Loaded once, at start: a pipeline file with an error stops the command there.
        self.watches: list[PipelineWatch] = [
            PipelineWatch(load_pipeline(p.file), metrics_url=p.metrics) for p in config.pipelines
        ]
        self.series: dict[str, Series] = {}
        self._kafka: Kafka | None = None
        self._client: Any = None
        self._lock = threading.Lock()
        self._collecting = threading.Lock()
        self._latest: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._previous_in: dict[str, tuple[float, int]] = {}
        self._pool = ThreadPoolExecutor(max_workers=5, thread_name_prefix="seam-dashboard")
        self._databases_at = -DATABASE_EVERY_S
        self._metadata_at = -METADATA_EVERY_S
        self._health: dict[str, dict[str, Any]] = {}
        self._slots: list[dict[str, Any]] = []
        self._latest_body: bytes | None = None
        self.meta: dict[str, Any] = {}  # added to every snapshot (e.g. allow_actions)
        self.collections = 0
        self.collect_seconds = 0.0

    # -- the loop -----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name="seam-dashboard-collect", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._kafka is not None:
            self._kafka.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self.collect()
            except Exception:  # a bug in one collection must not end the page's updates
                log.exception("collecting the dashboard failed")
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - began)))

    def latest(self) -> dict[str, Any] | None:
        with self._lock:
            return self._latest

    def latest_body(self) -> bytes:
        """The last collection as JSON, serialised once for every page that asks."""
        with self._lock:
            body = self._latest_body
        return body if body is not None else orjson.dumps(self.collect())

    def refresh(self) -> None:
        """Collect now (after an action, so that the page shows its effect at once)."""
        self.collect()

    # -- one collection ------------------------------------------------------------------------

    def collect(self) -> dict[str, Any]:
        """Collect every panel now (one collection at a time: the loop's, a refresh after
        an action, or a first page before the loop's first)."""
        with self._collecting:
            return self._collect()

    def _collect(self) -> dict[str, Any]:
        began = time.monotonic()
        now = self.clock()
        jobs = {
            "connectors": self._connectors,
            "pipelines": self._pipelines,
            "services": self._services,
            "facade": self._facade,
        }
        futures = {name: self._pool.submit(job) for name, job in jobs.items()}
        panels: dict[str, Any] = {}
        for name, future in futures.items():
            try:
                panels[name] = future.result()
            except Exception as exc:
                if not isinstance(exc, SeamError):
                    log.exception("collecting the %s panel failed", name)
                panels[name] = _problem(exc)
        self._record(panels, now)
        spent = time.monotonic() - began
        snapshot = {
            "generated_at": now,
            "interval_s": self.interval_s,
            "collect_ms": round(spent * 1000, 1),
            "state": str(self.state),
            "panels": panels,
            "series": {k: s.shown(now) for k, s in sorted(self.series.items())},
            **self.meta,
        }
        body = orjson.dumps(snapshot)
        with self._lock:
            self._latest = snapshot
            self._latest_body = body
            self.collections += 1
            self.collect_seconds += spent
        return snapshot

    def _add(self, key: str, at: float, value: float | None) -> None:
        if value is None:
            return
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = Series(self.interval_s)
        series.add(at, value)

    def _record(self, panels: dict[str, Any], now: float) -> None:
        """The chart points of this collection (and each pipeline's input rate)."""
        for slot in (panels.get("connectors") or {}).get("slots", []):
            if "retained_bytes" in slot:
                self._add(f"slot {slot['slot']} retained WAL (bytes)", now, slot["retained_bytes"])
        for row in (panels.get("pipelines") or {}).get("rows", []):
            name = row.get("pipeline")
            worker = row.get("worker") or {}
            total = worker.get("records_in") if "records_in" in worker else row.get("committed_in")
            if isinstance(total, int):
                before = self._previous_in.get(name)
                if before is not None and now > before[0] and total >= before[1]:
                    row["rate_per_s"] = round((total - before[1]) / (now - before[0]), 1)
                    self._add(f"pipeline {name} records in/s", now, row["rate_per_s"])
                self._previous_in[name] = (now, total)
            self._add(f"pipeline {name} lag (records)", now, row.get("lag"))
        for service in (panels.get("services") or {}).get("rows", []):
            self._add(f"service {service['url']} behind (s)", now, service.get("lag_seconds"))
        for cap in (panels.get("facade") or {}).get("rows", []):
            rate = cap.get("mismatch_rate")
            self._add(f"capability {cap['capability']} mismatch rate", now, rate)

    # -- panels --------------------------------------------------------------------------------

    def client(self) -> Any:
        if self._client is None:
            from seam.connectors.client import ConnectClient, RetryPolicy

            # A page refreshes: answer fast, do not retry for long.
            self._client = ConnectClient.from_settings(
                self.settings, timeout=3.0, retries=RetryPolicy(attempts=1)
            )
        return self._client

    def kafka(self) -> Kafka:
        if self._kafka is None:
            from seam.streams.kafka import Kafka

            self._kafka = Kafka(self.settings.kafka, timeout=5.0)
        return self._kafka

    def _connectors(self) -> dict[str, Any]:
        """Connect's view every collection; the databases' view (each connector's slot and
        sessions, the slots of --slots databases) every DATABASE_EVERY_S: that part opens
        connections to the databases and costs ten times what asking Connect does."""
        from seam.connectors.health import slots_report, state_dir
        from seam.connectors.operate import statuses

        client = self.client()
        names = list(self.config.connectors) or None
        now = time.monotonic()
        ask_databases = now - self._databases_at >= DATABASE_EVERY_S
        rows = [
            r.as_dict()
            for r in statuses(client, names, settings=self.settings if ask_databases else None)
        ]
        if ask_databases:
            self._databases_at = now
            self._health = {r["connector"]: {k: r.get(k) for k in HEALTH_KEYS} for r in rows}
            slots: list[dict[str, Any]] = []
            if self.config.slots:
                live = client.list_connectors(expand=True)
                for database in self.config.slots:
                    try:
                        found = slots_report(
                            self.settings,
                            database,
                            live,
                            readings_path=state_dir() / SLOT_READINGS,
                        )
                        slots += [r.as_dict() for r in found]
                    except SeamError as exc:
                        slots.append({"database": database, "slot": "?", **_problem(exc)})
            self._slots = slots
        else:
            for row in rows:
                row.update(self._health.get(row["connector"], {}))
        return {
            "connect": mask_url(client.base_url),
            "rows": rows,
            "slots": self._slots,
            "databases_checked_s_ago": round(time.monotonic() - self._databases_at, 1),
        }

    def _pipelines(self) -> dict[str, Any]:
        if not self.watches:
            return {"rows": [], "none": "no pipeline given (--pipeline FILE or the dashboard file)"}
        rows = []
        now = time.monotonic()
        full = now - self._metadata_at >= METADATA_EVERY_S
        if full:
            self._metadata_at = now
        for watch in self.watches:
            try:
                rows.append(watch.look(self.kafka(), full=full))
            except SeamError as exc:
                rows.append({"pipeline": watch.spec.name, **_problem(exc)})
                if self._kafka is not None:  # a new client next time: this one may be stuck
                    with contextlib.suppress(Exception):
                        self._kafka.close()
                    self._kafka = None
        return {"rows": rows}

    def _services(self) -> dict[str, Any]:
        if not self.config.services:
            return {"rows": [], "none": "no service given (--service URL or the dashboard file)"}
        return {"rows": [_service_health(url) for url in self.config.services]}

    def _facade(self) -> dict[str, Any]:
        from seam.migration.facade import STATUS_FILE
        from seam.migration.modes import read_override
        from seam.migration.state import MigrationStore
        from seam.migration.status import capability_rows, fetch_status

        store = MigrationStore(self.state)
        source = f"the status the facade recorded in {self.state}"
        report: Any = None
        if self.config.facade:
            source = f"the facade at {mask_url(self.config.facade)}"
            report = fetch_status(self.config.facade)
        else:
            report = store.read(STATUS_FILE)
        if not isinstance(report, dict):
            return {
                "rows": [],
                "none": f"no facade state in {self.state}: no facade has run with this "
                "migration directory (seam facade run ROUTES --state DIR)",
            }
        rows = capability_rows(store, report, timedelta(hours=1), latest_diffs=DIFFS_SHOWN)
        for row in rows:
            # A mode set since the facade last wrote its status: what it applies next.
            override = read_override(store, row["capability"])
            if override is not None and str(override) != row["mode"]:
                row["mode"], row["mode_from"] = str(override), "route record (not applied yet)"
        return {"source": source, "updated_at": report.get("updated_at"), "rows": rows}


def _service_health(url: str) -> dict[str, Any]:
    """A `seam serve` service's /health: ready, entities, position, seconds behind."""
    import requests

    shown = mask_url(url)
    try:
        answer = requests.get(url.rstrip("/") + "/health", timeout=2.0)
        body = answer.json()
    except (requests.RequestException, ValueError) as exc:
        return {
            "url": shown,
            "reachable": False,
            "error": f"no answer from {shown}/health ({type(exc).__name__})",
        }
    if not isinstance(body, dict):
        return {"url": shown, "reachable": True, "error": "its /health is not a JSON object"}
    source = body.get("last_applied_source") or {}
    return {
        "url": shown,
        "reachable": True,
        "healthy": answer.status_code == 200,
        "ready": bool(body.get("ready")),
        "entities": body.get("entities"),
        "applied": body.get("applied"),
        "position": source.get("position"),
        "lag_seconds": body.get("lag_seconds"),
        "loader": body.get("loader"),
        "error": body.get("error"),
    }

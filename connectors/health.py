"""Is each connector really streaming, and what does its replication slot retain?

Kafka Connect's REST API shows a task RUNNING, with no trace, while Debezium waits out its
retry backoff after losing the database: Debezium's BaseSourceTask restarts its coordinator
internally and never leaves RUNNING. Debezium's `Connected` metric lives in JMX only (or in
its optional REST extension, which the connector jars do not ship), and the worker's log line
"Going to restart connector after N sec. after a retriable exception" names no connector
unless the log layout prints the MDC `connector.context`. So seam looks from the database
side, which works with any Connect cluster: a connector Debezium is restarting holds no
session on its database, a streaming PostgreSQL connector holds its slot active, and a
streaming MySQL/MariaDB connector holds a binlog dump thread.

Slots: an inactive slot (its connector stopped, paused or failing) retains WAL from its
restart_lsn on, and the amount grows with every write to the server. Growth needs two
readings. seam keeps the last reading of each slot in a small JSON file in the user's state
directory (`$XDG_STATE_HOME/seam`, by default `~/.local/state/seam`): every run compares with
the run before, so a person running the command twice, or a cron job, sees the trend without
waiting, and `seam connectors slots --sample SECONDS` takes both readings within one run for a
first look or for monitoring without state. A slot "grows" when the WAL it retains grew while
its restart_lsn did not move: an active slot whose reader confirms progress is not flagged.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from seam.connectors.database import is_debezium_database_config, is_postgres_config
from seam.connectors.sink import is_sink_config, sink_lag
from seam.errors import SeamError

if TYPE_CHECKING:
    from seam.connectors.database import Activity, SlotInfo
    from seam.settings import Settings

SLOT_LAG_WARN_BYTES: Final = 256 << 20
READINGS_FILE: Final = "slot-readings.json"
AT_RISK: Final = frozenset({"unreserved", "lost"})


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


# -- slot readings ------------------------------------------------------------------------


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "seam"


@dataclass(frozen=True)
class Reading:
    """One look at a slot: when, how much WAL it retained, and from which position."""

    at: float
    retained_bytes: int
    restart_lsn: str | None

    @classmethod
    def of(cls, slot: SlotInfo, at: float) -> Reading:
        return cls(at, slot.retained_bytes, slot.restart_lsn)


def slot_key(url: str, slot: str) -> str:
    """Slots are named per PostgreSQL server: host:port/slot names one."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    host = "127.0.0.1" if host in ("localhost", "::1") else host
    return f"{host}:{parts.port or 5432}/{slot}"


def load_readings(path: Path) -> dict[str, Reading]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {
            k: Reading(float(v["at"]), int(v["retained_bytes"]), v.get("restart_lsn"))
            for k, v in raw.items()
        }
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}  # no record yet, or one this version cannot read: start a new one


def save_readings(path: Path, readings: Mapping[str, Reading]) -> None:
    """Best effort: a read-only home must not break a report."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({k: r.__dict__ for k, r in sorted(readings.items())}, indent=1),
            encoding="utf-8",
        )
        tmp.replace(path)
    except OSError:
        pass


# -- judging a slot -----------------------------------------------------------------------


@dataclass
class SlotAssessment:
    slot: SlotInfo
    connector: str | None
    connector_state: str | None
    warnings: list[str] = field(default_factory=list)
    growth_bytes: int | None = None
    growth_seconds: float | None = None

    @property
    def ok(self) -> bool:
        return not self.warnings

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.slot.as_dict(),
            "connector": self.connector,
            "connector_state": self.connector_state,
            "growth_bytes": self.growth_bytes,
            "growth_seconds": None
            if self.growth_seconds is None
            else round(self.growth_seconds, 1),
            "warnings": self.warnings,
            "lagging": not self.ok,
        }


def assess_slot(
    slot: SlotInfo,
    *,
    connector: str | None,
    connector_state: str | None,
    previous: Reading | None,
    now: float,
) -> SlotAssessment:
    """What is wrong with `slot`, if anything (pure: the readings come in)."""
    result = SlotAssessment(slot, connector, connector_state)
    if not slot.active:
        if connector is None:
            who = "no connector on the cluster uses it"
        elif connector_state in ("STOPPED", "PAUSED", "FAILED"):
            who = f"its connector '{connector}' is {connector_state}"
        else:
            who = f"its connector '{connector}' is {connector_state or 'not running'} but not reading it"
        result.warnings.append(f"inactive ({who}): it retains WAL until it is read or dropped")
    if previous is not None and now > previous.at:
        grew = slot.retained_bytes - previous.retained_bytes
        result.growth_bytes, result.growth_seconds = grew, now - previous.at
        if grew > 0 and slot.restart_lsn == previous.restart_lsn:
            result.warnings.append(
                f"growing: +{human_bytes(grew)} in {now - previous.at:.0f} s without moving"
            )
    if slot.retained_bytes >= SLOT_LAG_WARN_BYTES:
        result.warnings.append(
            f"retains {human_bytes(slot.retained_bytes)} (>= {human_bytes(SLOT_LAG_WARN_BYTES)})"
        )
    if slot.wal_status in AT_RISK:
        result.warnings.append(f"WAL at risk (wal_status={slot.wal_status})")
    return result


def _slot_owners(live: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """`slot_key` -> (connector, state) for the live PostgreSQL connectors."""
    owners: dict[str, tuple[str, str]] = {}
    for name, entry in live.items():
        config = (entry.get("info") or {}).get("config") or {}
        if is_postgres_config(config):
            state = ((entry.get("status") or {}).get("connector") or {}).get("state", "UNKNOWN")
            server = f"postgresql://{config.get('database.hostname', '')}:{config.get('database.port') or 5432}"
            owners[slot_key(server, config.get("slot.name") or "debezium")] = (name, str(state))
    return owners


def slots_report(
    settings: Settings,
    database: str,
    live: Mapping[str, Any] | None = None,
    *,
    sample_s: float = 0.0,
    readings_path: Path | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> list[SlotAssessment]:
    """Every replication slot on the server with its retained WAL, growth and warnings."""
    from seam.connectors.database import QUICK_CONNECT_S, list_slots

    url = settings.database_url(database)
    path = readings_path or state_dir() / READINGS_FILE
    readings = load_readings(path)
    if sample_s > 0:
        first = clock()
        previous = {
            slot_key(url, s.name): Reading.of(s, first)
            for s in list_slots(url, connect_timeout=QUICK_CONNECT_S)
        }
        sleep(sample_s)
    else:
        previous = readings
    now = clock()
    slots = list_slots(url, connect_timeout=QUICK_CONNECT_S)
    owners = _slot_owners(live or {})
    result = []
    for slot in slots:
        key = slot_key(url, slot.name)
        owner, state = owners.get(key, (None, None))
        result.append(
            assess_slot(
                slot, connector=owner, connector_state=state, previous=previous.get(key), now=now
            )
        )
        readings[key] = Reading.of(slot, now)
    save_readings(path, readings)
    return result


# -- is a connector streaming? ------------------------------------------------------------


@dataclass
class ConnectorHealth:
    """What the connector's database says about it."""

    slot: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    retrying: bool = False  # seen: RUNNING with no session on its database
    database_reachable: bool | None = None  # None: not asked
    lag: int | None = None  # a sink: records of its topics not written yet (None: not asked)

    def as_dict(self) -> dict[str, Any]:
        return {
            "slot": self.slot,
            "notes": self.notes,
            "retrying": self.retrying,
            "database_reachable": self.database_reachable,
            "lag": self.lag,
        }


def _sink_health(name: str, config: Mapping[str, str], settings: Settings) -> ConnectorHealth:
    """A sink's lag: how far its table is behind its topic. Never raises."""
    health = ConnectorHealth()
    try:
        health.lag = sink_lag(settings, name, config)
    except SeamError as exc:
        health.notes.append(f"its lag was not read: {exc.message}")
        return health
    if health.lag:
        health.notes.append(f"{health.lag} record(s) of its topic not written to its table yet")
    return health


RETRYING: Final = (
    "RUNNING but not connected to its database: Debezium is retrying after a lost connection "
    "(it restarts with a growing backoff; Connect shows no error meanwhile)"
)


def connector_health(
    name: str, config: Mapping[str, str], state: str, settings: Settings
) -> ConnectorHealth:
    """Slot and sessions of one connector, read from its database. Never raises: what cannot
    be checked becomes a note."""
    from seam.connectors.database import (
        QUICK_CONNECT_S,
        list_slots,
        url_for_connector,
        user_activity,
    )

    health = ConnectorHealth()
    if is_sink_config(config):
        return _sink_health(name, config, settings)
    postgres = is_postgres_config(config)
    if not is_debezium_database_config(config):
        return health  # not a connector seam knows how to look at from its database
    try:
        url = url_for_connector(name, config, settings)
    except SeamError as exc:
        health.notes.append(f"its database was not checked: {exc.message}")
        return health
    user = config.get("database.user", "")
    dbname = config.get("database.dbname", "")
    try:
        slot: SlotInfo | None = None
        slot_name = config.get("slot.name") or "debezium"
        if postgres:
            slots = {s.name: s for s in list_slots(url, connect_timeout=QUICK_CONNECT_S)}
            slot = slots.get(slot_name)
            health.slot = slot.as_dict() if slot else {"slot": slot_name, "exists": False}
        activity: Activity | None = (
            user_activity(url, user, postgres=postgres, dbname=dbname)
            if state == "RUNNING"
            else None
        )
    except SeamError as exc:
        # Unknown, not retrying: seam may run where the database cannot be reached at all.
        health.database_reachable = False
        health.notes.append(
            f"cannot reach its database from here ({exc.message}); if the connector cannot "
            "either, Debezium is retrying"
        )
        return health
    health.database_reachable = True
    if postgres and state in ("STOPPED", "PAUSED", "FAILED"):
        if slot is None:
            health.notes.append(f"{state}: its slot '{slot_name}' does not exist")
        else:
            health.notes.append(
                f"{state}: its slot '{slot.name}' ({'active' if slot.active else 'inactive'}) "
                f"retains {human_bytes(slot.retained_bytes)} of WAL, more with every write until "
                "the connector runs again (or the slot is dropped)"
            )
    if activity is not None:
        if activity.sessions == 0:
            health.retrying = True
            health.notes.append(RETRYING)
        elif postgres and (slot is None or not slot.active):
            health.notes.append(
                f"RUNNING but not streaming yet: its slot '{slot_name}' has no reader "
                "(taking its snapshot, starting, or retrying)"
            )
        elif not postgres and activity.binlog_readers == 0:
            health.notes.append(
                f"RUNNING but not streaming yet: '{user}' reads no binlog "
                "(taking its snapshot, starting, or retrying)"
            )
    return health

"""Day-2 operations on live connectors: status, offsets reset, ad-hoc snapshots, slots."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from seam.connectors.database import is_postgres_config
from seam.connectors.errors import ConnectError, ConnectNotFoundError
from seam.connectors.plan import connector_failures, wait_state
from seam.connectors.render import is_managed
from seam.errors import ConfigError

if TYPE_CHECKING:
    from seam.connectors.client import ConnectClient
    from seam.connectors.health import ConnectorHealth
    from seam.settings import Settings


@dataclass(frozen=True)
class ConnectorStatus:
    name: str
    state: str
    tasks: list[dict[str, Any]]
    worker: str | None
    topics: list[str]
    managed: bool
    failures: list[str]
    type: str | None = None
    health: ConnectorHealth | None = None

    @property
    def failed(self) -> bool:
        return bool(self.failures)

    @property
    def tasks_summary(self) -> str:
        if not self.tasks:
            return "0"
        running = sum(1 for t in self.tasks if t.get("state") == "RUNNING")
        states = sorted({str(t.get("state")) for t in self.tasks})
        return f"{running}/{len(self.tasks)} " + ",".join(states)

    def as_dict(self) -> dict[str, Any]:
        return {
            "connector": self.name,
            "state": self.state,
            "type": self.type,
            "worker": self.worker,
            "managed": self.managed,
            "tasks": [
                {"id": t.get("id"), "state": t.get("state"), "worker": t.get("worker_id")}
                for t in self.tasks
            ],
            "topics": self.topics,
            "failures": self.failures,
            **(self.health.as_dict() if self.health else {}),
        }


def require_connectors(live: Iterable[str], names: Iterable[str], where: str) -> None:
    """Raise one clear error for the names no connector on the cluster has: the closest
    existing name for each, and the list of those that exist."""
    existing = sorted(live)
    unknown = [n for n in names if n not in existing]
    if not unknown:
        return
    guesses = []
    for name in unknown:
        close = difflib.get_close_matches(name, existing, n=1, cutoff=0.6)
        guesses.append(f"'{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    raise ConnectNotFoundError(
        f"no connector named {', '.join(guesses)} on {where}",
        hint=f"the connectors there: {', '.join(existing)} (see `seam connectors status`)"
        if existing
        else "there are none yet: create them with `seam connectors apply SPEC`",
        status=404,
    )


def statuses(
    client: ConnectClient, names: list[str] | None = None, settings: Settings | None = None
) -> list[ConnectorStatus]:
    """Status of every connector (or the named ones): one listing call + topics in parallel.

    With `settings`, each connector's database is asked too (`health.connector_health`):
    the slot of a stopped connector and what it retains, and whether a RUNNING connector
    is really connected or Debezium is retrying behind Connect's back.
    """
    from seam.connectors.health import connector_health

    live = client.list_connectors(expand=True)
    if names:
        require_connectors(live, names, client.base_url)
    selected = sorted(names or live)

    def topics(name: str) -> list[str]:
        try:
            return sorted(client.topics(name))
        except ConnectError:
            return []

    def health(name: str) -> ConnectorHealth | None:
        if settings is None:
            return None
        entry = live[name]
        config = (entry.get("info") or {}).get("config") or {}
        state = ((entry.get("status") or {}).get("connector") or {}).get("state", "UNKNOWN")
        return connector_health(name, config, str(state), settings)

    with ThreadPoolExecutor(max_workers=min(8, max(1, 2 * len(selected)))) as pool:
        topic_lists = dict(zip(selected, pool.map(topics, selected), strict=True))
        healths = dict(zip(selected, pool.map(health, selected), strict=True))
    result = []
    for name in selected:
        entry = live[name]
        status = entry.get("status") or {}
        info = entry.get("info") or {}
        connector = status.get("connector") or {}
        result.append(
            ConnectorStatus(
                name=name,
                state=str(connector.get("state", "UNKNOWN")),
                tasks=list(status.get("tasks") or []),
                worker=connector.get("worker_id"),
                topics=topic_lists.get(name, []),
                managed=is_managed(info.get("config") or {}),
                failures=connector_failures(status),
                type=status.get("type"),
                health=healths.get(name),
            )
        )
    return result


@dataclass
class ResetResult:
    connector: str
    previous_offsets: list[dict[str, Any]]
    slot: str | None = None
    slot_dropped: bool = False
    resumed: bool = False
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "connector": self.connector,
            "previous_offsets": self.previous_offsets,
            "slot": self.slot,
            "slot_dropped": self.slot_dropped,
            "resumed": self.resumed,
            "notes": self.notes,
        }


def stop_and_wait(client: ConnectClient, name: str, *, timeout: float = 60.0) -> None:
    client.stop(name)
    wait_state(client, name, "STOPPED", timeout=timeout)


def reset_offsets(
    client: ConnectClient,
    settings: Settings,
    name: str,
    *,
    drop_slot: bool = True,
    resume: bool = False,
    timeout: float = 60.0,
) -> ResetResult:
    """Stop the connector, forget its offsets, and (PostgreSQL) drop its slot.

    Consequence: on its next start the connector has no position, so with snapshot.mode
    initial (or when_needed) it snapshots every captured table again and consumers see all
    rows once more as `op=r` events. A PostgreSQL slot keeps the old position and retains
    WAL from it; dropping it lets Debezium create a fresh slot consistent with the new
    snapshot. Kept, it makes the connector stream from the slot's old position after the
    snapshot (duplicates, and WAL retained meanwhile).
    """
    from seam.connectors.database import drop_slot as drop
    from seam.connectors.database import url_for_connector

    config = client.get_config(name)
    stop_and_wait(client, name, timeout=timeout)
    previous = client.offsets(name).get("offsets", [])
    client.reset_offsets(name)
    result = ResetResult(name, previous)
    result.notes.append(
        "offsets reset: on its next start the connector takes a new snapshot "
        f"(snapshot.mode={config.get('snapshot.mode', 'initial')}) and re-emits every row as op=r"
    )
    if is_postgres_config(config):
        result.slot = config.get("slot.name", "debezium")
        if drop_slot:
            result.slot_dropped = drop(url_for_connector(name, config, settings), result.slot)
            result.notes.append(
                f"replication slot '{result.slot}' "
                + (
                    "dropped; Debezium creates a fresh one"
                    if result.slot_dropped
                    else "did not exist"
                )
            )
        else:
            result.notes.append(
                f"replication slot '{result.slot}' kept: it retains WAL from its old position and the "
                "connector streams from there after the snapshot (duplicates)"
            )
    if resume:
        client.resume(name)
        result.resumed = True
    return result


def captured_collections(config: Mapping[str, str]) -> list[str] | None:
    """The connector's captured tables as its include list names them (None: every table),
    without its own signalling table."""
    raw = config.get("table.include.list", "").strip()
    if not raw:
        return None
    signal = config.get("signal.data.collection", "").strip().lower()
    return [t.strip() for t in raw.split(",") if t.strip() and t.strip().lower() != signal]


def _captures(patterns: list[str], collection: str) -> bool:
    """Debezium's include lists are regular expressions matched against the whole name."""
    for pattern in patterns:
        try:
            if re.fullmatch(pattern, collection, re.IGNORECASE):
                return True
        except re.error:
            if pattern.lower() == collection.lower():
                return True
    return False


def snapshot_tables(
    client: ConnectClient,
    settings: Settings,
    name: str,
    tables: list[str],
    live: Mapping[str, Any] | None = None,
    filters: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Ask the connector for an incremental (ad-hoc) snapshot of `tables` via its signal table
    (`filters`: per table as named in `tables`, a SQL condition restricting it to some rows).

    Refused when a table is not one the connector captures, or when another connector reads
    the same signal table (it would run the snapshot too: Debezium has no way to address a
    signal row to one connector, so each connector needs a signal table of its own).
    """
    from seam.connectors.database import send_snapshot_signal, url_for_connector
    from seam.connectors.plan import clash_fix, find_sharing

    live = live if live is not None else client.list_connectors(expand=True)
    require_connectors(live, [name], client.base_url)
    config = dict((live[name].get("info") or {}).get("config") or {})
    signal_table = config.get("signal.data.collection")
    if not signal_table:
        raise ConfigError(
            f"connector '{name}' has no signalling table (signal.data.collection)",
            hint="set 'signal_table:' in its spec and apply it",
        )
    postgres = is_postgres_config(config)
    dbname = signal_table.split(".")[0] if not postgres else None
    default_schema = "public" if postgres else (dbname or "")
    collections = [t if "." in t else f"{default_schema}.{t}" for t in tables]
    captured = captured_collections(config)
    if captured is not None:
        unknown = [c for c in collections if not _captures(captured, c)]
        if unknown:
            raise ConfigError(
                f"connector '{name}' does not capture {', '.join(unknown)}; it captures "
                f"{', '.join(captured)}",
                hint="name one of its captured tables, or add the table to 'tables:' in its "
                "spec and apply it first",
            )
    others = find_sharing(name, config, live, "signal.data.collection")
    if others:
        raise ConfigError(
            f"connectors {', '.join(repr(o) for o in others)} read the same signal table "
            f"{signal_table} as '{name}': they would run this snapshot too",
            hint=clash_fix("signal.data.collection", name) + ", then apply",
        )
    by_collection = {
        collection: (filters or {})[table]
        for table, collection in zip(tables, collections, strict=True)
        if table in (filters or {})
    }
    signal_id = send_snapshot_signal(
        url_for_connector(name, config, settings, dbname=dbname),
        signal_table,
        collections,
        postgres=postgres,
        filters=by_collection,
    )
    result: dict[str, Any] = {
        "connector": name,
        "signal_id": signal_id,
        "data-collections": collections,
    }
    if by_collection:
        result["additional-conditions"] = by_collection
    return result

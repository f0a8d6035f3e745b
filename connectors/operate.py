"""Day-2 operations on live connectors: status, offsets reset, ad-hoc snapshots, slots."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from seam.connectors.database import is_postgres_config
from seam.connectors.errors import ConnectError, ConnectNotFoundError
from seam.connectors.plan import connector_failures, wait_state
from seam.connectors.render import is_managed
from seam.errors import ConfigError

if TYPE_CHECKING:
    from seam.connectors.client import ConnectClient
    from seam.connectors.database import SlotInfo
    from seam.settings import Settings

SLOT_LAG_WARN_BYTES: Final = 256 << 20


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
        }


def statuses(client: ConnectClient, names: list[str] | None = None) -> list[ConnectorStatus]:
    """Status of every connector (or the named ones): one listing call + topics in parallel."""
    live = client.list_connectors(expand=True)
    if names:
        unknown = [n for n in names if n not in live]
        if unknown:
            raise ConnectNotFoundError(
                f"no connector named {', '.join(repr(n) for n in unknown)} on {client.base_url}",
                hint=f"known: {', '.join(sorted(live)) or 'none'}",
            )
    selected = sorted(names or live)

    def topics(name: str) -> list[str]:
        try:
            return sorted(client.topics(name))
        except ConnectError:
            return []

    with ThreadPoolExecutor(max_workers=min(8, max(1, len(selected)))) as pool:
        topic_lists = dict(zip(selected, pool.map(topics, selected), strict=True))
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


def snapshot_tables(
    client: ConnectClient, settings: Settings, name: str, tables: list[str]
) -> dict[str, Any]:
    """Ask the connector for an incremental (ad-hoc) snapshot of `tables` via its signal table."""
    from seam.connectors.database import send_snapshot_signal, url_for_connector

    config = client.get_config(name)
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
    signal_id = send_snapshot_signal(
        url_for_connector(name, config, settings, dbname=dbname),
        signal_table,
        collections,
        postgres=postgres,
    )
    return {"connector": name, "signal_id": signal_id, "data-collections": collections}


def slots_report(
    settings: Settings, database: str, live: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """PostgreSQL replication slots with retained WAL, lag flag and the connector using each."""
    from seam.connectors.database import list_slots

    owners: dict[str, str] = {}
    for name, entry in (live or {}).items():
        config = (entry.get("info") or {}).get("config") or {}
        if is_postgres_config(config) and config.get("slot.name"):
            owners[config["slot.name"]] = name
    rows = []
    slots: list[SlotInfo] = list_slots(settings.database_url(database))
    for slot in slots:
        lagging = slot.retained_bytes >= SLOT_LAG_WARN_BYTES or slot.wal_status in (
            "unreserved",
            "lost",
        )
        rows.append(
            {
                **slot.as_dict(),
                "connector": owners.get(slot.name),
                "lagging": lagging,
            }
        )
    return rows

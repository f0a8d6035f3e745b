"""Compare specs with the cluster (plan) and make the cluster match (apply).

`make_plan` is pure: rendered specs + the live connectors (`GET /connectors?expand=info
&expand=status`) in, a list of actions out. Values are normalised before comparing so an
applied spec shows no diff: booleans and integers as Connect prints them, list-like CSV
values (include lists, channels) as sorted sets, the `name` key Connect adds ignored.

`apply_plan` is all or nothing up to the first write: it checks every plugin class,
validates every changed config with Connect's validate endpoint and runs every preflight
BEFORE changing anything; only then it writes (PUT config is create-or-update, so a
re-run after a partial failure converges).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from seam.connectors.errors import (
    ConnectNotFoundError,
    ConnectorFailedError,
    ConnectorTimeoutError,
    clean_message,
)
from seam.connectors.render import RenderedConnector, is_managed, mask_value
from seam.errors import ConfigError, SeamError

if TYPE_CHECKING:
    from seam.connectors.client import ConnectClient
    from seam.connectors.preflight import PreflightReport
    from seam.settings import Settings

ActionKind = Literal["create", "update", "unchanged", "delete", "orphan"]

# Keys whose values are comma-separated sets: their order does not matter.
LIST_KEYS: Final = frozenset(
    {
        "table.include.list",
        "table.exclude.list",
        "database.include.list",
        "database.exclude.list",
        "schema.include.list",
        "schema.exclude.list",
        "column.include.list",
        "column.exclude.list",
        "signal.enabled.channels",
        "snapshot.include.collection.list",
        "skipped.operations",
    }
)
# Keys Connect adds or owns: never part of a diff.
IGNORED_KEYS: Final = frozenset({"name"})
_INT = re.compile(r"^[+-]?\d+$")


def normalise(key: str, value: Any) -> str:
    """The value as Connect would store it, for comparison."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip()
    if text.lower() in ("true", "false"):
        return text.lower()
    if _INT.match(text):
        return str(int(text))
    if key in LIST_KEYS:
        return ",".join(sorted({part.strip() for part in text.split(",") if part.strip()}))
    return text


def normalised(config: Mapping[str, Any]) -> dict[str, str]:
    return {k: normalise(k, v) for k, v in config.items() if k not in IGNORED_KEYS}


@dataclass(frozen=True)
class FieldChange:
    """One key's change, with secret values masked."""

    key: str
    old: str | None
    new: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "old": self.old, "new": self.new}


@dataclass
class Action:
    kind: ActionKind
    name: str
    rendered: RenderedConnector | None = None
    changes: list[FieldChange] = field(default_factory=list)
    live_config: dict[str, str] | None = None

    @property
    def writes(self) -> bool:
        return self.kind in ("create", "update")

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.kind,
            "connector": self.name,
            "changes": [c.as_dict() for c in self.changes],
        }


@dataclass
class Plan:
    actions: list[Action]
    prune: bool = False

    @property
    def pending(self) -> list[Action]:
        return [a for a in self.actions if a.kind in ("create", "update", "delete")]

    @property
    def has_changes(self) -> bool:
        return bool(self.pending)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pending": len(self.pending),
            "actions": [a.as_dict() for a in self.actions],
        }


def diff(desired: Mapping[str, str], live: Mapping[str, str]) -> list[FieldChange]:
    """Field-level changes from `live` to `desired`, secrets masked."""
    want, have = normalised(desired), normalised(live)
    changes = []
    for key in sorted(set(want) | set(have)):
        if want.get(key) == have.get(key):
            continue
        old = mask_value(key, live[key]) if key in have else None
        new = mask_value(key, desired[key]) if key in want else None
        changes.append(FieldChange(key, old, new))
    return changes


def make_plan(
    rendered: Iterable[RenderedConnector], live: Mapping[str, Any], *, prune: bool = False
) -> Plan:
    """What must change for the cluster to match the specs. `live` is list_connectors()."""
    rendered = list(rendered)
    live_configs = {
        name: dict((entry.get("info") or {}).get("config") or {}) for name, entry in live.items()
    }
    _check_clashes(rendered, live_configs)
    actions: list[Action] = []
    wanted = set()
    for item in rendered:
        wanted.add(item.name)
        current = live_configs.get(item.name)
        if current is None:
            changes = [FieldChange(k, None, mask_value(k, v)) for k, v in item.config.items()]
            actions.append(Action("create", item.name, item, changes))
            continue
        changes = diff(item.config, current)
        actions.append(
            Action("update" if changes else "unchanged", item.name, item, changes, current)
        )
    for name in sorted(set(live_configs) - wanted):
        config = live_configs[name]
        if is_managed(config):
            actions.append(Action("delete" if prune else "orphan", name, live_config=config))
    return Plan(actions, prune=prune)


def _check_clashes(
    rendered: list[RenderedConnector], live: Mapping[str, Mapping[str, str]]
) -> None:
    """Two connectors must not share a MySQL server id or a PostgreSQL slot on one server."""
    names = {r.name for r in rendered}
    seen: dict[tuple[str, ...], str] = {}
    others = [(n, c) for n, c in live.items() if n not in names]
    entries = [(r.name, r.config, r.spec.source) for r in rendered] + [
        (n, dict(c), "the cluster") for n, c in others
    ]
    for name, config, where in entries:
        server = (config.get("database.hostname", ""), config.get("database.port", ""))
        keys: list[tuple[str, ...]] = []
        if config.get("database.server.id"):
            keys.append(
                ("database.server.id", *server, normalise("", config["database.server.id"]))
            )
        if config.get("slot.name"):
            keys.append(
                ("slot.name", *server, config.get("database.dbname", ""), config["slot.name"])
            )
        for key in keys:
            if key in seen and seen[key] != name:
                what = "server_id" if key[0] == "database.server.id" else "slot"
                raise ConfigError(
                    f"connector '{name}' ({where}) uses {key[0]}={key[-1]}, "
                    f"already used by connector '{seen[key]}'",
                    hint=f"set '{what}:' in the spec of '{name}' to a value of its own",
                )
            seen[key] = name


# -- apply --------------------------------------------------------------------------------


class ValidationFailedError(ConfigError):
    """Connect's validate endpoint rejected one or more configs; nothing was applied."""


@dataclass
class ApplyResult:
    plan: Plan
    applied: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    preflight: list[PreflightReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.plan.as_dict(),
            "applied": self.applied,
            "deleted": self.deleted,
            "states": self.states,
            "notes": self.notes,
            "preflight": [r.as_dict() for r in self.preflight],
        }


def check_plugins(client: ConnectClient, rendered: Iterable[RenderedConnector]) -> None:
    available = {p.get("class", "") for p in client.plugins()}
    for item in rendered:
        if item.connector_class not in available:
            raise ConfigError(
                f"connector '{item.name}': plugin class {item.connector_class} is not installed on "
                f"the Connect cluster (installed: {', '.join(sorted(available)) or 'none'})",
                hint="install the Debezium connector on the workers' plugin.path, or fix "
                "connector.class in the spec's overrides",
            )


def validate_configs(client: ConnectClient, rendered: Iterable[RenderedConnector]) -> None:
    """Connect's own check of each config; raise one error listing every problem."""
    problems: list[str] = []
    client_overrides = False
    for item in rendered:
        result = client.validate(item.connector_class, {**item.config, "name": item.name})
        if not result.get("error_count"):
            continue
        for entry in result.get("configs", []):
            value = entry.get("value") or {}
            for error in value.get("errors") or []:
                problems.append(f"{item.name}: {value.get('name')}: {clean_message(str(error))}")
                client_overrides |= str(value.get("name", "")).startswith("producer.override.")
    if problems:
        hint = "fix the spec (or its overrides); nothing was applied"
        if client_overrides:
            # seam renders producer.override.* itself (render.PRODUCER_DEFAULTS).
            hint = (
                "the Connect workers forbid per-connector producer settings: add "
                "'producer_overrides: false' to the spec, or allow them on the workers with "
                "connector.client.config.override.policy=All; nothing was applied"
            )
        raise ValidationFailedError(
            "Kafka Connect rejected the config: " + "; ".join(problems), hint=hint
        )


def apply_plan(
    plan: Plan,
    client: ConnectClient,
    settings: Settings,
    *,
    dry_run: bool = False,
    preflight: bool = True,
    fix: bool = False,
    wait: bool = False,
    wait_timeout: float = 120.0,
    drop_slots: bool = True,
    on_progress: Callable[[str], None] | None = None,
) -> ApplyResult:
    """Make the cluster match the plan. Every check runs before the first write."""
    from seam.connectors.preflight import PreflightError, run_preflight

    say = on_progress or (lambda _msg: None)
    result = ApplyResult(plan)
    writes = [a.rendered for a in plan.actions if a.writes and a.rendered is not None]
    if writes:
        check_plugins(client, writes)
        say(f"validating {len(writes)} config(s) with Kafka Connect")
        validate_configs(client, writes)
        if preflight:
            say("running preflight checks")
            result.preflight = [run_preflight(r, settings, fix=fix) for r in writes]
            if not all(r.ok for r in result.preflight):
                raise PreflightError(result.preflight)
    if dry_run:
        return result
    for action in plan.actions:
        if action.writes and action.rendered is not None:
            say(f"{action.kind} {action.name}")
            client.put_config(action.name, action.rendered.config)
            result.applied.append(action.name)
        elif action.kind == "delete":
            say(f"delete {action.name}")
            note = delete_connector(
                client, settings, action.name, action.live_config, drop_slot=drop_slots
            )
            result.deleted.append(action.name)
            if note:
                result.notes.append(note)
    if wait:
        for name in result.applied:
            say(f"waiting for {name} to run")
            result.states[name] = wait_running(client, name, timeout=wait_timeout)
    return result


def delete_connector(
    client: ConnectClient,
    settings: Settings,
    name: str,
    config: Mapping[str, str] | None = None,
    *,
    drop_slot: bool = True,
) -> str | None:
    """Delete the connector; for PostgreSQL also drop its slot (which would retain WAL forever).

    Returns a note for the user when the slot could not be dropped.
    """
    from seam.connectors.database import drop_slot as drop
    from seam.connectors.database import is_postgres_config, url_for_connector

    if config is None:
        config = client.get_config(name)
    client.delete(name)
    slot = config.get("slot.name") if is_postgres_config(config) else None
    if not slot:
        return None
    if not drop_slot:
        return f"replication slot '{slot}' was kept and retains WAL; drop it with SELECT pg_drop_replication_slot('{slot}')"
    try:
        drop(url_for_connector(name, config, settings), slot)
    except SeamError as exc:  # the connector is gone: report, do not fail
        return f"could not drop replication slot '{slot}' ({exc}); drop it with SELECT pg_drop_replication_slot('{slot}')"
    return None


# -- waiting ------------------------------------------------------------------------------


def summarise_trace(trace: str | None, limit: int = 600) -> str:
    """A Java stack trace as one readable paragraph: the exception and its causes."""
    if not trace:
        return "no trace reported"
    messages: list[str] = []
    for line in trace.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("at ", "...")):
            continue
        if stripped.startswith("Caused by:"):
            stripped = stripped[len("Caused by:") :].strip()
        elif messages and not re.match(r"^[\w.$]+(Exception|Error)\b", stripped):
            # A continuation line of a multi-line message.
            messages[-1] += " " + stripped
            continue
        text = clean_message(stripped)
        if text and text not in messages:
            messages.append(text)
    paragraph = " Caused by: ".join(messages)
    return paragraph if len(paragraph) <= limit else paragraph[: limit - 3] + "..."


def connector_failures(status: Mapping[str, Any]) -> list[str]:
    """One readable line per FAILED connector or task in a status body."""
    failures = []
    conn = status.get("connector") or {}
    if conn.get("state") == "FAILED":
        failures.append(
            f"connector on {conn.get('worker_id')}: {summarise_trace(conn.get('trace'))}"
        )
    for task in status.get("tasks") or []:
        if task.get("state") == "FAILED":
            failures.append(
                f"task {task.get('id')} on {task.get('worker_id')}: {summarise_trace(task.get('trace'))}"
            )
    return failures


def wait_state(
    client: ConnectClient,
    name: str,
    wanted: str = "RUNNING",
    *,
    timeout: float = 120.0,
    interval: float = 0.5,
) -> str:
    """Wait until the connector and all its tasks are `wanted`; FAILED raises with the trace."""
    deadline = time.monotonic() + timeout
    last = "unknown"
    while True:
        try:
            status = client.status(name)
        except ConnectNotFoundError:
            status = {}
        failures = connector_failures(status)
        if failures:
            raise ConnectorFailedError(
                f"connector '{name}' FAILED: " + " | ".join(failures),
                hint=f"fix the cause, then `seam connectors restart {name} --failed`",
            )
        state = (status.get("connector") or {}).get("state", "missing")
        tasks = status.get("tasks") or []
        last = f"connector {state}, tasks " + (
            ",".join(t.get("state", "?") for t in tasks) or "none"
        )
        tasks_ok = all(t.get("state") == wanted for t in tasks) and (
            bool(tasks) or wanted == "STOPPED"
        )
        if state == wanted and tasks_ok:
            return wanted
        if time.monotonic() > deadline:
            raise ConnectorTimeoutError(
                f"connector '{name}' did not reach {wanted} within {timeout:.0f} s (last: {last})",
                hint=f"see `seam connectors status {name}` and the Connect worker's log",
            )
        time.sleep(interval)


def wait_running(client: ConnectClient, name: str, *, timeout: float = 120.0) -> str:
    return wait_state(client, name, "RUNNING", timeout=timeout)

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
from seam.connectors.render import Rendered, is_managed, mask_value, pg_identifier
from seam.errors import ConfigError, SeamError

if TYPE_CHECKING:
    from seam.connectors.client import ConnectClient
    from seam.connectors.readiness.model import Report
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
    rendered: Rendered | None = None
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
    rendered: Iterable[Rendered], live: Mapping[str, Any], *, prune: bool = False
) -> Plan:
    """What must change for the cluster to match the specs. `live` is list_connectors()."""
    rendered = list(rendered)
    live_configs = {
        name: dict((entry.get("info") or {}).get("config") or {}) for name, entry in live.items()
    }
    check_clashes(rendered, live_configs)
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


@dataclass(frozen=True)
class Clash:
    """Two connectors that would share something only one of them may own."""

    connector: str
    where: str  # the spec's file:line, or "the cluster"
    key: str  # the Connect config key they share
    value: str
    other: str
    other_where: str

    def describe(self) -> str:
        return (
            f"connector '{self.connector}' ({self.where}) uses {self.key}={self.value}, already used "
            f"by connector '{self.other}'"
            + (" on the cluster" if self.other_where == CLUSTER else "")
        )

    @property
    def fix(self) -> str:
        return clash_fix(self.key, self.connector)


def clash_fix(key: str, name: str) -> str:
    """How the connector `name` gets a `key` of its own."""
    return CLASH_FIXES[key].format(name=name, table=pg_identifier("seam_signal_", name))


CLUSTER: Final = "the cluster"
# What goes wrong when two connectors share each key, and the spec field that separates them.
CLASH_FIXES: Final = {
    "database.server.id": "set 'server_id:' in the spec of '{name}' to a number of its own "
    "(a binlog client with another's id disconnects it)",
    "slot.name": "set 'slot:' in the spec of '{name}' to a slot of its own (two connectors "
    "cannot read one slot, and deleting one would drop the other's slot)",
    "topic.prefix": "set 'topic_prefix:' in the spec of '{name}' to a prefix of its own (both "
    "would write their changes into the same topics)",
    "signal.data.collection": "set 'signal_table:' in the spec of '{name}' to a table of its "
    "own, e.g. {table} (`seam connectors prepare` creates it): every "
    "connector that reads a signal table acts on its signals",
    "collection.name.format": "set 'table:' in the spec of '{name}' to a table of its own (two "
    "sinks writing one table upsert and delete each other's rows)",
}
_LOCAL_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def _server(config: Mapping[str, str]) -> tuple[str, str]:
    """(host, port) of the connector's database, with the loopback names made one."""
    host = config.get("database.hostname", "").strip().lower()
    return (
        "127.0.0.1" if host in _LOCAL_HOSTS else host,
        normalise("", config.get("database.port")),
    )


def _exclusive_keys(config: Mapping[str, str]) -> list[tuple[str, tuple[str, ...], str]]:
    """(config key, identity, shown value) of everything the connector must own alone."""
    from seam.connectors.database import is_postgres_config
    from seam.connectors.sink import is_sink_config

    keys: list[tuple[str, tuple[str, ...], str]] = []
    if is_sink_config(config):
        # One table per sink: the target database's URL (no credentials in it) and the table.
        table = config.get("collection.name.format", "")
        url = config.get("connection.url", "").strip().lower()
        keys.append(("collection.name.format", (url, table.lower()), table))
        return keys
    server = _server(config)
    if config.get("topic.prefix"):
        # One Kafka cluster behind the Connect cluster: the prefix names topics cluster-wide.
        keys.append(("topic.prefix", (config["topic.prefix"],), config["topic.prefix"]))
    if is_postgres_config(config):
        # Replication slots are named per PostgreSQL server (cluster), not per database.
        slot = config.get("slot.name") or "debezium"
        keys.append(("slot.name", (*server, slot), slot))
    elif config.get("database.server.id"):
        server_id = normalise("", config["database.server.id"])
        keys.append(("database.server.id", (*server, server_id), server_id))
    signal = config.get("signal.data.collection", "").strip()
    if signal:
        database = config.get("database.dbname", "") if is_postgres_config(config) else ""
        keys.append(("signal.data.collection", (*server, database, signal.lower()), signal))
    return keys


def find_clashes(
    rendered: Iterable[Rendered], live: Mapping[str, Mapping[str, str]]
) -> list[Clash]:
    """Every slot, server id, topic prefix or signal table that two connectors would share:
    among the specs applied together, and between a spec and another live connector."""
    rendered = list(rendered)
    names = {r.name for r in rendered}
    entries = [(r.name, r.config, r.spec.source) for r in rendered] + [
        (n, dict(c), CLUSTER) for n, c in sorted(live.items()) if n not in names
    ]
    seen: dict[tuple[str, tuple[str, ...]], tuple[str, str]] = {}
    clashes: list[Clash] = []
    for name, config, where in entries:
        for key, identity, value in _exclusive_keys(config):
            owner = seen.setdefault((key, identity), (name, where))
            if owner[0] != name and name in names:
                clashes.append(Clash(name, where, key, value, *owner))
            elif owner[0] != name and owner[0] in names:
                clashes.append(Clash(owner[0], owner[1], key, value, name, where))
    return clashes


def find_sharing(
    name: str, config: Mapping[str, str], live: Mapping[str, Any], key: str
) -> list[str]:
    """Other live connectors (`list_connectors()`) sharing the connector's `key` value."""
    mine = {identity for k, identity, _ in _exclusive_keys(config) if k == key}
    others = []
    for other, entry in sorted(live.items()):
        other_config = (entry.get("info") or {}).get("config") or {}
        if other != name and mine & {i for k, i, _ in _exclusive_keys(other_config) if k == key}:
            others.append(other)
    return others


def check_clashes(rendered: Iterable[Rendered], live: Mapping[str, Mapping[str, str]]) -> None:
    """Raise one error naming every clash `find_clashes` finds."""
    clashes = find_clashes(rendered, live)
    if clashes:
        raise ConfigError(
            "; ".join(c.describe() for c in clashes),
            hint="; ".join(dict.fromkeys(c.fix for c in clashes)),
        )


# -- apply --------------------------------------------------------------------------------


class ValidationFailedError(ConfigError):
    """Connect's validate endpoint rejected one or more configs; nothing was applied."""


@dataclass
class ApplyResult:
    plan: Plan
    applied: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    preflight: list[Report] = field(default_factory=list)
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


def check_plugins(client: ConnectClient, rendered: Iterable[Rendered]) -> None:
    from seam.connectors.sink import SINK_CLASS

    available = {p.get("class", "") for p in client.plugins()}
    for item in rendered:
        if item.connector_class not in available:
            hint = (
                "install the Debezium connector on the workers' plugin.path, or fix "
                "connector.class in the spec's overrides"
            )
            if item.connector_class == SINK_CLASS:
                hint = (
                    "install Debezium's JDBC sink (io.debezium:debezium-connector-jdbc) on the "
                    "workers' plugin.path; the local stack has it from a Connect started by "
                    "this seam on: seam stack down --only connect && seam stack up --only connect"
                )
            raise ConfigError(
                f"connector '{item.name}': plugin class {item.connector_class} is not installed on "
                f"the Connect cluster (installed: {', '.join(sorted(available)) or 'none'})",
                hint=hint,
            )


_ENV_REFERENCE = re.compile(r"\$\{env:([^}:]+)\}")


def env_references(config: Mapping[str, str]) -> dict[str, list[str]]:
    """Environment variables the config refers to (`${env:VAR}`), with the keys using each."""
    found: dict[str, list[str]] = {}
    for key, value in config.items():
        for var in _ENV_REFERENCE.findall(str(value)):
            found.setdefault(var, []).append(key)
    return found


def worker_lacks_env(client: ConnectClient, connector_class: str, var: str) -> bool:
    """True when the Connect worker cannot resolve `${env:VAR}`.

    Connect resolves config provider references before it validates, and its
    EnvVarConfigProvider leaves a reference to a missing variable as it is. So the reference
    is put in `topic.prefix`, whose validator rejects `$`, `{` and `}`: the error quotes the
    literal reference only when the variable is missing. (A resolved value may be quoted
    instead; it is never kept or shown.)
    """
    reference = f"${{env:{var}}}"
    result = client.validate(
        connector_class,
        {"connector.class": connector_class, "name": "seam-env-probe", "topic.prefix": reference},
    )
    for entry in result.get("configs", []):
        value = entry.get("value") or {}
        if value.get("name") == "topic.prefix":
            return any(reference in str(error) for error in value.get("errors") or [])
    return False


def validate_configs(client: ConnectClient, rendered: Iterable[Rendered]) -> None:
    """Connect's own check of each config; raise one error listing every problem.

    When a config that failed refers to environment variables, the worker is asked whether
    it has them: a missing one makes the connector log in with the literal `${env:VAR}`, and
    the database's "password authentication failed" would hide the real cause.
    """
    problems: list[str] = []
    missing: dict[str, list[str]] = {}
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
        for var, keys in env_references(item.config).items():
            if worker_lacks_env(client, item.connector_class, var):
                missing.setdefault(var, []).extend(f"{item.name} {k}" for k in keys)
    if missing:
        described = "; ".join(
            f"${{env:{var}}} ({', '.join(users)})" for var, users in sorted(missing.items())
        )
        names = " and ".join(sorted(missing))
        raise ValidationFailedError(
            f"the Connect worker could not resolve {described}: {names} is missing from the "
            "Connect worker's environment, so the connector would use the literal reference "
            "(Connect said: " + "; ".join(problems) + ")",
            hint=f"start the Connect worker with {names} set (the local stack: export it, then "
            "`seam stack down --only connect && seam stack up --only connect`), or refer to a "
            "properties file the worker can read: password: {file: PATH, key: password}; "
            "nothing was applied",
        )
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
    from seam.connectors.readiness import prepare
    from seam.connectors.readiness.model import PreflightError
    from seam.connectors.readiness.preflight import run_preflight

    say = on_progress or (lambda _msg: None)
    result = ApplyResult(plan)
    writes = [a.rendered for a in plan.actions if a.writes and a.rendered is not None]
    if writes:
        if fix:
            # Before validation: Connect validates by logging in as the CDC user, which
            # prepare may be about to create.
            say("preparing the databases (seam connectors prepare)")
            for item in writes:
                prepare.apply(item, settings)
        check_plugins(client, writes)
        say(f"validating {len(writes)} config(s) with Kafka Connect")
        validate_configs(client, writes)
        if preflight:
            say("running preflight checks")
            result.preflight = [run_preflight(r, settings) for r in writes]
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


SLOT_APPEARS_S: Final = 3.0  # how long a dropped slot must stay absent (a task may re-create it)


def delete_connector(
    client: ConnectClient,
    settings: Settings,
    name: str,
    config: Mapping[str, str] | None = None,
    *,
    drop_slot: bool = True,
) -> str | None:
    """Delete the connector; for PostgreSQL also drop its slot (which would retain WAL forever),
    for a JDBC sink its consumer group (a sink made again would resume from its offsets).

    Returns a note for the user when the slot or group could not be dropped.
    """
    from seam.connectors.database import drop_slot as drop
    from seam.connectors.database import is_postgres_config, url_for_connector
    from seam.connectors.sink import drop_group, is_sink_config

    if config is None:
        config = client.get_config(name)
    client.delete(name)
    if is_sink_config(config):
        return drop_group(settings, name, config)
    slot = config.get("slot.name") if is_postgres_config(config) else None
    if not slot:
        return None
    if not drop_slot:
        return f"replication slot '{slot}' was kept and retains WAL; drop it with SELECT pg_drop_replication_slot('{slot}')"
    sharing = find_sharing(name, config, client.list_connectors(expand=True), "slot.name")
    if sharing:
        return (
            f"replication slot '{slot}' was kept: connector {', '.join(repr(s) for s in sharing)} "
            "uses it too"
        )
    try:
        # A task still starting when the connector was deleted may create the slot later.
        drop(url_for_connector(name, config, settings), slot, appear_s=SLOT_APPEARS_S)
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

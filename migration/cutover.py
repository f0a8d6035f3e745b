"""Cutover: a capability moves to `new` only on evidence, and the evidence is kept.

The evidence is the last parity record of the capability's entity (`parity/<entity>.json`)
and the shadow comparisons over a window (`shadow_outcomes`). Every condition must hold:

- parity: the record exists, is clean, and finished within the window or after the last
  mismatch the shadow kept (an older clean parity still counts while nothing has disagreed
  since; a mismatch after it asks for a new parity run);
- enough comparisons: at least `min_compared` (match + mismatch) in the window;
- the mismatch rate (mismatch / compared) in the window is at most `max_mismatch_rate`.

Unsettled, error and skipped comparisons are shown, never counted as compared. The window is
counted in whole minutes (the minute it starts in through the current one). On success the
capability's mode is set to `new` with the route record writer `seam migrate route` uses,
and `cutover/<capability>.json` records who, when, the thresholds and the evidence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from seam.errors import ConfigError, SeamError
from seam.migration.modes import actor, read_override, write_override
from seam.migration.routes import Mode
from seam.migration.shadow import MISMATCHES_FILE, RETAIN_MIN, shadow_outcomes
from seam.migration.state import MigrationStore

_WINDOW: Final = re.compile(r"\A\s*([0-9]+)\s*(m|h|d)\s*\Z")
_UNITS: Final = {"m": 60, "h": 3600, "d": 86400}


def cutover_name(capability: str) -> str:
    return f"cutover/{capability}.json"


def parity_name(entity: str) -> str:
    return f"parity/{entity}.json"


def parse_window(text: str) -> timedelta:
    """`30m`, `1h`, `2d`: whole minutes, at least one, at most the outcomes kept."""
    found = _WINDOW.match(text)
    if found is None or int(found.group(1)) == 0:
        raise ConfigError(
            f"--window {text}: not a window",
            hint="give a number of minutes, hours or days: --window 30m, 1h or 2d",
        )
    window = timedelta(seconds=int(found.group(1)) * _UNITS[found.group(2)])
    if window > timedelta(minutes=RETAIN_MIN):
        raise ConfigError(
            f"--window {text}: longer than the {RETAIN_MIN // 1440} days of shadow outcomes kept",
            hint=f"give at most --window {RETAIN_MIN // 1440}d",
        )
    return window


def window_text(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit in ("d", "h"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds // 60}m"


@dataclass(frozen=True)
class Thresholds:
    window: timedelta
    max_mismatch_rate: float
    min_compared: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "window": window_text(self.window),
            "window_s": int(self.window.total_seconds()),
            "max_mismatch_rate": self.max_mismatch_rate,
            "min_compared": self.min_compared,
        }


def _instant(value: Any, what: str, record: str) -> datetime:
    """An ISO-8601 time of a record (naive: UTC), or a clear error naming the record."""
    try:
        parsed = datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        raise ConfigError(
            f"the record {record} has no valid {what} (got {value!r}, expected an ISO-8601 time)",
            hint="run the step that writes it again, or restore the file from a backup",
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def read_parity(store: MigrationStore, entity: str) -> dict[str, Any] | None:
    """The entity's last parity record, checked for the keys cutover relies on."""
    name = parity_name(entity)
    record = store.read(name)
    if record is None:
        return None
    path = str(store.path(name))
    if not isinstance(record, dict) or not isinstance(record.get("clean"), bool):
        raise ConfigError(
            f"the parity record {path} is damaged (expected an object with a true/false 'clean')",
            hint=f"run the parity check again: seam migrate parity {entity}",
        )
    _instant(record.get("finished_at"), "finished_at", path)
    return record


def gather(
    store: MigrationStore,
    capability: str,
    entity: str | None,
    thresholds: Thresholds,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The evidence for a cutover and each condition's verdict (`ok`: all hold)."""
    now = now or datetime.now(UTC)
    since = now - thresholds.window
    shadow = shadow_outcomes(
        store.path(MISMATCHES_FILE), capability, since.timestamp(), now.timestamp()
    )
    shadow["since"] = since.isoformat(timespec="seconds")
    shadow["until"] = now.isoformat(timespec="seconds")
    parity = read_parity(store, entity) if entity else None
    window = window_text(thresholds.window)
    conditions = [
        _parity_condition(store, capability, entity, parity, shadow, since),
        _compared_condition(capability, shadow, thresholds, window),
        _rate_condition(capability, shadow, thresholds, window),
    ]
    return {
        "capability": capability,
        "entity": entity,
        "at": now.isoformat(timespec="seconds"),
        "thresholds": thresholds.as_dict(),
        "parity": parity,
        "shadow": shadow,
        "conditions": conditions,
        "ok": all(c["ok"] for c in conditions),
    }


def _condition(name: str, ok: bool, detail: str, fix: str | None) -> dict[str, Any]:
    return {"name": name, "ok": ok, "detail": detail, "fix": None if ok else fix}


def _parity_condition(
    store: MigrationStore,
    capability: str,
    entity: str | None,
    parity: dict[str, Any] | None,
    shadow: dict[str, Any],
    since: datetime,
) -> dict[str, Any]:
    if not entity:
        return _condition(
            "parity",
            False,
            f"the capability '{capability}' names no entity, so no parity record applies",
            f"add 'entity: NAME' to {capability} in the routes file, then run "
            "seam migrate parity NAME",
        )
    run = f"seam migrate parity {entity}"
    if parity is None:
        return _condition(
            "parity", False, f"parity of {entity} has never run (no {parity_name(entity)})", run
        )
    finished = _instant(parity["finished_at"], "finished_at", str(store.path(parity_name(entity))))
    at = f"at {parity.get('position')}, finished {parity['finished_at']}"
    if not parity["clean"]:
        return _condition(
            "parity",
            False,
            f"parity of {entity} found {parity.get('differing', '?')} differing ({at})",
            f"fix the differences (or {run} --repair), then {run} again",
        )
    last = shadow.get("last_mismatch_at")
    if finished >= since:
        return _condition("parity", True, f"parity of {entity} clean {at}", None)
    if last is not None and finished <= _instant(last, "mismatch time", MISMATCHES_FILE):
        return _condition(
            "parity",
            False,
            f"parity of {entity} was clean {at}, but that is before the window and before "
            f"the last shadow mismatch ({last})",
            f"run it again: {run}",
        )
    return _condition(
        "parity",
        True,
        f"parity of {entity} clean {at} (before the window, with no shadow mismatch since)",
        None,
    )


def _compared_condition(
    capability: str, shadow: dict[str, Any], thresholds: Thresholds, window: str
) -> dict[str, Any]:
    compared = shadow["compared"]
    return _condition(
        "compared",
        compared >= thresholds.min_compared,
        f"{compared} comparisons in the last {window} (at least {thresholds.min_compared} "
        f"needed; {shadow['unsettled']} unsettled, {shadow['error']} error, "
        f"{shadow['skipped']} skipped not counted)",
        f"keep shadowing (seam migrate route {capability} --mode shadow, with the facade "
        "serving traffic) until enough requests are compared, or lower --min-compared",
    )


def _rate_condition(
    capability: str, shadow: dict[str, Any], thresholds: Thresholds, window: str
) -> dict[str, Any]:
    rate = shadow["mismatch_rate"]
    limit = thresholds.max_mismatch_rate
    if rate is None:
        return _condition(
            "mismatch rate",
            False,
            f"no comparison in the last {window}, so no mismatch rate",
            f"keep shadowing: seam migrate route {capability} --mode shadow",
        )
    return _condition(
        "mismatch rate",
        rate <= limit,
        f"{rate:.4%} mismatched in the last {window} ({shadow['mismatch']} of "
        f"{shadow['compared']}; at most {limit:.4%} allowed)",
        "fix what the mismatches show (kept with both bodies in "
        f"{MISMATCHES_FILE}), then keep shadowing until the rate over the window is low",
    )


class CutoverRefusedError(SeamError):
    """The evidence does not hold: the message lists each unmet condition."""

    def __init__(self, evidence: dict[str, Any]) -> None:
        unmet = [c for c in evidence["conditions"] if not c["ok"]]
        super().__init__(
            f"{evidence['capability']} stays where it is; unmet: "
            + ", ".join(c["name"] for c in unmet),
            hint="; ".join(f"{c['name']}: {c['fix']}" for c in unmet),
        )
        self.evidence = evidence


def cut_over(
    store: MigrationStore,
    capability: str,
    entity: str | None,
    thresholds: Thresholds,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Check the evidence; if it holds, set the mode to `new` and record the cutover (the
    record), else raise `CutoverRefusedError` and change nothing."""
    evidence = gather(store, capability, entity, thresholds, now)
    if not evidence["ok"]:
        raise CutoverRefusedError(evidence)
    previous = read_override(store, capability)
    who = actor()
    record = {
        "capability": capability,
        "by": who,
        "at": evidence["at"],
        "mode": "new",
        "previous": None if previous is None else str(previous),
        "thresholds": evidence["thresholds"],
        "evidence": {k: evidence[k] for k in ("entity", "parity", "shadow", "conditions")},
    }
    # The record first: a mode of `new` is never set without its evidence on disk.
    try:
        store.write(cutover_name(capability), record)
        try:
            write_override(store, capability, Mode("new"), previous)
        except OSError:
            store.path(cutover_name(capability)).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ConfigError(
            f"cannot write to the migration directory {store.root}: {exc.strerror}",
            hint="check its permissions and free space; the mode was not changed",
        ) from exc
    return record


def last_cutover(store: MigrationStore, capability: str) -> dict[str, Any] | None:
    """The capability's cutover record (None: never cut over)."""
    name = cutover_name(capability)
    record = store.read(name)
    if record is None:
        return None
    if not isinstance(record, dict) or not {"by", "at"} <= record.keys():
        raise ConfigError(
            f"the cutover record {store.path(name)} is damaged (expected an object with "
            "'by' and 'at')",
            hint="restore it from version control or a backup",
        )
    return record


__all__ = [
    "CutoverRefusedError",
    "Thresholds",
    "cut_over",
    "cutover_name",
    "gather",
    "last_cutover",
    "parity_name",
    "parse_window",
    "read_parity",
    "window_text",
]

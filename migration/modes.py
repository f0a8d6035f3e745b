"""Route modes set at run time, and the cohorts a split has moved for good.

`seam migrate route` and `seam migrate rollback` write a capability's mode to
`routes/<capability>.json` in the migration directory; the running facade reads it within a
second, a restarted one at start, and it wins over the routes file's mode until cleared.

A split sends a cohort (the value of its key: a user id, a session cookie) to the new side
when the cohort's stable hash falls under N%: the same key always lands on the same side,
in every facade process. A forward-only split also remembers every cohort it moved
(`cohorts/<capability>.moved`, one hash per line, never the key itself), so lowering N does
not move those callers back.
"""

from __future__ import annotations

import getpass
import hashlib
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from seam.errors import ConfigError
from seam.migration.routes import Mode, parse_mode
from seam.migration.state import MigrationStore

BUCKETS: Final = 10_000  # a split's percent has a resolution of 0.01%
ACTOR_ENV: Final = "SEAM_ACTOR"


def override_name(capability: str) -> str:
    return f"routes/{capability}.json"


def cohort_hash(capability: str, key: str) -> str:
    """The cohort's stable identity: the same on every run and process (not Python's hash)."""
    return hashlib.blake2b(f"{capability}\0{key}".encode(), digest_size=8).hexdigest()


def in_split(cohort: str, percent: float) -> bool:
    """Whether a cohort (its `cohort_hash`) falls in the first `percent` of the buckets."""
    return int(cohort, 16) % BUCKETS < round(percent * BUCKETS / 100)


def read_override(store: MigrationStore, capability: str) -> Mode | None:
    record = store.read(override_name(capability))
    if record is None:
        return None
    mode = parse_mode(str(record.get("mode", ""))) if isinstance(record, dict) else None
    if mode is None:
        raise ConfigError(
            f"the route record {store.path(override_name(capability))} holds no valid mode",
            hint=f"set it again: seam migrate route {capability} --mode legacy",
        )
    return mode


def write_override(
    store: MigrationStore, capability: str, mode: Mode, previous: Mode | None
) -> dict[str, Any]:
    record = {
        "capability": capability,
        "mode": str(mode),
        "previous": None if previous is None else str(previous),
        "set_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "set_by": actor(),
    }
    store.write(override_name(capability), record)
    return record


def clear_override(store: MigrationStore, capability: str) -> bool:
    try:
        store.path(override_name(capability)).unlink()
        return True
    except FileNotFoundError:
        return False


def actor(env: Mapping[str, str] | None = None) -> str:
    """Who acts, for the records: $SEAM_ACTOR (a CI job, a change ticket), else the OS user."""
    given = (os.environ if env is None else env).get(ACTOR_ENV, "").strip()
    if given:
        return given
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (a container without passwd)
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


class MovedCohorts:
    """The cohorts a forward-only split has sent to the new side, kept across restarts."""

    def __init__(self, store: MigrationStore, capability: str) -> None:
        self.path: Path = store.path(f"cohorts/{capability}.moved")
        self.moved: set[str] = set()
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        self.moved = {line.strip() for line in text.splitlines() if line.strip()}

    def __contains__(self, cohort: str) -> bool:
        return cohort in self.moved

    def add(self, cohort: str) -> None:
        if cohort in self.moved:
            return
        self.moved.add(cohort)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One short line, appended: written through to the OS at once, so a facade killed
        # right after keeps it (a crash of the machine may lose the last lines).
        with self.path.open("a", encoding="utf-8") as file:
            file.write(cohort + "\n")


def to_new(capability: str, key: str | None, percent: float, moved: MovedCohorts | None) -> bool:
    """Whether a split sends this cohort to the new side (no key: legacy). `moved` is given
    for a forward-only split: it is consulted and remembers what this call moves."""
    if key is None:
        return False
    cohort = cohort_hash(capability, key)
    if in_split(cohort, percent):
        if moved is not None:
            moved.add(cohort)
        return True
    return moved is not None and cohort in moved


__all__ = [
    "ACTOR_ENV",
    "BUCKETS",
    "MovedCohorts",
    "actor",
    "clear_override",
    "cohort_hash",
    "in_split",
    "override_name",
    "read_override",
    "to_new",
    "write_override",
]

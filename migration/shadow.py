"""Shadow traffic: the new side answers the user's request too, off the user's path, and the
two answers are compared once the new side has applied what the legacy answer reflected.

A shadowed request is queued after the user has the legacy answer; a full queue skips it
(counted), it never waits. Its position is the legacy answer's `Seam-Legacy-Position`
header, else the legacy database's log position read as soon as the request leaves the
queue (one read serves every request queued by then; a change committed between the answer
and that read can still look like a mismatch, which the header avoids). The new side is
then asked with `after=<position>&wait_ms=N` (a `seam serve` memory image waits until it has
applied that position, else answers 504): an answer it could not give in time, or a request
with no position at all, is `unsettled`, never a mismatch.

Mismatches are kept in `shadow/mismatches.sqlite` of the migration directory with both
bodies, the field-level diff and both positions, the newest `KEEP` per capability. The same
file keeps every outcome counted per minute, capability and outcome (the last `RETAIN_MIN`
minutes), written by the process that compares about once a second, so that a rate over a
window can be read after the facade stops (`shadow_outcomes`: `seam migrate status` and
`seam migrate cutover` read it).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import sqlite3
import time
import zlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from seam.errors import ConfigError
from seam.migration.compare import CompareRules, compare, legacy_absent

log = logging.getLogger("seam.facade")

MISMATCHES_FILE: Final = "shadow/mismatches.sqlite"  # in the migration directory
POSITION_HEADER: Final = "seam-legacy-position"
NEW_POSITION_HEADER: Final = "seam-position"
QUEUE: Final = 1000  # shadowed requests waiting; beyond: skipped
WORKERS: Final = 32  # comparisons in flight (most of their time is the new side's wait)
KEEP: Final = 1000  # mismatches kept per capability
OUTCOMES: Final = ("match", "mismatch", "unsettled", "error", "skipped")
RETAIN_MIN: Final = 7 * 24 * 60  # outcome counts kept per capability: a week of minutes
FLUSH_S: Final = 1.0  # how often the counts of the last second are written


def minute_of(epoch_s: float) -> int:
    """The minute bucket an outcome counted at `epoch_s` (Unix time) falls in."""
    return int(epoch_s // 60)


OutcomeKey = tuple[int, str, str]  # (minute, capability, outcome)


@dataclass
class ShadowItem:
    capability: str
    rules: CompareRules
    wait_ms: int
    base_url: str
    method: str
    path: str  # on the new side
    query: str
    headers: list[tuple[bytes, bytes]]
    legacy_status: int
    legacy_body: bytes
    position: str | None
    legacy_encoding: str | None = None  # the legacy answer's Content-Encoding
    # Where legacy answered (its base URL, and the path and query it was sent): a mismatch
    # is checked again on a fresh legacy answer (see Shadow._compare). None: not checked.
    legacy_url: str | None = None
    legacy_target: str = ""


class MismatchStore:
    """Mismatches in SQLite, written from one thread (never the event loop)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, check_same_thread=False)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS mismatch (id INTEGER PRIMARY KEY, at TEXT, "
            "capability TEXT, method TEXT, path TEXT, legacy_status INTEGER, "
            "new_status INTEGER, legacy_body TEXT, new_body TEXT, diff TEXT, "
            "legacy_position TEXT, new_position TEXT)"
        )
        self.db.execute("CREATE INDEX IF NOT EXISTS by_cap ON mismatch (capability, id)")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS outcome (capability TEXT, minute INTEGER, "
            "outcome TEXT, n INTEGER, PRIMARY KEY (capability, minute, outcome)) WITHOUT ROWID"
        )
        self.db.commit()
        self.pruned_at = -1

    def add_outcomes(self, counts: Counter[OutcomeKey]) -> None:
        """Add outcome counts to their minutes; forget minutes older than `RETAIN_MIN`."""
        self.db.executemany(
            "INSERT INTO outcome (capability, minute, outcome, n) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (capability, minute, outcome) DO UPDATE SET n = n + excluded.n",
            [(c, m, o, n) for (m, c, o), n in counts.items() if n],
        )
        now = minute_of(time.time())
        if now != self.pruned_at:  # once a minute is enough
            self.db.execute("DELETE FROM outcome WHERE minute < ?", (now - RETAIN_MIN,))
            self.pruned_at = now
        self.db.commit()

    def add(self, row: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT INTO mismatch (at, capability, method, path, legacy_status, new_status, "
            "legacy_body, new_body, diff, legacy_position, new_position) VALUES "
            "(:at, :capability, :method, :path, :legacy_status, :new_status, :legacy_body, "
            ":new_body, :diff, :legacy_position, :new_position)",
            row,
        )
        self.db.execute(
            "DELETE FROM mismatch WHERE capability = ? AND id <= (SELECT id FROM mismatch "
            "WHERE capability = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (row["capability"], row["capability"], KEEP),
        )
        self.db.commit()

    def close(self) -> None:
        self.db.close()


def read_mismatches(
    path: Path, capability: str | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """The newest mismatches kept (for `seam migrate status` and tests)."""
    if not path.exists():
        return []
    db = sqlite3.connect(path)
    try:
        db.row_factory = sqlite3.Row
        where, args = ("WHERE capability = ?", (capability,)) if capability else ("", ())
        rows = db.execute(
            f"SELECT * FROM mismatch {where} ORDER BY id DESC LIMIT ?", (*args, limit)
        ).fetchall()
        return [{**dict(r), "diff": json.loads(r["diff"])} for r in rows]
    finally:
        db.close()


def shadow_outcomes(
    path: Path, capability: str, since_s: float, until_s: float | None = None
) -> dict[str, Any]:
    """The outcomes of a capability's comparisons from the minute of `since_s` through the
    minute of `until_s` (Unix times; default: now), with `compared` (match + mismatch),
    `mismatch_rate` (None before any comparison) and `last_mismatch_at` (the newest
    mismatch kept, any time). The one reading of the counts: status and cutover use it."""
    out: dict[str, Any] = dict.fromkeys(OUTCOMES, 0)
    last: str | None = None
    if path.exists():
        first = minute_of(since_s)
        final = minute_of(time.time() if until_s is None else until_s)
        try:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
            with contextlib.closing(db):
                if _has_table(db, "outcome"):
                    rows = db.execute(
                        "SELECT outcome, SUM(n) FROM outcome WHERE capability = ? AND "
                        "minute BETWEEN ? AND ? GROUP BY outcome",
                        (capability, first, final),
                    ).fetchall()
                    out.update({o: int(n) for o, n in rows if o in out})
                if _has_table(db, "mismatch"):
                    (last,) = db.execute(
                        "SELECT MAX(at) FROM mismatch WHERE capability = ?", (capability,)
                    ).fetchone()
        except sqlite3.DatabaseError as exc:
            raise ConfigError(
                f"cannot read the shadow record {path}: {exc}",
                hint="restore it from a backup, or delete it to start counting again "
                "(its mismatches are lost with it)",
            ) from exc
    compared = out["match"] + out["mismatch"]
    out["compared"] = compared
    out["mismatch_rate"] = out["mismatch"] / compared if compared else None
    out["last_mismatch_at"] = last
    return out


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    found = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    return found.fetchone() is not None


class Shadow:
    """The queue, the position reader and the comparing workers of one facade."""

    def __init__(
        self,
        send: Callable[..., Any],
        read_position: Callable[[], str] | None,
        store: MismatchStore,
    ) -> None:
        self.send = send  # async (base_url, method, path_and_query, headers, timeout_s)
        self.read_position = read_position
        self.store = store
        self.counts: Counter[tuple[str, str]] = Counter()
        self.unwritten: Counter[OutcomeKey] = Counter()  # by minute, for the store
        self.queue: asyncio.Queue[ShadowItem] = asyncio.Queue(QUEUE)
        self.ready: asyncio.Queue[ShadowItem] = asyncio.Queue(QUEUE)
        self.tasks: list[asyncio.Task[None]] = []
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="seam-shadow-store")
        self.positions = ThreadPoolExecutor(1, thread_name_prefix="seam-shadow-position")

    def start(self) -> None:
        self.tasks.append(asyncio.create_task(self._position_loop()))
        self.tasks.append(asyncio.create_task(self._flush_loop()))
        self.tasks += [asyncio.create_task(self._worker()) for _ in range(WORKERS)]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.positions.shutdown(wait=False, cancel_futures=True)
        self._flush()
        self.writer.shutdown(wait=True)
        self.store.close()

    def offer(self, item: ShadowItem) -> None:
        """Queue a comparison, or count it skipped: never waits."""
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.count(item.capability, "skipped")

    def count(self, capability: str, outcome: str) -> None:
        self.counts[(capability, outcome)] += 1
        self.unwritten[(minute_of(time.time()), capability, outcome)] += 1

    def note_skipped(self, skipped: Counter[OutcomeKey]) -> None:
        """Outcomes counted by the facade itself (skipped before they reached this process):
        written with the rest; its own totals already hold them."""
        self.unwritten.update(skipped)

    def _flush(self) -> None:
        if self.unwritten:
            counts, self.unwritten = self.unwritten, Counter()
            self.writer.submit(self._write_outcomes, counts)

    def _write_outcomes(self, counts: Counter[OutcomeKey]) -> None:
        try:
            self.store.add_outcomes(counts)
        except sqlite3.Error as exc:  # a full disk: the live counts go on, the window lacks them
            log.warning("shadow: cannot record outcome counts: %s", exc)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            self._flush()

    async def _position_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            while not self.queue.empty():
                batch.append(self.queue.get_nowait())
            position: str | None = None
            if self.read_position is not None and any(i.position is None for i in batch):
                try:
                    position = await loop.run_in_executor(self.positions, self.read_position)
                except Exception as exc:  # the database down: these stay unsettled
                    log.warning("shadow: cannot read the legacy log position: %s", exc)
            for item in batch:
                item.position = item.position or position
                try:
                    self.ready.put_nowait(item)
                except asyncio.QueueFull:
                    self.count(item.capability, "skipped")

    async def _worker(self) -> None:
        while True:
            item = await self.ready.get()
            try:
                outcome = await self._compare(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not stop the shadow for good
                log.exception("shadow: comparing %s failed: %s", item.path, exc)
                outcome = "error"
            self.count(item.capability, outcome)

    async def _compare(self, item: ShadowItem) -> str:
        """The outcome of one shadowed request; a mismatch is kept in the store.

        The new side answers as of at least the legacy answer's position, possibly later: a
        request that reads a record which is then changed at once (read, then write: what a
        legacy client does before an update) can find the new side already past the change.
        So legacy is asked again on a mismatch. The same answer: nothing changed in between,
        the difference stands. Another answer: the record changed, the first pair may
        straddle that change; the new side is asked again after the fresh answer's position,
        and the request is a mismatch only if they differ too (that pair is kept), otherwise
        `unsettled`."""
        outcome, row = await self._judge(item)
        if outcome == "mismatch" and item.legacy_url is not None:
            again = await self._fresh(item)
            if again is not None and (again.legacy_status, _decoded_body(again)) != (
                item.legacy_status,
                _decoded_body(item),
            ):
                outcome, row = await self._judge(again)
                if outcome != "mismatch":
                    outcome = "unsettled"
        if outcome == "mismatch" and row is not None:
            await asyncio.get_running_loop().run_in_executor(self.writer, self.store.add, row)
        return outcome

    async def _fresh(self, item: ShadowItem) -> ShadowItem | None:
        """The item with legacy asked again (None: legacy failed, or said no position)."""
        assert item.legacy_url is not None
        try:
            status, headers, body = await self.send(
                item.legacy_url, "GET", item.legacy_target, item.headers, item.wait_ms / 1000 + 5
            )
        except Exception as exc:
            log.debug("shadow: legacy failed on a re-check of %s: %s", item.path, exc)
            return None
        position = headers.get(POSITION_HEADER)
        if position is None:
            return None
        return replace(
            item,
            legacy_status=status,
            legacy_body=body,
            legacy_encoding=headers.get("content-encoding"),
            position=position,
            legacy_url=None,
        )

    async def _judge(self, item: ShadowItem) -> tuple[str, dict[str, Any] | None]:
        outcome = await self._verdict(item)
        return (outcome, None) if isinstance(outcome, str) else ("mismatch", outcome)

    async def _verdict(self, item: ShadowItem) -> str | dict[str, Any]:
        """An outcome other than mismatch, or the mismatch's row for the store."""
        if item.position is None:
            return "unsettled"  # nothing says what the legacy answer reflected
        query = f"{item.query}&" if item.query else ""
        target = f"{item.path}?{query}after={quote(item.position)}&wait_ms={item.wait_ms}"
        try:
            status, headers, body = await self.send(
                item.base_url, item.method, target, item.headers, item.wait_ms / 1000 + 5
            )
        except Exception as exc:  # the new side down or too slow: not the user's problem
            log.debug("shadow: the new side failed on %s: %s", item.path, exc)
            return "error"
        if status == 504:
            return "unsettled"
        new_position = headers.get(NEW_POSITION_HEADER)
        if status >= 500:
            return "error"
        legacy_status: int | str = item.legacy_status
        try:
            needed = item.rules.legacy_absent or status == item.legacy_status
            legacy = _legacy_json(item) if needed and 200 <= item.legacy_status < 300 else None
            absent = legacy_absent(legacy, item.rules) if item.rules.legacy_absent else None
            if absent is not None:  # "not there" in the legacy app's words: a 404
                legacy_status = f"404 ({absent})"
                if status == 404:
                    return "match"
            diff: list[dict[str, Any]]
            if status != legacy_status:
                diff = [{"field": "<status>", "legacy": legacy_status, "new": status}]
            elif 200 <= status < 300:
                diff = compare(legacy, json.loads(body) if body else None, item.rules)
            else:
                diff = []
        except (ValueError, OSError, zlib.error):
            return "error"  # not JSON: nothing to compare field by field
        if not diff:
            return "match"
        return {
            "at": datetime.now(UTC).isoformat(),
            "capability": item.capability,
            "method": item.method,
            "path": item.path + (f"?{item.query}" if item.query else ""),
            "legacy_status": item.legacy_status,
            "new_status": status,
            "legacy_body": item.legacy_body.decode("utf-8", "replace"),
            "new_body": body.decode("utf-8", "replace"),
            "diff": json.dumps(diff, default=str),
            "legacy_position": item.position,
            "new_position": new_position,
        }

    def totals(self, capability: str) -> dict[str, int]:
        return {o: self.counts[(capability, o)] for o in OUTCOMES}


def _legacy_json(item: ShadowItem) -> Any:
    raw = _decoded_body(item)
    return json.loads(raw) if raw else None


def _decoded_body(item: ShadowItem) -> bytes:
    return _decoded(item.legacy_body, item.legacy_encoding)


def _decoded(body: bytes, encoding: str | None) -> bytes:
    """The body as sent before compression (the user asked legacy for gzip, say)."""
    if encoding and encoding.strip().lower() in ("gzip", "x-gzip"):
        return gzip.decompress(body)
    if encoding and encoding.strip().lower() == "deflate":
        return zlib.decompress(body)
    return body


__all__ = [
    "MISMATCHES_FILE",
    "OUTCOMES",
    "POSITION_HEADER",
    "RETAIN_MIN",
    "MismatchStore",
    "OutcomeKey",
    "Shadow",
    "ShadowItem",
    "minute_of",
    "read_mismatches",
    "shadow_outcomes",
]

"""Cutover's evidence rules: each condition refuses on its own, the window bounds what
counts, the record and the mode are written only on success, a damaged record is a clear
error; and the per-minute shadow outcomes they read."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from seam.errors import ConfigError
from seam.migration.cutover import (
    CutoverRefusedError,
    Thresholds,
    cut_over,
    gather,
    last_cutover,
    parse_window,
)
from seam.migration.modes import read_override
from seam.migration.routes import Mode
from seam.migration.shadow import (
    MISMATCHES_FILE,
    RETAIN_MIN,
    MismatchStore,
    Shadow,
    minute_of,
    shadow_outcomes,
)
from seam.migration.state import MigrationStore

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 2, 12, 0, 30, tzinfo=UTC)
RULES = Thresholds(timedelta(hours=1), max_mismatch_rate=0.01, min_compared=100)


def record(store: MigrationStore, minutes_ago: float, **counts: int) -> None:
    """Outcome counts as the shadow process records them, `minutes_ago` before NOW."""
    minute = minute_of((NOW - timedelta(minutes=minutes_ago)).timestamp())
    shadow = MismatchStore(store.path(MISMATCHES_FILE))
    try:
        shadow.add_outcomes(Counter({(minute, "details", o): n for o, n in counts.items()}))
    finally:
        shadow.close()


def mismatch_at(store: MigrationStore, at: datetime) -> None:
    shadow = MismatchStore(store.path(MISMATCHES_FILE))
    try:
        shadow.add(
            {
                "at": at.isoformat(),
                "capability": "details",
                "method": "GET",
                "path": "/things/1",
                "legacy_status": 200,
                "new_status": 200,
                "legacy_body": "{}",
                "new_body": "{}",
                "diff": "[]",
                "legacy_position": "p",
                "new_position": "p",
            }
        )
    finally:
        shadow.close()


def parity(store: MigrationStore, *, clean: bool = True, minutes_ago: float = 10) -> None:
    finished = NOW - timedelta(minutes=minutes_ago)
    store.write(
        "parity/thing.json",
        {
            "entity": "thing",
            "clean": clean,
            "finished_at": finished.isoformat(),
            "position": "lsn:0/99",
            "differing": 0 if clean else 3,
            "counts": {},
        },
    )


@pytest.fixture
def ready(tmp_path: Path) -> MigrationStore:
    """Every condition met: clean parity 10 minutes ago, 1,000 compared, 5 mismatched."""
    store = MigrationStore(tmp_path)
    parity(store)
    record(store, 30, match=995, mismatch=5, unsettled=7, error=2, skipped=1)
    return store


def unmet(evidence: dict[str, Any]) -> list[str]:
    return [c["name"] for c in evidence["conditions"] if not c["ok"]]


def test_all_conditions_met_sets_new_and_records_who_when_and_the_evidence(
    ready: MigrationStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEAM_ACTOR", "release-bot")
    written = cut_over(ready, "details", "thing", RULES, NOW)
    assert read_override(ready, "details") == Mode("new")
    assert ready.read("routes/details.json")["set_by"] == "release-bot"
    kept = last_cutover(ready, "details")
    assert kept == written
    assert kept is not None
    assert kept["by"] == "release-bot"
    assert kept["at"] == "2026-12-02T12:00:30+00:00"
    assert kept["thresholds"] == {
        "window": "1h",
        "window_s": 3600,
        "max_mismatch_rate": 0.01,
        "min_compared": 100,
    }
    shadow = kept["evidence"]["shadow"]
    assert (shadow["match"], shadow["mismatch"], shadow["compared"]) == (995, 5, 1000)
    assert (shadow["unsettled"], shadow["error"], shadow["skipped"]) == (7, 2, 1)
    assert shadow["mismatch_rate"] == pytest.approx(0.005)
    assert kept["evidence"]["parity"]["position"] == "lsn:0/99"


def test_no_parity_record_refuses_alone_and_writes_nothing(tmp_path: Path) -> None:
    store = MigrationStore(tmp_path)
    record(store, 5, match=1000)
    with pytest.raises(CutoverRefusedError) as refused:
        cut_over(store, "details", "thing", RULES, NOW)
    assert unmet(refused.value.evidence) == ["parity"]
    assert "seam migrate parity thing" in str(refused.value.hint)
    assert read_override(store, "details") is None
    assert last_cutover(store, "details") is None


def test_a_parity_that_found_differences_refuses(ready: MigrationStore) -> None:
    parity(ready, clean=False)
    evidence = gather(ready, "details", "thing", RULES, NOW)
    assert unmet(evidence) == ["parity"]
    assert "3 differing" in evidence["conditions"][0]["detail"]


def test_a_capability_without_an_entity_cannot_show_parity(ready: MigrationStore) -> None:
    evidence = gather(ready, "details", None, RULES, NOW)
    assert unmet(evidence) == ["parity"]
    assert "entity" in evidence["conditions"][0]["fix"]


def test_an_old_parity_counts_only_while_no_mismatch_came_after_it(
    ready: MigrationStore,
) -> None:
    parity(ready, minutes_ago=300)  # before the 1h window
    assert unmet(gather(ready, "details", "thing", RULES, NOW)) == []
    mismatch_at(ready, NOW - timedelta(minutes=200))  # after that parity finished
    evidence = gather(ready, "details", "thing", RULES, NOW)
    assert unmet(evidence) == ["parity"]
    assert "run it again" in evidence["conditions"][0]["fix"]
    parity(ready, minutes_ago=100)  # a newer parity, after the mismatch, still before the window
    assert unmet(gather(ready, "details", "thing", RULES, NOW)) == []


def test_too_few_comparisons_refuse_alone(tmp_path: Path) -> None:
    store = MigrationStore(tmp_path)
    parity(store)
    record(store, 5, match=99, unsettled=500)  # unsettled answers are not comparisons
    evidence = gather(store, "details", "thing", RULES, NOW)
    assert unmet(evidence) == ["compared"]
    assert "keep shadowing" in evidence["conditions"][1]["fix"]


def test_a_mismatch_rate_over_the_limit_refuses_alone(ready: MigrationStore) -> None:
    record(ready, 20, mismatch=6)  # 11 of 1,006: over 1%
    evidence = gather(ready, "details", "thing", RULES, NOW)
    assert unmet(evidence) == ["mismatch rate"]
    assert "fix what the mismatches show" in evidence["conditions"][2]["fix"]
    relaxed = Thresholds(RULES.window, max_mismatch_rate=0.02, min_compared=100)
    assert unmet(gather(ready, "details", "thing", relaxed, NOW)) == []


def test_only_the_window_counts(ready: MigrationStore) -> None:
    record(ready, 61, mismatch=500)  # before the window: forgiven
    assert unmet(gather(ready, "details", "thing", RULES, NOW)) == []
    short = Thresholds(timedelta(minutes=10), 0.01, 100)  # the 1,000 at 30 min are outside
    evidence = gather(ready, "details", "thing", short, NOW)
    assert unmet(evidence) == ["compared", "mismatch rate"]
    assert evidence["shadow"]["compared"] == 0


def test_no_shadow_at_all_refuses_on_both_shadow_conditions(tmp_path: Path) -> None:
    store = MigrationStore(tmp_path)
    parity(store)
    with pytest.raises(CutoverRefusedError) as refused:
        cut_over(store, "details", "thing", RULES, NOW)
    assert unmet(refused.value.evidence) == ["compared", "mismatch rate"]
    assert refused.value.message == "details stays where it is; unmet: compared, mismatch rate"


def test_a_damaged_parity_or_cutover_record_is_a_clear_error(ready: MigrationStore) -> None:
    ready.write("parity/thing.json", {"clean": "yes"})
    with pytest.raises(ConfigError, match=r"parity/thing\.json is damaged") as raised:
        gather(ready, "details", "thing", RULES, NOW)
    assert "seam migrate parity thing" in str(raised.value.hint)
    ready.write("parity/thing.json", {"clean": True, "finished_at": "yesterday"})
    with pytest.raises(ConfigError, match="no valid finished_at"):
        gather(ready, "details", "thing", RULES, NOW)
    ready.path("cutover").mkdir()
    ready.path("cutover/details.json").write_text("{half", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"cutover/details\.json is damaged"):
        last_cutover(ready, "details")


def test_a_damaged_shadow_file_is_a_clear_error(ready: MigrationStore) -> None:
    ready.path(MISMATCHES_FILE).write_bytes(b"not a database at all" * 100)
    with pytest.raises(ConfigError, match="cannot read the shadow record") as raised:
        gather(ready, "details", "thing", RULES, NOW)
    assert raised.value.hint


@pytest.mark.parametrize(
    ("text", "minutes"), [("30m", 30), ("1h", 60), (" 2d ", 2880), ("7d", RETAIN_MIN)]
)
def test_windows_read_in_minutes_hours_and_days(text: str, minutes: int) -> None:
    assert parse_window(text) == timedelta(minutes=minutes)


@pytest.mark.parametrize("text", ["0h", "1w", "h", "-1h", "8d", "1.5h"])
def test_a_window_that_is_not_one_is_a_clear_error(text: str) -> None:
    with pytest.raises(ConfigError, match=f"--window {text.strip()}") as raised:
        parse_window(text)
    assert raised.value.hint


def test_outcomes_add_up_per_minute_and_old_minutes_are_forgotten(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    store = MismatchStore(path)
    now = minute_of(datetime.now(UTC).timestamp())
    store.add_outcomes(Counter({(now, "a", "match"): 2, (now - RETAIN_MIN - 1, "a", "match"): 9}))
    store.add_outcomes(Counter({(now, "a", "match"): 3, (now, "b", "mismatch"): 1}))
    store.close()
    since = (now - RETAIN_MIN - 5) * 60
    assert shadow_outcomes(path, "a", since)["match"] == 5  # the minute too old is gone
    assert shadow_outcomes(path, "b", since)["mismatch_rate"] == 1.0
    assert shadow_outcomes(tmp_path / "absent.sqlite", "a", since)["compared"] == 0
    rows = sqlite3.connect(path).execute("SELECT COUNT(*) FROM outcome").fetchone()
    assert rows == (2,)


def test_the_shadow_writes_its_outcomes_and_the_facades_skips_when_it_stops(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.sqlite"

    async def run() -> Shadow:
        shadow = Shadow(send=None, read_position=None, store=MismatchStore(path))
        shadow.count("a", "match")
        shadow.count("a", "mismatch")
        shadow.note_skipped(Counter({(minute_of(time.time()), "a", "skipped"): 3}))
        await shadow.stop()  # writes what the last flush had not
        return shadow

    shadow = asyncio.run(run())
    counted = shadow_outcomes(path, "a", time.time() - 60)
    assert (counted["match"], counted["mismatch"], counted["skipped"]) == (1, 1, 3)
    assert counted["mismatch_rate"] == 0.5
    # The facade's skips are its own to show live: the child's totals do not count them twice.
    assert shadow.totals("a")["skipped"] == 0

"""The facade's routes file, its cohorts and its comparison rules (no network)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from seam.errors import ConfigError
from seam.migration.compare import CompareRules, compare, normalise_value
from seam.migration.modes import (
    MovedCohorts,
    cohort_hash,
    read_override,
    to_new,
    write_override,
)
from seam.migration.routes import Mode, load_routes, parse_mode
from seam.migration.state import MigrationStore

pytestmark = pytest.mark.unit

GOOD = """\
legacy:
  url: http://127.0.0.1:8000/
  database: legacy
new:
  orders: http://127.0.0.1:8780
capabilities:
  order-details:
    entity: order
    requests: ["GET /orders/{id}", "GET /orders/{id}/"]
    mode: split 12.5%
    rewrite: /order/{id}
    fallback: legacy
    cohort: header:X-User-Id
    forward_only: true
    shadow:
      wait_ms: 750
      compare:
        new_root: data
        rename: {title: name}
        ignore: [updated_at, lines.*.id]
        normalise: {name: [trim, lower], price: [number, "decimals:2"], day: [date]}
  order-search:
    requests: "GET /orders"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(text)
    return path


def test_a_whole_routes_file_reads_as_written(tmp_path: Path) -> None:
    routes = load_routes(write(tmp_path, GOOD))
    assert routes.legacy_url == "http://127.0.0.1:8000"
    assert routes.legacy_database == "legacy"
    assert routes.new == {"orders": "http://127.0.0.1:8780"}
    details, search = routes.capabilities
    assert details.mode == Mode("split", 12.5)
    assert str(details.mode) == "split 12.5%"
    assert details.side == "orders"  # the only new side
    assert details.entity == "order"
    assert details.fallback_legacy
    assert details.forward_only
    assert details.cohort is not None
    assert str(details.cohort) == "header:x-user-id"
    assert details.shadow_wait_ms == 750
    assert details.patterns[0].match("GET", "/orders/17") == {"id": "17"}
    assert details.patterns[0].match("HEAD", "/orders/17") == {"id": "17"}
    assert details.patterns[0].match("POST", "/orders/17") is None
    assert details.patterns[0].match("GET", "/orders/17/lines") is None
    assert details.new_path("/orders/17", {"id": "17"}) == "/order/17"
    assert details.new_path("/orders/a%2Fb", {"id": "a/b"}) == "/order/a%2Fb"
    assert search.new_path("/orders/a%2Fb", {}) == "/orders/a%2Fb"  # as received
    assert search.mode == Mode("legacy")
    assert search.patterns[0].match("GET", "/orders") == {}
    assert details.compare.rename == {("title",): ("name",)}


def test_every_problem_is_reported_at_its_line_with_a_fix(tmp_path: Path) -> None:
    bad = """\
legacy: {url: "ftp://x"}
new: {orders: "http://127.0.0.1:1"}
capabilities:
  a:
    requests: ["FETCH /x"]
    mode: split 150%
  b:
    requests: ["GET /b/{id}"]
    mode: split 10%
    rewrite: /c/{other}
    side: nowhere
    normalize: {}
  c:
    requests: ["GET /c"]
    mode: shadow
    shadow: {compare: {normalise: {name: [shout]}}}
"""
    with pytest.raises(ConfigError) as caught:
        load_routes(write(tmp_path, bad))
    text = caught.value.message
    assert "routes.yaml:1:" in text
    assert "expected an http:// or https:// URL" in text
    assert "routes.yaml:5:" in text
    assert "'FETCH /x'" in text
    assert "routes.yaml:6:" in text
    assert "split N%" in text
    assert "routes.yaml:10:" in text
    assert "{other}" in text
    assert "routes.yaml:11:" in text
    assert "no new side named 'nowhere'" in text
    assert "routes.yaml:12:" in text
    assert "unknown key 'normalize'" in text
    assert "split needs a cohort key" in text
    assert "routes.yaml:16:" in text
    assert "shout" in text


def test_a_missing_legacy_and_an_empty_file_say_what_to_write(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing 'legacy'"):
        load_routes(write(tmp_path, "capabilities: {}\n"))
    with pytest.raises(ConfigError, match="empty") as caught:
        load_routes(write(tmp_path, "\n"))
    assert caught.value.hint
    assert "capabilities" in caught.value.hint
    with pytest.raises(ConfigError, match=r"routes.yaml:2:\d+: malformed YAML"):
        load_routes(write(tmp_path, "legacy: {url: x\ncapabilities: [\n"))


def test_modes_parse() -> None:
    assert parse_mode("SHADOW") == Mode("shadow")
    assert parse_mode("split 10 %") == Mode("split", 10)
    assert parse_mode("split 101%") is None
    assert parse_mode("half") is None


def test_a_cohort_always_lands_on_the_same_side_and_the_split_is_near_its_percent() -> None:
    users = [f"user-{i}" for i in range(20_000)]
    first = [to_new("cap", u, 10, None) for u in users]
    assert first == [to_new("cap", u, 10, None) for u in users]  # sticky
    assert 0.09 < sum(first) / len(users) < 0.11
    # Raising N only adds cohorts: those already moved stay moved.
    at_30 = [to_new("cap", u, 30, None) for u in users]
    assert all(b for a, b in zip(first, at_30, strict=True) if a)
    assert to_new("cap", None, 100, None) is False  # no key: legacy
    # The hash is stable across processes (not Python's salted hash).
    assert cohort_hash("cap", "user-1") == "d53d64c86dd8d440"


def test_forward_only_keeps_moved_cohorts_when_the_percent_goes_down_across_restarts(
    tmp_path: Path,
) -> None:
    store = MigrationStore(tmp_path)
    users = [f"user-{i}" for i in range(2000)]
    moved = MovedCohorts(store, "cap")
    at_50 = {u for u in users if to_new("cap", u, 50, moved)}
    assert 800 < len(at_50) < 1200
    reopened = MovedCohorts(store, "cap")  # a restarted facade
    at_5 = {u for u in users if to_new("cap", u, 5, reopened)}
    assert at_5 == at_50
    plain = {u for u in users if to_new("cap", u, 5, None)}  # not forward-only: they go back
    assert plain < at_50
    assert len(plain) < 200
    assert "user-1" not in (tmp_path / "cohorts" / "cap.moved").read_text()  # hashes only


def test_a_route_record_round_trips_and_a_damaged_one_is_a_clear_error(tmp_path: Path) -> None:
    store = MigrationStore(tmp_path)
    assert read_override(store, "cap") is None
    record = write_override(store, "cap", Mode("split", 25), Mode("shadow"))
    assert record["previous"] == "shadow"
    assert record["mode"] == "split 25%"
    assert read_override(store, "cap") == Mode("split", 25)
    store.write("routes/cap.json", {"mode": "sideways"})
    with pytest.raises(ConfigError, match="no valid mode") as caught:
        read_override(store, "cap")
    assert caught.value.hint
    assert "seam migrate route cap" in caught.value.hint


def test_compare_applies_roots_renames_ignores_and_normalisation() -> None:
    rules = CompareRules(
        new_root=("data",),
        rename={("title",): ("name",), ("cost",): ("price",)},
        ignore=(("updated_at",), ("lines", "*", "id")),
        normalise=(
            (("name",), ("trim", "lower")),
            (("price",), ("number", "decimals:2")),
            (("day",), ("date",)),
            (("note",), ("empty_null",)),
        ),
    )
    legacy = {
        "title": "  Blue Mug ",
        "cost": "12.5",
        "day": "2024-03-01 10:00:00",
        "note": "",
        "updated_at": 1,
        "lines": [{"id": 1, "qty": 2}],
    }
    new = {
        "data": {
            "name": "blue mug",
            "price": 12.499999,
            "day": "2024-03-01T11:00:00+01:00",
            "note": None,
            "updated_at": 2,
            "lines": [{"id": 9, "qty": 2}],
        },
        "position": {"offsets": "0:1"},
    }
    assert compare(legacy, new, rules) == []
    new["data"]["lines"][0]["qty"] = 3  # type: ignore[index]
    new["data"].pop("note")  # type: ignore[attr-defined]
    # numbers are shown as their decimal text; a left-out field equals null
    assert compare(legacy, new, rules) == [{"field": "lines.0.qty", "legacy": "2", "new": "3"}]


def test_compare_reports_missing_fields_and_strict_types_without_rules() -> None:
    diff = compare({"a": "1", "b": 2}, {"a": 1, "c": 2}, CompareRules())
    assert diff == [
        {"field": "a", "legacy": "1", "new": "1"},
        {"field": "b", "legacy": "2", "new": None, "missing": "new"},
        {"field": "c", "legacy": None, "new": "2", "missing": "legacy"},
    ]
    assert compare({"a": 1.0}, {"a": 1}, CompareRules()) == []  # one number in JSON
    assert compare([], {}, CompareRules()) != []


def test_normalise_rules_one_by_one() -> None:
    assert normalise_value(" A ", ("trim",)) == "A"
    assert normalise_value("ÄB", ("lower",)) == "äb"
    assert normalise_value("1,200.50", ("number",)) == Decimal("1200.5")
    assert normalise_value("abc", ("number",)) == "abc"  # not a number: unchanged
    assert normalise_value(2.675, ("decimals:2",)) == Decimal("2.68")
    assert normalise_value("20240301", ("date",)) == "2024-03-01"
    assert normalise_value("2024-03-01T10:00:00Z", ("date",)) == "2024-03-01T10:00:00+00:00"
    assert normalise_value("", ("empty_null",)) is None


def test_compare_only_looks_at_the_fields_named() -> None:
    rules = CompareRules(new_root=("data",), rename={("n",): ("name",)}, only=(("name",),))
    assert compare({"n": "A", "x": 1}, {"data": {"name": "A", "sku": "Z"}}, rules) == []
    assert compare({"n": "A"}, {"data": {"name": "B"}}, rules) == [
        {"field": "name", "legacy": "A", "new": "B"}
    ]


def test_status_lines_show_mode_traffic_mismatch_rate_parity_and_cutover() -> None:
    from seam.cli.facade import _line

    row = {
        "capability": "details",
        "mode": "split 10%",
        "mode_from": "route record",
        "requests": {"legacy": 90, "new": 10},
        "shadow": {"match": 3, "mismatch": 1, "unsettled": 2, "error": 0, "skipped": 0},
        "mismatch_rate": 0.25,
        "window": {"span": "1h", "compared": 0, "mismatch_rate": None},
        "entity": "order",
        "parity": None,
        "cutover": None,
    }
    line = _line(row)
    assert "details: split 10% (route record); requests legacy 90, new 10" in line
    assert "shadow 25.00% mismatched (3 match, 1 mismatch, 2 unsettled" in line
    assert "0 skipped; last 1h: no comparison of 0 compared)" in line
    assert line.endswith("parity (order): never run; never cut over")
    row["window"] = {"span": "30m", "compared": 400, "mismatch_rate": 0.0025}
    row["cutover"] = {"by": "ana", "at": "2026-12-02T10:00:00+00:00"}
    line = _line(row)
    assert "last 30m: 0.25% mismatched of 400 compared" in line
    assert line.endswith("cut over to new by ana at 2026-12-02T10:00:00+00:00")
    row["parity"] = {
        "entity": "order",
        "clean": False,
        "differing": 4,
        "position": "lsn:0/1",
        "finished_at": "2026-12-02T09:00:00+00:00",
    }
    assert "parity (order): 4 differing at lsn:0/1, 2026-12-02T09:00:00+00:00;" in _line(row)


def test_whitespace_and_mojibake_normalise_as_the_declared_rules_repair() -> None:
    assert normalise_value("  Blue \t\r\n Mug ", ("whitespace",)) == "Blue Mug"
    assert normalise_value("CafÃ© CrÃ¨me", ("mojibake",)) == "Café Crème"
    assert normalise_value("Café", ("mojibake",)) == "Café"  # correct text is kept
    rules = CompareRules(
        rename={("n",): ("name",)}, normalise=((("name",), ("mojibake", "whitespace")),)
    )
    assert compare({"n": "KaffeebÃ¤r  XL "}, {"name": "Kaffeebär XL"}, rules) == []
    assert compare({"n": "Tee"}, {"name": "Tea"}, rules) != []


def test_legacy_absent_names_the_condition_a_legacy_answer_meets(tmp_path: Path) -> None:
    from seam.migration.compare import legacy_absent

    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "legacy: {url: 'http://127.0.0.1:1'}\nnew: {svc: 'http://127.0.0.1:2'}\n"
        "capabilities:\n  details:\n    requests: ['GET /things/{id}']\n    mode: shadow\n"
        "    shadow:\n      compare:\n        legacy_absent: [error, {is_deleted: ['Y']}]\n"
    )
    rules = load_routes(routes).capabilities[0].compare
    assert legacy_absent({"error": "Thing 4 not found"}, rules) == "error"
    assert legacy_absent({"id": 4, "is_deleted": "Y"}, rules) == "is_deleted in ['Y']"
    assert legacy_absent({"id": 4, "is_deleted": "N", "error": None}, rules) is None
    routes.write_text(routes.read_text().replace("[error, {is_deleted: ['Y']}]", "[{a: 1, b: 2}]"))
    with pytest.raises(ConfigError) as caught:
        load_routes(routes)
    assert "legacy_absent: expected a field path or {field: [values]}" in str(caught.value)


def test_the_shadow_compares_a_legacy_absent_answer_as_a_404(tmp_path: Path) -> None:
    import asyncio

    from seam.migration.shadow import MismatchStore, Shadow, ShadowItem, read_mismatches

    rules = CompareRules(legacy_absent=((("error",), ()),))
    answers = {"/gone": 404, "/there": 200}

    async def send(base: str, method: str, target: str, headers: Any, timeout: float) -> Any:
        return answers[target.partition("?")[0]], {}, b'{"id": 1}'

    async def run() -> list[str]:
        shadow = Shadow(send=send, read_position=None, store=MismatchStore(tmp_path / "m.db"))
        outcomes = []
        for path in ("/gone", "/there"):
            item = ShadowItem(
                "cap",
                rules,
                0,
                "http://new",
                "GET",
                path,
                "",
                [],
                200,
                b'{"error": "Thing 1 not found"}',
                "lsn:0/1",
            )
            outcomes.append(await shadow._compare(item))
        await shadow.stop()
        return outcomes

    assert asyncio.run(run()) == ["match", "mismatch"]
    (kept,) = read_mismatches(tmp_path / "m.db", "cap")
    assert kept["diff"] == [{"field": "<status>", "legacy": "404 (error)", "new": 200}]


def test_a_mismatch_that_a_fresh_legacy_answer_resolves_was_a_race(tmp_path: Path) -> None:
    """Read, then written at once: the new side is already past the change the legacy answer
    predates. Legacy asked again answers otherwise: compared again, the pair agrees (or the
    new side cannot tell yet): unsettled. A difference that stays is the mismatch, kept
    with the second pair; legacy answering the same again leaves the first one standing."""
    import asyncio

    from seam.migration.shadow import MismatchStore, Shadow, ShadowItem, read_mismatches

    legacy_now = {
        "/a": b'{"name": "B"}',
        "/b": b'{"name": "typo"}',
        "/c": b'{"name": "A"}',
        "/d": b'{"name": "D"}',
    }
    new_now = {"/a": b'{"name": "B"}', "/b": b'{"name": "C"}', "/c": b'{"name": "Z"}'}
    asked: list[str] = []

    async def send(base: str, method: str, target: str, headers: Any, timeout: float) -> Any:
        path = target.partition("?")[0]
        asked.append(f"{base}{path}")
        if base == "http://legacy":
            return 200, {"seam-legacy-position": "lsn:0/2"}, legacy_now[path]
        if path == "/d" and "after=lsn%3A0/2" in target:
            return 504, {}, b""  # cannot show the fresh position yet
        return 200, {}, new_now.get(path, b'{"name": "E"}')

    async def run() -> list[str]:
        shadow = Shadow(send=send, read_position=None, store=MismatchStore(tmp_path / "m.db"))
        outcomes = []
        for path in ("/a", "/b", "/c", "/d"):
            item = ShadowItem(
                "cap", CompareRules(), 0, "http://new", "GET", path, "", [], 200,
                b'{"name": "A"}', "lsn:0/1", legacy_url="http://legacy", legacy_target=path,
            )  # fmt: skip
            outcomes.append(await shadow._compare(item))
        await shadow.stop()
        return outcomes

    assert asyncio.run(run()) == ["unsettled", "mismatch", "mismatch", "unsettled"]
    assert asked.count("http://legacy/a") == 1  # asked again once
    assert asked.count("http://new/c") == 1  # legacy unchanged: the new side not asked again
    second, first = read_mismatches(tmp_path / "m.db", "cap")
    assert first["diff"] == [{"field": "name", "legacy": "typo", "new": "C"}]
    assert first["legacy_position"] == "lsn:0/2"
    assert second["diff"] == [{"field": "name", "legacy": "A", "new": "Z"}]
    assert second["legacy_position"] == "lsn:0/1"

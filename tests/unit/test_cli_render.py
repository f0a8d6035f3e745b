"""Tables for people: in an 80-column terminal no identifier is ever cut or broken."""

from __future__ import annotations

import re

import pytest

from seam.cli.render import column_widths, print_table

pytestmark = pytest.mark.unit

TOPIC = "seam_st_abcdef12.seam_st_abcdef12.products"  # what the live tests name a topic
LONG = "catalog_mariadb_with_a_long_prefix.catalog.products_with_a_name_longer_than_the_screen"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def table_in_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: object
) -> list[str]:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich takes the capture for a terminal
    monkeypatch.setenv("NO_COLOR", "1")
    print_table(*args)  # type: ignore[arg-type]
    return [ANSI.sub("", line) for line in capsys.readouterr().out.splitlines()]


def test_topics_stay_whole_at_80_columns(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        (TOPIC, 3, 120000, "2026-12-01 20:01:33", "2026-12-01 20:01:33"),
        ("x.y.z", 1, 8, "2026-12-01 20:01:33", "2026-12-01 20:01:33"),
    ]
    lines = table_in_terminal(
        monkeypatch,
        capsys,
        None,
        ["topic", "partitions", "offsets", "first (UTC)", "last (UTC)"],
        rows,
    )
    assert any(TOPIC in line for line in lines)
    assert any("120000" in line for line in lines)  # a number is not folded either
    assert not any("…" in line for line in lines)
    assert max(len(line) for line in lines) <= 80  # the other columns gave way


def test_identifiers_wider_than_the_terminal_are_still_whole(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = table_in_terminal(
        monkeypatch,
        capsys,
        None,
        ["connector", "state", "tasks", "worker", "topics"],
        [(LONG, "RUNNING", "1/1 running", "127.0.0.1:8083", f"{TOPIC}, {LONG}, x.y.z")],
    )
    assert sum(LONG in line for line in lines) == 2  # the name and the list item, each whole
    assert any(f"{TOPIC}," in line for line in lines)
    assert not any("…" in line for line in lines)


def test_groups_and_their_topic_lists(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    group = "seam-transform-catalog"
    topics = "catalog.public.products, catalog.public.categories, catalog_mariadb.catalog.products"
    lines = table_in_terminal(
        monkeypatch,
        capsys,
        None,
        ["group", "state", "topics", "total lag"],
        [(group, "stable", topics, 12)],
    )
    text = "\n".join(lines)
    assert group in text
    for topic in topics.split(", "):
        assert topic in text
    assert max(len(line) for line in lines) <= 80


def test_column_widths() -> None:
    cols = ["topic", "note"]
    rows = [[TOPIC, "a rather long free text that may wrap anywhere it likes"]]
    widths = column_widths(cols, rows, {0}, 80)
    assert widths[0] == len(TOPIC)
    assert sum(widths) + 2 * 2 + 1 <= 80
    assert column_widths(cols, [["a", "b"]], {0}, 80) == [5, 4]  # natural when it fits
    narrow = column_widths(cols, rows, {0}, 20)  # too narrow: wider, but the topic is whole
    assert narrow[0] == len(TOPIC)

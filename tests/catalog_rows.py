"""Catalog change records for parity tests: MariaDB's shape of a change, and hypothesis
strategies of legacy product rows (typical, warty, around the columns' limits and the
Europe/Berlin clock changes). Shared by the tests that hold two implementations of the
catalog's transform to the same output (tests/unit/test_declared_catalog.py,
tests/unit/test_compiled_engine.py).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
from hypothesis import strategies as st


def mariadb(value: bytes, i: int) -> bytes:
    """The same change as the MariaDB connector sends it: binlog position, milliseconds."""
    doc = orjson.loads(value)
    for side in ("before", "after"):
        row = doc[side]
        if row is not None:
            for column in ("created_at", "updated_at"):
                if row.get(column) is not None:
                    row[column] //= 1000
    source = doc["source"]
    for name in ("schema", "sequence", "txId", "lsn", "xmin", "ts_us", "ts_ns"):
        source.pop(name)
    source.update(
        connector="mariadb",
        file="mysql-bin.000003",
        pos=4 + 400 * i,
        row=0,
        gtid=f"0-1-{100 + i}",
        server_id=1,
        thread=7,
        query=None,
    )
    return orjson.dumps(doc)


texts = st.one_of(
    st.text(max_size=12),
    st.text(alphabet="aÃ©¼ \t\r\n\u00a0\u2003\x1c\x7f€$EURur0123456789.,-", max_size=12),
    st.sampled_from(["CafÃ©", "Caf\u00e9", " 12,50 €", "1.234,50", "1,234.50", "1,234", "", "  "]),
)
cells = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 2**64), st.floats(allow_nan=False), texts
)


def mojibake_of(text: str) -> str:
    """`text` as the legacy app stored it when it read UTF-8 as cp1252 (W9), when it can."""
    try:
        return text.encode("utf-8").decode("cp1252")
    except UnicodeDecodeError:
        return text


def dst_edges() -> list[int]:
    """Naive Europe/Berlin wall-clock microseconds at 02:30 on each DST change day."""
    import calendar
    from datetime import datetime

    edges = []
    for year in range(1996, 2038):
        for month in (3, 10):
            last = max(
                week[calendar.SUNDAY] for week in calendar.monthcalendar(year, month) if week[6]
            )
            moment = datetime(year, month, last, 2, 30) - datetime(1970, 1, 1)
            edges.append(moment // timedelta(microseconds=1))
    return edges


HOUR_US = 3_600_000_000
words = st.text(
    alphabet=st.characters(categories=("Lu", "Ll", "Nd")) | st.sampled_from(" -()&'äöüéñø"),
    min_size=1,
    max_size=24,
)
spaced = st.tuples(st.sampled_from(["", " ", "  ", "\t"]), words, st.sampled_from(["", " "]))
plausible_text = st.one_of(
    spaced.map("".join),
    words.map(mojibake_of),
    st.lists(words, min_size=1, max_size=3).map("\r\n".join),
    words.map(lambda w: w + "\u00a0 " + w),
)


@st.composite
def prices(draw: st.DrawFn) -> tuple[str | None, int | None]:
    cents = draw(st.integers(0, 10**8))
    units, frac = divmod(cents, 100)
    text = draw(
        st.sampled_from(
            [
                f"{units}.{frac:02d}",
                f"{units},{frac:02d} \u20ac",
                f"EUR {units}.{frac:02d}",
                f"${units:,}.{frac:02d}",
                f"{units:,}.{frac:02d}".replace(",", "_").replace(".", ",").replace("_", "."),
                f" {units} eur",
                "",
            ]
        )
    )
    kind = draw(st.sampled_from(["both", "text", "cents", "none", "disagree"]))
    if kind == "text":
        return text, None
    if kind == "cents":
        return None, cents
    if kind == "none":
        return None, None
    return text, cents + (1 if kind == "disagree" else 0)


@st.composite
def plausible_rows(draw: st.DrawFn, unit_ms: bool) -> dict[str, Any]:
    def moment() -> int | None:
        us = draw(
            st.one_of(
                st.integers(820_454_400_000_000, 2_145_916_800_000_000),  # 1996-2037
                st.sampled_from(dst_edges()).flatmap(
                    lambda e: st.integers(e - 2 * HOUR_US, e + 2 * HOUR_US)
                ),
            )
        )
        return us // 1000 if unit_ms else us

    price_txt, price_cents = draw(prices())
    return {
        "prod_id": draw(st.integers(1, 10**6)),
        "sku": draw(st.from_regex(r"\A ?[a-zA-Z]{2}-[0-9]{3,7} ?\Z")),
        "prod_name": draw(plausible_text),
        "price_txt": price_txt,
        "price_cents": price_cents,
        "cat_id": draw(st.one_of(st.none(), st.integers(0, 30))),
        "supp_id": draw(st.one_of(st.none(), st.integers(0, 30))),
        "status_cd": draw(st.sampled_from(["A", "a", " D", "X", "D "])),
        "is_deleted": draw(st.sampled_from(["Y", "N", "", None, " y"])),
        "ean": draw(st.one_of(st.sampled_from(["", None]), st.from_regex(r"\A[0-9]{8,14}\Z"))),
        "descr": draw(st.one_of(st.sampled_from(["", None]), plausible_text)),
        "created_at": moment(),
        "updated_at": draw(st.one_of(st.none(), st.just(0))) or moment(),
    }

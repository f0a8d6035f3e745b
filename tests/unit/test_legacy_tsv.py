"""TSV encoding shared by COPY and LOAD DATA: every value must round-trip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seam.legacy_db.tsv import NULL, decode_line, encode_rows

pytestmark = pytest.mark.unit


def test_nulls_numbers_and_escapes() -> None:
    data = encode_rows([(1, None, "a\tb", "line1\r\nline2", "back\\slash", "")])
    assert data == b"1\t\\N\ta\\tb\tline1\\r\\nline2\tback\\\\slash\t\n"
    assert decode_line(data.decode()) == ["1", None, "a\tb", "line1\r\nline2", "back\\slash", ""]


def test_literal_backslash_n_is_not_null() -> None:
    (line,) = encode_rows([("\\N",)]).decode().splitlines(keepends=True)
    assert line != NULL + "\n"
    assert decode_line(line) == ["\\N"]


@given(st.lists(st.one_of(st.none(), st.text()), min_size=1, max_size=5))
def test_any_text_round_trips(values: list[str | None]) -> None:
    data = encode_rows([tuple(values)]).decode("utf-8")
    assert data.count("\n") == 1
    assert decode_line(data) == values

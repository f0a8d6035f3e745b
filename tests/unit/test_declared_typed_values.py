"""Typed values (column_types: source) through declared columns: what JSON has no form for."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import pytest

from seam.changes import Raw
from seam.streams.types import NOT_READ
from seam.transforms.declared.clean import TablePlan
from seam.transforms.declared.model import ColumnDecl, RuleSpec, Source, TableDecl
from seam.transforms.model import Reject

pytestmark = pytest.mark.unit


def _plan(*columns: ColumnDecl) -> TablePlan:
    def no_lookup(_table: str, _field: str) -> object:
        raise AssertionError("no lookups here")

    return TablePlan(TableDecl("t", columns), "postgresql", no_lookup)  # type: ignore[arg-type]


def test_typed_values_pass_as_they_are_and_a_duration_becomes_iso_8601_text() -> None:
    plan = _plan(
        ColumnDecl("day", (Source("day"),)),
        ColumnDecl("wait", (Source("wait"),)),
        ColumnDecl("id", (Source("id"),)),
        ColumnDecl("amount", (Source("amount", (RuleSpec("decimal", {"scale": 2}),)),)),
        ColumnDecl("at", (Source("at", (RuleSpec("timestamp", {"zone": "UTC"}),)),)),
    )
    row = {
        "day": date(2026, 3, 29),
        "wait": timedelta(days=1, hours=2, seconds=3.5),
        "id": UUID("12345678-1234-5678-1234-567812345678"),
        "amount": Decimal("19.90"),
        "at": datetime(2026, 3, 29, 2, 30),
    }
    clean, problems = plan.clean(row, strict=True)
    assert problems == []
    assert clean == {
        "day": date(2026, 3, 29),
        "wait": "P1DT2H3.5S",
        "id": UUID("12345678-1234-5678-1234-567812345678"),
        "amount": "19.90",
        "at": "2026-03-29T02:30:00Z",
    }


@pytest.mark.parametrize("value", [Raw("\\x01", "type hstore unknown to seam"), NOT_READ])
def test_a_value_seam_could_not_type_is_refused_never_passed_on(value: object) -> None:
    plan = _plan(
        ColumnDecl("tags", (Source("tags"),)),
        ColumnDecl("note", (Source("note"),), on_fail="absent"),
    )
    with pytest.raises(Reject, match="tags: a value seam could not type"):
        plan.clean({"tags": value, "note": "x"}, strict=True)
    clean, problems = plan.clean({"tags": "plain", "note": value}, strict=True)
    assert clean == {"tags": "plain", "note": None}
    assert len(problems) == 1
    assert "could not type" in problems[0]

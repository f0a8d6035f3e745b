"""The workload's pure parts: argument checks, the JSON-lines record, the rate parser."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from seam.errors import ConfigError
from seam.legacy_db.cli import _rate
from seam.legacy_db.workload import KINDS, MIX, Operation, RowChange, operation_json, run_workload

pytestmark = pytest.mark.unit


def test_every_kind_the_issue_names_is_in_the_mix() -> None:
    assert set(KINDS) == {
        "insert",
        "price_change",
        "rename",
        "recategorize",
        "discontinue",
        "soft_delete",
        "hard_delete",
    }
    assert all(weight > 0 for weight in MIX.values())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs an end"),
        ({"count": -1}, "--count"),
        ({"duration": -1.0}, "--duration"),
        ({"count": 1, "rate": -2.0}, "--rate"),
    ],
)
def test_bad_arguments_fail_before_connecting(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        run_workload("postgresql://u:p@127.0.0.1:1/c", **kwargs)


def test_operation_json_is_one_line_with_plain_values() -> None:
    op = Operation(
        seq=1,
        op="price_change",
        table="products",
        key={"prod_id": 7},
        changes={"price_cents": {"old": 1250, "new": 1299}},
        side_effects=[
            RowChange(
                "product_prices",
                "insert",
                {"price_id": 9},
                {
                    "amount": {"old": None, "new": Decimal("12.99")},
                    "valid_from": {"old": None, "new": dt.datetime(2026, 3, 29, 2, 30)},
                },
            )
        ],
        committed_at="2026-01-01T00:00:00+00:00",
    )
    line = operation_json(op)
    assert "\n" not in line
    data = json.loads(line)
    assert data["key"] == {"prod_id": 7}
    assert data["side_effects"][0]["changes"]["amount"]["new"] == "12.99"
    assert data["side_effects"][0]["changes"]["valid_from"]["new"] == "2026-03-29 02:30:00"


@pytest.mark.parametrize(
    ("text", "rate"), [("10", 10.0), ("10/s", 10.0), (" 2.5/s ", 2.5), ("0", 0.0)]
)
def test_rate_parser(text: str, rate: float) -> None:
    assert _rate(text) == rate


@pytest.mark.parametrize("text", ["fast", "-1", "10/min", ""])
def test_rate_parser_refuses_nonsense(text: str) -> None:
    with pytest.raises(ConfigError, match="--rate"):
        _rate(text)

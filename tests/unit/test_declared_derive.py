"""The JSON Schemas derived from a declaration (seam.transforms.declared.derive): valid draft
2020-12 schemas that accept exactly what the rule chains and the entity produce."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema_rs
import pytest

from seam.transforms.declared.derive import DIALECT, derive, field_schema, nullable
from seam.transforms.declared.entity import state_of
from seam.transforms.declared.model import ColumnDecl, RuleSpec, Source
from seam.transforms.declared.rules import KINDS
from seam.transforms.pipeline import Produced
from tests.unit.test_declared_entity import record, row, write_pipeline

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
CATALOG = REPO / "legacy_db" / "pipelines" / "catalog-declared.yaml"


def _declarations(tmp_path: Path) -> list[Any]:
    from seam.transforms.pipeline_file import load_pipeline

    catalog = load_pipeline(CATALOG).declaration
    orders = write_pipeline(tmp_path).declaration
    return [catalog, orders]


def test_every_derived_schema_is_a_valid_draft_2020_12_schema(tmp_path: Path) -> None:
    for declaration in _declarations(tmp_path):
        schemas = derive(declaration)
        assert len(schemas) == len(declaration.events) + 1
        for name, schema in schemas.items():
            assert schema["$schema"] == DIALECT
            jsonschema.Draft202012Validator.check_schema(schema)
            jsonschema_rs.validator_for(schema)  # the validate stage's library compiles it
            assert schema["title"] == name


def _validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def test_the_events_of_a_declaration_validate_against_its_schemas(tmp_path: Path) -> None:
    spec = write_pipeline(tmp_path)
    assert spec.declaration is not None
    schemas = derive(spec.declaration)
    pipeline = spec.build()
    changes = [
        record("c", None, row(), 1),
        record("u", row(), row(status_cd="S", total="9.99", note=None), 2),
        record("u", row(), row(del_flag="Y"), 3),
        record("u", row(status_cd="C"), row(), 4),
        record("d", dict.fromkeys(row()) | {"region": "eu", "order_number": 7}, None, 5),
    ]
    seen = set()
    for change in changes:
        outcome = pipeline.run(change)
        assert isinstance(outcome, Produced), outcome
        for item in outcome.items:
            if item.event is not None:
                seen.add(item.event["event_type"])
                _validator(schemas[item.event["event_type"]]).validate(item.event)
            if item.state is not None:
                _validator(schemas["OrderState"]).validate(item.state)
    assert seen == {
        "OrderPlaced",
        "OrderShipped",
        "OrderRepriced",
        "OrderNoteChanged",
        "OrderClosed",
        "OrderRestored",
    }


def test_nullable_fields_accept_null(tmp_path: Path) -> None:
    spec = write_pipeline(tmp_path)
    assert spec.declaration is not None
    schemas = derive(spec.declaration)
    data = schemas["OrderRepriced"]["properties"]["data"]
    check = _validator(data)
    check.validate({"old_total": None, "new_total": "1.00"})
    check.validate({"old_total": "1.00", "new_total": None})
    assert not check.is_valid({"old_total": 1.0, "new_total": None})  # a decimal is text
    assert not check.is_valid({"old_total": "1.00"})  # both are always there
    closed = _validator(schemas["OrderClosed"]["properties"]["data"])
    closed.validate({"reason": "deleted", "region": "EU", "last_status": None})
    assert not closed.is_valid({"reason": "lost", "region": "EU", "last_status": None})
    # A key field is never null.
    assert not closed.is_valid({"reason": "deleted", "region": None, "last_status": None})
    for schema in ({"type": "string"}, {"enum": ["a"]}, {"const": "a"}, {"oneOf": [{}]}, {}):
        assert jsonschema.Draft202012Validator(nullable(schema)).is_valid(None)


def test_a_state_leaves_unknown_fields_out_and_still_validates(tmp_path: Path) -> None:
    spec = write_pipeline(tmp_path)
    declaration = spec.declaration
    assert declaration is not None
    schema = derive(declaration)["OrderState"]
    assert schema["required"] == ["region", "order_no", "status"]  # the key and required ones
    clean = {
        "region": "EU",
        "order_no": 7,
        "status": "new",
        "total": None,
        "placed_at": None,
        "note": None,
        "deleted": False,
    }
    state = state_of(declaration.entity.state, clean)
    assert state == {"region": "EU", "order_no": 7, "status": "new"}
    _validator(schema).validate(state)
    assert not _validator(schema).is_valid({**state, "note": None})  # unknown: left out
    assert not _validator(schema).is_valid({**state, "deleted": False})  # not in the state


def _column(*rules: RuleSpec) -> ColumnDecl:
    return ColumnDecl("f", (Source("f", rules),))


def _rule(name: str, **options: Any) -> RuleSpec:
    return RuleSpec(name, options)


@pytest.mark.parametrize(
    ("rules", "values"),
    [
        ((_rule("trim"), _rule("max_length", max=3)), [" ab ", "abc"]),
        ((_rule("no_control"),), ["a b", "é"]),
        ((_rule("no_control", allow="\n\t"),), ["a\nb\tc"]),
        ((_rule("pattern", regex=r"[A-Z]{2}\d*"),), ["DE", "AT12"]),
        ((_rule("codes", map={"A": "active", "D": "gone"}),), ["A", "D"]),
        ((_rule("boolean"),), ["Y", 0, True]),
        ((_rule("integer"), _rule("range", min=1, max=9)), ["1", 9]),
        ((_rule("decimal"),), ["12.5", Decimal("1E+3"), 7, Decimal("-0.0001")]),
        ((_rule("decimal", scale=3),), ["1", "-2.5"]),
        ((_rule("money", currency="EUR"),), ["12.5", 0]),
        ((_rule("money", currency="JPY", scale=0),), [12, "1000"]),
        ((_rule("money", currency="BTC", scale=8, **{"from": "cents"}),), [1, 0]),
        ((_rule("timestamp", zone="Europe/Berlin"),), [0, "2026-07-01 12:00:00.5"]),
        ((_rule("date"),), [0, "2026-02-03"]),
        ((_rule("trim"), _rule("default", value="n/a")), [" x "]),
    ],
)
def test_each_kind_narrows_the_schema_to_what_it_produces(
    rules: tuple[RuleSpec, ...], values: list[Any]
) -> None:
    schema = {"$schema": DIALECT, **field_schema(_column(*rules))}
    jsonschema.Draft202012Validator.check_schema(schema)
    rs = jsonschema_rs.validator_for(schema)
    check = _validator(schema)
    for value in values:
        out = value
        for rule in rules:
            out = KINDS[rule.kind].build(rule.options, "postgresql")(out)
        check.validate(out)
        assert rs.is_valid(out), (schema, out)


def test_a_narrowed_schema_refuses_what_the_kind_refuses() -> None:
    length = _validator(field_schema(_column(_rule("max_length", max=3))))
    assert not length.is_valid("abcd")
    control = _validator(field_schema(_column(_rule("no_control", allow="\n"))))
    assert control.is_valid("a\nb")
    assert not control.is_valid("a\rb")
    codes = _validator(field_schema(_column(_rule("codes", map={"A": "active"}))))
    assert not codes.is_valid("A")
    ranged = _validator(field_schema(_column(_rule("integer"), _rule("range", min=1, max=9))))
    assert not ranged.is_valid(10)
    assert not ranged.is_valid("5")
    money = _validator(field_schema(_column(_rule("money", currency="EUR"))))
    assert not money.is_valid({"amount": "1.5", "currency": "EUR"})
    assert not money.is_valid({"amount": "1.50", "currency": "USD"})

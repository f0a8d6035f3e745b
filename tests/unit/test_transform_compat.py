"""The schema compatibility checker behind `seam transform check-schemas`."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from seam.cli.main import app
from seam.legacy_db.files import folder
from seam.transforms.compat import DECLARED, check_compatible, check_schema_set, compare_versions
from seam.transforms.schemas import SchemaSet

pytestmark = pytest.mark.unit

V1: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["id", "status"],
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "status": {"type": "string", "enum": ["active", "gone"]},
        "note": {"type": ["string", "null"], "maxLength": 10},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": False,
}


def changed(edit: Any) -> dict[str, Any]:
    doc = copy.deepcopy(V1)
    edit(doc)
    return doc


COMPATIBLE = {
    "identical": changed(lambda d: None),
    "optional property added": changed(lambda d: d["properties"].update(extra={"type": "string"})),
    "enum widened": changed(lambda d: d["properties"]["status"]["enum"].append("paused")),
    "type widened with null": changed(
        lambda d: d["properties"]["id"].update(type=["integer", "null"])
    ),
    "integer to number": changed(lambda d: d["properties"]["id"].update(type="number")),
    "required dropped": changed(lambda d: d["required"].remove("status")),
    "bound relaxed": changed(lambda d: d["properties"]["note"].update(maxLength=20)),
    "description added": changed(lambda d: d.update(description="docs")),
    "additionalProperties opened": changed(lambda d: d.pop("additionalProperties")),
}
INCOMPATIBLE = {
    "property removed": (changed(lambda d: d["properties"].pop("note")), "property removed"),
    "retyped": (changed(lambda d: d["properties"]["id"].update(type="string")), "type changed"),
    "required added": (changed(lambda d: d["required"].append("note")), "new required"),
    "enum narrowed": (
        changed(lambda d: d["properties"]["status"]["enum"].remove("gone")),
        "enum narrowed",
    ),
    "bound tightened": (
        changed(lambda d: d["properties"]["note"].update(maxLength=5)),
        "maxLength",
    ),
    "items retyped": (
        changed(lambda d: d["properties"]["tags"]["items"].update(type="integer")),
        "type changed",
    ),
    "pattern added": (changed(lambda d: d["properties"]["note"].update(pattern="^a")), "pattern"),
    "number to integer": (
        changed(lambda d: d["properties"]["id"].update(type="integer", minimum=2)),
        "minimum tightened",
    ),
}


@pytest.mark.parametrize("name", COMPATIBLE)
def test_compatible_changes(name: str) -> None:
    assert check_compatible(V1, COMPATIBLE[name]) == []


@pytest.mark.parametrize("name", INCOMPATIBLE)
def test_incompatible_changes(name: str) -> None:
    new, expected = INCOMPATIBLE[name]
    problems = check_compatible(V1, new)
    assert problems, name
    assert any(expected in str(p) for p in problems), problems


def test_version_gaps_and_invalid_schemas_are_reported() -> None:
    reports = check_schema_set({"A": {1: V1, 3: V1}, "B": {1: {"type": 5}}})
    assert "not 1..2" in reports[0].problems[0]
    assert "not a valid draft 2020-12 schema" in reports[1].problems[0]


def test_repository_schemas_pass() -> None:
    reports = check_schema_set(SchemaSet.load(folder("schemas")).versions)
    assert reports
    assert all(not r.problems for r in reports)


def declaring(doc: dict[str, Any], *paths: str, reason: str = "the column is VARCHAR(5)") -> Any:
    return {**doc, DECLARED: {"reason": reason, "paths": list(paths)}}


def test_a_declared_tightening_is_accepted_and_named() -> None:
    new = declaring(INCOMPATIBLE["bound tightened"][0], "/properties/note")
    problems, accepted = compare_versions(V1, new)
    assert problems == []
    assert [str(a) for a in accepted] == ["/properties/note: maxLength tightened to 5"]
    (report,) = check_schema_set({"Thing": {1: V1, 2: new}})
    assert report.problems == []
    assert report.declared == [
        "v2 tightens v1 (declared): /properties/note: maxLength tightened to 5"
    ]


def test_a_pattern_added_may_be_declared_too() -> None:
    new = declaring(INCOMPATIBLE["pattern added"][0], "/properties/note")
    assert compare_versions(V1, new)[0] == []


def test_an_undeclared_tightening_still_breaks() -> None:
    both = changed(lambda d: d["properties"]["note"].update(maxLength=5, pattern="^a"))
    both["properties"]["id"]["maximum"] = 9
    problems, accepted = compare_versions(V1, declaring(both, "/properties/note"))
    assert len(accepted) == 2
    assert [str(p) for p in problems] == ["/properties/id: maximum tightened to 9"]


@pytest.mark.parametrize("name", ["retyped", "required added", "enum narrowed", "property removed"])
def test_the_shape_of_an_event_cannot_be_declared_away(name: str) -> None:
    new, expected = INCOMPATIBLE[name]
    paths = {p.path or "/" for p in check_compatible(V1, new)}
    problems, accepted = compare_versions(V1, declaring(new, *paths))
    assert accepted == []
    assert any(expected in str(p) for p in problems)


def test_a_declaration_must_be_exact_and_give_a_reason() -> None:
    # A path that tightens nothing: the list would hide the next real break there.
    problems, _ = compare_versions(V1, declaring(V1, "/properties/id"))
    assert [str(p) for p in problems] == [
        f"/properties/id: declared in {DECLARED} but not tightened"
    ]
    problems, _ = compare_versions(
        V1, declaring(INCOMPATIBLE["bound tightened"][0], "/properties/note", reason="")
    )
    assert any("needs a reason" in str(p) for p in problems)
    (report,) = check_schema_set({"Thing": {1: declaring(V1, "/properties/id")}})
    assert any("first version" in p for p in report.problems)


def test_repository_declarations_list_exactly_what_each_version_tightens() -> None:
    schemas = SchemaSet.load(folder("schemas"))
    declared = 0
    for name, versions in schemas.versions.items():
        for number in sorted(versions)[1:]:
            problems, accepted = compare_versions(versions[number - 1], versions[number])
            assert problems == [], (name, number, problems)
            assert {a.keyword for a in accepted} <= {"maxLength", "maximum", "pattern"}
            declared += len(accepted)
    assert declared


def _write(root: Path, name: str, version: int, doc: dict[str, Any]) -> None:
    (root / name).mkdir(exist_ok=True)
    (root / name / f"v{version}.json").write_text(json.dumps(doc))


def test_cli_fails_on_a_breaking_version(tmp_path: Path) -> None:
    _write(tmp_path, "Thing", 1, V1)
    _write(tmp_path, "Thing", 2, COMPATIBLE["optional property added"])
    runner = CliRunner()
    ok = runner.invoke(app, ["transform", "check-schemas", str(tmp_path)])
    assert ok.exit_code == 0, ok.output
    assert "declared" not in ok.output
    tightened = declaring(COMPATIBLE["optional property added"], "/properties/note")
    tightened["properties"]["note"]["maxLength"] = 5
    _write(tmp_path, "Thing", 2, tightened)
    ok = runner.invoke(app, ["transform", "check-schemas", str(tmp_path)])
    assert ok.exit_code == 0, ok.output
    assert "1 declared tightening" in ok.output
    _write(tmp_path, "Thing", 3, INCOMPATIBLE["enum narrowed"][0])
    bad = runner.invoke(app, ["transform", "check-schemas", str(tmp_path), "-o", "json"])
    assert bad.exit_code != 0
    assert "v3 breaks v2" in bad.output

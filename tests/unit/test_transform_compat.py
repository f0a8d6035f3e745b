"""The schema compatibility checker behind `seam transform check-schemas`."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from seam.cli.main import app
from seam.transforms.compat import check_compatible, check_schema_set
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
    reports = check_schema_set(SchemaSet.load().versions)
    assert reports
    assert all(not r.problems for r in reports)


def _write(root: Path, name: str, version: int, doc: dict[str, Any]) -> None:
    (root / name).mkdir(exist_ok=True)
    (root / name / f"v{version}.json").write_text(json.dumps(doc))


def test_cli_fails_on_a_breaking_version(tmp_path: Path) -> None:
    _write(tmp_path, "Thing", 1, V1)
    _write(tmp_path, "Thing", 2, COMPATIBLE["optional property added"])
    runner = CliRunner()
    ok = runner.invoke(app, ["transform", "check-schemas", "--dir", str(tmp_path)])
    assert ok.exit_code == 0, ok.output
    _write(tmp_path, "Thing", 3, INCOMPATIBLE["enum narrowed"][0])
    bad = runner.invoke(app, ["transform", "check-schemas", "--dir", str(tmp_path), "-o", "json"])
    assert bad.exit_code != 0
    assert "v3 breaks v2" in bad.output

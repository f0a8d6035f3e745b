"""The transforms README's "Declared pipelines" cannot drift from the code: every rule kind
is in its table (and nothing else is), and its whole declaration loads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from seam.transforms.declared.derive import derive
from seam.transforms.declared.rules import KINDS
from seam.transforms.pipeline_file import load_pipeline

pytestmark = pytest.mark.unit

README = Path(__file__).resolve().parents[2] / "transforms" / "README.md"


def _section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Declared pipelines")
    return text[start : text.index("\n## ", start + 1)]


def test_every_rule_kind_is_in_the_readme_table() -> None:
    table = re.search(
        r"\| kind \| options \| what it does \| repair \|\n\|.*\|\n((?:\|.*\|\n)+)", _section()
    )
    assert table is not None, "the README's table of rule kinds is missing"
    rows = [line.split("|") for line in table.group(1).splitlines()]
    documented = [re.sub(r"`", "", cells[1]).strip() for cells in rows]
    assert documented == list(KINDS)
    for cells in rows:
        name = cells[1].strip(" `")
        repair = cells[4].strip()
        assert bool(repair) == (KINDS[name].repair is not None), name
        for option in KINDS[name].options:
            assert f"`{option}`" in cells[2], (name, option)


def test_the_readme_declaration_loads(tmp_path: Path) -> None:
    block = re.search(r"```yaml\n(.*?)```", _section(), re.DOTALL)
    assert block is not None
    path = tmp_path / "orders.yaml"
    path.write_text(block.group(1), encoding="utf-8")
    spec = load_pipeline(path)
    assert spec.declaration is not None
    assert spec.declaration.reference_tables() == ("customers",)
    assert set(derive(spec.declaration)) == {
        "OrderPlaced",
        "OrderRestored",
        "OrderClosed",
        "OrderShipped",
        "OrderRepriced",
        "OrderState",
    }

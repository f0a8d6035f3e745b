"""The wall between the toolkit and its worked example (issue 11).

Toolkit code (every .py and .rs file outside legacy_db/, tests/, benchmarks/ and scripts/)
must not import the example (`seam.legacy_db`) and must not name what belongs to it: its
tables and distinctive columns (from its models), its event types and state schema (from its
schemas), the entity key `product_id`, or the word "catalog". The names come from the
example itself, so the wall follows it as it grows. A failure lists every offence as
file:line.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from seam.legacy_db.files import folder
from seam.legacy_db.models import Base

pytestmark = pytest.mark.unit

REPO: Final = Path(__file__).resolve().parents[2]
# Not toolkit: the example, the tests and measurements of both, and what is not code.
OUTSIDE: Final = frozenset(
    {"legacy_db", "tests", "benchmarks", "scripts", "examples", "build", "target", "dist"}
)
# Columns of the example that any schema may have: not the example's to own.
GENERIC_COLUMNS: Final = frozenset(
    {"created_at", "updated_at", "email", "phone", "country", "sku", "ean", "tag", "amount"}
    | {"currency", "valid_from", "valid_to", "parent_id"}
)
# Offences kept on purpose. An entry that no longer matches an offence fails the test:
# delete it then.
ALLOWED: Final = {
    # The local stack's database keeps its name, so existing stacks keep their data.
    ("core/settings.py", "catalog"): "the local stack's database name",
}


def toolkit_files() -> Iterator[Path]:
    """Every .py and .rs file of the toolkit."""
    for root, dirs, names in os.walk(REPO):
        here = Path(root)
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".")
            and not (here == REPO and d in OUTSIDE)
            and d not in ("target", "__pycache__")
        )
        for name in sorted(names):
            path = here / name
            if name.endswith((".py", ".rs")):
                yield path


def example_names() -> dict[str, str]:
    """Each name of the example's that toolkit code must not use -> what it is."""
    names: dict[str, str] = {"catalog": "the example's name", "product_id": "its entity key"}
    for table in Base.metadata.tables.values():
        names[table.name] = "a table of the example"
        for column in table.columns:
            if "_" in column.name and column.name not in GENERIC_COLUMNS:
                names.setdefault(column.name, f"a column of the example's {table.name}")
    for schema in folder("schemas").iterdir():
        if schema.is_dir():
            names[schema.name] = "an event type or schema of the example"
    return names


def _imports(path: Path, text: str) -> Iterator[tuple[int, str]]:
    if path.suffix != ".py":
        return
    for node in ast.walk(ast.parse(text, str(path))):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for module in modules:
            if module == "seam.legacy_db" or module.startswith("seam.legacy_db."):
                yield node.lineno, f"imports {module}"
                break


def offences() -> list[tuple[str, int, str, str]]:
    """(file, line, offence key, description) of every breach of the wall."""
    names = example_names()
    pattern = re.compile(
        r"(?<![A-Za-z0-9_])("
        + "|".join(map(re.escape, sorted(names, key=len, reverse=True)))
        + r")(?![A-Za-z0-9_])",
        re.IGNORECASE,
    )
    found = []
    for path in toolkit_files():
        rel = path.relative_to(REPO).as_posix()
        text = path.read_text(encoding="utf-8")
        for line, what in _imports(path, text):
            found.append((rel, line, what, f"{what}: the toolkit must not import the example"))
        for number, line_text in enumerate(text.splitlines(), 1):
            for match in pattern.finditer(line_text):
                word = match.group(1)
                meaning = names.get(word) or names.get(word.lower()) or "a name of the example"
                found.append((rel, number, word.lower(), f"names '{word}' ({meaning})"))
    return found


def test_the_toolkit_neither_imports_nor_names_the_example() -> None:
    found = offences()
    bad = [f"{f}:{n}: {what}" for f, n, key, what in found if (f, key) not in ALLOWED]
    assert not bad, (
        f"{len(bad)} place(s) in toolkit code name or import the example (legacy_db/); "
        "move the code to legacy_db/ or use a neutral name (e.g. shop.public.orders):\n"
        + "\n".join(bad)
    )
    used = {(f, key) for f, _n, key, _what in found}
    stale = [f"{f} ({key}): {why}" for (f, key), why in ALLOWED.items() if (f, key) not in used]
    assert not stale, "allowed offences that are gone; delete them from ALLOWED:\n" + "\n".join(
        stale
    )


def test_the_wall_sees_an_offence(tmp_path: Path) -> None:
    """The scanner itself: it finds an import and each kind of name, with its line."""
    names = example_names()
    assert {"products", "categories", "prod_id", "ProductListed", "ProductState"} <= set(names)
    path = tmp_path / "mod.py"
    text = "import os\nfrom seam.legacy_db.models import Base\nKEY = 'product_id'\n"
    path.write_text(text)
    assert list(_imports(path, text)) == [(2, "imports seam.legacy_db.models")]


def test_the_toolkit_files_are_found() -> None:
    files = {p.relative_to(REPO).as_posix() for p in toolkit_files()}
    assert {"transforms/worker.py", "cli/main.py", "connectors/spec.py"} <= files
    assert not any(f.startswith(("legacy_db/", "tests/")) for f in files)

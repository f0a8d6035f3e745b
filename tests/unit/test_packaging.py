"""The layout maps each top-level folder to one subpackage of `seam`, with no links, so every
module has one identity and one file."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import seam

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def setuptools_table() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        table: dict[str, object] = tomllib.load(file)["tool"]["setuptools"]
    return table


def test_the_repository_tracks_no_symlink() -> None:
    staged = subprocess.run(
        ["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    links = [line.split("\t", 1)[1] for line in staged if line.startswith("120000")]
    assert links == []


def test_every_python_folder_of_a_mapped_folder_is_a_listed_package() -> None:
    """A subpackage left out of `packages` is silently missing from the wheel."""
    table = setuptools_table()
    package_dir: dict[str, str] = table["package-dir"]  # type: ignore[assignment]
    listed = set(table["packages"])  # type: ignore[call-overload]
    found = set()
    for package, folder in package_dir.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            if any(part in {"target", "build"} or part.startswith(".") for part in relative.parts):
                continue
            found.add(".".join([package, *relative.parts]))
    assert found == listed


def test_each_module_has_one_identity() -> None:
    """Importing every module of seam loads none of them a second time under a top-level
    name (a folder on sys.path would make `connectors.errors` and `seam.connectors.errors`
    two modules with two ConnectError classes)."""
    for module in pkgutil.walk_packages(seam.__path__, prefix="seam."):
        if module.name.endswith(".__main__"):
            continue
        importlib.import_module(module.name)
    package_dir: dict[str, str] = setuptools_table()["package-dir"]  # type: ignore[assignment]
    folders = set(package_dir.values())
    twice = sorted(
        name
        for name in sys.modules
        if name.split(".")[0] in folders and name.split(".")[0] != "seam"
    )
    assert twice == []
    assert Path(seam.__file__).resolve().parent == ROOT / package_dir["seam"]

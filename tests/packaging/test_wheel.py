"""seam as a user installs it: the wheel built from the sdist, in a fresh virtual environment
outside the repository, with nothing of the repository on its path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parents[2]


def run(*command: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    # A clean environment: no SEAM_* settings, no PYTHONPATH leading back to the repository.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEAM_", "PYTHON"))}
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel built from it (`python -m build` builds the wheel from the
    sdist, so a file the sdist leaves out is missing from the wheel too)."""
    out = tmp_path_factory.mktemp("dist")
    built = run(sys.executable, "-m", "build", "--outdir", out, ROOT, cwd=out)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel installed; yields a working folder in it."""
    home = tmp_path_factory.mktemp("user")
    venv.create(home / "venv", with_pip=True)
    (wheel,) = dist.glob("seam-*.whl")
    pip = run(home / "venv" / "bin" / "python", "-m", "pip", "install", "-q", wheel, cwd=home)
    assert pip.returncode == 0, pip.stderr[-3000:]
    work = home / "work"
    work.mkdir()
    return work


def seam(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(work.parent / "venv" / "bin" / "seam", *args, cwd=work)


def test_the_sdist_holds_every_folder_of_the_package(dist: Path) -> None:
    (sdist,) = dist.glob("seam-*.tar.gz")
    listing = run("tar", "-tzf", sdist, cwd=dist).stdout
    for folder in ("core", "cli", "connectors", "streams", "transforms", "stack", "legacy_db"):
        assert f"/{folder}/__init__.py" in listing, folder


def test_the_installed_cli_runs_from_outside_the_repository(installed: Path) -> None:
    helped = seam(installed, "--help")
    assert helped.returncode == 0, helped.stderr
    for group in ("connectors", "streams", "transform", "stack"):
        assert group in helped.stdout
    imported = run(
        installed.parent / "venv" / "bin" / "python",
        "-c",
        "import seam.cli.main; from importlib import resources; print(seam.cli.main.__file__);"
        "print(len(resources.files('seam.stack').joinpath('pom.xml').read_text()))",
        cwd=installed,
    )
    assert imported.returncode == 0, imported.stderr
    module_file, pom_size = imported.stdout.split()
    assert "site-packages" in module_file
    assert str(ROOT) not in module_file
    assert int(pom_size) > 0


def test_the_installed_example_checks_from_outside_the_repository(installed: Path) -> None:
    """The example ships as package data: exported, its schemas and pipeline check with no
    file of the repository (the pipeline names its stages by import path, its schemas
    relative to itself)."""
    exported = seam(installed, "legacy", "export", "example")
    assert exported.returncode == 0, exported.stderr
    schemas = seam(installed, "transform", "check-schemas", "example/schemas")
    assert schemas.returncode == 0, schemas.stdout + schemas.stderr
    checked = seam(
        installed, "transform", "check", "example/pipelines/catalog.yaml", "--output", "json"
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    report = json.loads(checked.stdout)
    assert report["stages"], report
    # Without the compiled module (a separate build) the Python stages serve every record.
    assert report["fast_path_on"] is False
    # The sink spec finds its pipeline, and that its state schema, relative to itself.
    view = seam(installed, "connectors", "render", "example/views", "--output", "json")
    assert view.returncode == 0, view.stdout + view.stderr
    assert json.loads(view.stdout)[0]["config"]["topics"] == "catalog.products-latest"
    # The facade's routes, which `seam legacy strangle` runs, ship too.
    assert "product-details:" in (installed / "example" / "migration" / "routes.yaml").read_text()


def test_a_broken_schema_fails_the_installed_check(installed: Path) -> None:
    exported = seam(installed, "legacy", "export", "broken")
    assert exported.returncode == 0, exported.stderr
    (schema,) = sorted((installed / "broken" / "schemas").glob("*/v1.json"))[:1]
    schema.write_text('{"type": "no-such-type"}')
    schemas = seam(installed, "transform", "check-schemas", "broken/schemas")
    assert schemas.returncode != 0
    assert "Traceback" not in schemas.stderr
    assert schema.parent.name in schemas.stdout + schemas.stderr

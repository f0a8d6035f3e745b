"""The worked example plugs into the toolkit: its commands through the entry-point group
`seam.commands`, its pipeline, schemas and connector specs as package data that
`seam legacy export DIR` writes out and the toolkit's commands read from anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from seam.cli.main import PLUGIN_GROUP, add_plugins, app
from seam.errors import ConfigError
from seam.legacy_db.files import example_files, folder

pytestmark = pytest.mark.unit

broken_plugin = 42  # an entry point naming this is not a typer app


def _root() -> typer.Typer:
    root = typer.Typer(no_args_is_help=True)

    @root.command("stack")
    def stack() -> None:
        typer.echo("toolkit stack")

    @root.command("streams")  # two commands: typer runs a lone command as the whole app
    def streams() -> None:
        typer.echo("toolkit streams")

    return root


def test_the_example_is_an_installed_plugin() -> None:
    found = {e.name: e.value for e in entry_points(group=PLUGIN_GROUP)}
    assert found.get("legacy") == "seam.legacy_db.cli:app"
    result = CliRunner().invoke(app, ["legacy", "--help"])
    assert result.exit_code == 0
    for command in ("seed", "workload", "export"):
        assert command in result.output


def test_a_plugin_that_fails_to_load_says_why_when_used() -> None:
    root = _root()
    add_plugins(
        root,
        [
            EntryPoint("good", "seam.legacy_db.cli:app", PLUGIN_GROUP),
            EntryPoint("gone", "no_such_package.cli:app", PLUGIN_GROUP),
            EntryPoint("odd", f"{__name__}:broken_plugin", PLUGIN_GROUP),
        ],
    )
    runner = CliRunner()
    assert runner.invoke(root, ["good", "--help"]).exit_code == 0
    listed = runner.invoke(root, ["--help"])
    assert "failed to load" in listed.output  # the other nouns still work and are listed
    gone = runner.invoke(root, ["gone", "anything", "--flag"])
    assert isinstance(gone.exception, ConfigError)
    assert gone.exception.message == (
        "the command plugin 'gone' (no_such_package.cli:app) failed to load: "
        "ModuleNotFoundError: No module named 'no_such_package'"
    )
    assert PLUGIN_GROUP in (gone.exception.hint or "")
    odd = runner.invoke(root, ["odd"])
    assert isinstance(odd.exception, ConfigError)
    assert "expected a typer.Typer, got int" in odd.exception.message


def test_a_plugin_cannot_take_a_toolkit_noun() -> None:
    root = _root()
    add_plugins(root, [EntryPoint("stack", "seam.legacy_db.cli:app", PLUGIN_GROUP)])
    result = CliRunner().invoke(root, ["stack"])
    assert result.output == "toolkit stack\n"


def test_the_example_files_are_package_data() -> None:
    paths = [p for p, _ in example_files()]
    assert "pipelines/catalog.yaml" in paths
    assert "schemas/ProductState/v2.json" in paths
    assert "connectors/catalog-postgres.yaml" in paths
    assert "views/catalog-products-view.yaml" in paths
    assert "services/catalog.yaml" in paths
    assert "migration/routes.yaml" in paths
    on_disk = {
        p.relative_to(folder("pipelines").parent).as_posix()
        for name in ("pipelines", "schemas", "connectors", "views", "services", "migration")
        for p in folder(name).rglob("*")
        if p.is_file() and p.suffix in (".yaml", ".json")
    }
    assert set(paths) == on_disk


def test_export_then_the_toolkit_reads_the_files_from_anywhere(tmp_path: Path) -> None:
    """What a user of an installed wheel does: the exported pipeline finds its schemas
    relative to itself, whatever the current directory."""
    out = tmp_path / "example"
    seam = [sys.executable, "-c", "from seam.cli.main import main; main()"]
    env = {**os.environ, "SEAM_CONFIG": ""}
    run = subprocess.run(
        [*seam, "legacy", "export", str(out)], capture_output=True, text=True, env=env, cwd="/"
    )
    assert run.returncode == 0, run.stderr
    assert (out / "pipelines" / "catalog.yaml").read_bytes() == (
        folder("pipelines") / "catalog.yaml"
    ).read_bytes()
    check = subprocess.run(
        [*seam, "transform", "check", str(out / "pipelines" / "catalog.yaml"), "-o", "json"],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
    )
    assert check.returncode == 0, check.stderr
    data = json.loads(check.stdout)
    assert data["stages"] == ["decode", "clean", "events", "validate"]
    assert data["fast_path"] is None
    schemas = subprocess.run(
        [*seam, "transform", "check-schemas", "schemas"],
        capture_output=True,
        text=True,
        env=env,
        cwd=out,
    )
    assert schemas.returncode == 0, schemas.stderr
    assert "ProductState" in schemas.stdout
    # Exporting again is idempotent; a file changed since is kept unless --force.
    (out / "schemas" / "ProductState" / "v2.json").write_text("{}")
    again = CliRunner().invoke(app, ["legacy", "export", str(out)])
    assert isinstance(again.exception, ConfigError)
    assert "schemas/ProductState/v2.json" in again.exception.message
    assert "--force" in (again.exception.hint or "")
    forced = CliRunner().invoke(app, ["legacy", "export", str(out), "--force"])
    assert forced.exit_code == 0, forced.output
    assert (out / "schemas" / "ProductState" / "v2.json").read_bytes() == (
        folder("schemas") / "ProductState" / "v2.json"
    ).read_bytes()

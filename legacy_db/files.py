"""The example's files, shipped inside the package: its pipeline files (`pipelines/`), the
JSON Schemas of its domain events (`schemas/`), its connector specs (`connectors/`) and its
sink specs (`views/`: the latest topics as tables of other databases), its service
files (`services/`, `seam serve`) and its facade's routes (`migration/`, `seam facade run`).

They are package data, read through `importlib.resources`, so they are there whether seam
runs from a checkout or from an installed wheel. `export(folder)` writes them out
(`seam legacy export DIR`) with their layout kept: a pipeline names its schemas relative to
itself (`../schemas`), so the written files work as they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Final

from seam.errors import ConfigError
from seam.yamlfile import load_documents, plain

FOLDERS: Final = ("pipelines", "schemas", "connectors", "views", "services", "migration")
_SUFFIXES: Final = (".yaml", ".json")


def example_files() -> Iterator[tuple[str, bytes]]:
    """(path relative to the export folder, content) of every example file, in path order."""
    root = files(__package__ or "seam.legacy_db")
    for folder in FOLDERS:
        yield from _walk(root / folder, folder)


def _walk(node: Traversable, path: str) -> Iterator[tuple[str, bytes]]:
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.is_dir():
            yield from _walk(child, f"{path}/{child.name}")
        elif child.name.endswith(_SUFFIXES):
            yield f"{path}/{child.name}", child.read_bytes()


def export(folder: Path, *, force: bool = False) -> list[str]:
    """Write the example's files under `folder` (created if need be); returns the paths
    written. A file that exists with other content is an error unless `force`."""
    found = list(example_files())
    if not force:
        clash = [
            p for p, data in found if (folder / p).exists() and (folder / p).read_bytes() != data
        ]
        if clash:
            raise ConfigError(
                f"{folder} already holds other versions of {', '.join(clash[:3])}"
                + (f" and {len(clash) - 3} more" if len(clash) > 3 else ""),
                hint="choose an empty folder, or pass --force to overwrite them",
            )
    written = []
    for path, data in found:
        target = folder / path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        except OSError as exc:
            raise ConfigError(
                f"cannot write {target}: {exc.strerror or exc}",
                hint="choose a folder you can write to",
            ) from None
        written.append(path)
    return written


def folder(name: str) -> Path:
    """The example's folder `name` (one of FOLDERS) on disk."""
    path = Path(str(files(__package__ or "seam.legacy_db") / name))
    if not path.is_dir():
        raise ConfigError(
            f"the example's {name} folder is not on disk here ({path})",
            hint="write the example's files out with `seam legacy export DIR` and use those",
        )
    return path


def pipeline_document(name: str = "catalog") -> dict[str, Any]:
    """The example pipeline `name` (pipelines/<name>.yaml) as parsed YAML, its validate
    stage's schema folder made absolute and the declaration it includes written in: the
    document then works written anywhere (tests and benchmarks write variants of it to
    folders of their own, some renaming its topics by text)."""
    pipelines = folder("pipelines")
    # seam's loader, not yaml.safe_load: `on:` is a key there, not YAML 1.1's true.
    path = pipelines / f"{name}.yaml"
    doc: dict[str, Any] = plain(load_documents(path.read_text(), str(path))[0])
    included = doc.pop("include", None) or []
    for file in [included] if isinstance(included, str) else included:
        path = pipelines / file
        part = plain(load_documents(path.read_text(), str(path))[0])
        doc.setdefault("tables", {}).update(part.get("tables") or {})
        for section in ("entity", "events"):
            if section in part:
                doc[section] = part[section]
    if "schemas" in doc:
        doc["schemas"] = str(folder("schemas"))
    for stage in doc.get("stages") or ():
        if stage.get("use") == "validate":
            stage["with"] = {**(stage.get("with") or {}), "schemas": str(folder("schemas"))}
    return doc

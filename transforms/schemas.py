"""The versioned JSON Schemas of the domain events: `<folder>/<EventType>/v<N>.json`.

`SchemaSet.load(folder)` reads every version; events are validated against the highest
version of their type, with validators compiled once (jsonschema-rs). A pipeline names its
folder (the validate stage's `schemas` option); `seam transform check-schemas FOLDER`
checks one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from seam.errors import ConfigError

_VERSION_FILE: Final = re.compile(r"v(\d+)\.json")


@dataclass
class SchemaSet:
    """Every version of every schema in one folder."""

    root: Path
    versions: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path) -> SchemaSet:
        if not root.is_dir():
            raise ConfigError(
                f"schema folder {root} does not exist",
                hint="name a folder of <EventType>/v<N>.json files (the validate stage's `schemas` "
                "option, relative to the pipeline file; or `seam transform check-schemas DIR`)",
            )
        found = cls(root)
        for path in sorted(root.glob("*/v*.json")):
            match = _VERSION_FILE.fullmatch(path.name)
            if not match:
                continue
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ConfigError(f"{path}: not a readable JSON document ({exc})") from exc
            if not isinstance(doc, dict):
                raise ConfigError(f"{path}: a schema must be a JSON object")
            found.versions.setdefault(path.parent.name, {})[int(match.group(1))] = doc
        if not found.versions:
            raise ConfigError(f"{root} holds no schemas (expected <EventType>/v<N>.json files)")
        return found

    def latest(self, name: str) -> tuple[int, Mapping[str, Any]] | None:
        versions = self.versions.get(name)
        if not versions:
            return None
        top = max(versions)
        return top, versions[top]


class CompiledSchemas:
    """Compiled validators for the latest version of each schema."""

    def __init__(self, schemas: SchemaSet) -> None:
        import jsonschema_rs

        self.validators: dict[str, tuple[int, Any]] = {}
        self.documents: dict[str, tuple[int, Mapping[str, Any]]] = {}  # the latest versions
        for name in schemas.versions:
            latest = schemas.latest(name)
            assert latest is not None
            version, doc = latest
            self.documents[name] = latest
            try:
                self.validators[name] = (version, jsonschema_rs.validator_for(dict(doc)))
            except Exception as exc:  # the library raises its own types for a bad schema
                raise ConfigError(f"{schemas.root / name}/v{version}.json: {exc}") from exc

    def errors(self, name: str, instance: Any) -> tuple[int, list[str]] | None:
        """(version, error messages) for `instance` against `name`'s latest schema; None when
        there is no such schema."""
        found = self.validators.get(name)
        if found is None:
            return None
        version, validator = found
        if validator.is_valid(instance):
            return version, []
        return version, [
            f"{'/'.join(str(p) for p in e.instance_path) or '(root)'}: {e.message}"
            for e in validator.iter_errors(instance)
        ]

"""Keep a declared pipeline's derived schemas as versioned files: `<Name>/v<N>.json`.

A schema whose checks did not change keeps its version; one that changed is written as the
next version, but only when every new version is backward compatible with the one before it
(`seam.transforms.compat`, as `seam transform check-schemas` checks): otherwise nothing is
written and the error lists what breaks, so a folder never holds a half-applied change.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Final, NamedTuple

from seam.errors import ConfigError
from seam.transforms.compat import check_schema_set

_VERSION_FILE: Final = re.compile(r"v(\d+)\.json")
# Keywords that only annotate: a schema differing from another in these checks the same.
_ANNOTATIONS: Final = frozenset({"$schema", "$id", "title", "description", "$comment", "examples"})


class Written(NamedTuple):
    name: str
    version: int
    result: str  # "unchanged", "written" or "new"


def _existing(folder: Path) -> dict[str, dict[int, Any]]:
    found: dict[str, dict[int, Any]] = {}
    for path in sorted(folder.glob("*/v*.json")):
        match = _VERSION_FILE.fullmatch(path.name)
        if match is None:
            continue
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"{path}: not a readable JSON document ({exc})",
                hint="fix or remove the file, then write the schemas again",
            ) from None
        found.setdefault(path.parent.name, {})[int(match.group(1))] = doc
    return found


def _checks(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {
            k: _checks(v)
            for k, v in schema.items()
            if k not in _ANNOTATIONS and not k.startswith("x-")
        }
    if isinstance(schema, list):
        return [_checks(v) for v in schema]
    return schema


def write_schemas(derived: dict[str, dict[str, Any]], folder: Path) -> list[Written]:
    """Write each of `derived` to `folder` where it changed (see the module docstring)."""
    existing = _existing(folder) if folder.is_dir() else {}
    results: list[Written] = []
    todo: dict[Path, dict[str, Any]] = {}
    candidates = {name: dict(versions) for name, versions in existing.items()}
    for name, schema in derived.items():
        versions = existing.get(name, {})
        latest = max(versions) if versions else 0
        if latest and _checks(versions[latest]) == _checks(schema):
            results.append(Written(name, latest, "unchanged"))
            continue
        version = latest + 1
        candidates.setdefault(name, {})[version] = schema
        todo[folder / name / f"v{version}.json"] = schema
        results.append(Written(name, version, "written" if latest else "new"))
    broken = [r for r in check_schema_set(candidates) if r.problems and r.name in derived]
    if broken:
        raise ConfigError(
            f"not written: {len(broken)} schema(s) would break compatibility: "
            + "; ".join(
                f"{r.name}: {', '.join(r.problems[:3])}"
                + (f" (and {len(r.problems) - 3} more)" if len(r.problems) > 3 else "")
                for r in broken
            ),
            hint="keep old fields and their types (add new fields as optional), or declare a "
            "new event type; nothing was written",
        )
    for path, schema in todo.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return results


__all__ = ["Written", "write_schemas"]

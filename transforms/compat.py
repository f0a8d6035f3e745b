"""Backward compatibility between two versions of a JSON Schema.

A new version is backward compatible when every event valid under the old version is still
valid under the new one, so consumers can upgrade their schema before the producers. The
checker covers the constructs seam's schemas use and is conservative: a change it cannot
prove safe is reported.

Fine: adding an optional property, widening a type (integer -> number, adding "null"),
adding enum values, dropping a `required` entry, relaxing bounds, documentation changes.
Not fine: removing a property, changing its type, adding a required property, narrowing an
enum or const, tightening bounds/patterns/formats, closing `additionalProperties`.

One exception, declared and exact: a new version may tighten a bound or a pattern (the
value constraints `_LOWER`, `_UPPER`, `pattern`) at the paths it lists in its top-level
`x-seam-tightened` (`{"reason": "...", "paths": ["/properties/name", ...]}`). That is for
limits the data could never legitimately break, such as the width of the legacy column a
value comes from: an old event beyond it was poison, which a replay drops. The shape of
an event (properties, types, required, enums) never changes that way, and the list must be
exactly the tightenings the version makes (a path that tightens nothing is reported), so
every break is named in the schema and shown by `seam transform check-schemas`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

_DOC_KEYS: Final = frozenset(
    {"$schema", "$id", "$comment", "title", "description", "examples", "default", "deprecated"}
)
# A lower bound may only go down, an upper bound only up.
_LOWER: Final = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER: Final = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
_EXACT: Final = ("pattern", "format", "multipleOf", "$ref", "uniqueItems")
# The changes a version may declare in DECLARED (value constraints, not the event's shape).
_DECLARABLE: Final = frozenset({*_LOWER, *_UPPER, "pattern"})
DECLARED: Final = "x-seam-tightened"
_HANDLED: Final = frozenset(
    {
        "type",
        "properties",
        "required",
        "enum",
        "const",
        "items",
        "additionalProperties",
        "anyOf",
        "oneOf",
        "allOf",
        "$defs",
        *_LOWER,
        *_UPPER,
        *_EXACT,
    }
)


@dataclass(frozen=True)
class Incompatibility:
    path: str  # JSON pointer-ish path in the schema
    message: str
    keyword: str | None = None  # the value constraint tightened, when that is the problem

    def __str__(self) -> str:
        return f"{self.path or '/'}: {self.message}"


def _types(schema: Mapping[str, Any]) -> set[str] | None:
    kind = schema.get("type")
    if kind is None:
        return None
    found = {kind} if isinstance(kind, str) else set(kind)
    if "number" in found:
        found.add("integer")  # every integer is a number
    return found


def check_compatible(old: Any, new: Any, path: str = "") -> list[Incompatibility]:
    """What in `new` rejects instances `old` accepted (empty: backward compatible)."""
    out: list[Incompatibility] = []
    if new is True or new == {}:
        return out
    if old is True or old == {}:
        return [Incompatibility(path, "an unconstrained schema became constrained")]
    if old is False:
        return out
    if new is False:
        return [Incompatibility(path, "the schema now rejects everything")]
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return [Incompatibility(path, "not a schema object")]

    old_types, new_types = _types(old), _types(new)
    if new_types is not None:
        if old_types is None:
            out.append(Incompatibility(path, f"type restricted to {sorted(new_types)}"))
        elif not old_types <= new_types:
            out.append(
                Incompatibility(
                    path, f"type changed from {old.get('type')!r} to {new.get('type')!r}"
                )
            )

    if "enum" in new:
        old_values = old.get("enum", [old["const"]] if "const" in old else None)
        if old_values is None:
            out.append(Incompatibility(path, "enum added"))
        else:
            lost = [v for v in old_values if v not in new["enum"]]
            if lost:
                out.append(Incompatibility(path, f"enum narrowed: {lost!r} no longer allowed"))
    if "const" in new:
        old_values = old.get("enum", [old["const"]] if "const" in old else None)
        if old_values is None or any(v != new["const"] for v in old_values):
            out.append(Incompatibility(path, f"const {new['const']!r} narrows the allowed values"))

    for key in _LOWER:
        if key in new and (key not in old or new[key] > old[key]):
            out.append(Incompatibility(path, f"{key} tightened to {new[key]!r}", key))
    for key in _UPPER:
        if key in new and (key not in old or new[key] < old[key]):
            out.append(Incompatibility(path, f"{key} tightened to {new[key]!r}", key))
    for key in _EXACT:
        if key in new and new.get(key) != old.get(key):
            out.append(Incompatibility(path, f"{key} changed to {new[key]!r}", key))

    old_required = set(old.get("required", ()))
    added = sorted(set(new.get("required", ())) - old_required)
    if added:
        out.append(Incompatibility(path, f"new required properties: {', '.join(added)}"))

    old_props: Mapping[str, Any] = old.get("properties", {})
    new_props: Mapping[str, Any] = new.get("properties", {})
    for name, old_sub in old_props.items():
        if name not in new_props:
            out.append(Incompatibility(f"{path}/properties/{name}", "property removed"))
        else:
            out.extend(check_compatible(old_sub, new_props[name], f"{path}/properties/{name}"))
    new_extra = new.get("additionalProperties", True)
    old_extra = old.get("additionalProperties", True)
    # A new optional property is fine (the convention the project follows, see DESIGN.md),
    # even where the old schema left additional properties open.
    if new_extra is not True:
        out.extend(check_compatible(old_extra, new_extra, f"{path}/additionalProperties"))

    if "items" in new:
        out.extend(check_compatible(old.get("items", True), new["items"], f"{path}/items"))

    for key in ("anyOf", "oneOf"):
        if key in new or key in old:
            old_opts, new_opts = old.get(key), new.get(key)
            if old_opts is None or new_opts is None:
                out.append(Incompatibility(path, f"{key} added or removed"))
            else:
                for i, opt in enumerate(old_opts):
                    if not any(not check_compatible(opt, n) for n in new_opts):
                        out.append(
                            Incompatibility(
                                f"{path}/{key}/{i}", "no compatible option in new version"
                            )
                        )
    if "allOf" in new and new.get("allOf") != old.get("allOf"):
        out.append(Incompatibility(path, "allOf changed"))
    for name, sub in new.get("$defs", {}).items():
        if name in old.get("$defs", {}):
            out.extend(check_compatible(old["$defs"][name], sub, f"{path}/$defs/{name}"))

    # `x-...` keywords are annotations (draft 2020-12 validates nothing by an unknown key).
    unknown = sorted(
        k
        for k in new
        if k not in _HANDLED
        and k not in _DOC_KEYS
        and not k.startswith("x-")
        and new[k] != old.get(k)
    )
    if unknown:
        out.append(
            Incompatibility(
                path, f"changed keywords the checker cannot judge: {', '.join(unknown)}"
            )
        )
    return out


@dataclass(frozen=True)
class SchemaReport:
    name: str
    versions: list[int]
    problems: list[str]
    declared: list[str]  # tightenings a version declares (DECLARED), accepted


def _declared_paths(doc: Any) -> tuple[set[str], list[str]]:
    """The paths `doc` declares tightened, and what is wrong with the declaration."""
    found = doc.get(DECLARED) if isinstance(doc, Mapping) else None
    if found is None:
        return set(), []
    paths = found.get("paths") if isinstance(found, Mapping) else None
    reason = found.get("reason") if isinstance(found, Mapping) else None
    if not isinstance(reason, str) or not reason.strip():
        return set(), [f"{DECLARED} needs a reason (why no valid old event breaks the limits)"]
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        return set(), [f"{DECLARED}.paths must be a list of schema paths"]
    return set(paths), []


def compare_versions(old: Any, new: Any) -> tuple[list[Incompatibility], list[Incompatibility]]:
    """(problems, declared tightenings) of `new` against `old`: a tightening of a value
    constraint at a path `new` lists in DECLARED is accepted; a listed path that tightens
    nothing is a problem, so the list stays exact."""
    declared, wrong = _declared_paths(new)
    problems: list[Incompatibility] = [Incompatibility("", w) for w in wrong]
    accepted: list[Incompatibility] = []
    for issue in check_compatible(old, new):
        if issue.keyword in _DECLARABLE and (issue.path or "/") in declared:
            accepted.append(issue)
        else:
            problems.append(issue)
    for path in sorted(declared - {i.path or "/" for i in accepted}):
        problems.append(Incompatibility(path, f"declared in {DECLARED} but not tightened"))
    return problems, accepted


def check_schema_set(versions_by_name: Mapping[str, Mapping[int, Any]]) -> list[SchemaReport]:
    """Each schema valid against draft 2020-12; each version compatible with the previous;
    versions numbered 1, 2, 3... without gaps."""
    from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
    from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]

    reports = []
    for name in sorted(versions_by_name):
        versions = versions_by_name[name]
        numbers = sorted(versions)
        problems: list[str] = []
        if numbers != list(range(1, len(numbers) + 1)):
            problems.append(f"versions {numbers} are not 1..{len(numbers)} without gaps")
        for number in numbers:
            doc = versions[number]
            try:
                Draft202012Validator.check_schema(doc)
            except SchemaError as exc:
                problems.append(f"v{number}: not a valid draft 2020-12 schema: {exc.message}")
            if isinstance(doc, Mapping) and doc.get("$schema") not in (
                None,
                "https://json-schema.org/draft/2020-12/schema",
            ):
                problems.append(
                    f"v{number}: $schema must be draft 2020-12, got {doc.get('$schema')!r}"
                )
        declared: list[str] = []
        for prev, cur in itertools.pairwise(numbers):
            broken, accepted = compare_versions(versions[prev], versions[cur])
            problems += [f"v{cur} breaks v{prev}: {issue}" for issue in broken]
            declared += [f"v{cur} tightens v{prev} (declared): {issue}" for issue in accepted]
        first = versions[numbers[0]] if numbers else None
        if isinstance(first, Mapping) and DECLARED in first:
            problems.append(f"v{numbers[0]}: {DECLARED} in a first version tightens nothing")
        reports.append(SchemaReport(name, numbers, problems, declared))
    return reports

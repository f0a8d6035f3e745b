"""Compare a legacy JSON answer with the new side's, field by field, under declared rules.

    compare:
      legacy_root: ""             # the part of each answer compared (dotted; default: all),
      new_root: data              #   e.g. a memory image wraps the entity in `data`
      rename:                     # legacy field -> new field (a parent renames its children)
        title: name
      ignore: [updated_at, tags.*.id]
      only: [name, price]         # optional: compare these fields only (the rest ignored)
      normalise:                  # rules applied to both sides' value of a field
        name: [trim, lower]
        price: [number, decimals:2]
        listed_on: [date]
      legacy_absent:              # a 2xx legacy answer that means "no such thing": it is
        - error                   #   compared as a 404 (a field that is there and not null,
        - {deleted: ["Y"]}        #   or a field holding one of the values listed)

Field paths are dotted, list items are numbered (`tags.0.id`), `*` matches any one part.
`rename` applies first; `only`, `ignore` and `normalise` name fields as the new side names
them.
Rules, applied in the order written:
  trim          strip leading and trailing white space of text
  lower         compare text case-insensitively
  number        text that reads as a number is that number ("12.50" == 12.5)
  decimals:N    numbers rounded (half up) to N decimal places
  date          an ISO-8601 date or date-time (also `YYYY-MM-DD HH:MM:SS`, `YYYYMMDD`) is
                that instant in UTC; a date-time without zone is taken as UTC
  empty_null    an empty string is null
  whitespace    runs of white space (line breaks too) are one space, the ends stripped
  mojibake      UTF-8 once read as cp1252 is repaired ('CafÃ©' is 'Café'), as the
                declared pipelines' rule of that name repairs it

`legacy_absent` is for legacy apps that answer "not found" with a 200 and an error body, or
still answer a soft-deleted record, where the new side rightly answers 404: such an answer
matches the new side's 404 and differs from its 200 (`<status>`). The conditions are tried
on the part `legacy_root` names.
A field one side leaves out equals null on the other. Numbers compare as numbers (1 == 1.0),
other values by type and value ("1" != 1 unless `number` is applied).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Final

from seam.transforms.declared.rules import fold_whitespace, repair_mojibake
from seam.yamlfile import Reader, value_mark

RULES: Final = (
    "trim",
    "lower",
    "number",
    "decimals:N",
    "date",
    "empty_null",
    "whitespace",
    "mojibake",
)
_KEYS: Final = ("legacy_root", "new_root", "rename", "ignore", "only", "normalise", "legacy_absent")
_DECIMALS: Final = re.compile(r"\Adecimals:([0-9]{1,2})\Z")
_ABSENT: Final = object()


@dataclass(frozen=True)
class CompareRules:
    legacy_root: tuple[str, ...] = ()
    new_root: tuple[str, ...] = ()
    rename: Mapping[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict)
    ignore: tuple[tuple[str, ...], ...] = ()
    only: tuple[tuple[str, ...], ...] = ()
    normalise: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = ()
    # (field path, values): the field holds one of the values; no values: it is not null
    legacy_absent: tuple[tuple[tuple[str, ...], tuple[Any, ...]], ...] = ()


def _split(path: str) -> tuple[str, ...]:
    return tuple(p for p in path.strip().split(".") if p)


def parse_rules(reader: Reader, parent: Any, key: str, what: str) -> CompareRules:
    body = reader.mapping(parent[key], value_mark(parent, key), what)
    if body is None:
        return CompareRules()
    reader.keys(body, _KEYS, what)
    roots = {
        name: _split(reader.string(body, name, f"{what}.{name}")) if body.get(name) else ()
        for name in ("legacy_root", "new_root")
    }
    rename: dict[tuple[str, ...], tuple[str, ...]] = {}
    if "rename" in body:
        pairs = reader.mapping(body["rename"], value_mark(body, "rename"), f"{what}.rename")
        for old in pairs or {}:
            new = reader.string(pairs, old, f"{what}.rename.{old}")
            if new:
                rename[_split(old)] = _split(new)
    ignore = _paths(reader, body, "ignore", what)
    only = _paths(reader, body, "only", what)
    normalise: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    if "normalise" in body:
        fields = reader.mapping(
            body["normalise"], value_mark(body, "normalise"), f"{what}.normalise"
        )
        for name, rules in (fields or {}).items():
            listed = [rules] if isinstance(rules, str) else rules
            good = isinstance(listed, list) and all(
                isinstance(r, str) and (r in RULES or _DECIMALS.match(r)) for r in listed
            )
            if not good:
                reader.add(
                    value_mark(fields, name),
                    f"{what}.normalise.{name}",
                    f"expected a list of rules ({', '.join(RULES)}), got {rules!r}",
                    hint=f"e.g. normalise: {{{name}: [trim, lower]}}",
                )
                continue
            normalise.append((_split(name), tuple(listed)))
    return CompareRules(
        legacy_root=roots["legacy_root"],
        new_root=roots["new_root"],
        rename=rename,
        ignore=tuple(ignore),
        only=tuple(only),
        normalise=tuple(normalise),
        legacy_absent=tuple(_absent(reader, body, what)),
    )


def _absent(reader: Reader, body: Any, what: str) -> list[tuple[tuple[str, ...], tuple[Any, ...]]]:
    if "legacy_absent" not in body:
        return []
    items = body["legacy_absent"]
    hint = 'e.g. legacy_absent: [error, {deleted: ["Y"]}]'
    if not isinstance(items, list):
        reader.add(
            value_mark(body, "legacy_absent"),
            f"{what}.legacy_absent",
            "expected a list of field paths or {field: [values]}",
            hint=hint,
        )
        return []
    out: list[tuple[tuple[str, ...], tuple[Any, ...]]] = []
    for i, item in enumerate(items):
        if isinstance(item, str) and item.strip():
            out.append((_split(item), ()))
            continue
        values = next(iter(item.values())) if isinstance(item, dict) and len(item) == 1 else None
        if isinstance(values, list) and values and isinstance(next(iter(item)), str):
            out.append((_split(next(iter(item))), tuple(values)))
            continue
        reader.add(
            value_mark(items, i),
            f"{what}.legacy_absent",
            f"expected a field path or {{field: [values]}}, got {item!r}",
            hint=hint,
        )
    return out


def legacy_absent(legacy: Any, rules: CompareRules) -> str | None:
    """The condition of `legacy_absent` a legacy answer meets (it means "not there"), as
    written, e.g. `deleted in ['Y']`; None when it meets none."""
    part = _root(legacy, rules.legacy_root)
    for path, values in rules.legacy_absent:
        value = _root(part, path)
        if value is _ABSENT or value is None:
            continue
        if not values:
            return ".".join(path)
        if any(type(value) is type(v) and value == v for v in values):
            return f"{'.'.join(path)} in {list(values)!r}"
    return None


def _paths(reader: Reader, body: Any, key: str, what: str) -> list[tuple[str, ...]]:
    if key not in body:
        return []
    items = body[key]
    if not isinstance(items, list):
        reader.add(
            value_mark(body, key),
            f"{what}.{key}",
            "expected a list of field paths",
            hint=f"e.g. {key}: [updated_at, lines.*.id]",
        )
        return []
    return [
        _split(text)
        for i in range(len(items))
        if (text := reader.string(items, i, f"{what}.{key}"))
    ]


def _matches(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    """Whether `pattern` names `path` or one of its parents (`*`: any one part)."""
    return len(path) >= len(pattern) and all(
        p == "*" or p == q for p, q in zip(pattern, path, strict=False)
    )


def flatten(value: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Leaf values by path (empty objects and lists are leaves, so they compare too)."""
    if isinstance(value, dict) and value:
        out: dict[tuple[str, ...], Any] = {}
        for key, item in value.items():
            out.update(flatten(item, (*prefix, str(key))))
        return out
    if isinstance(value, list) and value:
        out = {}
        for i, item in enumerate(value):
            out.update(flatten(item, (*prefix, str(i))))
        return out
    return {prefix: value}


def _root(value: Any, root: tuple[str, ...]) -> Any:
    for part in root:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _ABSENT
    return value


def _renamed(
    path: tuple[str, ...], rename: Mapping[tuple[str, ...], tuple[str, ...]]
) -> tuple[str, ...]:
    for old, new in rename.items():
        if path[: len(old)] == old:
            return (*new, *path[len(old) :])
    return path


def _number(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return Decimal(str(value)).normalize()
    if isinstance(value, str):
        try:
            return Decimal(value.strip().replace(",", "")).normalize()
        except InvalidOperation:
            return value
    return value


def _date(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip().replace("Z", "+00:00")
    try:
        if re.fullmatch(r"[0-9]{8}", text):
            return date(int(text[:4]), int(text[4:6]), int(text[6:])).isoformat()
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            return date.fromisoformat(text).isoformat()
        moment = datetime.fromisoformat(text)
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def normalise_value(value: Any, rules: tuple[str, ...]) -> Any:
    for rule in rules:
        if rule == "trim" and isinstance(value, str):
            value = value.strip()
        elif rule == "lower" and isinstance(value, str):
            value = value.casefold()
        elif rule == "empty_null" and value == "":
            value = None
        elif rule == "whitespace" and isinstance(value, str):
            value = fold_whitespace(value)
        elif rule == "mojibake" and isinstance(value, str):
            value = repair_mojibake(value)
        elif rule == "number":
            value = _number(value)
        elif rule == "date":
            value = _date(value)
        elif (found := _DECIMALS.match(rule)) is not None:
            number = _number(value)
            if isinstance(number, Decimal):
                value = number.quantize(Decimal(1).scaleb(-int(found.group(1))), ROUND_HALF_UP)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = Decimal(str(value)).normalize()  # 12 and 12.0 are one number in JSON
    return value


def _prepared(
    value: Any, rules: CompareRules, root: tuple[str, ...], legacy: bool
) -> dict[tuple[str, ...], Any]:
    part = _root(value, root)
    if part is _ABSENT:
        return {("<root>",): _ABSENT}
    out = {}
    for path, leaf in flatten(part).items():
        if legacy:
            path = _renamed(path, rules.rename)
        if any(_matches(p, path) for p in rules.ignore):
            continue
        if rules.only and not any(_matches(p, path) for p in rules.only):
            continue
        for pattern, listed in rules.normalise:
            if _matches(pattern, path):
                leaf = normalise_value(leaf, listed)
                break
        else:
            leaf = normalise_value(leaf, ())
        out[path] = leaf
    return out


def _shown(value: Any) -> Any:
    if value is _ABSENT:
        return None
    if isinstance(value, Decimal):
        return str(value)
    return value


def compare(legacy: Any, new: Any, rules: CompareRules) -> list[dict[str, Any]]:
    """The fields that differ once the rules are applied (empty: the answers agree), each
    `{"field", "legacy", "new"}` (values as normalised) with `"missing": "legacy"|"new"`
    when only one side has the field."""
    left = _prepared(legacy, rules, rules.legacy_root, True)
    right = _prepared(new, rules, rules.new_root, False)
    diffs: list[dict[str, Any]] = []
    for path in sorted(left.keys() | right.keys()):
        a, b = left.get(path, _ABSENT), right.get(path, _ABSENT)
        if a is not _ABSENT and b is not _ABSENT and type(a) is type(b) and a == b:
            continue
        if a in (None, _ABSENT) and b in (None, _ABSENT):
            continue  # an absent field is null: many APIs leave out null fields
        entry: dict[str, Any] = {"field": ".".join(path), "legacy": _shown(a), "new": _shown(b)}
        if a is _ABSENT or b is _ABSENT:
            entry["missing"] = "legacy" if a is _ABSENT else "new"
        diffs.append(entry)
    return diffs


__all__ = [
    "RULES",
    "CompareRules",
    "compare",
    "flatten",
    "legacy_absent",
    "normalise_value",
    "parse_rules",
]

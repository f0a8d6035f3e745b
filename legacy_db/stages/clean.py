"""clean: the legacy row (warts W1..W14) -> a clean row with domain field names.

Contract: one decoded item in, the same item out with `before`/`after` replaced by their
clean form (see `TABLES`: which column becomes which field through which rule, and what
happens with a value the rule cannot fix). Tables without an entry pass through unchanged.

Policies, declared per field:
* `reject`: an unfixable value in the NEW row (`after`) rejects the record (dead letter,
  the reason names every failing column);
* `absent`: the field is dropped and the column is listed in `item.extra["absent"]`.
An unfixable value in the OLD row (`before`) never rejects: the old value becomes unknown
(None) and is listed in `item.extra["before_unknown"]`. Otherwise a bad value once written
would dead-letter every later fix of it too.

Limits: a text field declares the width of its legacy column (`max_length`, characters:
VARCHAR(n)/CHAR(n) -> n, TEXT -> 65,535, the smaller TEXT of the two flavours); its rule
makes a longer clean value unfixable, like a control character (see `rules`). The domain
schemas state the same limits, and a unit test keeps the three (models, this table,
schemas) in step.

Timestamps: naive Europe/Berlin wall-clock (W7) -> UTC ISO 8601; integers are microseconds
from PostgreSQL and milliseconds from MySQL/MariaDB (option `timestamp_unit`: auto, us, ms).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, Literal, NamedTuple

from seam.changes import UNAVAILABLE
from seam.errors import ConfigError
from seam.keys import check_known_keys
from seam.legacy_db import rules
from seam.transforms.model import Item, Reject

Policy = Literal["reject", "absent"]
Rule = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class Field:
    """One clean field: made from `columns` by `rule`; `policy` when it cannot be fixed."""

    name: str
    columns: tuple[str, ...]
    rule: Rule
    policy: Policy = "reject"
    timestamp: bool = False  # the rule takes the timestamp unit as its last argument
    memo: bool = False  # remember results (costly rules on values that repeat)
    max_length: int | None = None  # the legacy column's width; the rule takes it


TABLES: Final[dict[str, tuple[Field, ...]]] = {
    "products": (
        Field("product_id", ("prod_id",), rules.clean_id),
        # sku and ean repeat in every change of a product, and their rules run regexes.
        Field("sku", ("sku",), rules.clean_sku, memo=True, max_length=32),
        Field("name", ("prod_name",), rules.clean_name, memo=True, max_length=200),
        Field("price", ("price_txt", "price_cents"), rules.price_of, memo=True),
        Field("category_id", ("cat_id",), rules.zero_is_absent),  # orphans (W10) kept
        Field("supplier_id", ("supp_id",), rules.zero_is_absent),
        Field("status", ("status_cd",), rules.clean_status),
        Field("deleted", ("is_deleted",), rules.clean_deleted_flag),
        Field("ean", ("ean",), rules.clean_ean, memo=True),
        Field("description", ("descr",), rules.clean_description, memo=True, max_length=65_535),
        Field("created_at", ("created_at",), rules.to_utc_iso, timestamp=True, memo=True),
        Field("updated_at", ("updated_at",), rules.to_utc_iso, timestamp=True, memo=True),
    ),
    "categories": (
        Field("category_id", ("cat_id",), rules.clean_id),
        Field("parent_id", ("parent_id",), rules.zero_is_absent),
        Field("name", ("cat_name",), rules.clean_name, max_length=100),
        Field("description", ("descr",), rules.clean_description, "absent", max_length=255),
        Field("created_at", ("created_at",), rules.to_utc_iso, "absent", timestamp=True),
    ),
    "suppliers": (
        Field("supplier_id", ("supp_id",), rules.clean_id),
        Field("name", ("supp_name",), rules.clean_name, max_length=120),
        Field("email", ("email",), rules.clean_email, "absent"),
        Field("phone", ("phone",), rules.optional_text, "absent"),
        Field("country", ("country",), rules.clean_country, "absent"),
        Field("created_at", ("created_at",), rules.to_utc_iso, "absent", timestamp=True),
    ),
}

# The fields every product row must have (the others may be None).
REQUIRED: Final[dict[str, tuple[str, ...]]] = {
    "products": ("product_id", "sku", "name", "status", "created_at"),
    "categories": ("category_id", "name"),
    "suppliers": ("supplier_id", "name"),
}

_UNITS: Final[dict[str, rules.TimestampUnit]] = {"us": "us", "ms": "ms"}


def timestamp_unit(connector: str | None, option: str) -> rules.TimestampUnit:
    if option != "auto":
        return _UNITS[option]
    return "us" if connector == "postgresql" else "ms"


# Rules are pure, and catalog values repeat a lot (timestamps, codes, price texts, names,
# and every unchanged column of an update's old row): results of the fields marked `memo`
# are remembered, one dict per field and timestamp unit. Only values of exactly str, int or
# None are keys: True == 1 == 1.0 == Decimal(1) in Python, but not for a rule, and these
# three types cannot collide with each other.
_MEMO_TYPES: Final = frozenset({str, int, type(None)})
_MEMO_LIMIT: Final = 50_000  # per field: cleared when full (a bound on memory, not an LRU)
# Longer texts are not remembered: 50,000 poison values of 200,000 characters would hold
# gigabytes, and a rule's cost on such a text is small beside its decoding.
_MEMO_MAX_CHARS: Final = 1_000


class _Step(NamedTuple):
    """One field of a table's plan, with everything the per-row loop needs at hand."""

    name: str
    column: str  # the first (usually only) column
    columns: tuple[str, ...] | None  # every column when there are several, else None
    rule: Rule  # takes the column values; the timestamp unit is already bound
    reject: bool  # policy == "reject"
    memo: dict[Any, Any] | None  # value(s) -> result or the Unfixable raised


_STEPS: dict[tuple[str, str], tuple[_Step, ...]] = {}


def _steps(table: str, unit: rules.TimestampUnit) -> tuple[_Step, ...]:
    """The plan of `table` for `unit`, built once: the loop in `clean_row` then does no
    per-field decisions that do not depend on the row."""
    found = _STEPS.get((table, unit))
    if found is None:
        found = _STEPS[(table, unit)] = tuple(
            _Step(
                spec.name,
                spec.columns[0],
                spec.columns if len(spec.columns) > 1 else None,
                _bound(spec, unit),
                spec.policy == "reject",
                {} if spec.memo else None,
            )
            for spec in TABLES[table]
        )
    return found


def _bound(spec: Field, unit: rules.TimestampUnit) -> Rule:
    """`spec.rule` with its declared arguments (timestamp unit, column width) bound."""
    bound: dict[str, Any] = {}
    if spec.timestamp:
        bound["unit"] = unit
    if spec.max_length is not None:
        bound["max_length"] = spec.max_length
    return partial(spec.rule, **bound) if bound else spec.rule


def _run(step: _Step, args: tuple[Any, ...]) -> Any:
    """The rule's result for `args`, or the Unfixable it raised (returned, not raised)."""
    try:
        return step.rule(*args)
    except rules.Unfixable as exc:
        return exc


def _remember(memo: dict[Any, Any], step: _Step, key: Any, args: tuple[Any, ...]) -> Any:
    """`_run`, its result kept in `memo` under `key` unless `key` holds a long text."""
    result = _run(step, args)
    if not any(type(v) is str and len(v) > _MEMO_MAX_CHARS for v in args):
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        memo[key] = result
    return result


_NAMES: Final = {table: tuple(f.name for f in fields) for table, fields in TABLES.items()}
# Per table: column -> the positions of the fields made from it.
_COLUMN_STEPS: Final = {
    table: {
        column: tuple(i for i, f in enumerate(fields) if column in f.columns)
        for column in {c for f in fields for c in f.columns}
    }
    for table, fields in TABLES.items()
}
_REQUIRED_COLUMNS: Final = {
    table: tuple((f.name, f.columns[0]) for f in fields if f.name in REQUIRED[table])
    for table, fields in TABLES.items()
}


def clean_row(
    table: str,
    row: Mapping[str, Any],
    unit: rules.TimestampUnit,
    *,
    strict: bool,
    like: tuple[frozenset[str] | set[str], Mapping[str, Any]] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The clean form of one row of `table`, and the problems met.

    strict=True: a `reject` field that cannot be fixed raises Reject (all failures named).
    strict=False (old rows): every unfixable value becomes None and is reported.
    like=(changed columns, clean): another version of the row, already cleaned; fields
    made from none of the changed columns are taken from it.
    """
    failures: list[str] = []
    problems: list[str] = []
    changed, other = like if like is not None else (None, None)
    steps = _steps(table, unit)
    todo: Iterable[_Step] = steps
    if other is not None and changed is not None and tuple(other) == _NAMES[table]:
        # The usual update: `other` is this table's clean row (same fields, same order), so
        # start from a copy of it and redo only the fields made from a changed column,
        # instead of testing every field.
        out = dict(other)
        affected: set[int] = set()
        for column in changed:
            affected.update(_COLUMN_STEPS[table].get(column, ()))
        todo = [steps[i] for i in sorted(affected)]
        other = None
    else:
        out = {}
    get = row.get
    unfixable = rules.Unfixable
    memo_types = _MEMO_TYPES
    for step in todo:
        name, column, columns, rule, reject, memo = step
        if (
            other is not None
            and changed is not None
            and name in other
            and column not in changed
            and (columns is None or changed.isdisjoint(columns))
        ):
            out[name] = other[name]
            continue
        key: Any
        if columns is None:
            # One column (all fields but the price): no argument tuple, no *args call.
            key = get(column)
            if memo is None:
                try:
                    result = rule(key)
                except unfixable as exc:
                    result = exc
            elif type(key) in memo_types:
                try:
                    result = memo[key]
                except KeyError:
                    result = _remember(memo, step, key, (key,))
            else:
                result = _run(step, (key,))
        else:
            args = key = tuple(get(c) for c in columns)
            if memo is not None and all(type(v) in memo_types for v in args):
                try:
                    result = memo[key]
                except KeyError:
                    result = _remember(memo, step, key, args)
            else:
                result = _run(step, args)
        if type(result) is unfixable:
            out[name] = None
            text = f"{'/'.join(columns or (column,))}: {result}"
            if strict and reject:
                failures.append(text)
            else:
                problems.append(text)
        else:
            out[name] = result
    if strict:
        for name, column in _REQUIRED_COLUMNS[table]:
            if out[name] is None and not any(f.startswith(column) for f in failures):
                failures.append(f"{column}: required, got NULL")
        if failures:
            raise Reject(f"{table}: " + "; ".join(failures))
    return out, problems


class CleanStage:
    name = "clean"

    def __init__(self, unit: str = "auto") -> None:
        self.unit = unit

    def process(self, item: Item) -> Iterable[Item]:
        change = item.change
        table = item.table
        if change is None or table not in TABLES:
            return (item,)
        unit = timestamp_unit(change.connector, self.unit)
        raw_before, raw_after = change.before, change.after
        # An unchanged TOASTed value (W: PostgreSQL) keeps its old value. (`in` tests
        # identity first, and no JSON value equals the sentinel: a quick scan in C.)
        if raw_after is not None and raw_before is not None and UNAVAILABLE in raw_after.values():
            missing = [k for k, v in raw_after.items() if v is UNAVAILABLE]
            raw_after = {**raw_after, **{k: raw_before.get(k) for k in missing}}
        if raw_after is not None:
            item.after, absent = clean_row(table, raw_after, unit, strict=True)
            if absent:
                item.extra["absent"] = absent
        if raw_before is not None:
            # Unchanged columns (most of an update) are taken from the new row's clean form,
            # but never an `absent`-defaulted one: the old row reports its own problems.
            changed = change.changed
            like = (
                (set(changed), item.after)
                if changed is not None and item.after is not None and "absent" not in item.extra
                else None
            )
            item.before, unknown = clean_row(table, raw_before, unit, strict=False, like=like)
            if unknown:
                item.extra["before_unknown"] = unknown
        return (item,)


def create(options: Mapping[str, Any]) -> CleanStage:
    check_known_keys(options, ("timestamp_unit",), "stage 'clean' options")
    unit = str(options.get("timestamp_unit", "auto"))
    if unit not in ("auto", "us", "ms"):
        raise ConfigError(
            f"stage 'clean': timestamp_unit must be auto, us or ms, got {unit!r}",
            hint="auto reads PostgreSQL timestamps as microseconds and MySQL/MariaDB as ms",
        )
    return CleanStage(unit)


__all__ = ["TABLES", "CleanStage", "Field", "clean_row", "create"]

"""Run a table's declared rule chains over a row: the clean row, or the reason it is refused.

A `TablePlan` is built once per table and connector flavour (a timestamp's unit depends on
the connector): per column its sources' chains of bound rules, the policy of each rule, and
a memo of results for columns whose rules are pure. `clean(row, strict=...)` then does no
per-row decisions that do not depend on the row.

Policies, as declared: `reject` in the NEW row (strict) refuses the record, naming every
failing column; `absent` makes the field None, `default` the column's default, both noted
as problems. In the OLD row (not strict) nothing refuses: an unfixable value is None (or the
column's default) and noted, because a bad value once written would otherwise dead-letter
every later fix of it too. `References` holds the tables that `lookup` rules read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any, Final, NamedTuple

from seam.changes import UNAVAILABLE, ChangeEvent, Op, Raw
from seam.streams.types import NOT_READ, duration_text
from seam.transforms.declared.model import ColumnDecl, Declaration, TableDecl
from seam.transforms.declared.rules import KINDS, Apply, Flavour, Policy, Unfixable, shown
from seam.transforms.model import Reject


def flavour_of(connector: str | None) -> Flavour:
    """The connector family that decides how Debezium encodes values."""
    if connector == "postgresql":
        return "postgresql"
    if connector in ("mysql", "mariadb"):
        return "mysql"
    return "other"


class Failed(NamedTuple):
    """A column whose value no rule could fix: the policy that applies and why."""

    policy: Policy
    reason: str


class _Rule(NamedTuple):
    kind: str
    apply: Apply
    takes_null: bool
    on_fail: Policy | None
    repair: Apply | None


class _Step(NamedTuple):
    column: ColumnDecl
    chains: tuple[tuple[str, tuple[_Rule, ...]], ...]  # (legacy column, rules) per source
    memo: dict[Any, Any] | None


# Values of exactly these types key a memo: True == 1 == 1.0 == Decimal(1) in Python, but
# not for a rule, and these three cannot collide with each other.
_MEMO_TYPES: Final = frozenset({str, int, type(None)})
_MEMO_LIMIT: Final = 50_000  # per column: cleared when full (a bound on memory, not an LRU)
_MEMO_MAX_CHARS: Final = 1_000  # longer texts are not remembered


def _value(row: Mapping[str, Any], column: str) -> Any:
    value = row.get(column)
    return None if value is UNAVAILABLE else value


class TablePlan:
    """One table's columns as bound rule chains, for one connector flavour."""

    def __init__(
        self, table: TableDecl, flavour: Flavour, lookup: Callable[[str, str], Apply]
    ) -> None:
        self.table = table
        self.names = table.field_names
        self.steps = tuple(self._step(c, flavour, lookup) for c in table.columns)
        self.required = tuple(c.name for c in table.columns if c.required)
        # Per legacy column: the positions of the fields made from it.
        self.by_column: dict[str, tuple[int, ...]] = {}
        for i, column in enumerate(table.columns):
            for name in column.columns:
                self.by_column[name] = (*self.by_column.get(name, ()), i)

    @staticmethod
    def _step(column: ColumnDecl, flavour: Flavour, lookup: Callable[[str, str], Apply]) -> _Step:
        chains = []
        pure = True
        for source in column.sources:
            rules = []
            for spec in source.rules:
                kind = KINDS[spec.kind]
                pure = pure and kind.pure
                if spec.kind == "lookup":
                    apply = lookup(str(spec.options["table"]), str(spec.options["field"]))
                else:
                    apply = kind.build(spec.options, flavour)
                repair = kind.repair(spec.options, flavour) if kind.repair else None
                rules.append(_Rule(spec.kind, apply, kind.takes_null, spec.on_fail, repair))
            chains.append((source.column, tuple(rules)))
        return _Step(column, tuple(chains), {} if pure else None)

    # ------------------------------------------------------------------------- one row

    def clean(
        self,
        row: Mapping[str, Any],
        *,
        strict: bool,
        like: tuple[Iterable[str], Mapping[str, Any]] | None = None,
    ) -> tuple[dict[str, Any], list[str]]:
        """The clean form of `row` and the problems met (see the module docstring).

        like=(changed legacy columns, clean row): another version of the row, already
        cleaned with no problem; fields made from none of the changed columns are taken
        from it (most of an update's old row)."""
        failures: list[str] = []
        problems: list[str] = []
        steps: Iterable[_Step] = self.steps
        if like is not None and tuple(like[1]) == self.names:
            out = dict(like[1])
            todo: set[int] = set()
            for name in like[0]:
                todo.update(self.by_column.get(name, ()))
            steps = [self.steps[i] for i in sorted(todo)]
        else:
            out = {}
        for step in steps:
            column = step.column
            result = self._result(step, row)
            if type(result) is Failed:
                text = f"{'/'.join(column.columns)}: {result.reason}"
                if result.policy == "reject" and strict:
                    failures.append(text)
                    out[column.name] = None
                    continue
                problems.append(text)
                result = column.default if result.policy == "default" else None
            elif result is None and column.default is not None:
                result = column.default
            out[column.name] = result
        if strict:
            for name in self.required:
                if out[name] is None and not any(
                    f.startswith(_columns(self, name)) for f in failures
                ):
                    failures.append(f"{_columns(self, name)}: required, got NULL")
            if failures:
                raise Reject(f"{self.table.name}: " + "; ".join(failures))
        return out, problems

    def _result(self, step: _Step, row: Mapping[str, Any]) -> Any:
        memo = step.memo
        if len(step.chains) == 1:
            value = _value(row, step.chains[0][0])
            if memo is None or type(value) not in _MEMO_TYPES:
                return _run(step, (value,))
            try:
                return memo[value]
            except KeyError:
                return _remember(memo, step, value, (value,))
        values = tuple(_value(row, c) for c, _rules in step.chains)
        if memo is None or not all(type(v) in _MEMO_TYPES for v in values):
            return _run(step, values)
        try:
            return memo[values]
        except KeyError:
            return _remember(memo, step, values, values)


def _columns(plan: TablePlan, name: str) -> str:
    column = plan.table.column(name)
    return "/".join(column.columns) if column is not None else name


def _remember(memo: dict[Any, Any], step: _Step, key: Any, values: tuple[Any, ...]) -> Any:
    result = _run(step, values)
    if not any(type(v) is str and len(v) > _MEMO_MAX_CHARS for v in values):
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        memo[key] = result
    return result


def _run(step: _Step, values: tuple[Any, ...]) -> Any:
    """The column's clean value from its sources' values, or `Failed`."""
    column = step.column
    results = []
    for (name, rules), value in zip(step.chains, values, strict=True):
        result = _chain(rules, value, column.on_fail)
        kind = type(result)
        if kind in _NOT_JSON:
            result = _as_json(result, column)
        if type(result) is Failed:
            return (
                Failed(result.policy, result.reason)
                if len(step.chains) == 1
                else Failed(result.policy, f"{name}: {result.reason}")
            )
        if result is not None and column.combine == "first":
            return result
        results.append((name, result, value))
    known = [(name, r, value) for name, r, value in results if r is not None]
    if not known:
        return None
    first_name, first, first_value = known[0]
    for name, other, value in known[1:]:
        if other != first:
            # The values as the legacy row holds them: what a person fixing it looks for.
            return Failed(
                column.on_fail,
                f"{name} {shown(value)} disagrees with {first_name} {shown(first_value)}",
            )
    return first


# What a typed decoder may hand on that JSON has no form for: a duration becomes its ISO 8601
# text; a value seam could not type is never passed on as if it were one.
_NOT_JSON: Final = frozenset({Raw, timedelta, type(NOT_READ)})


def _as_json(value: Any, column: ColumnDecl) -> Any:
    if type(value) is timedelta:
        return duration_text(value)
    why = value.why if type(value) is Raw else "its column is not read"
    return Failed(
        column.on_fail,
        f"a value seam could not type ({why}), never published as if it were one",
    )


def _chain(rules: tuple[_Rule, ...], value: Any, policy: Policy) -> Any:
    for rule in rules:
        if value is None and not rule.takes_null:
            continue
        try:
            value = rule.apply(value)
            continue
        except Unfixable as exc:
            reason = str(exc)
        except Exception as exc:  # a rule must not raise anything else: refuse, never crash
            return Failed("reject", f"{rule.kind}: {type(exc).__name__}: {exc}")
        chosen = rule.on_fail or policy
        if chosen == "repair" and rule.repair is not None:
            try:
                value = rule.repair(value)
                continue
            except Unfixable as exc:
                reason = str(exc)
            chosen = "reject"
        return Failed(chosen, f"{rule.kind}: {reason}")
    return value


# ---------------------------------------------------------------------------- references


class References:
    """The rows of the tables `lookup` rules read, by key, kept current from their changes.

    A row its own rules refuse is not used (a lookup of it is unresolved), nor counted as
    an error: it is the referenced table's pipeline that dead-letters it."""

    def __init__(self, declaration: Declaration) -> None:
        self.declaration = declaration
        self.rows: dict[str, dict[Any, dict[str, Any]]] = {
            name: {} for name in declaration.reference_tables()
        }
        self.plans: dict[tuple[str, Flavour], TablePlan] = {}
        self.ignored = 0  # changes that could not be used (counted, not fatal)

    def plan(self, table: str, flavour: Flavour) -> TablePlan:
        found = self.plans.get((table, flavour))
        if found is None:
            found = self.plans[(table, flavour)] = TablePlan(
                self.declaration.tables[table], flavour, self.lookup
            )
        return found

    def lookup(self, table: str, field: str) -> Apply:
        rows = self.rows.setdefault(table, {})

        def lookup(value: Any) -> Any:
            row = rows.get(value)
            name = None if row is None else row.get(field)
            return (
                {"id": value, field: name} if name is not None else {"id": value, "resolved": False}
            )

        return lookup

    def apply(self, change: ChangeEvent) -> None:
        table = change.table.name if change.table is not None else None
        rows = self.rows.get(table) if table is not None else None
        if rows is None or table is None:
            self.ignored += 1
            return
        plan = self.plan(table, flavour_of(change.connector))
        key_field = plan.table.key[0]
        if change.op in (Op.DELETE, Op.TOMBSTONE):
            clean, _problems = plan.clean(change.key or {}, strict=False)
            rows.pop(clean.get(key_field), None)
            return
        if change.after is None:
            self.ignored += 1
            return
        try:
            clean, _problems = plan.clean(change.after, strict=True)
        except Reject:
            self.ignored += 1
            return
        rows[clean[key_field]] = clean


__all__ = ["Failed", "References", "TablePlan", "flavour_of"]

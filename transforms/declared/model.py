"""What a declared pipeline declares: tables (column rule chains), the entity, its events.

These are plain, frozen values read from a pipeline file by `seam.transforms.declared.reading`
and executed by the built-in `clean` and `events` stages (and the compiled engine). The
transforms README's "Declared pipelines" shows a whole declaration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from seam.transforms.declared.rules import Policy

Combine = Literal["first", "agree"]
Trigger = Literal["created", "returned", "gone", "changed"]
TRIGGERS: tuple[Trigger, ...] = ("created", "returned", "gone", "changed")


@dataclass(frozen=True)
class RuleSpec:
    """One rule of a chain: its kind, options and own policy (None: the column's)."""

    kind: str
    options: Mapping[str, Any]
    on_fail: Policy | None = None
    where: str = ""  # file:line:column, for errors


@dataclass(frozen=True)
class Source:
    """A legacy column and the rules that clean its value."""

    column: str
    rules: tuple[RuleSpec, ...] = ()


@dataclass(frozen=True)
class ColumnDecl:
    """One clean field of a table, made from one or more legacy columns.

    Several sources: `first` takes the first that is known; `agree` also requires every
    other known one to equal it (two columns that hold the same fact, one newer)."""

    name: str
    sources: tuple[Source, ...]
    combine: Combine = "first"
    on_fail: Policy = "reject"
    default: Any = None
    required: bool = False
    where: str = ""

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(s.column for s in self.sources)


@dataclass(frozen=True)
class TableDecl:
    """A captured table: how each of its columns becomes a clean field."""

    name: str
    columns: tuple[ColumnDecl, ...]
    key: tuple[str, ...] = ()  # clean fields; lookups into this table go by them
    topic: str | None = None  # a reference table's change topic (None: derived)
    where: str = ""

    def column(self, name: str) -> ColumnDecl | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


@dataclass(frozen=True)
class GoneWhen:
    """A live row counts as gone when `field` is true (`values` None) or in `values`."""

    field: str
    reason: str
    values: tuple[Any, ...] | None = None

    def holds(self, row: Mapping[str, Any]) -> bool:
        value = row.get(self.field)
        return bool(value) if self.values is None else value in self.values


@dataclass(frozen=True)
class EntityDecl:
    name: str
    table: str
    key: tuple[str, ...]
    state: tuple[str, ...]  # the fields of the latest topic's value, in this order
    gone: tuple[GoneWhen, ...] = ()  # besides a hard delete (reason `deleted_reason`)
    deleted_reason: str = "deleted"
    where: str = ""

    def gone_reason(self, row: Mapping[str, Any] | None) -> str | None:
        """Why `row` counts as gone (None: it is live). No row: deleted."""
        if row is None:
            return self.deleted_reason
        for rule in self.gone:
            if rule.holds(row):
                return rule.reason
        return None


@dataclass(frozen=True)
class EventDecl:
    """A past-tense domain event and when a change yields it.

    created: a live row is created or read by a snapshot; returned: a gone row becomes live;
    gone: a live row is deleted or becomes gone; changed: a live row stays live and one of
    `fields` changed (and, with `when`, a field's new value is one of those listed).
    `data`: (name, expression) pairs; None: old_<field>, new_<field> for each of `fields`
    (changed) or nothing. Expressions: state, gone_reason, old.<field>, new.<field>,
    key.<field>, '=<literal text>'."""

    type: str
    on: Trigger
    fields: tuple[str, ...] = ()
    when: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    data: tuple[tuple[str, str], ...] | None = None
    description: str = ""
    where: str = ""


@dataclass(frozen=True)
class Declaration:
    """Everything a pipeline file (and the files it includes) declares."""

    tables: Mapping[str, TableDecl]
    entity: EntityDecl
    events: tuple[EventDecl, ...]
    source: str = "<pipeline>"

    @property
    def table(self) -> TableDecl:
        return self.tables[self.entity.table]

    def columns_read(self) -> dict[str, tuple[str, ...]]:
        """Per declared table, the legacy columns its rules read: typing only those keeps
        the cost of typed values to the columns a pipeline uses."""
        return {
            name: tuple(dict.fromkeys(c for column in table.columns for c in column.columns))
            for name, table in self.tables.items()
        }

    def reference_tables(self) -> tuple[str, ...]:
        """The tables the entity's table looks up, in the order they are first named."""
        found: dict[str, None] = {}
        for column in self.table.columns:
            for source in column.sources:
                for rule in source.rules:
                    if rule.kind == "lookup":
                        found[str(rule.options["table"])] = None
        return tuple(found)


__all__ = [
    "TRIGGERS",
    "ColumnDecl",
    "Declaration",
    "EntityDecl",
    "EventDecl",
    "GoneWhen",
    "RuleSpec",
    "Source",
    "TableDecl",
]

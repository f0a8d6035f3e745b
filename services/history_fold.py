"""An entity's state from its domain events alone: which event sets which field, and folds.

A declared pipeline (`seam.transforms.declared`) says what each event carries, so the state a
key had after any of its events follows from the events, read oldest first:

* `created` and `returned` events reset the state: a data expression `state` carries all of
  it (a state field left out of it is unknown to the source: null); without one, only the
  key fields and any `new.<field>` expressions are known, the rest is unknown;
* `gone` events end it (the key is not live; `gone_reason` in the data says why);
* `changed` events set their `fields`: from `new_<field>` (the default data), a
  `new.<field>` or `state` expression, or the one value `when` allows for the field; a field
  an event names but does not carry becomes unknown.

A state field is *tracked* when every change of it while the key is live yields an event
that carries its new value: a `changed` event names it with no `when`, or the `when` values
of the events naming it (with the gone values of `gone` conditions on it) cover every value
the field's rules allow. An untracked field (a timestamp no event names, say) keeps the value
of the last event that carried it, though the legacy row may have changed it since without an
event: as-of answers list such fields as `untracked`, and never present them as exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from seam.transforms.declared.derive import field_schema
from seam.transforms.declared.model import Declaration, EventDecl

Kind = Literal["state", "gone", "fields", "none"]
# How a `changed` event gives a field's new value: from a data entry, or a constant.
_Source = tuple[Literal["data", "state", "const"], Any]


@dataclass(frozen=True, slots=True)
class Effect:
    """What one event does to its key's state."""

    kind: Kind
    values: Mapping[str, Any]  # the fields it sets, with their values
    unknown: tuple[str, ...] = ()  # fields it changes without carrying their new value
    reason: str | None = None  # a gone event's reason, when its data carries it


@dataclass(frozen=True, slots=True)
class _Recipe:
    kind: Kind
    sources: tuple[tuple[str, _Source], ...]  # field -> where its new value is
    state_entry: str | None  # the data entry holding the whole state
    reason_entry: str | None
    unknown: tuple[str, ...]


_NONE: Final = Effect("none", {})


def _recipe(declaration: Declaration, event: EventDecl) -> _Recipe:
    state_fields = set(declaration.entity.state)
    data = dict(event.data) if event.data is not None else None
    state_entry = next((out for out, expr in (data or {}).items() if expr == "state"), None)
    reason_entry = next((out for out, expr in (data or {}).items() if expr == "gone_reason"), None)
    sources: dict[str, _Source] = {}
    for out, expression in (data or {}).items():
        scope, _dot, name = expression.partition(".")
        if scope == "new" and name in state_fields:
            sources[name] = ("data", out)
    if event.on == "gone":
        return _Recipe("gone", (), None, reason_entry, ())
    if event.on in ("created", "returned"):
        return _Recipe("state", tuple(sources.items()), state_entry, None, ())
    if data is None:
        for name in event.fields:
            sources[name] = ("data", f"new_{name}")
    for name in event.fields:
        allowed = event.when.get(name)
        if name not in sources and allowed is not None and len(allowed) == 1:
            sources[name] = ("const", allowed[0])
    unknown = tuple(
        n for n in event.fields if n not in sources and state_entry is None and n in state_fields
    )
    return _Recipe("fields", tuple(sources.items()), state_entry, None, unknown)


class Folding:
    """The fold of one declaration's events (see the module's docstring)."""

    def __init__(self, declaration: Declaration) -> None:
        self.declaration = declaration
        self.entity = declaration.entity
        self.key_fields = declaration.entity.key
        self.state_fields = declaration.entity.state
        self._recipes = {e.type: _recipe(declaration, e) for e in declaration.events}
        self._triggers = {e.type: e.on for e in declaration.events}
        self.tracked = frozenset(self._tracked())
        self.untracked = tuple(f for f in self.state_fields if f not in self.tracked)

    def trigger(self, event_type: str) -> str | None:
        """created, returned, gone or changed; None for a type the declaration lacks."""
        return self._triggers.get(event_type)

    def resets(self, event_type: str) -> bool:
        """True when the event replaces the whole state (a fold may start there)."""
        recipe = self._recipes.get(event_type)
        return recipe is not None and recipe.kind in ("state", "gone")

    def _tracked(self) -> Iterable[str]:
        entity = self.entity
        for name in self.state_fields:
            if name in entity.key:
                yield name  # a key never changes: a new key is another entity
                continue
            naming = [e for e in self.declaration.events if e.on == "changed" and name in e.fields]
            carried = [e for e in naming if name in dict(self._recipes[e.type].sources)]
            if any(not e.when for e in carried):
                yield name
                continue
            if (
                not naming
                or len(carried) != len(naming)
                or any(set(e.when) != {name} for e in naming)
            ):
                continue
            possible = self._values(name)
            if possible is None:
                continue
            covered = {v for e in naming for v in e.when[name]}
            for rule in entity.gone:
                if rule.field == name and rule.values is not None:
                    covered |= set(rule.values)
            if possible <= covered:
                yield name

    def _values(self, name: str) -> set[Any] | None:
        """Every value the field's rules allow (None among them unless it is required), or
        None when they do not say (any string, any number...)."""
        column = self.declaration.table.column(name)
        if column is None:
            return None
        schema = field_schema(column)
        values = schema.get("enum")
        if not isinstance(values, list):
            return None
        known = column.required or column.default is not None
        return set(values) | (set() if known else {None})

    def effect(self, event: Mapping[str, Any]) -> Effect:
        """What `event` (a domain event of this entity, as JSON data) does to the state."""
        recipe = self._recipes.get(str(event.get("event_type")))
        if recipe is None:
            return _NONE
        data = event.get("data")
        data = data if isinstance(data, Mapping) else {}
        if recipe.kind == "gone":
            reason = data.get(recipe.reason_entry) if recipe.reason_entry else None
            return Effect("gone", {}, (), reason if isinstance(reason, str) else None)
        values: dict[str, Any] = {k: event.get(k) for k in self.key_fields}
        unknown: list[str] = []
        if recipe.kind == "state" and recipe.state_entry is None:
            unknown.extend(f for f in self.state_fields if f not in self.key_fields)
        if recipe.state_entry is not None:
            state = data.get(recipe.state_entry)
            if isinstance(state, Mapping):
                values.update({f: state.get(f) for f in self.state_fields})
        for name, (where, what) in recipe.sources:
            if where == "const":
                values[name] = what
            elif what in data:
                values[name] = data[what]
                if name in unknown:
                    unknown.remove(name)
        unknown.extend(recipe.unknown)
        return Effect(recipe.kind, values, tuple(unknown))


@dataclass
class Folded:
    """A key's state after the events folded so far (`fields`: the entity's state fields)."""

    fields: tuple[str, ...] = ()
    live: bool | None = None  # None: no event yet (the key did not exist)
    state: dict[str, Any] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)
    set_by: dict[str, int] = field(default_factory=dict)  # field -> the index of its event
    gone_reason: str | None = None
    last: int | None = None  # the index of the last event applied

    def apply(self, effect: Effect, ref: int) -> dict[str, tuple[Any, Any]]:
        """Apply one event's effect; returns what changed: field -> (old, new)."""
        self.last = ref
        old = dict(self.state) if self.live else {}
        if effect.kind == "none":
            return {}
        if effect.kind == "gone":
            self.live, self.state, self.unknown, self.set_by = False, {}, set(), {}
            self.gone_reason = effect.reason
            return {name: (value, None) for name, value in old.items()}
        if effect.kind == "state":
            self.live, self.state, self.unknown, self.set_by = True, {}, set(), {}
            self.gone_reason = None
        elif not self.live:
            # A change of a key not seen live (its creation is older than the topic's first
            # record): what it carries is known, the rest is not.
            self.live, self.state, self.set_by = True, {}, {}
            self.unknown = set(self.fields) - set(effect.values)
        for name, value in effect.values.items():
            # A changed event that carries a value the field already had (a key field, the
            # unchanged one of two fields it names) did not set it: the earlier event did.
            same = name in self.state and _same(self.state[name], value)
            if effect.kind == "state" or not same or name not in self.set_by:
                self.set_by[name] = ref
            self.state[name] = value
            self.unknown.discard(name)
        for name in effect.unknown:
            self.state.pop(name, None)
            self.unknown.add(name)
            self.set_by[name] = ref
        changes: dict[str, tuple[Any, Any]] = {}
        for name in dict.fromkeys([*old, *self.state]):
            before, after = old.get(name), self.state.get(name)
            if not _same(before, after) or name in effect.unknown:
                changes[name] = (before, after)
        return changes


def _same(a: Any, b: Any) -> bool:
    return a == b and type(a) is type(b)


__all__ = ["Effect", "Folded", "Folding"]

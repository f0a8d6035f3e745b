"""A clean change of the entity's table -> its declared events and its new state.

An entity is *live* while its row exists and no `gone` condition holds (a soft-delete flag,
a status); the latest topic holds the live ones (a tombstone for any other):

  create / snapshot, live          -> `created` events
  create / snapshot, gone          -> no event (note), latest tombstone
  update, live -> gone             -> `gone` events (gone_reason: the condition's reason)
  update, gone -> live             -> `returned` events
  update, live -> live             -> each `changed` event whose fields changed (and whose
                                      `when` holds), in declared order; none: "no-op update"
  update, gone -> gone             -> no event (note)
  delete of a live or unknown row  -> `gone` events (gone_reason: deleted)
  tombstone, other tables          -> no event (note)

An update without its old row is refused: events are differences, and guessing them would
invent facts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from seam.changes import Op
from seam.transforms.declared.clean import References, TablePlan, flavour_of
from seam.transforms.declared.envelope import envelope, key_text
from seam.transforms.declared.model import Declaration, EventDecl
from seam.transforms.model import Item, Reject
from seam.transforms.provenance import provenance

Row = Mapping[str, Any]


def state_of(fields: tuple[str, ...], row: Row) -> dict[str, Any]:
    """The latest-topic value: the state fields of the clean row, unknown ones left out."""
    return {name: row[name] for name in fields if row.get(name) is not None}


class EntityPlan:
    def __init__(self, declaration: Declaration, references: References) -> None:
        self.declaration = declaration
        self.entity = declaration.entity
        self.table = declaration.entity.table
        self.references = references
        by_trigger: dict[str, list[EventDecl]] = {}
        for event in declaration.events:
            by_trigger.setdefault(event.on, []).append(event)
        self.created = tuple(by_trigger.get("created", ()))
        self.returned = tuple(by_trigger.get("returned", ()))
        self.gone = tuple(by_trigger.get("gone", ()))
        self.changed = tuple(by_trigger.get("changed", ()))
        key = set(self.entity.key)
        self.non_key = tuple(n for n in declaration.table.field_names if n not in key)

    def _key(self, item: Item) -> dict[str, Any]:
        for row in (item.after, item.before):
            if row is not None:
                values = {name: row.get(name) for name in self.entity.key}
                if all(v is not None for v in values.values()):
                    return values
        change = item.change
        if change is not None and change.key:
            plan: TablePlan = self.references.plan(self.table, flavour_of(change.connector))
            clean, _problems = plan.clean(change.key, strict=False)
            values = {name: clean.get(name) for name in self.entity.key}
            if all(v is not None for v in values.values()):
                return values
        raise Reject(f"{self.table}: no {'/'.join(self.entity.key)} in the row or the record key")

    def _unknown(self, row: Row) -> bool:
        """A row of which only the key is known (a delete under REPLICA IDENTITY DEFAULT)."""
        return all(row.get(name) is None for name in self.non_key)

    def _update(
        self, before: Row, after: Row
    ) -> tuple[list[tuple[EventDecl, str | None]], dict[str, Any] | None, str | None]:
        """The events an update of a row from `before` to `after` yields (each with its gone
        reason), the entity's new state (None: it is gone) and, with no event, why."""
        entity = self.entity
        todo: list[tuple[EventDecl, str | None]] = []
        note = None
        state = None
        was, now = entity.gone_reason(before), entity.gone_reason(after)
        if now is None:
            state = state_of(entity.state, after)
        if was is None and now is not None:
            todo.extend((e, now) for e in self.gone)
        elif now is None and was is not None:
            todo.extend((e, None) for e in self.returned)
        elif now is None and was is None:
            todo.extend((e, None) for e in self.changed if _changed(e, before, after))
            if not todo:
                note = "no-op update"
        else:
            note = f"update of a gone {entity.name}"
        return todo, state, note

    def update_events(
        self, before: Row, after: Row, key: Mapping[str, Any], provenance: Mapping[str, Any]
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None, str | None]:
        """The domain events of an entity changed from `before` to `after` (clean rows), as
        an update of its row yields them: (events, the new state, why there is none). A
        command of the new side derives its events here, as the transform does."""
        todo, state, note = self._update(before, after)
        prov = dict(provenance)
        events = [
            envelope(e.type, self.entity.name, key, _data(e, before, after, state, r, key), prov)
            for e, r in todo
        ]
        return events, state, None if events else note or "no event declared for this change"

    def process(self, item: Item) -> Iterable[Item]:
        change = item.change
        if change is None:  # decode's note (a heartbeat record, ...) stays
            item.note = item.note or "not decoded"
            return (item,)
        op = change.op
        if op is Op.TOMBSTONE:
            item.note = "tombstone"
            return (item,)
        if item.provenance is None:
            item.provenance = provenance(change)
        if item.table != self.table:
            item.note = f"table {item.table} has no domain events"
            return (item,)
        if op in (Op.TRUNCATE, Op.MESSAGE):
            item.note = f"{op.name.lower()} event"
            return (item,)
        entity = self.entity
        key = self._key(item)
        before, after = item.before, item.after
        todo: list[tuple[EventDecl, str | None]] = []
        state: dict[str, Any] | None = None
        if op in (Op.CREATE, Op.READ):
            if after is None:
                raise Reject(f"{self.table}: create without a row")
            reason = entity.gone_reason(after)
            if reason is None:
                state = state_of(entity.state, after)
                todo.extend((e, None) for e in self.created)
            else:
                item.note = f"created {entity.name} is gone ({reason})"
        elif op is Op.DELETE:
            if before is None or self._unknown(before) or entity.gone_reason(before) is None:
                todo.extend((e, entity.deleted_reason) for e in self.gone)
            else:
                item.note = f"delete of a gone {entity.name}"
        else:  # update
            if before is None:
                raise Reject(
                    f"{self.table}: update without the old row: cannot tell what changed "
                    "(set REPLICA IDENTITY FULL on the table: list it under "
                    "'replica_identity_full:' in the connector spec, run `seam connectors prepare`)"
                )
            if after is None:
                raise Reject(f"{self.table}: update without a new row")
            found, state, note = self._update(before, after)
            todo.extend(found)
            if note is not None:
                item.note = note
        item.latest_key = key_text(tuple(key.values()))
        item.state = state
        if not todo:
            if item.note is None:
                item.note = "no event declared for this change"
            return (item,)
        prov = item.provenance or {}
        out = []
        for event, reason in todo:
            data = _data(event, before, after, state, reason, key)
            out.append(
                Item(
                    item.raw,
                    item.change,
                    item.table,
                    before,
                    after,
                    prov,
                    envelope(event.type, entity.name, key, data, prov),
                    item.latest_key,
                    state,
                    None,
                    item.extra,
                )
            )
        return out


def _changed(event: EventDecl, before: Row, after: Row) -> bool:
    if not any(before.get(f) != after.get(f) for f in event.fields):
        return False
    return all(after.get(f) in values for f, values in event.when.items())


def _data(
    event: EventDecl,
    before: Row | None,
    after: Row | None,
    state: dict[str, Any] | None,
    reason: str | None,
    key: Mapping[str, Any],
) -> dict[str, Any]:
    if event.data is None:
        if event.on != "changed":
            return {}
        data: dict[str, Any] = {}
        for name in event.fields:
            data[f"old_{name}"] = before.get(name) if before is not None else None
            data[f"new_{name}"] = after.get(name) if after is not None else None
        return data
    return {out: _value(expr, before, after, state, reason, key) for out, expr in event.data}


def _value(
    expression: str,
    before: Row | None,
    after: Row | None,
    state: dict[str, Any] | None,
    reason: str | None,
    key: Mapping[str, Any],
) -> Any:
    if expression == "state":
        return state
    if expression == "gone_reason":
        return reason
    if expression.startswith("="):
        return expression[1:]
    scope, _dot, name = expression.partition(".")
    if scope == "key":
        return key.get(name)
    row = before if scope == "old" else after
    return row.get(name) if row is not None else None


__all__ = ["EntityPlan", "state_of"]

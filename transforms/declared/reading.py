"""Read a declaration (`tables`, `entity`, `events`, `include`) from a pipeline file.

Every problem is reported at once, at file:line:column with a fix; an unknown name (a rule
kind, a column, a field, a table, an option) names the closest valid one. Files named by
`include:` (relative to the file that names them) may hold `tables`, `entity` and `events`
too: a team keeps the rules of a table shared by several pipelines in one file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from seam.errors import ConfigError
from seam.keys import closest
from seam.transforms.declared.model import (
    TRIGGERS,
    ColumnDecl,
    Declaration,
    EntityDecl,
    EventDecl,
    GoneWhen,
    RuleSpec,
    Source,
    TableDecl,
)
from seam.transforms.declared.rules import KINDS, POLICIES, check_options
from seam.yamlfile import (
    Mark,
    Problem,
    Reader,
    key_mark,
    kind_of,
    load_documents,
    mark_of,
    plain,
    value_mark,
)

SECTIONS: Final = ("include", "tables", "entity", "events")
_INCLUDED: Final = ("tables", "entity", "events", "include")
_TABLE: Final = ("columns", "key", "topic")
_COLUMN: Final = ("from", "rules", "sources", "combine", "on_fail", "default", "required")
_SOURCE: Final = ("from", "rules")
_ENTITY: Final = ("name", "table", "key", "state", "gone", "deleted_reason")
_GONE: Final = ("field", "in", "reason")
_EVENT: Final = ("on", "fields", "when", "data", "description")
_EXPRESSIONS: Final = "state, gone_reason, old.<field>, new.<field>, key.<field>, '=<text>'"
_RULE_HINT: Final = "rule kinds: " + ", ".join(KINDS)


def declares(top: Mapping[str, Any]) -> bool:
    """Whether a pipeline file's top level declares tables (or includes files that may)."""
    return any(key in top for key in SECTIONS)


def read_declaration(
    top: Mapping[str, Any], reader: Reader, folder: Path | None
) -> Declaration | None:
    """The declaration of a pipeline file's top level and the files it includes (problems
    noted in `reader`, or raised for an included file; None when it cannot be built)."""
    parts: list[tuple[Mapping[str, Any], _DeclReader]] = []
    first = _DeclReader(reader)
    _collect(top, first, folder, parts, seen=set())
    tables: dict[str, TableDecl] = {}
    entity: EntityDecl | None = None
    events: list[EventDecl] = []
    for data, part in parts:
        for name, table in part.tables(data).items():
            if name in tables:
                part.add(
                    key_mark(data.get("tables"), name),
                    f"tables.{name}",
                    f"declared twice (first at {tables[name].where})",
                    hint="keep one declaration of each table",
                )
            tables[name] = table
        if "entity" in data:
            if entity is not None:
                part.add(
                    key_mark(data, "entity"),
                    "entity",
                    f"declared twice (first at {entity.where})",
                    hint="a pipeline has one entity: keep one 'entity:'",
                )
            entity = part.entity(data)
        if "events" in data:
            if events:
                part.add(
                    key_mark(data, "events"),
                    "events",
                    f"declared twice (first at {events[0].where})",
                    hint="keep one 'events:' section",
                )
            events = part.events(data)
    for _data, part in parts[1:]:
        part.problems.check()
    if entity is None:
        first.add(
            mark_of(top),
            "entity",
            "missing: the pipeline declares tables but no entity",
            hint="add 'entity: {name: <entity>, table: <table>, key: [<field>], state: [...]}'",
        )
        return None
    declaration = Declaration(tables, entity, tuple(events), reader.problems.source)
    _cross_check(declaration, first)
    return declaration


def _collect(
    data: Mapping[str, Any],
    part: _DeclReader,
    folder: Path | None,
    parts: list[tuple[Mapping[str, Any], _DeclReader]],
    seen: set[Path],
) -> None:
    parts.append((data, part))
    raw = data.get("include")
    if raw is None:
        return
    names = [raw] if isinstance(raw, str) else raw
    if not isinstance(names, list):
        part.add(
            value_mark(data, "include"),
            "include",
            f"expected a list of files, got {kind_of(raw)}",
            hint="write 'include: [tables/orders.yaml, ...]' (relative to this file)",
        )
        return
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            part.add(
                value_mark(names, i),
                f"include[{i}]",
                f"expected a file name, got {kind_of(name)}",
                hint="write 'include: [tables/orders.yaml, ...]' (relative to this file)",
            )
            continue
        path = Path(name).expanduser()
        path = path if path.is_absolute() or folder is None else folder / path
        resolved = path.resolve()
        if resolved in seen:
            part.add(
                value_mark(names, i),
                f"include[{i}]",
                f"{name} is included twice (or includes itself)",
                hint="include each file once, and never a file that includes this one",
            )
            continue
        seen.add(resolved)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            part.add(
                value_mark(names, i),
                f"include[{i}]",
                f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}",
                hint="name a YAML file relative to this file",
            )
            continue
        docs = [d for d in load_documents(text, str(path)) if d is not None]
        included = _DeclReader(Reader(str(path)))
        if len(docs) != 1 or not isinstance(docs[0], Mapping):
            raise ConfigError(
                f"{path}: expected one YAML mapping of {', '.join(_INCLUDED)}",
                hint="an included file holds 'tables:' (and maybe 'entity:', 'events:')",
            )
        included.keys(docs[0], _INCLUDED, "")
        _collect(docs[0], included, path.parent, parts, seen)


class _DeclReader(Reader):
    """Reads the declaration sections of one file."""

    def __init__(self, reader: Reader) -> None:
        self.problems = reader.problems

    def where(self, mark: Any) -> str:
        return self.problems.where(mark)

    def names(self, parent: Any, key: str, what: str) -> tuple[str, ...]:
        """A list of names (or one name) under `key`."""
        raw = parent.get(key)
        if raw is None:
            return ()
        if isinstance(raw, str):
            return (raw.strip(),)
        if not isinstance(raw, list) or not raw:
            self.add(value_mark(parent, key), what, f"expected a list of names, got {kind_of(raw)}")
            return ()
        return tuple(s for i in range(len(raw)) if (s := self.string(raw, i, f"{what}[{i}]")))

    # tables ---------------------------------------------------------------------------

    def tables(self, data: Mapping[str, Any]) -> dict[str, TableDecl]:
        raw = data.get("tables")
        if raw is None:
            return {}
        tables = self.mapping(raw, value_mark(data, "tables"), "tables")
        if tables is None:
            return {}
        found = {}
        for name in tables:
            table = self.table(tables, str(name))
            if table is not None:
                found[str(name)] = table
        return found

    def table(self, tables: Mapping[str, Any], name: str) -> TableDecl | None:
        what = f"tables.{name}"
        data = self.mapping(tables[name], value_mark(tables, name), what)
        if data is None:
            return None
        meant = self.keys(data, _TABLE, what)
        if self.missing(
            data, "columns", what, "add 'columns:' with one line per clean field", meant
        ):
            return None
        columns_data = self.mapping(data["columns"], value_mark(data, "columns"), f"{what}.columns")
        if columns_data is None:
            return None
        columns = tuple(
            column
            for column_name in columns_data
            if (column := self.column(columns_data, str(column_name), f"{what}.columns"))
            is not None
        )
        key = self.names(data, "key", f"{what}.key")
        topic = self.string(data, "topic", f"{what}.topic") if "topic" in data else None
        return TableDecl(name, columns, key, topic or None, self.where(key_mark(tables, name)))

    def column(self, columns: Mapping[str, Any], name: str, what: str) -> ColumnDecl | None:
        what = f"{what}.{name}"
        where = self.where(key_mark(columns, name))
        raw = columns[name]
        if raw is None:  # `name:` alone: the legacy column of the same name, as it is
            return ColumnDecl(name, (Source(name),), where=where)
        if isinstance(raw, str):  # `name: legacy_column`
            return ColumnDecl(name, (Source(raw.strip()),), where=where)
        data = self.mapping(
            raw,
            value_mark(columns, name),
            what,
            hint="write 'from: <legacy column>' and 'rules: [...]'",
        )
        if data is None:
            return None
        self.keys(data, _COLUMN, what)
        on_fail = data.get("on_fail", "reject")
        if on_fail not in POLICIES or on_fail == "repair":
            self.add(
                value_mark(data, "on_fail"),
                f"{what}.on_fail",
                f"expected reject, absent or default, got {kind_of(on_fail)}",
                hint="reject: dead letter; absent: the field is unknown; default: its 'default:' "
                "(repair is a rule's own policy, for rules that can repair)",
            )
            on_fail = "reject"
        if on_fail == "default" and "default" not in data:
            self.add(
                value_mark(data, "on_fail"),
                f"{what}.on_fail",
                "'default' needs the column's 'default:' value",
                hint="add 'default: <value>' to the column",
            )
        if "sources" in data:
            if "from" in data or "rules" in data:
                self.add(
                    key_mark(data, "sources"),
                    what,
                    "'sources' replaces 'from' and 'rules'",
                    hint="give each source its own 'from' and 'rules'",
                )
            sources = self.sources(data, what)
        else:
            column = self.string(data, "from", f"{what}.from") if "from" in data else name
            sources = (Source(column, self.rules(data, what)),)
        combine = data.get("combine", "first")
        if combine not in ("first", "agree"):
            self.add(
                value_mark(data, "combine"),
                f"{what}.combine",
                f"expected first or agree, got {kind_of(combine)}",
                hint="first: the first known source wins; agree: known sources must be equal",
            )
            combine = "first"
        required = data.get("required", False)
        if type(required) is not bool:
            self.add(
                value_mark(data, "required"),
                f"{what}.required",
                f"expected true or false, got {kind_of(required)}",
            )
            required = False
        return ColumnDecl(
            name, sources, combine, on_fail, plain(data.get("default")), required, where
        )

    def sources(self, data: Mapping[str, Any], what: str) -> tuple[Source, ...]:
        raw = data["sources"]
        if not isinstance(raw, list) or len(raw) < 2:
            self.add(
                value_mark(data, "sources"),
                f"{what}.sources",
                f"expected a list of two or more sources, got {kind_of(raw)}",
                hint="write '- {from: <column>, rules: [...]}' per source",
            )
            return ()
        found = []
        for i, entry in enumerate(raw):
            item = self.mapping(entry, value_mark(raw, i), f"{what}.sources[{i}]")
            if item is None:
                continue
            meant = self.keys(item, _SOURCE, f"{what}.sources[{i}]")
            if self.missing(
                item, "from", f"{what}.sources[{i}]", "add 'from: <legacy column>'", meant
            ):
                continue
            found.append(
                Source(
                    self.string(item, "from", f"{what}.sources[{i}].from"),
                    self.rules(item, f"{what}.sources[{i}]"),
                )
            )
        return tuple(found)

    def rules(self, data: Mapping[str, Any], what: str) -> tuple[RuleSpec, ...]:
        raw = data.get("rules")
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.add(
                value_mark(data, "rules"),
                f"{what}.rules",
                f"expected a list of rules, got {kind_of(raw)}",
                hint="write 'rules: [trim, {max_length: 200}]' or one '- <rule>' line each",
            )
            return ()
        return tuple(
            rule
            for i in range(len(raw))
            if (rule := self.rule(raw, i, f"{what}.rules[{i}]")) is not None
        )

    def rule(self, rules: list[Any], i: int, what: str) -> RuleSpec | None:
        entry = rules[i]
        mark = value_mark(rules, i)
        if isinstance(entry, str):
            kind_name, options = entry.strip(), {}
        elif isinstance(entry, Mapping) and len(entry) == 1:
            kind_name = str(next(iter(entry)))
            options = entry[kind_name]
        else:
            self.add(
                mark,
                what,
                f"expected a rule name or '<rule>: <options>', got {kind_of(entry)}",
                hint="one rule per list entry, e.g. '- trim' or '- max_length: 200'",
            )
            return None
        kind = KINDS.get(kind_name)
        if kind is None:
            guess = closest(kind_name, KINDS)
            self.add(
                mark,
                what,
                f"unknown rule '{kind_name}'" + (f" (did you mean '{guess}'?)" if guess else ""),
                hint=_RULE_HINT,
            )
            return None
        if isinstance(options, Mapping) and not (
            kind.name == "codes"
            and "map" not in options
            and not set(options) & {"unmapped", "on_fail"}
        ):
            options = dict(plain(options))
        elif options is None or options == {}:
            options = {}
        elif kind.options:  # the shorthand: the first option's value
            options = {kind.options[0]: plain(options)}
        else:
            self.add(
                mark, what, f"rule '{kind.name}' takes no options", hint=f"write '- {kind.name}'"
            )
            return None
        if kind.name == "codes" and "map" not in options:
            options = {"map": options}
        on_fail = options.pop("on_fail", None)
        rule_mark = key_mark(entry, kind_name) if isinstance(entry, Mapping) else mark
        if on_fail is not None and (
            on_fail not in POLICIES or (on_fail == "repair" and kind.repair is None)
        ):
            repairable = ", ".join(k.name for k in KINDS.values() if k.repair is not None)
            self.add(
                rule_mark,
                f"{what}.on_fail",
                f"rule '{kind.name}' cannot use on_fail {on_fail!r}",
                hint=f"reject, absent or default; repair only for {repairable}",
            )
            on_fail = None
        for option in options:
            if option not in kind.options:
                guess = closest(option, kind.options)
                self.add(
                    rule_mark,
                    what,
                    f"rule '{kind.name}' has no option '{option}'"
                    + (f" (did you mean '{guess}'?)" if guess else ""),
                    hint=f"its options: {', '.join(kind.options) or 'none'}",
                )
        for _option, message, fix in check_options(kind, options):
            self.add(rule_mark, what, message, hint=fix)
        return RuleSpec(kind.name, options, on_fail, self.where(rule_mark))

    # entity and events ----------------------------------------------------------------

    def entity(self, data: Mapping[str, Any]) -> EntityDecl | None:
        entity = self.mapping(data["entity"], value_mark(data, "entity"), "entity")
        if entity is None:
            return None
        meant = self.keys(entity, _ENTITY, "entity")
        for key, hint in (
            ("name", "add 'name: <entity>' (e.g. customer): events carry it"),
            ("table", "add 'table: <declared table>' whose rows are the entity"),
            ("key", "add 'key: [<field>, ...]': the fields that identify one entity"),
        ):
            self.missing(entity, key, "entity", hint, meant)
        gone = []
        raw_gone = entity.get("gone") or []
        if not isinstance(raw_gone, list):
            self.add(
                value_mark(entity, "gone"),
                "entity.gone",
                f"expected a list, got {kind_of(raw_gone)}",
            )
            raw_gone = []
        for i, entry in enumerate(raw_gone):
            rule = self.mapping(entry, value_mark(raw_gone, i), f"entity.gone[{i}]")
            if rule is None:
                continue
            what = f"entity.gone[{i}]"
            meant = self.keys(rule, _GONE, what)
            if self.missing(rule, "field", what, "add 'field: <clean field>'", meant):
                continue
            values = rule.get("in")
            if values is not None and not isinstance(values, list):
                values = [values]
            field_name = self.string(rule, "field", f"{what}.field")
            reason = (
                self.string(rule, "reason", f"{what}.reason") if "reason" in rule else field_name
            )
            gone.append(
                GoneWhen(field_name, reason, tuple(plain(values)) if values is not None else None)
            )
        return EntityDecl(
            name=self.string(entity, "name", "entity.name"),
            table=self.string(entity, "table", "entity.table"),
            key=self.names(entity, "key", "entity.key"),
            state=self.names(entity, "state", "entity.state"),
            gone=tuple(gone),
            deleted_reason=self.string(entity, "deleted_reason", "entity.deleted_reason")
            if "deleted_reason" in entity
            else "deleted",
            where=self.where(key_mark(data, "entity")),
        )

    def events(self, data: Mapping[str, Any]) -> list[EventDecl]:
        events = self.mapping(data["events"], value_mark(data, "events"), "events")
        if events is None:
            return []
        found = []
        for name in events:
            what = f"events.{name}"
            event = self.mapping(events[name], value_mark(events, name), what)
            if event is None:
                continue
            meant = self.keys(event, _EVENT, what)
            if self.missing(event, "on", what, f"add 'on: <{' | '.join(TRIGGERS)}>'", meant):
                continue
            on = event["on"]
            if on not in TRIGGERS:
                guess = closest(str(on), TRIGGERS)
                self.add(
                    value_mark(event, "on"),
                    f"{what}.on",
                    f"unknown trigger {kind_of(on)}"
                    + (f" (did you mean '{guess}'?)" if guess else ""),
                    hint=f"triggers: {', '.join(TRIGGERS)}",
                )
                continue
            when: dict[str, tuple[Any, ...]] = {}
            raw_when = event.get("when") or {}
            if self.mapping(raw_when, value_mark(event, "when"), f"{what}.when") is not None:
                for field_name, values in raw_when.items():
                    values = plain(values)
                    when[str(field_name)] = tuple(values) if isinstance(values, list) else (values,)
            data_pairs = None
            if "data" in event:
                raw_data = self.mapping(event["data"], value_mark(event, "data"), f"{what}.data")
                if raw_data is not None:
                    data_pairs = tuple((str(k), str(v)) for k, v in raw_data.items())
            fields = self.names(event, "fields", f"{what}.fields")
            if on == "changed" and not fields:
                self.add(
                    key_mark(events, name),
                    what,
                    "a 'changed' event needs 'fields': the fields whose change it reports",
                    hint="add 'fields: [<field>, ...]'",
                )
            description = (
                self.string(event, "description", f"{what}.description")
                if "description" in event
                else ""
            )
            found.append(
                EventDecl(
                    str(name),
                    on,
                    fields,
                    when,
                    data_pairs,
                    description,
                    self.where(key_mark(events, name)),
                )
            )
        return found


def _cross_check(declaration: Declaration, reader: _DeclReader) -> None:
    """Names that must refer to something declared: tables, fields, lookups, expressions."""
    tables = declaration.tables
    entity = declaration.entity

    def unknown(
        kind: str, name: str, valid: tuple[str, ...] | list[str], where: str, what: str
    ) -> None:
        guess = closest(name, valid)
        reader.problems.found.append(
            _problem(
                reader,
                where,
                f"{what}: unknown {kind} '{name}'"
                + (f" (did you mean '{guess}'?)" if guess else ""),
                f"{kind}s declared: {', '.join(valid) or 'none'}",
            )
        )

    for table in tables.values():
        for key in table.key:
            if key not in table.field_names:
                unknown("field", key, table.field_names, table.where, f"tables.{table.name}.key")
        for column in table.columns:
            for source in column.sources:
                for rule in source.rules:
                    if rule.kind != "lookup":
                        continue
                    target = tables.get(str(rule.options.get("table")))
                    if target is None:
                        unknown(
                            "table",
                            str(rule.options.get("table")),
                            list(tables),
                            rule.where,
                            "lookup",
                        )
                    elif rule.options.get("field") not in target.field_names:
                        unknown(
                            "field",
                            str(rule.options.get("field")),
                            target.field_names,
                            rule.where,
                            "lookup",
                        )
                    elif len(target.key) != 1:
                        reader.problems.found.append(
                            _problem(
                                reader,
                                rule.where,
                                f"lookup: table '{target.name}' needs a one-field 'key:' to be looked up",
                                f"add 'key: [<its id field>]' to tables.{target.name}",
                            )
                        )
    entity_table = tables.get(entity.table)
    if entity_table is None:
        if entity.table:
            unknown("table", entity.table, list(tables), entity.where, "entity.table")
        return
    fields = entity_table.field_names
    for what, names in (("entity.key", entity.key), ("entity.state", entity.state)):
        for name in names:
            if name not in fields:
                unknown("field", name, fields, entity.where, what)
    for gone in entity.gone:
        if gone.field not in fields:
            unknown("field", gone.field, fields, entity.where, "entity.gone")
    seen: set[str] = set()
    for event in declaration.events:
        if event.type in seen:
            reader.problems.found.append(
                _problem(reader, event.where, f"events.{event.type}: declared twice", None)
            )
        seen.add(event.type)
        for name in (*event.fields, *event.when):
            if name not in fields:
                unknown("field", name, fields, event.where, f"events.{event.type}")
        for out, expression in event.data or ():
            problem = expression_problem(expression, fields, entity.key)
            if problem is not None:
                reader.problems.found.append(
                    _problem(
                        reader,
                        event.where,
                        f"events.{event.type}.data.{out}: {problem}",
                        f"expressions: {_EXPRESSIONS}",
                    )
                )


def expression_problem(
    expression: str, fields: tuple[str, ...], key: tuple[str, ...]
) -> str | None:
    """What is wrong with an event data expression (None: nothing)."""
    if expression in ("state", "gone_reason") or expression.startswith("="):
        return None
    scope, dot, name = expression.partition(".")
    if not dot or scope not in ("old", "new", "key"):
        return f"unknown expression '{expression}'"
    valid = key if scope == "key" else fields
    if name not in valid:
        guess = closest(name, valid)
        return f"unknown field '{name}' in '{expression}'" + (
            f" (did you mean '{scope}.{guess}'?)" if guess else ""
        )
    return None


def _problem(reader: _DeclReader, where: str, message: str, hint: str | None) -> Problem:
    """A problem found at `where` (file:line:column), which may be in an included file."""
    source, _sep, position = where.partition(f"{reader.problems.source}:")
    line, _colon, column = position.partition(":")
    if not source and line.isdigit() and column.isdigit():
        return Problem(Mark(int(line), int(column)), message, hint)
    return Problem(None, f"{where}: {message}", hint)


__all__ = ["SECTIONS", "declares", "expression_problem", "read_declaration"]

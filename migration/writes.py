"""The writes file: a capability's writes on the new side, and how the legacy database keeps up.

When a capability's writes move to a new service, the service takes the commands (it
publishes their domain events to the pipeline's history topic, `seam.services.commands`)
and a seam writer applies each of those events to the legacy database with declared SQL
(`seam.migration.writer`), so the capabilities still on legacy see them:

    name: orders-writes               # the writer: its events' `seam-origin` header, its
                                      # offsets row, its ledger entries
    pipeline: ../pipelines/orders.yaml  # the declared pipeline (relative to this file): the
                                      # entity, its events, schemas and history topic, and
                                      # own_writes (loop prevention: the writer needs it)
    database: legacy                  # the legacy database (a [databases] name or a URL);
                                      # `seam migrate writer --database` overrides it
    commands:                         # served by `seam serve` of a service file that
      rename:                         #   names this file (`writes: ...`)
        request: POST /order/{order_no}/title   # {key field} for each entity key field
        sets: [title]                 # the body's state fields: {"title": "..."}
    apply:                            # per event type the commands yield: legacy SQL
      OrderRetitled:
        params:                       # :name in the SQL <- a path in the event, or the
          no: order_no                #   wall-clock time of a time field in a zone
          title: data.new_title       #   ({local_time: occurred_at, zone: Europe/Berlin})
        sql:                          # one transaction; the first statement must find the
          - UPDATE orders SET title = :title WHERE order_no = :no   # row (else rejected)

A command sets state fields of one live entity from its body; the events it yields are the
ones the pipeline's declaration derives for that change (the transform's own code), so every
event a command can yield must have its SQL here: a missing one is an error when the file is
read. Every problem is reported at once at file:line:column.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from seam.errors import ConfigError
from seam.keys import closest
from seam.transforms.declared.model import Declaration, EventDecl
from seam.transforms.pipeline_file import PipelineSpec, load_pipeline
from seam.yamlfile import Reader, kind_of, load_one_document, mark_of, value_mark

ORIGIN_HEADER: Final = "seam-origin"  # names the writer on each event a command published
COMMAND_CONNECTOR: Final = "seam-command"  # provenance.connector of a command's event
METHODS: Final = ("POST", "PUT", "PATCH")
_TOP: Final = ("name", "pipeline", "database", "commands", "apply")
_COMMAND: Final = ("request", "sets")
_APPLY: Final = ("params", "sql")
_LOCAL_TIME: Final = ("local_time", "zone")
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_PARAM: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SEGMENT: Final = re.compile(r"\{([^{}/]+)\}")
_ENVELOPE: Final = ("event_id", "event_type", "entity", "occurred_at", "schema_version")
_WRITE: Final = (
    "write 'name:', 'pipeline:', 'commands:' and 'apply:'; see seam.migration.writes or "
    "legacy_db/migration/writes.yaml for a whole writes file"
)


@dataclass(frozen=True)
class Command:
    """One write the new side takes: METHOD path (with the entity key in it) -> fields set."""

    name: str
    method: str
    path: str  # e.g. /order/{order_no}/title: each entity key field once
    sets: tuple[str, ...]
    events: tuple[str, ...]  # the event types it may yield


@dataclass(frozen=True)
class LocalTime:
    """A parameter: the wall-clock time (whole seconds, no zone) of an event's time field in
    `zone`, as a legacy application that writes local times would have written it."""

    path: str
    zone: str

    def value(self, event: Mapping[str, Any]) -> dt.datetime | None:
        text = event_value(event, self.path)
        if text is None:
            return None
        moment = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
        local = moment.astimezone(ZoneInfo(self.zone))
        return local.replace(tzinfo=None, microsecond=0)


Param = str | LocalTime  # a dotted path in the event, or a local time


@dataclass(frozen=True)
class Apply:
    """The legacy SQL of one event type: statements run in one transaction, in order."""

    event_type: str
    params: Mapping[str, Param]
    sql: tuple[str, ...]

    def values(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The SQL parameters of `event` (KeyError naming the path an event lacks)."""
        out: dict[str, Any] = {}
        for name, param in self.params.items():
            if isinstance(param, LocalTime):
                out[name] = param.value(event)
            else:
                out[name] = event_value(event, param, strict=True)
        return out


@dataclass(frozen=True)
class WritesSpec:
    name: str
    pipeline: PipelineSpec
    pipeline_path: Path
    database: str | None
    commands: tuple[Command, ...]
    apply: Mapping[str, Apply]
    source: str = "<writes>"


def event_value(event: Mapping[str, Any], path: str, *, strict: bool = False) -> Any:
    """The value at a dotted path of an event (`data.new_title`); None when a part is
    missing, or a KeyError naming the path when `strict`."""
    value: Any = event
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            if strict:
                raise KeyError(path)
            return None
        value = value[part]
    return value


def load_writes(path: Path | str) -> WritesSpec:
    """Read and check a writes file and the pipeline it names (one ConfigError listing every
    problem, in file order)."""
    path = Path(path)
    data = load_one_document(path, "writes", "migration/writes.yaml", _WRITE)
    return parse_writes(data, str(path), folder=path.resolve().parent)


def parse_writes(data: Any, source: str, *, folder: Path) -> WritesSpec:
    reader = Reader(source)
    top = reader.mapping(data, mark_of(data), "the writes file", _WRITE)
    if top is None:
        reader.problems.check()
        raise AssertionError("unreachable")  # pragma: no cover
    meant = reader.keys(top, _TOP, "")
    for key in ("name", "pipeline", "commands", "apply"):
        reader.missing(top, key, "", _WRITE, meant)
    name = reader.string(top, "name", "name") if "name" in top else ""
    if name and not _NAME.fullmatch(name):
        reader.add(
            value_mark(top, "name"),
            "name",
            f"'{name}' is not a plain name",
            hint="use letters, digits, '.', '_' and '-' (it names the writer in headers and rows)",
        )
    pipeline_text = reader.string(top, "pipeline", "pipeline") if "pipeline" in top else ""
    database = reader.string(top, "database", "database") if "database" in top else None
    reader.problems.check()  # the rest is checked against the pipeline's declaration
    pipeline_path = Path(pipeline_text).expanduser()
    if not pipeline_path.is_absolute():
        pipeline_path = folder / pipeline_path
    pipeline = _pipeline(pipeline_path, source, top)
    declaration = pipeline.declaration
    assert declaration is not None
    commands = _commands(reader, top, declaration)
    apply = _apply(reader, top, declaration)
    for command in commands:
        for event_type in command.events:
            if event_type not in apply and "apply" in top:
                reader.add(
                    value_mark(top, "commands"),
                    f"commands.{command.name}",
                    f"it may yield {event_type}, and apply has no SQL for it",
                    hint=f"add 'apply: {{{event_type}: {{params: ..., sql: [...]}}}}': the "
                    "writer would not know how the legacy database records it",
                )
    reader.problems.check()
    return WritesSpec(
        name=name,
        pipeline=pipeline,
        pipeline_path=pipeline_path.resolve(),
        database=database or None,
        commands=tuple(commands),
        apply=apply,
        source=source,
    )


def _pipeline(path: Path, source: str, top: Mapping[str, Any]) -> PipelineSpec:
    where = f"{source}:{value_mark(top, 'pipeline') or mark_of(top) or ''}".rstrip(":")
    try:
        pipeline = load_pipeline(path)
    except ConfigError as exc:
        raise ConfigError(f"{where}: pipeline {path}: {exc.message}", hint=exc.hint) from None
    if pipeline.declaration is None:
        raise ConfigError(
            f"{where}: pipeline {path} declares no entity",
            hint="name a declared pipeline (tables, entity and events): a command's events "
            "are derived from its declaration",
        )
    return pipeline


def yielded(declaration: Declaration, sets: tuple[str, ...]) -> tuple[str, ...]:
    """The event types a change of the fields `sets` may yield: the `changed` events on any
    of them, and the `gone`/`returned` events when a gone condition reads one of them."""
    out: list[str] = []
    gone_fields = {g.field for g in declaration.entity.gone}
    for event in declaration.events:
        if _may_yield(event, sets, gone_fields):
            out.append(event.type)
    return tuple(out)


def _may_yield(event: EventDecl, sets: tuple[str, ...], gone_fields: set[str]) -> bool:
    if event.on == "changed":
        return any(f in sets for f in event.fields)
    return event.on in ("gone", "returned") and any(f in gone_fields for f in sets)


def _commands(reader: Reader, top: Mapping[str, Any], declaration: Declaration) -> list[Command]:
    raw = reader.mapping(top.get("commands"), value_mark(top, "commands"), "commands")
    if raw is None:
        return []
    entity = declaration.entity
    settable = tuple(f for f in entity.state if f not in entity.key)
    found: list[Command] = []
    seen: dict[tuple[str, str], str] = {}
    for name, body in raw.items():
        what = f"commands.{name}"
        spec = reader.mapping(body, value_mark(raw, name), what)
        if spec is None:
            continue
        meant = reader.keys(spec, _COMMAND, what)
        hint = f"write '{name}: {{request: \"POST /{entity.name}/{{...}}/...\", sets: [field]}}'"
        if reader.missing(spec, "request", what, hint, meant) | reader.missing(
            spec, "sets", what, hint, meant
        ):
            continue
        request = reader.string(spec, "request", f"{what}.request")
        method, _sp, path = request.partition(" ")
        method, path = method.upper(), path.strip()
        mark = value_mark(spec, "request")
        if method not in METHODS or not path.startswith("/"):
            reader.add(
                mark,
                f"{what}.request",
                f"expected 'METHOD /path', METHOD one of {', '.join(METHODS)}, got {request!r}",
                hint=f"e.g. request: POST /{entity.name}/{{{entity.key[0]}}}/rename",
            )
            continue
        names = _SEGMENT.findall(path)
        if sorted(names) != sorted(entity.key) or any(
            s.count("{") and not _SEGMENT.fullmatch(s) for s in path.split("/")
        ):
            reader.add(
                mark,
                f"{what}.request",
                f"the path must name each key field of the {entity.name} once, as a whole "
                f"segment ({', '.join('{' + k + '}' for k in entity.key)}), got {path!r}",
                hint=f"e.g. /{entity.name}/{'/'.join('{' + k + '}' for k in entity.key)}/{name}",
            )
            continue
        if (method, path) in seen:
            reader.add(mark, f"{what}.request", f"{method} {path} is also {seen[(method, path)]}")
            continue
        seen[(method, path)] = what
        sets = _sets(reader, spec, what, settable)
        if not sets:
            continue
        found.append(Command(str(name), method, path, sets, yielded(declaration, sets)))
    return found


def _sets(
    reader: Reader, spec: Mapping[str, Any], what: str, settable: tuple[str, ...]
) -> tuple[str, ...]:
    raw = spec.get("sets")
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items:
        reader.add(
            value_mark(spec, "sets"),
            f"{what}.sets",
            f"expected a list of state fields, got {kind_of(raw)}",
            hint="write 'sets: [field, ...]'",
        )
        return ()
    out: list[str] = []
    for i, item in enumerate(items):
        if item not in settable:
            guess = closest(str(item), settable)
            reader.add(
                value_mark(raw, i) if isinstance(raw, list) else value_mark(spec, "sets"),
                f"{what}.sets",
                f"{item!r} is not a state field a command can set"
                + (f" (did you mean '{guess}'?)" if guess else ""),
                hint=f"state fields (the key aside): {', '.join(settable)}",
            )
            continue
        out.append(str(item))
    return tuple(dict.fromkeys(out))


def _apply(reader: Reader, top: Mapping[str, Any], declaration: Declaration) -> dict[str, Apply]:
    raw = reader.mapping(top.get("apply"), value_mark(top, "apply"), "apply")
    if raw is None:
        return {}
    events = {e.type: e for e in declaration.events}
    found: dict[str, Apply] = {}
    for event_type, body in raw.items():
        what = f"apply.{event_type}"
        event = events.get(str(event_type))
        if event is None:
            guess = closest(str(event_type), list(events))
            reader.add(
                mark_of(body) or value_mark(raw, event_type),
                "apply",
                f"{event_type!r} is not an event of the pipeline"
                + (f" (did you mean '{guess}'?)" if guess else ""),
                hint=f"events: {', '.join(events)}",
            )
            continue
        spec = reader.mapping(body, value_mark(raw, event_type), what)
        if spec is None:
            continue
        meant = reader.keys(spec, _APPLY, what)
        hint = "write 'sql: [UPDATE ... WHERE key = :key]' and 'params: {key: <event path>}'"
        if reader.missing(spec, "sql", what, hint, meant):
            continue
        sql = _statements(reader, spec, what)
        params = _params(reader, spec, what, declaration, event)
        if not sql:
            continue
        used = {p for statement in sql for p in re.findall(r"(?<![:\w]):([A-Za-z_]\w*)", statement)}
        for missing in sorted(used - set(params)):
            reader.add(
                value_mark(spec, "sql"),
                f"{what}.sql",
                f"':{missing}' is not among the params",
                hint=f"add 'params: {{{missing}: <a path in the event, e.g. data.new_...>}}'",
            )
        found[str(event_type)] = Apply(str(event_type), params, sql)
    return found


def _statements(reader: Reader, spec: Mapping[str, Any], what: str) -> tuple[str, ...]:
    raw = spec.get("sql")
    items = [raw] if isinstance(raw, str) else raw
    if (
        not isinstance(items, list)
        or not items
        or not all(isinstance(s, str) and s.strip() for s in items)
    ):
        reader.add(
            value_mark(spec, "sql"),
            f"{what}.sql",
            f"expected SQL statements (a string or a list of them), got {kind_of(raw)}",
            hint="write 'sql: [UPDATE ... WHERE key = :key, ...]'",
        )
        return ()
    return tuple(" ".join(s.split()) for s in items)


def event_paths(declaration: Declaration, event: EventDecl) -> tuple[str, ...]:
    """The first parts of the paths an event of this declaration has: the envelope, the key
    fields, data.<each data field>, provenance."""
    if event.data is not None:
        data = [out for out, _expression in event.data]
    elif event.on == "changed":
        data = [f"{p}_{f}" for f in event.fields for p in ("old", "new")]
    else:
        data = []
    return (
        *_ENVELOPE,
        *declaration.entity.key,
        *(f"data.{d}" for d in data),
        "provenance",
    )


def _params(
    reader: Reader,
    spec: Mapping[str, Any],
    what: str,
    declaration: Declaration,
    event: EventDecl,
) -> dict[str, Param]:
    raw = spec.get("params")
    if raw is None:
        return {}
    params = reader.mapping(raw, value_mark(spec, "params"), f"{what}.params")
    if params is None:
        return {}
    known = event_paths(declaration, event)
    out: dict[str, Param] = {}
    for name, value in params.items():
        where = f"{what}.params.{name}"
        mark = value_mark(params, name)
        if not _PARAM.fullmatch(str(name)):
            reader.add(mark, where, "expected a parameter name (letters, digits, _)")
            continue
        path = value
        zone = None
        if isinstance(value, Mapping):
            reader.keys(value, _LOCAL_TIME, where)
            path, zone = value.get("local_time"), value.get("zone")
            try:
                ZoneInfo(str(zone))
            except (ZoneInfoNotFoundError, ValueError):
                reader.add(
                    value_mark(value, "zone") or mark,
                    where,
                    f"{zone!r} is not a time zone",
                    hint="name an IANA zone, e.g. zone: Europe/Berlin",
                )
                continue
        if not isinstance(path, str) or not _known(path, known):
            guess = closest(str(path), list(known))
            reader.add(
                mark,
                where,
                f"{path!r} is not a field of {event.type}"
                + (f" (did you mean '{guess}'?)" if guess else ""),
                hint=f"fields: {', '.join(known)} (a dotted path reaches inside one)",
            )
            continue
        out[str(name)] = LocalTime(path, str(zone)) if zone is not None else path
    return out


def _known(path: str, known: tuple[str, ...]) -> bool:
    return any(path == k or path.startswith(k + ".") for k in known)


__all__ = [
    "COMMAND_CONNECTOR",
    "ORIGIN_HEADER",
    "Apply",
    "Command",
    "LocalTime",
    "WritesSpec",
    "event_value",
    "load_writes",
    "parse_writes",
    "yielded",
]

"""The compiled engine of a declared pipeline: its plan, and the fast path that runs it.

A declared pipeline whose stages are the built-in decode, clean, events and validate runs on
seam's compiled engine (`seam_engine.Engine`, the Rust crate in transforms/native) with no
line in the pipeline file (`processing.compiled: false` turns it off). `plan_of` turns the
`Declaration` into the engine's plan (JSON): each column's rule chains with their options
and policies, the entity, its events, and the UTC offsets of every zone a `timestamp` rule
names as zoneinfo itself gives them (so both sides read wall-clock times alike). The engine
implements the rule kinds of `rules.py`; where it is not sure to compute exactly what the
Python reference computes (a kind or an option it does not implement, a regular expression
whose syntax the two engines may read differently, non-ASCII text where Python's Unicode
tables decide, a value its own rules would refuse in the new row, ...) it steps aside for
that record, which the worker runs through the Python stages: they write the event or the
dead letter with its reason. tests/unit/test_compiled_engine.py holds both to the same
publications, byte for byte.

A declared pipeline with Python stages among the built-in ones keeps the engine for the
built-in stages around them (`SplitPath`): when its stages begin with decode, clean, the
engine runs those (`Engine.front`) and the Python stages that follow get the very items the
Python decode and clean stages would hand them; when they end with events, validate after
the Python ones, the engine runs those and the encoding (`Engine.back`) on the item the
Python stages hand on. Where it is unsure the record takes the Python stages: all of them
(front), or those after the user's (back).

Without the module (not built), or for a chain that does not begin with decode, clean,
there is no compiled path and every record takes the Python stages: slower, same results.
"""

from __future__ import annotations

import functools
import json
import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

from seam.changes import ChangeEvent, RawRecord, Undecodable
from seam.transforms.declared.envelope import EVENT_NAMESPACE
from seam.transforms.declared.model import Declaration, RuleSpec
from seam.transforms.declared.rules import _FALSE, _SYMBOLS, _TRUE, KINDS
from seam.transforms.model import Item
from seam.transforms.outputs import Publication
from seam.transforms.own_writes import OwnOrigin
from seam.transforms.pipeline import Outcome, Pipeline, Produced
from seam.transforms.pipeline_file import PipelineSpec
from seam.transforms.progress import Counts
from seam.transforms.redelivery import Marks
from seam.transforms.stages.clean import CleanStage
from seam.transforms.stages.decode import DecodeStage
from seam.transforms.stages.events import EventsStage
from seam.transforms.stages.validate import ValidateStage

log = logging.getLogger("seam.transform")

CHAIN: Final = (DecodeStage, CleanStage, EventsStage, ValidateStage)
# Fields of the envelope: an entity key field of one of these names would shadow it.
_ENVELOPE: Final = frozenset(
    {"event_id", "event_type", "entity", "occurred_at", "data", "provenance", "schema_version"}
)
# The span of instants whose zone offsets the plan carries: timestamps outside it (and
# outside 1900..2100 UTC) step aside.
_SPAN: Final = (
    int(datetime(1900, 1, 1, tzinfo=UTC).timestamp()),
    int(datetime(2100, 1, 1, tzinfo=UTC).timestamp()),
)
_STEP: Final = 6 * 3600  # no zone changes its offset twice within six hours


class UnsupportedError(Exception):
    """A part of the declaration the engine does not execute."""


def _literal(value: Any) -> Any:
    """A YAML scalar as the plan carries it (types kept by JSON: null, bool, int, text)."""
    if value is None or type(value) in (bool, str):
        return value
    if type(value) is int and -(2**63) <= value < 2**63:
        return value
    raise UnsupportedError(f"value {value!r}")


def _decimal_text(value: Any) -> str:
    return str(Decimal(str(value)))


# Pattern syntax the two regex engines may read differently: `$` (Python's also matches
# before a final newline), inline flags, nested classes and class set operations, \Z, \z,
# back references and octal escapes, `{,n}`, word-boundary assertions Rust adds.
_REGEX_RISKS: Final = (
    "$",
    "(?",
    "[[",
    "[:",
    "&&",
    "--",
    "~~",
    "\\Z",
    "\\z",
    "{,",
    "\\<",
    "\\>",
    "\\b{",
    "\\N",
    *(f"\\{d}" for d in "0123456789"),
)


def _regex(text: str) -> str:
    if any(risk in text.replace("(?:", "") for risk in _REGEX_RISKS):
        raise UnsupportedError(f"pattern {text!r}")
    return text


def zone_changes(name: str) -> dict[str, Any]:
    """A zone's UTC offsets over `_SPAN`, as zoneinfo gives them: the offset at the start
    and every change (UTC second, offset before, offset after)."""
    return _zone_changes(name)


@functools.cache
def _zone_changes(name: str) -> dict[str, Any]:
    zone = ZoneInfo(name)

    def offset(t: int) -> int:
        found = datetime.fromtimestamp(t, zone).utcoffset()
        assert found is not None
        return int(found.total_seconds())

    start, end = _SPAN
    changes = []
    t, here = start, offset(start)
    while t < end:
        nxt = min(t + _STEP, end)
        there = offset(nxt)
        if there != here:
            lo, hi = t, nxt  # offset(lo) == here, offset(hi) != here
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if offset(mid) == here:
                    lo = mid
                else:
                    hi = mid
            changes.append([hi, here, offset(hi)])
            here = offset(hi)
            t = hi
            continue
        t = nxt
    return {"start": start, "end": end, "initial": offset(start), "changes": changes}


def _rule(spec: RuleSpec, zones: dict[str, Any]) -> dict[str, Any]:
    kind = KINDS[spec.kind]
    plan: dict[str, Any] = {
        "kind": spec.kind,
        "on_fail": spec.on_fail,
        "takes_null": kind.takes_null,
    }
    try:
        plan.update(_options(spec.kind, spec.options, zones))
    except UnsupportedError as exc:
        log.info("compiled engine: rule %s at %s steps aside (%s)", spec.kind, spec.where, exc)
        plan["kind"] = "python"
    return plan


def _options(kind: str, o: Any, zones: dict[str, Any]) -> dict[str, Any]:
    if kind in ("whitespace", "case", "max_length", "no_control", "decimal", "lookup"):
        return dict(o)
    if kind == "null_if":
        values = []
        for v in o["values"]:
            try:
                values.append(_literal(v))
            except UnsupportedError:  # a type no decoded value has: it matches nothing
                continue
        return {"values": values}
    if kind == "pattern":
        return {"regex": _regex(str(o["regex"]))}
    if kind == "codes":
        return {
            "map": [[_literal(k), _literal(v)] for k, v in dict(o["map"]).items()],
            "unmapped": o.get("unmapped", "reject"),
        }
    if kind == "boolean":
        words = (
            [str(v).upper() for v in o.get("true", _TRUE)],
            [str(v).upper() for v in o.get("false", _FALSE)],
        )
        return {"true": words[0], "false": words[1], "null": _literal(o.get("null"))}
    if kind == "range":
        return {
            name: None if o.get(name) is None else _decimal_text(o[name]) for name in ("min", "max")
        }
    if kind == "money":
        currency = o["currency"]
        marks = [str(m) for m in (o.get("marks") or [currency, _SYMBOLS.get(currency, currency)])]
        for mark in marks:
            # The engine matches ASCII marks case-insensitively, others exactly: a mark with
            # other case forms (Python's re folds them) is Python's.
            if not mark.isascii() and not (mark.lower() == mark == mark.upper()):
                raise UnsupportedError(f"currency mark {mark!r}")
        return {
            "currency": currency,
            "from": o.get("from", "amount"),
            "scale": int(o.get("scale", 2)),
            "min": _decimal_text(o["min"]) if o.get("min") is not None else "0",
            "max": _decimal_text(o["max"]) if o.get("max") is not None else None,
            "marks": marks,
        }
    if kind == "timestamp":
        zone = str(o.get("zone", "UTC"))
        zones[zone] = zone_changes(zone)
        return {**dict(o), "zone": zone}
    if kind == "default":
        return {"value": _literal(o["value"])}
    return {}


def plan_of(declaration: Declaration, history_key: str | None = None) -> dict[str, Any]:
    """The engine's plan for `declaration` (`history_key`: the pipeline's
    outputs.history.key). UnsupportedError when the engine cannot run it at all."""
    entity = declaration.entity
    table = declaration.table
    clash = _ENVELOPE.intersection(entity.key)
    if clash:
        raise UnsupportedError(f"key field {sorted(clash)[0]!r} shadows an envelope field")
    zones: dict[str, Any] = {}
    fields = [
        {
            "name": column.name,
            "sources": [
                {"column": source.column, "rules": [_rule(r, zones) for r in source.rules]}
                for source in column.sources
            ],
            "combine": column.combine,
            "on_fail": column.on_fail,
            "default": _literal(column.default),
            "required": column.required,
        }
        for column in table.columns
    ]
    if history_key in ("occurred_at", "data", "provenance"):
        raise UnsupportedError(f"history key {history_key!r}")
    known = (*entity.key, "event_type", "entity", "event_id", "schema_version")
    return {
        "table": table.name,
        "fields": fields,
        "entity": {
            "name": entity.name,
            "key": list(entity.key),
            "state": list(entity.state),
            "gone": [
                {
                    "field": g.field,
                    "reason": g.reason,
                    "values": None if g.values is None else [_literal(v) for v in g.values],
                }
                for g in entity.gone
            ],
            "deleted_reason": entity.deleted_reason,
        },
        "events": [
            {
                "type": e.type,
                "on": e.on,
                "fields": list(e.fields),
                "when": [[f, [_literal(v) for v in values]] for f, values in e.when.items()],
                "data": None if e.data is None else [list(pair) for pair in e.data],
            }
            for e in declaration.events
        ],
        "history_key": history_key if history_key in known else None,
        "namespace": list(EVENT_NAMESPACE.bytes),
        "zones": zones,
    }


class CompiledPath:
    """`seam.transforms.fast_path.FastPath` over a `seam_engine.Engine`."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def process(self, raw: RawRecord) -> Publication | None:
        """One record's publication, or None: it takes the Python stages."""
        if raw.value is None:
            return None
        out: Publication | None = self.engine.process(
            raw.key, raw.value, raw.topic, raw.partition, raw.offset
        )
        return out

    def publish(
        self,
        messages: list[Any],
        start: int,
        producer: Any,
        spec: PipelineSpec,
        batch: Counts,
        marks: Marks,
    ) -> int:
        """Produce the publications of `messages[start:]`, in order, until a record needs
        the Python stages; returns its index (len(messages) when all are done) and adds
        what was published to `batch`. Re-delivered changes are dropped, and `marks` move,
        as `Marks.redelivered` does it."""
        stop, records, with_events, events, latest, no_event, redelivered = self.engine.publish(
            messages, start, producer, spec.history.topic, spec.latest.topic, marks.table
        )
        batch.records_in += records + redelivered
        batch.native += records + redelivered
        batch.redelivered += redelivered
        batch.records_with_events += with_events
        batch.events_out += events
        batch.latest_out += latest
        for reason, n in no_event.items():
            batch.no_event[reason] = batch.no_event.get(reason, 0) + n
        return int(stop)


class SplitPath:
    """The compiled engine around a declared pipeline's Python stages: the built-in decode
    and clean before them run compiled (`Engine.front`), and so do the built-in events and
    validate after them when the pipeline ends with those two (`Engine.back`); the Python
    stages in between get the very items the Python decode and clean stages would hand
    them. Where the engine is not sure, the record takes the Python stages: whole (front),
    or from the first stage after the Python ones (back)."""

    def __init__(self, engine: Any, pipeline: Pipeline, back: bool) -> None:
        self.engine = engine
        self.pipeline = pipeline
        decode, clean = pipeline.stages[:2]
        assert isinstance(decode, DecodeStage)
        assert isinstance(clean, CleanStage)
        self.decode = decode
        self.table = clean.table
        # The Python stages are pipeline.stages[2:stop]; events and validate follow them.
        self.stop = len(pipeline.stages) - 2 if back else None

    @property
    def compiled(self) -> tuple[str, ...]:
        """The names of the stages that run compiled."""
        stages = self.pipeline.stages
        return tuple(s.name for s in (*stages[:2], *(stages[self.stop :] if self.stop else ())))

    def run(
        self, raw: RawRecord, change: ChangeEvent | Undecodable
    ) -> tuple[Outcome | Publication, bool]:
        """One record (decoded once by the worker, `change`): the Python stages' outcome,
        or its publication where the engine made it; and whether the declared stages
        around the Python ones all ran compiled (the worker counts those as native)."""
        pipeline = self.pipeline
        if raw.value is None or type(change) is not ChangeEvent:
            return pipeline.run(raw, change if type(change) is ChangeEvent else None), False
        rows = self.engine.front(raw.key, raw.value)
        if rows is None:
            return pipeline.run(raw, change), False
        # The decode stage keeps the decoded change (no work); clean's rows are the engine's.
        items = list(self.decode.process(Item(raw, change)))
        item = items[0]
        if item.table != self.table:
            return pipeline.run(raw, change), False
        item.before, item.after = rows
        outcome = pipeline.resume(raw, items, 2, self.stop)
        stop = self.stop
        if stop is None or type(outcome) is not Produced or not outcome.items:
            return outcome, True
        items = outcome.items
        if len(items) == 1:
            item = items[0]
            # What the events stage reads besides the rows must be what the engine reads
            # from the record: the change, its table, no provenance, event or note set.
            if (
                item.change is change
                and item.table == self.table
                and item.provenance is None
                and item.event is None
                and item.note is None
            ):
                out: Publication | None = self.engine.back(
                    raw.key,
                    raw.value,
                    raw.topic,
                    raw.partition,
                    raw.offset,
                    item.before,
                    item.after,
                )
                if out is not None:
                    return out, True
        return pipeline.resume(raw, items, stop), False


def _engine(spec: PipelineSpec, pipeline: Pipeline, own: OwnOrigin | None = None) -> Any:
    """The engine of `pipeline` (a declared pipeline whose stages begin with decode,
    clean), or None: the module is not built, or the plan cannot run. `own`: how the
    engine's publications recognise seam's own writes (None: they do not)."""
    declaration = spec.declaration
    assert declaration is not None
    if spec.column_types != "none":
        log.info(
            "%s: column_types: source: the Python stages run (the engine reads values as sent)",
            spec.source,
        )
        return None
    try:
        import seam_engine
    except ImportError:
        log.warning(
            "seam_engine is not installed (scripts/setup.sh builds it): the Python stages run"
        )
        return None
    try:
        plan = plan_of(declaration, spec.history.key)
    except UnsupportedError as exc:
        log.info("%s: the compiled engine cannot run this declaration (%s)", spec.source, exc)
        return None
    clean, validate = pipeline.stages[1], pipeline.stages[-1]
    assert isinstance(clean, CleanStage)
    schemas: dict[str, tuple[int, str]] = {}
    state_schema = None
    embeds: dict[str, str] = {}
    if isinstance(validate, ValidateStage):  # the one the engine's events are checked by
        schemas = {
            name: (version, json.dumps(doc))
            for name, (version, doc) in validate.schemas.documents.items()
        }
        state_schema = validate.state_schema if validate.state_checked else None
        embeds = dict(validate.embeds_state)
    return seam_engine.Engine(
        json.dumps(plan),
        schemas,
        state_schema,
        embeds,
        clean.references.rows,
        None if own is None else own.domain,
        None if own is None else own.tx_ids,
    )


def compiled_path(
    spec: PipelineSpec, pipeline: Pipeline, own: OwnOrigin | None = None
) -> CompiledPath | None:
    """The compiled engine for `pipeline` (built from `spec`, a declared pipeline), or None
    when its stages are not the built-in chain (see `split_path`), the plan cannot run, or
    the module is not built. `own`: the worker's own-writes decision, which the engine's
    publications apply (a split path's go through the Python handler, which applies it)."""
    if spec.declaration is None or tuple(type(s) for s in pipeline.stages) != CHAIN:
        return None
    engine = _engine(spec, pipeline, own)
    return None if engine is None else CompiledPath(engine)


def split_path(spec: PipelineSpec, pipeline: Pipeline) -> SplitPath | None:
    """The compiled engine around the Python stages of `pipeline` (a declared pipeline
    whose stages begin with the built-in decode, clean and go on with others), or None."""
    kinds = tuple(type(s) for s in pipeline.stages)
    if spec.declaration is None or kinds == CHAIN:
        return None
    if kinds[:2] != CHAIN[:2] or len(kinds) < 3:
        log.info(
            "%s: the stages do not begin with decode, clean (a Python stage before clean?): "
            "the Python stages run every record",
            spec.source,
        )
        return None
    engine = _engine(spec, pipeline)
    if engine is None:
        return None
    split = SplitPath(engine, pipeline, back=len(kinds) > 4 and kinds[-2:] == CHAIN[2:])
    log.info(
        "%s: the compiled engine runs %s around the Python stages %s",
        spec.source,
        ", ".join(split.compiled),
        ", ".join(s.name for s in pipeline.stages[2 : split.stop]),
    )
    return split


__all__ = [
    "CHAIN",
    "CompiledPath",
    "SplitPath",
    "UnsupportedError",
    "compiled_path",
    "plan_of",
    "split_path",
    "zone_changes",
]

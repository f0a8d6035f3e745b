"""The pipeline declaration: a YAML file (the README's "Pipeline files" has a whole one).

    name: orders
    group: seam-transform-orders        # consumer group
    inputs: [shop.public.orders]        # consumed by the group (split between workers)
    stages:                             # in order; `use` is a built-in name or module:callable
      - use: decode
      - use: mypackage.stages:make_stage
        with: {customers: shop.public.customers}   # passed to the factory as a mapping
      - use: validate
        with: {schemas: schemas, state_schema: OrderState}  # paths: relative to this file
    outputs:
      history:     {topic: ..., partitions: 3, retention_ms: -1, key: order_id}
      latest:      {topic: ..., partitions: 3}          # always cleanup.policy=compact
      dead_letter: {topic: ..., partitions: 1, retention_ms: 1209600000}
    processing:
      guarantee: exactly_once           # or at_least_once
      batch_size: 5000                  # at most, per batch (and transaction)
      batch_timeout_ms: 200             # the longest a poll waits for a first record
      max_stage_errors: 100             # -1: never stop (see below)
      fast_path: mypackage.native:fast_path_for   # optional, see seam.transforms.fast_path
      compiled: true                    # a declared pipeline: the compiled engine (default)
      column_types: none                # or source (see below)
    own_writes:                         # optional: changes seam's writer made (own_writes.py)
      ledger: orders.own-writes         # PostgreSQL: the writer's transaction ids
      gtid_domain: 77                   # MariaDB: the writer sessions' GTID domain

`outputs.history.key` names the event field that keys history records (default: the item's
`latest_key`, the entity's key; see `seam.transforms.outputs`).

Errors point at the file, line and column, with a `fix:`; every problem of a file is
reported at once, in file order. Unknown keys name the closest valid one, unknown stages the
closest built-in.

User stages. `use: module:callable` imports `module` with the pipeline file's folder first
on the import path (`sys.path`), as Python does for a script's folder: a `my_stages.py`
beside the pipeline file needs no installing and no PYTHONPATH. The folder is on the path
only while the stages are imported and built, then taken off again, so it never shadows a
module that seam or another pipeline imports later; what a stage module imports at its top
(a helper module beside it, too) stays loaded. A stage module elsewhere must be installed or
on PYTHONPATH.

Column types. `column_types: source` hands the stages typed values: at start the worker
reads each input topic's column types from its source database (the connector whose
`topic.prefix` the topic has, its config from Kafka Connect, the database reached with
seam's settings; `seam.connectors.live_types`), and the decode stage's rows then hold
`Decimal`s with the column's scale, `date`s, `datetime`s, `bytes`, `UUID`s... (and
`seam.changes.Raw` for a value no type fits) instead of Debezium's wire forms (days since
1970, base64...). When they cannot be read, `run` and `check` stop with an error naming the
connector and database. `none` (the default for now) hands the stages values as sent, which
the compiled fast path and the example's stages expect; a fast path cannot be combined with
`source`.

Stage errors. A stage that raises anything but `Reject` has a bug: the record is
dead-lettered, the first traceback of each stage and error type is logged, and the rest are
counted (`stage_errors` in the worker's summary and metrics). Past `max_stage_errors` such
records (since the worker started) the worker stops with an error, at the end of the batch
in which the limit was passed, once that batch is committed: its dead letters and input
offsets are in Kafka together, so a restart resumes after them, losing and repeating
nothing. The default, 100, keeps a worker running through a stray bug hit by a few odd
records, and stops one whose stage fails on most records after a batch, not after it has
dead-lettered the whole backlog. `Reject` (a record the stage refuses, by design) is never
counted. `seam transform run --max-stage-errors N` overrides the setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal

from seam.errors import ConfigError
from seam.keys import closest
from seam.transforms.declared.model import Declaration
from seam.transforms.declared.reading import SECTIONS, declares, read_declaration
from seam.transforms.declared.runtime import DeclaredPipeline
from seam.transforms.own_writes import OwnWrites
from seam.transforms.pipeline import Pipeline, StageErrorLimitError
from seam.transforms.stage_loader import STAGE_HINT, StageSpec, build_stage
from seam.transforms.stages import BUILTIN
from seam.yamlfile import (
    Mark,
    Reader,
    key_mark,
    kind_of,
    load_documents,
    mark_of,
    plain,
    read_file,
    value_mark,
)

Guarantee = Literal["exactly_once", "at_least_once"]
ColumnTypes = Literal["source", "none"]
_TOP: Final = (
    "name",
    "group",
    "inputs",
    "stages",
    "outputs",
    "processing",
    "schemas",
    "own_writes",
    *SECTIONS,
)
# A declared pipeline that names no stages runs these.
DECLARED_STAGES: Final = ("decode", "clean", "events", "validate")
_STAGE: Final = ("use", "with", "name")
_OUTPUTS: Final = ("history", "latest", "dead_letter")
_OUTPUT: Final = ("topic", "partitions", "replication_factor", "retention_ms", "config")
_HISTORY: Final = (*_OUTPUT, "key")
_PROCESSING: Final = (
    "guarantee",
    "batch_size",
    "batch_timeout_ms",
    "max_stage_errors",
    "fast_path",
    "compiled",
    "column_types",
)
_OWN_WRITES: Final = ("ledger", "gtid_domain")
DEFAULT_MAX_STAGE_ERRORS: Final = 100
_WRITE_ALL: Final = (
    "write name, group, inputs, stages and outputs as 'key: value' lines; "
    'see the README\'s "Pipeline files" for a complete pipeline file'
)
_REQUIRED: Final = {
    "name": "add 'name: <pipeline name>' (it names the pipeline in logs and metrics)",
    "group": "add 'group: <consumer group>' (the workers of one pipeline share it)",
    "inputs": "add 'inputs: [<raw change topic>, ...]'",
    "stages": "add 'stages:' with one '- use: <stage>' line per stage",
    "outputs": "add 'outputs:' with history, latest and dead_letter topics",
}


@dataclass(frozen=True)
class OutputTopic:
    topic: str
    partitions: int | None = None  # None: as many as the first input topic
    replication_factor: int = -1  # the broker's default
    retention_ms: int | None = None
    config: dict[str, str] = field(default_factory=dict)
    key: str | None = None  # history only: the event field that keys its records


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    group: str
    inputs: tuple[str, ...]
    stages: tuple[StageSpec, ...]
    history: OutputTopic
    latest: OutputTopic
    dead_letter: OutputTopic
    guarantee: Guarantee = "exactly_once"
    # A batch is what has arrived, up to batch_size: small when the input trickles in (low
    # latency), large under a backlog (few transactions). batch_timeout_ms only bounds how
    # long the worker waits for a first record, so an idle worker still ticks.
    batch_size: int = 5000
    batch_timeout_ms: int = 200
    max_stage_errors: int = DEFAULT_MAX_STAGE_ERRORS  # -1: never stop
    fast_path: str | None = None  # package.module:callable (seam.transforms.fast_path)
    # A declared pipeline of the built-in stages runs on the compiled engine unless false.
    compiled: bool = True
    column_types: ColumnTypes = "none"  # source: typed values, types read from the source DB
    source: str = "<pipeline>"
    folder: Path | None = None  # the pipeline file's folder: stage modules beside it import
    declaration: Declaration | None = None  # tables, entity, events (declared pipelines)
    schemas: Path | None = None  # a declared pipeline's schema folder (`schemas:`)
    own_writes: OwnWrites | None = None  # how changes seam's writer made are recognised

    @property
    def outputs(self) -> tuple[OutputTopic, OutputTopic, OutputTopic]:
        return self.history, self.latest, self.dead_letter

    def with_suffix(self, suffix: str) -> PipelineSpec:
        """The same pipeline writing to `<topic><suffix>` topics with group `<group><suffix>`
        (a replay into new topics)."""
        return replace(
            self,
            group=self.group + suffix,
            history=replace(self.history, topic=self.history.topic + suffix),
            latest=replace(self.latest, topic=self.latest.topic + suffix),
            dead_letter=replace(self.dead_letter, topic=self.dead_letter.topic + suffix),
        )

    def with_guarantee(self, guarantee: Guarantee) -> PipelineSpec:
        return replace(self, guarantee=guarantee)

    def build(self) -> Pipeline:
        """Import and build every stage (a ConfigError naming the stage when one fails)."""
        declared = (
            DeclaredPipeline(self.declaration, self.inputs, self.schemas)
            if self.declaration is not None
            else None
        )
        return Pipeline([build_stage(s, self.folder, declared) for s in self.stages])

    def check_stage_errors(self, stage_errors: Mapping[str, int], pipeline: Pipeline) -> None:
        """Raise StageErrorLimitError once the stages raised on more than
        `max_stage_errors` records (`stage_errors`: records by stage, as committed)."""
        total = sum(stage_errors.values())
        if self.max_stage_errors < 0 or total <= self.max_stage_errors:
            return
        raise StageErrorLimitError(
            f"pipeline '{self.name}' stopped: its stages raised on {total} records, more than "
            f"processing.max_stage_errors ({self.max_stage_errors}): " + pipeline.errors.describe(),
            hint=f"fix the stage (the log shows the first traceback of each error); the "
            f"{total} records are in {self.dead_letter.topic}, committed with their batches. "
            f"Restart to go on, or raise processing.max_stage_errors in {self.source} "
            "(-1: never stop) or pass --max-stage-errors",
        )


# ---------------------------------------------------------------------------- reading


def load_pipeline(path: Path | str) -> PipelineSpec:
    """Read and check a pipeline file (a ConfigError listing every problem, in file order)."""
    path = Path(path)
    source = str(path)
    text = read_file(path, "pipeline", "pipelines/orders.yaml")
    docs = [d for d in load_documents(text, source) if d is not None]
    if not docs:
        raise ConfigError(
            f"{source}: the pipeline file is empty" + (" (only comments)" if text.strip() else ""),
            hint=_WRITE_ALL,
        )
    if len(docs) > 1:
        raise ConfigError(
            f"{source}:{mark_of(docs[1]) or '?'}: a second YAML document: "
            "a pipeline file holds one pipeline",
            hint="put each pipeline in a file of its own (remove the '---' line)",
        )
    return parse_pipeline(docs[0], source, folder=path.resolve().parent)


def parse_pipeline(
    data: Any, source: str = "<pipeline>", *, folder: Path | None = None
) -> PipelineSpec:
    """A pipeline from parsed YAML (positions in errors when it came from `load_documents`)."""
    if data is None:
        raise ConfigError(
            f"{source}: the pipeline file is empty",
            hint=_WRITE_ALL,
        )
    reader = _Reader(source)
    top = reader.mapping(data, mark_of(data), "the pipeline file", _WRITE_ALL)
    if top is None:
        reader.problems.check()
        raise AssertionError("unreachable")  # pragma: no cover
    meant = reader.keys(top, _TOP, "")
    declaration = read_declaration(top, reader, folder) if declares(top) else None
    for key, hint in _REQUIRED.items():
        if key == "stages" and declaration is not None:
            continue  # a declared pipeline runs DECLARED_STAGES unless it names its own
        reader.missing(top, key, "", hint, meant)
    name = reader.string(top, "name", "name")
    group = reader.string(top, "group", "group")
    inputs = reader.inputs(top)
    stages = reader.stages(top)
    if declaration is not None and "stages" not in top:
        where = reader.problems.where(mark_of(top))
        stages = tuple(StageSpec(use, {}, where=where) for use in DECLARED_STAGES)
    outputs = reader.outputs(top)
    history_key = outputs["history"].key
    if declaration is not None and history_key and history_key not in declaration.entity.key:
        # Declared events carry the entity's key fields at their top level and nothing else
        # a record could be keyed by: another name would silently key by the entity instead.
        history = top["outputs"]["history"]
        guess = closest(history_key, declaration.entity.key)
        reader.add(
            value_mark(history, "key"),
            "outputs.history.key",
            f"'{history_key}' is not a key field of entity '{declaration.entity.name}'"
            + (f" (did you mean '{guess}'?)" if guess else ""),
            hint="remove the line (history records are keyed by the entity key) or name one "
            f"of {', '.join(declaration.entity.key)}",
        )
    schemas = None
    if "schemas" in top:
        text = reader.string(top, "schemas", "schemas")
        if declaration is None:
            reader.add(
                key_mark(top, "schemas"),
                "schemas",
                "a schema folder at the top is for declared pipelines",
                hint="give the validate stage `with: {schemas: <folder>}`, or declare tables, "
                "entity and events",
            )
        elif text:
            path = Path(text).expanduser()
            schemas = path if path.is_absolute() or folder is None else folder / path
    processing = reader.processing(top)
    own_writes = reader.own_writes(top)
    reader.problems.check()
    return PipelineSpec(
        name=name,
        group=group,
        inputs=inputs,
        stages=stages,
        history=outputs["history"],
        latest=outputs["latest"],
        dead_letter=outputs["dead_letter"],
        source=source,
        folder=folder,
        declaration=declaration,
        schemas=schemas,
        own_writes=own_writes,
        **processing,
    )


_NO_OUTPUT: Final = OutputTopic("")


class _Reader(Reader):
    """Reads one pipeline file's parsed YAML, noting every problem rather than stopping at
    the first (placeholders stand in for what is wrong; `problems.check()` then raises)."""

    def inputs(self, top: Mapping[str, Any]) -> tuple[str, ...]:
        raw = top.get("inputs")
        if raw is None:
            return ()
        if isinstance(raw, str):
            return (self.string(top, "inputs", "inputs"),)
        if not isinstance(raw, list) or not raw:
            self.add(
                value_mark(top, "inputs"),
                "inputs",
                f"expected a non-empty list of topics, got {kind_of(raw)}",
                hint="write 'inputs: [<raw change topic>, ...]'",
            )
            return ()
        return tuple(self.string(raw, i, f"inputs[{i}]") for i in range(len(raw)))

    def stages(self, top: Mapping[str, Any]) -> tuple[StageSpec, ...]:
        raw = top.get("stages")
        if raw is None:
            return ()
        if not isinstance(raw, list) or not raw:
            self.add(
                value_mark(top, "stages"),
                "stages",
                f"expected a non-empty list of stages, got {kind_of(raw)}",
                hint="write one '- use: <stage>' line per stage, e.g. '- use: decode'",
            )
            return ()
        return tuple(stage for i in range(len(raw)) if (stage := self.stage(raw, i)) is not None)

    def stage(self, stages: list[Any], i: int) -> StageSpec | None:
        what = f"stages[{i}]"
        entry = stages[i]
        mark = value_mark(stages, i)
        if isinstance(entry, str):  # `- decode`: the short form of `- use: decode`
            use = self.use(entry, mark, what)
            return StageSpec(use, {}, where=self.problems.where(mark)) if use else None
        stage = self.mapping(entry, mark, what)
        if stage is None:
            return None
        if self.missing(stage, "use", what, STAGE_HINT, self.keys(stage, _STAGE, what)):
            return None
        use = self.use(stage["use"], value_mark(stage, "use"), f"{what}.use")
        options = stage.get("with")
        if options is None:
            options = {}
        if self.mapping(options, value_mark(stage, "with"), f"{what}.with") is None:
            options = {}
        name = self.string(stage, "name", f"{what}.name") if "name" in stage else None
        if not use:
            return None
        where = self.problems.where(value_mark(stage, "use"))
        return StageSpec(use, plain(options), name or None, where)

    def use(self, value: Any, mark: Mark | None, what: str) -> str:
        if not isinstance(value, str) or not value.strip():
            self.add(mark, what, f"expected a stage name, got {kind_of(value)}", hint=STAGE_HINT)
            return ""
        use = value.strip()
        if use in BUILTIN:
            return use
        module_name, sep, attr = use.partition(":")
        if sep and module_name and attr and ":" not in attr:
            return use
        if not sep:
            guess = closest(use, BUILTIN)
            if guess is None and "." in use:  # package.module.callable: a dot for the colon
                head, _dot, tail = use.rpartition(".")
                guess = f"{head}:{tail}"
            suggestion = f" (did you mean '{guess}'?)" if guess else ""
            self.add(mark, what, f"unknown stage '{use}'{suggestion}", hint=STAGE_HINT)
        else:
            self.add(
                mark,
                what,
                f"'{use}' is not a stage name: expected package.module:callable",
                hint=STAGE_HINT,
            )
        return ""

    def outputs(self, top: Mapping[str, Any]) -> dict[str, OutputTopic]:
        found = dict.fromkeys(_OUTPUTS, _NO_OUTPUT)
        raw = top.get("outputs")
        if raw is None:
            return found
        outputs = self.mapping(raw, value_mark(top, "outputs"), "outputs")
        if outputs is None:
            return found
        meant = self.keys(outputs, _OUTPUTS, "outputs")
        for name in _OUTPUTS:
            hint = f"add '{name}: {{topic: <topic name>}}' under outputs"
            if not self.missing(outputs, name, "outputs", hint, meant):
                found[name] = self.output(outputs, name)
        return found

    def output(self, outputs: Mapping[str, Any], name: str) -> OutputTopic:
        what = f"outputs.{name}"
        data = self.mapping(outputs[name], value_mark(outputs, name), what)
        if data is None:
            return _NO_OUTPUT
        hint = f"add 'topic: <topic name>' under {what}"
        valid = _HISTORY if name == "history" else _OUTPUT
        self.missing(data, "topic", what, hint, self.keys(data, valid, what))
        config = data.get("config") or {}
        if self.mapping(config, value_mark(data, "config"), f"{what}.config") is None:
            config = {}
        replication = self.integer(data, "replication_factor", f"{what}.replication_factor", -1, -1)
        return OutputTopic(
            topic=self.string(data, "topic", f"{what}.topic"),
            partitions=self.integer(data, "partitions", f"{what}.partitions", 1, None),
            replication_factor=-1 if replication is None else replication,
            retention_ms=self.integer(data, "retention_ms", f"{what}.retention_ms", -1, None),
            config={str(k): str(v) for k, v in config.items()},
            key=(self.string(data, "key", f"{what}.key") or None) if "key" in data else None,
        )

    def own_writes(self, top: Mapping[str, Any]) -> OwnWrites | None:
        raw = top.get("own_writes")
        if raw is None:
            return None
        data = self.mapping(raw, value_mark(top, "own_writes"), "own_writes")
        if data is None:
            return None
        meant = self.keys(data, _OWN_WRITES, "own_writes")
        if not data:
            self.missing(
                data,
                "ledger",
                "own_writes",
                "add 'ledger: <topic>' (PostgreSQL) or 'gtid_domain: <n>' (MariaDB)",
                meant,
            )
            return None
        ledger = self.string(data, "ledger", "own_writes.ledger") if "ledger" in data else None
        domain = self.integer(
            data,
            "gtid_domain",
            "own_writes.gtid_domain",
            1,
            None,
            "a GTID domain no other server of the source uses, e.g. 77",
        )
        return OwnWrites(ledger=ledger or None, gtid_domain=domain)

    def processing(self, top: Mapping[str, Any]) -> dict[str, Any]:
        raw = top.get("processing")
        if raw is None:
            return {}
        data = self.mapping(raw, value_mark(top, "processing"), "processing")
        if data is None:
            return {}
        self.keys(data, _PROCESSING, "processing")
        found: dict[str, Any] = {}
        if "guarantee" in data:
            guarantee = data["guarantee"]
            if guarantee in ("exactly_once", "at_least_once"):
                found["guarantee"] = guarantee
            else:
                self.add(
                    value_mark(data, "guarantee"),
                    "processing.guarantee",
                    f"expected exactly_once or at_least_once, got {kind_of(guarantee)}",
                    hint="exactly_once (the default) or at_least_once (faster, duplicates possible)",
                )
        if "fast_path" in data:
            target = data["fast_path"]
            module_name, sep, attr = (
                target.partition(":") if isinstance(target, str) else ("", "", "")
            )
            if sep and module_name.strip() and attr.strip() and ":" not in attr:
                found["fast_path"] = target.strip()
            else:
                self.add(
                    value_mark(data, "fast_path"),
                    "processing.fast_path",
                    f"expected package.module:callable, got {kind_of(target)}",
                    hint="name the function that returns the pipeline's fast path, e.g. "
                    "mypackage.native:fast_path_for, or remove the line",
                )
        if "compiled" in data:
            if type(data["compiled"]) is bool:
                found["compiled"] = data["compiled"]
            else:
                self.add(
                    value_mark(data, "compiled"),
                    "processing.compiled",
                    f"expected true or false, got {kind_of(data['compiled'])}",
                    hint="false runs every record through the Python stages (default: true, "
                    "the compiled engine for a declared pipeline of the built-in stages)",
                )
        if "column_types" in data:
            choice = data["column_types"]
            if choice in ("source", "none"):
                found["column_types"] = choice
            else:
                self.add(
                    value_mark(data, "column_types"),
                    "processing.column_types",
                    f"expected source or none, got {kind_of(choice)}",
                    hint="source (typed values: column types read from the source database) "
                    "or none (values as Debezium sent them, the default)",
                )
        if found.get("column_types") == "source" and "fast_path" in found:
            self.add(
                value_mark(data, "fast_path"),
                "processing.fast_path",
                "a compiled fast path reads values as sent: it cannot run with "
                "column_types: source",
                hint="remove the fast_path line, or set column_types: none",
            )
        for key, minimum, hint in (
            ("batch_size", 1, "the most records per batch (and transaction), e.g. 5000"),
            ("batch_timeout_ms", 1, "the longest wait for a first record, e.g. 200"),
            ("max_stage_errors", -1, "-1 never stops, 0 stops at the first error; default 100"),
        ):
            value = self.integer(data, key, f"processing.{key}", minimum, None, hint)
            if value is not None:
                found[key] = value
        return found

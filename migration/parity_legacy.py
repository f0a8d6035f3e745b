"""The legacy side of a parity check: the entity's table read in one transaction, at a noted
log position, and turned into entity states by the pipeline's own stages.

Each legacy row becomes the change event Debezium would emit for it in a snapshot (`op=r`,
the row as the decoder hands it on) and runs through the pipeline's stages (decode keeps it,
clean applies the declared rules, events makes the state, validate checks it): the same
cleaning the transform applies, not a second one. The tables the entity's lookups read are
read in the same transaction and fed to the stages that keep reference data, so the
cleaning looks up what the legacy database held at the same moment.

Values are handed on as the decoder makes them for the connector seam renders
(`decimal.handling.mode=string`: decimals as plain text) unless the pipeline types its
columns from the source database (`processing.column_types: source`: `Decimal`).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from seam.changes import ChangeEvent, Op, RawRecord, TableRef
from seam.errors import ConfigError
from seam.migration.digest import canonical
from seam.transforms.declared.envelope import key_text
from seam.transforms.declared.model import Declaration
from seam.transforms.outputs import dumps
from seam.transforms.pipeline import Pipeline, Produced
from seam.transforms.pipeline_file import PipelineSpec

BATCH = 10_000  # rows fetched at a time


@dataclass
class LegacyCut:
    """What the legacy table held at one position, through the cleaning."""

    position: str
    rows: int = 0  # rows read from the entity's table
    states: dict[str, bytes] = field(default_factory=dict)  # key -> canonical state JSON
    gone: dict[str, str] = field(default_factory=dict)  # key -> why it has no state
    rejected: dict[str, str] = field(default_factory=dict)  # key -> the cleaning's reason
    read_s: float = 0.0
    clean_s: float = 0.0


@dataclass(frozen=True)
class Where:
    """Where a declared table lives and whose change topic stands for it."""

    namespace: str  # PostgreSQL schema, or the MySQL/MariaDB database
    table: str
    topic: str


class LegacySide:
    """The pipeline's entity table in the legacy database at `url`, cleaned as it declares."""

    def __init__(self, spec: PipelineSpec, url: str) -> None:
        if spec.declaration is None:
            raise ConfigError(
                f"{spec.source}: the parity check needs a declared pipeline (tables:, "
                "entity:, events:), and this one declares none",
                hint="compare an entity whose pipeline declares it (transforms README, "
                "'Declared pipelines')",
            )
        self.spec = spec
        self.declaration: Declaration = spec.declaration
        self.url = url
        self.entity_table = self.declaration.entity.table
        base = next(
            (t for t in spec.inputs if t.rsplit(".", 1)[-1] == self.entity_table),
            spec.inputs[0],
        )
        parts = base.split(".")
        if len(parts) < 3:
            raise ConfigError(
                f"{spec.source}: cannot tell the schema of table '{self.entity_table}' from "
                f"the input topic '{base}' (expected <prefix>.<schema>.<table>)",
                hint="name the input topic as Debezium does: <topic prefix>.<schema or "
                "database>.<table>",
            )
        self.prefix, self.namespace = ".".join(parts[:-2]), parts[-2]
        self.topic = base
        self.database = ""  # the database's name, once connected
        self.flavour = "postgresql"  # postgresql or mariadb, once connected
        self.at: dict[str, Any] = {}  # the cut's position as Debezium's source block has it

    def where(self, table: str) -> Where:
        decl = self.declaration.tables[table]
        topic = decl.topic or f"{self.prefix}.{self.namespace}.{table}"
        namespace = topic.split(".")[-2] if topic.count(".") >= 2 else self.namespace
        return Where(namespace, table, topic)

    def key_columns(self, table: str) -> tuple[str, ...]:
        """The legacy columns the table's declared key fields come from."""
        decl = self.declaration.tables[table]
        out = []
        for name in decl.key:
            column = decl.column(name)
            out.append(column.sources[0].column if column is not None else name)
        return tuple(out)

    def read(self, keys: Sequence[str] | None = None) -> LegacyCut:
        """The entity's states at a position read in the same transaction (only `keys`,
        the record keys a previous cut found differing, when given)."""
        from sqlalchemy import text

        from seam.connectors.engine import connect, log_position

        pipeline = self.spec.build()
        began = time.monotonic()
        with connect(self.url) as conn:
            dialect = conn.dialect.name
            self.database = conn.engine.url.database or ""
            connector = "postgresql" if dialect == "postgresql" else "mariadb"
            self.flavour = connector
            if dialect == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
                position = log_position(conn)  # the first statement: the snapshot starts here
            else:
                conn.execute(text("START TRANSACTION WITH CONSISTENT SNAPSHOT"))
                position = log_position(conn)
            cut = LegacyCut(position)
            self.at = _log_fields(position)
            quote = conn.dialect.identifier_preparer.quote
            reference_stages = [s for s in pipeline.reference_stages if hasattr(s, "references")]
            for table in self.declaration.reference_tables():
                where = self.where(table)
                for row in self._rows(conn, quote, where, None):
                    change = self._change(where, row, connector, position)
                    for stage in reference_stages:
                        stage.references.apply(change)
            where = self.where(self.entity_table)
            wanted = None if keys is None else self._key_filter(keys)
            fast = self._compiled(pipeline)
            clean_s = 0.0
            for batch in self._batches(conn, quote, where, wanted):
                started = time.monotonic()
                for row in batch:
                    cut.rows += 1
                    if fast is None or not self._fast(fast, where, row, connector, cut):
                        self._one(pipeline, where, row, connector, position, cut)
                clean_s += time.monotonic() - started
            conn.rollback()
        cut.clean_s = clean_s
        cut.read_s = time.monotonic() - began - clean_s
        return cut

    def key_condition(self, keys: Sequence[str]) -> str:
        """A SQL condition on the entity table's key columns that holds for exactly the rows
        of `keys` (record keys): what an incremental snapshot's filter takes."""
        columns, values = self._key_filter(keys)
        quote = '"' if self.flavour == "postgresql" else "`"

        def literal(value: Any) -> str:
            if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
                return str(int(value))
            return "'" + str(value).replace("'", "''") + "'"

        if len(columns) == 1:
            column = quote + columns[0] + quote
            return f"{column} IN ({', '.join(literal(v[0]) for v in values)})"
        return " OR ".join(
            "("
            + " AND ".join(
                f"{quote}{c}{quote} = {literal(v)}" for c, v in zip(columns, row, strict=True)
            )
            + ")"
            for row in values
        )

    def _key_filter(self, keys: Sequence[str]) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        import orjson

        columns = self.key_columns(self.entity_table)
        values = []
        for key in keys:
            parts = orjson.loads(key) if key.startswith("[") else [key]
            values.append(tuple(parts))
        return columns, values

    def _rows(
        self,
        conn: Any,
        quote: Any,
        where: Where,
        wanted: tuple[tuple[str, ...], list[tuple[Any, ...]]] | None,
    ) -> Iterator[dict[str, Any]]:
        for batch in self._batches(conn, quote, where, wanted):
            yield from batch

    def _batches(
        self,
        conn: Any,
        quote: Any,
        where: Where,
        wanted: tuple[tuple[str, ...], list[tuple[Any, ...]]] | None,
    ) -> Iterator[list[dict[str, Any]]]:
        from sqlalchemy import text

        table = f"{quote(where.namespace)}.{quote(where.table)}"
        if conn.dialect.name != "postgresql":
            table = quote(where.table)  # the connection's own database
        if wanted is None:
            result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(
                text(f"SELECT * FROM {table}")
            )
            names = list(result.keys())
            while chunk := result.fetchmany(BATCH):
                yield [dict(zip(names, r, strict=True)) for r in chunk]
            return
        columns, values = wanted
        # Text comparison: the record key is text, the column of any type.
        cast = "TEXT" if conn.dialect.name == "postgresql" else "CHAR"
        for start in range(0, len(values), 500):
            chunk_values = values[start : start + 500]
            clauses, params = [], {}
            for i, value in enumerate(chunk_values):
                parts = []
                for j, column in enumerate(columns):
                    parts.append(f"CAST({quote(column)} AS {cast}) = :k{i}_{j}")
                    params[f"k{i}_{j}"] = str(value[j])
                clauses.append("(" + " AND ".join(parts) + ")")
            if not clauses:
                continue
            result = conn.execute(
                text(f"SELECT * FROM {table} WHERE " + " OR ".join(clauses)),
                params,
            )
            yield [dict(r) for r in result.mappings()]

    def _change(
        self, where: Where, row: Mapping[str, Any], connector: str, position: str
    ) -> ChangeEvent:
        after = {name: self._value(v) for name, v in row.items()}
        key = {c: after.get(c) for c in self.key_columns(where.table)}
        source = self._source(where, connector)
        return ChangeEvent(
            Op.READ,
            TableRef(where.namespace, where.table),
            key,
            None,
            after,
            source,
            None,
            None,
            RawRecord(None, None, where.topic),
        )

    def _source(self, where: Where, connector: str) -> dict[str, Any]:
        """The `source` block Debezium puts on a snapshot read of a row of `where`."""
        source: dict[str, Any] = {
            "version": "seam-parity",
            "connector": connector,
            "name": self.prefix,
            "ts_ms": int(time.time() * 1000),
            "snapshot": "true",
            "db": where.namespace if connector != "postgresql" else self.database,
            "table": where.table,
        }
        if connector == "postgresql":
            source["schema"] = where.namespace
        return source

    def _compiled(self, pipeline: Pipeline) -> Any:
        """The compiled engine of the pipeline, as the worker runs it (None: the pipeline
        is not the built-in chain, turns it off, or the module is not built). Built after
        the reference tables were fed: it reads the lookups' rows."""
        if not self.spec.compiled:
            return None
        from seam.transforms.declared.compiled import compiled_path

        return compiled_path(self.spec, pipeline)

    def _fast(
        self, fast: Any, where: Where, row: Mapping[str, Any], connector: str, cut: LegacyCut
    ) -> bool:
        """One row through the compiled engine, as Debezium's snapshot record of it; False
        when the engine steps aside (the Python stages then say what happens to it)."""
        import orjson

        unit = 1 if connector == "postgresql" else 1000  # MicroTimestamp / Timestamp
        after = {name: _wire(v, unit) for name, v in row.items()}
        key = {c: after.get(c) for c in self.key_columns(where.table)}
        source = self._source(where, connector)
        source.update(self.at)  # where the cut sits in the log (the engine needs a position)
        value = {"before": None, "after": after, "source": source, "op": "r", "ts_ms": 0}
        raw = RawRecord(orjson.dumps(key), orjson.dumps(value), where.topic)
        out = fast.process(raw)
        if out is None:
            return False
        _history, latest, note = out  # a Publication's fields
        if latest is None:
            cut.gone[key_text(tuple(key.values()))] = note or "no state"
            return True
        latest_key, state = latest
        if state is None:
            cut.gone[latest_key.decode()] = note or "gone"
        else:
            cut.states[latest_key.decode()] = canonical(orjson.loads(state))
        return True

    def _value(self, value: Any) -> Any:
        if isinstance(value, Decimal) and self.spec.column_types != "source":
            return format(value, "f")  # decimal.handling.mode=string
        if isinstance(value, memoryview):
            return value.tobytes()
        return value

    def _one(
        self,
        pipeline: Pipeline,
        where: Where,
        row: Mapping[str, Any],
        connector: str,
        position: str,
        cut: LegacyCut,
    ) -> None:
        change = self._change(where, row, connector, position)
        outcome = pipeline.run(change.raw, change)
        if not isinstance(outcome, Produced):
            raw_key = key_text(tuple(change.key.values()))
            cut.rejected[raw_key] = f"{outcome.stage}: {outcome.reason}"
            return
        written = [i for i in outcome.items if i.latest_key is not None]
        if not written:
            raw_key = key_text(tuple(change.key.values()))
            cut.gone[raw_key] = outcome.zero_reason or "no state"
            return
        item = written[-1]
        assert item.latest_key is not None
        if item.state is None:
            cut.gone[item.latest_key] = outcome.zero_reason or "gone"
        else:
            cut.states[item.latest_key] = canonical(_plain(item.state))


def _plain(state: Mapping[str, Any]) -> Any:
    """The state as the latest topic's JSON holds it (dates, decimals as the transform
    writes them)."""
    import orjson

    return orjson.loads(dumps(state))


def _log_fields(position: str) -> dict[str, Any]:
    """`lsn:X/Y` or `binlog:<file>:<pos>` as the fields of Debezium's source block."""
    kind, _sep, rest = position.partition(":")
    if kind == "lsn":
        high, _slash, low = rest.partition("/")
        return {"lsn": (int(high, 16) << 32) + int(low, 16)}
    file, _sep, pos = rest.rpartition(":")
    return {"file": file, "pos": int(pos), "row": 0}


_EPOCH = datetime(1970, 1, 1)
_EPOCH_DAY = date(1970, 1, 1)


def _wire(value: Any, unit_us: int) -> Any:
    """A column value as Debezium's JSON (schemas off, seam's rendering) carries it: decimals
    as text, naive timestamps as micro- (PostgreSQL) or milliseconds (MySQL) since the epoch,
    zoned ones as ISO text, dates as days since the epoch, bytes as base64."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        if value.tzinfo is None:
            delta = value - _EPOCH
            return (
                delta.days * 86_400_000_000 + delta.seconds * 1_000_000 + delta.microseconds
            ) // unit_us
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return (value - _EPOCH_DAY).days
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode()
    return value


def keys_of(cuts: Iterable[LegacyCut]) -> set[str]:
    return {k for c in cuts for k in c.states}


__all__ = ["LegacyCut", "LegacySide", "Where"]

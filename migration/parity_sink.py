"""The sink side of a parity check: the table a JDBC sink connector keeps from the entity's
latest topic (`seam.connectors.sink`), cut at the legacy position and compared row by row.

The cut: the sink's consumer group must have committed, on the latest topic, at least the
offsets the topic had when the legacy cut was reached (Connect commits a sink's offsets only
after its rows are written), so the table holds the cut, and perhaps a little more, which the
newer cuts of the recheck settle as they do for the other sides.

Why rows and not digests computed in the database: the parity digest
(`seam.migration.digest`) is a BLAKE2b of the nested state's canonical JSON, and the table
holds a flattened, typed rendering of it (`price_amount`, timestamptz, double precision).
PostgreSQL has no BLAKE2b, and rebuilding orjson's exact text of floats and timestamps from
column values in SQL would be a second, drifting copy of the rendering. So the table is read
in primary-key ranges (keyset pages over a server-side cursor), each row turned back into the
state's flat form in Python and compared with the legacy state flattened the same way:
memory stays at one page plus the set of keys seen, and a digest computed on fetched rows
would save nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from seam.errors import ConfigError, SeamError
from seam.migration.digest import canonical

if TYPE_CHECKING:
    from seam.migration.parity_legacy import LegacyCut
    from seam.settings import Settings

PAGE: Final = 10_000  # rows fetched at a time
TIMESTAMP: Final = "timestamp(6) with time zone"
FLOAT: Final = "double precision"


@dataclass(frozen=True)
class SinkTable:
    """What a sink connector writes: its table, key and columns, read from its config."""

    connector: str
    url: str  # the sink database, with credentials from seam's settings
    schema: str
    table: str
    key: str  # the primary key column
    own_key: bool  # the key column holds a composite key's text and is no field of the state
    value_schema: Mapping[str, Any]  # the Connect struct schema of the state
    topic: str
    group: str

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"


def resolve_sink(settings: Settings, spec_or_name: str) -> SinkTable:
    """The sink of a `kind: jdbc-sink` spec file, or of the connector of that name on Connect."""
    from seam.connectors.sink import (
        SinkSpec,
        is_sink_config,
        render_sink,
        sink_group,
        target_url,
    )

    path = Path(spec_or_name)
    if path.is_file():
        from seam.connectors.spec import load_specs

        specs = [s for s in load_specs([path]) if isinstance(s, SinkSpec)]
        if len(specs) != 1:
            raise ConfigError(
                f"{path} holds {len(specs)} sink specs (kind: jdbc-sink), not one",
                hint="pass the spec file of the one sink to compare, or its connector name",
            )
        (spec,) = specs
        config = render_sink(spec, settings).config
        url = target_url(spec, settings)
        name = spec.name
    else:
        from seam.connectors.client import ConnectClient

        name = spec_or_name
        client = ConnectClient.from_settings(settings)
        if name not in client.list_connectors(expand=False):
            raise ConfigError(
                f"--sink {name}: no such file, and no connector of that name on Connect",
                hint="pass the sink's spec file or a name `seam connectors status` lists",
            )
        config = client.get_config(name)
        if not is_sink_config(config):
            raise ConfigError(
                f"--sink {name}: the connector is not a JDBC sink ({config.get('connector.class')})",
                hint="name the connector that writes the entity's latest topic into a table",
            )
        url = _database_of(settings, name, config["connection.url"])
    return _from_config(name, config, url, sink_group(name, config))


def _from_config(name: str, config: Mapping[str, str], url: str, group: str) -> SinkTable:
    from seam.connectors.sink import STRING_CONVERTER

    schema = json.loads(config["value.converter.schema.content"])
    key = config["primary.key.fields"]
    fields = {f["field"] for f in schema.get("fields") or []}
    own_key = config.get("key.converter") == STRING_CONVERTER and key not in fields
    from seam.connectors.sink import _COLUMN, _IDENTIFIER

    target = config.get("collection.name.format", "")
    if not _IDENTIFIER.match(target) or not _COLUMN.match(key):
        raise ConfigError(
            f"--sink {name}: its table {target!r} or key column {key!r} is not a plain SQL "
            "name (seam compares the sinks it renders: `kind: jdbc-sink` specs)",
            hint="pass the spec file of a sink seam renders, or its connector name",
        )
    namespace, _dot, table = target.rpartition(".")
    return SinkTable(
        connector=name,
        url=url,
        schema=namespace or "public",
        table=table,
        key=key,
        own_key=own_key,
        value_schema=schema,
        topic=config["topics"].split(",")[0].strip(),
        group=group,
    )


def _database_of(settings: Settings, name: str, jdbc: str) -> str:
    """The settings' PostgreSQL URL of the server a sink writes to, on its database: the one
    whose host and port the JDBC URL names, else the only PostgreSQL database there is."""
    from urllib.parse import urlsplit

    from seam.connectors.engine import parse_url, with_database

    where = urlsplit(jdbc.removeprefix("jdbc:"))
    dbname = where.path.lstrip("/")
    servers = []
    for url in (s.reveal() for s in settings.databases.values()):
        if url.split("://", 1)[0].split("+", 1)[0].lower() in ("postgresql", "postgres"):
            servers.append(url)
    same = [
        u for u in servers if (parse_url(u).host, parse_url(u).port) == (where.hostname, where.port)
    ]
    chosen = same or servers
    if len(chosen) != 1:
        raise ConfigError(
            f"--sink {name}: cannot tell which PostgreSQL database of the settings is the "
            f"sink's server ({where.hostname}:{where.port})",
            hint="pass the sink's spec file instead of its name (it names the database)",
        )
    return with_database(chosen[0], dbname)


# ---------------------------------------------------------------------------- the cut


def parse_after(after: str) -> dict[int, int]:
    """`partition:next offset,...` (what `read_topic` notes) as a mapping."""
    out = {}
    for part in filter(None, after.split(",")):
        partition, _colon, offset = part.partition(":")
        out[int(partition)] = int(offset)
    return out


def wait_sink(settings: Settings, sink: SinkTable, after: str, timeout_s: float) -> bool:
    """Whether the sink's consumer group commits at least `after` on its topic within
    `timeout_s` (its rows are then written up to there)."""
    from seam.connectors.sink import committed_offsets

    target = parse_after(after)
    deadline = time.monotonic() + timeout_s
    while True:
        committed = committed_offsets(settings, sink.group, sink.topic)
        if all(committed.get(p, -1) >= o for p, o in target.items() if o > 0):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)


# ---------------------------------------------------------------------------- the rows


def flatten(
    state: Mapping[str, Any], schema: Mapping[str, Any], types: Mapping[str, str]
) -> dict[str, Any]:
    """A state as the sink's row holds it: the schema's fields only, nested objects as
    `outer_inner` columns (Kafka's Flatten), nulls left out, values in the columns' form
    (`types`: column -> type, of the columns whose values `normal` changes at least)."""
    out: dict[str, Any] = {}

    def walk(value: Mapping[str, Any], struct: Mapping[str, Any], prefix: str) -> None:
        for field in struct.get("fields") or []:
            name, got = f"{prefix}{field['field']}", value.get(field["field"])
            if got is None:
                continue
            if field["type"] == "struct":
                if isinstance(got, Mapping):
                    walk(got, field, f"{name}_")
            else:
                kind = types.get(name)
                out[name] = got if kind is None else normal(got, kind)

    walk(state, schema, "")
    return out


def normal(value: Any, column_type: str) -> Any:
    """A value in the form both sides compare in: timestamps as UTC text with microseconds
    (the state's ISO text and the column's datetime alike), floats as floats."""
    if column_type.endswith("[]") and isinstance(value, list):
        return [normal(v, column_type[:-2]) for v in value]
    if column_type == TIMESTAMP:
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = datetime.fromisoformat(value)
        if isinstance(value, datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            return value.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"
    if column_type == FLOAT and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value


class SinkReader:
    """The sink's table, read at a cut and compared with the legacy states."""

    def __init__(self, sink: SinkTable) -> None:
        from seam.connectors.connect_schema import columns

        self.sink = sink
        found = columns(sink.value_schema)
        self.types = {c.name: c.type for c in found}
        self.columns = [c.name for c in found]
        # The columns whose values `normal` changes: the others are compared as fetched.
        self.converted = {
            name: kind
            for name, kind in self.types.items()
            if kind in (TIMESTAMP, FLOAT) or kind.endswith("[]")
        }

    def legacy_row(self, canon: bytes | None) -> bytes | None:
        """A legacy state (canonical JSON) as the sink row it should be, canonical."""
        if canon is None:
            return None
        import orjson

        return canonical(flatten(orjson.loads(canon), self.sink.value_schema, self.converted))

    def flat(self, cut: LegacyCut) -> LegacyCut:
        """The legacy cut with its states as the sink's rows should be."""
        states = {k: self.legacy_row(v) for k, v in cut.states.items()}
        return dataclasses.replace(cut, states={k: v for k, v in states.items() if v})

    def rows(self, keys: Sequence[str] | None = None) -> Iterator[tuple[str, bytes]]:
        """(key text, the row in canonical flat form) of every row, or of `keys` only."""
        from sqlalchemy import text

        from seam.connectors.engine import connect

        key = self.sink.key
        wanted = [c for c in self.columns if c != key]
        select = ", ".join([key, *wanted])
        try:
            with connect(self.sink.url) as conn:
                if keys is not None:
                    for start in range(0, len(keys), PAGE):
                        result = conn.execute(
                            text(
                                f"SELECT {select} FROM {self.sink.qualified} "
                                f"WHERE CAST({key} AS TEXT) = ANY(:keys)"
                            ),
                            {"keys": list(keys[start : start + PAGE])},
                        )
                        yield from self._page(result.keys(), result.all())
                    return
                last: Any = None
                # Keyset pages in the primary key's order (the index walks it): a million
                # rows never sit in memory at once, and no page re-reads the ones before.
                while True:
                    after = "" if last is None else f"WHERE {key} > :last "
                    result = conn.execute(
                        text(
                            f"SELECT {select} FROM {self.sink.qualified} {after}"
                            f"ORDER BY {key} LIMIT {PAGE}"
                        ),
                        {"last": last},
                    )
                    page = result.all()
                    if not page:
                        return
                    last = page[-1][0]
                    yield from self._page(result.keys(), page)
        except SeamError as exc:
            from seam.migration.parity import CannotCompareError

            raise CannotCompareError(
                f"cannot read the sink table {self.sink.qualified} of {self.sink.connector}: "
                f"{exc.message}",
                hint="check that the sink's database is up and its table has every column "
                "of the state schema (`seam connectors status` the sink; apply it again "
                "after a new schema version)",
            ) from None

    def _page(
        self, names: Iterable[str], page: Sequence[Sequence[Any]]
    ) -> Iterator[tuple[str, bytes]]:
        """Rows fetched as (key, the columns...) in canonical flat form."""
        names = list(names)
        own_key = self.sink.own_key
        converted = [(i, n, self.converted[n]) for i, n in enumerate(names) if n in self.converted]
        for row in page:
            values = {n: v for n, v in zip(names, row, strict=True) if v is not None}
            for _i, name, kind in converted:
                if name in values:
                    values[name] = normal(values[name], kind)
            if own_key:
                del values[names[0]]
            yield str(row[0]), canonical(values)


__all__ = ["SinkReader", "SinkTable", "flatten", "normal", "resolve_sink", "wait_sink"]

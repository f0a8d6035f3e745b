"""`seam history ...`: a pipeline's history topic as an audit trail, through a local index.

    seam history index PIPELINE                       build or bring up to date the index
    seam history timeline PIPELINE KEY                every event of KEY, with provenance
    seam history as-of PIPELINE KEY --at TIME         KEY's state then (or --position POS)
    seam history why PIPELINE KEY FIELD               the event and raw change behind a value

The index (`seam.services.history_index`) is one SQLite file per history topic, by default
under `$XDG_DATA_HOME/seam/history/` (`~/.local/share/...`), named after the cluster and the
topic; `--index PATH` puts it elsewhere. The queries bring it up to date first (reading only
what is new) unless `--no-update`. Never commits offsets.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from seam.cli.context import settings
from seam.cli.render import OUTPUT, Output, print_json, print_table

if TYPE_CHECKING:
    from seam.services.history_index import EventRef, HistoryIndex, TimelineEntry
    from seam.streams.kafka import Kafka

app = typer.Typer(
    help="A pipeline's history as an audit trail: timelines, state as of a time or source "
    "position, and why a field holds its value.",
    no_args_is_help=True,
)

PIPELINE = typer.Argument(..., help="Pipeline file (YAML) whose history topic to read.")
KEY = typer.Argument(..., help='The entity key: 42; a composite one as [3,"B"] or 3,B.')
INDEX = typer.Option(
    None, "--index", help="The index file (default: per cluster and topic, under the data dir)."
)
NO_UPDATE = typer.Option(
    False, "--no-update", help="Query the index as it is, without reading new events first."
)
AT = typer.Option(None, "--at", help="A time (ISO 8601, UTC unless it has an offset).")
POSITION = typer.Option(
    None,
    "--position",
    help="A source position: LSN (0/16B3748), binlog file:pos[:row], or GTID (0-1-42, uuid:N).",
)
TIMEOUT = typer.Option(
    10.0, "--timeout", min=0.5, help="Seconds to wait for the broker before giving up."
)


@contextmanager
def _opened(
    ctx: typer.Context, pipeline: Path, index_path: Path | None, timeout: float
) -> Iterator[tuple[HistoryIndex, Kafka]]:
    from seam.services.history_index import HistoryIndex, default_index
    from seam.streams.kafka import Kafka
    from seam.transforms.pipeline_file import load_pipeline

    spec = load_pipeline(pipeline)
    config = settings(ctx)
    topic = spec.history.topic
    path = index_path or default_index(config.kafka.bootstrap_servers, topic)
    index = HistoryIndex(path, topic, spec.declaration)
    kafka = Kafka(config.kafka, timeout=timeout)
    try:
        yield index, kafka
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    finally:
        kafka.close()
        index.close()


def _update(index: HistoryIndex, kafka: Kafka, no_update: bool) -> None:
    if no_update:
        return
    report = index.catch_up(kafka)
    if report.indexed:
        typer.echo(
            f"indexed {report.indexed} new event(s) of {index.topic} in {report.seconds:.1f}s",
            err=True,
        )
    for note in report.notes:
        typer.echo(f"note: {note}", err=True)


def _cut(at: str | None, position: str | None) -> dict[str, Any]:
    from seam.errors import SeamError
    from seam.services.history_index import parse_time
    from seam.services.history_positions import parse_position

    if at is not None and position is not None:
        raise SeamError("--at and --position both given", hint="give one of them")
    return {
        "at": parse_time(at) if at is not None else None,
        "position": parse_position(position) if position is not None else None,
    }


def _value(value: Any) -> str:
    import orjson

    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _ref(ref: EventRef) -> str:
    return (
        f"{ref.event_type}  {ref.occurred_at or '-'}  {ref.position}  "
        f"(partition {ref.partition} offset {ref.offset})"
    )


def _entry_lines(entry: TimelineEntry) -> list[str]:
    prov = entry.provenance
    head = f"{entry.event.occurred_at or '-'}  {entry.event.event_type}"
    if entry.trigger:
        head += f" ({entry.trigger})"
    if entry.duplicate:
        head += "  DUPLICATE of an earlier delivery: not folded"
    raw = f"{prov.get('topic')}/{prov.get('partition')}@{prov.get('offset')}"
    lines = [
        head,
        f"    {prov.get('table') or '-'}  {entry.event.position}"
        f"{'  snapshot' if prov.get('snapshot') else ''}  raw {raw}",
        f"    event {entry.event.event_id}  at partition {entry.event.partition} "
        f"offset {entry.event.offset}",
    ]
    for change in entry.changes:
        columns = f"  ({', '.join(change.columns)})" if change.columns else ""
        new = "(not carried)" if change.unknown else _value(change.new)
        old = "-" if change.old is None else _value(change.old)
        lines.append(f"    {change.field}: {old} -> {new}{columns}")
    return lines


@app.command("index")
def index_cmd(
    ctx: typer.Context,
    pipeline: Path = PIPELINE,
    index_path: Path | None = INDEX,
    rebuild: bool = typer.Option(False, "--rebuild", help="Forget the index, read from offset 0."),
    output: Output = OUTPUT,
    timeout: float = TIMEOUT,
) -> None:
    """Build the index of the pipeline's history topic, or read on from where it stopped."""
    from seam.services.history_index import as_json

    with _opened(ctx, pipeline, index_path, timeout) as (index, kafka):
        if rebuild:
            index.reset()
        report = index.catch_up(kafka)
        path = index.path
    if output == Output.json:
        print_json({**as_json(report), "index": str(path)})
        return
    typer.echo(
        f"{report.topic}: {report.indexed} new event(s) from {report.records} record(s) in "
        f"{report.seconds:.1f}s; the index holds {report.events} events, "
        f"{report.bytes / 1e6:.1f} MB ({path})"
    )
    for note in report.notes:
        typer.echo(f"note: {note}", err=True)


@app.command()
def timeline(
    ctx: typer.Context,
    pipeline: Path = PIPELINE,
    key: str = KEY,
    index_path: Path | None = INDEX,
    no_update: bool = NO_UPDATE,
    output: Output = OUTPUT,
    timeout: float = TIMEOUT,
) -> None:
    """Every event of KEY, oldest first: its provenance back to the legacy transaction
    (table, LSN or binlog position, transaction id, source time, raw record) and the fields
    it changed (with the legacy columns they come from)."""
    from seam.services.history_index import as_json

    with _opened(ctx, pipeline, index_path, timeout) as (index, kafka):
        _update(index, kafka, no_update)
        found = index.timeline(key)
    if output == Output.json:
        print_json(as_json(found))
        return
    typer.echo(f"{found.topic}  key {found.key}  {len(found.entries)} event(s)\n")
    for entry in found.entries:
        typer.echo("\n".join(_entry_lines(entry)) + "\n")


@app.command("as-of")
def as_of(
    ctx: typer.Context,
    pipeline: Path = PIPELINE,
    key: str = KEY,
    at: str | None = AT,
    position: str | None = POSITION,
    index_path: Path | None = INDEX,
    no_update: bool = NO_UPDATE,
    output: Output = OUTPUT,
    timeout: float = TIMEOUT,
) -> None:
    """KEY's state after its last event at or before --at (source time) or --position
    (source log position); with neither, its latest state. Each field names the event that
    set it."""
    from seam.services.history_index import as_json

    cut = _cut(at, position)
    with _opened(ctx, pipeline, index_path, timeout) as (index, kafka):
        _update(index, kafka, no_update)
        found = index.as_of(key, **cut)
    if output == Output.json:
        print_json(as_json(found))
        return
    if not found.exists:
        typer.echo(f"key {found.key} had no events as of {found.cut}: it did not exist yet")
        return
    if not found.live:
        typer.echo(
            f"key {found.key} as of {found.cut}: gone ({found.gone_reason or 'reason unknown'})"
        )
        if found.last_event is not None:
            typer.echo(f"  by {_ref(found.last_event)}")
        return
    state = found.state or {}
    fields = [*state, *found.unknown]
    print_table(
        f"key {found.key} as of {found.cut}",
        ["field", "value", "set by"],
        [
            (
                name,
                "(unknown)" if name in found.unknown else _value(state.get(name)),
                _ref(found.set_by[name]) if name in found.set_by else "",
            )
            for name in fields
        ],
        keep=["field"],
    )
    if found.untracked:
        typer.echo(
            f"untracked: {', '.join(found.untracked)} change without an event of their own: "
            "their values are those of the event shown, and may have changed since"
        )


@app.command()
def why(
    ctx: typer.Context,
    pipeline: Path = PIPELINE,
    key: str = KEY,
    field: str = typer.Argument(..., help="A state field of the entity."),
    at: str | None = AT,
    position: str | None = POSITION,
    index_path: Path | None = INDEX,
    no_update: bool = NO_UPDATE,
    no_types: bool = typer.Option(
        False, "--no-types", help="Show the raw change's values as Debezium sent them."
    ),
    output: Output = OUTPUT,
    timeout: float = TIMEOUT,
) -> None:
    """Why FIELD of KEY holds its value (latest, or as of --at / --position): the event that
    set it and the raw change record that event came from, decoded."""
    from seam.cli.streams import _decoder
    from seam.services.history_index import RawReader, as_json, read_raw_with

    cut = _cut(at, position)
    with _opened(ctx, pipeline, index_path, timeout) as (index, kafka):
        _update(index, kafka, no_update)

        def raw_reader(topic: str, partition: int, offset: int) -> Mapping[str, Any] | None:
            reader: RawReader = read_raw_with(kafka, _decoder(ctx, topic, no_types))
            return reader(topic, partition, offset)

        found = index.why(key, field, raw_reader=raw_reader, **cut)
    if output == Output.json:
        print_json(as_json(found))
        return
    what = "(not live)" if not found.live else _value(found.value)
    typer.echo(f"{found.field} of key {found.key} as of {found.cut}: {what}")
    if found.event is not None:
        typer.echo("set by:\n  " + "\n  ".join(_entry_lines(found.event)))
    if found.raw is not None:
        typer.echo("raw change:")
        print_json(found.raw)
    for note in found.notes:
        typer.echo(f"note: {note}")

"""`seam streams ...`: look into change topics without touching any consumer group.

Every command reads with explicit offsets (`assign()`), a throwaway group id and
auto-commit off: it never commits. Ctrl-C ends any of them cleanly (exit 130).
confluent_kafka and the readers are imported inside the commands so `seam --help` stays fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import typer

from seam.cli.context import settings

if TYPE_CHECKING:
    from seam.changes import ChangeEvent, RawRecord, Undecodable
    from seam.streams.kafka import Kafka

app = typer.Typer(
    help="Look into change topics: list them, tail decoded events, a row's history, lag.",
    no_args_is_help=True,
)


class Output(StrEnum):
    text = "text"
    json = "json"
    raw = "raw"


TIMEOUT = typer.Option(
    10.0, "--timeout", min=0.5, help="Seconds to wait for the broker before giving up."
)
NO_TYPES = typer.Option(
    False,
    "--no-types",
    help="Show values as Debezium sent them (days since 1970, base64...): skip reading the "
    "column types from the source database.",
)


def _decoder(
    ctx: typer.Context, topic: str, no_types: bool
) -> Callable[[RawRecord], ChangeEvent | Undecodable]:
    """How the records of `topic` are decoded: with the column types of its connector's
    database (`seam.connectors.live_types`), so values come out typed (a date, an exact
    decimal, bytes...). When they cannot be read, one warning line, and values as sent:
    looking into a topic must not fail because a database is down. A topic no connector
    writes (a domain topic) is decoded as it is, without a warning."""
    from seam.streams.decode import decode

    if no_types:
        return decode
    from seam.connectors.live_types import NoConnectorError, TopicTypes, TypesUnavailableError

    def warn(message: str) -> None:
        typer.echo("warning: " + " ".join(message.split()), err=True)

    types = TopicTypes(settings(ctx), on_problem=warn)
    try:
        types.load(topic)
    except NoConnectorError:
        return decode  # not a raw change topic (a domain topic): nothing to type, no noise
    except TypesUnavailableError as exc:
        warn(f"values shown as sent, untyped: {exc} (--no-types skips this look-up)")
        return decode
    return types.decode


@contextmanager
def _kafka(ctx: typer.Context, timeout: float) -> Iterator[Kafka]:
    """The read-only client, closed on the way out; Ctrl-C exits 130 without a traceback."""
    from seam.streams.kafka import Kafka

    client = Kafka(settings(ctx).kafka, timeout=timeout)
    try:
        yield client
    except KeyboardInterrupt:
        client.close()
        raise typer.Exit(130) from None
    except BrokenPipeError:  # `| head`: the reader went away, which is fine
        client.close()
        sys.stderr.close()
        raise typer.Exit(0) from None
    finally:
        client.close()


def _ts(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    prefix: str | None = typer.Option(None, "--prefix", help="Only topics starting with this."),
    all_topics: bool = typer.Option(False, "--all", help="Include internal topics."),
    output: Output = typer.Option(Output.text, "--output", "-o", help="text or json."),
    timeout: float = TIMEOUT,
) -> None:
    """Topics with partitions, offsets in use and the time span they cover.

    Offsets count the records of Connect's change topics; a topic written exactly once
    (the transform's outputs) also holds a transaction marker per commit and partition."""
    from seam.cli.render import print_json, print_table
    from seam.streams.topics import list_topics

    with _kafka(ctx, timeout) as kafka:
        topics = list_topics(kafka, prefix=prefix, include_internal=all_topics)
    if output is not Output.text:
        print_json(
            [
                {
                    "topic": t.name,
                    "partitions": t.partitions,
                    "offsets": t.offsets,
                    "first_ts_ms": t.first_ts_ms,
                    "last_ts_ms": t.last_ts_ms,
                    "internal": t.internal,
                }
                for t in topics
            ]
        )
        return
    if not topics:
        typer.echo("no topics" + (f" starting with '{prefix}'" if prefix else ""))
        return
    print_table(
        None,
        ["topic", "partitions", "offsets", "first (UTC)", "last (UTC)"],
        [(t.name, t.partitions, t.offsets, _ts(t.first_ts_ms), _ts(t.last_ts_ms)) for t in topics],
    )


def _printer(output: Output) -> Callable[[Any], None]:
    from seam.changes import Undecodable
    from seam.streams.format import event_json, event_text, raw_json, undecodable_text

    def show(item: Any) -> None:
        if output is Output.raw:
            typer.echo(raw_json(item.raw))
        elif output is Output.json:
            typer.echo(event_json(item))
        elif isinstance(item, Undecodable):
            typer.echo(undecodable_text(item) + "\n")
        else:
            typer.echo(event_text(item) + "\n")
        sys.stdout.flush()

    return show


@app.command()
def tail(
    ctx: typer.Context,
    topic: str = typer.Argument(..., help="A topic, or a table name (orders, public.orders)."),
    start: str | None = typer.Option(
        None,
        "--from",
        help="beginning | latest | an offset | an ISO time (UTC unless it has an offset). "
        "Default: the newest --limit events.",
    ),
    key: str | None = typer.Option(None, "--key", help='Only this key: 42, id=42, or {"id": 42}.'),
    ops: str | None = typer.Option(
        None, "--op", help="Only these operations: c,u,d,r (also t, m, tombstone)."
    ),
    where: list[str] = typer.Option(
        [], "--where", help="Only rows with column=value (the row after the change). Repeatable."
    ),
    limit: int | None = typer.Option(
        None, "--limit", "-n", min=1, help="Stop after N events (default 10 without --from)."
    ),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep waiting for new events."),
    output: Output = typer.Option(
        Output.text,
        "--output",
        "-o",
        help="text (readable; bytes as 0x hex), json (one per line; bytes as base64), "
        "raw (exact bytes).",
    ),
    no_types: bool = NO_TYPES,
    timeout: float = TIMEOUT,
) -> None:
    """Decoded change events of a topic, filtered. Never commits offsets.

    Values are typed with the column types of the source database (the connector whose
    topic.prefix the topic has): dates, timestamps, exact decimals, bytes, UUIDs; a value
    that cannot be typed shows as raw:<value as sent>."""
    from seam.streams.filters import EventFilter, parse_key, parse_ops, parse_where
    from seam.streams.reader import parse_from, read_events
    from seam.streams.topics import resolve_topic

    filt = EventFilter(
        ops=parse_ops(ops),
        key=parse_key(key) if key is not None else None,
        where=parse_where(where),
    )
    start_at = parse_from(start)
    show = _printer(output)
    with _kafka(ctx, timeout) as kafka:
        name = resolve_topic(kafka, topic)
        decoder = _decoder(ctx, name, no_types or output is Output.raw)
        count = 0
        events = read_events(
            kafka, name, start=start_at, filt=filt, limit=limit, follow=follow, decoder=decoder
        )
        for item in events:
            show(item)
            count += 1
    if count == 0 and output is Output.text:
        typer.echo(f"no matching events in {name}", err=True)


@app.command()
def history(
    ctx: typer.Context,
    topic: str = typer.Argument(..., help="A topic, or a table name (orders, public.orders)."),
    key: str = typer.Argument(..., help='The row\'s key: 42, id=42, or {"id": 42}.'),
    output: Output = typer.Option(Output.text, "--output", "-o", help="text, json or raw."),
    no_types: bool = NO_TYPES,
    timeout: float = TIMEOUT,
) -> None:
    """The whole life of one row, oldest first: what changed and when (values typed as
    `tail` types them).

    On a topic of other records (seam's domain events or latest states: plain text keys
    like 42) it is every record of that key, oldest first."""
    from seam.streams.filters import parse_key
    from seam.streams.format import (
        event_json,
        history_text,
        key_text,
        raw_json,
        undecodable_text,
    )
    from seam.streams.history import key_history
    from seam.streams.topics import resolve_topic
    from seam.text import plural

    spec = parse_key(key)
    with _kafka(ctx, timeout) as kafka:
        name = resolve_topic(kafka, topic)
        decoder = _decoder(ctx, name, no_types or output is Output.raw)
        result = key_history(kafka, name, spec, decoder)
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    items: list[ChangeEvent | Undecodable] = [entry.event for entry in result.entries]
    items = sorted([*items, *result.records], key=lambda i: (i.raw.partition, i.raw.offset))
    if output is Output.json:
        for item in items:
            typer.echo(event_json(item))
        return
    if output is Output.raw:
        for item in items:
            typer.echo(raw_json(item.raw))
        return
    partitions = result.partitions_read
    read = (
        f"{plural(result.records_scanned, 'record')} read from "
        f"{plural(len(partitions), 'partition')} {', '.join(map(str, partitions))}"
    )
    if not items:
        typer.echo(f"no records for key {key} in {name} ({read})", err=True)
        return
    if result.entries:
        first = result.entries[0].event
        what = plural(len(result.entries), "event")
        typer.echo(f"{name}  key {key_text(first.key)}  {what} ({read})\n")
        for entry in result.entries:
            typer.echo(history_text(entry) + "\n")
    if result.records:
        typer.echo(f"{name}  key {key}  {plural(len(result.records), 'record')} ({read})\n")
        for record in result.records:
            typer.echo(undecodable_text(record) + "\n")


@app.command()
def lag(
    ctx: typer.Context,
    group: str | None = typer.Argument(None, help="A consumer group; without it, every group."),
    output: Output = typer.Option(Output.text, "--output", "-o", help="text or json."),
    timeout: float = TIMEOUT,
) -> None:
    """Consumer-group lag: committed offset vs the end of each partition."""
    from seam.cli.render import print_json, print_table
    from seam.streams.lag import all_groups_lag, group_lag

    with _kafka(ctx, timeout) as kafka:
        groups = [group_lag(kafka, group)] if group else all_groups_lag(kafka)
    if output is not Output.text:
        print_json(
            [
                {
                    "group": g.group,
                    "state": g.state,
                    "total_lag": g.total_lag,
                    "partitions": [
                        {
                            "topic": p.topic,
                            "partition": p.partition,
                            "committed": p.committed,
                            "high": p.high,
                            "lag": p.lag,
                        }
                        for p in g.partitions
                    ],
                }
                for g in groups
            ]
        )
        return
    if group:
        g = groups[0]
        typer.echo(f"group {g.group} ({g.state.lower()}): total lag {g.total_lag}")
        print_table(
            None,
            ["topic", "partition", "committed", "end", "lag"],
            [
                (
                    p.topic,
                    p.partition,
                    "-" if p.committed is None else p.committed,
                    p.high,
                    "-" if p.lag is None else p.lag,
                )
                for p in g.partitions
            ],
        )
        return
    if not groups:
        typer.echo("no consumer groups")
        return
    print_table(
        None,
        ["group", "state", "topics", "total lag"],
        [(g.group, g.state.lower(), ", ".join(g.topics), g.total_lag) for g in groups],
    )

"""Column types for the topics a reader decodes: the one loader of `seam streams` and the
transform worker (`column_types: source`).

A raw change topic is `<topic.prefix>.<schema or database>.<table>`: the connector whose
`topic.prefix` the topic starts with (its config read from Kafka Connect) names the database
and the encoding, and `seam.connectors.columns` reads the column types from that database,
reached as `url_for_connector` does (a database of seam's settings on the same server, else
the connector's own user). Types are read once per connector; when a record carries a column
or a table they lack (`TableTypes.missed`: a column added since, a table captured by a
pattern), the tables concerned are read again, once per such column, and the record decoded
again with them. A column still unknown after that (one dropped since, that old records
carry) stays `Raw`.

What cannot be loaded (Connect or the database unreachable, no connector with that prefix) is
one `TypesUnavailableError` saying which and why; the caller decides whether that stops it
(the worker) or is a warning (`seam streams`, which then decodes without types).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from seam.changes import ChangeEvent, RawRecord, TableRef, Undecodable
from seam.connectors.columns import captured_tables_of, read_column_types
from seam.errors import SeamError
from seam.secrets import mask_url
from seam.streams.decode import decode
from seam.streams.types import ColumnChoice, Encoding, TableTypes

if TYPE_CHECKING:
    from seam.connectors.client import ConnectClient
    from seam.settings import Settings

__all__ = [
    "LiveTypes",
    "TopicTypes",
    "TypesUnavailableError",
    "connector_for_topic",
]

log = logging.getLogger("seam.types")

# Seconds to wait for a database while reading types: an inspection must not hang on one.
TYPES_CONNECT_TIMEOUT_S: Final = 5


class TypesUnavailableError(SeamError):
    """The column types of a topic could not be read (which, why, and the fix)."""


class NoConnectorError(TypesUnavailableError):
    """No live connector writes the topic: a domain topic, or its connector is gone."""


def connector_for_topic(
    topic: str, configs: Mapping[str, Mapping[str, str]]
) -> tuple[str, Mapping[str, str]] | None:
    """The Debezium database source whose `topic.prefix` `topic` starts with (the longest
    such prefix), among connector configs by name; None when there is none."""
    from seam.connectors.database import is_debezium_database_config

    found: tuple[str, Mapping[str, str]] | None = None
    best = -1
    for name, config in configs.items():
        prefix = config.get("topic.prefix", "")
        if (
            prefix
            and topic.startswith(prefix + ".")
            and len(prefix) > best
            and is_debezium_database_config(config)
        ):
            found, best = (name, config), len(prefix)
    return found


class LiveTypes:
    """One connector's `TableTypes`, read again when records carry what they lack."""

    def __init__(
        self,
        name: str,
        config: Mapping[str, str],
        settings: Settings,
        *,
        env: Mapping[str, str] | None = None,
        only: ColumnChoice | None = None,
        connect_timeout: int = TYPES_CONNECT_TIMEOUT_S,
        on_problem: Callable[[str], None] = log.warning,
    ) -> None:
        from seam.connectors.database import url_for_connector

        self.name = name
        self._encoding = Encoding.from_config(config)
        self._timeout = connect_timeout
        self._on_problem = on_problem
        self._tried: set[tuple[TableRef, str | None]] = set()
        try:
            self._url = url_for_connector(name, config, settings, env=env)
            columns = self._read(captured_tables_of(config))
        except SeamError as exc:
            raise TypesUnavailableError(
                f"cannot read the column types of connector '{name}' from "
                f"{self.database(config)}: {exc.message}",
                hint=exc.hint
                or "make the database reachable from here, or add it to [databases] of the "
                "config file",
            ) from None
        self.types = TableTypes(columns, self._encoding, only=only)

    @staticmethod
    def database(config: Mapping[str, str]) -> str:
        """Where a connector's database is, for messages (never a password)."""
        from seam.connectors.database import is_postgres_config

        db = (
            config.get("database.dbname", "")
            if is_postgres_config(config)
            else config.get("database.include.list", "").split(",")[0]
        )
        host, port = config.get("database.hostname", "?"), config.get("database.port", "")
        return f"database {db or '?'} on {host}{':' + port if port else ''}"

    def _read(self, tables: list[str]) -> dict[TableRef, dict[str, Any]]:
        return dict(
            read_column_types(
                self._url,
                tables,
                money_digits=self._encoding.money_digits,
                connect_timeout=self._timeout,
            )
        )

    def refresh(self) -> bool:
        """After a decode that met a column or table the types lack: read those tables
        again (each such column once). True when there are new types to decode with."""
        missed = self.types.missed - self._tried
        self.types.missed.clear()
        if not missed:
            return False
        self._tried |= missed
        tables = sorted({table.qualified for table, _ in missed})
        try:
            columns = self._read(tables)
        except SeamError as exc:
            self._on_problem(
                f"column types of {', '.join(tables)} (connector '{self.name}') not read "
                f"again from {mask_url(self._url)}: {exc}; their new columns stay raw"
            )
            return False
        if not columns:
            return False
        self.types = self.types.with_columns(columns)
        return True


class TopicTypes:
    """Column types by topic, for decoding: each topic's connector is found on Kafka Connect
    (by its `topic.prefix`) and its types read once, shared by the topics of one connector."""

    def __init__(
        self,
        settings: Settings,
        *,
        client: ConnectClient | None = None,
        env: Mapping[str, str] | None = None,
        only: ColumnChoice | None = None,
        connect_timeout: int = TYPES_CONNECT_TIMEOUT_S,
        on_problem: Callable[[str], None] = log.warning,
    ) -> None:
        self.settings = settings
        self._client = client
        self._env = env
        self._only = only
        self._timeout = connect_timeout
        self._on_problem = on_problem
        self._configs: dict[str, Mapping[str, str]] | None = None
        self._by_connector: dict[str, LiveTypes] = {}
        self._by_topic: dict[str, LiveTypes] = {}

    def _connectors(self) -> dict[str, Mapping[str, str]]:
        if self._configs is None:
            from seam.connectors.client import ConnectClient, RetryPolicy

            client = self._client or ConnectClient.from_settings(
                self.settings, timeout=5.0, retries=RetryPolicy(attempts=2)
            )
            try:
                listed = client.list_connectors(expand=True)
            except SeamError as exc:
                raise TypesUnavailableError(
                    f"cannot ask Kafka Connect at {self.settings.connect_url} which connector "
                    f"writes the topic: {exc.message}",
                    hint=exc.hint or "check connect.url in the config file (or SEAM_CONNECT_URL)",
                ) from None
            self._configs = {
                name: (entry.get("info") or {}).get("config") or {}
                for name, entry in listed.items()
            }
        return self._configs

    def load(self, topic: str) -> LiveTypes:
        """The types of `topic`'s connector, read on first use (TypesUnavailableError when
        they cannot be)."""
        live = self._by_topic.get(topic)
        if live is not None:
            return live
        configs = self._connectors()
        found = connector_for_topic(topic, configs)
        if found is None:
            prefixes = sorted(
                f"{c['topic.prefix']} ({n})" for n, c in configs.items() if c.get("topic.prefix")
            )
            raise NoConnectorError(
                f"no Debezium PostgreSQL/MySQL/MariaDB connector on Kafka Connect at "
                f"{self.settings.connect_url} has a topic.prefix that {topic} starts with "
                f"(prefixes: {', '.join(prefixes) or 'none'})",
                hint="a raw change topic is <topic.prefix>.<schema>.<table> of a live connector",
            )
        name, config = found
        live = self._by_connector.get(name)
        if live is None:
            live = self._by_connector[name] = LiveTypes(
                name,
                config,
                self.settings,
                env=self._env,
                only=self._only,
                connect_timeout=self._timeout,
                on_problem=self._on_problem,
            )
        self._by_topic[topic] = live
        return live

    def connector_of(self, topic: str) -> str | None:
        """The connector whose types `topic` was loaded with (None: not loaded)."""
        live = self._by_topic.get(topic)
        return live.name if live is not None else None

    def decode(self, record: RawRecord) -> ChangeEvent | Undecodable:
        """`decode(record, types)` with the types of the record's topic (untyped for a topic
        not loaded); a record that meets a column or table they lack is decoded again after
        they are read again."""
        live = self._by_topic.get(record.topic)
        if live is None:
            return decode(record)
        types = live.types
        item = decode(record, types)
        if types.missed and live.refresh():
            item = decode(record, live.types)
        return item

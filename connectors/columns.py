"""Read the column types of captured tables from the source database, for the decoder.

`table_types(url, tables, config)` asks the database (PostgreSQL: information_schema and
pg_type; MySQL/MariaDB: information_schema) what each column is, and returns the
`seam.streams.types.TableTypes` that `decode(record, types)` uses to type records without an
embedded schema. `config` is the connector's config (rendered by seam or read from Connect):
its `decimal.handling.mode`, `time.precision.mode`, `binary.handling.mode` and
`interval.handling.mode` say how Debezium encoded each value. One query per connector, at
start; a table altered later gets its new columns marked `Raw` until the types are read again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from seam.changes import TableRef
from seam.connectors.engine import connect, flavour_of
from seam.streams.types import ColumnType, Encoding, TableTypes

if TYPE_CHECKING:
    from seam.settings import Settings

__all__ = [
    "captured_tables_of",
    "connector_types",
    "mysql_column_type",
    "postgres_column_type",
    "read_column_types",
    "table_types",
]

_PG_KINDS: Final = {
    **dict.fromkeys(("int2", "int4", "int8", "oid"), "int"),
    **dict.fromkeys(("float4", "float8"), "float"),
    "bool": "bool",
    "numeric": "decimal",
    "money": "decimal",
    **dict.fromkeys(
        ("text", "varchar", "bpchar", "char", "name", "citext", "xml", "inet", "cidr"), "text"
    ),
    **dict.fromkeys(("macaddr", "macaddr8", "ltree"), "text"),
    "date": "date",
    "time": "time",
    "timetz": "timetz",
    "timestamp": "timestamp",
    "timestamptz": "timestamptz",
    "interval": "interval",
    "bytea": "bytes",
    "varbit": "bits",
    "uuid": "uuid",
    "json": "json",
    "jsonb": "json",
}

_MYSQL_KINDS: Final = {
    **dict.fromkeys(("tinyint", "smallint", "mediumint", "int", "integer", "bigint"), "int"),
    "year": "int",
    **dict.fromkeys(("float", "double", "real"), "float"),
    **dict.fromkeys(("decimal", "numeric"), "decimal"),
    **dict.fromkeys(
        ("char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"), "text"
    ),
    "date": "date",
    "time": "duration",
    "datetime": "timestamp",
    "timestamp": "timestamptz",
    **dict.fromkeys(("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"), "bytes"),
    "json": "json",
    "uuid": "uuid",
    "bool": "bool",
    "boolean": "bool",
}


def postgres_column_type(
    udt: str,
    *,
    scale: int | None = None,
    precision: int | None = None,
    length: int | None = None,
    enum: bool = False,
    money_digits: int = 2,
) -> ColumnType:
    """A PostgreSQL column's type from its information_schema description (`udt` is
    `udt_name`: arrays are `_<element>`; a domain is described by its base type)."""
    if udt.startswith("_"):
        element = postgres_column_type(udt[1:], enum=enum, money_digits=money_digits)
        return ColumnType("array", udt[1:] + "[]", element=element)
    if enum:
        return ColumnType("text", udt)
    if udt == "bit":
        return ColumnType("bool" if length == 1 else "bits", udt)
    kind = _PG_KINDS.get(udt, "unknown")
    if udt == "money":
        scale = money_digits
    return ColumnType(kind, udt, scale=scale, precision=precision)


def mysql_column_type(
    data_type: str, column_type: str, *, scale: int | None = None, precision: int | None = None
) -> ColumnType:
    """A MySQL/MariaDB column's type from information_schema.COLUMNS (DATA_TYPE, COLUMN_TYPE,
    NUMERIC_SCALE and, for BIT, NUMERIC_PRECISION; DATETIME_PRECISION for temporal types)."""
    data_type = data_type.lower()
    if data_type == "bit":
        return ColumnType("bool" if column_type.lower() in ("bit(1)", "bit") else "bits", "bit")
    kind = _MYSQL_KINDS.get(data_type, "unknown")
    return ColumnType(kind, data_type, scale=scale, precision=precision)


_PG_QUERY: Final = """
SELECT c.table_schema, c.table_name, c.column_name, c.udt_name, c.numeric_scale,
       c.datetime_precision, c.character_maximum_length,
       COALESCE(t.typtype = 'e' OR et.typtype = 'e', false) AS is_enum
FROM information_schema.columns c
LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = c.udt_schema
LEFT JOIN pg_catalog.pg_type t ON t.typname = c.udt_name AND t.typnamespace = n.oid
LEFT JOIN pg_catalog.pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
WHERE c.table_schema = :schema AND c.table_name = :table
ORDER BY c.ordinal_position
"""

_MYSQL_QUERY: Final = """
SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_SCALE,
       DATETIME_PRECISION
FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = :schema AND TABLE_NAME = :table
ORDER BY ORDINAL_POSITION
"""


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


def read_column_types(
    url: str, tables: Iterable[str], *, money_digits: int = 2, connect_timeout: int | None = None
) -> dict[TableRef, dict[str, ColumnType]]:
    """The column types of `tables` (`schema.table` / `database.table`) in the database at
    `url`. A table that does not exist is left out (its records stay as sent)."""
    from sqlalchemy import text

    postgres = flavour_of(url) == "postgres"
    found: dict[TableRef, dict[str, ColumnType]] = {}
    options: dict[str, Any] = {}
    if connect_timeout is not None:
        options["connect_args"] = {"connect_timeout": connect_timeout}
    with connect(url, **options) as conn:
        for qualified in tables:
            schema, _, table = qualified.rpartition(".")
            schema = schema or ("public" if postgres else "")
            query = text(_PG_QUERY if postgres else _MYSQL_QUERY)
            rows = conn.execute(query, {"schema": schema, "table": table}).all()
            columns: dict[str, ColumnType] = {}
            for row in rows:
                if postgres:
                    columns[row[2]] = postgres_column_type(
                        row[3],
                        scale=_int(row[4]),
                        precision=_int(row[5]),
                        length=_int(row[6]),
                        enum=bool(row[7]),
                        money_digits=money_digits,
                    )
                else:
                    columns[row[2]] = mysql_column_type(
                        str(row[3]), str(row[4]), scale=_int(row[5]), precision=_int(row[6])
                    )
            if columns:
                found[TableRef(schema, table)] = columns
    return found


def table_types(
    url: str,
    tables: Iterable[str],
    config: Mapping[str, str],
    *,
    connect_timeout: int | None = None,
) -> TableTypes:
    """What the decoder needs to type the records of a connector with `config` capturing
    `tables` of the database at `url`."""
    encoding = Encoding.from_config(config)
    columns = read_column_types(
        url, tables, money_digits=encoding.money_digits, connect_timeout=connect_timeout
    )
    return TableTypes(columns, encoding)


# A table.include.list entry is a regex; seam renders plain names (dots escaped or not).
_PLAIN_TABLE: Final = re.compile(r"(?:[\w$]+(?:\\?\.))?[\w$]+")


def captured_tables_of(config: Mapping[str, str]) -> list[str]:
    """The tables a connector config names in `table.include.list`. An entry that is a real
    pattern (`public\\..*`) names no table: its tables' records stay as sent."""
    tables = []
    for entry in config.get("table.include.list", "").split(","):
        entry = entry.strip()
        if _PLAIN_TABLE.fullmatch(entry):
            tables.append(entry.replace("\\.", "."))
    return tables


def connector_types(
    name: str,
    config: Mapping[str, str],
    settings: Settings,
    *,
    env: Mapping[str, str] | None = None,
    connect_timeout: int | None = None,
) -> TableTypes:
    """The types of the tables a connector (its config as rendered or as Connect returns it)
    captures, read from its database (reached as `url_for_connector` does)."""
    from seam.connectors.database import url_for_connector

    url = url_for_connector(name, config, settings, env=env)
    return table_types(url, captured_tables_of(config), config, connect_timeout=connect_timeout)

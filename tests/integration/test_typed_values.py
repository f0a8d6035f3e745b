"""Typed values through the real connectors seam renders: a PostgreSQL and a MariaDB table of
every common column type, captured by `seam connectors apply` of a spec of our own (records
without a schema, as seam renders them), decoded with the column types read from the database:
each decoded value equals what was inserted, in seam's decimal mode (string) and in Debezium's
default (precise)."""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient
from typer.testing import CliRunner

from seam.changes import ChangeEvent, Raw, RawRecord
from seam.connectors.client import ConnectClient
from seam.connectors.columns import connector_types, table_types
from seam.connectors.errors import ConnectNotFoundError
from seam.connectors.render import render
from seam.connectors.spec import parse_specs
from seam.errors import ConfigError
from seam.kafka_config import client_config
from seam.settings import Settings
from seam.streams.decode import decode

pytestmark = pytest.mark.integration

U = uuid.UUID("6f1c1f9e-7a43-4bd5-9f5e-2d6a1c0b9e11")

PG_TABLE = """CREATE TABLE {t} (
  id int PRIMARY KEY, n numeric(12,2), nv numeric, m money, r real, d double precision,
  b boolean, tx text, vc varchar(20), ch char(3), dt date, tm time, tm3 time(3), ttz timetz,
  ts timestamp, ts3 timestamp(3), tstz timestamptz, iv interval, by bytea, u uuid, j json,
  jb jsonb, ai int[], atx text[], ad date[], mood {mood}, pt point, i8 bigint, i2 smallint)"""

PG_ROW: dict[str, Any] = {
    "id": 1,
    "n": Decimal("19.99"),
    "nv": Decimal("-12345.000678"),
    "m": Decimal("1234.50"),
    "r": 1.5,
    "d": 2.25,
    "b": True,
    "tx": "B88=",  # a text that looks like a base64 decimal stays text
    "vc": "héllo",
    "ch": "ab ",
    "dt": date(2024, 2, 29),
    "tm": dtime(13, 5, 7, 123456),
    "tm3": dtime(13, 5, 7, 123000),
    "ttz": dtime(10, 15, 30, tzinfo=timezone(timedelta(hours=2))),
    "ts": datetime(2024, 3, 1, 8, 11, 12, 654321),
    "ts3": datetime(1969, 7, 20, 20, 17, 40, 500000),
    "tstz": datetime(2024, 3, 31, 1, 30, tzinfo=UTC),
    "iv": timedelta(days=3, hours=4, minutes=5, seconds=6, microseconds=500000),
    "by": b"\x00\xff\x10seam",
    "u": U,
    "j": {"a": [1, 2.5, None], "b": "x"},
    "jb": {"k": {"nested": True}},
    "ai": [1, None, 3],
    "atx": ["a", "b c"],
    "ad": [date(2000, 1, 1), date(1970, 1, 1)],
    "mood": "happy",
    "i8": 2**62,
    "i2": -7,
}
PG_NULLS = {"id": 2, **{k: None for k in PG_ROW if k != "id"}, "pt": None}

MY_TABLE = """CREATE TABLE {t} (
  id INT PRIMARY KEY, n DECIMAL(12,2), n0 DECIMAL(20,0), f FLOAT, d DOUBLE, b BOOLEAN,
  tx TEXT, vc VARCHAR(20), dt DATE, tm TIME(6), tm0 TIME, dtm DATETIME, dtm3 DATETIME(3),
  dtm6 DATETIME(6), tsz TIMESTAMP(6) NULL, y YEAR, vb VARBINARY(16), bl BLOB, bt BIT(1),
  e ENUM('small','large'), st SET('a','b'), j JSON, u UUID, bi BIGINT UNSIGNED, pt POINT)"""

MY_ROW: dict[str, Any] = {
    "id": 1,
    "n": Decimal("19.99"),
    "n0": Decimal("12345678901234567890"),
    "f": 1.5,
    "d": 2.25,
    "b": 1,
    "tx": "B88=",
    "vc": "héllo",
    "dt": date(2024, 2, 29),
    "tm": timedelta(hours=-1, minutes=-2, seconds=-3, microseconds=-500000),
    "tm0": timedelta(hours=838, minutes=59, seconds=59),
    "dtm": datetime(2024, 3, 1, 8, 11, 12),
    "dtm3": datetime(1999, 12, 31, 23, 59, 59, 999000),
    "dtm6": datetime(2024, 3, 1, 8, 11, 12, 654321),
    "tsz": datetime(2024, 3, 31, 1, 30, 0, 250000, tzinfo=UTC),
    "y": 2024,
    "vb": b"\x00\xff\x10seam",
    "bl": b"blob\x00bytes",
    "bt": True,
    "e": "large",
    "st": "a,b",
    "j": '{"a": [1, 2.5]}',  # MariaDB's JSON is LONGTEXT: its value is the text
    "u": U,
    "bi": 2**63 - 1,
}
MY_NULLS = {"id": 2, **{k: None for k in MY_ROW if k != "id"}, "pt": None}


def _records(stack: Settings, topic: str, want: int, timeout: float = 90.0) -> list[RawRecord]:
    consumer = Consumer(
        client_config(
            stack.kafka_bootstrap_servers,
            {
                "group.id": f"seam-tv-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            },
        )
    )
    consumer.subscribe([topic])
    found: list[RawRecord] = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < want and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() or message.value() is None:
                continue
            found.append(RawRecord.from_message(message))
    finally:
        consumer.close()
    assert len(found) >= want, f"{topic}: {len(found)} records, expected {want}"
    return found


def _apply(spec_text: str, tmp_path: Path, name: str) -> None:
    from seam.cli.main import app

    spec_file = tmp_path / f"{name}.yaml"
    spec_file.write_text(spec_text)
    result = CliRunner().invoke(app, ["connectors", "apply", "--wait", str(spec_file)])
    assert result.exit_code == 0, result.output


def _drop_topics(stack: Settings, *needles: str) -> None:
    admin = AdminClient(client_config(stack.kafka_bootstrap_servers))
    doomed = [t for t in admin.list_topics(timeout=10).topics if any(n in t for n in needles)]
    if doomed:
        for future in admin.delete_topics(doomed).values():
            with contextlib.suppress(Exception):
                future.result()


def _decoded(records: list[RawRecord], types: Any) -> dict[int, dict[str, Any]]:
    rows = {}
    for record in records:
        event = decode(record, types)
        assert isinstance(event, ChangeEvent), event
        assert event.after is not None
        rows[event.after["id"]] = event.after
    return rows


def _password_file(tmp_path: Path, password: str) -> Path:
    secret_dir = tmp_path / "secrets"
    secret_dir.mkdir()
    secret_dir.chmod(0o755)
    path = secret_dir / "cdc.properties"
    path.write_text(f"password={password}\n")
    path.chmod(0o644)
    return path


@pytest.mark.parametrize("decimals", ["string", "precise"])
def test_postgres_every_type_decodes_to_what_was_inserted(
    stack: Settings, unique_name: Callable[[str], str], tmp_path: Path, decimals: str
) -> None:
    from psycopg.types.json import Json
    from sqlalchemy import text

    from seam.connectors.engine import connect, create_database, drop_database, with_database

    db = unique_name("seam_tv")
    user, password = db, secrets.token_hex(12)
    name = db.replace("_", "-")
    url = with_database(stack.database_url("postgres"), db)
    create_database(url)
    client = ConnectClient.from_settings(stack)
    try:
        with connect(url, isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("CREATE TYPE mood AS ENUM ('sad', 'happy')"))
            conn.execute(text(PG_TABLE.format(t="every_type", mood="mood")))
            conn.execute(text(f"CREATE ROLE {user} LOGIN REPLICATION PASSWORD '{password}'"))
            conn.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {user}"))
            conn.execute(text(f"CREATE PUBLICATION {db} FOR TABLE every_type"))
            raw = conn.connection.dbapi_connection
            assert raw is not None
            cols = [*PG_ROW, "pt"]
            marks = ", ".join(["%s"] * len(cols))
            for row in (PG_ROW, PG_NULLS):
                values = [
                    Json(row[c]) if c in ("j", "jb") and row.get(c) is not None else row.get(c)
                    for c in cols
                ]
                if row is PG_ROW:
                    values[cols.index("pt")] = "(1.5,2)"
                with raw.cursor() as cur:
                    cur.execute(
                        f"INSERT INTO every_type ({', '.join(cols)}) VALUES ({marks})", values
                    )
        spec = (
            f"name: {name}\nflavour: postgres\ndatabase: {url}\nuser: {user}\n"
            f"password: {{file: {_password_file(tmp_path, password)}}}\n"
            f"tables: [every_type]\ntopic_prefix: {db}\npublication: {db}\nslot: {db}\n"
            "heartbeat_interval_ms: 0\nsignal_table: null\n"
            f"overrides:\n  publication.autocreate.mode: disabled\n"
            f"  decimal.handling.mode: {decimals}\n"
        )
        _apply(spec, tmp_path, name)
        (parsed,) = parse_specs(spec, "spec.yaml")
        config = render(parsed, stack).config
        records = _records(stack, f"{db}.public.every_type", 2)
        assert b'"schema"' not in (records[0].value or b"")[:20]  # bare records, as rendered

        # As a worker would: the live connector's config from Connect, its database reached
        # as its own user (the password file resolved here).
        live = client.get_config(name)
        assert live["decimal.handling.mode"] == config["decimal.handling.mode"] == decimals
        types = connector_types(name, live, stack)
        assert [str(t) for t in types.tables()] == ["public.every_type"]
        rows = _decoded(records, types)
        got = dict(rows[1])
        point = got.pop("pt")
        assert isinstance(point, Raw)
        assert "point" in point.why
        assert got == PG_ROW
        for column, value in PG_ROW.items():  # types too: 19.99 is not 19.990, a date no str
            assert type(got[column]) is type(value), column
        assert got["n"].as_tuple().exponent == -2
        assert got["m"].as_tuple().exponent == -2
        assert got["ts"].tzinfo is None
        assert got["tstz"].tzinfo is not None
        assert rows[2] == PG_NULLS
    finally:
        with contextlib.suppress(ConnectNotFoundError):
            client.delete(name)
        for _ in range(15):
            try:
                with connect(url, isolation_level="AUTOCOMMIT") as conn:
                    conn.execute(
                        text(
                            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                            " WHERE slot_name = :s"
                        ),
                        {"s": db},
                    )
                break
            except Exception:
                time.sleep(1)
        drop_database(url)
        with connect(stack.database_url("postgres"), isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"DROP ROLE IF EXISTS {user}"))
        _drop_topics(stack, db)


@pytest.mark.parametrize("decimals", ["string", "precise"])
def test_mariadb_every_type_decodes_to_what_was_inserted(
    stack: Settings, unique_name: Callable[[str], str], tmp_path: Path, decimals: str
) -> None:
    from sqlalchemy import text

    from seam.connectors.engine import connect, create_database, drop_database, with_database

    db = unique_name("seam_tv")
    user, password = db, secrets.token_hex(12)
    name = db.replace("_", "-")
    url = with_database(stack.database_url("mariadb"), db)
    create_database(url)
    client = ConnectClient.from_settings(stack)
    try:
        with connect(url) as conn:
            conn.execute(text(MY_TABLE.format(t="every_type")))
            conn.execute(text("SET time_zone = '+00:00'"))
            cols = list(MY_ROW)
            marks = ", ".join(f":{c}" for c in cols)
            insert = text(
                f"INSERT INTO every_type ({', '.join(cols)}, pt) VALUES ({marks}, POINT(1.5, 2))"
            )
            row = {c: (str(v) if c == "u" else v) for c, v in MY_ROW.items()}
            row["tm"] = "-01:02:03.5"
            row["tm0"] = "838:59:59"
            row["tsz"] = "2024-03-31 01:30:00.25"
            conn.execute(insert, row)
            conn.execute(
                text(f"INSERT INTO every_type ({', '.join(cols)}, pt) VALUES ({marks}, NULL)"),
                {c: (2 if c == "id" else None) for c in cols},
            )
            conn.execute(text(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"))
            conn.execute(
                text(
                    "GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, BINLOG MONITOR, "
                    f"LOCK TABLES ON *.* TO '{user}'@'%'"
                )
            )
            conn.commit()
        spec = (
            f"name: {name}\nflavour: mariadb\ndatabase: {url}\nuser: {user}\n"
            f"password: {{file: {_password_file(tmp_path, password)}}}\n"
            f"tables: [every_type]\ntopic_prefix: {db}\nsignal_table: null\n"
            f"overrides:\n  decimal.handling.mode: {decimals}\n"
        )
        _apply(spec, tmp_path, name)
        (parsed,) = parse_specs(spec, "spec.yaml")
        config = render(parsed, stack).config
        records = _records(stack, f"{db}.{db}.every_type", 2)

        types = table_types(url, [f"{db}.every_type"], config)
        rows = _decoded(records, types)
        got = dict(rows[1])
        point = got.pop("pt")
        assert isinstance(point, Raw)
        assert got == MY_ROW
        for column, value in MY_ROW.items():
            assert type(got[column]) is type(value), column
        assert got["n"].as_tuple().exponent == -2
        assert got["dtm6"].tzinfo is None
        assert rows[2] == {**MY_NULLS}
    finally:
        with contextlib.suppress(ConnectNotFoundError):
            client.delete(name)
        drop_database(url)
        with connect(stack.database_url("mariadb")) as conn:
            conn.execute(text(f"DROP USER IF EXISTS '{user}'@'%'"))
            conn.commit()
        _drop_topics(stack, db, f"_seam.schema-history.{name}")


SMALL_TABLE = (
    "CREATE TABLE small (id int PRIMARY KEY, dt date, ts timestamp, n numeric(12,2), by bytea)"
)
SMALL_ROW: dict[str, Any] = {
    "id": 1,
    "dt": date(2024, 2, 29),
    "ts": datetime(2024, 3, 1, 8, 11, 12, 654321),
    "n": Decimal("19.90"),
    "by": b"\x00\xff\x10seam",
}

SEEN_STAGE = '''\
class Seen:
    """Publishes, per change, the Python type and repr of each column value it is handed."""

    name = "seen"

    def process(self, item):
        row = item.change.after
        item.event = {
            "event_type": "Seen",
            "id": row["id"],
            "types": {c: type(v).__name__ for c, v in row.items()},
            "values": {c: repr(v) for c, v in row.items()},
        }
        item.latest_key = str(row["id"])
        return (item,)


def make(options):
    return Seen()
'''


def _pipeline(tmp_path: Path, name: str, topic: str, column_types: str) -> Path:
    (tmp_path / "seen_stage.py").write_text(SEEN_STAGE)
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"name: {name}\ngroup: {name}\ninputs: [{topic}]\n"
        "stages:\n  - use: decode\n  - use: seen_stage:make\n"
        f"outputs:\n  history: {{topic: {name}.history, partitions: 1}}\n"
        f"  latest: {{topic: {name}.latest, partitions: 1}}\n"
        f"  dead_letter: {{topic: {name}.dlq, partitions: 1}}\n"
        f"processing:\n  column_types: {column_types}\n  guarantee: at_least_once\n"
    )
    return path


def test_streams_tail_and_a_worker_with_column_types_source_see_typed_values(
    stack: Settings, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    """Through a real PostgreSQL connector in Debezium's precise decimal mode: `seam streams
    tail` shows DATE, TIMESTAMP, NUMERIC and BYTEA typed (and as sent with --no-types), and a
    worker with `column_types: source` hands its stages typed values and publishes them."""
    from sqlalchemy import text

    from seam.cli.main import app
    from seam.connectors.engine import connect, create_database, drop_database, with_database
    from seam.transforms.readback import read_to_end
    from tests.conftest import start_transform_worker

    db = unique_name("seam_tw")
    user, password = db, secrets.token_hex(12)
    name = db.replace("_", "-")
    topic = f"{db}.public.small"
    url = with_database(stack.database_url("postgres"), db)
    create_database(url)
    client = ConnectClient.from_settings(stack)
    try:
        with connect(url, isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(SMALL_TABLE))
            conn.execute(text("INSERT INTO small VALUES (:id, :dt, :ts, :n, :by)"), dict(SMALL_ROW))
            conn.execute(text(f"CREATE ROLE {user} LOGIN REPLICATION PASSWORD '{password}'"))
            conn.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {user}"))
            conn.execute(text(f"CREATE PUBLICATION {db} FOR TABLE small"))
        spec = (
            f"name: {name}\nflavour: postgres\ndatabase: {url}\nuser: {user}\n"
            f"password: {{file: {_password_file(tmp_path, password)}}}\n"
            f"tables: [small]\ntopic_prefix: {db}\npublication: {db}\nslot: {db}\n"
            "heartbeat_interval_ms: 0\nsignal_table: null\n"
            "overrides:\n  publication.autocreate.mode: disabled\n"
            "  decimal.handling.mode: precise\n"
        )
        _apply(spec, tmp_path, name)
        (record,) = _records(stack, topic, 1)
        assert b'"n":"B8Y="' in (record.value or b"")  # 19.90 on the wire: base64, unscaled

        runner = CliRunner()
        tail = ["streams", "tail", topic, "--from", "beginning", "-n", "1"]
        shown = runner.invoke(app, tail)
        assert shown.exit_code == 0, shown.output
        assert "warning" not in shown.output
        # a snapshot row, on one line
        assert "dt=2024-02-29, ts=2024-03-01T08:11:12.654321, n=19.90, by=0x00ff107365616d" in (
            shown.output
        )
        as_json = runner.invoke(app, [*tail, "-o", "json"])
        assert as_json.exit_code == 0, as_json.output
        after = json.loads(as_json.output.strip().splitlines()[-1])["after"]
        assert after == {
            "id": 1,
            "dt": "2024-02-29",
            "ts": "2024-03-01T08:11:12.654321",
            "n": "19.90",
            "by": base64.b64encode(SMALL_ROW["by"]).decode(),
        }
        untyped = runner.invoke(app, [*tail, "--no-types"])
        assert "dt=19782, ts=1709280672654321, n='B8Y=', by='AP8Qc2VhbQ=='" in untyped.output

        # A worker whose pipeline asks for column types: its stage sees Python types.
        pipeline = _pipeline(tmp_path, name, topic, "source")
        checked = runner.invoke(app, ["transform", "check", str(pipeline)])
        assert checked.exit_code == 0, checked.output
        assert f"{topic} (connector {name})" in checked.output
        worker = start_transform_worker(pipeline, "typed", "--until-caught-up")
        _out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err.decode()
        (published,) = [
            r.json() for r in read_to_end(stack.kafka_bootstrap_servers, f"{name}.history")
        ]
        assert published["types"] == {
            "id": "int",
            "dt": "date",
            "ts": "datetime",
            "n": "Decimal",
            "by": "bytes",
        }
        assert published["values"]["n"] == "Decimal('19.90')"
        assert published["values"]["ts"] == repr(SMALL_ROW["ts"])

        # Types that cannot be read stop check and run with one error: no connector here.
        lost = _pipeline(tmp_path, name + "-lost", f"nowhere-{db}.public.small", "source")
        failed = runner.invoke(app, ["transform", "check", str(lost)])
        assert isinstance(failed.exception, ConfigError)  # main() prints it as one line
        stopped = start_transform_worker(lost, "lost")
        _out, err = stopped.communicate(timeout=60)
        assert stopped.returncode == 1
        message = err.decode()
        assert "has column_types: source, but the column types of input nowhere-" in message
        assert "no Debezium PostgreSQL/MySQL/MariaDB connector" in message
        assert f"prefixes: {db} ({name})" in message
        assert "or set 'column_types: none' under processing:" in message
        assert "Traceback" not in message
    finally:
        with contextlib.suppress(ConnectNotFoundError):
            client.delete(name)
        for _ in range(15):
            try:
                with connect(url, isolation_level="AUTOCOMMIT") as conn:
                    conn.execute(
                        text(
                            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                            " WHERE slot_name = :s"
                        ),
                        {"s": db},
                    )
                break
            except Exception:
                time.sleep(1)
        drop_database(url)
        with connect(stack.database_url("postgres"), isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"DROP ROLE IF EXISTS {user}"))
        _drop_topics(stack, db, name)

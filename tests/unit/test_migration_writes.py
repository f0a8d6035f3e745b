"""The writes file (commands and their legacy SQL) and a command's events, without I/O."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from seam.errors import ConfigError
from seam.kafka_config import kafka_settings
from seam.legacy_db.files import folder
from seam.migration.writes import LocalTime, load_writes
from seam.services.commands import CommandError, Commands, Written
from seam.services.service_file import load_service

pytestmark = pytest.mark.unit

PIPELINE = folder("pipelines") / "catalog.yaml"
STATE = {
    "product_id": 7,
    "sku": "AB-7",
    "name": "Kettle",
    "status": "active",
    "price": {"amount": "12.50", "currency": "EUR"},
    "created_at": "2020-01-01T10:00:00Z",
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "writes.yaml"
    path.write_text(text)
    return path


def test_the_catalog_writes_files_load_with_their_commands_and_sql() -> None:
    for name, own in (("writes.yaml", "ledger"), ("writes-mariadb.yaml", "gtid_domain")):
        spec = load_writes(folder("migration") / name)
        commands = {c.name: c for c in spec.commands}
        assert commands["rename"].path == "/product/{product_id}/name"
        assert commands["rename"].events == ("ProductRenamed",)
        assert commands["reprice"].events == ("ProductPriceChanged",)
        assert set(spec.apply) == {"ProductRenamed", "ProductPriceChanged"}
        assert getattr(spec.pipeline.own_writes, own) is not None
    services = [
        load_service(folder("services") / n) for n in ("catalog.yaml", "catalog-mariadb.yaml")
    ]
    assert [s.writes.name if s.writes else None for s in services] == [
        "catalog-writes",
        "catalog-mariadb-writes",
    ]


def test_parameters_come_from_the_event_and_local_times_from_its_time() -> None:
    apply = load_writes(folder("migration") / "writes.yaml").apply["ProductPriceChanged"]
    event = {
        "product_id": 7,
        "occurred_at": "2026-07-01T10:15:30.5Z",
        "data": {"new_price": {"amount": "9.99", "currency": "EUR"}, "old_price": None},
    }
    values = apply.values(event)
    # Berlin is UTC+2 in summer; the legacy app writes whole seconds without a zone (W7).
    assert values == {
        "id": 7,
        "amount": "9.99",
        "currency": "EUR",
        "now": dt.datetime(2026, 7, 1, 12, 15, 30),
    }
    with pytest.raises(KeyError, match=r"data\.new_price\.amount"):
        apply.values({**event, "data": {}})
    assert LocalTime("occurred_at", "Europe/Berlin").value({"occurred_at": None}) is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("commands:\n  x: {request: 'GET /product/{product_id}', sets: [name]}\n", "METHOD"),
        ("commands:\n  x: {request: 'POST /product/{id}/x', sets: [name]}\n", "key field"),
        (
            "commands:\n  x: {request: 'POST /product/{product_id}/x', sets: [nmae]}\n",
            "did you mean 'name'",
        ),
        (
            "commands:\n  x: {request: 'POST /product/{product_id}/x', sets: [product_id]}\n",
            "can set",
        ),
        (
            "commands:\n  x: {request: 'POST /product/{product_id}/x', sets: [price]}\n",
            "ProductPriceChanged",
        ),
        ("apply:\n  ProductRenamd: {sql: 'UPDATE t SET a = 1'}\n", "did you mean 'ProductRenamed'"),
        (
            "apply:\n  ProductRenamed: {sql: 'UPDATE t SET a = :a'}\n",
            "':a' is not among the params",
        ),
        (
            "apply:\n  ProductRenamed: {sql: 'UPDATE t SET a = :a', params: {a: data.new_nam}}\n",
            "did you mean",
        ),
        (
            "apply:\n  ProductRenamed: {sql: 'UPDATE t SET a = :a', params: {a: {local_time: occurred_at, zone: Mars/Base}}}\n",
            "not a time zone",
        ),
        ("apply:\n  ProductRenamed: {params: {}}\n", "missing 'sql'"),
    ],
)
def test_a_bad_writes_file_is_one_error_at_its_line(tmp_path: Path, text: str, says: str) -> None:
    base = {
        "commands": "commands:\n  rename: {request: 'POST /product/{product_id}/name', sets: [name]}\n",
        "apply": "apply:\n  ProductRenamed: {sql: 'UPDATE t SET a = :a', params: {a: data.new_name}}\n",
    }
    section = text.split(":", 1)[0]
    base[section] = text
    path = write(tmp_path, f"name: w1\npipeline: {PIPELINE}\n" + "".join(base.values()))
    with pytest.raises(ConfigError) as caught:
        load_writes(path)
    assert says in caught.value.message, caught.value.message
    assert str(path) in caught.value.message


def test_a_service_refuses_the_writes_of_another_pipeline(tmp_path: Path) -> None:
    other = folder("pipelines") / "catalog-mariadb.yaml"
    service = tmp_path / "svc.yaml"
    service.write_text(f"pipeline: {other}\nwrites: {folder('migration') / 'writes.yaml'}\n")
    with pytest.raises(ConfigError, match="names another pipeline"):
        load_service(service)


class Published(Commands):
    """Commands whose events are kept instead of produced to Kafka."""

    def __init__(self) -> None:
        super().__init__(load_writes(folder("migration") / "writes.yaml"), kafka_settings("x:1"))
        self.sent: list[dict[str, Any]] = []

    def _publish(self, events: list[dict[str, Any]], text: str) -> list[Written]:
        self.sent.extend(events)
        return [Written(e, self.topic, 0, len(self.sent)) for e in events]


def test_a_command_derives_its_events_as_the_transform_does() -> None:
    commands = Published()
    rename = commands.by_name["rename"]
    key, text = commands.key_of({"product_id": "7"})
    assert (key, text) == ({"product_id": 7}, "7")
    values = commands.body_of(rename, {"name": "Steel kettle"})
    written, note = commands.run(rename, dict(STATE), key, text, values)
    assert note is None
    (event,) = [w.event for w in written]
    assert event["event_type"] == "ProductRenamed"
    assert event["data"] == {"old_name": "Kettle", "new_name": "Steel kettle"}
    assert event["schema_version"] == 2  # set by the pipeline's validate stage
    assert event["provenance"]["connector"] == "seam-command"
    assert event["occurred_at"] == event["provenance"]["source_ts"]
    # The image has not seen it yet: the next command starts from the pending name.
    again = commands.run(rename, dict(STATE), key, text, {"name": "Kettle"})[0]
    assert again[0].event["data"] == {"old_name": "Steel kettle", "new_name": "Kettle"}
    assert again[0].event["event_id"] != event["event_id"]
    # Once the image shows the last name, nothing is pending; the same name is a no-op.
    commands.settle(text, dict(STATE))
    assert commands.pending == {}
    assert commands.run(rename, dict(STATE), key, text, {"name": "Kettle"}) == ([], "no-op update")
    assert len(commands.sent) == 2


def test_bad_commands_name_the_field() -> None:
    commands = Published()
    rename, reprice = commands.by_name["rename"], commands.by_name["reprice"]
    cases = [
        (rename, ["a list"], "JSON object"),
        (rename, {"title": "x"}, "title: not a field rename sets"),
        (rename, {}, "name: missing"),
        (rename, {"name": ""}, "name:"),
        (reprice, {"price": {"amount": "1,00", "currency": "EUR"}}, "price:"),
        (reprice, {"price": None}, "price:"),
    ]
    for command, body, says in cases:
        with pytest.raises(CommandError) as caught:
            commands.body_of(command, body)
        assert caught.value.status == 400
        assert says in caught.value.message
    with pytest.raises(CommandError, match="product_id: expected a whole number"):
        commands.key_of({"product_id": "seven"})
    with pytest.raises(CommandError, match="no product with key 8") as missing:
        commands.run(rename, None, {"product_id": 8}, "8", {"name": "x"})
    assert missing.value.status == 404
    assert commands.sent == []

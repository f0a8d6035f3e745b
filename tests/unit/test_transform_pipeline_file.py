"""Pipeline files: structure, unknown keys with suggestions, user stages by import path."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from seam.changes import RawRecord
from seam.errors import ConfigError
from seam.legacy_db.files import folder, pipeline_document
from seam.transforms.model import Item, Reject
from seam.transforms.pipeline import Produced, Rejected
from seam.transforms.pipeline_file import load_pipeline, parse_pipeline

pytestmark = pytest.mark.unit


def base() -> dict[str, Any]:
    return pipeline_document()


def test_the_example_pipelines_load_and_build() -> None:
    paths = {p.name: p for p in folder("pipelines").glob("*.yaml")}
    assert sorted(paths) == [
        "catalog-declared.yaml",
        "catalog-mariadb.yaml",
        "catalog.yaml",
        "prices.yaml",
        "stock.yaml",
    ]
    for name, path in paths.items():
        spec = load_pipeline(path)
        built = spec.build()
        stages = [s.name for s in built.stages]
        if spec.declaration is None:
            assert stages == ["decode", "clean", "enrich", "map", "validate"]
        else:
            assert stages == ["decode", "clean", "events", "validate"], name
        assert bool(built.reference_topics) == name.startswith("catalog"), name
        assert spec.guarantee == "exactly_once"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(stagse=[]), "'stagse' (did you mean 'stages'?)"),
        (lambda d: d["outputs"].update(histroy={}), "'histroy' (did you mean 'history'?)"),
        (
            lambda d: d["outputs"]["latest"].update(partitons=3),
            "'partitons' (did you mean 'partitions'?)",
        ),
        (
            lambda d: d["stages"][3]["with"].update(state_schme="x"),
            "'state_schme' (did you mean 'state_schema'?)",
        ),
        (lambda d: d["stages"][0].update(uses="x"), "'uses' (did you mean 'use'?)"),
        (lambda d: d.update(processing={"guarantee": "maybe"}), "exactly_once or at_least_once"),
        (lambda d: d.pop("group"), "missing 'group'"),
        (
            lambda d: d["stages"].append({"use": "nosuch.module:make"}),
            "cannot import nosuch.module: no module named 'nosuch'",
        ),
        (lambda d: d["stages"].append({"use": "no_colon"}), "package.module:callable"),
        (
            lambda d: d["stages"].append({"use": "valdiate"}),
            "'valdiate' (did you mean 'validate'?)",
        ),
        (lambda d: d["processing"].update(max_stage_errors=-2), "whole number >= -1, got -2"),
    ],
)
def test_errors_name_the_key_and_the_fix(edit: Any, message: str) -> None:
    data = base()
    edit(data)
    with pytest.raises(ConfigError) as info:
        parse_pipeline(data, "p.yaml").build()
    assert message in str(info.value)


class Shout:
    """A user stage: upper-cases new names, rejects names containing 'forbidden'."""

    name = "shout"

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix

    def process(self, item: Item) -> Iterable[Item]:
        if item.event and item.event["event_type"] == "ProductListed":
            product = item.event["data"]["product"]
            if "forbidden" in product["name"].lower():
                raise Reject("forbidden name")
            product["name"] = product["name"].upper() + self.suffix
        return (item,)


def make_shout(options: Mapping[str, Any]) -> Shout:
    return Shout(str(options.get("suffix", "")))


def test_user_stage_by_import_path(tmp_path: Path) -> None:
    from seam.legacy_db.synthetic import envelope, micros

    data = base()
    data["stages"].insert(4, {"use": f"{__name__}:make_shout", "with": {"suffix": "!"}})
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    pipeline = load_pipeline(path).build()
    row = {
        "prod_id": 1,
        "sku": "A-1",
        "prod_name": "Mug",
        "price_txt": "",
        "price_cents": None,
        "cat_id": None,
        "supp_id": 0,
        "status_cd": "A",
        "is_deleted": None,
        "ean": None,
        "descr": None,
        "created_at": micros("2020-01-01 00:00:00"),
        "updated_at": None,
    }
    key, value = envelope("products", "c", None, row, 1)
    out = pipeline.run(RawRecord(key, value, topic="catalog.public.products"))
    assert isinstance(out, Produced)
    assert out.events[0].event is not None
    assert out.events[0].event["data"]["product"]["name"] == "MUG!"
    key, value = envelope("products", "c", None, {**row, "prod_name": "Forbidden"}, 2)
    rejected = pipeline.run(RawRecord(key, value, topic="catalog.public.products"))
    assert rejected == Rejected("shout", "forbidden name")


class Broken:
    name = "broken"

    def process(self, item: Item) -> Iterable[Item]:
        raise ZeroDivisionError("oops")


def test_a_stage_bug_becomes_a_dead_letter_not_a_crash() -> None:
    from seam.transforms.pipeline import Pipeline

    out = Pipeline([Broken()]).run(RawRecord(b"k", b"v"))
    assert out == Rejected("broken", "stage raised ZeroDivisionError: oops", "ZeroDivisionError")


# --------------------------------------------------------------- the toolkit's hooks


def test_the_fast_path_is_declared_and_loaded() -> None:
    from seam.transforms.declared.compiled import CompiledPath
    from seam.transforms.fast_path import load_fast_path

    # A declared pipeline of the built-in stages: the compiled engine, with no line.
    spec = parse_pipeline(base(), "p.yaml")
    assert spec.fast_path is None
    assert isinstance(load_fast_path(spec, spec.build()), CompiledPath)
    # A fast path of one's own, declared: that one.
    data = base()
    data["processing"]["fast_path"] = f"{__name__}:own_fast_path"
    own = parse_pipeline(data, "p.yaml")
    assert load_fast_path(own, own.build()) == "own"
    # Declared but declined: no fast path, no error.
    data["processing"]["fast_path"] = f"{__name__}:declining_fast_path"
    declined = parse_pipeline(data, "p.yaml")
    assert load_fast_path(declined, declined.build()) is None
    # The compiled engine turned off.
    data = base()
    data["processing"]["compiled"] = False
    plain = parse_pipeline(data, "p.yaml")
    assert load_fast_path(plain, plain.build()) is None
    data["processing"]["compiled"] = "yes"
    with pytest.raises(ConfigError, match=r"processing\.compiled: expected true or false"):
        parse_pipeline(data, "p.yaml")


def own_fast_path(pipeline: object) -> str:
    return "own"


def declining_fast_path(pipeline: object) -> None:
    return None


def test_a_fast_path_that_cannot_load_is_one_clear_error() -> None:
    from seam.transforms.fast_path import load_fast_path

    for target, message in (
        ("nosuch.native:make", "cannot import nosuch.native: no module named 'nosuch'"),
        (f"{__name__}:declining_fast_pat", "(did you mean 'declining_fast_path'?)"),
        (f"{__name__}:raising_fast_path", "raised RuntimeError: no engine"),
    ):
        data = base()
        data["processing"]["fast_path"] = target
        spec = parse_pipeline(data, "p.yaml")
        with pytest.raises(ConfigError) as info:
            load_fast_path(spec, spec.build())
        assert info.value.message.startswith(f"p.yaml: processing.fast_path '{target}': ")
        assert message in info.value.message
        assert info.value.hint


def raising_fast_path(pipeline: object) -> None:
    raise RuntimeError("no engine")


@pytest.mark.parametrize("value", ["no_colon", 42, "a:b:c"])
def test_a_malformed_fast_path_is_reported_at_its_line(value: object) -> None:
    data = base()
    data["processing"]["fast_path"] = value
    with pytest.raises(ConfigError) as info:
        parse_pipeline(data, "p.yaml")
    assert "processing.fast_path: expected package.module:callable" in info.value.message


def test_history_records_are_keyed_by_the_declared_event_field() -> None:
    """`outputs.history.key` names the event field; without it, the entity's latest_key."""
    from seam.transforms.outputs import publication

    raw = RawRecord(None, None)
    event = {"event_type": "Thing", "event_id": "e", "schema_version": 1, "thing_no": 7}
    outcome = Produced([Item(raw, event=event, latest_key="k-7", state={"a": 1})])
    assert publication(outcome, "thing_no").history[0][0] == b"7"
    assert publication(outcome).history[0][0] == b"k-7"
    assert publication(outcome).latest == (b"k-7", b'{"a":1}')
    assert parse_pipeline(base(), "p.yaml").history.key == "product_id"
    data = base()
    data["outputs"]["latest"]["key"] = "product_id"  # only the history takes a key
    with pytest.raises(ConfigError, match=r"outputs\.latest: unknown key 'key'"):
        parse_pipeline(data, "p.yaml")


def test_the_schema_folder_is_relative_to_the_pipeline_file(tmp_path: Path) -> None:
    """Written next to its schemas, a pipeline finds them whatever the current directory."""
    import shutil

    shutil.copytree(folder("schemas"), tmp_path / "events")
    data = base()
    path = tmp_path / "sub" / "p.yaml"
    path.parent.mkdir()
    data["stages"][-1]["with"]["schemas"] = "../events"
    path.write_text(yaml.safe_dump(data))
    validate = load_pipeline(path).build().stages[-1]
    assert validate.schemas.validators  # type: ignore[attr-defined]


def test_column_types_default_none_and_source_without_a_fast_path() -> None:
    assert parse_pipeline(base(), "p.yaml").column_types == "none"
    data = base()
    data["processing"]["column_types"] = "source"
    assert parse_pipeline(data, "p.yaml").column_types == "source"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "  column_types: sourse",
            r"p\.yaml:\d+:17: processing\.column_types: expected source or none, got 'sourse'",
        ),
        ("  column_type: source", r"'column_type' \(did you mean 'column_types'\?\)"),
        (
            "  column_types: source\n  fast_path: mypackage.native:fast_path_for",
            r"processing\.fast_path: a compiled fast path reads values as sent: it cannot run "
            r"with column_types: source \(remove the fast_path line, or set column_types: none\)",
        ),
    ],
)
def test_column_types_errors_point_at_the_file(tmp_path: Path, line: str, message: str) -> None:
    text = yaml.safe_dump(base(), sort_keys=False).replace(
        "processing:\n", f"processing:\n{line}\n"
    )
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_pipeline(path)


def test_a_worker_without_the_types_a_pipeline_asks_for_refuses_to_start() -> None:
    from seam.transforms.worker import Worker

    data = base()
    data["processing"]["column_types"] = "source"
    spec = parse_pipeline(data, "p.yaml")
    with pytest.raises(ConfigError, match="column_types: source but the worker got no types"):
        Worker(spec, "127.0.0.1:1")


def test_a_missing_or_binary_pipeline_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_pipeline(tmp_path / "absent.yaml")
    assert caught.value.message.startswith(f"cannot read pipeline file {tmp_path / 'absent.yaml'}")
    assert "pipelines/orders.yaml" in (caught.value.hint or "")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(ConfigError) as caught:
        load_pipeline(binary)
    assert caught.value.message == f"{binary}: not a text file (not UTF-8)"


def test_own_writes_are_read_with_their_errors() -> None:
    data = base()
    data["own_writes"] = {"ledger": "orders.own-writes", "gtid_domain": 77}
    spec = parse_pipeline(data)
    assert spec.own_writes is not None
    assert (spec.own_writes.ledger, spec.own_writes.gtid_domain) == ("orders.own-writes", 77)
    plain = base()
    plain.pop("own_writes", None)  # the catalog declares its ledger
    assert parse_pipeline(plain).own_writes is None

    for own, message in (
        ({"ledgr": "x"}, "'ledgr' (did you mean 'ledger'?)"),
        ({"gtid_domain": 0}, "expected a whole number >= 1, got 0"),
        ({"gtid_domain": "77"}, "own_writes.gtid_domain"),
        ({}, "own_writes"),
    ):
        data = base()
        data["own_writes"] = own
        with pytest.raises(ConfigError) as info:
            parse_pipeline(data)
        assert message in str(info.value), (own, str(info.value))


def test_own_writes_helpers() -> None:
    from seam.transforms.own_writes import gtid_domain, ledger_entry, ledger_tx_id, pg_tx_id

    assert pg_tx_id((3 << 32) | 1234) == 1234
    key, value = ledger_entry(1234, "catalog-writer", 1)
    assert key == b"1234"
    assert ledger_tx_id(value) == 1234
    assert ledger_tx_id(b"not json") is None
    assert ledger_tx_id(b'{"tx_id": true}') is None
    assert gtid_domain("77-1-1234") == 77
    assert gtid_domain("3E11FA47-1-5") is None
    assert gtid_domain(None) is None

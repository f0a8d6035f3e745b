"""The compiled engine (transforms/native, seam_engine) against the Python stages, its reference.

For every record the engine takes, its publication must equal, byte for byte, what the
Python stages (decode, clean, events, validate) and `outputs.publication` produce; for every
other record it must step aside (None), never guess. Held per rule kind (hypothesis values
through a one-column declaration, under each policy), and for whole declared pipelines: the
catalog (the benchmark pool, MariaDB's shape, the real Debezium corpus, hypothesis rows) and
a declaration of another table written here. Typical records must mostly take the engine.
"""

from __future__ import annotations

import collections
import copy
import itertools
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from seam.changes import RawRecord
from seam.cli.main import app
from seam.legacy_db.files import folder, pipeline_document
from seam.legacy_db.synthetic import (
    envelope,
    price_rows,
    product_rows,
    reference_rows,
    stock_rows,
    typical_changes,
    typical_stock_changes,
)
from seam.streams.decode import decode
from seam.transforms.declared.compiled import CompiledPath, SplitPath, compiled_path, zone_changes
from seam.transforms.fast_path import load_fast_path, load_split_path
from seam.transforms.handling import RecordHandler
from seam.transforms.outputs import publication, source_headers
from seam.transforms.pipeline import Pipeline, Produced, Rejected
from seam.transforms.pipeline_file import PipelineSpec, load_pipeline, parse_pipeline
from seam.transforms.progress import Counts
from seam.transforms.redelivery import Marks
from tests import user_stages
from tests.catalog_rows import cells, mariadb, plausible_rows, texts

pytestmark = pytest.mark.unit

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "debezium.jsonl"
TOPIC = "catalog.public.products"
Paths = tuple[PipelineSpec, Pipeline, CompiledPath]


def built(spec: PipelineSpec, references: bool = True) -> Paths:
    pipeline = spec.build()
    if references:
        for i, (table, row) in enumerate(reference_rows(2000)):
            key, value = envelope(table, "r", None, row, i + 1)
            pipeline.observe(RawRecord(key, value, f"catalog.public.{table}", 0, i))
    fast = load_fast_path(spec, pipeline)
    # CI builds the module (scripts/setup.sh): its absence is a failure, not a skip.
    assert isinstance(fast, CompiledPath), "seam_engine is not installed: run scripts/setup.sh"
    return spec, pipeline, fast


_catalog: Paths | None = None


def catalog() -> Paths:
    """The catalog pipeline (legacy_db/pipelines/catalog.yaml, declared), built once."""
    global _catalog
    if _catalog is None:
        _catalog = built(load_pipeline(folder("pipelines") / "catalog.yaml"))
    return _catalog


def agree(paths: Paths, raw: RawRecord) -> bool:
    """Asserts the two paths agree on `raw`; True when the engine took it."""
    spec, pipeline, fast = paths
    got = fast.process(raw)
    outcome = pipeline.run(raw)
    if got is None:
        return False
    assert isinstance(outcome, Produced), f"the engine published what Python rejects: {outcome}"
    assert tuple(got) == tuple(publication(outcome, spec.history.key)), raw.value
    return True


def raws(records: list[tuple[bytes, bytes]], topic: str = TOPIC) -> Iterator[RawRecord]:
    for i, (key, value) in enumerate(records):
        yield RawRecord(key, value, topic, i % 4, i)


# ---------------------------------------------------------------------------- the catalog


def test_the_catalog_pipelines_run_compiled_without_a_fast_path_line() -> None:
    for name in ("catalog.yaml", "catalog-mariadb.yaml"):
        spec = load_pipeline(folder("pipelines") / name)
        assert spec.fast_path is None
        assert spec.declaration is not None
        assert isinstance(load_fast_path(spec, spec.build()), CompiledPath)


def test_typical_changes_agree_and_take_the_engine() -> None:
    records = list(raws(typical_changes(6000)))
    taken = sum(agree(catalog(), raw) for raw in records)
    # Measured: every one of the 6,000 (the pool has no record Python would refuse).
    assert taken >= 0.98 * len(records), f"only {taken} of {len(records)} took the engine"


def test_mariadb_changes_agree() -> None:
    records = [(k, mariadb(v, i)) for i, (k, v) in enumerate(typical_changes(2000, seed=5))]
    taken = sum(agree(catalog(), raw) for raw in raws(records, "catalog.catalog.products"))
    assert taken >= 0.98 * len(records)


def test_real_debezium_records_agree() -> None:
    """Every kind of record the real connectors wrote (their tables are not the catalog's:
    Python refuses or skips them, and the engine must leave them all to it)."""
    for line in CORPUS.read_text().splitlines():
        doc = json.loads(line)
        raw = RawRecord(
            None if doc["key"] is None else doc["key"].encode(),
            None if doc["value"] is None else doc["value"].encode(),
            doc["topic"],
            doc["partition"],
            doc["offset"],
        )
        assert not agree(catalog(), raw)


@pytest.mark.parametrize(
    "value",
    [
        None,  # tombstone
        b"not json",
        b'{"schema": {}, "payload": {"op": "c"}}',
        b"[1, 2]",
        envelope("categories", "c", None, {"cat_id": 1, "cat_name": "Tools"}, 5)[1],
    ],
    ids=["tombstone", "not-json", "embedded-schema", "not-an-envelope", "other-table"],
)
def test_what_it_leaves_to_python(value: bytes | None) -> None:
    _spec, _pipeline, fast = catalog()
    assert fast.process(RawRecord(b'{"prod_id": 1}', value, TOPIC, 0, 0)) is None


def product(**changes: Any) -> dict[str, Any]:
    row = next(iter(product_rows(1)))
    row.update(changes)
    return row


@pytest.mark.parametrize(
    "row",
    [
        product(status_cd="Q"),  # unknown status: Python rejects
        product(price_txt="12,00", price_cents=1300),  # disagreeing prices: Python rejects
        product(prod_name="   "),  # empty name: Python rejects
        product(descr="__debezium_unavailable_value"),  # unchanged TOAST: the decoder's care
        product(prod_id=2**63 + 5),  # beyond i64 (Python keeps it exactly)
        product(prod_name="Stra\u00dfe", sku="stra\u00dfe-1"),  # Python's upper() of non-ASCII
    ],
    ids=["status", "prices", "name", "toast", "huge-id", "non-ascii-case"],
)
def test_unusual_rows_take_the_python_path(row: dict[str, Any]) -> None:
    key, value = envelope("products", "c", None, row, 77)
    assert not agree(catalog(), RawRecord(key, value, TOPIC, 0, 0))


LISTED: dict[str, Any] = {"status_cd": "A", "is_deleted": "N"}
INT_MAX = 2**31 - 1


@pytest.mark.parametrize(
    ("change", "published"),
    [
        ({"prod_name": "N" * 200}, True),
        ({"prod_name": "N" * 201}, False),
        ({"prod_name": "\u00e9" * 200}, True),
        ({"prod_name": " " + "N" * 200 + " "}, True),
        ({"prod_name": "A" * 200_000}, False),
        ({"prod_name": "Mug\x00"}, False),
        ({"sku": " ab-" + "1" * 29 + " "}, True),
        ({"sku": "ab-" + "1" * 30}, False),
        ({"descr": "d" * 65_535}, True),
        ({"descr": "d" * 65_536}, False),
        ({"descr": "Line one.\r\nLine two."}, True),
        ({"prod_id": INT_MAX}, True),
        ({"prod_id": INT_MAX + 1}, False),
        ({"price_txt": "", "price_cents": INT_MAX}, True),
        ({"price_txt": "21474836.48", "price_cents": None}, False),
        ({"created_at": 0}, True),  # 1970: any year the zone table covers
        ({"cat_id": 99_999, "supp_id": 99_998}, True),  # W10: orphans kept, unresolved
    ],
)
def test_the_limits_of_the_legacy_columns(change: dict[str, Any], published: bool) -> None:
    """At each limit: what Python publishes the engine publishes alike, and what Python
    refuses the engine leaves to it (Python writes the dead letter)."""
    key, value = envelope("products", "c", None, product(**LISTED, **change), 88)
    raw = RawRecord(key, value, TOPIC, 0, 0)
    assert agree(catalog(), raw) is published
    assert isinstance(catalog()[1].run(raw), Produced) is published


def test_a_stricter_schema_is_enforced_by_the_engine(tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    shutil.copytree(folder("schemas"), schemas)
    state_file = max((schemas / "ProductState").glob("v*.json"), key=lambda p: int(p.stem[1:]))
    state = json.loads(state_file.read_text())
    state["properties"]["name"]["maxLength"] = 5
    state_file.write_text(json.dumps(state))
    text = (folder("pipelines") / "catalog.yaml").read_text()
    pipelines = tmp_path / "pipelines"
    (pipelines / "tables").mkdir(parents=True)
    shutil.copy(folder("pipelines") / "tables" / "catalog.yaml", pipelines / "tables")
    (pipelines / "catalog.yaml").write_text(text)
    paths = built(load_pipeline(pipelines / "catalog.yaml"))
    key, value = envelope("products", "c", None, product(prod_name="A long name", **LISTED), 9)
    raw = RawRecord(key, value, TOPIC, 0, 0)
    assert paths[2].process(raw) is None
    assert not isinstance(paths[1].run(raw), Produced)  # Python writes the dead letter


_INTS = st.one_of(st.none(), st.integers(-5, 40), st.integers(-(2**63), 2**63 - 1))
typed_rows = st.fixed_dictionaries(
    {
        "prod_id": st.one_of(st.integers(1, 10**6), _INTS),
        "sku": st.one_of(st.just(" ab-12 "), st.none(), texts),
        "prod_name": st.one_of(st.none(), texts),
        "price_txt": st.one_of(st.just("12.50"), st.none(), texts),
        "price_cents": st.one_of(st.just(1250), _INTS),
        "cat_id": st.one_of(_INTS, cells),
        "supp_id": _INTS,
        "status_cd": st.one_of(st.sampled_from(["A", " d", "X", "x "]), cells),
        "is_deleted": st.one_of(st.sampled_from(["Y", "N", ""]), cells),
        "ean": st.one_of(st.sampled_from(["", "12345678", " 4006381333931 "]), texts),
        "descr": st.one_of(st.none(), texts),
        "created_at": st.one_of(st.integers(820_000_000_000_000, 2_100_000_000_000_000), cells),
        "updated_at": st.one_of(st.integers(820_000_000_000_000, 2_100_000_000_000_000), _INTS),
    }
)
SOURCE = {
    "connector": "postgresql",
    "name": "catalog",
    "ts_ms": 1_795_392_990_000,
    "db": "catalog",
    "schema": "public",
    "table": "products",
    "txId": 42,
    "lsn": 1234,
    "snapshot": "false",
}


def _fits(*rows: dict[str, Any] | None) -> bool:
    """orjson writes integers up to 64 bits only."""
    return all(
        not (type(v) is int and not -(2**63) <= v < 2**64) for r in rows if r for v in r.values()
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=typed_rows, after=typed_rows, op=st.sampled_from(["c", "r", "u", "u", "d"]))
def test_any_row_the_two_paths_agree_or_the_engine_steps_aside(
    before: dict[str, Any], after: dict[str, Any], op: str
) -> None:
    rows_of = {"c": (None, after), "r": (None, after), "u": (before, after), "d": (before, None)}
    old, new = rows_of[op]
    document = {"before": old, "after": new, "source": SOURCE, "op": op}
    value = orjson.dumps(document) if _fits(old, new) else b"{}"
    agree(catalog(), RawRecord(b'{"prod_id": 1}', value, TOPIC, 0, 0))


def test_plausible_changes_agree_and_most_take_the_engine() -> None:
    taken: list[bool] = []

    @settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data(), op=st.sampled_from(["c", "r", "u", "u", "d"]), maria=st.booleans())
    def one_change(data: st.DataObject, op: str, maria: bool) -> None:
        before = data.draw(plausible_rows(unit_ms=maria))
        after = data.draw(plausible_rows(unit_ms=maria))
        after["prod_id"] = before["prod_id"]
        key, value = envelope(
            "products", op, None if op in "cr" else before, None if op == "d" else after, 4321
        )
        if maria:
            value = mariadb(value, 7)
        taken.append(agree(catalog(), RawRecord(key, value, TOPIC, 1, 77)))

    one_change()
    # A fifth of the prices disagree (Python rejects those) and some texts are Python's to
    # judge (non-ASCII case changes): measured 45-60% take the engine.
    assert sum(taken) >= len(taken) // 3, f"{sum(taken)} of {len(taken)} took the engine"


# ------------------------------------------------------------------ each rule kind alone

_KINDS: list[tuple[str, list[Any], dict[str, Any]]] = [
    ("text", ["text"], {}),
    ("trim", ["trim"], {}),
    ("whitespace", ["whitespace"], {}),
    ("whitespace-lines", [{"whitespace": "lines"}], {}),
    ("case-upper", [{"case": "upper"}], {}),
    ("case-lower", [{"case": "lower"}], {}),
    ("empty_as_absent", ["empty_as_absent"], {}),
    ("null_if", [{"null_if": [0, "", "N/A", False]}], {}),
    ("not_empty", ["not_empty"], {"on_fail": "absent"}),
    ("mojibake", ["mojibake"], {}),
    ("max_length", [{"max_length": 5}], {}),
    ("max_length-repair", [{"max_length": {"max": 5, "on_fail": "repair"}}], {}),
    ("no_control", ["no_control"], {"on_fail": "default", "default": "?"}),
    ("no_control-repair", [{"no_control": {"allow": "\n", "on_fail": "repair"}}], {}),
    ("pattern", [{"pattern": "[A-Z]{2}-\\d+"}], {}),
    ("pattern-spaces", [{"pattern": "\\S+@\\S*"}], {"on_fail": "absent"}),
    ("pattern-risky", [{"pattern": "a$"}], {}),
    ("codes", [{"codes": {"A": "active", "1": "one", "7": "seven"}}], {}),
    ("codes-keep", [{"codes": {"map": {"A": "active", "B": "blocked"}, "unmapped": "keep"}}], {}),
    ("boolean", ["boolean"], {}),
    ("boolean-words", [{"boolean": {"true": ["Y"], "false": ["N", ""], "null": False}}], {}),
    ("integer", ["integer"], {}),
    ("range", [{"range": {"min": -5, "max": 100}}], {}),
    ("range-repair", ["integer", {"range": {"min": 0, "max": 10, "on_fail": "repair"}}], {}),
    ("decimal", ["decimal"], {}),
    ("decimal-scale", [{"decimal": {"scale": 2}}], {}),
    ("decimal-half-even", [{"decimal": {"scale": 1, "rounding": "half_even"}}], {}),
    ("money", [{"money": {"currency": "EUR", "max": 1000}}], {}),
    ("money-cents", [{"money": {"from": "cents", "currency": "USD"}}], {}),
    ("money-text", [{"money": {"from": "text", "currency": "EUR", "marks": ["EUR", "€", "$"]}}], {}),
    ("timestamp-berlin", [{"timestamp": {"zone": "Europe/Berlin"}}], {}),
    (
        "timestamp-new-york",
        [{"timestamp": {"zone": "America/New_York", "ambiguous": "later", "nonexistent": "after_offset"}}],
        {},
    ),
    (
        "timestamp-lord-howe",
        [{"timestamp": {"zone": "Australia/Lord_Howe", "ambiguous": "reject", "nonexistent": "reject", "unit": "ms"}}],
        {"on_fail": "absent"},
    ),
    ("date", ["date"], {}),
    ("default", [{"default": "none"}, "not_empty"], {}),
]  # fmt: skip

HOUR_US = 3_600_000_000


def _edges(zone: str) -> list[int]:
    """Wall-clock microseconds (read as if UTC) at each offset change of `zone`, 1990-2040."""
    table = zone_changes(zone)
    return [
        (t + before) * 1_000_000
        for t, before, _after in table["changes"]
        if 631_152_000 <= t < 2_208_988_800
    ]


_TIMES = st.one_of(
    st.integers(-(10**15), 4 * 10**15),
    *(
        st.sampled_from(_edges(z)).flatmap(lambda e: st.integers(e - 2 * HOUR_US, e + 2 * HOUR_US))
        for z in ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe")
    ),
)
_WORDS = st.sampled_from(
    [
        "", " ", "A", " a ", "active", "B", "1", "7", "N/A", "Y", " n ", "yes", "TRUE",
        "12.50", " 12,5 EUR", "$1,234.50", "1.234,50 €", "1,234", "-0.00", "+7", "1e3",
        "0.005", "12.345", "123456789012345678901", "ab-12", "AB-12", "x@y", "a\x1cb",
        "Caf\u00c3\u00a9", "Stra\u00dfe", "\u0130", "ab\ncd", "a\rb\r\n c", "tab\there",
        "2024-03-31T02:30:00", "2024-10-27 02:30:00.500", "2024-01-01T10:00:00Z",
        "2024-01-01T10:00:00+05:30", "2024-02-30", "2024-02-29", "20240101", "a\x00b",
        "\u00a0x\u2003", "\u0661\u0662", "a$", "a\n",
    ]
)  # fmt: skip
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-20, 20),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
    _WORDS,
    _TIMES,
    st.integers(-800_000, 3_000_000),  # days
    st.lists(st.integers(-5, 5), max_size=2),
)


def declared(rules: list[Any], column: dict[str, Any]) -> dict[str, Any]:
    """A pipeline of one table `things` whose field `v` comes from column `val`."""
    return {
        "name": "things",
        "group": "g",
        "inputs": ["shop.public.things"],
        "outputs": {
            "history": {"topic": "shop.thing-events", "key": "thing_id"},
            "latest": {"topic": "shop.things-latest"},
            "dead_letter": {"topic": "shop.things-dead"},
        },
        "tables": {
            "things": {
                "key": ["thing_id"],
                "columns": {
                    "thing_id": {"from": "id", "required": True, "rules": ["integer"]},
                    "v": {"from": "val", **column, "rules": rules},
                },
            }
        },
        "entity": {"name": "thing", "table": "things", "key": ["thing_id"], "state": ["thing_id", "v"]},
        "events": {
            "ThingAdded": {"on": "created", "data": {"thing": "state"}},
            "ThingChanged": {"on": "changed", "fields": ["v"]},
        },
    }  # fmt: skip


def thing(op: str, old: Any, new: Any, connector: str = "postgresql") -> RawRecord:
    source = {
        "connector": connector,
        "name": "shop",
        "ts_ms": 1_795_392_990_000,
        "db": "shop",
        "schema": "public",
        "table": "things",
        "txId": 7,
        "lsn": 99,
        "sequence": '[null,"99"]',
        "snapshot": "false",
    }
    before = None if op in "cr" else {"id": 3, "val": old}
    after = None if op == "d" else {"id": 3, "val": new}
    document = {"before": before, "after": after, "source": source, "op": op}
    return RawRecord(b'{"id": 3}', orjson.dumps(document), "shop.public.things", 0, 5)


@pytest.mark.parametrize(("rules", "column"), [k[1:] for k in _KINDS], ids=[k[0] for k in _KINDS])
def test_each_rule_kind_agrees_with_its_python_reference(
    rules: list[Any], column: dict[str, Any]
) -> None:
    paths = built(parse_pipeline(declared(copy.deepcopy(rules), column), "things.yaml"), False)
    taken: list[bool] = []

    @settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(old=VALUES, new=VALUES, op=st.sampled_from(["c", "u"]), maria=st.booleans())
    def one(old: Any, new: Any, op: str, maria: bool) -> None:
        taken.append(agree(paths, thing(op, old, new, "mariadb" if maria else "postgresql")))

    one()
    # Most random values break a rule in the new row (Python rejects those): what counts is
    # that every record the engine takes agrees, and that it takes some.
    if rules != [{"pattern": "a$"}]:
        assert sum(taken) >= len(taken) // 25, f"{sum(taken)} of {len(taken)}"


def test_a_pattern_the_engines_may_read_differently_steps_aside() -> None:
    paths = built(parse_pipeline(declared([{"pattern": "a$"}], {}), "things.yaml"), False)
    assert paths[2].process(thing("c", None, "a")) is None
    assert isinstance(paths[1].run(thing("c", None, "a")), Produced)


# --------------------------------------------------------- a declaration of another table

ORDERS: dict[str, Any] = {
    "name": "orders",
    "group": "g",
    "inputs": ["shop.public.orders"],
    "outputs": {
        "history": {"topic": "shop.order-events"},
        "latest": {"topic": "shop.orders-latest"},
        "dead_letter": {"topic": "shop.orders-dead"},
    },
    "tables": {
        "orders": {
            "key": ["shop", "order_id"],
            "columns": {
                "shop": {"from": "shop_code", "required": True, "rules": ["trim", {"case": "lower"}, "not_empty"]},
                "order_id": {"from": "id", "required": True, "rules": ["integer", {"range": {"min": 1}}]},
                "customer": {"from": "cust_id", "rules": [{"null_if": [0]}, "integer", {"lookup": {"table": "customers", "field": "name"}}]},
                "status": {"from": "state", "required": True, "rules": ["trim", {"case": "upper"}, {"codes": {"N": "new", "P": "paid", "C": "cancelled"}}]},
                "total": {
                    "combine": "agree",
                    "sources": [
                        {"from": "total", "rules": [{"money": {"currency": "EUR"}}]},
                        {"from": "total_cents", "rules": [{"money": {"from": "cents", "currency": "EUR"}}]},
                    ],
                },
                "shipped": {"from": "shipped_flag", "rules": [{"boolean": {"null": False}}]},
                "note": {"on_fail": "absent", "rules": ["trim", "empty_as_absent", {"whitespace": "lines"}, {"max_length": {"max": 40, "on_fail": "repair"}}]},
                "placed_at": {"required": True, "rules": [{"timestamp": {"zone": "America/New_York"}}]},
                "due": {"on_fail": "default", "default": "1970-01-01", "rules": ["date"]},
            },
        },
        "customers": {
            "key": ["customer_id"],
            "topic": "shop.public.customers",
            "columns": {
                "customer_id": {"from": "id", "required": True, "rules": ["integer"]},
                "name": {"required": True, "rules": ["trim", "not_empty"]},
            },
        },
    },
    "entity": {
        "name": "order",
        "table": "orders",
        "key": ["shop", "order_id"],
        "state": ["shop", "order_id", "customer", "status", "total", "shipped", "note", "placed_at", "due"],
        "gone": [{"field": "status", "in": ["cancelled"], "reason": "cancelled"}],
        "deleted_reason": "purged",
    },
    "events": {
        "OrderPlaced": {"on": "created", "data": {"order": "state"}},
        "OrderReopened": {"on": "returned", "data": {"order": "state", "by": "=support"}},
        "OrderCancelled": {"on": "gone", "data": {"reason": "gone_reason", "shop": "key.shop"}},
        "OrderRepriced": {"on": "changed", "fields": ["total"], "data": {"was": "old.total", "now": "new.total"}},
        "OrderShipped": {"on": "changed", "fields": ["shipped"], "when": {"shipped": True}},
        "OrderNoteChanged": {"on": "changed", "fields": ["note", "customer"]},
    },
}  # fmt: skip

order_rows = st.fixed_dictionaries(
    {
        "shop_code": st.sampled_from(["EU", " us ", "eu", "", "Stra\u00dfe"]),
        "id": st.one_of(st.integers(1, 5), st.integers(-2, 0), st.just("12")),
        "cust_id": st.one_of(st.integers(0, 6), st.none(), st.just("x")),
        "state": st.sampled_from(["N", "p", " C ", "X", "c"]),
        "total": st.one_of(st.none(), st.sampled_from(["12.50", "3", "0.001", "-1", "7.5"])),
        "total_cents": st.one_of(st.none(), st.sampled_from([1250, 300, 750, -5, 12])),
        "shipped_flag": st.one_of(st.none(), st.booleans(), st.sampled_from(["yes", "no", "?"])),
        "note": st.one_of(st.none(), texts, st.just("a  very\r\n long note " * 3)),
        "placed_at": st.one_of(
            st.integers(0, 2 * 10**15), st.sampled_from(_edges("America/New_York"))
        ),
        "due": st.one_of(st.none(), st.integers(0, 30_000), st.just("2024-02-30"), st.just("x")),
    }
)


def orders() -> Paths:
    spec = parse_pipeline(copy.deepcopy(ORDERS), "orders.yaml")
    pipeline = spec.build()
    for i in range(1, 5):  # customers 1-4 known, 5 has no name (refused), 6 never seen
        row = {"id": i, "name": f" Customer {i} " if i < 5 else "  "}
        key, value = envelope("customers", "r", None, row, i)
        pipeline.observe(RawRecord(key, value, "shop.public.customers", 0, i))
    fast = load_fast_path(spec, pipeline)
    assert isinstance(fast, CompiledPath)
    return spec, pipeline, fast


def test_another_tables_declaration_agrees_and_mostly_takes_the_engine() -> None:
    paths = orders()
    taken: list[bool] = []

    @settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(old=order_rows, new=order_rows, op=st.sampled_from(["c", "r", "u", "u", "d"]))
    def one(old: dict[str, Any], new: dict[str, Any], op: str) -> None:
        new["shop_code"], new["id"] = old["shop_code"], old["id"]
        source = {**SOURCE, "name": "shop", "db": "shop", "table": "orders"}
        before = None if op in "cr" else old
        after = None if op == "d" else new
        value = orjson.dumps({"before": before, "after": after, "source": source, "op": op})
        taken.append(agree(paths, RawRecord(b'{"id": 1}', value, "shop.public.orders", 0, 9)))

    one()
    # The rows are mostly warty on purpose (half the records are refused by Python): what
    # counts is that hundreds are compared, and every one agrees.
    assert sum(taken) >= len(taken) // 20, f"{sum(taken)} of {len(taken)}"


# ------------------------------------------------- Python stages among the declared ones

MIDDLE = "between clean and events"
AFTER = "after events"


def split(example: str, where: str, field: str) -> tuple[PipelineSpec, Pipeline, SplitPath]:
    """The example's declared pipeline (`catalog`, or `stock`: the inventory declaration)
    with `Meddle` between clean and events, or after events."""
    doc = pipeline_document(example)
    validate = next((s for s in doc.get("stages") or () if s["use"] == "validate"), {})
    user = {"use": "tests.user_stages:meddle", "with": {"field": field}}
    names = ["decode", "clean", "user", "events", "validate"]
    if where == AFTER:
        names = ["decode", "clean", "events", "user", "validate"]
    doc["stages"] = [
        user if n == "user" else {**validate, "use": n} if n == "validate" else {"use": n}
        for n in names
    ]
    spec = parse_pipeline(doc, f"{example}.yaml")
    pipeline = spec.build()
    for i, (table, row) in enumerate(reference_rows(2000)):
        key, value = envelope(table, "r", None, row, i + 1)
        pipeline.observe(RawRecord(key, value, f"catalog.public.{table}", 0, i))
    assert compiled_path(spec, pipeline) is None
    found = load_split_path(spec, pipeline)
    assert isinstance(found, SplitPath), "seam_engine is not installed: run scripts/setup.sh"
    return spec, pipeline, found


COMPARED: collections.Counter[str] = collections.Counter()  # items the user stage saw


def agree_split(paths: tuple[PipelineSpec, Pipeline, SplitPath], raw: RawRecord) -> str:
    """Asserts that the engine around the Python stage hands it what the Python stages
    hand it, and that the record's publication or dead letter is the Python stages', byte
    for byte. Returns how it went: 'engine' (published by the engine), 'native' (the
    declared stages ran compiled, nothing left to publish by them: dropped, dead letter),
    'python' (the Python stages ran after the stage) or 'aside' (the engine stepped aside)."""
    spec, pipeline, path = paths
    user_stages.SEEN.clear()
    expected = pipeline.run(raw)
    seen = list(user_stages.SEEN)
    user_stages.SEEN.clear()
    got, native = path.run(raw, decode(raw))
    assert seen == user_stages.SEEN, raw.value
    COMPARED["items"] += len(seen)
    if isinstance(expected, Rejected):
        assert got == expected, raw.value
    elif isinstance(got, Produced):
        assert tuple(publication(got, spec.history.key)) == tuple(
            publication(expected, spec.history.key)
        ), raw.value
    else:
        assert not isinstance(got, Rejected), f"the engine published what Python rejects: {got}"
        assert native
        assert tuple(got) == tuple(publication(expected, spec.history.key)), raw.value
        return "engine"
    if native:
        return "native"
    took = raw.value is not None and path.engine.front(raw.key, raw.value) is not None
    return "python" if took else "aside"


_split: dict[tuple[str, str], tuple[PipelineSpec, Pipeline, SplitPath]] = {}


def split_paths(example: str, where: str) -> tuple[PipelineSpec, Pipeline, SplitPath]:
    found = _split.get((example, where))
    if found is None:
        found = _split[(example, where)] = split(example, where, FIELDS[example])
    return found


FIELDS = {"catalog": "name", "stock": "quantity"}
CHANGES = {"catalog": typical_changes, "stock": typical_stock_changes}
TOPICS = {"catalog": TOPIC, "stock": "catalog.public.stock_levels"}


@pytest.mark.parametrize("example", ["catalog", "stock"])
@pytest.mark.parametrize("where", [MIDDLE, AFTER])
def test_a_python_stage_keeps_the_engine_on_for_the_declared_stages_around_it(
    example: str, where: str
) -> None:
    paths = split_paths(example, where)
    assert paths[2].compiled == (
        ("decode", "clean", "events", "validate") if where == MIDDLE else ("decode", "clean")
    )
    records = list(raws(CHANGES[example](3000), TOPICS[example]))
    COMPARED.clear()
    went = collections.Counter(agree_split(paths, raw) for raw in records)
    assert COMPARED["items"] >= len(records)  # the stage saw the same items on both paths
    # Every typical record takes the engine's decode and clean (measured: all of them).
    assert went["aside"] == 0, went
    if where == MIDDLE:
        # Offsets 3, 7, 8, 9 (enriched, or untouched) are published by the engine's events
        # and validate; 4, 5, 6 (a float, two items, a note) by the Python stages after the
        # user's; 0, 1, 2 are dropped or dead letters before them.
        assert went["engine"] >= 0.95 * 0.4 * len(records), went
        assert went["python"] >= 0.95 * 0.3 * len(records), went
    else:
        assert went["native"] == len(records), went


def test_the_worker_counts_the_records_the_engine_took_around_a_python_stage() -> None:
    spec, pipeline, path = split_paths("stock", MIDDLE)
    messages = [FakeMessage(r) for r in raws(typical_stock_changes(200), TOPICS["stock"])]
    calls: dict[str, list[Any]] = {"python": [], "split": []}
    counts = {"python": Counts(), "split": Counts()}
    for name, handler in (
        ("python", RecordHandler(spec, pipeline, None)),
        ("split", RecordHandler(spec, pipeline, None, split=path)),
    ):
        for msg in messages:
            handler.handle(msg, counts[name], Marks(), lambda *a, n=name: calls[n].append(a))
    assert calls["split"] == calls["python"]  # the same records, dead letters included
    python, compiled = counts["python"], counts["split"]
    assert compiled.native >= 0.6 * len(messages)
    assert python.native == 0
    compiled.native = 0
    assert compiled == python
    assert compiled.dead_lettered >= 30
    assert compiled.balanced


def _stock_row(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "prod_id": draw(st.one_of(st.integers(1, 40), _INTS, st.just("7"))),
        "warehouse_cd": draw(st.one_of(st.sampled_from(["BER", " ham", "MUC ", "X1", ""]), cells)),
        "qty_on_hand": draw(st.one_of(st.integers(-50, 500), _INTS, st.just("12"))),
        "last_counted": draw(
            st.one_of(
                st.none(),
                st.integers(820_000_000_000_000, 2_100_000_000_000_000),
                st.sampled_from(_edges("Europe/Berlin")),
                cells,
            )
        ),
    }


stock_row = st.composite(_stock_row)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    op=st.sampled_from(["c", "r", "u", "u", "d"]),
    where=st.sampled_from([MIDDLE, AFTER]),
    offset=st.integers(0, 99),
)
def test_any_stock_change_agrees_around_a_python_stage(
    data: st.DataObject, op: str, where: str, offset: int
) -> None:
    before, after = data.draw(stock_row()), data.draw(stock_row())
    after["prod_id"], after["warehouse_cd"] = before["prod_id"], before["warehouse_cd"]
    assume(_fits(before, after))  # a record orjson can write (beyond 64 bits: see above)
    key, value = envelope(
        "stock_levels", op, None if op in "cr" else before, None if op == "d" else after, 555
    )
    paths = split_paths("stock", where)
    agree_split(paths, RawRecord(key, value, TOPICS["stock"], 0, offset))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    before=typed_rows,
    after=typed_rows,
    op=st.sampled_from(["c", "r", "u", "u", "d"]),
    where=st.sampled_from([MIDDLE, AFTER]),
    offset=st.integers(0, 99),
)
def test_any_catalog_row_agrees_around_a_python_stage(
    before: dict[str, Any], after: dict[str, Any], op: str, where: str, offset: int
) -> None:
    rows_of = {"c": (None, after), "r": (None, after), "u": (before, after), "d": (before, None)}
    old, new = rows_of[op]
    document = {"before": old, "after": new, "source": SOURCE, "op": op}
    value = orjson.dumps(document) if _fits(old, new) else b"{}"
    agree_split(
        split_paths("catalog", where), RawRecord(b'{"prod_id": 1}', value, TOPIC, 0, offset)
    )


def test_plausible_catalog_changes_mostly_take_the_engine_around_a_python_stage() -> None:
    went: collections.Counter[str] = collections.Counter()

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        data=st.data(),
        op=st.sampled_from(["c", "r", "u", "u", "d"]),
        offset=st.sampled_from([3, 7, 8, 9]),
    )
    def one_change(data: st.DataObject, op: str, offset: int) -> None:
        before = data.draw(plausible_rows(unit_ms=False))
        after = data.draw(plausible_rows(unit_ms=False))
        after["prod_id"] = before["prod_id"]
        key, value = envelope(
            "products", op, None if op in "cr" else before, None if op == "d" else after, 4321
        )
        went[
            agree_split(split_paths("catalog", MIDDLE), RawRecord(key, value, TOPIC, 1, offset))
        ] += 1

    one_change()
    # As with the whole chain compiled (a third at least, see above).
    assert went["engine"] >= sum(went.values()) // 3, went


def test_where_the_engine_cannot_run_around_python_stages() -> None:
    data = copy.deepcopy(ORDERS)
    user = {"use": "tests.user_stages:meddle"}
    # A Python stage before clean: the Python stages run every record.
    data["stages"] = [
        {"use": "decode"},
        user,
        {"use": "clean"},
        {"use": "events"},
        {"use": "validate"},
    ]
    spec = parse_pipeline(data, "orders.yaml")
    assert load_split_path(spec, spec.build()) is None
    # processing.compiled: false turns the engine off around Python stages too.
    data["stages"] = [
        {"use": "decode"},
        {"use": "clean"},
        user,
        {"use": "events"},
        {"use": "validate"},
    ]
    data["processing"] = {"compiled": False}
    spec = parse_pipeline(data, "orders.yaml")
    assert load_split_path(spec, spec.build()) is None
    del data["processing"]
    spec = parse_pipeline(data, "orders.yaml")
    pipeline = spec.build()
    assert load_fast_path(spec, pipeline) is None  # not the whole chain
    assert isinstance(load_split_path(spec, pipeline), SplitPath)
    # The whole chain: the fast path, not the split one.
    spec = parse_pipeline(copy.deepcopy(ORDERS), "orders.yaml")
    assert load_split_path(spec, spec.build()) is None


# ---------------------------------------------------------------------------- publishing


class FakeMessage:
    """The accessors of a confluent-kafka Message that the engine and the worker read."""

    def __init__(self, raw: RawRecord) -> None:
        self.raw = raw

    def key(self) -> bytes | None:
        return self.raw.key

    def value(self) -> bytes | None:
        return self.raw.value

    def topic(self) -> str:
        return self.raw.topic

    def partition(self) -> int:
        return self.raw.partition

    def offset(self) -> int:
        return self.raw.offset

    def timestamp(self) -> tuple[int, int]:
        return (0, 0)  # not available

    def headers(self) -> None:
        return None


class RecordingProducer:
    """Records produce calls; raises BufferError (a full queue) on chosen calls."""

    def __init__(self, full_on: set[int]) -> None:
        self.calls: list[tuple[str, bytes | None, bytes, Any]] = []
        self.attempts = 0
        self.polls = 0
        self.full_on = full_on

    def produce(  # confluent-kafka's parameters, in its order
        self,
        topic: str,
        value: bytes | None,
        key: bytes,
        partition: int = -1,
        on_delivery: Any = None,
        callback: Any = None,
        timestamp: int = 0,
        headers: Any = None,
    ) -> None:
        assert (partition, on_delivery, callback, timestamp) == (-1, None, None, 0)
        self.attempts += 1
        if self.attempts in self.full_on:
            raise BufferError("Local: Queue full")
        self.calls.append((topic, value, key, headers))

    def poll(self, timeout: float) -> int:
        self.polls += 1
        return 0


def test_publish_produces_what_process_returns_in_order_and_stops_for_python() -> None:
    spec, pipeline, fast = catalog()
    records = list(raws(typical_changes(40, seed=11)))
    bad_key, bad_value = envelope("products", "c", None, product(status_cd="Q"), 99)
    records.insert(25, RawRecord(bad_key, bad_value, TOPIC, 0, 999))  # takes the Python path
    producer = RecordingProducer(full_on={3, 17})
    batch = Counts()
    messages = [FakeMessage(r) for r in records]

    stop = fast.publish(messages, 0, producer, spec, batch, Marks())
    assert stop == 25
    assert producer.polls == 2  # each full queue waited once, then the record went out once
    expected: list[tuple[str, bytes | None, bytes, Any]] = []
    for raw in records[:25]:
        outcome = pipeline.run(raw)
        assert isinstance(outcome, Produced)
        history, latest, _note = publication(outcome, spec.history.key)
        assert latest is not None
        source = source_headers(orjson.loads(raw.value or b"")["source"])
        assert [name for name, _ in source] == ["seam-source-ts-ms", "seam-source-position"]
        expected += [(spec.history.topic, v, k, h + source) for k, v, h in history]
        expected.append((spec.latest.topic, latest[1], latest[0], source))
    assert producer.calls == expected
    assert batch.records_in == batch.native == 25
    assert batch.balanced
    assert fast.publish(messages, 26, producer, spec, batch, Marks()) == len(records)


@pytest.mark.parametrize(
    ("name", "table", "rows"),
    [("stock.yaml", "stock_levels", stock_rows), ("prices.yaml", "product_prices", price_rows)],
)
def test_the_examples_other_declared_pipelines_agree(name: str, table: str, rows: Any) -> None:
    """The example's stock levels and prices (composite keys, other rules): snapshot reads,
    then each row updated with the next row's values and deleted."""
    paths = built(load_pipeline(folder("pipelines") / name), references=False)
    found = list(rows(300))
    topic = f"catalog.public.{table}"
    records = [envelope(table, "r", None, row, i + 1) for i, row in enumerate(found)]
    for i, (old, new) in enumerate(itertools.pairwise(found)):
        changed = {**new, **{k: old[k] for k in list(old)[:2]}}  # same key, other values
        records.append(envelope(table, "u", old, changed, 10_000 + i))
        records.append(envelope(table, "d", changed, None, 20_000 + i))
    taken = sum(agree(paths, raw) for raw in raws(records, topic))
    assert taken >= 0.95 * len(records), f"{taken} of {len(records)}"  # measured: all


@pytest.mark.parametrize(
    ("stages", "compiled"),
    [
        (None, ["decode", "clean", "events", "validate"]),
        (
            ["decode", "clean", "user", "events", "validate"],
            ["decode", "clean", "events", "validate"],
        ),
        (["decode", "clean", "events", "user", "validate"], ["decode", "clean"]),
        (["decode", "user", "clean", "events", "validate"], []),
    ],
)
def test_check_names_the_stages_that_run_compiled(
    tmp_path: Path, stages: list[str] | None, compiled: list[str]
) -> None:
    doc = pipeline_document("stock")
    if stages is not None:
        user = {"use": "tests.user_stages:meddle", "with": {"field": "quantity"}}
        doc["stages"] = [user if s == "user" else {"use": s} for s in stages]
    path = tmp_path / "stock.yaml"
    path.write_text(json.dumps(doc))  # JSON is YAML
    result = CliRunner().invoke(app, ["transform", "check", str(path), "-o", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["compiled"] == compiled


def python_calls(spec: PipelineSpec, pipeline: Pipeline, raw: RawRecord) -> list[Any]:
    """What the worker's Python path produces for `raw`: (topic, value, key, headers)."""
    calls: list[Any] = []

    def produce(topic: str, key: bytes, value: bytes | None, headers: Any = None) -> None:
        calls.append((topic, value, key, headers))

    RecordHandler(spec, pipeline, None).handle(FakeMessage(raw), Counts(), Marks(), produce)
    return calls


def with_source(value: bytes, **changes: Any) -> bytes:
    doc = orjson.loads(value)
    for name, changed in changes.items():
        if changed is None:
            doc["source"].pop(name, None)
        else:
            doc["source"][name] = changed
    return orjson.dumps(doc)


@pytest.mark.parametrize(
    ("flavour", "changes"),
    [
        ("postgresql", {}),
        ("postgresql", {"ts_ns": None, "ts_us": 1_795_392_990_123_999}),  # floor to ms
        ("postgresql", {"ts_ns": None, "ts_us": None}),
        ("postgresql", {"ts_ns": None, "ts_us": None, "ts_ms": None}),  # no time: no header
        ("postgresql", {"lsn": (0x2A << 32) + 0x16B3748}),  # both halves of the LSN
        ("postgresql", {"lsn": None}),  # no position header
        ("postgresql", {"lsn": "12"}),  # not an int: no position header
        ("mariadb", {}),
        ("mariadb", {"ts_ms": 1_795_392_990_001}),
    ],
)
def test_the_source_headers_are_the_same_on_both_paths(
    flavour: str, changes: dict[str, Any]
) -> None:
    """The compiled engine's publish writes the very source headers the Python path writes,
    on the history records and the latest-topic write."""
    spec, pipeline, fast = catalog()
    changes_ = typical_changes(30, seed=3)
    if flavour == "mariadb":
        changes_ = [(k, mariadb(v, i)) for i, (k, v) in enumerate(changes_)]
    taken = 0
    for i, (key, value) in enumerate(changes_):
        raw = RawRecord(key, with_source(value, **changes), TOPIC, 0, i)
        producer = RecordingProducer(full_on=set())
        if fast.publish([FakeMessage(raw)], 0, producer, spec, Counts(), Marks()) == 0:
            continue  # left to Python
        taken += 1
        expected = python_calls(spec, pipeline, raw)
        assert producer.calls == expected
        latest = expected[-1]
        assert latest[0] == spec.latest.topic
        if not changes and latest[3] is not None:
            source = orjson.loads(raw.value or b"")["source"]
            want = (
                f"lsn:{source['lsn'] >> 32:X}/{source['lsn'] & 0xFFFFFFFF:X}"
                if flavour == "postgresql"
                else f"binlog:{source['file']}:{source['pos']}"
            )
            assert dict(latest[3]) == {
                "seam-source-ts-ms": str(source["ts_ms"]).encode(),
                "seam-source-position": want.encode(),
            }
    # A text LSN sends most records to Python (they have no position the engine reads).
    assert taken >= (1 if changes.get("lsn") == "12" else 25), f"the engine took {taken} of 30"


def test_source_headers_encoding() -> None:
    assert source_headers(
        {"connector": "postgresql", "lsn": (1 << 32) + 0xAB, "ts_ms": 1_700_000_000_123}
    ) == [("seam-source-ts-ms", b"1700000000123"), ("seam-source-position", b"lsn:1/AB")]
    assert source_headers(
        {"connector": "mariadb", "file": "mysql-bin.000003", "pos": 1234, "ts_ns": 1_999_999}
    ) == [("seam-source-ts-ms", b"1"), ("seam-source-position", b"binlog:mysql-bin.000003:1234")]
    assert source_headers({"connector": "postgresql", "lsn": True, "ts_ms": "5"}) == []

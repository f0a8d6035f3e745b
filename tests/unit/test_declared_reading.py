"""Reading a declaration from a pipeline file (seam.transforms.declared.reading): every error
at file:line:column with a fix, the closest valid name for an unknown one, included files."""

from __future__ import annotations

import re
from pathlib import Path
from textwrap import dedent

import pytest

from seam.errors import ConfigError
from seam.transforms.pipeline_file import DECLARED_STAGES, PipelineSpec, load_pipeline

pytestmark = pytest.mark.unit

HEAD = """\
name: orders
group: seam-transform-orders
inputs: [shop.public.orders]
outputs:
  history: {topic: shop.order-events}
  latest: {topic: shop.orders-latest}
  dead_letter: {topic: shop.orders-dead-letter}
"""

TABLES = """\
tables:
  orders:
    key: [region, order_no]
    columns:
      region: {rules: [trim, {case: upper}]}
      order_no: {from: order_number, rules: [integer]}
      status: {from: status_cd, rules: [trim, {codes: {N: new, S: shipped}}]}
"""

ENTITY = """\
entity:
  name: order
  table: orders
  key: [region, order_no]
  state: [region, order_no, status]
"""

EVENTS = """\
events:
  OrderPlaced: {on: created, data: {order: state}}
  OrderShipped: {on: changed, fields: [status], when: {status: shipped}}
"""


def write(tmp_path: Path, text: str, name: str = "orders.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dedent(text), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str) -> PipelineSpec:
    return load_pipeline(write(tmp_path, HEAD + text))


def error(tmp_path: Path, text: str) -> str:
    """The whole error as the CLI shows it: the message and the closing fix."""
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    exc = caught.value
    assert exc.hint, "every error says how to fix it"
    return f"{exc.message}\nfix: {exc.hint}"


def at(tmp_path: Path, text: str, name: str = "orders.yaml") -> str:
    """`<file>:` of the pipeline file (or an included one), for matching error positions."""
    return re.escape(f"{tmp_path / name}:")


def line_of(text: str, needle: str) -> int:
    full = HEAD + text
    return next(i for i, line in enumerate(full.splitlines(), 1) if needle in line)


def test_a_whole_declaration_reads(tmp_path: Path) -> None:
    spec = load(tmp_path, TABLES + ENTITY + EVENTS)
    declaration = spec.declaration
    assert declaration is not None
    assert tuple(s.use for s in spec.stages) == DECLARED_STAGES  # no 'stages:': the defaults
    table = declaration.table
    assert table.key == ("region", "order_no")
    assert table.field_names == ("region", "order_no", "status")
    order_no = table.column("order_no")
    assert order_no is not None
    assert order_no.columns == ("order_number",)
    assert [r.kind for r in order_no.sources[0].rules] == ["integer"]
    status = table.column("status")
    assert status is not None
    assert status.sources[0].rules[1].options == {"map": {"N": "new", "S": "shipped"}}
    assert [(e.type, e.on) for e in declaration.events] == [
        ("OrderPlaced", "created"),
        ("OrderShipped", "changed"),
    ]
    assert declaration.events[1].when == {"status": ("shipped",)}
    assert declaration.events[0].data == (("order", "state"),)
    assert declaration.events[1].data is None
    assert declaration.events[0].where == (
        f"{tmp_path / 'orders.yaml'}:{line_of(TABLES + ENTITY + EVENTS, 'OrderPlaced')}:3"
    )


def test_yaml_keys_on_true_null_read_as_written(tmp_path: Path) -> None:
    """YAML 1.1 reads `on:`, `true:`, `false:` as booleans and `null:` as None."""
    text = TABLES.replace(
        "      status:",
        "      shipped: {rules: [{boolean: {true: [Y, J], false: [N], null: false}}]}\n      status:",
    )
    spec = load(tmp_path, text + ENTITY + EVENTS)
    assert spec.declaration is not None
    shipped = spec.declaration.table.column("shipped")
    assert shipped is not None
    assert shipped.sources[0].rules[0].options == {
        "true": ["Y", "J"],
        "false": ["N"],
        "null": False,
    }
    assert spec.declaration.events[0].on == "created"


def test_a_declaration_with_no_entity(tmp_path: Path) -> None:
    text = error(tmp_path, TABLES)
    assert re.search(
        at(tmp_path, TABLES) + r"1:1: entity: missing: the pipeline declares tables but no entity",
        text,
    )
    assert (
        "fix: add 'entity: {name: <entity>, table: <table>, key: [<field>], state: [...]}'" in text
    )


def test_an_unknown_rule_kind_names_the_closest(tmp_path: Path) -> None:
    text = TABLES.replace("rules: [integer]", "rules: [integr]")
    found = error(tmp_path, text + ENTITY + EVENTS)
    line = line_of(text, "integr")
    assert re.search(
        at(tmp_path, text) + rf"{line}:\d+: tables.orders.columns.order_no.rules\[0\]: "
        r"unknown rule 'integr' \(did you mean 'integer'\?\)",
        found,
    )
    assert "fix: rule kinds: text, trim," in found


def test_an_unknown_option_names_the_closest(tmp_path: Path) -> None:
    text = TABLES.replace("{case: upper}", "{case: {too: upper}}")
    found = error(tmp_path, text + ENTITY + EVENTS)
    line = line_of(text, "too: upper")
    assert re.search(
        at(tmp_path, text)
        + rf"{line}:\d+: .*rule 'case' has no option 'too' \(did you mean 'to'\?\)",
        found,
    )
    assert "rule 'case' needs 'to'" in found
    assert "fix: write '- case: {to: ...}' (to: upper or lower)" in found


def test_a_wrong_option_value_says_what_it_must_be(tmp_path: Path) -> None:
    text = TABLES.replace("{case: upper}", "{case: title}")
    found = error(tmp_path, text + ENTITY + EVENTS)
    assert "'to' of rule 'case' must be upper or lower, got 'title'" in found
    text = TABLES.replace("{case: upper}", "{timestamp: {zone: Europe/Berlln}}")
    found = error(tmp_path, text + ENTITY + EVENTS)
    assert "unknown time zone 'Europe/Berlln'" in found
    assert "fix: name an IANA zone, e.g. Europe/Berlin or UTC" in found


def test_an_unknown_column_field_names_the_closest(tmp_path: Path) -> None:
    text = TABLES.replace("{from: order_number,", "{form: order_number,")
    found = error(tmp_path, text + ENTITY + EVENTS)
    line = line_of(text, "form:")
    assert re.search(
        at(tmp_path, text)
        + rf"{line}:\d+: tables.orders.columns.order_no: unknown key 'form' \(did you mean 'from'\?\)",
        found,
    )
    assert "valid keys of tables.orders.columns.order_no: from, rules, sources" in found


def test_unknown_fields_of_entity_and_events_name_the_closest(tmp_path: Path) -> None:
    entity = ENTITY.replace("state: [region, order_no, status]", "state: [region, order_no, stats]")
    events = EVENTS.replace("fields: [status]", "fields: [statuss]")
    found = error(tmp_path, TABLES + entity + events)
    assert re.search(
        at(tmp_path, "") + rf"{line_of(TABLES + entity, 'entity:')}:1: entity.state: "
        r"unknown field 'stats' \(did you mean 'status'\?\)",
        found,
    )
    assert re.search(
        rf":{line_of(TABLES + entity + events, 'OrderShipped')}:3: events.OrderShipped: "
        r"unknown field 'statuss' \(did you mean 'status'\?\)",
        found,
    )
    assert "fields declared: region, order_no, status" in found


def test_an_unknown_table_names_the_closest(tmp_path: Path) -> None:
    entity = ENTITY.replace("table: orders", "table: order")
    found = error(tmp_path, TABLES + entity + EVENTS)
    assert re.search(
        r":\d+:1: entity.table: unknown table 'order' \(did you mean 'orders'\?\)", found
    )
    assert "fix: tables declared: orders" in found


def test_an_unknown_trigger_names_the_closest(tmp_path: Path) -> None:
    events = EVENTS.replace("on: created", "on: create")
    found = error(tmp_path, TABLES + ENTITY + events)
    line = line_of(TABLES + ENTITY + events, "OrderPlaced")
    assert re.search(
        rf":{line}:\d+: events.OrderPlaced.on: unknown trigger 'create' \(did you mean 'created'\?\)",
        found,
    )
    assert "fix: triggers: created, returned, gone, changed" in found


def test_an_unknown_expression_names_the_closest(tmp_path: Path) -> None:
    events = EVENTS.replace(
        "data: {order: state}", "data: {order: states, was: old.statu, k: key.status}"
    )
    found = error(tmp_path, TABLES + ENTITY + events)
    assert "events.OrderPlaced.data.order: unknown expression 'states'" in found
    assert (
        "events.OrderPlaced.data.was: unknown field 'statu' in 'old.statu' (did you mean 'old.status'?)"
        in found
    )
    # key.<field> names a key field only.
    assert "events.OrderPlaced.data.k: unknown field 'status' in 'key.status'" in found
    assert (
        "expressions: state, gone_reason, old.<field>, new.<field>, key.<field>, '=<text>'" in found
    )


def test_a_changed_event_needs_fields(tmp_path: Path) -> None:
    events = EVENTS.replace("fields: [status], ", "")
    found = error(tmp_path, TABLES + ENTITY + events)
    assert "events.OrderShipped: a 'changed' event needs 'fields'" in found
    assert "add 'fields: [<field>, ...]'" in found


def test_a_lookup_into_a_table_without_a_one_field_key(tmp_path: Path) -> None:
    tables = TABLES + (
        "  regions:\n    key: [code, country]\n    columns: {code: {}, country: {}, name: {}}\n"
    )
    tables = tables.replace(
        "rules: [trim, {case: upper}]", "rules: [trim, {lookup: {table: regions, field: name}}]"
    )
    found = error(tmp_path, tables + ENTITY + EVENTS)
    line = line_of(tables, "lookup:")
    assert re.search(
        rf":{line}:\d+: lookup: table 'regions' needs a one-field 'key:' to be looked up", found
    )
    assert "fix: add 'key: [<its id field>]' to tables.regions" in found


def test_a_lookup_of_an_unknown_table_or_field(tmp_path: Path) -> None:
    tables = TABLES.replace("{case: upper}", "{lookup: {table: order, field: status}}")
    found = error(tmp_path, tables + ENTITY + EVENTS)
    assert "lookup: unknown table 'order' (did you mean 'orders'?)" in found
    tables = TABLES.replace("{case: upper}", "{lookup: {table: orders, field: stat}}")
    found = error(tmp_path, tables + ENTITY + EVENTS)
    assert "lookup: unknown field 'stat' (did you mean 'status'?)" in found


def test_on_fail_repair_on_a_kind_that_cannot_repair(tmp_path: Path) -> None:
    tables = TABLES.replace("rules: [integer]", "rules: [{integer: {on_fail: repair}}]")
    found = error(tmp_path, tables + ENTITY + EVENTS)
    line = line_of(tables, "on_fail: repair")
    assert re.search(
        rf":{line}:\d+: tables.orders.columns.order_no.rules\[0\].on_fail: "
        r"rule 'integer' cannot use on_fail 'repair'",
        found,
    )
    assert "fix: reject, absent or default; repair only for max_length, no_control, range" in found
    # A column's own policy cannot be repair either: only a rule that can repair can.
    tables = TABLES.replace("{from: order_number,", "{from: order_number, on_fail: repair,")
    found = error(tmp_path, tables + ENTITY + EVENTS)
    assert (
        "tables.orders.columns.order_no.on_fail: expected reject, absent or default, got 'repair'"
        in found
    )


def test_a_repair_a_kind_can_do_reads(tmp_path: Path) -> None:
    tables = TABLES.replace("{case: upper}", "{max_length: {max: 2, on_fail: repair}}")
    spec = load(tmp_path, tables + ENTITY + EVENTS)
    assert spec.declaration is not None
    region = spec.declaration.table.column("region")
    assert region is not None
    rule = region.sources[0].rules[1]
    assert (rule.kind, dict(rule.options), rule.on_fail) == ("max_length", {"max": 2}, "repair")


def test_on_fail_default_needs_a_default(tmp_path: Path) -> None:
    tables = TABLES.replace("{from: order_number,", "{from: order_number, on_fail: default,")
    found = error(tmp_path, tables + ENTITY + EVENTS)
    line = line_of(tables, "on_fail: default")
    assert re.search(
        rf":{line}:\d+: tables.orders.columns.order_no.on_fail: 'default' needs the column's 'default:' value",
        found,
    )
    assert "fix: add 'default: <value>' to the column" in found
    tables = TABLES.replace(
        "{from: order_number,", "{from: order_number, on_fail: default, default: 0,"
    )
    spec = load(tmp_path, tables + ENTITY + EVENTS)
    assert spec.declaration is not None
    column = spec.declaration.table.column("order_no")
    assert column is not None
    assert (column.on_fail, column.default) == ("default", 0)


def test_every_problem_is_reported_at_once_in_file_order(tmp_path: Path) -> None:
    tables = TABLES.replace("rules: [integer]", "rules: [integr]").replace(
        "{case: upper}", "{case: uper}"
    )
    found = error(tmp_path, tables + ENTITY + EVENTS)
    lines = [int(m) for m in re.findall(r"orders\.yaml:(\d+):\d+:", found)]
    assert len(lines) == 2
    assert lines == sorted(lines)


def test_errors_in_an_included_file_name_that_file(tmp_path: Path) -> None:
    write(
        tmp_path,
        """\
        # shared by several pipelines
        tables:
          regions:
            key: [code]
            columns:
              code: {rules: [trim, {max_lenght: 3}]}
        """,
        "shared/regions.yaml",
    )
    found = error(tmp_path, "include: [shared/regions.yaml]\n" + TABLES + ENTITY + EVENTS)
    assert re.search(
        at(tmp_path, "", "shared/regions.yaml") + r"6:\d+: tables.regions.columns.code.rules\[1\]: "
        r"unknown rule 'max_lenght' \(did you mean 'max_length'\?\)",
        found,
    )


def test_an_included_file_provides_tables(tmp_path: Path) -> None:
    write(tmp_path, TABLES, "tables/orders.yaml")
    spec = load(tmp_path, "include: tables/orders.yaml\n" + ENTITY + EVENTS)
    assert spec.declaration is not None
    assert list(spec.declaration.tables) == ["orders"]
    assert spec.declaration.table.where == f"{tmp_path / 'tables' / 'orders.yaml'}:2:3"


def test_an_include_that_is_missing_or_loops(tmp_path: Path) -> None:
    found = error(tmp_path, "include: [nowhere.yaml]\n" + TABLES + ENTITY + EVENTS)
    assert re.search(r"orders\.yaml:8:\d+: include\[0\]: cannot read .*nowhere\.yaml", found)
    write(tmp_path, "include: [a.yaml]\n", "a.yaml")
    found = error(tmp_path, "include: [a.yaml]\n" + TABLES + ENTITY + EVENTS)
    assert re.search(
        r"a\.yaml:1:11: include\[0\]: a.yaml is included twice \(or includes itself\)", found
    )
    found = error(tmp_path, "include: [3]\n" + TABLES + ENTITY + EVENTS)
    assert "include[0]: expected a file name, got 3" in found


def test_a_table_declared_twice(tmp_path: Path) -> None:
    write(tmp_path, TABLES, "more.yaml")
    found = error(tmp_path, "include: [more.yaml]\n" + TABLES + ENTITY + EVENTS)
    assert "tables.orders: declared twice (first at " in found
    assert "fix: keep one declaration of each table" in found

"""A table that has nothing to do with the catalog, migrated by a declaration alone.

A `crm` customers table with warts of its own (customer numbers with stray spaces and lower
case, mojibake and whitespace runs in names, e-mail addresses in mixed case or empty, one-
letter tier codes, a soft-delete flag 'J'/'N', sign-up times in New York wall-clock time,
credit limits as NUMERIC) is made in its own database on the real stack, captured by a
Debezium connector provisioned through seam's spec -> render -> prepare -> apply, and turned
into domain events by `seam transform run` on a pipeline file that only declares: no Python
stage. The events, latest states and dead letters are written out below by hand.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from seam.settings import Settings
from tests.catalog_checks import delete_topics, drop_slots, wait_for
from tests.conftest import start_transform_worker

pytestmark = pytest.mark.integration

# The declaration a user writes for the table: its rules, the entity, the events.
PIPELINE = """\
name: crm-customers
group: {group}
inputs: [{raw}]
tables:
  customers:
    key: [customer_id]
    columns:
      customer_id: {{from: cust_id, required: true, rules: [integer, {{range: {{min: 1}}}}]}}
      customer_no:                    # ' c-0001 ' -> 'C-0001'
        required: true
        rules: [trim, {{case: upper}}, {{pattern: 'C-\\d{{4}}'}}]
      name:                           # mojibake, runs of spaces
        from: full_name
        required: true
        rules: [text, mojibake, whitespace, not_empty, {{max_length: 120}}, no_control]
      email:                          # '' is unknown, and so is anything unlike an address
        on_fail: absent
        rules: [trim, empty_as_absent, {{case: lower}}, {{pattern: '[^@\\s]+@[^@\\s]+\\.[^@\\s]+'}}]
      tier:
        from: tier_cd
        required: true
        rules: [trim, {{case: upper}}, {{codes: {{G: gold, S: silver, B: bronze}}}}]
      deleted:                        # 'J' ja, 'N' nein
        from: geloescht
        rules: [{{boolean: {{true: [J], false: [N], null: false}}}}]
      birth_date: {{rules: [date]}}
      signed_up_at:                   # New York wall-clock time
        from: signup_ts
        required: true
        rules: [{{timestamp: {{zone: America/New_York}}}}]
      credit_limit: {{rules: [{{money: {{currency: USD, max: 1000000}}}}]}}
entity:
  name: customer
  table: customers
  key: [customer_id]
  state: [customer_id, customer_no, name, email, tier, birth_date, signed_up_at, credit_limit]
  gone:
    - {{field: deleted, reason: soft_deleted}}
events:
  CustomerRegistered: {{on: created, data: {{customer: state}}}}
  CustomerReactivated: {{on: returned, data: {{customer: state}}}}
  CustomerClosed: {{on: gone, data: {{reason: gone_reason}}}}
  CustomerRenamed: {{on: changed, fields: [name]}}
  CustomerEmailChanged: {{on: changed, fields: [email]}}
  CustomerTierChanged: {{on: changed, fields: [tier]}}
  CustomerCreditLimitChanged: {{on: changed, fields: [credit_limit]}}
outputs:
  history: {{topic: {history}, partitions: 2, retention_ms: -1}}
  latest: {{topic: {latest}, partitions: 2}}
  dead_letter: {{topic: {dead_letter}, partitions: 1}}
processing:
  batch_size: 50
"""

DDL = {
    "postgres": (
        "CREATE SCHEMA crm",
        "CREATE TABLE crm.customers (cust_id integer PRIMARY KEY, customer_no varchar(20) "
        "NOT NULL, full_name varchar(120) NOT NULL, email varchar(200), tier_cd char(1), "
        "geloescht char(1) NOT NULL DEFAULT 'N', birth_date date, signup_ts timestamp NOT NULL, "
        "credit_limit numeric(12, 2))",
    ),
    "mariadb": (
        "CREATE TABLE customers (cust_id INT PRIMARY KEY, customer_no VARCHAR(20) NOT NULL, "
        "full_name VARCHAR(120) NOT NULL, email VARCHAR(200), tier_cd CHAR(1), "
        "geloescht CHAR(1) NOT NULL DEFAULT 'N', birth_date DATE, signup_ts DATETIME NOT NULL, "
        "credit_limit DECIMAL(12, 2)) CHARACTER SET utf8mb4",
    ),
}
COLUMNS = "cust_id, customer_no, full_name, email, tier_cd, geloescht, birth_date, signup_ts, credit_limit"
SEED = (
    # 02:30 on 2021-03-14 does not exist in New York (02:00 -> 03:00): read as EST, -05:00.
    (1, " c-0001 ", "Ana  MÃ¼ller", "Ana.Mueller@Example.COM", "g", "N", "1980-02-29",
     "2021-03-14 02:30:00", "2500.00"),
    # 01:30 on 2020-11-01 happens twice in New York: the earlier, EDT, -04:00.
    (2, "C-0002", "Bob   Smith", "", "S", "N", None, "2020-11-01 01:30:00", None),
    (3, "c-0003", "Cécile Dupont", " CECILE@EXAMPLE.FR ", "B", "J", "1975-12-31",
     "2019-01-15 09:00:00", "0.00"),
    (4, "C-0004", "Dana White", "dana@example.com", "Z", "N", "1999-09-09",
     "2022-06-01 12:00:00", "100.00"),
)  # fmt: skip
# The changes, each in its own transaction, in this order.
CHANGES = (
    "INSERT INTO {t} ({columns}) VALUES (5, ' c-0005', 'JosÃ© GarcÃ\xada', 'not an email', "
    "'g', 'N', '1990-07-04', '2024-07-04 12:00:00', 100.5)",
    "UPDATE {t} SET tier_cd = 'S', credit_limit = 3000 WHERE cust_id = 1",
    "UPDATE {t} SET email = 'Bob@EXAMPLE.com' WHERE cust_id = 2",
    "UPDATE {t} SET full_name = 'Bob  Smith' WHERE cust_id = 2",  # the same name, clean
    "UPDATE {t} SET geloescht = 'J' WHERE cust_id = 5",
    "UPDATE {t} SET geloescht = 'N' WHERE cust_id = 3",
    "UPDATE {t} SET tier_cd = 'X' WHERE cust_id = 1",
    "DELETE FROM {t} WHERE cust_id = 2",
)
RAW_RECORDS = len(SEED) + len(CHANGES) + 1  # the delete's tombstone

USD = "USD"
ANA = {
    "customer_id": 1,
    "customer_no": "C-0001",
    "name": "Ana Müller",
    "email": "ana.mueller@example.com",
    "tier": "gold",
    "birth_date": "1980-02-29",
    "signed_up_at": "2021-03-14T07:30:00Z",
    "credit_limit": {"amount": "2500.00", "currency": USD},
}
BOB = {  # no e-mail address (''), birth date or credit limit: left out
    "customer_id": 2,
    "customer_no": "C-0002",
    "name": "Bob Smith",
    "tier": "silver",
    "signed_up_at": "2020-11-01T05:30:00Z",
}
CECILE = {
    "customer_id": 3,
    "customer_no": "C-0003",
    "name": "Cécile Dupont",
    "email": "cecile@example.fr",
    "tier": "bronze",
    "birth_date": "1975-12-31",
    "signed_up_at": "2019-01-15T14:00:00Z",
    "credit_limit": {"amount": "0.00", "currency": USD},
}
JOSE = {  # 'not an email' is no address: unknown, left out
    "customer_id": 5,
    "customer_no": "C-0005",
    "name": "José García",
    "tier": "gold",
    "birth_date": "1990-07-04",
    "signed_up_at": "2024-07-04T16:00:00Z",
    "credit_limit": {"amount": "100.50", "currency": USD},
}
SNAPSHOT_EVENTS = [
    ("1", "CustomerRegistered", {"customer": ANA}),
    ("2", "CustomerRegistered", {"customer": BOB}),
]
CHANGE_EVENTS = [
    ("5", "CustomerRegistered", {"customer": JOSE}),
    ("1", "CustomerTierChanged", {"old_tier": "gold", "new_tier": "silver"}),
    (
        "1",
        "CustomerCreditLimitChanged",
        {
            "old_credit_limit": {"amount": "2500.00", "currency": USD},
            "new_credit_limit": {"amount": "3000.00", "currency": USD},
        },
    ),
    ("2", "CustomerEmailChanged", {"old_email": None, "new_email": "bob@example.com"}),
    ("5", "CustomerClosed", {"reason": "soft_deleted"}),
    ("3", "CustomerReactivated", {"customer": CECILE}),
    ("2", "CustomerClosed", {"reason": "deleted"}),
]


@dataclass
class Crm:
    flavour: str
    url: str
    table: str  # as the SQL above names it
    qualified: str  # as provenance names it: schema.table (PostgreSQL), database.table
    raw: str
    pipeline: Path
    history: str
    latest: str
    dead_letter: str


@pytest.fixture(params=["postgres", "mariadb"])
def crm(
    stack: Settings,
    tmp_path: Path,
    unique_name: Callable[[str], str],
    request: pytest.FixtureRequest,
) -> Iterator[Crm]:
    """The customers table seeded in a database of its own, captured into topics of its own."""
    from sqlalchemy import text

    from seam.connectors.client import ConnectClient
    from seam.connectors.engine import connect, create_database, drop_database, with_database
    from seam.connectors.plan import apply_plan, make_plan
    from seam.connectors.readiness import prepare
    from seam.connectors.render import render
    from seam.connectors.spec import parse_specs
    from seam.streams.kafka import Kafka
    from seam.transforms.declared.derive import derive
    from seam.transforms.pipeline_file import load_pipeline
    from seam.transforms.topics import delete_group

    flavour = request.param
    name = unique_name("seam_crm")
    suffix = name.rsplit("_", 1)[1]
    user, prefix, connector = f"seam_crm_{suffix}", f"crm{suffix}", f"seam-crm-{suffix}"
    admin_url = stack.database_url(flavour)
    url = with_database(admin_url, name)
    table = "crm.customers" if flavour == "postgres" else "customers"
    raw = f"{prefix}.crm.customers" if flavour == "postgres" else f"{prefix}.{name}.customers"
    outputs = [f"{prefix}.customer-events", f"{prefix}.customers-latest", f"{prefix}.dead-letter"]
    group = f"seam-crm-{suffix}"
    client = ConnectClient.from_settings(stack)
    create_database(url)
    try:
        with connect(url, isolation_level="AUTOCOMMIT") as conn:
            for statement in DDL[flavour]:
                conn.execute(text(statement))
        with connect(url) as conn:
            marks = ", ".join(f":{c.strip()}" for c in COLUMNS.split(","))
            conn.execute(
                text(f"INSERT INTO {table} ({COLUMNS}) VALUES ({marks})"),
                [
                    dict(zip([c.strip() for c in COLUMNS.split(",")], row, strict=True))
                    for row in SEED
                ],
            )
            conn.commit()
        password_file = tmp_path / "cdc.properties"
        password_file.write_text(f"password={secrets.token_hex(12)}\n")
        tmp_path.chmod(0o755)  # the Connect worker reads the password file
        password_file.chmod(0o644)
        spec_text = (
            f"name: {connector}\nflavour: {flavour}\ndatabase: {url}\nuser: {user}\n"
            f"password: {{file: {password_file}}}\ntables: [{table}]\n"
            f"topic_prefix: {prefix}\nsnapshot_mode: initial\n"
            "topics: {partitions: 1, replication_factor: -1, cleanup_policy: delete}\n"
        )
        if flavour == "postgres":
            # Updates must carry the old row: events are differences.
            spec_text += (
                f"replica_identity_full: [{table}]\npublication: seam_crm\n"
                "overrides:\n  publication.autocreate.mode: disabled\n"
            )
        (spec,) = parse_specs(spec_text, f"{connector}.yaml")
        rendered = render(spec, stack)
        prepared = prepare.apply(rendered, stack)
        assert prepared.report.ok, prepared.report.summary()
        apply_plan(
            make_plan([rendered], client.list_connectors()),
            client,
            stack,
            wait=True,
            wait_timeout=120,
        )
        pipeline = tmp_path / "customers.yaml"
        pipeline.write_text(
            PIPELINE.format(group=group, raw=raw, history=outputs[0], latest=outputs[1],
                            dead_letter=outputs[2])
        )  # fmt: skip
        # The schemas validate checks against, derived from the declaration (as
        # `seam transform schemas PIPELINE --write schemas` writes them).
        declaration = load_pipeline(pipeline).declaration
        assert declaration is not None
        for schema_name, schema in derive(declaration).items():
            path = tmp_path / "schemas" / schema_name / "v1.json"
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps(schema, indent=2) + "\n")
        qualified = table if flavour == "postgres" else f"{name}.customers"
        yield Crm(flavour, url, table, qualified, raw, pipeline, *outputs)
    finally:
        with contextlib.suppress(Exception):
            client.delete(connector)
        # Deleting is asynchronous: a task still running would re-create deleted topics.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and connector in client.list_connectors(expand=False):
            time.sleep(0.5)
        time.sleep(2)
        if flavour == "postgres":
            drop_slots(url, name)
        drop_database(url)
        with connect(admin_url, isolation_level="AUTOCOMMIT") as conn:
            if flavour == "postgres":
                conn.execute(text(f"DROP ROLE IF EXISTS {user}"))
            else:
                conn.execute(text(f"DROP USER IF EXISTS '{user}'@'%'"))
        delete_topics(stack, [*outputs, f"_seam.schema-history.{connector}"], prefix)
        with contextlib.suppress(Exception), Kafka(stack.kafka_bootstrap_servers) as kafka:
            delete_group(kafka, group)


def run_until_caught_up(pipeline: Path) -> dict[str, Any]:
    """`seam transform run --until-caught-up` as an operator runs it: its JSON summary."""
    worker = start_transform_worker(pipeline, "w1", "--until-caught-up", "--output", "json")
    try:
        out, err = worker.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        worker.kill()
        out, err = worker.communicate()
        raise AssertionError(f"the worker did not catch up: {err.decode()[-3000:]}") from None
    assert worker.returncode == 0, err.decode()[-3000:]
    summary: dict[str, Any] = json.loads(out)
    return summary


def balance(summary: dict[str, Any]) -> int:
    return int(
        summary["records_with_events"]
        + summary["dead_lettered"]
        + sum(summary["no_event"].values())
        + summary["redelivered"]
    )


def test_a_table_of_its_own_is_migrated_by_its_declaration_alone(stack: Settings, crm: Crm) -> None:
    from sqlalchemy import text

    from seam.connectors.engine import connect
    from seam.transforms.readback import compacted, read_to_end

    bootstrap = stack.kafka_bootstrap_servers

    def raw_records() -> int:
        try:
            return len(read_to_end(bootstrap, crm.raw))
        except Exception:  # the topic is not there yet
            return 0

    # The snapshot: two customers registered; one soft-deleted (no event, counted); one
    # with a tier code the rules do not know (dead letter).
    wait_for(lambda: raw_records() >= len(SEED), 90, "the snapshot")
    first = run_until_caught_up(crm.pipeline)
    assert first["records_in"] == len(SEED)
    assert first["records_with_events"] == 2
    assert first["dead_lettered"] == 1
    assert first["no_event"] == {"created customer is gone (soft_deleted)": 1}
    assert first["balanced"] is True
    assert balance(first) == first["records_in"]

    for statement in CHANGES:
        with connect(crm.url) as conn:
            conn.execute(text(statement.format(t=crm.table, columns=COLUMNS)))
            conn.commit()
    wait_for(lambda: raw_records() >= RAW_RECORDS, 60, f"{RAW_RECORDS} raw change records")
    second = run_until_caught_up(crm.pipeline)
    assert second["records_in"] == len(CHANGES) + 1
    assert second["records_with_events"] == 6
    assert second["dead_lettered"] == 1
    assert second["no_event"] == {"no-op update": 1, "tombstone": 1}
    assert second["balanced"] is True
    assert balance(second) == second["records_in"]

    # History: every event, keyed by the customer, in source order per customer.
    records = read_to_end(bootstrap, crm.history)
    events = [r.json() for r in records]
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids)), "duplicate event ids"
    for record, event in zip(records, events, strict=True):
        assert record.key == str(event["customer_id"]).encode()
        assert event["entity"] == "customer"
        assert event["schema_version"] == 1
        assert event["provenance"]["table"] == crm.qualified
    got = [(str(e["customer_id"]), e["event_type"], e["data"]) for e in events]
    want = SNAPSHOT_EVENTS + CHANGE_EVENTS

    def by_customer(items: list[Any]) -> dict[str, list[Any]]:
        found: dict[str, list[Any]] = {}
        for item in items:
            found.setdefault(item[0], []).append(item)
        return found

    assert by_customer(got) == by_customer(want)  # partitions interleave customers
    assert Counter(e[1] for e in got) == Counter(e[1] for e in want)

    # Latest: the live customers, clean. Bob was deleted, José soft-deleted, Dana never
    # passed the rules; Ana keeps silver and 3000 (her 'X' tier was refused).
    latest = compacted(read_to_end(bootstrap, crm.latest))
    ana = {**ANA, "tier": "silver", "credit_limit": {"amount": "3000.00", "currency": USD}}
    assert {k.decode(): v for k, v in latest.items()} == {"1": ana, "3": CECILE}

    # Dead letters: the records as they came, the reason naming column, value and rule.
    dead = read_to_end(bootstrap, crm.dead_letter)
    reasons = sorted((d.headers["seam.reason"] or b"").decode() for d in dead)
    assert [(d.headers["seam.stage"]) for d in dead] == [b"clean", b"clean"]
    assert reasons == [
        "customers: tier_cd: codes: unknown code 'X' (expected one of G, S, B)",
        "customers: tier_cd: codes: unknown code 'Z' (expected one of G, S, B)",
    ]
    assert sorted(json.loads(d.value or b"{}")["after"]["cust_id"] for d in dead) == [1, 4]

"""What the catalog pipeline's outputs must hold, worked out from the legacy database and the
workload's own report (independent of the stages' code), and the capture and clean-up of a
catalog made for one test. Shared by the end-to-end test (tests/integration) and the fault
tier (tests/faults).
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from seam.kafka_config import client_config
from seam.settings import Settings


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, step: float = 1.0) -> float:
    """Wait until `predicate()` holds, at most `timeout` seconds; returns the seconds it took."""
    start = time.monotonic()
    deadline = start + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic() - start
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def drop_slots(url: str, dbname: str) -> None:
    from seam.connectors.database import drop_slot, list_slots

    for slot in list_slots(url):
        if slot.database == dbname:
            drop_slot(url, slot.name, wait_s=30)


def delete_topics(stack: Settings, names: list[str], prefix: str | None = None) -> None:
    """The named topics and every other one a connector made under `prefix`."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(client_config(stack.kafka_bootstrap_servers))
    existing = set(admin.list_topics(timeout=10).topics)
    doomed = [
        n
        for n in existing
        if n in names
        or (prefix and (n.startswith(f"{prefix}.") or n == f"__debezium-heartbeat.{prefix}"))
    ]
    if doomed:
        for future in admin.delete_topics(doomed).values():
            with contextlib.suppress(Exception):
                future.result(timeout=30)


def capture(
    stack: Settings,
    flavour: str,
    url: str,
    *,
    user: str,
    connector: str,
    prefix: str,
    tables: Sequence[str],
    secret_dir: Path,
    publication: str,
    extra: str = "",
    topics: str = "{partitions: 1, replication_factor: -1}",
) -> None:
    """A Debezium connector capturing `tables` of the catalog at `url` as `user` (a new
    password in a file under `secret_dir`), prepared and applied as an operator does it:
    RUNNING when this returns. `extra`: more spec lines; `topics`: the topics' settings."""
    from seam.connectors.client import ConnectClient
    from seam.connectors.plan import apply_plan, make_plan
    from seam.connectors.readiness import prepare
    from seam.connectors.render import render
    from seam.connectors.spec import parse_specs

    secret_dir.chmod(0o755)  # Connect, another user, reads the password file
    password_file = secret_dir / "cdc.properties"
    password_file.write_text(f"password={secrets.token_hex(12)}\n")
    password_file.chmod(0o644)
    spec_text = (
        f"name: {connector}\nflavour: {flavour}\ndatabase: {url}\nuser: {user}\n"
        f"password: {{file: {password_file}}}\ntables: [{', '.join(tables)}]\n"
        f"topic_prefix: {prefix}\nsnapshot_mode: initial\n{extra}topics: {topics}\n"
    )
    if flavour == "postgres":
        spec_text += (
            f"replica_identity_full: [products]\npublication: {publication}\n"
            "overrides:\n  publication.autocreate.mode: disabled\n"
        )
    (spec,) = parse_specs(spec_text, f"{connector}.yaml")
    rendered = render(spec, stack)
    prepared = prepare.apply(rendered, stack)
    assert prepared.report.ok, prepared.report.summary()
    client = ConnectClient.from_settings(stack)
    apply_plan(
        make_plan([rendered], client.list_connectors()), client, stack, wait=True, wait_timeout=120
    )


def release(
    stack: Settings,
    flavour: str,
    url: str,
    *,
    user: str,
    connector: str,
    prefix: str,
    topics: Sequence[str] = (),
    settle_s: float = 3.0,
) -> None:
    """Undo `capture` and the catalog's database: the connector (gone before its slot is
    dropped), the slot, the database, the user, and the topics (`topics` and every one
    under `prefix`, with the connector's schema history)."""
    from sqlalchemy import text

    from seam.connectors.client import ConnectClient
    from seam.connectors.engine import connect, drop_database, parse_url

    client = ConnectClient.from_settings(stack)
    with contextlib.suppress(Exception):
        client.delete(connector)
    # Deleting is asynchronous: a task still running would re-create deleted topics.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and connector in client.list_connectors(expand=False):
        time.sleep(0.5)
    time.sleep(settle_s)
    if flavour == "postgres":
        drop_slots(url, str(parse_url(url).database))
    drop_database(url)
    with connect(stack.database_url(flavour), isolation_level="AUTOCOMMIT") as conn:
        if flavour == "postgres":
            conn.execute(text(f"DROP ROLE IF EXISTS {user}"))
        else:
            conn.execute(text(f"DROP USER IF EXISTS '{user}'@'%'"))
    delete_topics(stack, [*topics, f"_seam.schema-history.{connector}"], prefix)


def legacy_products(url: str) -> dict[int, dict[str, Any]]:
    """The legacy products table, read straight from the database, by id."""
    from sqlalchemy import select

    from seam.connectors.engine import connect
    from seam.legacy_db.models import products

    with connect(url) as conn:
        return {r["prod_id"]: dict(r) for r in conn.execute(select(products)).mappings()}


def legacy_names(url: str, table: str, key: str, name: str) -> dict[int, str]:
    from sqlalchemy import text

    from seam.connectors.engine import connect
    from seam.legacy_db.rules import clean_name

    with connect(url) as conn:
        return {
            r[0]: clean_name(r[1]) for r in conn.execute(text(f"SELECT {key}, {name} FROM {table}"))
        }


def _listed(row: dict[str, Any] | None) -> bool:
    return (
        row is not None
        and (row["is_deleted"] or "N").strip().upper() != "Y"
        and row["status_cd"].strip().upper() != "X"
    )


def expected_events(
    initial: dict[int, dict[str, Any]], operations: list[Any]
) -> Counter[tuple[int, str]]:
    """(product id, event type) the snapshot and the workload imply, from the legacy rows
    and the workload's own report (`Operation`s, or anything with their `op`, `key` and
    `changes`)."""
    from seam.legacy_db.rules import clean_name

    want: Counter[tuple[int, str]] = Counter(
        (pid, "ProductListed") for pid, row in initial.items() if _listed(row)
    )
    model = {pid: dict(row) for pid, row in initial.items()}
    kinds = {
        "price_change": "ProductPriceChanged",
        "recategorize": "ProductRecategorized",
        "soft_delete": "ProductDelisted",
        "hard_delete": "ProductDelisted",
    }
    for op in operations:
        pid = op.key["prod_id"]
        before = model.get(pid)
        if op.op == "insert":
            model[pid] = {c: ch["new"] for c, ch in op.changes.items()}
            if _listed(model[pid]):
                want[(pid, "ProductListed")] += 1
            continue
        assert before is not None
        was = _listed(before)
        if op.op == "hard_delete":
            del model[pid]
        else:
            model[pid] = {**before, **{c: ch["new"] for c, ch in op.changes.items()}}
        now = op.op != "hard_delete" and _listed(model[pid])
        if not was:
            if now:  # e.g. a delisted (status X) product discontinued: listed again
                want[(pid, "ProductRelisted")] += 1
            continue
        if not now and op.op != "hard_delete":
            want[(pid, "ProductDelisted")] += 1
        elif op.op in kinds:
            want[(pid, kinds[op.op])] += 1
        elif op.op == "rename":
            if clean_name(before["prod_name"]) != clean_name(model[pid]["prod_name"]):
                want[(pid, "ProductRenamed")] += 1
        elif op.op == "discontinue" and before["status_cd"].strip().upper() == "A":
            want[(pid, "ProductDiscontinued")] += 1
    return want


def expected_latest(
    rows: Any, categories: dict[int, str], suppliers: dict[int, str]
) -> dict[str, dict[str, Any]]:
    """The legacy products table read straight from the database (not through Debezium),
    cleaned by the same rules: what the latest topic must hold, listed products only."""
    from seam.legacy_db.stages.clean import clean_row
    from seam.legacy_db.stages.map import is_listed, product_state

    out = {}
    for row in rows:
        clean, _ = clean_row("products", row, "us", strict=True)
        if not is_listed(clean):
            continue
        clean["category_name"] = categories.get(clean["category_id"])
        clean["supplier_name"] = suppliers.get(clean["supplier_id"])
        out[str(clean["product_id"])] = product_state(clean)
    return out


def legacy_latest(url: str) -> dict[str, dict[str, Any]]:
    """`expected_latest` of the legacy tables as they are now."""
    return expected_latest(
        legacy_products(url).values(),
        legacy_names(url, "categories", "cat_id", "cat_name"),
        legacy_names(url, "suppliers", "supp_id", "supp_name"),
    )

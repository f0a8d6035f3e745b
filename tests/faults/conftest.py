"""Fixtures of the fault tier.

The tier kills the stack's processes, so it runs only on a private stack: the session's own
(tests/conftest.py starts it in /var/tmp on free ports and deletes it at the end), never on
one reused with SEAM_TEST_STACK=reuse, which others may share. Its tests run after every
other test of the session, and each leaves every part of the stack running.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from seam.kafka_config import client_config
from seam.legacy_db.files import folder
from seam.settings import Settings
from tests.catalog_checks import delete_topics, drop_slots, legacy_products, wait_for
from tests.faults.kit import Catalog, Pipeline, StackFaults, seam

PRODUCTS = 300


@pytest.fixture(scope="session")
def private_stack(request: pytest.FixtureRequest) -> Settings:
    if os.environ.get("SEAM_TEST_STACK") == "reuse":
        pytest.skip(
            "the fault tier kills and restarts the stack's processes: it runs only on a "
            "private stack (unset SEAM_TEST_STACK)"
        )
    settings: Settings = request.getfixturevalue("stack")
    return settings


@pytest.fixture
def faults(private_stack: Settings) -> Iterator[StackFaults]:
    """kill -9 / restart of the private stack's parts; every part runs again afterwards."""
    kit = StackFaults(private_stack)
    yield kit
    kit.restore()


@pytest.fixture(scope="session")
def catalog(private_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    """A catalog seeded into a database of its own with `seam legacy seed`, prepared with
    `seam connectors prepare` and captured through `seam connectors apply`, both on
    legacy_db/connectors/catalog-postgres.yaml (its name, database, user and topic prefix made
    unique)."""
    from confluent_kafka.admin import AdminClient, NewTopic
    from sqlalchemy import text

    from seam.connectors.client import ConnectClient
    from seam.connectors.engine import connect, create_database, drop_database, with_database
    from seam.transforms.readback import read_to_end

    stack = private_stack
    suffix = uuid.uuid4().hex[:8]
    dbname = user = f"seam_fault_{suffix}"
    prefix = f"fault{suffix}"
    connector = f"seam-fault-{suffix}"
    admin_url = stack.database_url("postgres")
    url = with_database(admin_url, dbname)
    client = ConnectClient.from_settings(stack)
    create_database(url)
    try:
        seam("legacy", "seed", "--database", url, "--products", str(PRODUCTS), "--seed", "7")
        # Three partitions for the products topic (the connector would make one): the
        # worker's transactions then span partitions, and its marks are per partition.
        admin = AdminClient(client_config(stack.kafka_bootstrap_servers))
        topic = NewTopic(f"{prefix}.public.products", num_partitions=3, replication_factor=1)
        for future in admin.create_topics([topic]).values():
            future.result(timeout=30)
        del admin  # a live client would log every failed reconnect while the broker is down
        spec = yaml.safe_load((folder("connectors") / "catalog-postgres.yaml").read_text())
        spec.update(name=connector, database=url, user=user, topic_prefix=prefix)
        spec_path = tmp_path_factory.mktemp("connector") / f"{connector}.yaml"
        spec_path.write_text(yaml.safe_dump(spec))
        seam("connectors", "prepare", "--yes", str(spec_path))
        seam("connectors", "apply", "--wait", "--timeout", "120", str(spec_path))
        initial = legacy_products(url)
        wait_for(
            lambda: len(read_to_end(stack.kafka_bootstrap_servers, topic.topic)) >= len(initial),
            90,
            "the snapshot",
        )
        yield Catalog(stack, url, dbname, connector, prefix, initial)
    finally:
        StackFaults(stack).restore()
        with contextlib.suppress(Exception):
            client.delete(connector)
        # Deleting is asynchronous: a task still running would re-create deleted topics.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and connector in client.list_connectors(expand=False):
            time.sleep(0.5)
        time.sleep(3)
        drop_slots(url, dbname)
        drop_database(url)
        with connect(admin_url, isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"DROP ROLE IF EXISTS {user}"))
        delete_topics(stack, [], prefix)


@pytest.fixture
def pipelines(catalog: Catalog, tmp_path: Path) -> Iterator[Callable[..., Pipeline]]:
    """Factory of pipelines on the catalog's topics; their outputs (and their replays'),
    groups and extra input topics are deleted after the test."""
    made: list[Pipeline] = []

    def make(label: str, *, inputs: list[str] | None = None) -> Pipeline:
        pipeline = catalog.pipeline(tmp_path, label, inputs=inputs)
        made.append(pipeline)
        return pipeline

    yield make
    catalog.settle()
    catalog.remove(made)

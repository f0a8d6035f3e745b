"""What `connectors status` reads from a MariaDB database behind a live connector: a
streaming connector holds a binlog dump thread; a stopped one none, with no slot to name."""

from __future__ import annotations

import contextlib
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from seam.connectors.client import ConnectClient
from seam.connectors.database import user_activity
from seam.connectors.errors import ConnectNotFoundError
from seam.connectors.operate import statuses, stop_and_wait
from seam.connectors.plan import apply_plan, make_plan
from seam.connectors.render import RenderedConnector, render
from seam.connectors.spec import parse_specs
from seam.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def mariadb_connector(
    stack: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RenderedConnector]:
    """A connector on a private MariaDB database with a CDC user of its own; all removed after."""
    from sqlalchemy import text

    from seam.connectors.engine import connect, create_database, drop_database, with_database

    suffix = uuid.uuid4().hex[:8]
    name, user, password = f"seam_mh_{suffix}", f"seam_mh_{suffix}", secrets.token_hex(12)
    url = with_database(stack.database_url("mariadb"), name)
    create_database(url)
    secret_dir = tmp_path_factory.mktemp("secrets")
    secret_dir.chmod(0o755)
    password_file = secret_dir / "cdc.properties"
    password_file.write_text(f"password={password}\n")
    password_file.chmod(0o644)
    with connect(url) as conn:
        for statement in (
            "CREATE TABLE products (id INT PRIMARY KEY, name TEXT)",
            "INSERT INTO products VALUES (1, 'one')",
            f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'",
            f"GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, BINLOG MONITOR, "
            f"LOCK TABLES ON *.* TO '{user}'@'%'",
        ):
            conn.execute(text(statement))
        conn.commit()
    connector = f"seam-mh-{suffix}"
    (spec,) = parse_specs(
        f"name: {connector}\nflavour: mariadb\ndatabase: {url}\nuser: {user}\n"
        f"password: {{file: {password_file}}}\ntables: [products]\ntopic_prefix: mh{suffix}\n"
        "signal_table: null\n",
        f"{connector}.yaml",
    )
    client = ConnectClient.from_settings(stack)
    try:
        yield render(spec, stack)
    finally:
        with contextlib.suppress(ConnectNotFoundError):
            client.delete(connector)
        drop_database(url)
        with connect(stack.database_url("mariadb")) as conn:
            conn.execute(text(f"DROP USER IF EXISTS '{user}'@'%'"))
            conn.commit()


def test_streaming_mariadb_connector_is_not_called_retrying(
    stack: Settings, mariadb_connector: RenderedConnector, tmp_path: Path
) -> None:
    client = ConnectClient.from_settings(stack)
    item = mariadb_connector
    apply_plan(make_plan([item], client.list_connectors()), client, stack, wait=True)
    deadline = time.monotonic() + 60
    while True:
        (status,) = statuses(client, [item.name], settings=stack)
        assert status.health is not None
        if not status.health.notes:  # connected and reading the binlog
            break
        assert time.monotonic() < deadline, status.health.notes
        time.sleep(1)
    assert not status.health.retrying
    assert status.health.slot is None  # no slots on MariaDB
    activity = user_activity(
        stack.database_url("mariadb"), item.spec.user, postgres=False, dbname=""
    )
    assert activity.binlog_readers == 1

    stop_and_wait(client, item.name)
    (stopped,) = statuses(client, [item.name], settings=stack)
    assert stopped.state == "STOPPED"
    assert stopped.health is not None
    assert not stopped.health.retrying

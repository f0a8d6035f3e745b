"""The legacy databases of the local stack: a private PostgreSQL cluster and a MariaDB server,
both configured for CDC from their first start."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seam.errors import StackError
from seam.settings import LOCAL_DATABASE, LOCAL_PASSWORD, StackSettings
from seam.stack import process
from seam.stack.part import Part, StackPaths, port_open, service_user

if TYPE_CHECKING:
    import psycopg


def _own(path: Path, user: str | None) -> None:
    """Hand `path` to the account the database runs as (a no-op unless we are root)."""
    if user:
        account = pwd.getpwnam(user)
        os.chown(path, account.pw_uid, account.pw_gid)


def _run_as(args: list[str], user: str | None, what: str) -> None:
    account = pwd.getpwnam(user) if user else None
    result = subprocess.run(
        args,
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
        user=account.pw_uid if account else None,
        group=account.pw_gid if account else None,
        extra_groups=[] if account else None,
    )
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise StackError(f"{what} failed: {' '.join(detail)}")


class _Database(Part):
    # The server settings the stack runs with; `overrides` replaces or adds to them (tests use
    # it to start a server that is deliberately not ready for CDC).
    server_settings: Mapping[str, str]

    def __init__(
        self,
        settings: StackSettings,
        paths: StackPaths,
        bin_path: Path,
        overrides: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(settings, paths)
        self.bin_path = bin_path
        self.user = service_user()
        self.server_settings = {**type(self).server_settings, **(overrides or {})}

    def _fresh_dir(self, path: Path, mode: int = 0o700) -> None:
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True, mode=mode)
        path.chmod(mode)
        _own(path, self.user)

    def _socket_dir(self) -> Path:
        run = self.paths.run(self.name)
        if not run.is_dir():
            self._fresh_dir(run, 0o755)
        return run


class Postgres(_Database):
    name = "postgres"
    server_settings: Mapping[str, str] = {
        "wal_level": "logical",
        "max_replication_slots": "20",
        "max_wal_senders": "20",
        "max_connections": "200",
        "shared_buffers": "128MB",
        "max_wal_size": "2GB",
    }

    def ports(self) -> dict[str, int]:
        return {"postgres_port": self.settings.postgres_port}

    def endpoint(self) -> str:
        return f"postgresql://postgres:******@{self.settings.host}:{self.settings.postgres_port}/{LOCAL_DATABASE}"

    def initialise(self) -> None:
        data = self.paths.data(self.name)
        if (data / "PG_VERSION").exists():
            return
        scratch = data.with_name(data.name + ".init")
        self._fresh_dir(scratch)
        pwfile = scratch.parent / "postgres.pw"
        pwfile.write_text(LOCAL_PASSWORD)
        pwfile.chmod(0o600)
        _own(pwfile, self.user)
        try:
            _run_as(
                [
                    str(self.bin_path / "initdb"),
                    f"--pgdata={scratch}",
                    "--username=postgres",
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ],
                self.user,
                "initdb of the local PostgreSQL cluster",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        shutil.rmtree(data, ignore_errors=True)
        scratch.rename(data)

    def start(self) -> process.Recorded:
        data = self.paths.data(self.name)
        # Our record says postgres is not running, so a lock file left by a killed run is stale.
        (data / "postmaster.pid").unlink(missing_ok=True)
        server = {
            "port": str(self.settings.postgres_port),
            "listen_addresses": self.settings.host,
            "unix_socket_directories": str(self._socket_dir()),
            **self.server_settings,
        }
        args = [str(self.bin_path / "postgres"), "-D", str(data)]
        for key, value in server.items():
            args += ["-c", f"{key}={value}"]
        return process.spawn(
            args, pidfile=self.pidfile, logfile=self.logfile, user=self.user, cwd=Path("/")
        )

    def _connect(self, dbname: str) -> psycopg.Connection[Any]:
        import psycopg

        return psycopg.connect(
            host=self.settings.host,
            port=self.settings.postgres_port,
            user="postgres",
            password=LOCAL_PASSWORD,
            dbname=dbname,
            connect_timeout=2,
            autocommit=True,
        )

    def ready(self) -> bool:
        if not port_open(self.settings.host, self.settings.postgres_port):
            return False
        try:
            with self._connect("postgres"):
                return True
        except Exception:  # any driver error means "not yet"
            return False

    def after_ready(self) -> None:
        with self._connect("postgres") as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (LOCAL_DATABASE,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{LOCAL_DATABASE}"')


class MariaDb(_Database):
    name = "mariadb"

    server_settings: Mapping[str, str] = {
        "skip-name-resolve": "ON",
        "character-set-server": "utf8mb4",
        "collation-server": "utf8mb4_unicode_ci",
        # What Debezium needs from the binlog: row events with full before and after images.
        "binlog-format": "ROW",
        "binlog-row-image": "FULL",
        "server-id": "1",
        "gtid-strict-mode": "ON",
        "log-slave-updates": "ON",
        "binlog-expire-logs-seconds": "604800",
        "innodb-buffer-pool-size": "128M",
        "innodb-flush-log-at-trx-commit": "2",
        "local-infile": "ON",
        "max-connections": "200",
    }

    def __init__(
        self,
        settings: StackSettings,
        paths: StackPaths,
        mariadbd: Path,
        install_db: Path,
        overrides: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(settings, paths, mariadbd, overrides)
        self.install_db = install_db

    def ports(self) -> dict[str, int]:
        return {"mariadb_port": self.settings.mariadb_port}

    def endpoint(self) -> str:
        return f"mysql://root:******@{self.settings.host}:{self.settings.mariadb_port}/{LOCAL_DATABASE}"

    @property
    def _socket(self) -> Path:
        return self._socket_dir() / "mariadb.sock"

    def initialise(self) -> None:
        data = self.paths.data(self.name)
        if (data / "mysql").is_dir():
            return
        scratch = data.with_name(data.name + ".init")
        self._fresh_dir(scratch)
        args = [
            str(self.install_db),
            "--no-defaults",
            f"--datadir={scratch}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
        ]
        if self.user:
            args.append(f"--user={self.user}")
        _run_as(args, None, "mariadb-install-db for the local MariaDB")
        shutil.rmtree(data, ignore_errors=True)
        scratch.rename(data)

    def start(self) -> process.Recorded:
        data = self.paths.data(self.name)
        server = {
            "datadir": str(data),
            "port": str(self.settings.mariadb_port),
            "bind-address": self.settings.host,
            "socket": str(self._socket),
            "pid-file": str(self._socket_dir() / "mariadb.pid"),
            "log-bin": str(data / "binlog"),
            **self.server_settings,
        }
        args = [str(self.bin_path), "--no-defaults", *(f"--{k}={v}" for k, v in server.items())]
        return process.spawn(
            args, pidfile=self.pidfile, logfile=self.logfile, user=self.user, cwd=Path("/")
        )

    def _connect(self, *, via_socket: bool = False, password: str | None = LOCAL_PASSWORD) -> Any:
        import pymysql

        if via_socket:
            return pymysql.connect(
                unix_socket=str(self._socket),
                user="root",
                password=password or "",
                connect_timeout=2,
            )
        return pymysql.connect(
            host=self.settings.host,
            port=self.settings.mariadb_port,
            user="root",
            password=password or "",
            connect_timeout=2,
        )

    def ready(self) -> bool:
        if not port_open(self.settings.host, self.settings.mariadb_port):
            return False
        import pymysql

        try:
            self._connect().close()
        except pymysql.err.OperationalError as exc:
            # Access denied means the server is up but root has no password yet (first start).
            return bool(exc.args and exc.args[0] == 1045)
        except Exception:  # any other driver error means "not yet"
            return False
        return True

    def _admin(self) -> Any:
        """A root connection over the socket, before or after root got its password."""
        import pymysql

        try:
            return self._connect(via_socket=True)
        except pymysql.err.OperationalError:
            return self._connect(via_socket=True, password=None)

    def after_ready(self) -> None:
        with self._admin() as conn, conn.cursor() as cur:
            cur.execute("SELECT host FROM mysql.user WHERE user = 'root'")
            for (host,) in cur.fetchall():
                if host in ("localhost", "127.0.0.1", "::1"):
                    cur.execute("ALTER USER 'root'@%s IDENTIFIED BY %s", (host, LOCAL_PASSWORD))
                else:  # the machine's host name: an account the stack never uses
                    cur.execute("DROP USER 'root'@%s", (host,))
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{LOCAL_DATABASE}` CHARACTER SET utf8mb4")

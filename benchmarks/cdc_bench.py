"""What the end-to-end benchmarks (latency_benchmark.py, backfill_benchmark.py) share.

Each run gets its own legacy database (a fresh `bench_<id>` database on the stack's server,
seeded with `seam legacy seed`), its own connector (the example spec under a unique name,
topic prefix and slot; its database readied with `seam connectors prepare`, then applied with
`seam connectors apply`) and its own pipeline copy (the example pipeline on the run's topics,
with its own group), so a run never meets another run's data or a user's. `Run` records
everything it creates and undoes it on exit, in reverse: worker stopped, connector deleted
(its slot dropped), topics and group deleted, database dropped. `PrivateStack` starts a
stack of the benchmark's own (its own directory and free ports) and wipes it at the end.

Every `seam` step runs as the real command in a child process, as a user runs it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from seam.kafka_config import KafkaSettings, client_config
from seam.legacy_db.files import pipeline_document
from seam.settings import Settings, StackSettings, load_settings

ROOT = Path(__file__).resolve().parents[1]
SEAM = str(Path(sys.executable).with_name("seam"))
EXAMPLE_SPECS = {
    "postgres": ROOT / "legacy_db" / "connectors" / "catalog-postgres.yaml",
    "mariadb": ROOT / "legacy_db" / "connectors" / "catalog-mariadb.yaml",
}
EXAMPLE_PIPELINES = {"postgres": "catalog", "mariadb": "catalog-mariadb"}  # legacy_db/pipelines
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def seam(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`seam ARGS...` in a child process; a failure stops the benchmark with its message."""
    result = subprocess.run(
        [SEAM, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise SystemExit(
            f"seam {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return result


def parse_overrides(pairs: Sequence[str]) -> dict[str, str]:
    """`KEY=VALUE` strings from the command line as a connector `overrides:` mapping."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--override {pair!r}: expected KEY=VALUE")
        overrides[key.strip()] = value.strip()
    return overrides


# --- CPU accounting ---------------------------------------------------------------------


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) the process has used; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def children(pid: int) -> list[int]:
    """The direct children of `pid` (a PostgreSQL server's backends, for example)."""
    try:
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
        ).stdout
    except OSError:
        return []
    return [int(p) for p in out.split()]


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, every core summed."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def jvm_gc_seconds(pid: int) -> float | None:
    """Seconds the JVM `pid` has spent in garbage collection (`jstat`), None without a JDK."""
    jstat = shutil.which("jstat")
    if jstat is None:
        return None
    try:
        out = subprocess.run(
            [jstat, "-gcutil", str(pid)], capture_output=True, text=True, timeout=20, check=False
        ).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return None
    # The header's last column is GCT (total GC seconds); the values follow the header.
    try:
        half = len(out) // 2
        return float(out[half:][out[:half].index("GCT")])
    except (ValueError, IndexError):
        return None


def stack_pids(settings: Settings) -> dict[str, int]:
    """PIDs of the local stack's parts (from `seam stack up`'s pid files) that are alive."""
    pids = {}
    for part in ("kafka", "connect", "postgres", "mariadb"):
        path = settings.stack.dir / "run" / f"{part}.pid"
        try:
            pid = int(json.loads(path.read_text())["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if Path(f"/proc/{pid}").exists():
            pids[part] = pid
    return pids


@dataclass
class CpuMeter:
    """CPU seconds used by named processes (and a server's children) between start and stop.

    Backends of a database server come and go; each is counted for as long as it is seen,
    sampled every `sample` call (call it often enough: a backend that ends between two samples
    is lost, which is why the meter also reports the whole machine).
    """

    pids: dict[str, int]
    with_children: set[str] = field(default_factory=set)
    _first: dict[tuple[str, int], float] = field(default_factory=dict)
    _last: dict[tuple[str, int], float] = field(default_factory=dict)
    _machine: tuple[float, float] = (0.0, 0.0)
    _started: float = 0.0
    wall: float = 0.0
    machine_busy: float = 0.0

    def start(self) -> None:
        self._first.clear()
        self._last.clear()
        self._machine = machine_cpu()
        self._started = time.monotonic()
        self.sample(starting=True)

    def sample(self, *, starting: bool = False) -> None:
        for name, pid in self.pids.items():
            procs = [pid, *(children(pid) if name in self.with_children else [])]
            for proc in procs:
                cpu = process_cpu(proc)
                if cpu:
                    # A process first seen after the start began within the interval.
                    first = cpu if starting or proc == pid else 0.0
                    self._first.setdefault((name, proc), first)
                    self._last[(name, proc)] = cpu

    def stop(self) -> dict[str, float]:
        """CPU seconds per name over the interval (and `machine`: all cores, all processes)."""
        self.sample()
        self.wall = time.monotonic() - self._started
        busy, _total = machine_cpu()
        self.machine_busy = busy - self._machine[0]
        used = dict.fromkeys(self.pids, 0.0)
        for (name, proc), last in self._last.items():
            used[name] += last - self._first.get((name, proc), last)
        used["machine"] = self.machine_busy
        return used


# --- statistics -------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank: a value that was measured."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summary(values_ms: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values_ms),
        "p50": percentile(values_ms, 50),
        "p95": percentile(values_ms, 95),
        "p99": percentile(values_ms, 99),
        "max": max(values_ms) if values_ms else float("nan"),
    }


def median_range(values: Sequence[float]) -> str:
    """`median (min-max)` of repeated runs, or the one value."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


# --- a private stack --------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateStack:
    """`seam stack up` in a temporary directory on free ports; `down --wipe` at the end.

    Sets SEAM_CONFIG for this process and every `seam` child, so all of the run uses it.
    """

    def __init__(self) -> None:
        # /var/tmp: the databases may run as an unprivileged user, who must reach the dir.
        self.root = Path(tempfile.mkdtemp(prefix="seam-bench-", dir="/var/tmp"))
        self.root.chmod(0o755)
        ports = {name: _free_port() for name in StackSettings().ports()}
        lines = [
            "[stack]",
            f'dir = "{self.root / "stack"}"',
            *(f"{k} = {v}" for k, v in ports.items()),
        ]
        self.config = self.root / "seam.toml"
        self.config.write_text("\n".join(lines) + "\n")
        self._previous = os.environ.get("SEAM_CONFIG")

    def __enter__(self) -> PrivateStack:
        os.environ["SEAM_CONFIG"] = str(self.config)
        started = time.perf_counter()
        print(f"private stack in {self.root} ...", flush=True)
        try:
            seam("stack", "up", timeout=900)
        except BaseException:
            self.__exit__()
            raise
        print(f"private stack up in {time.perf_counter() - started:.1f}s", flush=True)
        return self

    def __exit__(self, *exc: object) -> None:
        down = seam("stack", "down", "--wipe", "--yes", check=False, timeout=300)
        if self._previous is None:
            os.environ.pop("SEAM_CONFIG", None)
        else:
            os.environ["SEAM_CONFIG"] = self._previous
        if down.returncode != 0:  # keep the directory: its pid files say what still runs
            print(
                f"the private stack did not stop: {(down.stdout + down.stderr).strip()}\n"
                f"stop it with: SEAM_CONFIG={self.config} {SEAM} stack down --wipe --yes",
                file=sys.stderr,
            )
            return
        shutil.rmtree(self.root, ignore_errors=True)


# --- one run: database, connector, pipeline, worker -------------------------------------


def _with_path(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


@dataclass(frozen=True)
class Topics:
    """The run's topic names."""

    prefix: str  # the connector's topic prefix
    namespace: str  # public (PostgreSQL) or the database name (MySQL/MariaDB)

    def raw(self, table: str) -> str:
        return f"{self.prefix}.{self.namespace}.{table}"


class LegacyDatabase(contextlib.ExitStack):
    """A fresh catalog database (`<label>_<id>`) on the stack's server; dropped on exit."""

    def __init__(
        self, flavour: str, *, label: str = "bench", keep: bool = False, existing: str = ""
    ) -> None:
        super().__init__()
        if flavour not in EXAMPLE_SPECS:
            raise SystemExit(f"unknown database flavour {flavour!r}: postgres or mariadb")
        self.flavour = flavour
        self.settings = load_settings()
        self.label = label
        self.existing = bool(existing)  # an earlier run's database: neither made nor dropped
        self.keep = keep or self.existing
        self.dbname = existing or f"{label}_{uuid.uuid4().hex[:8]}"
        self.admin_url = self.settings.database_url(flavour)
        self.url = _with_path(self.admin_url, self.dbname)

    def __enter__(self) -> LegacyDatabase:
        super().__enter__()
        if not self.existing:
            self._admin_execute(f"CREATE DATABASE {self.dbname}")
        if not self.keep:
            self.callback(self._drop)
        return self

    def _admin_execute(self, statement: str) -> None:
        if self.flavour == "postgres":
            import psycopg

            with psycopg.connect(_with_path(self.admin_url, "postgres"), autocommit=True) as conn:
                conn.execute(statement)
        else:
            with contextlib.closing(mysql_connection(self.admin_url)) as conn:
                conn.cursor().execute(statement)

    def _drop(self) -> None:
        force = " WITH (FORCE)" if self.flavour == "postgres" else ""
        with contextlib.suppress(Exception):
            self._admin_execute(f"DROP DATABASE IF EXISTS {self.dbname}{force}")

    def seed(self, products: int) -> float:
        """`seam legacy seed`; the seconds it took."""
        out = seam(
            "legacy", "seed", "--database", self.url, "--products", str(products), "-o", "json"
        )
        return float(json.loads(out.stdout)["seconds"])

    def connect(self) -> Any:
        """A DB-API connection (autocommit off) as the legacy application's user."""
        return connect_database(self.flavour, self.url)

    def count(self, table: str) -> int:
        conn = self.connect()
        try:
            cur = conn.cursor()
            cur.execute(f"SELECT count(*) FROM {table}")
            row = cur.fetchone()
            return int(row[0]) if row else 0
        finally:
            conn.close()


def connect_database(flavour: str, url: str) -> Any:
    """A DB-API connection to `url` with autocommit off."""
    if flavour == "postgres":
        import psycopg

        return psycopg.connect(url)
    conn = mysql_connection(url)
    conn.autocommit(False)
    return conn


def mysql_connection(url: str) -> Any:
    import pymysql

    parts = urlsplit(url)
    return pymysql.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=parts.username,
        password=parts.password or "",
        database=parts.path.lstrip("/") or None,
        autocommit=True,
    )


class Run(contextlib.ExitStack):
    """One connector on `db` (a unique name, topic prefix and slot), its pipeline and
    worker; on exit the worker is stopped, the connector deleted (its slot dropped) and the
    run's topics and group deleted (unless `keep`)."""

    def __init__(self, db: LegacyDatabase, *, keep: bool = False) -> None:
        super().__init__()
        self.db = db
        self.flavour = db.flavour
        self.settings = db.settings
        self.id = uuid.uuid4().hex[:8]
        self.name = f"{db.label}-{self.id}"
        self.keep = keep
        self.dir = Path(tempfile.mkdtemp(prefix=f"seam-{self.name}-"))
        self.callback(shutil.rmtree, self.dir, ignore_errors=True)
        namespace = "public" if db.flavour == "postgres" else db.dbname
        self.topics = Topics(f"{db.label}{self.id}", namespace)

    @property
    def bootstrap(self) -> KafkaSettings:
        return self.settings.kafka

    # The connector ------------------------------------------------------------------

    def write_spec(self, overrides: dict[str, str] | None = None) -> Path:
        """The example connector spec under this run's name, database and topic prefix, its
        database made ready for it (`seam connectors prepare`, idempotent)."""
        spec = yaml.safe_load(EXAMPLE_SPECS[self.flavour].read_text())
        spec.update(name=self.name, database=self.db.url, topic_prefix=self.topics.prefix)
        spec["overrides"] = {**(spec.get("overrides") or {}), **(overrides or {})}
        path = self.dir / f"{self.name}.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        seam("connectors", "prepare", "--yes", str(path))
        return path

    def apply(self, spec: Path, *, wait: bool = True) -> None:
        """`seam connectors apply SPEC` (and `--wait`); the connector is deleted on exit."""
        self.callback(self._remove_connector)
        seam("connectors", "apply", str(spec), *(["--wait"] if wait else []), timeout=300)

    def check_connector(self) -> None:
        """Stop the benchmark with Connect's own reason if the connector or its task FAILED
        (a failed snapshot never fills its topic: waiting would only run into a timeout)."""
        from seam.connectors.client import ConnectClient
        from seam.connectors.plan import connector_failures

        try:
            status = ConnectClient.from_settings(self.settings).status(self.name)
        except Exception:  # not there yet, or Connect busy: look again later
            return
        failures = connector_failures(status)
        if failures:
            raise SystemExit(f"connector {self.name} failed: " + "; ".join(failures))

    def _remove_connector(self) -> None:
        """The connector (and its slot), then the run's topics once its task has stopped:
        a task still snapshotting would make the raw topics again."""
        from seam.connectors.client import ConnectClient

        seam("connectors", "delete", self.name, check=False, timeout=120)
        if self.keep:
            return
        client = ConnectClient.from_settings(self.settings)

        def gone() -> bool:
            try:
                return self.name not in client.list_connectors(expand=False)
            except Exception:  # Connect busy: ask again
                return False

        with contextlib.suppress(SystemExit):
            wait_for(f"Connect to drop {self.name}", gone, 60, every=0.5)
        for _ in range(3):  # a task's last records may still make a topic after its delete
            if not self.delete_topics():
                break
            time.sleep(3)

    # The pipeline and its worker ----------------------------------------------------

    def write_pipeline(self, **processing: Any) -> tuple[Path, dict[str, Any]]:
        """The example pipeline on this run's topics, with its own group."""
        example = yaml.safe_load(EXAMPLE_SPECS[self.flavour].read_text())
        old_prefix = example["topic_prefix"]
        old_namespace = (
            "public" if self.flavour == "postgres" else urlsplit(self.db.admin_url).path.lstrip("/")
        )
        # Its schema folder made absolute: the variant is written to a folder of its own.
        text = yaml.safe_dump(pipeline_document(EXAMPLE_PIPELINES[self.flavour]), sort_keys=False)
        text = text.replace(f"{old_prefix}.{old_namespace}.", self.topics.raw(""))
        text = re.sub(rf"\b{re.escape(old_prefix)}\.", f"{self.topics.prefix}.", text)
        data = yaml.safe_load(text)
        data["group"] = f"seam-transform-{self.name}"
        data.setdefault("processing", {}).update(processing)
        path = self.dir / f"{self.name}-pipeline.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path, data

    def start_worker(self, pipeline: Path, *options: str) -> subprocess.Popen[bytes]:
        """`seam transform run PIPELINE OPTIONS...`; stopped (SIGINT, then SIGKILL) on exit."""
        out = (self.dir / "worker.log").open("wb")
        self.callback(out.close)
        proc = subprocess.Popen(
            [SEAM, "transform", "run", str(pipeline), "--instance-id", self.name, *options],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.callback(stop_process, proc)
        return proc

    def worker_log(self) -> str:
        path = self.dir / "worker.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    # Kafka --------------------------------------------------------------------------

    def delete_topics(self) -> list[str]:
        """Delete the run's topics and group; the topics there were."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(client_config(self.bootstrap))
        group = f"seam-transform-{self.name}"
        names: list[str] = []
        with contextlib.suppress(Exception):
            names = [
                t
                for t in admin.list_topics(timeout=10).topics
                if t.startswith(f"{self.topics.prefix}.")
                or t
                in (
                    f"_seam.schema-history.{self.name}",
                    f"__debezium-heartbeat.{self.topics.prefix}",
                )
            ]
            if names:
                for future in admin.delete_topics(names, operation_timeout=30).values():
                    future.result(60)
        with contextlib.suppress(Exception):
            admin.delete_consumer_groups([group])[group].result(30)
        return names


def stop_process(proc: subprocess.Popen[bytes], grace: float = 30.0) -> int | None:
    """Ctrl-C for a child we started (it finishes its batch), SIGKILL if it does not exit."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(10)


def end_offsets(bootstrap: KafkaSettings | str, topic: str) -> dict[int, int]:
    """Each partition's high watermark."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(client_config(bootstrap, {"group.id": "seam-bench-probe"}))
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            return {}
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in meta.partitions
        }
    finally:
        consumer.close()


def wait_for(what: str, check: Callable[[], bool], timeout: float, every: float = 0.2) -> float:
    """Seconds until `check()` holds; stops the benchmark with `what` after `timeout`."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)
    return time.monotonic() - started


@contextlib.contextmanager
def maybe_private_stack(private: bool) -> Iterator[None]:
    if private:
        with PrivateStack():
            yield
    else:
        yield

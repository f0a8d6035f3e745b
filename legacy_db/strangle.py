"""`seam legacy strangle`: the catalog's product details moved off the legacy app, step by
step, on the local stack (issue 14, section 4), printing what each step did and the figures
it read.

It starts the transform (`seam transform run`, with its metrics), the products' memory image
(`seam serve`, on a copy of the service file naming the walkthrough's writes file, so it takes
the rename and reprice commands), the legacy app (`seam legacy app`) and the facade (`seam
facade run`, on a copy of `migration/routes.yaml` with the walkthrough's ports), later the
writer (`seam migrate writer`), and stops them all when it ends, fails or is interrupted
(Ctrl-C, SIGTERM). Then, with the toolkit's own commands:

1. legacy       the workload (`seam legacy workload --via http`) through the facade
2. shadow       the same, each product read compared with the image off the user's path
3. split 10%    a reader of product details through the facade: the traffic split
4. split 100%   every product read from the image
5. cutover      refused: there is no parity yet
6. parity       `seam migrate parity`: legacy table, latest topic and image agree
7. cutover      accepted on the evidence: mode new
8. writes moved the writer started; rename and reprice routed to the new service's commands
                (the routes file rewrites the legacy paths to the commands' paths; bodies are
                not rewritten, so a client sends the command's body)
9. writes       renames and reprices through the facade: 202 each, the legacy row changed
                once, one event each with the seam-origin header and none from the write-back,
                the transform's own_write count, the image's new values; the legacy app's own
                writes (the background workload) still make their events
10. parity      again, clean

Each step checks what it expects and stops the walkthrough with one clear error otherwise.
The legacy client (the workload) reads the legacy shape of a product, so once the image
answers some product reads (split, new) it writes to the legacy app directly, in the
background, while a reader asks the facade. A product it changes while a command's check
waits shows its change, not the command's: that product's events are checked, its row and
image not.

The steps are `READ_STEPS`, then `WRITE_STEPS`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final

import yaml

from seam.errors import SeamError
from seam.secrets import mask_url
from seam.settings import Settings

CAPABILITY: Final = "product-details"
MARKER: Final = ".seam-strangle"  # a state directory the walkthrough made (and may empty)
SIDE: Final = "catalog"  # the new side's name in routes.yaml


class StepFailedError(SeamError):
    """A step's expectation failed: the walkthrough stops (exit 1)."""


class TerminatedError(SeamError):
    """SIGTERM: stop like Ctrl-C does."""


@dataclass(frozen=True)
class Options:
    settings: Settings  # the children take theirs from the same config file and environment
    database: str  # a [databases] name or a URL
    pipeline: Path
    service: Path
    routes: Path
    state: Path
    facade_port: int = 8701
    app_port: int = 8791
    service_port: int = 8781
    metrics_port: int = 8771  # the transform's Prometheus metrics (its own_write count)
    rate: float = 25.0
    min_compared: int = 100
    reads: int = 300
    commands: int = 5  # renames, and as many reprices, sent through the facade
    stack_up: bool = True


@dataclass
class Running:
    name: str
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class Walkthrough:
    options: Options
    say: Callable[[str], None]
    running: list[Running] = field(default_factory=list)

    @property
    def facade(self) -> str:
        return f"http://127.0.0.1:{self.options.facade_port}"

    @property
    def app(self) -> str:
        return f"http://127.0.0.1:{self.options.app_port}"

    @property
    def image(self) -> str:
        return f"http://127.0.0.1:{self.options.service_port}"

    @property
    def state(self) -> Path:
        return self.options.state

    # --- the toolkit's commands -----------------------------------------------------------

    def shown(self, args: tuple[str, ...]) -> str:
        return "$ seam " + " ".join(mask_url(a) if "://" in a else a for a in args)

    def seam(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run `seam ARGS` as a user would, show the command, return what it printed."""
        self.say(self.shown(args))
        try:
            return subprocess.run(
                [sys.executable, "-m", "seam.cli.main", *args],
                capture_output=True,
                text=True,
                timeout=timeout,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        except subprocess.TimeoutExpired:
            raise StepFailedError(
                f"`seam {args[0]} {args[1]}` did not finish within {timeout:g} s"
            ) from None

    def start(self, name: str, *args: str) -> Running:
        """Start `seam ARGS` in the background, its output to logs/NAME.log."""
        self.say(self.shown(args) + " &")
        log = self.state / "logs" / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "seam.cli.main", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,  # stopped by us, in order, not by the terminal's ^C
            )
        running = Running(name, process, log)
        self.running.append(running)
        return running

    def stop(self, running: Running) -> None:
        process = running.process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if running in self.running:
            self.running.remove(running)

    def stop_all(self) -> None:
        for running in reversed(list(self.running)):  # the facade first, the transform last
            self.stop(running)

    def wait_http(self, running: Running, url: str, timeout: float) -> None:
        import requests

        deadline = time.monotonic() + timeout
        while True:
            if running.process.poll() is not None:
                raise StepFailedError(
                    f"{running.name} stopped (exit code {running.process.returncode}): "
                    f"{tail(running.log)}",
                    hint=f"its log: {running.log}",
                )
            with suppress(requests.RequestException):
                if requests.get(url, timeout=5).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise StepFailedError(
                    f"{running.name} did not answer {url} within {timeout:g} s",
                    hint=f"its log: {running.log}",
                )
            time.sleep(0.2)

    # --- the facade's figures -------------------------------------------------------------

    def status(self, capability: str = CAPABILITY) -> dict[str, Any]:
        """A capability's row of `seam migrate status --json` (read from the facade)."""
        done = self.seam_quiet(
            "migrate", "status", "--facade", self.facade, "--state", str(self.state), "--json"
        )
        rows = {r["capability"]: r for r in json.loads(done.stdout)["capabilities"]}
        row: dict[str, Any] = rows[capability]
        return row

    def seam_quiet(self, *args: str) -> subprocess.CompletedProcess[str]:
        try:
            done = subprocess.run(
                [sys.executable, "-m", "seam.cli.main", *args],
                capture_output=True,
                text=True,
                timeout=60,
            )
        except subprocess.TimeoutExpired:
            raise StepFailedError(f"`seam {' '.join(args[:2])}` did not finish in 60 s") from None
        if done.returncode != 0:
            raise StepFailedError(f"`seam {' '.join(args[:2])}` failed: {done.stderr.strip()}")
        return done

    def show_status(self, *capabilities: str) -> dict[str, Any]:
        """Print the capabilities' lines of `seam migrate status` (product-details' by
        default), return the first one's figures."""
        shown = capabilities or (CAPABILITY,)
        done = self.seam("migrate", "status", "--facade", self.facade, "--state", str(self.state))
        if done.returncode != 0:
            raise StepFailedError(f"seam migrate status failed: {done.stderr.strip()}")
        for line in done.stdout.splitlines():
            if line.startswith(tuple(f"{c}:" for c in shown)):
                self.say("  " + line)
        return self.status(shown[0])

    def route(self, mode: str, *extra: str, capability: str = CAPABILITY) -> None:
        done = self.seam(
            "migrate", "route", capability, "--mode", mode, *extra, "--state", str(self.state)
        )
        if done.returncode != 0:
            raise StepFailedError(f"seam migrate route failed: {done.stderr.strip()}")
        wanted = f"{mode} {extra[1]}%" if mode == "split" else mode
        deadline = time.monotonic() + 10
        while self.status(capability)["mode"] != wanted:  # the facade looks twice a second
            if time.monotonic() > deadline:
                raise StepFailedError(f"the facade did not take up mode {wanted} within 10 s")
            time.sleep(0.2)

    # --- traffic --------------------------------------------------------------------------

    def workload(self, url: str, count: int) -> None:
        """`seam legacy workload --via http` against `url` (the facade or the app)."""
        done = self.seam(
            "legacy",
            "workload",
            "--via",
            "http",
            "--app-url",
            url,
            "--rate",
            f"{self.options.rate:g}",
            "--count",
            str(count),
            "--seed",
            str(random.randrange(1 << 30)),  # another mix of products each run
            "-o",
            "json",
        )
        if done.returncode != 0:
            raise StepFailedError(f"the workload failed: {done.stderr.strip()}")
        counts = json.loads(done.stdout)
        self.say(f"  the workload made {counts['total']} changes through {url}")

    def read(self, count: int) -> tuple[int, int]:
        """A reader of product details through the facade: `count` random products.
        Returns how many of them the facade sent to (legacy, new)."""
        import requests

        before = self.status()["requests"]
        top = self.last_product()
        with requests.Session() as session:
            for _ in range(count):
                key = random.randint(1, top)
                try:
                    answer = session.get(f"{self.facade}/products/{key}", timeout=30)
                except requests.RequestException as exc:
                    raise StepFailedError(
                        f"the facade did not answer GET /products/{key}: {exc}",
                        hint=f"see {self.state / 'logs' / 'facade.log'}",
                    ) from None
                if answer.status_code not in (200, 404):  # 404: the image has no such product
                    raise StepFailedError(
                        f"GET /products/{key} through the facade answered "
                        f"{answer.status_code}: {answer.text[:200]}"
                    )
        after = self.status()["requests"]
        legacy = after.get("legacy", 0) - before.get("legacy", 0)
        new = after.get("new", 0) - before.get("new", 0)
        self.say(
            f"  a reader asked the facade for {count} random products: {legacy} answered by "
            f"the legacy app, {new} by the new service"
        )
        return legacy, new

    def last_product(self) -> int:
        import requests

        try:
            form = requests.get(f"{self.app}/products/new", timeout=30).json()
            return max(1, int(form["prod_id"]) - 1)
        except (requests.RequestException, ValueError, KeyError) as exc:
            raise StepFailedError(
                f"the legacy app did not say its last product number: {exc}",
                hint=f"see {self.state / 'logs' / 'app.log'}",
            ) from None


def tail(log: Path, lines: int = 5) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return " | ".join(text.strip().splitlines()[-lines:]) or "(nothing logged)"


# --- set-up ---------------------------------------------------------------------------------


def prepare_state(state: Path) -> None:
    """A fresh migration directory each run (route records, outcomes and cutovers of a
    previous run would count): one the walkthrough made is emptied; another one that holds
    anything is refused."""
    if state.exists() and any(state.iterdir()):
        if not (state / MARKER).exists():
            raise SeamError(
                f"{state} holds files the walkthrough did not make",
                hint="pass --state with an empty or new directory",
            )
        shutil.rmtree(state)
    (state / "logs").mkdir(parents=True, exist_ok=True)
    (state / MARKER).write_text("made by seam legacy strangle; emptied by its next run\n")


def service_file(options: Options) -> Path:
    """The service file with the walkthrough's pipeline, port, snapshot (in the state
    directory) and writes file (`writes_file`), and without the history index (the
    walkthrough does not use it)."""
    with options.service.open(encoding="utf-8") as f:
        service = yaml.safe_load(f)
    service["pipeline"] = str(options.pipeline.resolve())
    service["port"] = options.service_port
    service["snapshot"] = {"path": str((options.state / "image.snapshot").resolve())}
    service["writes"] = str(writes_file(options).resolve())
    service.pop("history", None)
    path = options.state / "service.yaml"
    path.write_text(yaml.safe_dump(service, sort_keys=False), encoding="utf-8")
    return path


def writes_file(options: Options) -> Path:
    """The catalog's writes file for the walkthrough's database (writes-mariadb.yaml on
    MariaDB), with the walkthrough's pipeline and database: `seam serve` takes its commands,
    `seam migrate writer` applies their events to the legacy database."""
    from seam.connectors.engine import flavour_of
    from seam.legacy_db.files import folder

    path = options.state / "writes.yaml"
    if path.exists():
        return path
    flavour = flavour_of(options.settings.database_url(options.database))
    source = folder("migration") / (
        "writes.yaml" if flavour == "postgres" else "writes-mariadb.yaml"
    )
    with source.open(encoding="utf-8") as f:
        writes = yaml.safe_load(f)
    writes["pipeline"] = str(options.pipeline.resolve())
    writes["database"] = options.database
    path.write_text(yaml.safe_dump(writes, sort_keys=False), encoding="utf-8")
    return path


def routes_file(options: Options) -> Path:
    """The routes file with the walkthrough's ports."""
    with options.routes.open(encoding="utf-8") as f:
        routes = yaml.safe_load(f)
    routes["legacy"]["url"] = f"http://127.0.0.1:{options.app_port}"
    routes["new"][SIDE] = f"http://127.0.0.1:{options.service_port}"
    path = options.state / "routes.yaml"
    path.write_text(yaml.safe_dump(routes, sort_keys=False), encoding="utf-8")
    return path


def start_everything(w: Walkthrough) -> None:
    o = w.options
    w.say("== 0. the parts: the transform, the new service, the legacy app, the facade")
    if o.stack_up:
        done = w.seam("stack", "up", timeout=600)
        if done.returncode != 0:
            raise StepFailedError(f"seam stack up failed: {done.stderr.strip()}")
        w.say("  " + (done.stdout.strip().splitlines() or ["(nothing said)"])[0])
    transform = w.start(
        "transform",
        "transform",
        "run",
        str(o.pipeline),
        "--instance-id",
        "strangle",
        "--metrics-port",  # the write steps read its own_write count
        str(o.metrics_port),
        "--progress-interval",
        "1",
    )
    wait_latest_topic(w, transform)
    service = w.start("service", "serve", str(service_file(o)), "--port", str(o.service_port))
    app = w.start("app", "legacy", "app", "--database", o.database, "--port", str(o.app_port))
    w.wait_http(app, f"{w.app}/products/new", 60)
    w.wait_http(service, f"{w.image}/ready", 180)
    if transform.process.poll() is not None:
        raise StepFailedError(f"the transform stopped: {tail(transform.log)}")
    facade = w.start(
        "facade",
        "facade",
        "run",
        str(routes_file(o)),
        "--port",
        str(o.facade_port),
        "--state",
        str(o.state),
    )
    w.wait_http(facade, f"{w.facade}/_seam/health", 60)
    w.say(
        f"  legacy app {w.app}, new service {w.image} (ready), facade {w.facade}; "
        f"logs in {o.state / 'logs'}"
    )


def wait_latest_topic(w: Walkthrough, transform: Running, timeout: float = 120) -> None:
    """The service loads the latest topic, which the transform makes on a first run."""
    from seam.streams.kafka import Kafka
    from seam.transforms.pipeline_file import load_pipeline

    topic = load_pipeline(w.options.pipeline).latest.topic
    deadline = time.monotonic() + timeout
    with Kafka(w.options.settings.kafka) as kafka:
        while topic not in kafka.topic_names():
            if transform.process.poll() is not None:
                raise StepFailedError(
                    f"the transform stopped: {tail(transform.log)}",
                    hint=f"its log: {transform.log}",
                )
            if time.monotonic() > deadline:
                raise StepFailedError(f"the transform made no topic {topic} in {timeout:g} s")
            time.sleep(0.5)


# --- the steps ------------------------------------------------------------------------------


def step_legacy(w: Walkthrough) -> None:
    w.say("== 1. legacy: every request to the legacy app, through the facade")
    w.workload(w.facade, max(20, w.options.min_compared // 2))
    row = w.show_status()
    served = row["requests"]
    if served.get("legacy", 0) == 0 or served.get("new", 0) != 0:
        raise StepFailedError(
            f"expected product reads served by legacy only, got {served}",
            hint=f"see {w.state / 'logs' / 'facade.log'}",
        )
    w.say(f"  {served['legacy']} product reads, all answered by the legacy app")


def step_shadow(w: Walkthrough) -> None:
    w.say(
        "== 2. shadow: legacy answers; the same read goes to the new service off the user's "
        "path and is compared once the image has applied what the legacy answer reflected"
    )
    w.route("shadow")
    start = w.status()
    shadowed_from = start["requests"].get("legacy", 0)
    for _ in range(4):  # until the evidence cutover asks for
        w.workload(w.facade, w.options.min_compared)
        settled = settle(w, shadowed_from)
        if settled["match"] + settled["mismatch"] >= w.options.min_compared:
            break
    row = w.show_status()
    shadow = row["shadow"]
    w.say(
        f"  {shadow['match']} reads matched, {shadow['mismatch']} mismatched, "
        f"{shadow['unsettled']} unsettled (the image could not show the legacy answer's "
        "position in time, or the product changed between the two answers: read, then "
        f"written), {shadow['error']} errors, {shadow['skipped']} skipped"
    )
    if shadow["mismatch"] or shadow["error"]:
        from seam.migration.shadow import MISMATCHES_FILE, read_mismatches

        for kept in read_mismatches(w.state / MISMATCHES_FILE, CAPABILITY, limit=5):
            w.say(f"  mismatch {kept['path']}: {json.dumps(kept['diff'], ensure_ascii=False)}")
        raise StepFailedError(
            f"shadow: expected no mismatch and no error, got {shadow['mismatch']} mismatches "
            f"and {shadow['error']} errors",
            hint="the differences are kept in shadow/mismatches.sqlite of "
            f"{w.state}; fix the new side or the compare rules of {w.options.routes}",
        )
    if shadow["match"] < w.options.min_compared:
        raise StepFailedError(
            f"shadow: only {shadow['match']} comparisons settled, {w.options.min_compared} wanted",
            hint="the image may be lagging: see the service's and the transform's logs in "
            f"{w.state / 'logs'}",
        )


def settle(w: Walkthrough, shadowed_from: int, timeout: float = 30) -> dict[str, int]:
    """Wait until every read shadowed since `shadowed_from` has an outcome."""
    deadline = time.monotonic() + timeout
    while True:
        row = w.status()
        shadow = row["shadow"]
        shadowed = row["requests"].get("legacy", 0) - shadowed_from
        done = sum(shadow.get(k, 0) for k in ("match", "mismatch", "unsettled", "error", "skipped"))
        if done >= shadowed or time.monotonic() > deadline:
            return {k: int(shadow.get(k, 0)) for k in ("match", "mismatch")}
        time.sleep(0.5)


@contextmanager
def background_writes(w: Walkthrough) -> Iterator[None]:
    """The legacy client keeps writing, to the legacy app itself (it reads the legacy shape
    of a product, which the new side does not answer)."""
    writer = w.start(
        "workload",
        "legacy",
        "workload",
        "--via",
        "http",
        "--app-url",
        w.app,
        "--rate",
        f"{max(1.0, w.options.rate / 5):g}",
        "--duration",
        "3600",
    )
    try:
        yield
    finally:
        if writer.process.poll() is None:
            writer.process.send_signal(signal.SIGINT)  # the workload's clean stop
            with suppress(subprocess.TimeoutExpired):
                writer.process.wait(20)
        w.stop(writer)


def step_split(percent: int) -> Callable[[Walkthrough], None]:
    def split(w: Walkthrough) -> None:
        w.say(
            f"== {3 if percent < 100 else 4}. split {percent}%: the products whose number "
            f"hashes under {percent}% are read from the new service (sticky: cohort path:id)"
        )
        w.route("split", "--percent", str(percent))
        legacy, new = w.read(w.options.reads if percent < 100 else w.options.reads // 3)
        w.show_status()
        share = new / (legacy + new) if legacy + new else 0.0
        low, high = (percent / 400, percent / 100 * 2.5) if percent < 100 else (1.0, 1.0)
        if not low <= share <= high:
            raise StepFailedError(
                f"split {percent}%: expected about {percent}% of the reads on the new side, "
                f"got {share:.1%} ({new} of {legacy + new})"
            )
        w.say(f"  {share:.1%} of the reads went to the new service")

    split.__name__ = f"step_split_{percent}"
    return split


def step_cutover_refused(w: Walkthrough) -> None:
    w.say("== 5. cutover, too early: no parity check has run yet")
    done = cutover(w)
    if done.returncode != 1 or "parity" not in done.stderr:
        raise StepFailedError(
            f"cutover without parity: expected a refusal naming parity, got exit code "
            f"{done.returncode}: {done.stderr.strip()}"
        )
    w.say(f"  refused, as it should be: {done.stderr.strip().splitlines()[0]}")
    if w.status()["mode"] != "split 100%":
        raise StepFailedError("a refused cutover changed the mode")


def step_parity(w: Walkthrough) -> None:
    w.say(
        "== 6. parity: the legacy table (through the pipeline's cleaning), the latest topic "
        "and the image, cut at one source position"
    )
    parity(w)


def parity(w: Walkthrough) -> None:
    done = w.seam(
        "migrate",
        "parity",
        str(w.options.pipeline),
        "--database",
        w.options.database,
        "--service",
        w.image,
        "--state",
        str(w.state),
    )
    for line in done.stdout.strip().splitlines():
        w.say("  " + line)
    if done.returncode != 0:
        raise StepFailedError(
            f"parity: expected clean (exit code 0), got {done.returncode}: {done.stderr.strip()}"
        )


def step_cutover(w: Walkthrough) -> None:
    w.say("== 7. cutover: on clean parity and the shadow's evidence, mode new")
    done = cutover(w)
    if done.returncode != 0:
        raise StepFailedError(f"cutover refused: {done.stderr.strip()}")
    deadline = time.monotonic() + 10
    while w.status()["mode"] != "new":
        if time.monotonic() > deadline:
            raise StepFailedError("the facade did not take up mode new within 10 s")
        time.sleep(0.2)
    legacy, _ = w.read(w.options.reads // 3)
    w.show_status()
    if legacy:
        raise StepFailedError(f"mode new: {legacy} product reads still went to legacy")
    w.say(
        f"  {CAPABILITY} is served by the new service; `seam migrate rollback {CAPABILITY}` "
        "would return it to legacy in one step"
    )


def cutover(w: Walkthrough) -> subprocess.CompletedProcess[str]:
    done = w.seam(
        "migrate",
        "cutover",
        CAPABILITY,
        "--routes",
        str(w.state / "routes.yaml"),
        "--min-compared",
        str(w.options.min_compared),
        "--state",
        str(w.state),
    )
    for line in done.stdout.strip().splitlines():
        w.say("  " + line)
    return done


# --- the writes -----------------------------------------------------------------------------

WRITES: Final = {"rename": "/products/{id}/rename", "reprice": "/products/{id}/price"}


def step_writes_moved(w: Walkthrough) -> None:
    w.say(
        "== 8. writes moved: the writer keeps the legacy database in step; rename and "
        "reprice go to the new service's commands"
    )
    writer = w.start("writer", "migrate", "writer", str(w.state / "writes.yaml"))
    deadline = time.monotonic() + 60
    while "Ctrl-C stops" not in writer.log.read_text(encoding="utf-8", errors="replace"):
        if writer.process.poll() is not None:
            raise StepFailedError(
                f"the writer stopped (exit code {writer.process.returncode}): {tail(writer.log)}",
                hint=f"its log: {writer.log}",
            )
        if time.monotonic() > deadline:
            raise StepFailedError("the writer did not start within 60 s", hint=f"see {writer.log}")
        time.sleep(0.2)
    w.say("  the writer applies each command's event to the legacy database, tagged by origin")
    for capability in WRITES:
        w.route("new", capability=capability)
    w.show_status(*WRITES)
    w.say(
        "  the facade rewrites POST /products/{id}/rename to the command's /product/{id}/name "
        "and /products/{id}/price to /product/{id}/price: paths, not bodies, so a client sends "
        'the command\'s body ({"name": ...}, {"price": {"amount": ..., "currency": ...}})'
    )


@dataclass
class Sent:
    kind: str  # rename or reprice
    product: int
    value: str  # the new name, or the new amount
    prices_before: int  # the product's product_prices rows before the command


def step_writes_sent(w: Walkthrough) -> None:
    count = w.options.commands
    w.say(
        f"== 9. writes: {count} renames and {count} reprices through the facade, while the "
        "legacy app's own writes go on"
    )
    import requests

    from seam.transforms.pipeline_file import load_pipeline

    history = load_pipeline(w.options.pipeline).history.topic
    seen = history_ends(w, history)
    own_before = own_write_count(w)
    products = random.sample(live_products(w), 2 * count)
    tag = time.strftime("%H%M%S")
    sent: list[Sent] = []
    body: dict[str, Any]
    with requests.Session() as session:
        for i, product in enumerate(products):
            kind = "rename" if i < count else "reprice"
            if kind == "rename":
                value = f"Renamed {product} at {tag}"
                body = {"name": value}
            else:
                cents = random.randint(100, 99999)
                value = f"{cents // 100}.{cents % 100:02d}"
                body = {"price": {"amount": value, "currency": "EUR"}}
            before = legacy_prices(w, product)
            path = WRITES[kind].format(id=product)
            try:
                answer = session.post(f"{w.facade}{path}", json=body, timeout=30)
            except requests.RequestException as exc:
                raise StepFailedError(f"the facade did not answer POST {path}: {exc}") from None
            if answer.status_code != 202:
                raise StepFailedError(
                    f"POST {path} through the facade: expected 202 from the command, got "
                    f"{answer.status_code}: {answer.text[:300]}"
                )
            sent.append(Sent(kind, product, value, before))
    w.say(f"  {len(sent)} commands, each answered 202 by the new service")
    check_written(w, history, seen, own_before, sent)


def check_written(
    w: Walkthrough, history: str, seen: dict[int, int], own_before: int, sent: list[Sent]
) -> None:
    """Wait until the writer, the transform and the image are through with every command
    (90 s at most), then say what was found, or fail naming the first command that is not."""
    from seam.migration.writes import ORIGIN_HEADER

    deadline = time.monotonic() + 90
    while True:
        events = history_events(w, history, after=seen)
        tagged = [e for e, origin in events if origin is not None]
        legacy = [e for e, origin in events if origin is None]
        # A product the legacy app changed meanwhile (the background workload) shows that
        # change, not the command's, and may be gone (the writer rejects the event): its row
        # and image are not checked, its events are.
        touched = {e.get("product_id") for e in legacy}
        problems = [p for one in sent if (p := written_problem(w, one, tagged, legacy, touched))]
        own = own_write_count(w) - own_before
        clean = sum(1 for one in sent if one.product not in touched)
        if not problems and own >= clean and legacy:
            break
        if time.monotonic() > deadline:
            if problems:
                raise StepFailedError(
                    problems[0], hint=f"see the writer's log {w.state / 'logs' / 'writer.log'}"
                )
            if not legacy:
                raise StepFailedError("the legacy app's own writes produced no event meanwhile")
            raise StepFailedError(
                f"expected at least {clean} own_write records within 90 s, got {own}",
                hint=f"see the transform's log {w.state / 'logs' / 'transform.log'}",
            )
        time.sleep(0.5)
    w.say(
        f"  the history topic got {len(tagged)} events with a {ORIGIN_HEADER} header (one per "
        f"command) and {len(legacy)} from the legacy app's own writes; the transform counted "
        f"{own} own_write records (the writer's changes: latest state, no event)"
    )
    changes = raw_changes(w, [one for one in sent if one.product not in touched])
    for one in sent:
        if one.product not in touched and changes[one.product] != 1:
            raise StepFailedError(
                f"{one.kind} of product {one.product} to {one.value!r}: expected the legacy "
                f"row to change to it exactly once, Debezium captured {changes[one.product]} "
                "such changes",
                hint=f"see the writer's log {w.state / 'logs' / 'writer.log'}",
            )
    for kind in WRITES:
        mine = [one for one in sent if one.kind == kind]
        checked = [one for one in mine if one.product not in touched]
        if not checked:
            raise StepFailedError(f"no {kind} could be checked: the legacy app changed them all")
        w.say(
            f"  {kind}: {len(mine)} commands, 202 each, one event each with the origin header "
            f"and none from the write-back; {len(checked)} legacy rows changed to the new value "
            "once (one captured change each) and the image shows it"
            + (
                f" ({len(mine) - len(checked)} changed by the legacy app meanwhile)"
                if len(checked) < len(mine)
                else ""
            )
        )
        for one in checked[:2]:
            w.say(f"    product {one.product}: {one.value!r}")


def raw_changes(w: Walkthrough, sent: list[Sent]) -> dict[int, int]:
    """Per command's product: how many changes Debezium captured of its legacy row to the
    command's value (prod_name, or price_txt), read from the pipeline's raw topics."""
    from seam.transforms.pipeline_file import load_pipeline
    from seam.transforms.readback import read_to_end

    column = {"rename": "prod_name", "reprice": "price_txt"}
    wanted = {(one.product, column[one.kind], one.value): one.product for one in sent}
    found = dict.fromkeys((one.product for one in sent), 0)
    for topic in load_pipeline(w.options.pipeline).inputs:
        for record in read_to_end(w.options.settings.kafka, topic):
            after = ((record.json() or {}).get("after")) or {}
            for key in {(after.get("prod_id"), c, after.get(c)) for c in column.values()}:
                if key in wanted:
                    found[wanted[key]] += 1
    return found


def written_problem(
    w: Walkthrough,
    one: Sent,
    tagged: list[dict[str, Any]],
    legacy: list[dict[str, Any]],
    touched: set[Any],
) -> str | None:
    """What is not (yet) as it should be after one command, or None."""
    kind_event = "ProductRenamed" if one.kind == "rename" else "ProductPriceChanged"

    def carries(event: dict[str, Any]) -> bool:
        if event.get("event_type") != kind_event or event.get("product_id") != one.product:
            return False
        data = event.get("data") or {}
        if one.kind == "rename":
            return bool(data.get("new_name") == one.value)
        return bool((data.get("new_price") or {}).get("amount") == one.value)

    what = f"{one.kind} of product {one.product} to {one.value!r}"
    mine = sum(1 for e in tagged if carries(e))
    again = sum(1 for e in legacy if carries(e))
    if mine != 1 or again:
        return (
            f"{what}: expected exactly one event with the origin header and none from the "
            f"write-back, got {mine} and {again}"
        )
    if one.product in touched:
        return None
    row = legacy_row(w, one.product)
    image = image_state(w, one.product)
    if one.kind == "rename":
        if row.get("prod_name") == one.value and image.get("name") == one.value:
            return None
        return (
            f"{what}: legacy prod_name {row.get('prod_name')!r}, image name {image.get('name')!r}"
        )
    added = legacy_prices(w, one.product) - one.prices_before
    amount = (image.get("price") or {}).get("amount")
    if row.get("price_txt") == one.value and added == 1 and amount == one.value:
        return None
    return (
        f"{what}: legacy price_txt {row.get('price_txt')!r} with {added} new product_prices "
        f"rows (1 expected), image amount {amount!r}"
    )


def history_events(
    w: Walkthrough, topic: str, after: dict[int, int]
) -> list[tuple[dict[str, Any], bytes | None]]:
    """The history topic's events past `after` (per partition, the offsets `history_ends`
    gave), each with its seam-origin header (None: none)."""
    from seam.migration.writes import ORIGIN_HEADER
    from seam.transforms.readback import read_to_end

    return [
        (r.json(), r.headers.get(ORIGIN_HEADER))
        for r in read_to_end(w.options.settings.kafka, topic)
        if r.offset > after.get(r.partition, -1)
    ]


def history_ends(w: Walkthrough, topic: str) -> dict[int, int]:
    """Per partition of the history topic, the offset of its last record now."""
    from seam.transforms.readback import read_to_end

    ends: dict[int, int] = {}
    for r in read_to_end(w.options.settings.kafka, topic):
        ends[r.partition] = max(r.offset, ends.get(r.partition, -1))
    return ends


def own_write_count(w: Walkthrough) -> int:
    """The transform's no-event records of reason own_write (its Prometheus metrics)."""
    import requests

    try:
        text = requests.get(f"http://127.0.0.1:{w.options.metrics_port}/metrics", timeout=10).text
    except requests.RequestException as exc:
        raise StepFailedError(f"the transform's metrics did not answer: {exc}") from None
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("seam_transform_no_event_total") and 'reason="own_write"' in line
    )


def live_products(w: Walkthrough) -> list[int]:
    """Products the image lists as active (the commands' targets)."""
    import requests

    page = requests.get(f"{w.image}/product", params={"limit": 200}, timeout=30).json()
    keys = [
        int(k)
        for k, item in zip(page["keys"], page["items"], strict=True)
        if (item or {}).get("status") == "active"
    ]
    if len(keys) < 2 * w.options.commands:
        raise StepFailedError(f"the image lists only {len(keys)} active products")
    return keys


def image_state(w: Walkthrough, product: int) -> dict[str, Any]:
    import requests

    answer = requests.get(f"{w.image}/product/{product}", timeout=30)
    state: dict[str, Any] = answer.json().get("data") or {} if answer.status_code == 200 else {}
    return state


def legacy_url(w: Walkthrough) -> str:
    return w.options.settings.database_url(w.options.database)


def legacy_row(w: Walkthrough, product: int) -> dict[str, Any]:
    from sqlalchemy import text

    from seam.connectors.engine import connect

    with connect(legacy_url(w)) as conn:
        row = (
            conn.execute(
                text("SELECT prod_name, price_txt FROM products WHERE prod_id = :i"), {"i": product}
            )
            .mappings()
            .first()
        )
    return dict(row) if row else {}


def legacy_prices(w: Walkthrough, product: int) -> int:
    from sqlalchemy import text

    from seam.connectors.engine import connect

    with connect(legacy_url(w)) as conn:
        return int(
            conn.execute(
                text("SELECT COUNT(*) FROM product_prices WHERE prod_id = :i"), {"i": product}
            ).scalar_one()
        )


def step_parity_again(w: Walkthrough) -> None:
    w.say("== 10. parity again, with the writes on the new side")
    parity(w)


READ_STEPS: Final[tuple[Callable[[Walkthrough], None], ...]] = (
    step_split(10),
    step_split(100),
    step_cutover_refused,
    step_parity,
    step_cutover,
)
# The writes: rename and reprice moved to the new side, each command landing in legacy exactly
# once with exactly one domain event; they run after the reads, with the background writes on.
WRITE_STEPS: Final[tuple[Callable[[Walkthrough], None], ...]] = (
    step_writes_moved,
    step_writes_sent,
    step_parity_again,
)


def run(options: Options, say: Callable[[str], None]) -> None:
    """The whole walkthrough; every process it started is stopped when it returns or
    raises (also on Ctrl-C and SIGTERM)."""
    prepare_state(options.state)
    walk = Walkthrough(options, say)

    def terminated(signum: int, frame: FrameType | None) -> None:
        raise TerminatedError("stopped by SIGTERM")

    previous = signal.signal(signal.SIGTERM, terminated)
    started = time.monotonic()
    try:
        start_everything(walk)
        step_legacy(walk)
        step_shadow(walk)
        with background_writes(walk):
            for step in (*READ_STEPS, *WRITE_STEPS):
                step(walk)
        say(
            f"== done in {time.monotonic() - started:.0f} s: {CAPABILITY} moved from legacy "
            "through shadow, 10% and 100% to new, on clean parity; rename and reprice moved "
            "to the new side, written back to legacy once each"
        )
    finally:
        walk.stop_all()
        signal.signal(signal.SIGTERM, previous)

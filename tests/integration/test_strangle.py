"""`seam legacy strangle` on the real stack: a seeded catalog in its own database, captured by
its own connector into its own topics (the `catalog` fixture), walked from legacy through
shadow, split 10% and 100%, parity and cutover to new, then rename and reprice moved to the
new service's commands with `seam migrate writer` keeping the legacy database in step, and
parity again, by the real transform, `seam serve`, the legacy app, the facade and the writer
that the walkthrough starts and stops.

Interrupted (SIGTERM) half-way, it stops every process it started and exits non-zero; run
again on the same state directory, it goes through every step (exit 0) and again leaves
nothing running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import free_port
from tests.integration.test_transform_e2e import Catalog, catalog  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def strangle(catalog: Catalog, state: Path, ports: tuple[int, ...]) -> list[str]:  # noqa: F811
    facade, app, service, metrics = ports
    return [
        sys.executable,
        "-m",
        "seam.cli.main",
        "legacy",
        "strangle",
        "--database",
        catalog.url,
        "--pipeline",
        str(pipeline_of(catalog, state.parent)),
        "--state",
        str(state),
        "--facade-port",
        str(facade),
        "--app-port",
        str(app),
        "--service-port",
        str(service),
        "--metrics-port",
        str(metrics),
        "--commands",
        "3",
        "--no-stack-up",
        "--min-compared",
        "60",
        "--reads",
        "200",
    ]


def pipeline_of(catalog: Catalog, root: Path) -> Path:  # noqa: F811
    """The fixture's pipeline; on MariaDB with the writer's GTID domain as its own_writes
    (the fixture declares a PostgreSQL ledger), like legacy_db/pipelines/catalog-mariadb.yaml."""
    if catalog.raw_topic.split(".")[1] == "public":
        return catalog.pipeline
    pipeline = yaml.safe_load(catalog.pipeline.read_text())
    pipeline["own_writes"] = {"gtid_domain": 77}
    path = root / "catalog-mariadb.yaml"
    path.write_text(yaml.safe_dump(pipeline))
    return path


def left_running(*marks: str) -> list[str]:
    """Command lines of processes that mention any of `marks` (the walkthrough's children
    name its state directory, the pipeline or the app's port)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(mark in line for mark in marks) and "pytest" not in line:
            found.append(f"{entry.name}: {line[:200]}")
    return found


@pytest.mark.parametrize("catalog", ["postgres", "mariadb"], indirect=True)
def test_the_walkthrough_moves_product_details_to_new_and_leaves_nothing_running(
    catalog: Catalog,  # noqa: F811
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    ports = (free_port(), free_port(), free_port(), free_port())
    marks = (str(state), str(pipeline_of(catalog, tmp_path)), f"--port {ports[1]} ")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    # Interrupted during the shadow step: everything it started is stopped.
    first = subprocess.Popen(
        strangle(catalog, state, ports),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert first.stdout is not None
        seen = []
        for line in first.stdout:
            seen.append(line)
            if line.startswith("== 2. shadow"):
                break
        if not any(line.startswith("== 2. shadow") for line in seen):
            first.kill()
            raise AssertionError("".join(seen) + first.communicate(timeout=60)[1])
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode != 0
    assert "stopped by SIGTERM" in err
    assert "Traceback" not in err
    assert left_running(*marks) == []

    # Run again on the same state directory: every step, exit 0.
    started = time.monotonic()
    done = subprocess.run(
        strangle(catalog, state, ports),
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    seconds = time.monotonic() - started
    out = done.stdout
    assert done.returncode == 0, f"{out[-4000:]}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr
    steps = [line.split(":")[0] for line in out.splitlines() if line.startswith("== ")]
    assert steps == [
        "== 0. the parts",
        "== 1. legacy",
        "== 2. shadow",
        "== 3. split 10%",
        "== 4. split 100%",
        "== 5. cutover, too early",
        "== 6. parity",
        "== 7. cutover",
        "== 8. writes moved",
        "== 9. writes",
        "== 10. parity again, with the writes on the new side",
        f"== done in {out.split('== done in ')[1].split(' ')[0]} s",
    ], out
    assert "$ seam migrate route product-details --mode shadow" in out
    assert "0 mismatched," in out  # the shadow's figures, in words
    assert "refused, as it should be" in out
    assert "product-details: new (route record)" in out
    assert "cut over to new by " in out
    # The shadow's evidence as cutover read it, and the split as the facade counted it.
    shadow = next(line for line in out.splitlines() if " reads matched, " in line)
    matched = int(shadow.split()[0])
    assert matched >= 60, shadow
    split = next(line for line in out.splitlines() if "% of the reads went to the new" in line)
    assert 2.5 <= float(split.split("%")[0]) <= 25, split
    # The writes: the writer started, both capabilities routed to the commands, each
    # command answered 202, written back once, one event each, and parity clean again.
    writes = out.split("== 8. writes moved")[1]
    assert "$ seam migrate writer " in writes
    assert "$ seam migrate route rename --mode new" in writes
    assert "$ seam migrate route reprice --mode new" in writes
    assert "rename: new (route record)" in writes, writes
    assert "paths, not bodies" in writes
    assert "6 commands, each answered 202 by the new service" in writes
    for kind in ("rename", "reprice"):
        line = next(x for x in writes.splitlines() if x.startswith(f"  {kind}: 3 commands"))
        assert "one event each with the origin header and none from the write-back" in line
        assert int(line.split("; ")[1].split()[0]) >= 1, line  # legacy rows checked
    figures = next(x for x in writes.splitlines() if "events with a seam-origin header" in x)
    tagged = int(figures.split("got ")[1].split()[0])
    legacy = int(figures.split("header (one per command) and ")[1].split()[0])
    own = int(figures.split("counted ")[1].split()[0])
    assert (tagged, legacy >= 1, own >= 1) == (6, True, True), figures
    cleans = [x for x in out.splitlines() if x.startswith("  ") and x.endswith(": clean")]
    assert len(cleans) == 2, out  # parity at step 6 and again at step 10
    assert left_running(*marks) == []
    print(f"walkthrough: {seconds:.0f} s\n{out}")

"""The dashboard's page load time and what its polling costs, against a running stack.

    SEAM_CONFIG=... .venv/bin/python benchmarks/dashboard_benchmark.py
    SEAM_CONFIG=... .venv/bin/python benchmarks/dashboard_benchmark.py --file legacy_db/dashboard.yaml \
        --tabs 5 --window 30 --rounds 3

It starts `seam dashboard` (with --file, default legacy_db/dashboard.yaml, and --interval) on
a free port and measures:

- page load on loopback in headless Chromium (Debian's /usr/bin/chromium, Playwright): from
  navigation to the load event, and to the first panel filled with the stack's values, over
  `--loads` fresh pages (median and range);
- polling cost, with `--tabs` pages open: the dashboard process's CPU (user + system) over
  `--window` seconds as a share of one core, and what the stack's processes spent more than
  in a window with no dashboard running (Kafka, Connect and PostgreSQL with the backends it
  reaped, from their pid files in the stack directory): windows with and without the
  dashboard take turns `--rounds` times, since other work shares the machine.

The target: the page loads in under 1 s; polling costs the stack under 2% of a core. Every
process it starts it stops.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.conftest import free_port  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system time of `pid` (and of the children it has waited for)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    used = int(fields[11]) + int(fields[12])
    if children:
        used += int(fields[13]) + int(fields[14])
    return used / TICK


def stack_pids() -> dict[str, int]:
    from seam.settings import load_settings
    from seam.stack.process import running

    run = load_settings().stack.dir / "run"
    found = {}
    for part in ("kafka", "connect", "postgres", "mariadb"):
        recorded = running(run / f"{part}.pid")
        if recorded is not None:
            found[part] = recorded.pid
    return found


def stack_cpu(pids: dict[str, int]) -> dict[str, float]:
    return {name: cpu_seconds(pid, children=True) for name, pid in pids.items()}


def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before[k] for k in before}


def attributed(args: argparse.Namespace, pids: dict[str, int], calls: int) -> dict[str, float]:
    """Each part of a collection run `calls` times back to back in this process, the stack's
    CPU measured around it minus an idle window as long: what one collection costs each
    stack process, as % of a core at the dashboard's cadence (Connect and Kafka every
    interval, the databases every DATABASE_EVERY_S)."""
    from seam.cli.migrate import state_option
    from seam.dashboard.collect import DATABASE_EVERY_S, METADATA_EVERY_S, Collector
    from seam.dashboard.config import load_dashboard
    from seam.settings import load_settings

    collector = Collector(load_settings(), load_dashboard(args.file), state_option(None))
    collector.collect()  # clients made, imports done

    looks = [0]
    every_full = max(1, round(METADATA_EVERY_S / args.interval))

    def pipelines() -> None:
        # The cadence the dashboard keeps: the cluster's metadata on one look in every_full.
        if looks[0] % every_full == 0:
            collector._metadata_at = -METADATA_EVERY_S
        looks[0] += 1
        collector._pipelines()

    def databases() -> None:
        collector._databases_at = -DATABASE_EVERY_S
        collector._connectors()

    parts = {
        "connectors (Connect)": (collector._connectors, args.interval),
        "pipelines (Kafka)": (collector._pipelines, args.interval),
        "databases": (databases, DATABASE_EVERY_S),
    }
    result: dict[str, float] = {}
    for name, (job, every) in parts.items():
        before, at = stack_cpu(pids), time.monotonic()
        for _ in range(calls):
            job()
        busy = spent(before, stack_cpu(pids))
        elapsed = time.monotonic() - at
        before = stack_cpu(pids)
        time.sleep(elapsed)  # the same stack, idle of us, as long
        idle = spent(before, stack_cpu(pids))
        per_call = {k: max(0.0, busy[k] - idle[k]) / calls for k in busy}
        cost = {k: 100 * v / every for k, v in per_call.items()}
        print(
            f"  {name}: {elapsed / calls * 1000:.0f} ms a call; stack per call "
            + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in per_call.items())
            + f" -> {sum(cost.values()):.2f}% of a core (every {every:g} s)"
        )
        result[name] = sum(cost.values())
    collector.stop()
    return result


def start_dashboard(args: argparse.Namespace, state: Path) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "seam.cli.main",
            "dashboard",
            "--file",
            str(args.file),
            "--state",
            str(state),
            "--interval",
            str(args.interval),
            "--port",
            str(port),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/api/state", timeout=10).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            sys.exit("seam dashboard did not answer within 60 s")
        time.sleep(0.1)


def summary(values: list[float], unit: str) -> str:
    return (
        f"{statistics.median(values):.1f} {unit} [{min(values):.1f}-{max(values):.1f}]"
        if values
        else "-"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, default=REPO / "legacy_db" / "dashboard.yaml")
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--tabs", type=int, default=3)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=20, help="Calls per part, attributed cost.")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    pids = stack_pids()
    print(f"stack processes: {pids or 'none found (SEAM_CONFIG?)'}")
    loads: list[float] = []
    filled: list[float] = []
    own: list[float] = []
    added: list[float] = []
    added_parts: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(Path(tmp) / "profile"),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
        )
        process, url = start_dashboard(args, Path(tmp) / "state")
        try:
            time.sleep(2 * args.interval)  # the first collections (and imports) done
            for _ in range(args.loads):
                page = browser.new_page()
                began = time.perf_counter()
                page.goto(url, wait_until="load")
                loads.append((time.perf_counter() - began) * 1000)
                page.wait_for_function(
                    "document.querySelector('#meta').textContent.startsWith('collected')"
                )
                filled.append((time.perf_counter() - began) * 1000)
                page.close()
            tabs = [browser.new_page() for _ in range(args.tabs)]
            for tab in tabs:
                tab.goto(url)
            for _ in range(args.rounds):
                # With the dashboard (and its tabs polling).
                mine, theirs, at = cpu_seconds(process.pid), stack_cpu(pids), time.monotonic()
                time.sleep(args.window)
                elapsed = time.monotonic() - at
                own.append(100 * (cpu_seconds(process.pid) - mine) / elapsed)
                with_board = {k: v / elapsed for k, v in spent(theirs, stack_cpu(pids)).items()}
                # Without: the collector paused by stopping the process for the window.
                process.send_signal(19)  # SIGSTOP
                theirs, at = stack_cpu(pids), time.monotonic()
                time.sleep(args.window)
                elapsed = time.monotonic() - at
                without = {k: v / elapsed for k, v in spent(theirs, stack_cpu(pids)).items()}
                process.send_signal(18)  # SIGCONT
                parts = {k: 100 * (with_board[k] - without[k]) for k in with_board}
                added_parts.append(parts)
                added.append(sum(parts.values()))
        finally:
            process.terminate()
            process.wait(30)
            browser.close()
    print(f"page load (load event), {args.loads} fresh pages: {summary(loads, 'ms')}")
    print(f"page load to the first collection shown: {summary(filled, 'ms')}  (target < 1000 ms)")
    print(
        f"dashboard process CPU with {args.tabs} tabs, interval {args.interval} s: "
        f"{summary(own, '% of a core')}"
    )
    print(
        f"added to the stack (with - without, {args.rounds} rounds of {args.window:.0f} s): "
        f"{summary(added, '% of a core')}  (target < 2%)"
    )
    for name in pids:
        values = [p[name] for p in added_parts]
        print(f"  {name}: {summary(values, '% of a core')}")
    print("attributed: each part of a collection back to back, the stack's CPU around it:")
    costs = attributed(args, pids, args.calls)
    print(f"attributed cost to the stack: {sum(costs.values()):.2f}% of a core  (target < 2%)")


if __name__ == "__main__":
    main()

"""The facade's cost on loopback: calling legacy directly vs through `seam facade run` in
`legacy` mode vs in `shadow` mode, at a fixed request rate.

    .venv/bin/python benchmarks/facade_benchmark.py                       # 1,000 req/s, 3 runs
    .venv/bin/python benchmarks/facade_benchmark.py --rate 1000 --duration 10 --runs 5

The upstreams are real HTTP servers this script starts: `tests/http_upstream.py` (uvicorn
with httptools and uvloop, a raw ASGI app answering GET /items/<id> with a small JSON
object from memory), one as the legacy app and one as the new side. (Until the catalog's
legacy app lands this stands in for it; point --legacy-url at a running app to use it.)
The legacy upstream sends `Seam-Legacy-Position`, so shadow mode compares without reading
a database. In shadow mode the new side answers every shadowed request too.

Load: `--connections` keep-alive connections, one thread each, sending GET requests open
loop (each request is due at its time; latency counts from then, so a facade that falls
behind pays for it). Within a run the modes take turns every `--segment` seconds, so a
burst of other work on a shared machine falls on all of them alike. For each mode and run: p50, p99, max latency (ms) and the facade's CPU
per request (user+system time of its processes, the shadow child included, over the run /
requests). Reported: the median
and range over the runs, and the facade's overhead over calling legacy directly against
the targets (legacy mode: <= 1 ms p50 and 5 ms p99; shadow: <= 2 ms p99 over legacy mode).
Everything it starts it stops.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.facade_procs import Facade, Upstream  # noqa: E402

ITEMS = 1000


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def shadow_child(pid: int) -> int | None:
    """The facade's shadow process (seam.migration.shadow_process), if it has one."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def load(port: int, rate: int, duration: float, connections: int) -> tuple[list[float], int, float]:
    """GET /items/<random id> at `rate`/s for `duration` s, open loop, over `connections`:
    (latencies in ms, errors, seconds from the first request due to the last answer)."""
    results: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    began = time.monotonic() + 0.05
    each = rate / connections

    def drive(slot: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        rng = random.Random(slot)
        offset = slot / rate  # the connections' requests interleave evenly
        for k in range(int(each * duration)):
            due = began + offset + k / each
            now = time.monotonic()
            if now < due:
                time.sleep(due - now)
            connection.request("GET", f"/items/{rng.randint(1, ITEMS)}")
            answer = connection.getresponse()
            answer.read()
            if answer.status != 200:
                errors[slot] += 1
            results[slot].append((time.monotonic() - due) * 1000)
        connection.close()

    threads = [threading.Thread(target=drive, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [x for r in results for x in r], sum(errors), time.monotonic() - began


def figures(latencies: list[float], errors: int, seconds: float) -> dict[str, float]:
    latencies = sorted(latencies)
    return {
        "requests": len(latencies),
        "achieved_rps": len(latencies) / seconds,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        "max_ms": latencies[-1],
        "errors": errors,
    }


def routes(folder: Path, legacy: str, new: str, mode: str) -> Path:
    path = folder / f"routes-{mode}.yaml"
    path.write_text(
        f"legacy: {{url: '{legacy}'}}\nnew: {{svc: '{new}'}}\ncapabilities:\n"
        f"  items:\n    requests: ['GET /items/{{id}}']\n    mode: {mode}\n"
        "    shadow: {wait_ms: 1000}\n"
    )
    return path


def summary(name: str, runs: list[dict[str, float]], key: str) -> str:
    values = [r[key] for r in runs]
    return f"{statistics.median(values):.3f} [{min(values):.3f}-{max(values):.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--modes", default="direct,legacy,shadow", help="which to measure")
    parser.add_argument("--segment", type=float, default=1.0, help="seconds per turn of a mode")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="seam-facade-bench-"))
    legacy = Upstream("legacy", folder)
    new = Upstream("new", folder)
    started: list[Any] = [legacy, new]
    try:
        for i in range(1, ITEMS + 1):
            item = {"id": i, "title": f"Item {i}", "price": "12.50", "tags": ["a", "b"]}
            legacy.put(str(i), item)
            new.put(str(i), item)
        legacy.control(position="lsn:0/10")
        facades = {}
        for mode in ("legacy", "shadow"):
            facade = Facade(routes(folder, legacy.url, new.url, mode), folder / f"state-{mode}")
            started.append(facade)
            facades[mode] = facade
        results: dict[str, list[dict[str, float]]] = {"direct": [], "legacy": [], "shadow": []}
        modes = args.modes.split(",")
        targets = {m: legacy if m == "direct" else facades[m] for m in modes}
        for run in range(args.runs):
            # The modes take turns every --segment seconds, so that each sees the same
            # background noise of a shared machine.
            latencies: dict[str, list[float]] = {m: [] for m in modes}
            errors = dict.fromkeys(modes, 0)
            spent = dict.fromkeys(modes, 0.0)
            cpu = dict.fromkeys(modes, 0.0)
            for _ in range(max(1, round(args.duration / args.segment))):
                for mode in modes:
                    pid = targets[mode].process.pid  # type: ignore[union-attr]
                    child = shadow_child(pid)
                    before = cpu_seconds(pid) + (cpu_seconds(child) if child else 0)
                    found, failed, seconds = load(
                        targets[mode].port, args.rate, args.segment, args.connections
                    )
                    spent[mode] += seconds
                    cpu[mode] += cpu_seconds(pid) + (cpu_seconds(child) if child else 0) - before
                    latencies[mode] += found
                    errors[mode] += failed
            for mode in modes:
                result = figures(latencies[mode], errors[mode], spent[mode])
                result["cpu_ms_per_request"] = cpu[mode] * 1000 / result["requests"]
                results[mode].append(result)
                print(
                    f"run {run + 1} {mode:7}: {result['achieved_rps']:.0f} req/s, p50 "
                    f"{result['p50_ms']:.3f} ms, p99 {result['p99_ms']:.3f} ms, max "
                    f"{result['max_ms']:.1f} ms, errors {result['errors']}, CPU "
                    f"{result['cpu_ms_per_request']:.3f} ms/request "
                    f"({'the legacy upstream' if mode == 'direct' else 'the facade and its shadow process'})",
                    flush=True,
                )
        shadow = facades["shadow"].status()["capabilities"]["items"]["shadow"]
        print(
            f"\nover {args.runs} runs of {args.duration:g} s at {args.rate} req/s, "
            f"{args.connections} connections: median [range]"
        )
        results = {m: r for m, r in results.items() if r}
        for mode, runs in results.items():
            print(
                f"  {mode:7} p50 {summary(mode, runs, 'p50_ms')} ms, p99 "
                f"{summary(mode, runs, 'p99_ms')} ms, CPU {summary(mode, runs, 'cpu_ms_per_request')} "
                "ms/request"
            )
        med = {
            m: {k: statistics.median(r[k] for r in runs) for k in ("p50_ms", "p99_ms")}
            for m, runs in results.items()
        }
        if len(results) < 3:
            return
        p50 = med["legacy"]["p50_ms"] - med["direct"]["p50_ms"]
        p99 = med["legacy"]["p99_ms"] - med["direct"]["p99_ms"]
        extra = med["shadow"]["p99_ms"] - med["legacy"]["p99_ms"]
        print(
            f"  legacy mode overhead: p50 +{p50:.3f} ms (target <= 1), p99 +{p99:.3f} ms (target <= 5)"
        )
        print(f"  shadow over legacy mode: p99 +{extra:.3f} ms (target <= 2)")
        print(f"  shadow outcomes: {shadow}")
    finally:
        for proc in reversed(started):
            proc.close()


if __name__ == "__main__":
    main()

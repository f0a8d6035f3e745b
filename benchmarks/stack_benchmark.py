"""How fast the local stack comes up and how much memory it holds at idle.

Runs a private stack (temporary directory, free ports) with the jars already cached:
  - first up: initialises every data directory (initdb, mariadb-install-db, KRaft format)
  - warm up: after down, with the data kept (the everyday case)
then lets it idle and sums the resident memory of every process of the stack (each part's
process and its children: PostgreSQL forks a backend per connection and helpers).

    .venv/bin/python benchmarks/stack_benchmark.py [--idle-seconds 30]

Targets (issue 2): up with the jars cached <= 45 s on 2 cores; idle stack < 2.5 GB resident.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import tempfile
import time
from pathlib import Path

from seam.settings import StackSettings, load_settings
from seam.stack.jars import ensure_jars
from seam.stack.local import LocalStack

UP_TARGET_S = 45.0
MEMORY_TARGET_MB = 2560.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        if ppid == pid:
            found.append(int(proc.name))
    return found


def _tree(pid: int) -> list[int]:
    pids, queue = [], [pid]
    while queue:
        current = queue.pop()
        pids.append(current)
        queue.extend(_children(current))
    return pids


def _memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in kB; PSS shares each shared page among the processes that map it."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="seam-bench-", dir="/var/tmp"))
    root.chmod(0o755)
    ports = {name: _free_port() for name in StackSettings().ports()}
    config = root / "seam.toml"
    config.write_text(
        "[stack]\n"
        + f'dir = "{root / "stack"}"\n'
        + "".join(f"{k} = {v}\n" for k, v in ports.items())
    )
    settings = load_settings(config_file=config, env={})
    ensure_jars(settings.stack.cache_dir)  # the targets assume the jars are cached
    local = LocalStack(settings.stack)
    try:
        began = time.monotonic()
        local.up()
        first_up = time.monotonic() - began
        local.down()

        began = time.monotonic()
        local.up()
        warm_up = time.monotonic() - began

        time.sleep(args.idle_seconds)
        print(f"{'part':<10}{'processes':>10}{'RSS MB':>10}{'PSS MB':>10}")
        total_rss = total_pss = 0
        for status in local.status():
            assert status.pid is not None, f"{status.name} is not running"
            tree = _tree(status.pid)
            rss = sum(_memory_kb(p)[0] for p in tree) / 1024
            pss = sum(_memory_kb(p)[1] for p in tree) / 1024
            total_rss += rss
            total_pss += pss
            print(f"{status.name:<10}{len(tree):>10}{rss:>10.0f}{pss:>10.0f}")
        print(f"{'total':<10}{'':>10}{total_rss:>10.0f}{total_pss:>10.0f}")
        print()
        print(
            f"first up (initialises data): {first_up:6.1f} s  ({first_up / UP_TARGET_S:.2f} of the 45 s target)"
        )
        print(
            f"warm up (data kept):         {warm_up:6.1f} s  ({warm_up / UP_TARGET_S:.2f} of the 45 s target)"
        )
        print(
            f"idle memory after {args.idle_seconds:.0f} s:     {total_rss:6.0f} MB RSS "
            f"({total_rss / MEMORY_TARGET_MB:.2f} of the 2.5 GB target), {total_pss:.0f} MB PSS"
        )
    finally:
        local.down(wipe=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

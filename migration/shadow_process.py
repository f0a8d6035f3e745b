"""Shadow comparisons in a process of their own, at a lower CPU priority than the proxy.

The facade's event loop serves users; a shadowed request costs about half as much again
(a second request, two answers parsed and compared). Run in the same loop, that work
competes with the users' requests whenever the CPU is short. So the facade hands each
shadowed request to a child process (`python -m seam.migration.shadow_process`, niced) over
a pipe, without ever waiting: a write the pipe cannot take now is kept in a bounded buffer
and sent when the pipe drains; beyond the bound the request is counted `skipped`. The
child runs `seam.migration.shadow.Shadow` and reports its counts back four times a second.
It exits when the pipe closes: the facade stopped, or was killed. The requests the facade
itself had to skip are handed on as counts with the next request that gets through, so that
the child's per-minute record of outcomes holds them too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Final

from seam.migration.shadow import (
    OUTCOMES,
    MismatchStore,
    OutcomeKey,
    Shadow,
    ShadowItem,
    minute_of,
)

FRAME: Final = struct.Struct("!I")
MAX_PENDING: Final = 8 * 1024 * 1024  # bytes waiting for the pipe; beyond: skipped
REPORT_S: Final = 0.25
NICE: Final = 10


class ShadowProcess:
    """The facade's side: hands requests to the child, keeps the counts it reports."""

    def __init__(self, mismatches: Path, database_url: str | None, timeout_s: float) -> None:
        items_read, self.items = os.pipe()
        self.reports, reports_write = os.pipe()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "seam.migration.shadow_process",
                str(items_read),
                str(reports_write),
            ],
            pass_fds=(items_read, reports_write),
            stdin=subprocess.DEVNULL,
        )
        os.close(items_read)
        os.close(reports_write)
        os.set_blocking(self.items, False)
        self.pending = bytearray()
        self.counts: Counter[tuple[str, str]] = Counter()
        self.skipped: Counter[str] = Counter()
        self.unsent: Counter[OutcomeKey] = Counter()  # skips the child has not been told of
        self.report_buffer = b""
        self.loop: asyncio.AbstractEventLoop | None = None
        # The database URL goes through the pipe, never the command line (ps shows that).
        self._send(
            pickle.dumps(
                {"mismatches": str(mismatches), "database": database_url, "timeout_s": timeout_s}
            )
        )

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(self.reports, self._read_reports)
        if self.pending:
            self.loop.add_writer(self.items, self._flush)

    def offer(self, item: ShadowItem) -> None:
        """Hand a comparison to the child, or count it skipped: never waits."""
        if len(self.pending) > MAX_PENDING or self.process.poll() is not None:
            self.skipped[item.capability] += 1
            self.unsent[(minute_of(time.time()), item.capability, "skipped")] += 1
            return
        self._send_skips()
        self._send(pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL))

    def _send_skips(self) -> None:
        if self.unsent:
            self._send(pickle.dumps(self.unsent))
            self.unsent = Counter()

    def _send(self, data: bytes) -> None:
        frame = FRAME.pack(len(data)) + data
        if self.pending:
            self.pending += frame
            return
        try:
            written = os.write(self.items, frame)
        except BlockingIOError:
            written = 0
        except OSError:  # the child is gone: nothing more will be compared
            return
        if written < len(frame):
            self.pending += frame[written:]
            if self.loop is not None:
                self.loop.add_writer(self.items, self._flush)

    def _flush(self) -> None:
        try:
            written = os.write(self.items, self.pending)
        except BlockingIOError:
            return
        except OSError:
            written = len(self.pending)
        del self.pending[:written]
        if not self.pending and self.loop is not None:
            self.loop.remove_writer(self.items)

    def _read_reports(self) -> None:
        try:
            data = os.read(self.reports, 65536)
        except BlockingIOError:
            return
        if not data:
            assert self.loop is not None
            self.loop.remove_reader(self.reports)
            return
        lines = (self.report_buffer + data).split(b"\n")
        self.report_buffer = lines.pop()
        for line in reversed(lines):  # the newest whole report is enough
            if line:
                self.counts = Counter({(c, o): n for c, o, n in json.loads(line)})
                break

    def totals(self, capability: str) -> dict[str, int]:
        out = {o: self.counts[(capability, o)] for o in OUTCOMES}
        out["skipped"] += self.skipped[capability]
        return out

    async def stop(self) -> None:
        if self.loop is not None:
            self.loop.remove_reader(self.reports)
            self.loop.remove_writer(self.items)
        if self.unsent and not self.pending:  # the last skips, if the pipe takes them now
            self._send_skips()
        os.close(self.items)  # the child sees the end of its input and stops
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.process.wait, 5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self.reports)


async def _child(items_fd: int, reports_fd: int) -> None:
    from seam.migration.upstream import Pool

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**26)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(items_fd, "rb", 0)
    )

    async def frame() -> bytes | None:
        try:
            (size,) = FRAME.unpack(await reader.readexactly(FRAME.size))
            return await reader.readexactly(size)
        except asyncio.IncompleteReadError:
            return None

    first = await frame()
    if first is None:
        return
    config: dict[str, Any] = pickle.loads(first)
    pools: dict[str, Pool] = {}

    async def send(
        base_url: str, method: str, target: str, headers: Any, timeout_s: float | None = None
    ) -> Any:
        pool = pools.get(base_url)
        if pool is None:
            pool = pools[base_url] = Pool(base_url, config["timeout_s"])
        return await pool.request(method, target, headers, b"", timeout_s)

    read_position = None
    if config["database"]:
        from seam.connectors.engine import log_position, make_engine, translate_errors

        url = config["database"]
        engine = make_engine(url, pool_size=1, max_overflow=1)

        def read_position() -> str:
            with translate_errors(url), engine.connect() as conn:
                return log_position(conn)

    shadow = Shadow(send, read_position, MismatchStore(Path(config["mismatches"])))
    shadow.start()

    def report() -> None:
        counts = [[c, o, n] for (c, o), n in shadow.counts.items()]
        with contextlib.suppress(OSError):  # the facade is gone
            os.write(reports_fd, json.dumps(counts).encode() + b"\n")

    async def reporter() -> None:
        while True:
            await asyncio.sleep(REPORT_S)
            report()

    task = asyncio.create_task(reporter())
    try:
        while (data := await frame()) is not None:
            received = pickle.loads(data)
            if isinstance(received, ShadowItem):
                shadow.offer(received)
            else:  # the facade's own skips, by minute
                shadow.note_skipped(received)
    finally:
        task.cancel()
        report()
        await shadow.stop()
        for pool in pools.values():
            pool.close()


def main() -> None:
    with contextlib.suppress(OSError):
        os.nice(NICE)  # the users' requests come first
    # Ctrl-C reaches the whole process group: the facade stops first, then closes the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    items_fd, reports_fd = int(sys.argv[1]), int(sys.argv[2])
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        asyncio.run(_child(items_fd, reports_fd))
    else:
        uvloop.run(_child(items_fd, reports_fd))


if __name__ == "__main__":
    main()

"""The facade: a reverse proxy that sends each capability's requests where its mode says.

A plain ASGI app (no framework on the request path) over pooled keep-alive connections,
one pool per upstream (`seam.migration.upstream`). It passes the method, path, query, body and end-to-end headers through
(hop-by-hop headers are the proxy's own) and sends requests no capability matches to
legacy. An upstream that cannot be reached answers 502 with a JSON body naming the side and
why; `new` mode with the new side down does the same, or answers from legacy when the
capability says `fallback: legacy`.

Changes without restart: every `RELOAD_S` the facade looks at the routes file (a file that
does not parse keeps the running routes and logs one error) and at the route records of the
migration directory (`seam migrate route`), and writes what it serves and has counted to
`facade/status.json` there for `seam migrate status`.

Shadowed requests are compared in a child process (`seam.migration.shadow_process`), so
that comparing never takes the proxy's CPU. /_seam/health, /_seam/status (JSON) and
/_seam/metrics (Prometheus) are the facade's own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs

from seam.errors import SeamError
from seam.migration.modes import MovedCohorts, read_override, to_new
from seam.migration.routes import Capability, Mode, Routes, load_routes
from seam.migration.shadow import MISMATCHES_FILE, OUTCOMES, POSITION_HEADER, ShadowItem
from seam.migration.shadow_process import ShadowProcess
from seam.migration.state import MigrationStore
from seam.migration.upstream import Headers, Pool, UpstreamError, pass_headers
from seam.services.metrics import CONTENT_TYPE, Exposition

log = logging.getLogger("seam.facade")

RELOAD_S: Final = 0.5
STATUS_FILE: Final = "facade/status.json"
# Hop-by-hop headers (RFC 9110 7.6.1) and the ones the proxy sets itself.
_HOP: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
        b"expect",  # the body is read whole before it is sent on: no 100-continue upstream
    }
)
_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_JSON: Final = [(b"content-type", b"application/json")]


@dataclass
class Live:
    """The routes being served and each capability's effective mode."""

    routes: Routes
    modes: dict[str, Mode]
    overridden: set[str]


class Latency:
    def __init__(self) -> None:
        self.counts = [0] * (len(_BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.sum += seconds
        for i, bound in enumerate(_BUCKETS):
            if seconds <= bound:
                self.counts[i] += 1
                return
        self.counts[-1] += 1


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


class Facade:
    def __init__(
        self,
        routes_file: Path,
        state_dir: Path,
        *,
        database_url: Callable[[str], str] | None = None,
    ) -> None:
        self.routes_file = routes_file
        self.store = MigrationStore(state_dir)
        self.database_url = database_url
        routes = load_routes(routes_file)
        if routes.legacy_database and database_url is not None:
            database_url(routes.legacy_database)  # an unknown name: a clear error now
        self.live = Live(routes, {}, set())
        self._refresh_modes()
        self.routes_stamp = _stamp(routes_file)
        self.override_stamps: dict[str, tuple[int, int] | None] = {}
        self.bad_stamp: tuple[int, int] | None = None
        self.pools: dict[str, Pool] = {}
        self.moved: dict[str, MovedCohorts] = {}
        self.requests: Counter[tuple[str, str]] = Counter()
        self.errors: Counter[tuple[str, str]] = Counter()
        self.latency: dict[tuple[str, str], Latency] = {}
        self.shadow: ShadowProcess | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.started_at = time.time()
        self.url = ""

    # --- configuration ------------------------------------------------------------------

    def _refresh_modes(self) -> bool:
        """Effective modes: a route record wins over the file. Whether anything changed."""
        modes, overridden = {}, set()
        for cap in self.live.routes.capabilities:
            try:
                override = read_override(self.store, cap.name)
            except SeamError as exc:
                log.error("%s (fix: %s); keeping mode %s", exc.message, exc.hint, cap.mode)
                override = (
                    self.live.modes.get(cap.name) if cap.name in self.live.overridden else None
                )
            if override is not None and override.kind != "legacy" and cap.side is None:
                log.error(
                    "capability %s: the route record's mode %s needs a new side, and the "
                    "routes file names none (fix: add 'side:' to it, or seam migrate route "
                    "%s --clear); keeping mode %s",
                    cap.name,
                    override,
                    cap.name,
                    cap.mode,
                )
                override = None
            if override is not None:
                overridden.add(cap.name)
            modes[cap.name] = override or cap.mode
        changed = modes != self.live.modes
        for name, mode in modes.items():
            if self.live.modes and self.live.modes.get(name) != mode:
                log.warning("capability %s: mode %s -> %s", name, self.live.modes.get(name), mode)
        self.live = Live(self.live.routes, modes, overridden)
        return changed

    def reload(self) -> None:
        """Take up a changed routes file and route records (called every RELOAD_S)."""
        stamp = _stamp(self.routes_file)
        reloaded = False
        if stamp != self.routes_stamp and stamp != self.bad_stamp:
            try:
                routes = load_routes(self.routes_file)
            except SeamError as exc:
                self.bad_stamp = stamp
                hint = f" (fix: {exc.hint})" if exc.hint else ""
                log.error(
                    "the routes file was not reloaded, the running routes stay: %s%s",
                    exc.message,
                    hint,
                )
            else:
                self.routes_stamp, self.bad_stamp = stamp, None
                self.live = Live(routes, self.live.modes, self.live.overridden)
                self.moved = {}
                reloaded = True
                log.warning("reloaded the routes file %s", self.routes_file)
        stamps = {
            cap.name: _stamp(self.store.path(f"routes/{cap.name}.json"))
            for cap in self.live.routes.capabilities
        }
        if stamps != self.override_stamps or reloaded:
            self.override_stamps = stamps
            self._refresh_modes()

    def _moved(self, cap: Capability) -> MovedCohorts | None:
        if not cap.forward_only:
            return None
        if cap.name not in self.moved:
            self.moved[cap.name] = MovedCohorts(self.store, cap.name)
        return self.moved[cap.name]

    # --- upstreams ----------------------------------------------------------------------

    def _pool(self, base_url: str) -> Pool:
        pool = self.pools.get(base_url)
        if pool is None:
            pool = self.pools[base_url] = Pool(base_url, self.live.routes.legacy_timeout_s)
        return pool

    async def send(
        self,
        base_url: str,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        timeout_s: float | None = None,
        body: bytes = b"",
    ) -> tuple[int, Headers, bytes]:
        answer: tuple[int, Headers, bytes] = await self._pool(base_url).request(
            method, target, headers, body, timeout_s
        )
        return answer

    # --- the ASGI app -------------------------------------------------------------------

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path.startswith("/_seam/"):
            await self._own(path, send)
            return
        try:
            await self._proxy(scope, receive, send)
        except Exception as exc:  # a bug: one clear answer and a log line, not a bare 500
            log.exception("the facade failed on %s %s", scope.get("method"), path)
            await _down(send, "facade", "<facade>", f"{type(exc).__name__}: {exc}")

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    name = self.live.routes.legacy_database
                    self.shadow = ShadowProcess(
                        self.store.path(MISMATCHES_FILE),
                        self.database_url(name) if name and self.database_url else None,
                        self.live.routes.legacy_timeout_s,
                    )
                    self.shadow.start()
                    self.tasks.append(asyncio.create_task(self._watch()))
                    self._write_status()  # `seam migrate route` knows the capabilities now
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for task in self.tasks:
                    task.cancel()
                await asyncio.gather(*self.tasks, return_exceptions=True)
                if self.shadow is not None:
                    await self.shadow.stop()
                for pool in self.pools.values():
                    pool.close()
                self._write_status()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _watch(self) -> None:
        beat = 0
        while True:
            await asyncio.sleep(RELOAD_S)
            try:
                self.reload()
                beat += 1
                if beat % 2 == 0:  # written in a thread: an fsync must not stall requests
                    await asyncio.get_running_loop().run_in_executor(
                        None, self._write_status, self.status()
                    )
            except Exception:  # keep watching: one bad moment must not freeze the config
                log.exception("the facade could not check its routes")

    async def _own(self, path: str, send: Any) -> None:
        if path == "/_seam/health":
            body = {"status": "ok", "routes": str(self.routes_file)}
            await _answer(send, 200, _JSON, json.dumps(body).encode())
        elif path == "/_seam/status":
            await _answer(send, 200, _JSON, json.dumps(self.status()).encode())
        elif path == "/_seam/metrics":
            headers = [(b"content-type", CONTENT_TYPE.encode())]
            await _answer(send, 200, headers, self.metrics().encode())
        else:
            await _answer(send, 404, _JSON, b'{"error": "not a facade endpoint"}')

    def _match(self, method: str, path: str) -> tuple[Capability, dict[str, str]] | None:
        for cap in self.live.routes.capabilities:
            for pattern in cap.patterns:
                params = pattern.match(method, path)
                if params is not None:
                    return cap, params
        return None

    async def _proxy(self, scope: Any, receive: Any, send: Any) -> None:
        began = time.perf_counter()
        method: str = scope["method"]
        path: str = scope["path"]
        raw_path = scope.get("raw_path")
        query = scope["query_string"].decode("latin-1")
        body = await _body(receive)
        headers = pass_headers(scope["headers"], _HOP)
        routes = self.live.routes
        found = self._match(method, path)
        cap, params = found if found else (None, {})
        mode = self.live.modes.get(cap.name, cap.mode) if cap else Mode("legacy")
        name = cap.name if cap else "<unmatched>"
        upstream_path = raw_path.decode("latin-1") if raw_path else path
        use_new = False
        if cap is not None and mode.kind == "new":
            use_new = True
        elif cap is not None and mode.kind == "split":
            key = _cohort_key(cap, params, scope["headers"], query)
            use_new = to_new(cap.name, key, mode.percent, self._moved(cap))
        if use_new and cap is not None and cap.side is not None:
            base = routes.new[cap.side]
            target = _target(cap.new_path(upstream_path, params), query)
            try:
                status, answer_headers, content = await self.send(
                    base, method, target, headers, body=body
                )
            except UpstreamError as exc:
                self._count(name, "new", began, error=True)
                if not cap.fallback_legacy:
                    await _down(send, f"new:{cap.side}", name, exc.reason)
                    return
                log.warning("%s: the new side failed (%s); answering from legacy", name, exc.reason)
            else:
                self._count(name, "new", began, error=status >= 500)
                await _answer(send, status, pass_headers(answer_headers.raw, _HOP), content, method)
                return
        target = _target(upstream_path, query)
        try:
            status, answer_headers, content = await self.send(
                routes.legacy_url, method, target, headers, body=body
            )
        except UpstreamError as exc:
            self._count(name, "legacy", began, error=True)
            await _down(send, "legacy", name, exc.reason)
            return
        self._count(name, "legacy", began, error=status >= 500)
        await _answer(send, status, pass_headers(answer_headers.raw, _HOP), content, method)
        if (
            cap is not None
            and mode.kind == "shadow"
            and cap.side is not None
            and method == "GET"
            and self.shadow is not None
        ):
            self.shadow.offer(
                ShadowItem(
                    capability=cap.name,
                    rules=cap.compare,
                    wait_ms=cap.shadow_wait_ms,
                    base_url=routes.new[cap.side],
                    method="GET",
                    path=cap.new_path(upstream_path, params),
                    query=query,
                    headers=[(k, v) for k, v in headers if k.lower() != b"accept-encoding"],
                    legacy_status=status,
                    legacy_encoding=answer_headers.get("content-encoding"),
                    legacy_body=content,
                    position=answer_headers.get(POSITION_HEADER),
                    legacy_url=routes.legacy_url,
                    legacy_target=target,
                )
            )

    def _count(self, capability: str, side: str, began: float, *, error: bool) -> None:
        key = (capability, side)
        self.requests[key] += 1
        if error:
            self.errors[key] += 1
        latency = self.latency.get(key)
        if latency is None:
            latency = self.latency[key] = Latency()
        latency.observe(time.perf_counter() - began)

    # --- what it reports ----------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        caps = {}
        for cap in self.live.routes.capabilities:
            shadow = self.shadow.totals(cap.name) if self.shadow else dict.fromkeys(OUTCOMES, 0)
            caps[cap.name] = {
                "mode": str(self.live.modes.get(cap.name, cap.mode)),
                "mode_from": "route record" if cap.name in self.live.overridden else "routes file",
                "entity": cap.entity,
                "requests": {s: self.requests[(cap.name, s)] for s in ("legacy", "new")},
                "errors": {s: self.errors[(cap.name, s)] for s in ("legacy", "new")},
                "shadow": shadow,
            }
        return {
            "routes": str(self.routes_file),
            "url": self.url,
            "pid": os.getpid(),
            "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "unmatched": self.requests[("<unmatched>", "legacy")],
            "capabilities": caps,
        }

    def _write_status(self, status: dict[str, Any] | None = None) -> None:
        try:
            self.store.write(STATUS_FILE, status or self.status())
        except OSError as exc:
            log.warning("cannot write %s: %s", self.store.path(STATUS_FILE), exc)

    def metrics(self) -> str:
        out = Exposition()
        keys = sorted(self.requests)
        out.metric(
            "seam_facade_requests_total",
            "counter",
            "Requests answered, by capability and side.",
            [({"capability": c, "side": s}, self.requests[(c, s)]) for c, s in keys],
        )
        out.metric(
            "seam_facade_errors_total",
            "counter",
            "Requests whose upstream failed or answered 5xx, by capability and side.",
            [({"capability": c, "side": s}, self.errors[(c, s)]) for c, s in keys],
        )
        samples: list[tuple[dict[str, object], float]] = []
        for (c, s), latency in sorted(self.latency.items()):
            total = 0
            for bound, count in zip((*_BUCKETS, float("inf")), latency.counts, strict=True):
                total += count
                le = "+Inf" if bound == float("inf") else f"{bound:g}"
                samples.append(({"capability": c, "side": s, "le": le}, total))
        out.metric(
            "seam_facade_latency_seconds_bucket",
            "counter",
            "Time to answer, through the facade, by capability and side (cumulative buckets).",
            samples,
        )
        out.metric(
            "seam_facade_latency_seconds_sum",
            "counter",
            "Total time to answer, by capability and side.",
            [({"capability": c, "side": s}, v.sum) for (c, s), v in sorted(self.latency.items())],
        )
        shadow = self.shadow
        out.metric(
            "seam_facade_shadow_total",
            "counter",
            "Shadowed requests by outcome: match, mismatch, unsettled (the new side had not "
            "applied the legacy position in time), error, skipped (queue full).",
            [
                ({"capability": cap.name, "outcome": o}, n)
                for cap in self.live.routes.capabilities
                for o, n in (
                    shadow.totals(cap.name) if shadow else dict.fromkeys(OUTCOMES, 0)
                ).items()
            ],
        )
        return out.text()


def _target(path: str, query: str) -> str:
    return f"{path}?{query}" if query else path


def _cohort_key(
    cap: Capability, params: dict[str, str], raw_headers: list[tuple[bytes, bytes]], query: str
) -> str | None:
    cohort = cap.cohort
    if cohort is None:
        return None
    if cohort.kind == "path":
        return params.get(cohort.name)
    if cohort.kind == "query":
        values = parse_qs(query).get(cohort.name)
        return values[0] if values else None
    wanted = b"cookie" if cohort.kind == "cookie" else cohort.name.encode("latin-1")
    for k, v in raw_headers:
        if k.lower() != wanted:
            continue
        if cohort.kind == "header":
            return v.decode("latin-1")
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(v.decode("latin-1"))
        except Exception:  # a malformed cookie header: no key
            return None
        if cohort.name in jar:
            return jar[cohort.name].value
    return None


async def _body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(
    send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes, method: str = "GET"
) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


async def _down(send: Any, side: str, capability: str, reason: str) -> None:
    body = {
        "error": f"the {side} side did not answer",
        "side": side,
        "capability": capability,
        "reason": reason,
    }
    await _answer(send, 502, _JSON, json.dumps(body).encode())


__all__ = ["MISMATCHES_FILE", "STATUS_FILE", "Facade"]

"""A lean HTTP/1.1 client for the facade's upstreams: pooled keep-alive connections.

The facade sits on every request's path, so its client must cost little: httpx took about
1.5 ms of CPU per proxied request (its transport layers), more than the 1 ms the facade may
add. This one is an asyncio protocol around httptools' parser (the one uvicorn uses), with
a pool of idle keep-alive connections per upstream. What it supports is what a reverse
proxy in front of JSON services needs: any method, a body sent whole with Content-Length,
responses with Content-Length, chunked or read to the connection's end; HEAD. A request
sent on a reused connection that the upstream had closed meanwhile (nothing came back) is
sent again once on a new connection when its method is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterable
from typing import Final
from urllib.parse import urlsplit

IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
MAX_IDLE: Final = 64  # idle connections kept per upstream


class UpstreamError(Exception):
    """An upstream could not answer: `reason` says why, for the 502 body."""

    def __init__(self, reason: str, *, retry: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry  # nothing was received: safe to send an idempotent request again


class Headers:
    """Response headers as received (raw bytes), looked up without regard to case."""

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self.raw = raw

    def get(self, name: str) -> str | None:
        wanted = name.lower().encode("latin-1")
        for key, value in self.raw:
            if key.lower() == wanted:
                return value.decode("latin-1")
        return None


class _Connection(asyncio.Protocol):
    def __init__(self, pool: Pool) -> None:
        import httptools

        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, Headers, bytes]] | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.received = False
        self.head = False
        self.headers_done = False
        self.closed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except Exception as exc:  # httptools.HttpParserError and its kinds
            self._fail(UpstreamError(f"not a valid HTTP answer: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        if self.waiter is not None and not self.waiter.done():
            if self.headers_done and self.parser.get_status_code():
                self._complete(keep=False)  # a body read to the connection's end
            else:
                reason = f"the connection closed{f': {exc}' if exc else ''} before an answer"
                self._fail(UpstreamError(reason, retry=not self.received))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.headers_done = True
        if self.head:
            self._complete(keep=False)  # no body follows; a fresh connection for the next

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self._complete(keep=self.parser.should_keep_alive())

    # the pool's side
    def send(self, data: bytes, head: bool) -> asyncio.Future[tuple[int, Headers, bytes]]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.headers, self.body = [], []
        self.received = self.headers_done = False
        self.head = head
        self.transport.write(data)
        return self.waiter

    def expire(self, seconds: float) -> None:
        self._fail(UpstreamError(f"no answer within {seconds:g} s"))
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _complete(self, keep: bool) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        waiter.set_result(
            (self.parser.get_status_code(), Headers(self.headers), b"".join(self.body))
        )
        self.waiter = None
        if keep and not self.closed:
            self.pool.release(self)
        else:
            self.close()

    def _fail(self, error: UpstreamError) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(error)
        self.waiter = None


class Pool:
    """Keep-alive connections to one upstream (scheme http, host, port)."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"not an http(s) URL: {base_url}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.tls else 80)
        self.prefix = parts.path.rstrip("/")
        default = 443 if self.tls else 80
        self.host_header = (
            parts.netloc.rsplit("@", 1)[-1] if self.port != default else self.host
        ).encode("latin-1")
        self.timeout_s = timeout_s
        self.idle: deque[_Connection] = deque()

    def forget(self, connection: _Connection) -> None:
        with contextlib.suppress(ValueError):  # not idle: in use, or already gone
            self.idle.remove(connection)

    def release(self, connection: _Connection) -> None:
        if len(self.idle) < MAX_IDLE:
            self.idle.append(connection)
        else:
            connection.close()

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await loop.create_connection(
                lambda: _Connection(self), self.host, self.port, ssl=self.tls or None
            )
        except OSError as exc:
            raise UpstreamError(
                f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}"
            ) from None
        return protocol

    async def request(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[bytes, bytes]],
        body: bytes = b"",
        timeout_s: float | None = None,
    ) -> tuple[int, Headers, bytes]:
        lines = [f"{method} {self.prefix}{target} HTTP/1.1\r\n".encode("latin-1")]
        lines.append(b"host: " + self.host_header + b"\r\n")
        for name, value in headers:
            lines.append(name + b": " + value + b"\r\n")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(b"content-length: " + str(len(body)).encode() + b"\r\n")
        lines.append(b"\r\n")
        data = b"".join(lines) + body
        wait = self.timeout_s if timeout_s is None else timeout_s
        for attempt in (1, 2):
            reused = bool(self.idle)
            connection = self.idle.pop() if reused else await self._connect()
            answer = connection.send(data, head=method == "HEAD")
            # a timer, not asyncio.wait_for: no task per request on the hot path
            timer = asyncio.get_running_loop().call_later(wait, connection.expire, wait)
            try:
                return await answer
            except UpstreamError as exc:
                connection.close()
                if attempt == 1 and reused and exc.retry and method in IDEMPOTENT:
                    continue  # the upstream had closed the idle connection: once more
                raise
            except asyncio.CancelledError:
                connection.close()
                raise
            finally:
                timer.cancel()
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()


def pass_headers(
    raw: Iterable[tuple[bytes, bytes]], drop: frozenset[bytes]
) -> list[tuple[bytes, bytes]]:
    """The headers whose lower-cased name is not in `drop`."""
    return [(k, v) for k, v in raw if k.lower() not in drop]


__all__ = ["Headers", "Pool", "UpstreamError", "pass_headers"]

"""The facade's HTTP client (seam.migration.upstream) against raw loopback servers that
answer the ways real upstreams do: chunked, read to the end of the connection, keep-alive
closed by the server between requests, too slow, not there at all."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import pytest

from seam.migration.upstream import Pool, UpstreamError
from tests.conftest import free_port

pytestmark = pytest.mark.integration

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return head


def run(handler: Handler, client: Callable[[str], Awaitable[None]]) -> None:
    async def main() -> None:
        handlers: set[asyncio.Task[None]] = set()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            handlers.add(asyncio.current_task())  # type: ignore[arg-type]
            try:
                await handler(reader, writer)
            finally:
                writer.transport.abort()

        port = free_port()
        server = await asyncio.start_server(serve, "127.0.0.1", port)
        try:
            await client(f"http://127.0.0.1:{port}")
        finally:
            server.close()
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
            await server.wait_closed()
            await asyncio.sleep(0.05)  # let the closed transports go

    asyncio.run(main())


def test_chunked_and_read_to_the_end_answers_arrive_whole() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_request(reader)
        if b"/chunked" in head:
            writer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n"
                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            )
            await writer.drain()
            await read_request(reader)  # the same connection serves the next request
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
        await writer.drain()
        writer.close()

    async def client(url: str) -> None:
        pool = Pool(url, 5)
        status, headers, body = await pool.request("GET", "/chunked", [])
        assert (status, body, headers.get("x-a")) == (200, b"hello world", "1")
        assert len(pool.idle) == 1
        status, _, body = await pool.request("GET", "/chunked", [])
        assert (status, body) == (204, b"")
        status, _, body = await pool.request("GET", "/eof", [])
        assert (status, body) == (200, b"until the end")
        pool.close()

    run(handler, client)


def test_a_keep_alive_connection_the_server_closed_is_retried_once_for_a_get() -> None:
    served = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_request(reader)
        served.append(head.split(b" ")[1])
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        # Wait for the next request, then drop it unanswered: the server timed out the
        # connection just as the client reused it.
        with contextlib.suppress(asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")

    async def client(url: str) -> None:
        pool = Pool(url, 5)
        assert (await pool.request("GET", "/one", []))[0] == 200
        assert (await pool.request("GET", "/two", []))[2] == b"ok"  # sent again, new connection
        assert (await pool.request("GET", "/three", []))[2] == b"ok"
        with pytest.raises(UpstreamError, match="closed"):
            await pool.request("POST", "/four", [], b"x")  # not idempotent: not sent twice
        pool.close()

    run(handler, client)
    assert served == [b"/one", b"/two", b"/three"]


def test_a_slow_upstream_times_out_and_a_missing_one_cannot_connect() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(2)
        writer.close()

    async def client(url: str) -> None:
        pool = Pool(url, 5)
        with pytest.raises(UpstreamError, match=r"no answer within 0\.2 s"):
            await pool.request("GET", "/slow", [], timeout_s=0.2)
        assert not pool.idle  # the timed-out connection is not reused
        nowhere = Pool(f"http://127.0.0.1:{free_port()}", 5)
        with pytest.raises(UpstreamError, match="cannot connect"):
            await nowhere.request("GET", "/", [])

    run(handler, client)

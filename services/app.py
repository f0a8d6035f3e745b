"""The HTTP API of a memory-image service (FastAPI; OpenAPI docs at /docs).

    GET /<entity>/<key>                   one state (404: no such key)
    GET /<entity>?field=value&limit&cursor  states in key order, filtered on declared fields
    GET /<entity>/by/<index>/<value>      the states whose indexed field has the value
    GET /<entity>/search?q=words          states whose search fields hold every word
    GET /<entity>/count[?field=value]     how many
    GET /ready  /health  /metrics
    POST|PUT|PATCH <command path>         the commands of the service file's `writes:`
                                          (seam.services.commands)

`<key>` is the latest topic's record key as `seam.transforms.declared.envelope.key_text`
makes it: `42`, or for a composite key the JSON array `[3,"B"]` (URL-encoded:
`%5B3%2C%22B%22%5D`).

Every entity response carries the position it reflects: the header `Seam-Position`
(`0:1234,1:998`, partition:next offset of the latest topic, as `after=` takes it) and the
body's `position`. `after=` (those offsets, or a legacy source position: see
`seam.services.position`) makes a request wait, at most `wait_ms` (default and cap from the
service file), until the image has applied it; past that, 504 with the position reached.
"""

from __future__ import annotations

import time
from typing import Any, Final

import orjson
from fastapi import Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, Response

from seam import __version__
from seam.keys import closest
from seam.services import metrics
from seam.services.parity_http import router as parity_router
from seam.services.position import (
    Offsets,
    PositionError,
    SourcePosition,
    format_offsets,
    parse_after,
)
from seam.services.runtime import Service

POSITION_HEADER: Final = "Seam-Position"
_PAGING: Final = frozenset({"limit", "cursor", "after", "wait_ms", "q"})
AFTER = Query(
    None,
    description="Wait until the image reflects this position: partition:offset,... as a "
    "response's Seam-Position header gave it, lsn:X/Y (PostgreSQL) or "
    "binlog:<file>:<pos> (MySQL/MariaDB)",
)
WAIT_MS = Query(None, ge=0, description="How long `after` may wait (ms); capped by the service")


def _json(body: Any, status: int = 200, position: Offsets | None = None) -> Response:
    headers = {POSITION_HEADER: format_offsets(position)} if position is not None else None
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def _position_body(offsets: Offsets, source: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"offsets": {str(p): o for p, o in sorted(offsets.items())}}
    if source is not None:
        body["source"] = source
    return body


class KeyFastPath:
    """`GET /<entity>/<key>` without a query string, answered without FastAPI's routing,
    parameter parsing and dependency machinery: the hottest request, at a fraction of the
    cost (same bytes as the FastAPI route, which still serves it with `after=` and documents
    it). Anything else goes to the app."""

    def __init__(self, app: FastAPI, service: Service) -> None:
        self.app = app
        self.service = service
        self.prefix = f"/{service.spec.entity}/"
        self.taken = {"count", "search", "by", ""}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and not scope["query_string"]:
            path: str = scope["path"]  # percent-decoded by the server
            if path.startswith(self.prefix):
                key = path[len(self.prefix) :]
                if "/" not in key and key not in self.taken:
                    status, body, offsets = key_response(self.service, key, None)
                    await send(
                        {
                            "type": "http.response.start",
                            "status": status,
                            "headers": [
                                (b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (
                                    POSITION_HEADER.lower().encode(),
                                    format_offsets(offsets).encode(),
                                ),
                            ],
                        }
                    )
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)


class RefusedError(Exception):
    """A request answered before its handler runs (by a dependency): the response."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


LOADING: Final = (
    "the image is still loading its snapshot: it holds nothing to answer from yet "
    "(/ready says when it is current; retry in a moment)"
)


def key_response(service: Service, key: str, source: str | None) -> tuple[int, bytes, Offsets]:
    """(status, JSON body, offsets) of GET /<entity>/<key> as the image is now. The state's
    JSON goes into the body as stored, never parsed. 503 before the image has loaded its
    snapshot: an empty image would say "no such key" of keys it simply has not read yet."""
    if not service.started:
        return 503, orjson.dumps({"detail": LOADING, "position": _position_body({}, source)}), {}
    image = service.image
    with image.lock:
        stored = image.stored(key)
        offsets = service.applied()
    position = orjson.dumps(_position_body(offsets, source))
    if stored is None:
        body = {"detail": f"no {service.spec.entity} with key {key}"}
        return 404, orjson.dumps(body)[:-1] + b',"position":' + position + b"}", offsets
    data = image.json(stored)
    head = b'{"key":' + orjson.dumps(key) + b',"data":'
    return 200, head + data + b',"position":' + position + b"}", offsets


def create_asgi(service: Service) -> KeyFastPath:
    """The service's ASGI application: the FastAPI app behind the by-key fast path."""
    return KeyFastPath(create_app(service), service)


def create_app(service: Service) -> FastAPI:
    spec = service.spec
    image = service.image
    entity = spec.entity
    app = FastAPI(
        title=f"seam memory image: {entity}",
        version=__version__,
        description=f"The latest state of each {entity} from the topic {spec.topic}, "
        f"kept current by tailing it. Keys: {', '.join(spec.key)}.",
    )

    def problem(status: int, message: str, offsets: Offsets, **extra: Any) -> Response:
        return _json(
            {"detail": message, **extra, "position": _position_body(offsets, None)},
            status,
            offsets,
        )

    async def gate(after: str | None, wait_ms: int | None) -> tuple[str | None, Response | None]:
        """Wait for `after`: (the source position reached, or None; an error response). 503
        while the image has not loaded its snapshot (it would answer from nothing)."""
        if not service.started:
            return None, problem(503, LOADING, {})
        if after is None:
            return None, None
        try:
            target = parse_after(after)
        except PositionError as exc:
            return None, problem(400, f"{exc.message} ({exc.hint})", service.applied())
        wait = min(spec.wait_ms if wait_ms is None else wait_ms, spec.max_wait_ms)
        deadline = time.monotonic() + wait / 1000
        source = None
        if isinstance(target, SourcePosition):
            try:
                ends = await service.wait_source(target, deadline)
            except Exception as exc:  # the broker: say so, never a traceback
                return None, problem(
                    503, f"cannot read the transform's progress: {exc}", service.applied()
                )
            if ends is None:
                return None, problem(
                    504,
                    f"the transform has not published {target.text} within {wait} ms",
                    service.applied(),
                    wanted=target.text,
                )
            wanted, source = ends, target.text
        else:
            wanted = target
        if not await service.wait_offsets(wanted, deadline):
            return None, problem(
                504,
                f"the image has not applied {format_offsets(wanted)} within {wait} ms",
                service.applied(),
                wanted=format_offsets(wanted),
            )
        return source, None

    @app.exception_handler(RefusedError)
    async def refused(request: Request, exc: RefusedError) -> Response:
        return exc.response

    async def reached(after: str | None = AFTER, wait_ms: int | None = WAIT_MS) -> str | None:
        """Every data request's preamble (a dependency): the image loaded, and `after`
        reached; the source position it reached (None: none asked)."""
        source, error = await gate(after, wait_ms)
        if error is not None:
            raise RefusedError(error)
        return source

    def filtered(request: Request) -> dict[str, str]:
        """The request's filters (a dependency, after `reached`): its declared fields."""
        found = {k: v for k, v in request.query_params.items() if k not in _PAGING}
        allowed = (*spec.filters, *spec.indexes)
        for name in found:
            if name not in allowed:
                guess = closest(name, allowed)
                raise RefusedError(
                    problem(
                        400,
                        f"cannot filter on '{name}'"
                        + (f" (did you mean '{guess}'?)" if guess else "")
                        + f": filterable fields are {', '.join(allowed) or 'none'}",
                        service.applied(),
                    )
                )
        return found

    at_position = Depends(reached)
    with_filters = Depends(filtered)

    def limit_of(limit: int | None) -> int:
        return max(1, min(limit or spec.page_size, spec.max_page_size))

    def page_body(page: Any, offsets: Offsets, source: str | None) -> dict[str, Any]:
        return {
            "items": [state for _key, state in page.items],
            "keys": [key for key, _state in page.items],
            "next_cursor": page.next_cursor,
            "position": _position_body(offsets, source),
        }

    @app.get("/health", tags=["service"])
    async def health() -> Response:
        """The service is up (its loader thread running); details of how it started."""
        status = service.status()
        return _json(status, 200 if service.healthy else 503)

    @app.get("/ready", tags=["service"])
    async def ready() -> Response:
        """200 once the image has applied the end offsets seen at start, else 503."""
        status = service.status()
        return _json(status, 200 if status["ready"] and service.loader.alive else 503)

    @app.get("/metrics", tags=["service"], response_class=PlainTextResponse)
    async def prometheus() -> Response:
        """Prometheus text exposition: entities, applied offsets, lag."""
        progress = service.loader.progress
        text = metrics.render(
            entity=entity,
            topic=spec.topic,
            entities=len(image),
            ready=progress.ready,
            applied=progress.applied,
            ends=progress.ends,
            behind_since=progress.behind_since,
            lag_seconds=progress.lag_seconds(time.time()),
            last_source_ts_ms=progress.last_source_ts_ms,
            last_record_ts_ms=progress.last_record_ts_ms,
            records=progress.records,
            ready_after_s=progress.ready_after_s,
            snapshots_written=service.snapshots_written,
            waited=service.source.spent,
            marks_reads=(
                service.source.reads,
                service.source.slowest_read_s,
                service.source.read_errors,
            ),
        )
        return Response(text, media_type=metrics.CONTENT_TYPE)

    @app.get(f"/{entity}/count", tags=[entity])
    async def count(
        q: str = "", source: str | None = at_position, filters: dict[str, str] = with_filters
    ) -> Response:
        """How many states (matching the filters and the search words, if any)."""

        def run() -> tuple[int, Offsets]:
            with image.lock:
                return image.count(filters, q), service.applied()

        found, offsets = await run_in_threadpool(run) if filters or q else run()
        return _json({"count": found, "position": _position_body(offsets, source)}, 200, offsets)

    @app.get(f"/{entity}/search", tags=[entity])
    async def search(
        q: str = Query(
            ..., description="Words; a state matches when its search fields hold every one"
        ),
        limit: int | None = Query(None, ge=1),
        cursor: str | None = None,
        source: str | None = at_position,
        filters: dict[str, str] = with_filters,
    ) -> Response:
        """States whose search fields hold every word of `q` (case-insensitive), in key order."""
        if not spec.search:
            return problem(
                404, f"the service declares no search fields for {entity}", service.applied()
            )

        def run() -> tuple[Any, Offsets]:
            with image.lock:
                return image.page(
                    filters, query=q, limit=limit_of(limit), after=cursor
                ), service.applied()

        page, offsets = await run_in_threadpool(run)
        return _json(page_body(page, offsets, source), 200, offsets)

    @app.get(f"/{entity}/by/{{index}}/{{value}}", tags=[entity])
    async def by_index(index: str, value: str, source: str | None = at_position) -> Response:
        """The states whose declared index field equals `value`."""
        if not image.has_index(index):
            guess = closest(index, spec.indexes)
            return problem(
                404,
                f"no index '{index}'"
                + (f" (did you mean '{guess}'?)" if guess else "")
                + f": indexes are {', '.join(spec.indexes) or 'none'}",
                service.applied(),
            )
        with image.lock:
            found = image.by_index(index, value)
            offsets = service.applied()
        body = {
            "items": [state for _key, state in found],
            "keys": [key for key, _state in found],
            "position": _position_body(offsets, source),
        }
        return _json(body, 200, offsets)

    @app.get(f"/{entity}", tags=[entity])
    async def listing(
        limit: int | None = Query(None, ge=1),
        cursor: str | None = Query(None, description="next_cursor of the previous page"),
        source: str | None = at_position,
        filters: dict[str, str] = with_filters,
    ) -> Response:
        """States in key order, `limit` at a time; any other parameter filters on a declared
        field (`?status=active`, `?category.id=3`)."""

        def run() -> tuple[Any, Offsets]:
            with image.lock:
                return image.page(filters, limit=limit_of(limit), after=cursor), service.applied()

        page, offsets = await run_in_threadpool(run)
        return _json(page_body(page, offsets, source), 200, offsets)

    @app.get(f"/{entity}/{{key}}", tags=[entity])
    async def by_key(key: str, source: str | None = at_position) -> Response:
        """One state by its key (the record key: `42`, or `[3,"B"]` for a composite key)."""
        status, body, offsets = key_response(service, key, source)
        return Response(
            body,
            status_code=status,
            media_type="application/json",
            headers={POSITION_HEADER: format_offsets(offsets)},
        )

    if service.history is not None and service.raw_kafka is not None:
        from seam.services.history_http import router
        from seam.services.history_index import read_raw_with
        from seam.streams.decode import decode

        # Raw change records are shown as sent (no column types: those need the source
        # database, which a service does not reach).
        raw_reader = read_raw_with(service.raw_kafka, decode)
        app.include_router(
            router(service.history, raw_reader=raw_reader, prefix=f"/{entity}/history")
        )
    app.include_router(parity_router(service))
    if service.commands is not None:
        from seam.services.commands_http import add_routes

        add_routes(app, service, service.commands)
    return app

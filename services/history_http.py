"""The history queries over HTTP: a FastAPI router a service app mounts.

    app.include_router(router(index, raw_reader=read_raw_with(kafka, decode)))

    GET /history/{key}/timeline                      every event of the key, with provenance
    GET /history/{key}/as-of?at=TIME                 the state as of a source time
    GET /history/{key}/as-of?position=POS            ... or a source log position (LSN,
                                                     binlog file:pos[:row], GTID)
    GET /history/{key}/why/{field}[?at=|position=]   the event and raw change behind a value

Answers are the JSON of `seam.services.history_index` results. An unknown key is 404; a
bad time, position or field 400 (`{"detail": message, "hint": fix}`). The router only reads
the index: whoever mounts it keeps the index current (`HistoryIndex.catch_up`, e.g. from a
background task). The handlers are plain functions, which FastAPI runs in its thread pool;
the index gives each thread a connection of its own.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from seam.errors import SeamError
from seam.services.history_index import (
    HistoryIndex,
    KeyNotFoundError,
    RawReader,
    as_json,
    parse_time,
)
from seam.services.history_positions import parse_position


def _fail(exc: SeamError) -> HTTPException:
    status = 404 if isinstance(exc, KeyNotFoundError) else 400
    return HTTPException(status, detail={"detail": exc.message, "hint": exc.hint})


def _cut(at: str | None, position: str | None) -> dict[str, Any]:
    if at is not None and position is not None:
        raise SeamError("at and position both given", hint="give one of them")
    return {
        "at": parse_time(at) if at is not None else None,
        "position": parse_position(position) if position is not None else None,
    }


def router(
    index: HistoryIndex, *, raw_reader: RawReader | None = None, prefix: str = "/history"
) -> APIRouter:
    """The history endpoints of `index` under `prefix`; `why` shows the raw change records
    `raw_reader` reads (none without one)."""
    api = APIRouter(prefix=prefix, tags=["history"])

    @api.get("/{key}/timeline", summary="Every event of a key, oldest first, with provenance")
    def timeline(key: str) -> Any:
        try:
            return as_json(index.timeline(key))
        except SeamError as exc:
            raise _fail(exc) from None

    @api.get("/{key}/as-of", summary="A key's state as of a source time or position")
    def as_of(key: str, at: str | None = None, position: str | None = None) -> Any:
        try:
            return as_json(index.as_of(key, **_cut(at, position)))
        except SeamError as exc:
            raise _fail(exc) from None

    @api.get("/{key}/why/{field}", summary="The event and raw change that set a field's value")
    def why(key: str, field: str, at: str | None = None, position: str | None = None) -> Any:
        try:
            found = index.why(key, field, raw_reader=raw_reader, **_cut(at, position))
        except SeamError as exc:
            raise _fail(exc) from None
        return as_json(found)

    return api


__all__ = ["router"]

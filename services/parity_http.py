"""Digests of the memory image for the parity check (`seam migrate parity`): a router the
service app mounts.

    POST /_parity/digest   {"after": POSITION, "wait_ms": N,
                            "ranges": [[lo, hi], ...], "rows_up_to": N, "keys": [KEY, ...]}

Waits like `?after=` (latest-topic offsets, or a legacy source position) at most `wait_ms`
(capped by the service file), then answers, as of one moment of the image:

    {"position": {"offsets": {...}}, "count": <keys in the image>,
     "ranges": [{"count": n, "digest": "<16 hex>", "rows": {key: state}}, ...],
     "keys": {key: state or null}}

A range is [lo, hi): keys from `lo` (inclusive) up to `hi` (exclusive) in the image's key
order (`seam.services.image.order_key`), null for open; its digest is
`seam.migration.digest`'s, and `rows` (the states) is there when the range holds at most
`rows_up_to` keys. So a check that agrees moves a few digests, and one that differs bisects
to the rows that do.
"""

from __future__ import annotations

import bisect
import threading
import time
from typing import Any

import orjson
from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field

from seam.migration.digest import canonical_json, combine, row_hash
from seam.services.image import order_key
from seam.services.position import (
    PositionError,
    SourcePosition,
    format_offsets,
    parse_after,
)
from seam.services.runtime import Service


class DigestRequest(BaseModel):
    after: str | None = None
    wait_ms: int | None = Field(None, ge=0)
    ranges: list[tuple[str | None, str | None]] = Field(default_factory=list)
    rows_up_to: int = Field(0, ge=0)
    keys: list[str] = Field(default_factory=list)


def _answer(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def router(service: Service) -> APIRouter:
    spec = service.spec
    image = service.image
    api = APIRouter(tags=["parity"])
    # Each key's row hash with the stored value it was computed from: a value the image has
    # not replaced since (the same immutable object) is not decompressed, parsed and hashed
    # again, so a second check of an unchanged image costs lookups, not hashing.
    hashes: dict[str, tuple[bytes, int]] = {}
    hashes_lock = threading.Lock()

    def hash_of(key: str, stored: bytes) -> int:
        found = hashes.get(key)
        if found is not None and found[0] is stored:
            return found[1]
        value = row_hash(key, canonical_json(image.json(stored)))
        hashes[key] = (stored, value)
        return value

    async def reach(after: str, wait_ms: int | None) -> Response | None:
        """Wait until the image has applied `after`; an error response when it cannot."""
        try:
            target = parse_after(after)
        except PositionError as exc:
            return _answer({"detail": f"{exc.message} ({exc.hint})"}, 400)
        wait = min(spec.wait_ms if wait_ms is None else wait_ms, spec.max_wait_ms)
        deadline = time.monotonic() + wait / 1000
        if isinstance(target, SourcePosition):
            ends = await service.wait_source(target, deadline)
            if ends is None:
                return _answer(
                    {"detail": f"the transform has not published {target.text} within {wait} ms"},
                    504,
                )
            target = ends
        if not await service.wait_offsets(target, deadline):
            return _answer(
                {
                    "detail": f"the image has not applied {format_offsets(target)} within "
                    f"{wait} ms (it has applied {format_offsets(service.applied())})"
                },
                504,
            )
        return None

    def compute(request: DigestRequest) -> dict[str, Any]:
        # Under the lock only what is cheap: the keys of each range and their stored values
        # (immutable bytes); hashing them happens after, off the loader's way.
        with image.lock:
            order = image.keys_in_order()
            cuts = []
            for lo, hi in request.ranges:
                start = 0 if lo is None else bisect.bisect_left(order, order_key(lo), key=order_key)
                stop = (
                    len(order)
                    if hi is None
                    else bisect.bisect_left(order, order_key(hi), key=order_key)
                )
                cuts.append(
                    [(k, v) for k in order[start:stop] if (v := image.stored(k)) is not None]
                )
            wanted = {k: image.stored(k) for k in request.keys}
            offsets = dict(service.applied())
            total = len(image)
        ranges = []
        with hashes_lock:
            if len(hashes) > 2 * total:  # keys the image no longer holds
                hashes.clear()
            for pairs in cuts:
                entry: dict[str, Any] = {
                    "count": len(pairs),
                    "digest": f"{combine(hash_of(k, v) for k, v in pairs):016x}",
                }
                if len(pairs) <= request.rows_up_to:
                    entry["rows"] = {k: orjson.loads(image.json(v)) for k, v in pairs}
                ranges.append(entry)
        return {
            "position": {"offsets": {str(p): o for p, o in sorted(offsets.items())}},
            "count": total,
            "ranges": ranges,
            "keys": {
                k: None if v is None else orjson.loads(image.json(v)) for k, v in wanted.items()
            },
        }

    @api.post("/_parity/digest")
    async def digest(request: DigestRequest) -> Response:
        """Digests of key ranges (and states of small ranges and of named keys), once the
        image has applied `after`: what `seam migrate parity` compares."""
        if request.after is not None:
            error = await reach(request.after, request.wait_ms)
            if error is not None:
                return error
        return _answer(await run_in_threadpool(compute, request))

    return api


__all__ = ["DigestRequest", "router"]

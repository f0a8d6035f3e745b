"""The dashboard's ASGI app: the page, the state it polls, and the actions.

    GET  /            the page (one HTML file, no asset from outside: it works offline)
    GET  /api/state   the last collection (`seam.dashboard.collect`), never a new one
    POST /api/action  {"action": "pause", "target": NAME, "mode": ..., "confirmed": true}

Actions answer 403 unless the dashboard was started with --allow-actions. A request must
carry the header `X-Seam-Dashboard: 1` and `"confirmed": true` (the page asks first): a
cross-site form can send neither, so another site cannot act through a person's browser.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any, Final

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from seam.dashboard.actions import Actions
from seam.dashboard.collect import Collector
from seam.errors import SeamError

HEADER: Final = "x-seam-dashboard"


def page_html(allow_actions: bool) -> str:
    text = files("seam.dashboard").joinpath("page.html").read_text(encoding="utf-8")
    return text.replace("__SEAM_ALLOW_ACTIONS__", json.dumps(allow_actions))


def create_app(collector: Collector, actions: Actions | None) -> Starlette:
    """`actions` None: read-only (every action is refused with 403)."""
    html = page_html(actions is not None).encode()

    async def page(request: Request) -> Response:
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    collector.meta["allow_actions"] = actions is not None

    async def state(request: Request) -> Response:
        body = await run_in_threadpool(collector.latest_body)
        return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})

    async def action(request: Request) -> Response:
        if actions is None:
            return JSONResponse(
                {
                    "error": "actions are off: this dashboard is read-only",
                    "hint": "start it with `seam dashboard --allow-actions`",
                },
                status_code=403,
            )
        if request.headers.get(HEADER) != "1":
            return JSONResponse({"error": f"missing header {HEADER}: 1"}, status_code=403)
        try:
            body: Any = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("action"), str):
            return JSONResponse({"error": "expected a JSON object with an action"}, 400)
        if body.get("confirmed") is not True:
            return JSONResponse({"error": "not confirmed", "hint": "confirm the action"}, 400)
        try:
            result = await run_in_threadpool(
                actions.run, body["action"], str(body.get("target") or ""), body
            )
        except SeamError as exc:
            return JSONResponse({"error": exc.message, "hint": exc.hint}, status_code=409)
        await run_in_threadpool(collector.refresh)  # the page shows the effect at once
        return JSONResponse(result)

    return Starlette(
        routes=[
            Route("/", page),
            Route("/api/state", state),
            Route("/api/action", action, methods=["POST"]),
        ]
    )

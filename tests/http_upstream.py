"""A small real HTTP upstream for the facade's tests and benchmark (uvicorn, raw ASGI).

    python -m tests.http_upstream PORT NAME

Every answer carries `X-Upstream: NAME`. Routes:
  GET  /items/{id}       the item as JSON (404 when absent); `Seam-Legacy-Position` when set
  PUT  /items/{id}       store the JSON body as the item
  ANY  /echo/...         what it was sent: method, path, query, headers, body
  POST /_control         {"delay_ms": N, "status": S, "position": P}: every later answer
                         waits N ms, answers S (0: normally), sends position P
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

items: dict[str, Any] = {}
control: dict[str, Any] = {"delay_ms": 0, "status": 0, "position": None}


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    method, path = scope["method"], scope["path"]
    status, answer = 200, None
    if path == "/_control":
        control.update(json.loads(body))
        answer = control
    else:
        if control["delay_ms"]:
            await asyncio.sleep(control["delay_ms"] / 1000)
        if control["status"]:
            status, answer = control["status"], {"error": "told to fail"}
        elif path.startswith("/echo"):
            answer = {
                "method": method,
                "path": path,
                "query": scope["query_string"].decode(),
                "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
                "body": body.decode(),
            }
        elif path.startswith("/items/"):
            key = path.split("/")[2]
            if method == "PUT":
                items[key] = json.loads(body)
                answer = items[key]
            elif key in items:
                answer = items[key]
            else:
                status, answer = 404, {"error": f"no item {key}"}
        else:
            status, answer = 404, {"error": "no such path"}
    headers = [
        (b"content-type", b"application/json"),
        (b"x-upstream", sys.argv[2].encode()),
    ]
    if control["position"]:
        headers.append((b"seam-legacy-position", control["position"].encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(answer).encode()})


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", lifespan="off")

"""A stand-in legacy app for the facade's shadow tests: products straight from the legacy
database (the catalog's own app is built elsewhere), as a legacy app shapes them.

    python -m tests.db_upstream PORT DATABASE_URL

  GET  /products/{id}, /lagging/products/{id}   {"prod_id", "prod_name", "sku"} (404: none)
  POST /_control   {"corrupt": id}: that product's name is answered wrong (a planted bug)
"""

from __future__ import annotations

import json
import sys
from typing import Any

from sqlalchemy import text

from seam.connectors.engine import make_engine

engine = make_engine(sys.argv[2])
control: dict[str, Any] = {"corrupt": None}


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path = scope["path"]
    status, answer = 200, None
    if path == "/_control":
        control.update(json.loads(body))
        answer = control
    else:
        key = path.rstrip("/").rsplit("/", 1)[-1]
        with engine.connect() as conn:
            row = (
                conn.execute(
                    text("SELECT prod_id, prod_name, sku FROM products WHERE prod_id = :id"),
                    {"id": int(key)},
                )
                .mappings()
                .one_or_none()
            )
        if row is None:
            status, answer = 404, {"error": f"no product {key}"}
        else:
            answer = dict(row)
            if str(control["corrupt"]) == key:
                answer["prod_name"] += " (legacy typo)"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(answer).encode()})


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", lifespan="off")

"""The workload's driver over HTTP: the legacy app's endpoints (`app.py`) in place of SQL.

Each operation is one request, so one transaction of the app: `commit` and `rollback` have
nothing left to do. Writes are sent with `Seam-Legacy-Trace: 1`, so the app answers with
what it wrote, which the workload records as it records its own SQL writes.
"""

from __future__ import annotations

import re
from typing import Any, Final
from urllib.parse import urlsplit

import requests

from seam.errors import ConfigError, SeamError
from seam.legacy_db.app import POSITION_HEADER, TRACE_HEADER
from seam.legacy_db.writes import NewProduct, RowChange, Written

TIMEOUT_S: Final = 30
# kind -> (method, path under /products/<id>) of the update endpoints
_ENDPOINTS: Final = {
    "price_change": ("POST", "/price"),
    "rename": ("POST", "/rename"),
    "recategorize": ("POST", "/category"),
    "discontinue": ("POST", "/discontinue"),
    "soft_delete": ("POST", "/delist"),
    "hard_delete": ("DELETE", ""),
}


class AppError(SeamError):
    """The legacy app could not be reached or refused a request."""


def check_app_url(url: str) -> str:
    """`url` if it is an http(s) URL of the app; a clear error otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"--app-url: expected the legacy app's URL like http://127.0.0.1:8790, got {url!r}",
            hint="start the app with `seam legacy app` and pass the URL it prints",
        )
    return url.rstrip("/")


class AppClient:
    """The workload's `_Driver` over the legacy app at `url`."""

    def __init__(self, url: str, session: requests.Session | None = None) -> None:
        self.url = check_app_url(url)
        self.session = session or requests.Session()
        self.position: str | None = None  # Seam-Legacy-Position of the last answer

    def __enter__(self) -> AppClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.session.close()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {TRACE_HEADER: "1"} if method != "GET" else None
        try:
            response = self.session.request(
                method, self.url + path, json=body, headers=headers, timeout=TIMEOUT_S
            )
        except requests.RequestException as exc:
            raise AppError(
                f"cannot reach the legacy app at {self.url}: {type(exc).__name__}",
                hint="start it: seam legacy app --database ... --port ...",
            ) from None
        if response.status_code != 200:
            text = re.sub(r"<[^>]+>", " ", response.text)  # A5: errors are HTML pages
            raise AppError(
                f"the legacy app answered {method} {path} with {response.status_code}: "
                f"{' '.join(text.split())[:300]}"
            )
        self.position = response.headers.get(POSITION_HEADER)
        return response.json()

    def reference(self) -> tuple[int, int, int]:
        form = self._call("GET", "/products/new")
        return int(form["prod_id"]) - 1, int(form["categories"]), int(form["suppliers"])

    def next_id(self) -> int:
        return int(self._call("GET", "/products/new")["prod_id"])

    def lookup(self, prod_id: int) -> dict[str, Any] | None:
        product = self._call("GET", f"/products/{prod_id}")
        if "error" in product or product["is_deleted"] == "Y":  # A4; W8
            return None
        return dict(product)

    def insert(self, new: NewProduct) -> Written:
        body = {
            "sku": new.sku,
            "prod_name": new.prod_name,
            "price": new.price_txt,
            "price_cents": new.price_cents,
            "currency": new.currency,
            "cat_id": new.cat_id,
            "supp_id": new.supp_id,
            "status_cd": new.status_cd,
            "ean": new.ean,
            "descr": new.descr,
            "warehouse_cd": new.warehouse_cd,
            "qty_on_hand": new.qty_on_hand,
            "tag": new.tag,
        }
        return _written(self._call("POST", "/products", body))

    def update(self, kind: str, row: dict[str, Any], args: tuple[Any, ...]) -> Written:
        method, action = _ENDPOINTS[kind]
        body: dict[str, Any] | None = None
        if kind == "price_change":
            text, cents, currency = args
            body = {"price": text, "price_cents": cents, "currency": currency}
        elif kind == "rename":
            body = {"prod_name": args[0]}
        elif kind == "recategorize":
            body = {"cat_id": args[0]}
        elif kind == "discontinue":
            body = {"status_cd": args[0]}
        return _written(self._call(method, f"/products/{row['prod_id']}{action}", body))

    def commit(self) -> None:
        """Each request committed its own transaction."""

    def rollback(self) -> None:
        """Nothing is in flight between requests."""


def _written(answer: dict[str, Any]) -> Written:
    t = answer["_trace"]
    return Written(t["table"], t["key"], t["changes"], [RowChange(**s) for s in t["side_effects"]])

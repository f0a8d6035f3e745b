"""The catalog's legacy application: a small HTTP app over the legacy database, warts and all
(legacy_db/README.md, "The legacy app": A1..A8). Run it with `seam legacy app`.

    GET    /products/new                the blank "new product" form: the next number, ...
    GET    /products/<id>               one product (even a soft-deleted one)
    GET    /products?page=1&per_page=20 live products in number order
    GET    /products/search?q=text      case-sensitive LIKE on the name
    POST   /products                    create         {sku, prod_name, price, cat_id, ...}
    POST   /products/<id>/rename        {prod_name}
    POST   /products/<id>/price         {price and/or price_cents[, currency]}
    POST   /products/<id>/category      {cat_id}
    POST   /products/<id>/discontinue   {[status_cd]}
    POST   /products/<id>/delist        soft delete (is_deleted = 'Y')
    DELETE /products/<id>               hard delete, with its prices, stock and tags

Every write runs the function of `writes.py` the workload runs. Every answer carries the
header `Seam-Legacy-Position`: the database's log position after the request's transaction
(`lsn:X/Y` or `binlog:<file>:<pos>`), the upper bound of what the answer reflects, for the
facade to wait for on the new side. A write sent with `Seam-Legacy-Trace: 1` also gets
what it wrote, as the workload records it (`_trace`: table, key, changes, side effects):
how `seam legacy workload --via http` records its operations.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from seam.connectors.engine import log_position, make_engine, translate_errors
from seam.errors import SeamError
from seam.legacy_db import writes
from seam.legacy_db.generator import WAREHOUSES
from seam.legacy_db.models import products
from seam.legacy_db.rules import MAX_INT, Unfixable, parse_price_text
from seam.legacy_db.writes import NewProduct, Written, json_value

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine, RowMapping
    from sqlalchemy.sql.elements import ColumnElement

POSITION_HEADER: Final = "Seam-Legacy-Position"
TRACE_HEADER: Final = "Seam-Legacy-Trace"
PAGE_SIZE: Final = 20
MAX_PAGE_SIZE: Final = 100
SEARCH_LIMIT: Final = 50
# A3: what the old UI showed for a product never updated (MySQL's zero date).
NEVER: Final = "0000-00-00 00:00:00"
STATUS_CODES: Final = frozenset("AaDdXx")
# Column widths (legacy_db/models.py): a longer value is refused, as the database would.
_WIDTH: Final = {"sku": 32, "prod_name": 200, "ean": 20, "tag": 40}


class BadRequestError(SeamError):
    """A request the app refuses: answered 400 with the message (A5)."""


class NotFoundError(SeamError):
    """A write to a product that is not there (or not live): answered 404 (A5)."""


# --- the warts of the answers (pure) --------------------------------------------------


def created_text(value: dt.datetime | None) -> str | None:
    """A3: created_at as the old German UI printed it, dd.mm.yyyy HH:MM:SS."""
    return None if value is None else value.strftime("%d.%m.%Y %H:%M:%S")


def updated_text(value: dt.datetime | None) -> str:
    """A3: updated_at as the 2015 code printed it, yyyy-mm-dd HH:MM:SS; never: all zeros."""
    return NEVER if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def legacy_product(row: Mapping[str, Any] | RowMapping) -> dict[str, Any]:
    """A1/A2: a product as the app answers it: the column names, the values as stored."""
    return {
        "prod_id": row["prod_id"],
        "sku": row["sku"],
        "prod_name": row["prod_name"],
        "price_txt": row["price_txt"],
        "price_cents": row["price_cents"],
        "cat_id": row["cat_id"],
        "supp_id": row["supp_id"],
        "status_cd": row["status_cd"],
        "is_deleted": row["is_deleted"],
        "ean": row["ean"],
        "descr": row["descr"],
        "created_at": created_text(row["created_at"]),
        "updated_at": updated_text(row["updated_at"]),
    }


def error_page(status: int, message: str) -> str:
    """A5: an error as the old framework showed it, an HTML page."""
    title = {400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}.get(status, "Error")
    return (
        f"<html><head><title>{status} {title}</title></head><body>"
        f"<h1>{title}</h1><p>{html.escape(message)}</p></body></html>\n"
    )


def trace(written: Written) -> dict[str, Any]:
    """What a write wrote, as JSON holds it (as the workload's log writes it)."""
    plain: dict[str, Any] = json.loads(
        json.dumps(asdict(written), default=json_value, ensure_ascii=False)
    )
    return plain


# --- request validation (pure) --------------------------------------------------------


def _fields(body: Any, allowed: set[str], required: set[str]) -> dict[str, Any]:
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise BadRequestError("the body must be a JSON object", hint='send {"field": value, ...}')
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequestError(
            f"unknown field(s) {', '.join(unknown)}", hint=f"known: {', '.join(sorted(allowed))}"
        )
    missing = sorted(required - {k for k, v in body.items() if v is not None})
    if missing:
        raise BadRequestError(f"missing field(s) {', '.join(missing)}")
    return body


def _text(body: Mapping[str, Any], name: str, *, blank: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequestError(f"{name}: expected text, got {type(value).__name__}")
    if not blank and not value.strip():
        raise BadRequestError(f"{name}: must not be blank")
    if "\x00" in value or not _encodable(value):
        # PostgreSQL cannot store NUL, neither database a lone surrogate: refused here, so
        # both databases refuse alike and with a 400 rather than a database error.
        raise BadRequestError(f"{name}: holds a NUL character or an unpaired surrogate")
    width = _WIDTH.get(name)
    if width is not None and len(value) > width:
        raise BadRequestError(f"{name}: at most {width} characters, got {len(value)}")
    return value  # A2: kept as given, whitespace and all


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _int(body: Mapping[str, Any], name: str, low: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if type(value) is not int:
        raise BadRequestError(f"{name}: expected a whole number, got {value!r}")
    if not low <= value <= MAX_INT:
        raise BadRequestError(f"{name}: expected {low}..{MAX_INT}, got {value}")
    return value


def parse_price(text: str) -> int:
    """The admin UI's price text (W1) -> cents; refused if it names no amount."""
    try:
        amount = parse_price_text(text)
    except Unfixable as exc:
        raise BadRequestError(f"price: {exc}", hint="write it like 12.50 or 12,50") from None
    if amount is None:
        raise BadRequestError("price: must not be blank", hint="write it like 12.50 or 12,50")
    return int(amount * 100)


def price_fields(fields: Mapping[str, Any]) -> tuple[str, int]:
    """(price_txt, price_cents) from `price` (the old UI's text, W1) and `price_cents` (the
    2015 field, W2): the cents given win, and a text given with them must agree (it may be
    '', as the app stored it); the text alone gives the cents."""
    text = _text(fields, "price", blank=True)
    cents = _int(fields, "price_cents", 0)
    if cents is None:
        if text is None:
            raise BadRequestError("missing field(s) price", hint='e.g. {"price": "12,50"}')
        return text, parse_price(text)
    if text is None or not text.strip():
        return text or "", cents
    if parse_price(text) != cents:
        raise BadRequestError(
            f"price {text!r} and price_cents {cents} disagree", hint="send one of them"
        )
    return text, cents


def _currency(body: Mapping[str, Any]) -> str:
    value = _text(body, "currency")
    if value is None:
        return "EUR"
    if value.upper() != "EUR":
        raise BadRequestError(f"currency: the catalog sells in EUR only, got {value!r}")
    return value  # W13: the case as typed


def parse_new_product(body: Any) -> NewProduct:
    fields = _fields(
        body,
        {
            "sku",
            "prod_name",
            "price",
            "price_cents",
            "currency",
            "cat_id",
            "supp_id",
            "status_cd",
            "ean",
            "descr",
            "warehouse_cd",
            "qty_on_hand",
            "tag",
        },
        {"sku", "prod_name"},
    )
    price_txt, price_cents = price_fields(fields)
    status = fields.get("status_cd", "A")
    if not isinstance(status, str) or status not in STATUS_CODES:
        raise BadRequestError(f"status_cd: expected one of A, D, X (or lower case), got {status!r}")
    warehouse = fields.get("warehouse_cd", WAREHOUSES[0])
    if warehouse not in WAREHOUSES:
        raise BadRequestError(
            f"warehouse_cd: expected one of {', '.join(WAREHOUSES)}, got {warehouse!r}"
        )
    qty = fields.get("qty_on_hand", 0)
    if type(qty) is not int or abs(qty) > MAX_INT:
        raise BadRequestError(f"qty_on_hand: expected a whole number, got {qty!r}")
    return NewProduct(
        sku=_text(fields, "sku") or "",
        prod_name=_text(fields, "prod_name") or "",
        price_txt=price_txt,
        price_cents=price_cents,
        cat_id=_int(fields, "cat_id", 1),  # W10: not checked against categories
        supp_id=_int(fields, "supp_id", 0) or 0,  # W6: 0 is no supplier
        status_cd=status,
        ean=_text(fields, "ean", blank=True),
        descr=_text(fields, "descr", blank=True),
        warehouse_cd=warehouse,
        qty_on_hand=qty,
        tag=_text(fields, "tag"),
        currency=_currency(fields),
    )


def parse_rename(body: Any) -> tuple[str]:
    fields = _fields(body, {"prod_name"}, {"prod_name"})
    return (_text(fields, "prod_name") or "",)


def parse_reprice(body: Any) -> tuple[str, int, str]:
    fields = _fields(body, {"price", "price_cents", "currency"}, set())
    return (*price_fields(fields), _currency(fields))


def parse_recategorize(body: Any) -> tuple[int]:
    fields = _fields(body, {"cat_id"}, {"cat_id"})
    cat_id = _int(fields, "cat_id", 1)
    assert cat_id is not None  # required
    return (cat_id,)


def parse_discontinue(body: Any) -> tuple[str]:
    fields = _fields(body, {"status_cd"}, set())
    code = fields.get("status_cd", "D")
    if code not in ("D", "d"):
        raise BadRequestError(f"status_cd: expected D or d, got {code!r}")
    return (code,)


def parse_nothing(body: Any) -> tuple[()]:
    _fields(body, set(), set())
    return ()


def page_arguments(page: str | None, per_page: str | None) -> tuple[int, int]:
    """A6: ?page= (from 1) and ?per_page= (1..100, default 20)."""

    def number(name: str, text: str | None, default: int, high: int) -> int:
        if text is None:
            return default
        value = _whole(text)
        if value is None or not 1 <= value <= high:
            raise BadRequestError(f"{name}: expected a number 1..{high}, got {text!r}")
        return value

    return number("page", page, 1, MAX_INT), number("per_page", per_page, PAGE_SIZE, MAX_PAGE_SIZE)


def product_id(text: str) -> int:
    value = _whole(text)
    if value is None or not 1 <= value <= MAX_INT:
        raise BadRequestError(f"product number: expected 1..{MAX_INT}, got {text!r}")
    return value


def _whole(text: str) -> int | None:
    """ASCII digits, at most 10 of them (INTEGER's width), as a number; None otherwise."""
    if not (text.isascii() and text.isdigit() and len(text) <= 10):
        return None
    return int(text)


# --- the app --------------------------------------------------------------------------

# kind -> (write function, request parser); the kinds are the workload's.
UPDATES: Final[dict[str, tuple[Callable[..., Written], Callable[[Any], tuple[Any, ...]]]]] = {
    "rename": (writes.rename, parse_rename),
    "price_change": (writes.price_change, parse_reprice),
    "recategorize": (writes.recategorize, parse_recategorize),
    "discontinue": (writes.discontinue, parse_discontinue),
    "soft_delete": (writes.soft_delete, parse_nothing),
    "hard_delete": (writes.hard_delete, parse_nothing),
}
# POST /products/<id>/<action> -> kind
ACTIONS: Final = {
    "rename": "rename",
    "price": "price_change",
    "category": "recategorize",
    "discontinue": "discontinue",
    "delist": "soft_delete",
}


class LegacyApp:
    """The requests' work on the database: one transaction each."""

    def __init__(self, url: str, engine: Engine) -> None:
        self.url = url
        self.engine = engine
        # Keys are MAX+1 (A7): two creates at once would pick the same one, and the second
        # would fail on the primary key. One create at a time in this process; another
        # writer of the same database (a workload by SQL) can still collide, as it could.
        self.creating = threading.Lock()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with translate_errors(self.url), self.engine.connect() as conn:
            yield conn

    def _position(self, conn: Connection) -> str:
        # After the transaction ended: on MySQL/MariaDB the log position is read from a
        # fresh snapshot, so it is at or past what the answer reflects.
        position = log_position(conn)
        conn.rollback()
        return position

    def read(self, work: Callable[[Connection], Any]) -> tuple[Any, str]:
        with self.transaction() as conn:
            result = work(conn)
            conn.rollback()
            return result, self._position(conn)

    def form(self, conn: Connection) -> dict[str, Any]:
        n_cat, n_supp = writes.reference_counts(conn)
        return {
            "prod_id": writes.next_product_id(conn),  # A7: MAX+1 now, not reserved
            "status_cd": "A",
            "warehouse_cd": WAREHOUSES[0],
            "categories": n_cat,
            "suppliers": n_supp,
        }

    def get(self, conn: Connection, prod_id: int) -> dict[str, Any] | None:
        from sqlalchemy import select

        row = conn.execute(select(products).where(products.c.prod_id == prod_id)).mappings().first()
        return None if row is None else legacy_product(row)

    def page(self, conn: Connection, page: int, per_page: int) -> dict[str, Any]:
        from sqlalchemy import func, or_, select

        live = or_(products.c.is_deleted.is_(None), products.c.is_deleted != "Y")
        rows = (
            conn.execute(
                select(products)
                .where(live)
                .order_by(products.c.prod_id)
                .limit(per_page)
                .offset((page - 1) * per_page)
            )
            .mappings()
            .all()
        )
        total = conn.execute(select(func.count()).select_from(products).where(live)).scalar_one()
        return {
            "products": [legacy_product(r) for r in rows],
            "page": page,
            "per_page": per_page,
            "total": str(total),  # A6: a count as text
        }

    def search(self, conn: Connection, q: str) -> dict[str, Any]:
        from sqlalchemy import select

        name: ColumnElement[Any] = products.c.prod_name
        if conn.dialect.name == "mysql":
            name = name.collate("utf8mb4_bin")  # A8: case-sensitive on both databases
        rows = (
            conn.execute(
                select(products)
                .where(name.like(f"%{q}%"))  # A8: % and _ in q are wildcards
                .order_by(products.c.prod_id)
                .limit(SEARCH_LIMIT)
            )
            .mappings()
            .all()
        )
        found = [legacy_product(r) for r in rows]
        return {"query": q, "count": len(found), "products": found}

    def create(self, new: NewProduct) -> tuple[dict[str, Any], Written, str]:
        with self.creating, self.transaction() as conn:
            written = writes.insert_product(conn, new)
            product = self.get(conn, written.key["prod_id"])
            conn.commit()
            assert product is not None
            return product, written, self._position(conn)

    def update(
        self, kind: str, prod_id: int, args: tuple[Any, ...]
    ) -> tuple[dict[str, Any] | None, Written, str]:
        write = UPDATES[kind][0]
        with self.transaction() as conn:
            row = writes.live_product(conn, prod_id)
            if row is None:
                conn.rollback()
                raise NotFoundError(f"no live product {prod_id}")
            written = write(conn, row, *args)
            product = self.get(conn, prod_id)
            conn.commit()
            return product, written, self._position(conn)


def _json(body: Any, position: str | None = None) -> Response:
    headers = {POSITION_HEADER: position} if position is not None else None
    return Response(
        json.dumps(body, ensure_ascii=False), media_type="application/json", headers=headers
    )


def _html(status: int, message: str) -> HTMLResponse:
    return HTMLResponse(error_page(status, message), status_code=status)


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise BadRequestError("the body is not JSON", hint="send a JSON object") from None


def create_app(url: str, engine: Engine | None = None) -> FastAPI:
    """The legacy app over the catalog database at `url`."""
    from fastapi.concurrency import run_in_threadpool

    legacy = LegacyApp(url, engine or make_engine(url, pool_size=4, max_overflow=4))
    api = FastAPI(title="legacy catalog", docs_url=None, redoc_url=None, openapi_url=None)

    @api.exception_handler(BadRequestError)
    async def bad_request(request: Request, exc: BadRequestError) -> Response:
        hint = f" ({exc.hint})" if exc.hint else ""
        return _html(400, exc.message + hint)

    @api.exception_handler(NotFoundError)
    async def not_found(request: Request, exc: NotFoundError) -> Response:
        return _html(404, exc.message)

    @api.exception_handler(SeamError)
    async def failed(request: Request, exc: SeamError) -> Response:
        # A database that fails (unreachable, refused): a 503 page with the masked reason.
        return _html(503, exc.message)

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _html(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return _html(400, f"{request.method} {request.url.path}: bad request")

    def traced(request: Request, body: dict[str, Any], written: Written) -> dict[str, Any]:
        if request.headers.get(TRACE_HEADER) == "1":
            return {**body, "_trace": trace(written)}
        return body

    @api.get("/products/new")
    async def form() -> Response:
        body, position = await run_in_threadpool(legacy.read, legacy.form)
        return _json(body, position)

    @api.get("/products/search")
    async def search(q: str | None = None) -> Response:
        if q is None or q == "":
            raise BadRequestError("q: give the text to search for", hint="/products/search?q=Tea")
        query = _text({"q": q}, "q", blank=True) or ""
        body, position = await run_in_threadpool(legacy.read, lambda c: legacy.search(c, query))
        return _json(body, position)

    @api.get("/products")
    async def listing(page: str | None = None, per_page: str | None = None) -> Response:
        number, size = page_arguments(page, per_page)
        body, position = await run_in_threadpool(
            legacy.read, lambda c: legacy.page(c, number, size)
        )
        return _json(body, position)

    @api.get("/products/{prod_id}")
    async def get(prod_id: str) -> Response:
        key = product_id(prod_id)
        product, position = await run_in_threadpool(legacy.read, lambda c: legacy.get(c, key))
        if product is None:
            # A4: the old app said "not found" with a 200 and an error body.
            return _json({"error": f"Product {key} not found"}, position)
        return _json(product, position)

    @api.post("/products")
    async def create(request: Request) -> Response:
        new = parse_new_product(await _body(request))
        product, written, position = await run_in_threadpool(legacy.create, new)
        return _json(traced(request, product, written), position)

    @api.post("/products/{prod_id}/{action}")
    async def update(request: Request, prod_id: str, action: str) -> Response:
        kind = ACTIONS.get(action)
        if kind is None:
            raise StarletteHTTPException(404, f"no action {action!r}")
        key = product_id(prod_id)
        args = UPDATES[kind][1](await _body(request))
        product, written, position = await run_in_threadpool(legacy.update, kind, key, args)
        return _json(traced(request, product or {}, written), position)

    @api.delete("/products/{prod_id}")
    async def delete(request: Request, prod_id: str) -> Response:
        key = product_id(prod_id)
        parse_nothing(await _body(request))
        _, written, position = await run_in_threadpool(legacy.update, "hard_delete", key, ())
        return _json(traced(request, {"deleted": 1, "prod_id": key}, written), position)

    return api


# --- serving --------------------------------------------------------------------------


def check_database(url: str) -> None:
    """Refuse to start over a database without the catalog (one clear error, not 503s)."""
    from sqlalchemy import inspect

    from seam.connectors.engine import connect
    from seam.errors import DatabaseError
    from seam.secrets import mask_url

    with connect(url) as conn:
        if "products" not in inspect(conn).get_table_names():
            raise DatabaseError(
                f"{mask_url(url)} has no products table", hint="seed it first: seam legacy seed"
            )


def serve(url: str, host: str, port: int, *, started: Callable[[str], None] | None = None) -> None:
    """Serve the legacy app over `url` on host:port until SIGTERM or Ctrl-C (requests in
    flight get a grace period to finish), as `seam serve` runs a service."""
    from seam.http_server import check_port, run_asgi

    check_database(url)
    check_port(host, port)
    run_asgi(create_app(url), host, port, on_started=started)

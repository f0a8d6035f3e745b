"""How fast seam decodes Debezium change events on one core (CPU time of this process,
so other load on the machine does not count against it).

    .venv/bin/python benchmarks/decode_benchmark.py [--events 100000] [--repeat 3]

Prints events/s of `seam.streams.decode.decode` for typical catalog rows (a products table
of 13 columns, the shape Debezium's PostgreSQL connector sends: creates and updates, JSON
without schemas and with schemas, decimals as strings and as precise bytes), and the ratio
against plain `orjson.loads` on the same records in the same process: the floor any JSON
decoder pays.

    --kafka-targets TOPIC [--key K]  also time `seam streams tail --from beginning --limit 10`
                                     and `seam streams history TOPIC K` on a live topic
                                     (see benchmarks/stream_benchmark.py to make one).
"""

from __future__ import annotations

import argparse
import base64
import sys
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import orjson

from seam.changes import RawRecord, TableRef
from seam.streams.decode import decode
from seam.streams.types import ColumnType, Encoding, TableTypes

SOURCE = {
    "version": "3.5.0.Final",
    "connector": "postgresql",
    "name": "catalog",
    "ts_ms": 1795392671811,
    "snapshot": "false",
    "db": "catalog",
    "sequence": '["26687864","26687920"]',
    "ts_us": 1795392671811674,
    "ts_ns": 1795392671811674000,
    "schema": "public",
    "table": "products",
    "txId": 751,
    "lsn": 26687920,
    "xmin": None,
}


def _decimal_b64(value: Decimal, scale: int) -> str:
    unscaled = int(value.scaleb(scale))
    size = max(1, (unscaled.bit_length() + 8) // 8)
    return base64.b64encode(unscaled.to_bytes(size, "big", signed=True)).decode()


def product_row(i: int, precise: bool) -> dict[str, Any]:
    price = Decimal(i % 10_000) / 100 + Decimal("0.99")
    return {
        "id": i,
        "sku": f"SKU-{i:08d}",
        "name": f"Product number {i} with a reasonably long name",
        "price": _decimal_b64(price, 2) if precise else str(price),
        "category_id": i % 97,
        "supplier_id": i % 13,
        "description": "A plain description of a catalog product, typical length." * 2,
        "listed": 19783 + i % 365,
        "updated_at": 1709287872123456 + i,
        "created_at": "2024-03-01T08:11:12.500000Z",
        "active": i % 5 != 0,
        "stock": i % 1000,
        "ean": f"{4000000000000 + i}",
    }


ROW_SCHEMA = {
    "type": "struct",
    "optional": True,
    "name": "catalog.public.products.Value",
    "fields": [
        {"type": "int32", "optional": False, "field": "id"},
        {"type": "string", "optional": False, "field": "sku"},
        {"type": "string", "optional": True, "field": "name"},
        {
            "type": "bytes",
            "optional": True,
            "name": "org.apache.kafka.connect.data.Decimal",
            "version": 1,
            "parameters": {"scale": "2", "connect.decimal.precision": "10"},
            "field": "price",
        },
        {"type": "int32", "optional": True, "field": "category_id"},
        {"type": "int32", "optional": True, "field": "supplier_id"},
        {"type": "string", "optional": True, "field": "description"},
        {"type": "int32", "optional": True, "name": "io.debezium.time.Date", "field": "listed"},
        {
            "type": "int64",
            "optional": True,
            "name": "io.debezium.time.MicroTimestamp",
            "field": "updated_at",
        },
        {
            "type": "string",
            "optional": True,
            "name": "io.debezium.time.ZonedTimestamp",
            "field": "created_at",
        },
        {"type": "boolean", "optional": True, "field": "active"},
        {"type": "int32", "optional": True, "field": "stock"},
        {"type": "string", "optional": True, "field": "ean"},
    ],
}


# The products table's column types as `seam.connectors.columns` reads them from PostgreSQL.
PRODUCT_TYPES = {
    "id": ColumnType("int", "int4"),
    "sku": ColumnType("text", "text"),
    "name": ColumnType("text", "text"),
    "price": ColumnType("decimal", "numeric", scale=2),
    "category_id": ColumnType("int", "int4"),
    "supplier_id": ColumnType("int", "int4"),
    "description": ColumnType("text", "text"),
    "listed": ColumnType("date", "date"),
    "updated_at": ColumnType("timestamp", "timestamp", precision=6),
    "created_at": ColumnType("timestamptz", "timestamptz", precision=6),
    "active": ColumnType("bool", "bool"),
    "stock": ColumnType("int", "int4"),
    "ean": ColumnType("text", "text"),
}


# What a pipeline that reads only the price (a price-change pipeline) types.
READ_COLUMNS = ("price",)


def product_types(precise: bool) -> TableTypes:
    encoding = Encoding(decimal="precise" if precise else "string")
    return TableTypes({TableRef("public", "products"): PRODUCT_TYPES}, encoding)


def make_records(n: int, *, with_schema: bool, precise: bool) -> list[RawRecord]:
    records = []
    for i in range(n):
        update = i % 3 == 0
        after = product_row(i, precise)
        before = None
        if update:
            before = dict(after, stock=after["stock"] + 1)
        payload = {
            "before": before,
            "after": after,
            "source": SOURCE,
            "transaction": None,
            "op": "u" if update else "c",
            "ts_ms": 1795392672132,
            "ts_us": 1795392672132983,
            "ts_ns": 1795392672132983585,
        }
        key: Any = {"id": i}
        if with_schema:
            envelope_schema = {
                "type": "struct",
                "name": "catalog.public.products.Envelope",
                "fields": [
                    {**ROW_SCHEMA, "field": "before"},
                    {**ROW_SCHEMA, "field": "after"},
                    {"type": "struct", "field": "source", "fields": []},
                    {"type": "string", "field": "op"},
                ],
            }
            payload = {"schema": envelope_schema, "payload": payload}
            key = {
                "schema": {
                    "type": "struct",
                    "fields": [{"type": "int32", "optional": False, "field": "id"}],
                    "name": "catalog.public.products.Key",
                },
                "payload": key,
            }
        records.append(
            RawRecord(
                key=orjson.dumps(key),
                value=orjson.dumps(payload),
                topic="catalog.public.products",
                partition=0,
                offset=i,
                timestamp_ms=1795392672132,
            )
        )
    return records


def best_rate(
    fn: Callable[[Sequence[RawRecord]], None], records: Sequence[RawRecord], repeat: int
) -> float:
    best = 0.0
    for _ in range(repeat):
        start = time.process_time()
        fn(records)
        elapsed = time.process_time() - start
        best = max(best, len(records) / elapsed)
    return best


def run_decode(records: Sequence[RawRecord]) -> None:
    for record in records:
        decode(record)


def typed_decoder(types: TableTypes) -> Callable[[Sequence[RawRecord]], None]:
    def run(records: Sequence[RawRecord]) -> None:
        for record in records:
            decode(record, types)

    return run


def run_orjson(records: Sequence[RawRecord]) -> None:
    loads = orjson.loads
    for record in records:
        loads(record.key)  # type: ignore[arg-type]
        loads(record.value)  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    print(f"decode benchmark: {args.events} events per case, best of {args.repeat}, one core")
    print(f"{'case':<34} {'bytes/ev':>8} {'decode ev/s':>12} {'orjson ev/s':>12} {'ratio':>6}")
    target_ok = True
    for label, with_schema, precise in (
        ("json, no schema, string decimals", False, False),
        ("json, no schema, precise decimals", False, True),
        ("json + schema, precise decimals", True, True),
    ):
        records = make_records(args.events, with_schema=with_schema, precise=precise)
        size = sum(len(r.value or b"") + len(r.key or b"") for r in records) // len(records)
        decode_rate = best_rate(run_decode, records, args.repeat)
        orjson_rate = best_rate(run_orjson, records, args.repeat)
        print(
            f"{label:<34} {size:>8} {decode_rate:>12,.0f} {orjson_rate:>12,.0f} "
            f"{decode_rate / orjson_rate:>6.2f}"
        )
        if not with_schema and decode_rate < 100_000:
            target_ok = False
    print("target >= 100,000 events/s without schema:", "met" if target_ok else "NOT met")

    # Typed values from the column types (seam.streams.types): the same bare records, decoded
    # without types (today's decoder), with every column typed, and typed only in the
    # columns a pipeline reads (`TableTypes.only`: here the price, the others that need a
    # conversion become NOT_READ), interleaved runs so drift hits all alike. CPU times vary
    # on a shared machine: connectors/README.md has valgrind instruction counts too.
    print(f"{'typed (same records)':<34} {'us/ev':>8} {'extra CPU':>12}")
    budget_ok = True
    for label, precise in (("no schema, string decimals", False), ("no schema, precise", True)):
        records = make_records(args.events, with_schema=False, precise=precise)
        every = product_types(precise)
        cases = {
            "today's decoder": run_decode,
            "every column typed": typed_decoder(every),
            "only the column read (price)": typed_decoder(every.only(READ_COLUMNS)),
        }
        best = dict.fromkeys(cases, 0.0)
        for _ in range(args.repeat):
            for case, fn in cases.items():
                best[case] = max(best[case], best_rate(fn, records, 1))
        plain = best["today's decoder"]
        print(f"{label}")
        for case, rate in best.items():
            extra = plain / rate - 1
            if case != "today's decoder":
                budget_ok = budget_ok and extra <= 0.15
            print(f"  {case:<32} {1e6 / rate:>8.2f} {extra:>11.1%}")
    print("typed decoding <= 15% more CPU per record:", "met" if budget_ok else "NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())

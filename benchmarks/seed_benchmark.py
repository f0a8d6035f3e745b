"""How fast `seam legacy seed` loads the catalog.

    .venv/bin/python benchmarks/seed_benchmark.py                      # 1M products into PostgreSQL
    .venv/bin/python benchmarks/seed_benchmark.py --database mariadb --products 200000
    .venv/bin/python benchmarks/seed_benchmark.py --generate-only      # the generator alone

By default it seeds a scratch database (created next to the one the settings name, dropped
afterwards), so the `catalog` database is never touched. Prints one line per run with
rows/s and products/s; the target is 1,000,000 products in <= 60 s into PostgreSQL.
"""

from __future__ import annotations

import argparse
import time
import uuid

from seam.connectors.engine import create_database, drop_database, with_database
from seam.legacy_db import generator
from seam.legacy_db.seed import seed
from seam.settings import load_settings


def generate_only(products: int, seed_value: int) -> None:
    size = generator.CatalogSize.for_products(products)
    started = time.perf_counter()
    rows = size.categories + size.suppliers
    nbytes = 0
    for chunk in generator.product_chunks(seed_value, size):
        for lines in (chunk.products, chunk.product_prices, chunk.stock_levels, chunk.product_tags):
            rows += len(lines)
            nbytes += len("".join(lines).encode("utf-8"))
    seconds = time.perf_counter() - started
    print(
        f"generate  products={products:,} rows={rows:,} bytes={nbytes / 1e6:.0f}MB "
        f"seconds={seconds:.2f} rows/s={rows / seconds:,.0f} products/s={products / seconds:,.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--database", default="postgres", help="settings name or URL (default: postgres)"
    )
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--in-place",
        action="store_true",
        help="seed the database itself (with --drop), not a scratch copy",
    )
    parser.add_argument("--generate-only", action="store_true", help="measure the generator alone")
    args = parser.parse_args()

    if args.generate_only:
        for _ in range(args.repeat):
            generate_only(args.products, args.seed)
        return

    url = load_settings().database_url(args.database)
    if not args.in_place:
        url = with_database(url, f"seam_bench_{uuid.uuid4().hex[:8]}")
        create_database(url)
    try:
        for _ in range(args.repeat):
            report = seed(url, products=args.products, seed=args.seed, drop=True)
            data = report.as_dict()
            print(
                f"seed {report.flavour:8s} products={report.products:,} rows={report.total_rows:,} "
                f"seconds={report.seconds:.2f} rows/s={data['rows_per_second']:,} "
                f"products/s={data['products_per_second']:,}"
            )
    finally:
        if not args.in_place:
            drop_database(url)


if __name__ == "__main__":
    main()

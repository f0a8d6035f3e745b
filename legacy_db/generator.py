"""Deterministic legacy catalog data, warts included (see `seam.legacy_db.models`).

Pure functions, no I/O. The small reference tables come out as tuples of *wire values*
(str, int or None; times as 'YYYY-MM-DD HH:MM:SS' text), the product tables directly as
tab-separated lines (see `seam.legacy_db.tsv`), all in the column order of
`models.COLUMNS`. Both bulk loaders (PostgreSQL COPY, MariaDB LOAD DATA) read the very same
bytes: the same seed and size give identical data on both databases.

The generator runs in chunks of products. Each chunk has its own random stream seeded from
(seed, chunk number): only the product_prices key counter runs across chunks.
"""

from __future__ import annotations

import datetime as dt
import random
from bisect import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

Value = str | int | None
Row = tuple[Value, ...]

CHUNK: Final = 5_000
WAREHOUSES: Final = ("BER", "HAM", "MUC", "VIE")
CENTS_MIGRATION: Final = dt.datetime(2015, 6, 1)  # W2: price_cents exists from here on
FLAG_MIGRATION: Final = dt.datetime(2012, 1, 1)  # W8: is_deleted exists from here on
_EPOCH: Final = dt.datetime(2009, 1, 1)
_SPAN_S: Final = int((dt.datetime(2024, 12, 31) - _EPOCH).total_seconds())
# Every generated time is at or before this, so seeded data never depends on the clock.
GENERATED_UNTIL: Final = dt.datetime(2025, 6, 30)
_UNTIL_S: Final = int((GENERATED_UNTIL - _EPOCH).total_seconds())


# Formatting a datetime per value is the generator's biggest cost: look the parts up instead.
_DAYS: Final = tuple(
    (_EPOCH + dt.timedelta(days=d)).strftime("%Y-%m-%d ") for d in range(_UNTIL_S // 86_400 + 40)
)
_TODS: Final = tuple(f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86_400))
NULL: Final = "\\N"
_TSV_ESCAPES: Final = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def mojibake(text: str) -> str:
    """What a UTF-8 string looks like after being read as cp1252/latin-1 once (W9)."""
    return text.encode("utf-8").decode("cp1252")


def fmt_time(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _time(seconds: int) -> str:
    return _DAYS[seconds // 86_400] + _TODS[seconds % 86_400]


# --- vocabularies -----------------------------------------------------------------------
_ACCENTED: Final = (
    "Café",
    "Grüntee",
    "Crème",
    "Müsli",
    "Jalapeño",
    "Smørrebrød",
    "Würze",
    "Käse",
    "Pâté",
    "Brötchen",
    "Sauté",
)
_NOUNS: Final = (
    "Kettle",
    "Teapot",
    "Mug",
    "Grinder",
    "Tumbler",
    "Jar",
    "Canister",
    "Spoon",
    "Whisk",
    "Board",
    "Tray",
    "Bowl",
    "Filter",
    "Press",
    "Scale",
    "Knife",
    "Pan",
    "Sieve",
    "Bottle",
    "Box",
)
_ADJECTIVES: Final = (
    "Classic",
    "Deluxe",
    "Compact",
    "Organic",
    "Rustic",
    "Nordic",
    "Vintage",
    "Premium",
    "Eco",
    "Mini",
    "Family",
    "Pro",
)
_VARIANTS: Final = ("", "", " 250ml", " 500ml", " 1L", " small", " large", " XL", " (2-pack)")
_SENTENCES: Final = (
    "Dishwasher safe.",
    "Made in Portugal.",
    "Hand wash only.",
    "Includes gift box.",
    "Limited edition.",
    "Food-safe coating.",
    "Ideal für Café und Küche.",
    "Spare parts available.",
    "Not for induction hobs.",
    "Ships in 3-5 days.",
)
_SKU_PREFIXES: Final = ("AB", "CF", "GT", "HX", "KL", "MN", "PR", "TW")
_PRICE_SHAPES: Final = (
    # W1 shapes, weighted by how often the admin UI produced them
    ("plain", 40),  # 12.50
    ("comma_space", 15),  # ' 12,50'
    ("dollar", 10),  # $12.50
    ("eur_suffix", 10),  # 12.5 EUR
    ("eur_prefix", 5),  # EUR 12,50
    ("euro_sign", 8),  # 12,50 €
    ("thousands_de", 5),  # 1.234,50
    ("thousands_en", 5),  # 1,234.50
    ("empty", 2),  # ''
)
_PRICE_SHAPE_NAMES: Final = tuple(s for s, _ in _PRICE_SHAPES)
_PRICE_SHAPE_CUM: Final = tuple(
    sum(w for _, w in _PRICE_SHAPES[: i + 1]) for i in range(len(_PRICE_SHAPES))
)
_STATUS: Final = ("A", "a", "D", "d", "X", "x")
_STATUS_CUM: Final = (80, 83, 93, 95, 99, 100)
_TAGS: Final = ("bio", "Bio", " bio", "vegan", "Vegan ", "sale", "SALE", "new", "gift", "eco")
_SURNAMES: Final = ("Müller", "Schmidt", "Weiß", "Öztürk", "Larsen", "Dubois", "Rossi", "Novák")
_LEGAL: Final = ("GmbH", "AG", "KG", "Ltd.", "S.A.", "s.r.o.", "& Söhne")
_COUNTRIES: Final = ("DE", "Germany", "deutschland", "AT", "Österreich", "FR", "CZ", "", None)
_CATEGORY_WORDS: Final = (
    "Kitchen",
    "Tea",
    "Coffee",
    "Baking",
    "Storage",
    "Tableware",
    "Outdoor",
    "Gifts",
    "Crème & Käse",
    "Brötchen & Co",
    "Cookware",
    "Cutlery",
)


def format_price_text(cents: int, shape: str) -> str:
    """`cents` written the way the legacy admin UI did (W1)."""
    euros, rest = divmod(cents, 100)
    if shape == "plain":
        return f"{euros}.{rest:02d}"
    if shape == "comma_space":
        return f" {euros},{rest:02d}"
    if shape == "dollar":
        return f"${euros}.{rest:02d}"
    if shape == "eur_suffix":
        # '12.5 EUR': trailing zero dropped, as float formatting did
        return f"{f'{euros}.{rest:02d}'.rstrip('0').rstrip('.')} EUR"
    if shape == "eur_prefix":
        return f"EUR {euros},{rest:02d}"
    if shape == "euro_sign":
        return f"{euros},{rest:02d} €"
    if shape == "thousands_de":
        return f"{euros:,}".replace(",", ".") + f",{rest:02d}"
    if shape == "thousands_en":
        return f"{euros:,}.{rest:02d}"
    if shape == "empty":
        return ""
    raise ValueError(f"unknown price shape {shape!r}")


def price_shape(rng: random.Random) -> str:
    return _PRICE_SHAPE_NAMES[bisect(_PRICE_SHAPE_CUM, rng.random() * _PRICE_SHAPE_CUM[-1])]


def warty_sku(rng: random.Random, canonical: str) -> str:
    """W3: the canonical upper-case SKU with stray whitespace or case now and then."""
    r = rng.random()
    if r < 0.70:
        return canonical
    if r < 0.80:
        return canonical.lower()
    if r < 0.88:
        return " " + canonical
    if r < 0.95:
        return canonical + " "
    return canonical[0] + canonical[1:].lower()


def canonical_sku(prod_id: int, rng: random.Random) -> str:
    return f"{rng.choice(_SKU_PREFIXES)}-{prod_id:07d}"


def product_name(rng: random.Random) -> str:
    """A product name; one in ten has an accented word, a third of those as mojibake (W9)."""
    name = f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}{rng.choice(_VARIANTS)}"
    if rng.random() < 0.10:
        word = rng.choice(_ACCENTED)
        if rng.random() < 0.33:
            word = mojibake(word)
        name = f"{word} {name}"
    return name


def status_code(rng: random.Random) -> str:
    return _STATUS[bisect(_STATUS_CUM, rng.random() * 100)]


def description(rng: random.Random) -> str | None:
    """W5/W9: NULL, '' or free text, sometimes with CRLF, double spaces or mojibake."""
    r = rng.random()
    if r < 0.20:
        return None
    if r < 0.35:
        return ""
    text = " ".join(rng.sample(_SENTENCES, rng.randint(1, 3)))
    r = rng.random()
    if r < 0.05:
        text = text.replace(". ", ".\r\n")
    elif r < 0.10:
        text = text.replace(" ", "  ", 1)
    elif r < 0.15:
        text = mojibake(text)
    return text


def price_cents(rng: random.Random) -> int:
    # Mostly cheap, a long tail up to a few thousand euros (so thousands separators occur);
    # whole ten-cent steps, a third of them shop prices ending in 9.
    cents = 100 + int(rng.random() ** 5 * 250_000) // 10 * 10
    return cents - 1 if rng.random() < 0.3 else cents


@dataclass(frozen=True)
class CatalogSize:
    """How many rows of the reference tables go with a number of products."""

    products: int
    categories: int
    suppliers: int

    @classmethod
    def for_products(cls, products: int) -> CatalogSize:
        if products < 0:
            raise ValueError(f"products must be >= 0, got {products}")
        return cls(
            products=products,
            categories=min(500, max(20, products // 2000)),
            suppliers=min(2000, max(10, products // 500)),
        )


def _rng(seed: int, part: str, chunk: int = 0) -> random.Random:
    # String seeds hash with SHA-512: stable across runs and Python processes.
    return random.Random(f"seam-catalog:{seed}:{part}:{chunk}")


def category_rows(seed: int, size: CatalogSize) -> list[Row]:
    rng = _rng(seed, "categories")
    top = max(1, size.categories // 10)
    rows: list[Row] = []
    for cat_id in range(1, size.categories + 1):
        parent = 0 if cat_id <= top else rng.randint(1, top)  # W6
        name = f"{rng.choice(_CATEGORY_WORDS)} {cat_id}"
        if rng.random() < 0.05:
            name = mojibake(name)
        descr = rng.choice((None, "", "", f"All about {name.lower()}"))
        rows.append((cat_id, parent, name, descr, _time(rng.randrange(_SPAN_S // 4))))
    return rows


def supplier_rows(seed: int, size: CatalogSize) -> list[Row]:
    rng = _rng(seed, "suppliers")
    rows: list[Row] = []
    for supp_id in range(1, size.suppliers + 1):
        surname = rng.choice(_SURNAMES)
        name = f"{surname} {rng.choice(_LEGAL)}"
        if rng.random() < 0.05:
            name = mojibake(name)
        r = rng.random()
        email = (
            None
            if r < 0.1
            else ""
            if r < 0.25
            else f" sales{supp_id}@example.com"
            if r < 0.3
            else f"sales{supp_id}@example.com"
        )
        phone = rng.choice((None, "", f"+49 30 {rng.randint(100000, 999999)}"))
        rows.append(
            (
                supp_id,
                name,
                email,
                phone,
                rng.choice(_COUNTRIES),
                _time(rng.randrange(_SPAN_S // 2)),
            )
        )
    return rows


@dataclass
class ProductChunk:
    """One chunk of products and everything hanging off them, as TSV lines (see `tsv`).

    The hot path writes text directly: building tuples and joining them again costs more
    than generating the data. `tsv.decode_line` turns a line back into values.
    """

    products: list[str]
    product_prices: list[str]
    stock_levels: list[str]
    product_tags: list[str]


def product_chunks(seed: int, size: CatalogSize) -> Iterator[ProductChunk]:
    """The products in chunks of `CHUNK`, each with its price history, stock levels and tags.

    The chunk size is part of the data's identity (each chunk has its own random stream),
    so it is a constant, not a parameter.
    """
    chunk = CHUNK
    price_id = 1
    n_cat, n_supp = size.categories, size.suppliers
    days, tods = _DAYS, _TODS
    escape = _TSV_ESCAPES
    shapes, shape_cum, shape_total = _PRICE_SHAPE_NAMES, _PRICE_SHAPE_CUM, _PRICE_SHAPE_CUM[-1]
    status, status_cum = _STATUS, _STATUS_CUM
    cents_migration_s = int((CENTS_MIGRATION - _EPOCH).total_seconds())
    flag_migration_s = int((FLAG_MIGRATION - _EPOCH).total_seconds())
    n_tags_pool = len(_TAGS)
    for chunk_no, start in enumerate(range(1, size.products + 1, chunk)):
        rng = _rng(seed, "products", chunk_no)
        rand = rng.random
        products: list[str] = []
        prices: list[str] = []
        stock: list[str] = []
        tags: list[str] = []
        for prod_id in range(start, min(start + chunk, size.products + 1)):
            created_s = int(rand() * _SPAN_S)
            created_txt = days[created_s // 86_400] + tods[created_s % 86_400]
            if rand() < 0.7:
                upd_s = created_s + int(rand() * (_UNTIL_S - created_s))
                updated_txt = days[upd_s // 86_400] + tods[upd_s % 86_400]
            else:
                updated_txt = NULL
            cents = price_cents(rng)
            price_txt = format_price_text(cents, shapes[bisect(shape_cum, rand() * shape_total)])
            cents_txt = (
                NULL if created_s < cents_migration_s and updated_txt is NULL else str(cents)
            )  # W2
            r = rand()
            cat_txt = (
                NULL
                if r < 0.003
                else str(n_cat + 1 + int(rand() * 50))
                if r < 0.008
                else str(1 + int(rand() * n_cat))
            )  # W10
            supp_id = 0 if rand() < 0.03 else 1 + int(rand() * n_supp)  # W6
            r = rand()
            deleted = "Y" if r < 0.05 else "N"
            if created_s < flag_migration_s and r > 0.5:
                deleted = NULL  # W8
            r = rand()
            ean = (
                NULL
                if r < 0.15
                else ""
                if r < 0.40
                else str(1_000_000_000_000 + int(rand() * 9e12))
            )
            descr = description(rng)
            descr_txt = NULL if descr is None else descr.translate(escape)
            products.append(
                f"{prod_id}\t{warty_sku(rng, canonical_sku(prod_id, rng))}\t{product_name(rng)}"
                f"\t{price_txt}\t{cents_txt}\t{cat_txt}\t{supp_id}"
                f"\t{status[bisect(status_cum, rand() * 100)]}\t{deleted}\t{ean}\t{descr_txt}"
                f"\t{created_txt}\t{updated_txt}\n"
            )
            # Price history: older prices first, the current one open-ended (valid_to NULL).
            r = rand()
            history = 0 if r < 0.7 else 1 if r < 0.9 else 2
            since_s = created_s
            for _ in range(history):
                until_s = min(_UNTIL_S, since_s + 1 + int(rand() * 17_280_000))
                old = max(99, cents + int(rand() * 400 - 200) * 10)
                prices.append(
                    f"{price_id}\t{prod_id}\t{old // 100}.{old % 100:02d}"
                    f"\t{'eur' if rand() < 0.1 else 'EUR'}"
                    f"\t{days[since_s // 86_400]}{tods[since_s % 86_400]}"
                    f"\t{days[until_s // 86_400]}{tods[until_s % 86_400]}\n"
                )
                price_id += 1
                since_s = until_s
            prices.append(
                f"{price_id}\t{prod_id}\t{cents // 100}.{cents % 100:02d}"
                f"\t{'eur' if rand() < 0.1 else 'EUR'}"
                f"\t{days[since_s // 86_400]}{tods[since_s % 86_400]}\t{NULL}\n"
            )
            price_id += 1
            # Stock in one warehouse, sometimes two; oversold now and then (W14).
            first = int(rand() * 4)
            for wh in (first, (first + 1) % 4) if rand() < 0.2 else (first,):
                qty = -1 - int(rand() * 5) if rand() < 0.02 else int(rand() * 500)
                if rand() < 0.1:
                    counted = NULL
                else:
                    c_s = created_s + int(rand() * 2_592_000)
                    counted = days[c_s // 86_400] + tods[c_s % 86_400]
                stock.append(f"{prod_id}\t{WAREHOUSES[wh]}\t{qty}\t{counted}\n")
            # Tags (W11): none to three, duplicates possible.
            r = rand()
            n_tags = 0 if r < 0.4 else 1 if r < 0.75 else 2 if r < 0.92 else 3
            for _ in range(n_tags):
                tags.append(f"{prod_id}\t{_TAGS[int(rand() * n_tags_pool)]}\n")
            if n_tags and rand() < 0.05:
                tags.append(tags[-1])
        yield ProductChunk(products, prices, stock, tags)

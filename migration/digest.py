"""Row and key-range digests the parity check compares instead of rows.

Every side of a parity check (the legacy table through the cleaning, the latest topic, a
service's store) hashes each entity state the same way: the key text and the state's JSON in
canonical form (keys sorted), so two sides that hold equal states hold equal hashes whatever
the byte order of their JSON. A range's digest is the sum of its rows' hashes modulo 2**64:
order-free, so a side computes it in whatever order it holds its rows, and a range split in
two has the two halves' digests as parts (what bisection needs).

Key ranges go by `seam.services.image.order_key` (whole numbers by value, text as text, a
composite key part by part), the order the memory image keeps its keys in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any, Final

import orjson

MASK: Final = (1 << 64) - 1


def canonical(state: Any) -> bytes:
    """A state's JSON with its keys sorted: equal states, equal bytes."""
    return orjson.dumps(state, option=orjson.OPT_SORT_KEYS)


def canonical_json(value: bytes) -> bytes:
    """The canonical form of a state given as JSON text (as a topic or an image holds it)."""
    return canonical(orjson.loads(value))


def row_hash(key: str, canon: bytes) -> int:
    """The 64-bit hash of one entity state (`canon`: its canonical JSON) under its key."""
    digest = hashlib.blake2b(key.encode(), digest_size=8)
    digest.update(b"\x00")
    digest.update(canon)
    return int.from_bytes(digest.digest(), "big")


def combine(hashes: Iterable[int]) -> int:
    """The digest of a range: its rows' hashes summed modulo 2**64."""
    return sum(hashes) & MASK


__all__ = ["MASK", "canonical", "canonical_json", "combine", "row_hash"]

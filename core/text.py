"""Small text helpers for messages people read."""

from __future__ import annotations


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """`1 event`, `2 events`, `0 events`; `nouns` for an irregular plural (`entries`)."""
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"

"""Checks that a mapping read from a user's file holds only keys we know."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from seam.errors import ConfigError


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate most like `name`, or None when nothing is close."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_keys(found: Iterable[str], valid: Iterable[str]) -> list[tuple[str, str]]:
    """Each key of `found` that is not valid, with how to name it in an error:
    `'key' (did you mean 'closest'?)`, or `'key'` when nothing valid is close."""
    valid_keys = list(valid)
    out = []
    for key in found:
        if key in valid_keys:
            continue
        guess = closest(key, valid_keys)
        out.append((key, f"'{key}'" + (f" (did you mean '{guess}'?)" if guess else "")))
    return out


def check_known_keys(found: Mapping[str, Any], valid: Iterable[str], where: str) -> None:
    """Raise a ConfigError naming every unknown key in `found`, with the closest valid one."""
    valid_keys = sorted(valid)
    unknown = unknown_keys(found, valid_keys)
    if not unknown:
        return
    raise ConfigError(
        f"{where}: unknown key{'s' if len(unknown) > 1 else ''} "
        + ", ".join(text for _key, text in unknown),
        hint=f"valid keys: {', '.join(valid_keys)}",
    )

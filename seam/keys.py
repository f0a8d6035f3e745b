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


def check_known_keys(found: Mapping[str, Any], valid: Iterable[str], where: str) -> None:
    """Raise a ConfigError naming every unknown key in `found`, with the closest valid one."""
    valid_keys = sorted(valid)
    unknown = [key for key in found if key not in valid_keys]
    if not unknown:
        return
    parts = []
    for key in unknown:
        guess = closest(key, valid_keys)
        parts.append(f"'{key}'" + (f" (did you mean '{guess}'?)" if guess else ""))
    raise ConfigError(
        f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(parts)}",
        hint=f"valid keys: {', '.join(valid_keys)}",
    )

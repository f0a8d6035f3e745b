"""Fixtures shared by every tier.

Integration tests run against the real local stack. By default the session starts it once
(in a private directory, on the default ports) and stops it at the end. Set
SEAM_TEST_STACK=reuse to run against endpoints that are already up (the settings from
SEAM_CONFIG / SEAM_* variables, or the local stack's defaults).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from seam.settings import Settings, load_settings


@pytest.fixture(scope="session")
def stack() -> Iterator[Settings]:
    """Settings whose endpoints reach a running local stack."""
    if os.environ.get("SEAM_TEST_STACK") == "reuse":
        yield load_settings()
        return
    from seam.stack.local import LocalStack

    settings = load_settings()
    local = LocalStack(settings.stack)
    started = local.up()
    try:
        yield settings
    finally:
        local.down(only=started)


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Factory of names no other test uses: topics, groups, connectors, tables."""

    def make(prefix: str) -> str:
        return f"{prefix}_{uuid.uuid4().hex[:10]}"

    return make

"""State shared by every command: how to build the settings, built once and on demand."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from seam.settings import Settings, load_settings


@dataclass
class CliState:
    config_file: Path | None
    overrides: Mapping[str, Mapping[str, Any]]
    _settings: Settings | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(config_file=self.config_file, overrides=self.overrides)
        return self._settings


def settings(ctx: typer.Context) -> Settings:
    """The settings for this invocation (defaults, file, environment, flags)."""
    state = ctx.find_root().obj
    if not isinstance(state, CliState):  # a sub-app invoked on its own, as in tests
        state = CliState(config_file=None, overrides={})
        ctx.find_root().obj = state
    return state.settings()

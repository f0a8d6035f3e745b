"""Debian's headless Chromium as the browser tests and the dashboard benchmark start it.

Playwright's own browser download cannot reach the network here, so Playwright drives the
system's chromium. Without the background-networking flags Chromium keeps trying Google's
hosts, which this machine refuses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

CHROMIUM: Final = Path("/usr/bin/chromium")
CHROMIUM_ARGS: Final = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

"""Each capability's migration status, read from the migration directory: what
`seam migrate status` prints and the dashboard shows (one reading of the records)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from seam.errors import SeamError
from seam.migration.cutover import last_cutover, read_parity, window_text
from seam.migration.shadow import MISMATCHES_FILE, read_mismatches, shadow_outcomes
from seam.migration.state import MigrationStore


def capability_rows(
    store: MigrationStore,
    report: dict[str, Any],
    span: timedelta,
    *,
    latest_diffs: int = 0,
) -> list[dict[str, Any]]:
    """One row per capability of a facade's status `report` (its /_seam/status body or the
    status file it records): mode, requests per side, shadow outcomes since it started and
    over `span`, the entity's last parity record and the last cutover; with `latest_diffs`,
    that many of the newest mismatches kept (both bodies and the diff)."""
    rows = []
    for name, cap in report.get("capabilities", {}).items():
        shadow = cap.get("shadow", {})
        compared = shadow.get("match", 0) + shadow.get("mismatch", 0)
        entity = cap.get("entity")
        windowed = shadow_outcomes(
            store.path(MISMATCHES_FILE), name, time.time() - span.total_seconds()
        )
        row = {
            "capability": name,
            "mode": cap.get("mode"),
            "mode_from": cap.get("mode_from"),
            "requests": cap.get("requests", {}),
            "shadow": shadow,
            "mismatch_rate": shadow.get("mismatch", 0) / compared if compared else None,
            "window": {"span": window_text(span), **windowed},
            "entity": entity,
            "parity": read_parity(store, entity) if entity else None,
            "cutover": last_cutover(store, name),
        }
        if latest_diffs:
            row["latest_mismatches"] = read_mismatches(
                store.path(MISMATCHES_FILE), name, latest_diffs
            )
        rows.append(row)
    return rows


def fetch_status(url: str, timeout: float = 5.0) -> dict[str, Any]:
    """A running facade's status (its /_seam/status)."""
    import requests

    from seam.secrets import mask_url

    target = url.rstrip("/") + "/_seam/status"
    try:
        response = requests.get(target, timeout=timeout)
        response.raise_for_status()
        report: dict[str, Any] = response.json()
        return report
    except (requests.RequestException, ValueError) as exc:
        raise SeamError(
            f"cannot read the facade's status at {mask_url(target)}: {exc}",
            hint="check the facade runs there (seam facade run ...), or leave out --facade",
        ) from None

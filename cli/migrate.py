"""`seam migrate ...`: move capabilities off the legacy system, one at a time.

Each command lives in the module of the part it drives (the facade's routes, the parity
check, cutover) and is registered on this app there, so this module only names the noun.
The records the commands share (route modes, parity results, cutover evidence) live in the
migration directory (`seam.migration.state`): `--state DIR`, else $SEAM_MIGRATION_DIR, else
./.seam/migration.
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    help="Move capabilities off the legacy system: route modes, parity, cutover, writes.",
    no_args_is_help=True,
)

STATE = typer.Option(
    None,
    "--state",
    help="The migration directory (default: $SEAM_MIGRATION_DIR, else ./.seam/migration).",
    show_default=False,
)


def state_option(value: Path | None) -> Path:
    """The migration directory a command was given, resolved as every command resolves it."""
    from seam.migration.state import migration_dir

    return migration_dir(value)

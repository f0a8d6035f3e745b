"""`seam migrate cutover CAP`: move a capability to `new` only on clean parity and a low
shadow mismatch rate over a window, and record who did it, when, and on what evidence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from seam.cli import migrate
from seam.cli.render import OUTPUT, Output, print_json


@migrate.app.command("cutover")
def cutover(
    capability: str = typer.Argument(..., help="The capability, as the routes file names it."),
    routes_file: Path | None = typer.Option(
        None,
        "--routes",
        help="The routes file (default: the capabilities the last facade run recorded).",
    ),
    window: str = typer.Option(
        "1h", "--window", help="How far back shadow comparisons count: 30m, 1h, 2d."
    ),
    max_mismatch_rate: float = typer.Option(
        0.001, "--max-mismatch-rate", min=0, max=1, help="The highest mismatch rate allowed."
    ),
    min_compared: int = typer.Option(
        100, "--min-compared", min=1, help="The fewest comparisons (match + mismatch) needed."
    ),
    state: Path | None = migrate.STATE,
    output: Output = OUTPUT,
) -> None:
    """Move CAP to the new side, only on clean parity and few shadow mismatches.

    CAP's mode becomes new if its entity's parity is clean and its shadow mismatch rate
    over the window is low enough; otherwise the command exits 1, naming each unmet
    condition. The evidence is shown either way, and kept in cutover/CAP.json on success.
    """
    from seam.cli.facade import capabilities, check_capability
    from seam.migration.cutover import CutoverRefusedError, Thresholds, cut_over, parse_window
    from seam.migration.state import MigrationStore

    thresholds = Thresholds(parse_window(window), max_mismatch_rate, min_compared)
    directory = migrate.state_option(state)
    known = capabilities(directory, routes_file)
    check_capability(capability, known)
    store = MigrationStore(directory)
    try:
        record = cut_over(store, capability, known[capability]["entity"], thresholds)
    except CutoverRefusedError as refused:
        _show(refused.evidence, output)
        raise
    evidence = {**record["evidence"], "ok": True, "thresholds": record["thresholds"]}
    if output is Output.json:
        print_json({"cutover": record, "record": str(store.path(f"cutover/{capability}.json"))})
        return
    _show(evidence, output)
    typer.echo(
        f"{capability}: {record['previous'] or 'routes file mode'} -> new, by {record['by']} "
        f"at {record['at']} (recorded in {store.path(f'cutover/{capability}.json')})"
    )


def _show(evidence: dict[str, Any], output: Output) -> None:
    if output is Output.json:
        print_json(evidence)
        return
    shadow = evidence["shadow"]
    typer.echo(
        f"shadow {shadow['since']} .. {shadow['until']}: {shadow['match']} match, "
        f"{shadow['mismatch']} mismatch, {shadow['unsettled']} unsettled, "
        f"{shadow['error']} error, {shadow['skipped']} skipped"
    )
    for condition in evidence["conditions"]:
        mark = "ok " if condition["ok"] else "NO "
        typer.echo(f"  {mark} {condition['name']}: {condition['detail']}")

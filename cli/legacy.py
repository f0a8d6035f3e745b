"""`seam legacy prepare-cdc`: ready the example's database for Debezium.

Kept here until CDC readiness becomes a toolkit command (issue 11): the example's command
plugin (`seam.legacy_db.cli`) registers it on `seam legacy`. Heavy imports happen inside
the command so `seam --help` stays fast.
"""

from __future__ import annotations

import typer

from seam.cli.context import settings
from seam.cli.render import OUTPUT, Output

_DATABASE_HELP = (
    "Database: a name from the settings (postgres, mariadb, or one under \\[databases]) or a URL "
    "(postgresql://... or mysql://...)."
)


def prepare_cdc(
    ctx: typer.Context,
    database: str = typer.Option("postgres", "--database", "-d", help=_DATABASE_HELP),
    cdc_user: str = typer.Option("seam_cdc", "--cdc-user", help="Name of the CDC user to ensure."),
    password_env: str = typer.Option(
        "SEAM_CDC_PASSWORD",
        "--cdc-password-env",
        help="Environment variable holding the CDC user's password (unset: the local "
        "default 'seam-cdc-local', for databases on this machine only).",
    ),
    output: Output = OUTPUT,
) -> None:
    """Make the database ready for Debezium (user, grants, publication, ...); idempotent."""
    from seam.cli.render import print_json, print_mapping, print_table
    from seam.legacy_db.cdc import cdc_password
    from seam.legacy_db.cdc import prepare_cdc as run_prepare

    url = settings(ctx).database_url(database)
    report = run_prepare(url, cdc_user=cdc_user, password=cdc_password(url, password_env))
    if output is Output.json:
        print_json(report.as_dict())
        return
    print_table(
        "CDC setup",
        ["status", "what", "detail"],
        [(a.status, a.what, a.detail) for a in report.actions],
    )
    print_table(
        "Server settings (checked, not changed)",
        ["setting", "value", "expected", "ok"],
        [(c.setting, c.value, c.expected, "yes" if c.ok else "NO") for c in report.checks],
    )
    typer.echo("Connector settings to use:")
    print_mapping(report.connector_hints)
    if not report.server_ready:
        typer.secho(
            "warning: the server is not ready for CDC (see above); a connector would fail when its task starts",
            err=True,
            fg=typer.colors.YELLOW,
        )

"""The model of CDC readiness: requirements as checks, each with how to fix it.

A `Check` is one requirement of a connector on its database, as found: it passes or fails
(with a severity), says why it matters, and how to fix it. Where seam can fix it, the fix is
a list of `Statement`s that `seam connectors prepare` shows and then runs as the settings'
(administrative) database user. Where it cannot (a server restart, a superuser, a change to
the spec), `manual` says so and the check carries no statements: prepare reports it instead
of applying half of it.

A `Target` is what a connector needs of its database, derived from its rendered spec (the
tables it captures, its user, publication, slot, helper tables), never from any particular
schema: the same checks serve every database.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final, Literal

from seam.connectors.render import (
    RenderedConnector,
    captured_tables,
    database_address,
    heartbeat_table,
    qualify,
    signal_table,
)
from seam.connectors.spec import CDC_PASSWORD_ENV, SecretRef
from seam.errors import DatabaseError
from seam.secrets import MASK, Secret

if TYPE_CHECKING:
    from seam.settings import Settings

Severity = Literal["error", "warning", "info"]

# Where a statement takes the CDC user's password: filled in only when it runs.
PASSWORD: Final = "{password}"
# Why a fix is left to a person.
RESTART: Final = "needs a server restart"
SUPERUSER: Final = "needs a superuser"
SPEC_CHANGE: Final = "needs a change to the spec"
OPERATOR: Final = "the operator's decision"


@dataclass(frozen=True)
class Statement:
    """One SQL statement of a fix. `sql` may hold `PASSWORD`; the secret is substituted,
    quoted by the driver, only when the statement runs, and shows as a mask everywhere else."""

    sql: str
    secret: Secret | None = None

    def shown(self) -> str:
        return self.sql.replace(PASSWORD, f"'{MASK}'")

    def to_run(self, quote: Callable[[str], str]) -> str:
        """The statement to execute; `quote` turns the secret into a driver-quoted literal."""
        if self.secret is None:
            return self.sql
        return self.sql.replace(PASSWORD, quote(self.secret.reveal()))


@dataclass(frozen=True)
class Check:
    """One requirement as found. `statements` are what prepare runs when it fails; `manual`
    says why seam leaves it to a person. `fix` is the human-readable remedy."""

    name: str
    ok: bool
    detail: str
    severity: Severity = "error"
    why: str | None = None
    fix: str | None = None
    statements: tuple[Statement, ...] = ()
    manual: str | None = None
    fixed: bool = False
    # The check whose fix must run first (grants to a CDC user that prepare creates).
    requires: str | None = None

    @property
    def fixable(self) -> bool:
        """Failing, worth fixing (not merely informational), and seam has the statements."""
        return not self.ok and self.severity != "info" and bool(self.statements)

    @property
    def blocked(self) -> bool:
        """Failing as an error, and prepare cannot fix it."""
        return not self.ok and self.severity == "error" and not self.statements

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "ok": self.ok,
            "severity": self.severity,
            "detail": self.detail,
            "why": self.why,
            "fix": self.fix,
            "statements": [s.shown() for s in self.statements],
            "manual": self.manual,
            "fixed": self.fixed,
        }


def sql_check(
    name: str,
    ok: bool,
    detail: str,
    statements: tuple[Statement, ...],
    *,
    severity: Severity = "error",
    why: str | None = None,
    requires: str | None = None,
) -> Check:
    """A check seam can fix: its `fix` text is the statements prepare would run."""
    shown = "; ".join(s.shown() for s in statements)
    return Check(
        name,
        ok,
        detail,
        severity=severity,
        why=why,
        fix=f"{shown}; (seam connectors prepare runs it)" if statements else None,
        statements=statements if not ok else (),
        requires=requires,
    )


def hold_dependents(checks: list[Check]) -> list[Check]:
    """The checks with every fix that needs a fix seam cannot make (a CDC user it may not
    create) held back too, saying which: prepare applies none of it rather than a part."""
    held = {c.name for c in checks if c.manual and not c.ok}
    return [
        replace(
            c,
            statements=(),
            manual=f"needs '{c.requires}' fixed first",
            fix=f"{'; '.join(s.shown() for s in c.statements)}; once '{c.requires}' is fixed",
        )
        if c.fixable and c.requires in held
        else c
        for c in checks
    ]


def manual_check(
    name: str,
    ok: bool,
    detail: str,
    fix: str,
    *,
    manual: str,
    severity: Severity = "error",
    why: str | None = None,
) -> Check:
    """A check seam reports but leaves to a person, saying why (`manual`)."""
    return Check(
        name,
        ok,
        detail,
        severity=severity,
        why=why,
        fix=f"{fix} ({manual})",
        manual=manual if not ok else None,
    )


@dataclass
class Report:
    """The checks of one connector's database."""

    connector: str
    flavour: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> list[Check]:
        return [c for c in self.checks if not c.ok and c.severity == "error"]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if not c.ok and c.severity == "warning"]

    @property
    def fixable(self) -> list[Check]:
        return [c for c in self.checks if c.fixable]

    @property
    def blocked(self) -> list[Check]:
        return [c for c in self.checks if c.blocked]

    def summary(self) -> str:
        """One paragraph naming every failed error check and its fix."""
        parts = [
            f"{c.name}: {c.detail}" + (f" (fix: {c.fix})" if c.fix else "") for c in self.errors
        ]
        return f"connector '{self.connector}' failed preflight: " + "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "connector": self.connector,
            "flavour": self.flavour,
            "ok": self.ok,
            "checks": [c.as_dict() for c in self.checks],
        }

    def marked_fixed(self, fixed: list[Check]) -> Report:
        """This report (checked after prepare ran the `fixed` checks' statements) with each
        of those that passes now saying how it was fixed; one that still fails stays failed."""
        done = {
            c.name: replace(
                c,
                ok=True,
                fixed=True,
                detail="fixed: " + "; ".join(s.shown() for s in c.statements),
                statements=(),
            )
            for c in fixed
        }
        names = {c.name for c in self.checks}
        checks = [done[c.name] if c.ok and c.name in done else c for c in self.checks]
        # A fixed requirement may not be checked any more (a table that now exists).
        checks += [c for name, c in done.items() if name not in names]
        return Report(self.connector, self.flavour, checks)


class PreflightError(DatabaseError):
    """One or more specs failed their preflight; nothing was changed."""

    def __init__(self, reports: list[Report]) -> None:
        failed = [r for r in reports if not r.ok]
        super().__init__(
            " | ".join(r.summary() for r in failed),
            hint="fix the database (`seam connectors prepare SPEC` applies what seam can) "
            "and apply again",
        )
        self.reports = reports


@dataclass(frozen=True)
class Target:
    """What one connector needs of its database, from its rendered spec."""

    connector: str
    flavour: str  # postgres | mysql | mariadb (the spec's)
    user: str
    password: Secret
    password_source: str  # where the password comes from, for messages
    dbname: str
    tables: tuple[str, ...]  # every captured table, qualified, helper tables included
    heartbeat_table: str | None
    signal_table: str | None
    full_identity: tuple[str, ...]  # tables whose changes must carry the whole old row
    config: Mapping[str, str]  # the rendered connector config
    # The password is the local stack's well-known default (SEAM_CDC_PASSWORD unset) and the
    # database is not on this machine: seam logs in with it but never sets it.
    default_password_remote: bool = False

    @property
    def is_postgres(self) -> bool:
        return self.flavour == "postgres"

    @property
    def helper_tables(self) -> tuple[str, ...]:
        """seam's own tables (heartbeat, signals): prepare may create them."""
        return tuple(t for t in (self.heartbeat_table, self.signal_table) if t)

    @property
    def publication(self) -> str:
        return self.config.get("publication.name", "")

    @property
    def slot(self) -> str:
        return self.config.get("slot.name", "")


def target_for(
    rendered: RenderedConnector, settings: Settings, env: Mapping[str, str] | None = None
) -> Target:
    """The readiness target of a rendered connector (its password resolved from here)."""
    spec = rendered.spec
    dbname = database_address(spec, settings).dbname
    return Target(
        connector=spec.name,
        flavour=spec.flavour,
        user=spec.user,
        password=spec.password.resolve(env),
        password_source=spec.password.describe(),
        dbname=dbname,
        tables=tuple(captured_tables(spec, dbname)),
        heartbeat_table=heartbeat_table(spec, dbname),
        signal_table=signal_table(spec, dbname),
        full_identity=tuple(qualify(spec, t, dbname) for t in spec.replica_identity_full),
        config=dict(rendered.config),
        default_password_remote=default_password_remote(
            spec.password, settings.database_url(spec.database), env
        ),
    )


def default_password_remote(
    ref: SecretRef, url: str, env: Mapping[str, str] | None = None, *, local: str = CDC_PASSWORD_ENV
) -> bool:
    """The password is the local stack's default (`ref` is the env var `local`, unset) and
    the database at `url` is not on this machine: seam logs in with it but never sets it."""
    import ipaddress
    import os
    from urllib.parse import urlsplit

    if ref.kind != "env" or ref.name != local:
        return False
    if (os.environ if env is None else env).get(ref.name) is not None:
        return False
    host = urlsplit(url).hostname or "localhost"
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def login_check(target: Target, statement: str, detail: str, error: str | None) -> Check:
    """The CDC user logs in with the spec's password; the fix creates it or sets it."""
    detail = f"{detail}: {error}" if error else detail
    why = "the connector logs in with exactly these credentials"
    if target.default_password_remote:
        return manual_check(
            "login",
            error is None,
            detail,
            f"export {CDC_PASSWORD_ENV}=<the CDC user's password> (for seam and the Connect "
            "worker) and run prepare again",
            manual=f"{CDC_PASSWORD_ENV} is not set, and the local default password is only "
            "set on databases on this machine",
            why=why,
        )
    return sql_check(
        "login", error is None, detail, (Statement(statement, target.password),), why=why
    )

"""The one exception root of seam.

Every failure a user can cause or meet (bad input, an unreachable endpoint, a database not
ready for CDC) is raised as a `SeamError` whose message says what is wrong and how to fix it.
The CLI catches `SeamError` at one boundary and prints the message; anything else is a bug.
"""

from __future__ import annotations


class SeamError(Exception):
    """A failure with a message fit for the user: what is wrong, and the fix."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(SeamError):
    """Settings, spec or pipeline files that are malformed or name unknown keys."""


class PrerequisiteError(SeamError):
    """A program or package the command needs is not installed."""


class StackError(SeamError):
    """The local stack could not be started, stopped or inspected."""


class DatabaseError(SeamError):
    """A legacy database refused a connection or a statement."""

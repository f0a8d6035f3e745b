"""How the CLI asks a person.

`confirm`: a question that needs a person. Without a terminal on stdin (a script, CI, a
pipe) nobody can answer: fail at once with the flag that confirms instead of hanging or
aborting with a bare "Aborted!".
"""

from __future__ import annotations

import sys

import typer

from seam.errors import SeamError


def confirm(question: str, *, flag: str = "--yes") -> None:
    """Ask `question`; a "no" aborts (exit 1), no terminal is an error naming `flag`."""
    if not sys.stdin.isatty():
        raise SeamError(
            f"{question.rstrip('?')}: this needs a confirmation, and stdin is not a terminal",
            hint=f"pass {flag} to confirm without a prompt",
        )
    if not typer.confirm(question, default=False):
        typer.echo("nothing done", err=True)
        raise typer.Exit(1)

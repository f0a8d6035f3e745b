"""The help of `seam migrate` and `seam facade` reads as sentences: each command's summary is
one line of the docstring, because typer (rich markup) keeps a summary's hard line breaks in
the command listing, where they cut a sentence in two at the docstring's wrap point."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from seam.cli.main import app

pytestmark = pytest.mark.unit

NOUNS = ("migrate", "facade")


def commands(noun: str) -> dict[str, Any]:
    group: Any = typer.main.get_command(app)
    found: dict[str, Any] = group.commands[noun].commands
    return found


@pytest.mark.parametrize("noun", NOUNS)
def test_each_summary_is_one_sentence_on_one_line(noun: str) -> None:
    found = commands(noun)
    assert found
    for name, command in found.items():
        summary = inspect.cleandoc(command.help or "").split("\n\n")[0]
        assert summary, f"seam {noun} {name} has no help"
        assert "\n" not in summary, f"seam {noun} {name}: the summary breaks: {summary!r}"
        assert summary.endswith("."), f"seam {noun} {name}: {summary!r}"


@pytest.mark.parametrize("noun", NOUNS)
def test_the_listing_shows_each_command_on_one_row(noun: str) -> None:
    result = CliRunner().invoke(app, [noun, "--help"], env={"COLUMNS": "200"}, terminal_width=200)
    assert result.exit_code == 0, result.output
    panel = result.output.split("Commands")[1].splitlines()[1:]
    rows = [line.strip("│ ") for line in panel if line.startswith("│")]
    names = [row.split()[0] for row in rows]
    assert names == list(commands(noun)), result.output  # no continuation rows

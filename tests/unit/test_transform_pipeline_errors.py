"""What a user sees when a pipeline file or one of its stages is wrong: real files and real
stage modules in tmp_path, loaded as `seam transform check` does; every error is one message
naming the file (line:column), the stage and the cause, with a `fix:`, never a traceback."""

from __future__ import annotations

import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from seam.cli.main import main
from seam.errors import ConfigError
from seam.transforms.pipeline_file import DEFAULT_MAX_STAGE_ERRORS, load_pipeline

pytestmark = pytest.mark.unit

GOOD = """\
name: demo
group: demo-group
inputs: [demo.public.things]
stages:
  - use: decode
{stage}outputs:
  history: {{topic: demo.events}}
  latest: {{topic: demo.latest}}
  dead_letter: {{topic: demo.dead}}
"""


def pipeline(folder: Path, stage: str = "", name: str = "p.yaml") -> Path:
    """A valid pipeline file in `folder`, with `stage` (YAML lines) after decode."""
    path = folder / name
    path.write_text(GOOD.format(stage=stage))
    return path


def module_name() -> str:
    """A module name no other test used (imported modules stay in sys.modules)."""
    return f"user_stage_{uuid.uuid4().hex[:10]}"


def write_module(folder: Path, name: str, source: str) -> Path:
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


def error_of(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_pipeline(path).build()
    return info.value


def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    """Run `seam ARGS` as the console script does; returns stderr after a failed exit."""
    monkeypatch.setattr(sys, "argv", ["seam", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 1
    return capsys.readouterr().err


STAGE_CLASS = """\
class Stage:
    name = "mine"

    def process(self, item):
        return (item,)
"""

# --------------------------------------------------------------------------- the YAML


def test_every_problem_at_its_line_and_column_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            name: demo
            gruop: g
            inputs: [a.b.c]
            stages:
              - use: decod
              - mystages.make
            outputs:
              history: {topic: h, partitons: 3}
              latest: {topic: l}
              dead_letter: {topic: d}
            processing:
              batch_size: "500"
              max_stage_errors: -5
            """
        )
    )
    message = error_of(path).message
    lines = message.splitlines()
    problems = [line for line in lines if not line.startswith("  fix: ")]
    assert problems == [
        f"{path}:2:1: unknown key 'gruop' (did you mean 'group'?)",
        f"{path}:5:10: stages[0].use: unknown stage 'decod' (did you mean 'decode'?)",
        f"{path}:6:5: stages[1]: unknown stage 'mystages.make' (did you mean 'mystages:make'?)",
        f"{path}:8:23: outputs.history: unknown key 'partitons' (did you mean 'partitions'?)",
        f"{path}:12:15: processing.batch_size: expected a whole number >= 1, got '500'",
        f"{path}:13:21: processing.max_stage_errors: expected a whole number >= -1, got -5",
    ]
    # Each problem is followed by its own fix; the last one's is the hint the CLI prints.
    assert sum(line.startswith("  fix: ") for line in lines) == len(problems) - 1
    assert lines[1] == (
        "  fix: valid keys: name, group, inputs, stages, outputs, processing, schemas, own_writes, "
        "include, tables, entity, events"
    )
    assert "built-in stage (decode, clean, events, validate)" in lines[3]
    # 'gruop' was meant as 'group': no second problem saying 'group' is missing.
    assert "missing 'group'" not in message


def test_cli_prints_the_problems_and_a_fix_line_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = pipeline(tmp_path, "  - use: valdiate\n")
    err = cli(capsys, monkeypatch, "transform", "check", str(path))
    assert err.splitlines() == [
        f"error: {path}:6:10: stages[1].use: unknown stage 'valdiate' (did you mean 'validate'?)",
        "  fix: use a built-in stage (decode, clean, events, validate) or your own as package.module:callable",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the pipeline file is empty"),
        ("# nothing yet\n\n", "the pipeline file is empty (only comments)"),
        ("- use: decode\n", "expected a mapping (key: value lines), got a list"),
    ],
)
def test_an_empty_file_says_so(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    error = error_of(path)
    assert error.message.startswith(f"{path}")
    assert expected in error.message
    assert error.hint


def test_malformed_yaml_and_duplicate_keys_point_at_the_place(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("name: demo\n  group: g\n")
    error = error_of(path)
    assert error.message == f"{path}:2:8: malformed YAML: mapping values are not allowed here"
    assert error.hint
    assert "indentation" in error.hint

    path.write_text("name: demo\ngroup: a\ngroup: b\n")
    error = error_of(path)
    assert error.message == f"{path}:3:1: duplicate key 'group' (first at line 2)"
    assert error.hint == "keep one 'group' in this mapping"


def test_a_second_document_is_an_error(tmp_path: Path) -> None:
    first = pipeline(tmp_path)
    path = tmp_path / "two.yaml"
    path.write_text(first.read_text() + "---\n" + first.read_text())
    error = error_of(path)
    assert error.message.startswith(f"{path}:11:1: a second YAML document")


def test_missing_keys_name_what_to_add(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("name: demo\ngroup: g\ninputs: t\nstages: [decode]\noutputs:\n  history: {}\n")
    message = error_of(path).message
    assert f"{path}:6:12: outputs.history: missing 'topic'" in message
    assert f"{path}:6:3: outputs: missing 'latest'" in message
    assert "add 'dead_letter: {topic: <topic name>}' under outputs" in message


def test_processing_max_stage_errors(tmp_path: Path) -> None:
    path = pipeline(tmp_path)
    assert load_pipeline(path).max_stage_errors == DEFAULT_MAX_STAGE_ERRORS == 100
    path.write_text(path.read_text() + "processing:\n  max_stage_errors: -1\n")
    assert load_pipeline(path).max_stage_errors == -1


# --------------------------------------------------------------------------- the stages


def test_a_factory_that_raises(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    name = module_name()
    module = write_module(
        tmp_path,
        name,
        """\
        def make(options):
            limit = options["limit"]
            raise ValueError(f"limit must be positive, got {limit}")
        """,
    )
    path = pipeline(tmp_path, f"  - use: {name}:make\n    with: {{limit: -3}}\n")
    expected = [
        f"error: {path}:6:10: stage '{name}:make': the factory raised ValueError: limit must "
        f"be positive, got -3 (at {module}:3)",
        f"  fix: fix make() at {module} line 3, or the stage's `with:` options in {path}",
    ]
    assert cli(capsys, monkeypatch, "transform", "check", str(path)).splitlines() == expected
    # `run` builds the stages before it reaches the broker (unreachable here) or makes topics.
    run = cli(capsys, monkeypatch, "--kafka", "127.0.0.1:1", "transform", "run", str(path))
    assert run.splitlines() == expected


def test_a_stage_module_with_a_syntax_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    name = module_name()
    module = write_module(tmp_path, name, "def make(options)\n    return None\n")
    path = pipeline(tmp_path, f"  - use: {name}:make\n")
    err = cli(capsys, monkeypatch, "transform", "check", str(path))
    assert "Traceback" not in err
    assert err.splitlines() == [
        f"error: {path}:6:10: stage '{name}:make': {name} has a syntax error at "
        f"{module}:1:18: expected ':'",
        f"  fix: fix the syntax of {module} at line 1",
    ]


def test_a_stage_module_that_raises_when_imported(tmp_path: Path) -> None:
    name = module_name()
    module = write_module(tmp_path, name, "import os\n\nTOKEN = os.environ['NO_SUCH_VAR_X']\n")
    error = error_of(pipeline(tmp_path, f"  - use: {name}:make\n"))
    assert error.message.endswith(
        f"stage '{name}:make': importing {name} raised KeyError: 'NO_SUCH_VAR_X' (at {module}:3)"
    )
    assert (
        error.hint
        == f"fix the module's top-level code at {module} line 3; it runs when the pipeline starts"
    )


def test_a_stage_module_next_to_the_pipeline_file_imports_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "pipelines"
    folder.mkdir()
    name, helper = module_name(), module_name()
    write_module(folder, helper, "SUFFIX = '!'\n")
    write_module(
        folder,
        name,
        f"import {helper}\n\n{STAGE_CLASS}\n\ndef make(options):\n"
        f"    stage = Stage()\n    stage.suffix = {helper}.SUFFIX\n    return stage\n",
    )
    path = pipeline(folder, f"  - use: {name}:make\n    name: shout\n")
    monkeypatch.chdir(tmp_path)  # not the pipeline's folder
    before = list(sys.path)
    built = load_pipeline(path.relative_to(tmp_path)).build()
    assert [s.name for s in built.stages] == ["decode", "shout"]
    assert getattr(built.stages[1], "suffix", None) == "!"
    # The folder was on the import path only while the stages were built.
    assert sys.path == before


def test_a_stage_module_that_is_nowhere_names_pythonpath(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    name = module_name()
    path = pipeline(tmp_path, f"  - use: {name}.stages:make\n")
    err = cli(capsys, monkeypatch, "transform", "check", str(path))
    lines = err.splitlines()
    assert lines[0] == (
        f"error: {path}:6:10: stage '{name}.stages:make': cannot import {name}.stages: no module "
        f"named '{name}' (looked next to the pipeline file ({tmp_path}) and on the Python path)"
    )
    assert lines[1].startswith(f"  fix: put {name}.py (or its package) next to the pipeline file")
    assert "PYTHONPATH" in lines[1]
    assert len(lines) == 2


def test_a_stage_module_whose_dependency_is_missing(tmp_path: Path) -> None:
    name = module_name()
    module = write_module(tmp_path, name, "import no_such_dependency_xyz\n")
    error = error_of(pipeline(tmp_path, f"  - use: {name}:make\n"))
    assert error.message.endswith(
        f"cannot import {name}: it imports 'no_such_dependency_xyz', which is not installed "
        f"(at {module}:1)"
    )
    assert error.hint
    assert "PYTHONPATH" in error.hint


def test_a_misspelt_factory_and_a_factory_returning_no_stage(tmp_path: Path) -> None:
    name = module_name()
    write_module(tmp_path, name, f"{STAGE_CLASS}\n\ndef make_stage(options):\n    return 42\n")
    error = error_of(pipeline(tmp_path, f"  - use: {name}:make_stgae\n"))
    assert f"{name} ({tmp_path / name}.py) has no callable 'make_stgae'" in error.message
    assert "(did you mean 'make_stage'?)" in error.message
    error = error_of(pipeline(tmp_path, f"  - use: {name}:make_stage\n"))
    assert error.message.endswith(
        f"stage '{name}:make_stage': {name}:make_stage returned int, not a stage"
    )


def test_a_stage_option_error_names_the_stage_once(tmp_path: Path) -> None:
    """A factory's own message that names its stage ('stage ...: ...') is kept as it is."""
    path = pipeline(
        tmp_path, "  - use: seam.legacy_db.stages.clean:create\n    with: {timestamp_unit: hours}\n"
    )
    error = error_of(path)
    assert error.message == (
        f"{path}:6:10: stage 'clean': timestamp_unit must be auto, us or ms, got 'hours'"
    )


def test_a_built_in_stage_option_error_points_at_the_stage(tmp_path: Path) -> None:
    (tmp_path / "schemas" / "Thing").mkdir(parents=True)
    (tmp_path / "schemas" / "Thing" / "v1.json").write_text('{"type": "object"}')
    path = pipeline(tmp_path, "  - use: validate\n    with: {state_schema: Nope}\n")
    error = error_of(path)
    assert error.message == (
        f"{path}:6:10: stage 'validate': state_schema 'Nope' is not in {tmp_path / 'schemas'}"
    )
    assert error.hint  # the stage's own fix is kept

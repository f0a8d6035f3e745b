"""Which parts of the local stack a command names (no process is started here)."""

from __future__ import annotations

import pytest

from seam.errors import StackError
from seam.stack.local import PART_NAMES, known_parts, selected_parts


def test_all_parts_when_none_are_named() -> None:
    assert selected_parts(None) == list(PART_NAMES)


@pytest.mark.parametrize(
    ("only", "parts"),
    [
        (["kafka"], ["kafka"]),
        (["connect"], ["kafka", "connect"]),  # Connect keeps its state in Kafka
        (["connect", "kafka"], ["kafka", "connect"]),
        (["mariadb", "postgres"], ["postgres", "mariadb"]),  # start order, not given order
    ],
)
def test_named_parts_in_start_order(only: list[str], parts: list[str]) -> None:
    assert selected_parts(only) == parts


def test_an_unknown_part_is_named_with_the_choices() -> None:
    with pytest.raises(StackError, match="no part 'kafak'") as caught:
        selected_parts(["kafak", "connect"])
    assert "postgres, mariadb, kafka, connect" in str(caught.value.hint)


def test_naming_no_part_is_an_error() -> None:
    with pytest.raises(StackError, match="no part named"):
        known_parts([])


def test_only_the_named_parts_programs_are_looked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bringing your own database: `--only kafka,connect` works without database servers."""
    from seam.errors import PrerequisiteError
    from seam.stack import prereqs

    def missing(*_args: object) -> None:
        raise PrerequisiteError("not installed", hint="apt-get install it")

    monkeypatch.setattr(prereqs, "postgres_bin", missing)
    monkeypatch.setattr(prereqs, "_which", missing)
    monkeypatch.setattr(prereqs, "java", lambda: prereqs.Path("/usr/bin/java"))
    programs = prereqs.find_programs(["kafka", "connect"])
    assert programs.java == prereqs.Path("/usr/bin/java")
    with pytest.raises(PrerequisiteError):
        prereqs.find_programs(["postgres"])


@pytest.mark.unit
def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """`kafka-storage format -t -xyz` reads the id as an option: such ids are drawn again."""
    import uuid

    from seam.stack import kafka

    drawn = iter([uuid.UUID(bytes=b"\xfb" + bytes(15)), uuid.UUID(bytes=bytes(16))])
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: next(drawn))
    assert kafka.new_cluster_id() == "AAAAAAAAAAAAAAAAAAAAAA"

"""The snapshot file: a round trip, and a clear SnapshotError for anything else."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from seam.services import snapshot
from seam.services.image import Image, Shape
from seam.services.position import PositionError, SourcePosition, parse_after, reached

pytestmark = pytest.mark.unit

FIELDS = ("id", "code", "name")


def filled(n: int) -> Image:
    image = Image(Shape(FIELDS, indexes=("code",)))
    for i in range(n):
        image.apply(str(i), orjson.dumps({"id": i, "code": f"c{i % 7}", "name": f"ñame {i}"}))
    return image


def snap(image: Image, offsets: dict[int, int]) -> snapshot.Snapshot:
    keys, values = image.contents()
    texts = {"code": [image.index_text("code", v) for v in values]}
    return snapshot.Snapshot("t", FIELDS, offsets, keys, values, texts, 1.5)


def test_round_trip(tmp_path: Path) -> None:
    image = filled(100)
    path = tmp_path / "s" / "img.snapshot"
    size = snapshot.write(path, snap(image, {0: 40, 1: 77}))
    assert path.stat().st_size == size
    assert not path.with_name("img.snapshot.tmp").exists()
    found = snapshot.read(path, topic="t", fields=FIELDS)
    assert found.offsets == {0: 40, 1: 77}
    assert found.written_at == 1.5
    copy = Image(Shape(FIELDS, indexes=("code",)))
    copy.restore(found.keys, found.values, found.indexes)
    assert len(copy) == 100
    assert copy.get("42") == image.get("42")
    assert [k for k, _ in copy.by_index("code", "c3")] == [
        k for k, _ in image.by_index("code", "c3")
    ]


def test_an_empty_image_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "empty.snapshot"
    snapshot.write(path, snap(filled(0), {0: 0}))
    found = snapshot.read(path, topic="t", fields=FIELDS)
    assert found.keys == []
    assert found.offsets == {0: 0}


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda data: b"not a snapshot at all", "is not a seam image snapshot"),
        (lambda data: data[: len(data) // 2], "is damaged"),
        (lambda data: data[:-30] + b"x" + data[-29:], "is damaged"),
        (lambda data: b"", "is not a seam image snapshot"),
    ],
)
def test_a_corrupt_file_is_a_clear_error(tmp_path: Path, damage: object, says: str) -> None:
    path = tmp_path / "img.snapshot"
    snapshot.write(path, snap(filled(50), {0: 50}))
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    with pytest.raises(snapshot.SnapshotError) as caught:
        snapshot.read(path, topic="t", fields=FIELDS)
    assert says in caught.value.message
    assert str(path) in caught.value.message


def test_a_snapshot_of_another_topic_or_shape_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "img.snapshot"
    snapshot.write(path, snap(filled(5), {0: 5}))
    with pytest.raises(snapshot.SnapshotError, match="holds topic 't', not 'other'"):
        snapshot.read(path, topic="other", fields=FIELDS)
    with pytest.raises(snapshot.SnapshotError, match="other state fields"):
        snapshot.read(path, topic="t", fields=("id", "name"))


def test_after_parses_offsets_and_source_positions() -> None:
    assert parse_after("0:12, 2:7") == {0: 12, 2: 7}
    lsn = parse_after("lsn:1/0000000A")
    assert isinstance(lsn, SourcePosition)
    assert lsn.mark == ((1 << 32) + 10,)
    assert lsn.reached_by("postgresql|srv|db", (0, (1 << 32) + 10, 1))
    assert lsn.reached_by("postgresql|srv|db", ((1 << 32) + 11, 5, 1))
    assert not lsn.reached_by("postgresql|srv|db", (5, (1 << 32) + 9, 1))
    assert not lsn.reached_by("mariadb|srv|1", (9, 9, 0, 1))
    binlog = parse_after("binlog:mysql-bin.000003:1234")
    assert isinstance(binlog, SourcePosition)
    assert binlog.mark == (3, 1234)
    assert binlog.reached_by("mariadb|srv|1", (3, 1234, 0, 1))
    assert not binlog.reached_by("mariadb|srv|1", (3, 1000, 2, 1))
    assert binlog.reached_by("mysql|srv|1", (4, 4, 0, 1))
    assert not binlog.reached_by("mariadb|srv|gtid:0", (9999,))  # a GTID mark is no position
    gtid = parse_after("gtid:0-1-42")
    assert isinstance(gtid, SourcePosition)
    assert (gtid.connector, gtid.domain, gtid.mark) == ("gtid", "0", (42,))
    assert gtid.reached_by("mariadb|srv|gtid:0", (43,))  # a later transaction went through
    assert not gtid.reached_by("mariadb|srv|gtid:0", (42,))  # its own first change may have
    assert not gtid.reached_by("mariadb|srv|gtid:1", (99,))  # another domain
    assert not gtid.reached_by("mariadb|srv|1", (99, 99, 0, 1))
    mysql = parse_after("gtid:3E11FA47-71CA-11E1-9E33-C80AA9429562:1-77")
    assert isinstance(mysql, SourcePosition)
    assert mysql.reached_by("mysql|srv|gtid:3e11fa47-71ca-11e1-9e33-c80aa9429562", (78,))
    with pytest.raises(PositionError, match="does not say which one"):
        parse_after("gtid:0-1-2,1-1-5")
    for bad in ("", "x", "0:a", "lsn:zz", "binlog:nofile:1", "gtid:0-1", "gtid:abc:5"):
        with pytest.raises(PositionError):
            parse_after(bad)
    assert reached({0: 5, 1: 3}, {0: 5})
    assert not reached({0: 5}, {0: 5, 1: 1})


def test_the_dictionary_round_trips(tmp_path: Path) -> None:
    from seam.services.image import TRAIN_AFTER

    image = filled(TRAIN_AFTER + 10)
    assert image.dictionary is not None
    path = tmp_path / "img.snapshot"
    taken = snap(image, {0: 1})
    taken.dictionary = image.dictionary
    snapshot.write(path, taken)
    found = snapshot.read(path, topic="t", fields=FIELDS)
    assert found.dictionary == image.dictionary
    copy = Image(Shape(FIELDS, indexes=("code",)))
    copy.restore(found.keys, found.values, found.indexes, found.dictionary)
    assert copy.get("9999") == image.get("9999")


def test_when_the_image_was_current_round_trips(tmp_path: Path) -> None:
    image = filled(3)
    path = tmp_path / "image.snapshot"
    written = snap(image, {0: 3})
    written.current_at = 1.0  # the image lagged from 1.0 until it was written at 1.5
    snapshot.write(path, written)
    assert snapshot.read(path, topic="t", fields=FIELDS).current_at == 1.0
    written.current_at = 0.0  # unknown: taken as when it was written
    snapshot.write(path, written)
    assert snapshot.read(path, topic="t", fields=FIELDS).current_at == 1.5


def test_a_snapshot_older_than_the_topics_tombstones_does_not_fit() -> None:
    from seam.services.runtime import TOMBSTONE_SLACK_S, _misfit, _outlived

    day = 86_400.0
    assert _outlived(1000.0, None, 1000.0 + 10 * day) is None  # not compacted: nothing removed
    assert _outlived(1000.0, day, 1000.0 + day - TOMBSTONE_SLACK_S - 1) is None
    said = _outlived(1000.0, day, 1000.0 + day - TOMBSTONE_SLACK_S)
    assert said is not None
    assert "delete.retention.ms 86400000" in said
    assert "compaction may have removed tombstones" in said
    assert (
        _misfit({0: 5}, {0: (6, 9)}) == "is behind partition 0's first offset 6 (records deleted)"
    )
    assert _misfit({0: 5, 1: 0}, {0: (0, 9)}) is not None  # a partition the topic lacks
    assert _misfit({0: 5}, {0: (0, 9), 1: (0, 4)}) is None  # a partition added: read from 0


def test_a_position_is_reached_at_the_frontier_exactly_when_some_mark_reaches_it() -> None:
    from seam.services.position import frontier_of

    partitions = [
        {"postgresql|s|db": (10, 30, 1)},
        {"postgresql|s|db": (25, 20, 1), "mariadb|m|1": (3, 500, 0, 1)},
        {"mariadb|m|1": (2, 900, 0, 1), "mariadb|m|gtid:0": (41,)},
    ]
    frontier = frontier_of(partitions)
    assert frontier == {"postgresql": (30,), "binlog": (3, 500), "gtid:0": (41,)}
    for text in (
        "lsn:0/1E",
        "lsn:0/1F",
        "binlog:b.000003:500",
        "binlog:b.000003:501",
        "binlog:b.000002:950",
        "gtid:0-1-40",
        "gtid:0-1-41",
        "gtid:1-1-1",
    ):
        position = parse_after(text)
        assert isinstance(position, SourcePosition)
        some = any(position.reached_by(s, m) for marks in partitions for s, m in marks.items())
        assert position.reached_at(frontier) is some, text

"""The snapshot file: an image and the latest-topic offsets it reflects, for a fast restart.

Layout (all integers little-endian):

    b"SEAM-IMAGE\\n"  | u32 header length | header (JSON)
    section*          | u32 CRC-32 of everything before it

The header names the topic, the entity's fields (in the order the stored values use them),
when it was written and since when the image had lagged (`current_at`),
the indexes, the offsets (partition -> next offset) and the section sizes. Sections: the
keys (a JSON array of strings), the stored values (their lengths as a u32 array, then their
bytes), per index each entry's indexed text (a JSON array, null: not indexed), and the zstd
dictionary the values are compressed with (empty: none). orjson parses a million strings
and the lengths slice one big `bytes` into a million small ones at C speed; the index texts
spare a load decoding every value.

Written to `<path>.tmp`, flushed to disk, then renamed over `path`: a crash leaves the old
file or the new one, never half of one. A file that is not a snapshot, is cut short, fails
its checksum, or was made for another topic or entity shape is a `SnapshotError` saying
which; the service then rebuilds from offset 0.
"""

from __future__ import annotations

import os
import time
import zlib
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any, Final

import orjson

from seam.errors import SeamError

MAGIC: Final = b"SEAM-IMAGE\n"
VERSION: Final = 1
_ABSENT: Final = 0xFFFFFFFF


class SnapshotError(SeamError):
    """A snapshot file that cannot be used (the service rebuilds from the topic)."""


@dataclass
class Snapshot:
    topic: str
    fields: tuple[str, ...]
    offsets: dict[int, int]
    keys: list[str]
    values: list[bytes]
    indexes: dict[str, list[str | None]]
    written_at: float = 0.0
    dictionary: bytes | None = None  # the values' zstd dictionary (None: not compressed)
    # When the image last had every record of the topic then (every record at or past
    # `offsets` was written after it); 0: unknown, read as `written_at`.
    current_at: float = 0.0


def _lengths(items: Sequence[bytes | None]) -> bytes:
    out = array("I", (_ABSENT if b is None else len(b) for b in items))
    if out.itemsize != 4:  # pragma: no cover - every platform seam runs on
        raise SnapshotError("this platform's unsigned int is not 4 bytes")
    return out.tobytes()


def write(path: Path, snapshot: Snapshot) -> int:
    """Write `snapshot` atomically to `path`; returns its size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sections: list[bytes] = [orjson.dumps(snapshot.keys)]
    sections += [_lengths(snapshot.values), b"".join(snapshot.values)]
    names = sorted(snapshot.indexes)
    sections += [orjson.dumps(snapshot.indexes[name]) for name in names]
    sections.append(snapshot.dictionary or b"")
    header = orjson.dumps(
        {
            "version": VERSION,
            "topic": snapshot.topic,
            "fields": list(snapshot.fields),
            "offsets": {str(p): o for p, o in snapshot.offsets.items()},
            "count": len(snapshot.keys),
            "indexes": names,
            "sections": [len(s) for s in sections],
            "written_at": snapshot.written_at or time.time(),
            "current_at": snapshot.current_at or snapshot.written_at or time.time(),
        }
    )
    tmp = path.with_name(path.name + ".tmp")
    crc = 0
    size = 0
    with tmp.open("wb") as file:
        for chunk in (MAGIC, len(header).to_bytes(4, "little"), header, *sections):
            file.write(chunk)
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
        file.write(crc.to_bytes(4, "little"))
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)
    return size + 4


def _split(lengths: bytes, blob: bytes) -> list[bytes]:
    sizes = array("I")
    sizes.frombytes(lengths)
    ends = list(accumulate(sizes))
    if (ends[-1] if ends else 0) != len(blob):
        raise SnapshotError("its sections do not add up")
    starts = [0, *ends][: len(ends)]
    # Slicing through map() runs at C speed: a million values in a few tenths of a second.
    return list(map(blob.__getitem__, map(slice, starts, ends)))


def _strings(section: bytes, nullable: bool) -> list[Any]:
    found = orjson.loads(section)
    allowed = {str, type(None)} if nullable else {str}
    if not isinstance(found, list) or not set(map(type, found)) <= allowed:
        raise SnapshotError("a section of texts holds something else")
    return found


def read(path: Path, *, topic: str, fields: Sequence[str]) -> Snapshot:
    """The snapshot at `path`, checked to be whole and made for `topic` with `fields`."""
    where = f"snapshot file {path}"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SnapshotError(f"cannot read {where}: {exc.strerror or exc}") from None
    if not data.startswith(MAGIC):
        raise SnapshotError(f"{where} is not a seam image snapshot")
    if len(data) < len(MAGIC) + 8 or zlib.crc32(data[:-4]) != int.from_bytes(data[-4:], "little"):
        raise SnapshotError(f"{where} is damaged (cut short or its checksum does not match)")
    at = len(MAGIC)
    size = int.from_bytes(data[at : at + 4], "little")
    try:
        header: dict[str, Any] = orjson.loads(data[at + 4 : at + 4 + size])
        if header.get("version") != VERSION:
            raise SnapshotError(f"{where} has format version {header.get('version')}")
        if header["topic"] != topic:
            raise SnapshotError(f"{where} holds topic '{header['topic']}', not '{topic}'")
        if list(header["fields"]) != list(fields):
            raise SnapshotError(f"{where} was made for other state fields")
        at += 4 + size
        sections = []
        for length in header["sections"]:
            sections.append(data[at : at + int(length)])
            at += int(length)
        if at != len(data) - 4:
            raise SnapshotError(f"{where}: its sections do not add up")
        keys: list[str] = _strings(sections[0], nullable=False)
        values = _split(sections[1], sections[2])
        indexes: dict[str, list[str | None]] = {
            str(name): _strings(sections[3 + i], nullable=True)
            for i, name in enumerate(header["indexes"])
        }
        dictionary = sections[3 + len(header["indexes"])] or None
        offsets = {int(p): int(o) for p, o in header["offsets"].items()}
    except SnapshotError as exc:
        if exc.message.startswith(where):
            raise
        raise SnapshotError(f"{where}: {exc.message}") from None
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise SnapshotError(f"{where} has a malformed header ({exc})") from None
    if len(keys) != len(values) or any(len(t) != len(keys) for t in indexes.values()):
        raise SnapshotError(f"{where}: its sections do not add up")
    return Snapshot(
        topic=topic,
        fields=tuple(fields),
        offsets=offsets,
        keys=keys,
        values=values,
        indexes=indexes,
        written_at=float(header.get("written_at") or 0.0),
        dictionary=dictionary,
        current_at=float(header.get("current_at") or header.get("written_at") or 0.0),
    )


def index_texts(
    names: Sequence[str], values: Sequence[bytes], text_of: Any
) -> Mapping[str, list[str | None]]:
    """Per index name, each value's indexed text (`text_of(name, stored)`)."""
    return {name: [text_of(name, v) for v in values] for name in names}

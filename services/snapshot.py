"""The snapshot file: an image and the latest-topic offsets it reflects, for a fast restart.

Layout (all integers little-endian):

    b"SEAM-IMAGE\\n"  | u32 header length | header (JSON)
    section*          | u32 CRC-32 of everything before it

The header names the topic, the entity's fields (in the order the stored values use them),
the indexes, the offsets (partition -> next offset) and the section sizes. Sections: the
lengths (u32 array) then the bytes of the keys, of the stored values, and per index of each
entry's indexed text (length 0xFFFFFFFF: not indexed). Lengths let a load slice one big
`bytes` into a million small ones at C speed; the index texts spare it decoding every value.

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


def _lengths(items: Sequence[bytes | None]) -> bytes:
    out = array("I", (_ABSENT if b is None else len(b) for b in items))
    if out.itemsize != 4:  # pragma: no cover - every platform seam runs on
        raise SnapshotError("this platform's unsigned int is not 4 bytes")
    return out.tobytes()


def write(path: Path, snapshot: Snapshot) -> int:
    """Write `snapshot` atomically to `path`; returns its size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = [k.encode() for k in snapshot.keys]
    sections: list[bytes] = [_lengths(keys), b"".join(keys)]
    sections += [_lengths(snapshot.values), b"".join(snapshot.values)]
    names = sorted(snapshot.indexes)
    for name in names:
        texts = [None if t is None else t.encode() for t in snapshot.indexes[name]]
        sections += [_lengths(texts), b"".join(t for t in texts if t is not None)]
    header = orjson.dumps(
        {
            "version": VERSION,
            "topic": snapshot.topic,
            "fields": list(snapshot.fields),
            "offsets": {str(p): o for p, o in snapshot.offsets.items()},
            "count": len(keys),
            "indexes": names,
            "sections": [len(s) for s in sections],
            "written_at": snapshot.written_at or time.time(),
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


def _split(lengths: bytes, blob: bytes) -> list[bytes | None]:
    sizes = array("I")
    sizes.frombytes(lengths)
    plain = [0 if n == _ABSENT else n for n in sizes]
    ends = list(accumulate(plain))
    if (ends[-1] if ends else 0) != len(blob):
        raise SnapshotError("its sections do not add up")
    starts = [0, *ends][: len(ends)]
    return [
        None if n == _ABSENT else blob[a:b] for n, a, b in zip(sizes, starts, ends, strict=True)
    ]


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
        keys = _split(sections[0], sections[1])
        values = _split(sections[2], sections[3])
        indexes: dict[str, list[str | None]] = {}
        for i, name in enumerate(header["indexes"]):
            texts = _split(sections[4 + 2 * i], sections[5 + 2 * i])
            indexes[str(name)] = [None if t is None else t.decode() for t in texts]
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
        keys=[k.decode() for k in keys if k is not None],
        values=[v for v in values if v is not None],
        indexes=indexes,
        written_at=float(header.get("written_at") or 0.0),
    )


def index_texts(
    names: Sequence[str], values: Sequence[bytes], text_of: Any
) -> Mapping[str, list[str | None]]:
    """Per index name, each value's indexed text (`text_of(name, stored)`)."""
    return {name: [text_of(name, v) for v in values] for name in names}

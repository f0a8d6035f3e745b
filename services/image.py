"""The memory image of one entity: the latest state per key, and declared indexes. Pure.

What is stored, and why (1,000,000 keys must fit in a few hundred MB of one process):

* per key, one `bytes`: the state's JSON as the latest topic holds it, compressed with zstd
  and a dictionary trained on the entity's own values once there are `TRAIN_AFTER` of them
  (a product of the example: 355 bytes -> about 70, 2.5 us to compress, 1 us to decompress).
  Values of one entity repeat the same field names, words and shapes, which is what a
  dictionary captures and per-value compression without one cannot (leaving the field names
  out by hand saved 100 bytes a value uncompressed, 6 compressed: not worth a re-encoding).
  A `bytes` is one Python object (33 bytes of header) where a decoded dict would be dozens,
  and a GET by key answers with the bytes as they are, never parsing them;
* one dict, key text -> stored value; the key text is the latest topic's record key
  (`seam.transforms.declared.envelope.key_text`: `42`, or `[3,"B"]` for a composite key);
* per declared index, a dict: the field's value as text -> the key text (the same `str`
  object as the dict's key, so it costs a pointer), or a set of them when several keys share
  the value;
* the keys in order, built when a listing first needs it and kept up to date after.

Filters on fields without an index, text search and filtered counts scan the keys in order,
decoding values as they go (about a microsecond each): a page stops at its limit, so a
frequent value is cheap and a rare one costs a scan.

The image is not thread-safe by itself: its owner holds `lock` around every call (the loader
around each batch it applies, the HTTP handlers around each read).
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
import zstandard

log = logging.getLogger(__name__)

TRAIN_AFTER: Final = 10_000  # values before a dictionary is trained (fewer: not compressed)
DICTIONARY_BYTES: Final = 32_768
_ZSTD: Final = 0x28  # the first byte of a zstd frame; JSON never starts with it


def order_key(key: str) -> tuple[Any, ...]:
    """How keys sort: whole numbers by value, text as text, a composite key part by part."""
    if key.startswith("["):
        try:
            parts = orjson.loads(key)
        except orjson.JSONDecodeError:
            return ((1, key),)
        if isinstance(parts, list):
            return tuple(_part(p) for p in parts)
    return (_part(key),)


def _part(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool):
        return (1, str(value))
    if isinstance(value, int):
        return (0, value)
    if isinstance(value, str) and value.lstrip("-").isdigit() and value.isascii():
        return (0, int(value))
    return (1, str(value))


def field_value(state: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (`category.id`), or None when any part is missing."""
    if "." not in path:
        return state.get(path)
    value: Any = state
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def as_text(value: Any) -> str | None:
    """A field's value as the text an index or a query parameter holds (None: no value)."""
    if type(value) is str:
        return value
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Shape:
    """What the image knows of an entity: its state fields (in order), indexed, filterable
    and searchable fields (dotted paths into the state)."""

    fields: tuple[str, ...]
    indexes: tuple[str, ...] = ()
    filters: tuple[str, ...] = ()
    search: tuple[str, ...] = ()

    def encode(self, value: bytes) -> tuple[bytes, dict[str, Any]]:
        """(stored form, decoded state) of a latest-topic value: the value as published
        (compressed later by the image), and its state for the indexes."""
        state = orjson.loads(value)
        return value, state if type(state) is dict else {}

    def decode(self, stored: bytes) -> dict[str, Any]:
        data = orjson.loads(stored)
        return data if type(data) is dict else {}


@dataclass
class Page:
    items: list[tuple[str, dict[str, Any]]]
    next_cursor: str | None


class Image:
    """Latest state per key of one entity, with its declared indexes."""

    def __init__(self, shape: Shape, *, compress: bool = True) -> None:
        self.shape = shape
        self.lock = threading.Lock()
        self.compress = compress
        self.dictionary: bytes | None = None
        self._compressor: Any = None
        self._local = threading.local()  # a decompressor per thread: they are not shared
        self._values: dict[str, bytes] = {}
        self._indexes: dict[str, dict[str, str | set[str]]] = {name: {} for name in shape.indexes}
        self._order: list[str] | None = None

    # ------------------------------------------------------------------ writing

    def apply(self, key: str, value: bytes | None) -> None:
        """One latest-topic record: a state (JSON) or a tombstone (None) for `key`."""
        old = self._values.get(key)
        if old is not None and self._indexes:
            self._unindex(key, self.decode(old))
        if value is None:
            if old is not None:
                del self._values[key]
                if self._order is not None:
                    at = bisect.bisect_left(self._order, order_key(key), key=order_key)
                    if at < len(self._order) and self._order[at] == key:
                        del self._order[at]
            return
        stored, state = self.shape.encode(value)
        if self._compressor is not None:
            # A copy of exactly its size: zstd (like orjson) hands out bytes in a larger
            # buffer, which kept as it is costs a million entities gigabytes.
            stored = memoryview(self._compressor.compress(stored)).tobytes()
        elif self.compress and old is None and len(self._values) >= TRAIN_AFTER:
            self._train()
        if old is None and self._order is not None:
            bisect.insort(self._order, key, key=order_key)
        self._values[key] = stored
        if self._indexes:
            self._index(key, state)

    # ------------------------------------------------------------------ compression

    def _use(self, dictionary: bytes) -> None:
        data = zstandard.ZstdCompressionDict(dictionary)
        # Prepared once: without it every compress() loads the dictionary again, a third of
        # its cost on values this small.
        data.precompute_compress(level=3)
        self._compressor = zstandard.ZstdCompressor(
            dict_data=data, write_checksum=False, write_dict_id=False
        )
        self.dictionary = dictionary
        self._local = threading.local()

    def _train(self) -> None:
        """Train a dictionary on the values so far, and compress them with it."""
        sample: list[bytes | bytearray | memoryview] = [
            v for _, v in zip(range(TRAIN_AFTER), self._values.values(), strict=False)
        ]
        try:
            trained = zstandard.train_dictionary(DICTIONARY_BYTES, sample)
        except zstandard.ZstdError as exc:  # too few or too alike: values stay as they are
            log.warning("no compression dictionary for these values (%s)", exc)
            self.compress = False
            return
        self._use(trained.as_bytes())
        compress = self._compressor.compress
        for key, value in self._values.items():
            if value[0] != _ZSTD:
                self._values[key] = memoryview(compress(value)).tobytes()

    def json(self, stored: bytes) -> bytes:
        """The state's JSON a stored value holds."""
        if stored[0] == _ZSTD:
            decompressor = getattr(self._local, "decompressor", None)
            if decompressor is None:
                data = zstandard.ZstdCompressionDict(self.dictionary or b"")
                decompressor = self._local.decompressor = zstandard.ZstdDecompressor(dict_data=data)
            return decompressor.decompress(stored)
        return stored

    def decode(self, stored: bytes) -> dict[str, Any]:
        """The state a stored value holds."""
        return self.shape.decode(self.json(stored))

    def _index(self, key: str, state: Mapping[str, Any]) -> None:
        for name, index in self._indexes.items():
            # The common case (a top-level text field) without the general helpers' calls:
            # this runs once per index for every record loaded.
            value = state.get(name) if "." not in name else field_value(state, name)
            text = value if type(value) is str else as_text(value)
            if text is None:
                continue
            found = index.get(text)
            if found is None:
                index[text] = key
            elif isinstance(found, set):
                found.add(key)
            elif found != key:
                index[text] = {found, key}

    def _unindex(self, key: str, state: Mapping[str, Any]) -> None:
        for name, index in self._indexes.items():
            text = as_text(field_value(state, name))
            found = index.get(text) if text is not None else None
            if found is None or text is None:
                continue
            if isinstance(found, set):
                found.discard(key)
                if len(found) == 1:
                    index[text] = next(iter(found))
            elif found == key:
                del index[text]

    def clear(self) -> None:
        self._values.clear()
        self._compressor = None
        self.dictionary = None
        for index in self._indexes.values():
            index.clear()
        self._order = None

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        return len(self._values)

    def get(self, key: str) -> dict[str, Any] | None:
        stored = self._values.get(key)
        return None if stored is None else self.decode(stored)

    def by_index(self, index: str, value: str) -> list[tuple[str, dict[str, Any]]]:
        """The keys (in order) whose `index` field has `value`, with their states."""
        found = self._indexes[index].get(value)
        keys = [] if found is None else [found] if isinstance(found, str) else found
        return [(k, self.decode(self._values[k])) for k in sorted(keys, key=order_key)]

    def keys_in_order(self) -> list[str]:
        if self._order is None:
            self._order = sorted(self._values, key=order_key)
        return self._order

    def _candidates(self, filters: Mapping[str, str], after: str | None) -> Iterator[str]:
        """Keys after the cursor, in order; narrowed by an index when a filter has one."""
        indexed = [name for name in filters if name in self._indexes]
        if indexed:
            found = self._indexes[indexed[0]].get(filters[indexed[0]])
            keys: Iterable[str] = (
                [] if found is None else [found] if isinstance(found, str) else found
            )
            ordered = sorted(keys, key=order_key)
            start = (
                0
                if after is None
                else bisect.bisect_right(ordered, order_key(after), key=order_key)
            )
            return iter(ordered[start:])
        order = self.keys_in_order()
        start = 0 if after is None else bisect.bisect_right(order, order_key(after), key=order_key)
        return (order[i] for i in range(start, len(order)))

    def _matches(
        self, state: Mapping[str, Any], filters: Mapping[str, str], words: Sequence[str]
    ) -> bool:
        for name, wanted in filters.items():
            if as_text(field_value(state, name)) != wanted:
                return False
        if words:
            text = " ".join(
                str(v) for v in (field_value(state, f) for f in self.shape.search) if v is not None
            ).casefold()
            return all(w in text for w in words)
        return True

    def page(
        self,
        filters: Mapping[str, str] | None = None,
        *,
        query: str = "",
        limit: int = 50,
        after: str | None = None,
    ) -> Page:
        """Up to `limit` states after the cursor `after` (a key), in key order, whose fields
        equal `filters` and whose search fields hold every word of `query`."""
        filters = filters or {}
        words = query.casefold().split()
        items: list[tuple[str, dict[str, Any]]] = []
        for key in self._candidates(filters, after):
            state = self.decode(self._values[key])
            if self._matches(state, filters, words):
                items.append((key, state))
                if len(items) > limit:
                    break
        more = len(items) > limit
        items = items[:limit]
        return Page(items, items[-1][0] if more and items else None)

    def count(self, filters: Mapping[str, str] | None = None, query: str = "") -> int:
        if not filters and not query:
            return len(self._values)
        filters = filters or {}
        words = query.casefold().split()
        return sum(
            1
            for key in self._candidates(filters, None)
            if self._matches(self.decode(self._values[key]), filters, words)
        )

    # ------------------------------------------------------------------ snapshots

    def contents(self) -> tuple[list[str], list[bytes]]:
        """Keys and stored values, aligned (a snapshot's; the caller holds the lock, briefly:
        stored values are immutable, so the copy is consistent and cheap)."""
        return list(self._values.keys()), list(self._values.values())

    def index_text(self, name: str, stored: bytes) -> str | None:
        """The text the index `name` files a stored value under (None: not indexed)."""
        return as_text(field_value(self.decode(stored), name))

    def restore(
        self,
        keys: list[str],
        values: list[bytes],
        indexes: Mapping[str, Sequence[str | None]],
        dictionary: bytes | None = None,
    ) -> None:
        """Replace the content with a snapshot's: keys, stored values (compressed with
        `dictionary` when they start as a zstd frame) and, per index, each entry's indexed
        text (aligned with the keys); an index it lacks is rebuilt."""
        self.clear()
        if dictionary:
            self._use(dictionary)
        self._values = dict(zip(keys, values, strict=True))
        for name in self.shape.indexes:
            texts = indexes.get(name)
            if texts is None:
                texts = [self.index_text(name, v) for v in values]
            index: dict[str, str | set[str]] = dict(zip(texts, keys, strict=True))  # type: ignore[arg-type]
            index.pop(None, None)  # type: ignore[call-overload]
            if len(index) != len(keys) - texts.count(None):  # shared values: group them
                pairs = [(t, k) for t, k in zip(texts, keys, strict=True) if t is not None]
                index = {}
                for text, key in pairs:
                    found = index.get(text)
                    if found is None:
                        index[text] = key
                    elif isinstance(found, set):
                        found.add(key)
                    else:
                        index[text] = {found, key}
            self._indexes[name] = index

    def has_index(self, name: str) -> bool:
        return name in self._indexes

    def stored(self, key: str) -> bytes | None:
        return self._values.get(key)

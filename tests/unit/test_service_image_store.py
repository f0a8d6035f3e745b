"""The memory image: states by key, indexes, filters, paging, search, tombstones, composite
keys, and the compact stored form."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from seam.services.image import Image, Shape, order_key

pytestmark = pytest.mark.unit

FIELDS = ("item_id", "code", "title", "status", "group", "note")


def state(i: int, **over: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "item_id": i,
        "code": f"C-{i:04d}",
        "title": f"Item {i} {'red' if i % 2 else 'blue'} kettle",
        "status": "open" if i % 3 else "closed",
        "group": {"id": i % 4, "name": f"g{i % 4}"},
    }
    out.update(over)
    return {k: v for k, v in out.items() if v is not None}


def image_of(n: int, **shape: Any) -> Image:
    image = Image(
        Shape(
            FIELDS,
            indexes=shape.get("indexes", ("code",)),
            filters=("status", "group.id"),
            search=("title", "note"),
        )
    )
    for i in range(1, n + 1):
        image.apply(str(i), orjson.dumps(state(i)))
    return image


def test_get_returns_the_state_as_published() -> None:
    image = image_of(20)
    assert image.get("7") == state(7)
    assert image.get("21") is None
    assert len(image) == 20


def test_a_small_image_keeps_values_as_published() -> None:
    image = image_of(0)
    value = orjson.dumps(state(5, note="hello"))
    image.apply("5", value)
    assert image.stored("5") == value
    assert image.get("5") == state(5, note="hello")
    image.apply("6", orjson.dumps({"item_id": 6, "unknown": True}))  # any shape
    assert image.get("6") == {"item_id": 6, "unknown": True}


def test_a_tombstone_deletes_the_key_and_its_index_entries() -> None:
    image = image_of(10)
    image.page(limit=3)  # builds the ordered keys, which deletes must then keep right
    image.apply("4", None)
    assert image.get("4") is None
    assert image.by_index("code", "C-0004") == []
    assert "4" not in [k for k, _ in image.page(limit=100).items]
    assert image.count() == 9
    image.apply("404", None)  # a tombstone for a key never seen
    assert image.count() == 9


def test_an_update_moves_the_index_entry() -> None:
    image = image_of(5)
    image.apply("3", orjson.dumps(state(3, code="NEW-3")))
    assert image.by_index("code", "C-0003") == []
    assert image.by_index("code", "NEW-3") == [("3", state(3, code="NEW-3"))]


def test_an_index_shared_by_several_keys_lists_them_in_key_order() -> None:
    image = image_of(12, indexes=("status",))
    closed = [k for k, _ in image.by_index("status", "closed")]
    assert closed == ["3", "6", "9", "12"]
    image.apply("6", orjson.dumps(state(6, status="open")))
    image.apply("9", None)
    image.apply("12", None)
    assert [k for k, _ in image.by_index("status", "closed")] == ["3"]


def test_pages_follow_the_key_order_and_the_cursor_resumes_after_the_last_key() -> None:
    image = image_of(25)
    seen: list[str] = []
    cursor = None
    while True:
        page = image.page(limit=10, after=cursor)
        seen += [k for k, _ in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [str(i) for i in range(1, 26)]  # numeric order: 9 before 10
    # A key added before the cursor does not shift the next page.
    first = image.page(limit=10)
    image.apply("0", orjson.dumps(state(0)))
    second = image.page(limit=10, after=first.next_cursor)
    assert [k for k, _ in second.items] == [str(i) for i in range(11, 21)]


def test_filters_on_fields_and_nested_fields_with_and_without_an_index() -> None:
    image = image_of(30)
    page = image.page({"status": "closed", "group.id": "1"}, limit=100)
    expected = [str(i) for i in range(1, 31) if i % 3 == 0 and i % 4 == 1]
    assert [k for k, _ in page.items] == expected
    assert image.count({"status": "closed", "group.id": "1"}) == len(expected)
    assert [k for k, _ in image.page({"code": "C-0012"}).items] == ["12"]
    assert image.page({"code": "C-0012", "status": "open"}).items == []


def test_search_needs_every_word_in_any_search_field_ignoring_case() -> None:
    image = image_of(10)
    image.apply("11", orjson.dumps(state(11, note="Stainless STEEL")))
    assert [k for k, _ in image.page(query="RED kettle", limit=100).items] == [
        "1",
        "3",
        "5",
        "7",
        "9",
        "11",
    ]
    assert [k for k, _ in image.page(query="red steel").items] == ["11"]
    assert image.count(query="blue") == 5
    page = image.page(query="kettle", limit=4)
    assert page.next_cursor == "4"


def test_composite_keys_sort_part_by_part() -> None:
    image = Image(Shape(("a", "b")))
    keys = ['[10,"x"]', '[2,"y"]', '[2,"b"]']
    for key in keys:
        a, b = orjson.loads(key)
        image.apply(key, orjson.dumps({"a": a, "b": b}))
    assert [k for k, _ in image.page().items] == ['[2,"b"]', '[2,"y"]', '[10,"x"]']
    assert image.get('[2,"y"]') == {"a": 2, "b": "y"}
    assert order_key("9") < order_key("10") < order_key("abc")


def test_restore_rebuilds_the_indexes_from_their_texts() -> None:
    image = image_of(8, indexes=("code", "status"))
    keys, values = image.contents()
    texts = {name: [image.index_text(name, v) for v in values] for name in ("code", "status")}
    copy = image_of(0, indexes=("code", "status"))
    copy.restore(keys, values, texts)
    assert copy.get("5") == state(5)
    assert [k for k, _ in copy.by_index("status", "closed")] == ["3", "6"]
    assert copy.by_index("code", "C-0008") == [("8", state(8))]
    # Without the texts (an index added since the snapshot), the index is rebuilt.
    rebuilt = image_of(0, indexes=("code", "status"))
    rebuilt.restore(keys, values, {"code": texts["code"]})
    assert [k for k, _ in rebuilt.by_index("status", "closed")] == ["3", "6"]


def test_values_are_compressed_with_a_dictionary_once_there_are_enough() -> None:
    from seam.services.image import TRAIN_AFTER

    image = image_of(TRAIN_AFTER - 1)
    assert image.dictionary is None
    plain = image.stored("5")
    assert plain is not None
    assert plain[:1] == b"{"
    for i in range(TRAIN_AFTER, TRAIN_AFTER + 100):
        image.apply(str(i), orjson.dumps(state(i)))
    assert image.dictionary is not None
    stored = image.stored("5")
    assert stored is not None
    assert stored[0] == 0x28
    assert len(stored) < len(plain) / 2
    assert image.json(stored) == plain
    assert image.get("5") == state(5)
    assert image.get(str(TRAIN_AFTER + 50)) == state(TRAIN_AFTER + 50)
    image.apply("5", orjson.dumps(state(5, note="changed")))  # an update, compressed
    assert image.get("5") == state(5, note="changed")
    assert image.by_index("code", "C-0005") == [("5", state(5, note="changed"))]
    # A snapshot's content and dictionary restore the same image.
    keys, values = image.contents()
    copy = image_of(0)
    copy.restore(keys, values, {}, image.dictionary)
    assert copy.get("5") == state(5, note="changed")
    assert copy.by_index("code", "C-0007") == [("7", state(7))]

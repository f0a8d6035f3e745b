"""decode: the raw Kafka record -> a decoded Debezium change (seam.streams.decode).

Contract: one item in, the same item out with `change` and `table` set (an item that
arrives decoded, `change` already set by the worker, keeps it: the worker decodes each record
once, with the inputs' column types when the pipeline has `processing.column_types: source`,
so the rows hold typed values; see `seam.transforms.column_types`). A Debezium record
that carries no row change (a heartbeat, a transaction BEGIN/END record, a schema change or a
schema-history entry: a pipeline may read such a topic) yields no event: the item comes out
with no `change` and a `note` naming its kind ("heartbeat record", ...), counted by the
worker; the built-in stages after this one pass such an item on untouched. A record that is
not a Debezium record, or a malformed one (not JSON, JSON but not an envelope, an envelope
with a schema and no payload, a row change without a table, a tombstone without a key), is
rejected with the decoder's reason: it goes to the dead-letter topic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from seam.changes import ControlRecord, Undecodable
from seam.keys import check_known_keys
from seam.streams.decode import decode
from seam.transforms.model import Item, Reject


class DecodeStage:
    name = "decode"

    def process(self, item: Item) -> Iterable[Item]:
        result = item.change if item.change is not None else decode(item.raw)
        if isinstance(result, ControlRecord):
            item.note = f"{result.kind.value} record"  # counted: "heartbeat record", ...
            return (item,)
        if isinstance(result, Undecodable):
            raise Reject(result.reason)
        item.change = result
        item.table = result.table.name if result.table is not None else None
        return (item,)


def create(options: Mapping[str, Any]) -> DecodeStage:
    check_known_keys(options, (), "stage 'decode' options")
    return DecodeStage()

"""decode: the raw Kafka record -> a decoded Debezium change (seam.streams.decode).

Contract: one item in, the same item out with `change` and `table` set (an item that
arrives decoded, `change` already set by the worker, keeps it). A record that is
not a Debezium change event (not JSON, JSON but not an envelope, a tombstone without a
key) is rejected with the decoder's reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from seam.keys import check_known_keys
from seam.streams.decode import Undecodable, decode
from seam.transforms.model import Item, Reject


class DecodeStage:
    name = "decode"

    def process(self, item: Item) -> Iterable[Item]:
        result = item.change if item.change is not None else decode(item.raw)
        if isinstance(result, Undecodable):
            raise Reject(result.reason)
        item.change = result
        item.table = result.table.name if result.table is not None else None
        return (item,)


def create(options: Mapping[str, Any]) -> DecodeStage:
    check_known_keys(options, (), "stage 'decode' options")
    return DecodeStage()

"""The domain event envelope, entity keys and deterministic event ids: public helpers.

Every event seam makes, declared or from a Python stage that calls these, has one shape:

    {"event_id": "<uuid>", "event_type": "CustomerMoved", "entity": "customer",
     <each key field>: <its value>, "occurred_at": "<source commit time, ISO 8601 UTC>",
     "data": {...}, "provenance": {...}}

and the validate stage adds `schema_version`. The key fields sit at the top level (a
composite key: each of them), so a consumer reads an entity's key as it reads its state.
`key_text` is the entity key as the history and latest topics' record key: the value of a
one-field key as text (`42`), a composite key as a JSON array in declared order (`[3,17]`).

Event ids are UUIDv5 (RFC 4122, SHA-1) of the source database, table, log position, key
and event type: a replay, or Debezium delivering the same change again, yields the same id,
so a consumer can drop duplicates by id.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson

EVENT_NAMESPACE: Final = uuid.UUID("5b0c7f2e-6d1a-4f52-9a43-2f1e0c3d9b71")
_NAMESPACE_BYTES: Final = EVENT_NAMESPACE.bytes


def key_text(values: Sequence[Any]) -> str:
    """The record key of an entity whose key fields hold `values` (in declared order)."""
    if len(values) == 1:
        return str(values[0])
    return orjson.dumps(list(values)).decode()


def event_id(provenance: Mapping[str, Any], key: str, event_type: str) -> str:
    """Deterministic id from where the change sits in the source log: a UUIDv5 of source db
    | table | position | key | type (without a log position: topic, partition, offset)."""
    position = provenance.get("position") or {
        "topic": provenance.get("topic"),
        "partition": provenance.get("partition"),
        "offset": provenance.get("offset"),
    }
    ident = b"|".join(
        (
            str(provenance.get("source_db")).encode(),
            str(provenance.get("table")).encode(),
            orjson.dumps(position, option=orjson.OPT_SORT_KEYS),
            key.encode(),
            event_type.encode(),
        )
    )
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + ident).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def envelope(
    event_type: str,
    entity: str,
    key: Mapping[str, Any],
    data: Mapping[str, Any],
    provenance: Mapping[str, Any],
) -> dict[str, Any]:
    """One domain event: `key` maps each key field to its value; `provenance` as
    `seam.transforms.provenance.provenance(change)` gives it (its source_ts is the event's
    occurred_at)."""
    text = key_text(tuple(key.values()))
    return {
        "event_id": event_id(provenance, text, event_type),
        "event_type": event_type,
        "entity": entity,
        **key,
        "occurred_at": provenance.get("source_ts"),
        "data": data,
        "provenance": provenance,
    }


__all__ = ["EVENT_NAMESPACE", "envelope", "event_id", "key_text"]

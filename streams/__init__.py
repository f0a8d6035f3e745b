"""Change streams: the one Debezium decoder (`seam.streams.decode`) and read-only tools to
look into change topics (`seam streams list|tail|history|lag`).

The decoder API, for the transform workers and anyone else:

    from seam.streams import RawRecord, decode, ChangeEvent, Undecodable, Op, UNAVAILABLE

    item = decode(RawRecord.from_message(msg))
    if isinstance(item, Undecodable): ...   # item.reason, item.raw
"""

from seam.streams.decode import (
    UNAVAILABLE,
    ChangeEvent,
    LogicalMessage,
    Op,
    RawRecord,
    Snapshot,
    SourcePosition,
    TableRef,
    Undecodable,
    decode,
    decode_key,
    event_as_dict,
    json_default,
)

__all__ = [
    "UNAVAILABLE",
    "ChangeEvent",
    "LogicalMessage",
    "Op",
    "RawRecord",
    "Snapshot",
    "SourcePosition",
    "TableRef",
    "Undecodable",
    "decode",
    "decode_key",
    "event_as_dict",
    "json_default",
]

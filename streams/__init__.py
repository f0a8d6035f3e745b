"""Change streams: the one Debezium decoder (`seam.streams.decode`, with the value
conversions of `seam.streams.values`; the types it makes are `seam.changes`) and read-only tools to
look into change topics (`seam streams list|tail|history|lag`).

The decoder API, for the transform workers and anyone else:

    from seam.changes import RawRecord, ChangeEvent, ControlRecord, Undecodable
    from seam.streams.decode import decode

    item = decode(RawRecord.from_message(msg))
    if isinstance(item, ControlRecord): ...  # a heartbeat, transaction or schema record: item.kind
    elif isinstance(item, Undecodable): ...  # malformed: item.reason, item.raw
"""

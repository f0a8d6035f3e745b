"""Change streams: the one Debezium decoder (`seam.streams.decode`) and read-only tools to
look into change topics (`seam streams list|tail|history|lag`).

The decoder API, for the transform workers and anyone else:

    from seam.streams.decode import RawRecord, decode, ChangeEvent, ControlRecord, Undecodable

    item = decode(RawRecord.from_message(msg))
    if isinstance(item, ControlRecord): ...  # a heartbeat, transaction or schema record: item.kind
    elif isinstance(item, Undecodable): ...  # malformed: item.reason, item.raw
"""

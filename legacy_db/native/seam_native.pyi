# Types of the compiled fast path (src/lib.rs); used through seam.legacy_db.fast_path.

from typing import Any

class Engine:
    def __init__(
        self,
        schemas: dict[str, tuple[int, str]],
        state_schema: str,
        embeds_state: list[str],
        unit: str,
        namespace: bytes,
        entity: str,
        currency: str,
        table: str,
    ) -> None: ...
    def publish(
        self,
        messages: list[Any],
        start: int,
        producer: Any,
        history_topic: str,
        latest_topic: str,
        categories: dict[int, str],
        suppliers: dict[int, str],
    ) -> tuple[int, int, int, int, int, dict[str, int]]: ...
    def process(
        self,
        value: bytes,
        topic: str,
        partition: int,
        offset: int,
        categories: dict[int, str],
        suppliers: dict[int, str],
    ) -> (
        tuple[
            list[tuple[bytes, bytes, list[tuple[str, bytes]]]],
            tuple[bytes, bytes | None],
            str | None,
        ]
        | None
    ): ...

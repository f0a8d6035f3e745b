# Types of seam's compiled engine (src/lib.rs); used through seam.transforms.declared.compiled.

from typing import Any

class Engine:
    def __init__(
        self,
        plan: str,
        schemas: dict[str, tuple[int, str]],
        state_schema: str | None,
        embeds_state: dict[str, str],
        tables: dict[str, dict[Any, dict[str, Any]]],
        own_domain: int | None = None,
        own_tx_ids: dict[int, None] | None = None,
    ) -> None: ...
    def publish(
        self,
        messages: list[Any],
        start: int,
        producer: Any,
        history_topic: str,
        latest_topic: str,
        marks: dict[Any, Any],
    ) -> tuple[int, int, int, int, int, dict[str, int], int]: ...
    def process(
        self,
        key: bytes | None,
        value: bytes,
        topic: str,
        partition: int,
        offset: int,
    ) -> (
        tuple[
            list[tuple[bytes, bytes, list[tuple[str, bytes]]]],
            tuple[bytes, bytes | None],
            str | None,
        ]
        | None
    ): ...
    def front(
        self, key: bytes | None, value: bytes
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None] | None: ...
    def back(
        self,
        key: bytes | None,
        value: bytes,
        topic: str,
        partition: int,
        offset: int,
        before: Any,
        after: Any,
    ) -> (
        tuple[
            list[tuple[bytes, bytes, list[tuple[str, bytes]]]],
            tuple[bytes, bytes | None],
            str | None,
        ]
        | None
    ): ...

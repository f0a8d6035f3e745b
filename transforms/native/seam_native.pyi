# Types of the compiled fast path (src/lib.rs); used through seam.transforms.fast_path.

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

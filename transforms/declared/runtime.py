"""One built declared pipeline: its declaration, reference tables and their topics.

The built-in `clean` and `events` stages of a pipeline share one `DeclaredPipeline` (the
lookups `clean` applies read the reference tables it keeps; `events` cleans a record key
with the same plans). `seam.transforms.stage_loader.declared_pipeline()` hands it to their
factories while the pipeline's stages are built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from seam.errors import ConfigError
from seam.transforms.declared.clean import References
from seam.transforms.declared.model import Declaration


@dataclass
class DeclaredPipeline:
    declaration: Declaration
    inputs: tuple[str, ...]
    schemas: Path | None = None  # the folder its schemas are written to (`schemas:`)
    references: References = field(init=False)

    def __post_init__(self) -> None:
        self.references = References(self.declaration)

    def reference_topics(self) -> tuple[str, ...]:
        """The change topic of each table the lookups read: declared (`topic:`), else the
        entity table's input topic with the table's name in place of the entity table's
        (Debezium names topics <prefix>.<schema>.<table>, or <prefix>.<database>.<table>)."""
        declaration = self.declaration
        entity_table = declaration.entity.table
        topics = []
        for name in declaration.reference_tables():
            table = declaration.tables[name]
            if table.topic:
                topics.append(table.topic)
                continue
            base = next((t for t in self.inputs if t.rsplit(".", 1)[-1] == entity_table), None)
            if base is None:
                raise ConfigError(
                    f"{table.where}: cannot tell the change topic of table '{name}' "
                    f"(no input topic ends in '.{entity_table}')",
                    hint=f"add 'topic: <its change topic>' to tables.{name}",
                )
            topics.append(base.rsplit(".", 1)[0] + "." + name)
        return tuple(topics)


__all__ = ["DeclaredPipeline"]

"""The column types a pipeline with `processing.column_types: source` decodes with.

`load_column_types(spec, settings)` reads the types of every input topic at start (the one
loader, `seam.connectors.live_types.TopicTypes`: the connector by its topic prefix, its
database from its config and seam's settings); the worker decodes with them and they are
read again when a record carries a column they lack. A declared pipeline has only the
columns its rules read typed. What cannot be loaded is one
ConfigError naming the input, the connector or database, and the fix.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from seam.errors import ConfigError

if TYPE_CHECKING:
    from seam.connectors.live_types import TopicTypes
    from seam.settings import Settings
    from seam.transforms.pipeline_file import PipelineSpec

log = logging.getLogger("seam.transform")


def load_column_types(spec: PipelineSpec, settings: Settings) -> TopicTypes | None:
    """The column types of the pipeline's inputs (None with `column_types: none`)."""
    if spec.column_types != "source":
        return None
    from seam.connectors.live_types import TopicTypes, TypesUnavailableError

    # A declared pipeline types only the columns its rules read (the others are NOT_READ).
    only = spec.declaration.columns_read() if spec.declaration is not None else None
    types = TopicTypes(settings, on_problem=log.warning, only=only)
    for topic in spec.inputs:
        try:
            live = types.load(topic)
        except TypesUnavailableError as exc:
            raise ConfigError(
                f"pipeline '{spec.name}' ({spec.source}) has column_types: source, but the "
                f"column types of input {topic} cannot be read: {exc.message}",
                hint=(exc.hint + "; " if exc.hint else "")
                + f"or set 'column_types: none' under processing: in {spec.source} "
                "(values as Debezium sent them)",
            ) from None
        log.info(
            "column types of %s: connector '%s', tables %s",
            topic,
            live.name,
            ", ".join(str(t) for t in live.types.tables()) or "none",
        )
    return types

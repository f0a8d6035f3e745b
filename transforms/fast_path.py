"""The fast-path hook: a pipeline may name a compiled implementation of its whole chain.

A pipeline file declares it under `processing`:

    processing:
      fast_path: package.module:callable

The callable takes the built `Pipeline` and returns a `FastPath`, or None when it cannot
serve this chain of stages (a stage it does not know, its compiled module not built). A
fast path produces, for each record it is sure about, the very records the Python stages
and `outputs.publication` would have produced, byte for byte; at the first record it is not
sure about it stops, and the worker runs that record through the Python stages (which stay
the reference and write the dead letters). Without a declaration, or when the callable
returns None, every record takes the Python stages: slower, same results.

A declared pipeline whose stages are the built-in decode, clean, events and validate needs
no declaration: it runs on seam's compiled engine (`seam.transforms.declared.compiled`,
the Rust crate in transforms/native) unless `processing.compiled: false`. With Python
stages among the built-in ones, the built-in stages around them run compiled
(`load_split_path`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

from seam.changes import RawRecord
from seam.errors import ConfigError
from seam.transforms.outputs import Publication
from seam.transforms.pipeline import Pipeline, error_text
from seam.transforms.stage_loader import load_callable

if TYPE_CHECKING:
    from seam.transforms.declared.compiled import SplitPath
    from seam.transforms.own_writes import OwnOrigin
    from seam.transforms.pipeline_file import PipelineSpec
    from seam.transforms.progress import Counts
    from seam.transforms.redelivery import Marks

log = logging.getLogger("seam.transform")

FAST_PATH_HINT = (
    "name a function as package.module:callable that takes the built pipeline and returns "
    "a fast path or None (see seam.transforms.fast_path)"
)


class FastPath(Protocol):
    """A compiled implementation of a pipeline's chain of stages."""

    def process(self, raw: RawRecord) -> Publication | None:
        """One record's publication, or None: the record takes the Python stages."""

    def publish(
        self,
        messages: list[Any],
        start: int,
        producer: Any,
        spec: PipelineSpec,
        batch: Counts,
        marks: Marks,
    ) -> int:
        """Produce the publications of `messages[start:]` (consumed Kafka messages), in
        order, until a record needs the Python stages; return its index (len(messages) when
        all are done), add what was published to `batch` and move `marks` as
        `Marks.redelivered` does (re-delivered changes are dropped)."""


def load_fast_path(
    spec: PipelineSpec, pipeline: Pipeline, own: OwnOrigin | None = None
) -> FastPath | None:
    """The fast path `spec` declares for `pipeline` (built from it), else the compiled
    engine of a declared pipeline, or None (neither, or it cannot serve the pipeline). A
    ConfigError when the declaration cannot be imported or its callable raises. `own`: the
    worker's own-writes decision (`seam.transforms.own_writes`), which the compiled engine
    applies; a declared fast path knows nothing of it and is not used with one."""
    if spec.fast_path is None:
        if spec.declaration is None or not spec.compiled:
            return None
        from seam.transforms.declared.compiled import compiled_path

        return compiled_path(spec, pipeline, own)
    if own is not None:
        log.info(
            "%s: processing.fast_path is not used with own_writes (it cannot tell seam's own "
            "writes): every record takes the Python stages",
            spec.source,
        )
        return None
    where = f"{spec.source}: processing.fast_path '{spec.fast_path}'"
    factory = load_callable(spec.fast_path, where, spec.folder, FAST_PATH_HINT)
    try:
        fast: FastPath | None = factory(pipeline)
    except Exception as exc:
        raise ConfigError(f"{where}: raised {error_text(exc)}", hint=FAST_PATH_HINT) from None
    if fast is None:
        log.info("%s: no fast path for this pipeline; every record takes the Python stages", where)
    return fast


def load_split_path(spec: PipelineSpec, pipeline: Pipeline) -> SplitPath | None:
    """The compiled engine around the Python stages of a declared pipeline (built from
    `spec`) whose stages begin with the built-in decode and clean, or None (no such
    pipeline, a fast path declared, `processing.compiled: false`, the module not built)."""
    if spec.fast_path is not None or spec.declaration is None or not spec.compiled:
        return None
    from seam.transforms.declared.compiled import split_path

    return split_path(spec, pipeline)

"""The catalog's compiled fast path: its chain of stages, natively, for a batch at a time.

The catalog pipelines (legacy_db/pipelines/*.yaml) name `fast_path_for` in
`processing.fast_path` (the hook: `seam.transforms.fast_path`). When a pipeline's stages are
exactly decode, the catalog's clean, enrich and map, and validate, the worker hands its
batch to `seam_native.Engine` (legacy_db/native, Rust), which decodes, cleans, enriches, maps, validates and encodes
each record and produces the very records the Python stages and `outputs.publication`
would have produced, byte for byte (`publish`). At the first record it is not sure about
(a value a rule would repair in an unusual way or reject, a tombstone, another table, an
embedded schema, an invalid event) it stops; the worker runs that record through the
Python stages, which stay the reference and write the dead letters, and hands the rest
back. `process` is the same for one record, returning its `Publication` (tests, the
benchmark). tests/unit/test_fast_path.py holds both paths to the same output.

Without the native module (not built), or for any other chain of stages, there is no fast
path and every record takes the Python stages: slower, same results.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from seam.changes import RawRecord
from seam.legacy_db.rules import CURRENCY
from seam.legacy_db.stages.clean import CleanStage
from seam.legacy_db.stages.enrich import EnrichStage
from seam.legacy_db.stages.map import ENTITY, MapStage
from seam.transforms.declared.envelope import EVENT_NAMESPACE
from seam.transforms.outputs import Publication
from seam.transforms.pipeline import Pipeline
from seam.transforms.pipeline_file import PipelineSpec
from seam.transforms.progress import Counts
from seam.transforms.redelivery import Marks
from seam.transforms.stages.decode import DecodeStage
from seam.transforms.stages.validate import ValidateStage

log = logging.getLogger("seam.transform")

CHAIN = (DecodeStage, CleanStage, EnrichStage, MapStage, ValidateStage)
TABLE = "products"
STATE_SCHEMA = "ProductState"  # the validate stage's state_schema in the catalog pipelines


class NativeFastPath:
    """`publish` (the worker) and `process` (one record: its Publication, or None to take
    the Python stages)."""

    def __init__(self, engine: Any, enrich: EnrichStage) -> None:
        self._process = engine.process
        self._publish = engine.publish
        self._reference = enrich.reference  # read at each call: it changes as the worker runs

    def process(self, raw: RawRecord) -> Publication | None:
        if raw.value is None:
            return None
        out: Publication | None = self._process(
            raw.value,
            raw.topic,
            raw.partition,
            raw.offset,
            self._reference.categories,
            self._reference.suppliers,
        )
        return out

    def publish(
        self,
        messages: list[Any],
        start: int,
        producer: Any,
        spec: PipelineSpec,
        batch: Counts,
        marks: Marks,
    ) -> int:
        """Produce the publications of `messages[start:]`, in order, until a record needs
        the Python stages; returns its index (len(messages) when all are done) and adds
        what was published to `batch`. Re-delivered changes are dropped, and `marks` move,
        as `Marks.redelivered` does it."""
        stop, records, with_events, events, latest, no_event, redelivered = self._publish(
            messages,
            start,
            producer,
            spec.history.topic,
            spec.latest.topic,
            self._reference.categories,
            self._reference.suppliers,
            marks.table,
        )
        batch.records_in += records + redelivered
        batch.native += records + redelivered
        batch.redelivered += redelivered
        batch.records_with_events += with_events
        batch.events_out += events
        batch.latest_out += latest
        for reason, n in no_event.items():
            batch.no_event[reason] = batch.no_event.get(reason, 0) + n
        return int(stop)


def fast_path_for(pipeline: Pipeline) -> NativeFastPath | None:
    """The fast path for `pipeline`, or None (other stages, another state schema, or the
    module is not built)."""
    stages = pipeline.stages
    if tuple(type(s) for s in stages) != CHAIN:
        return None
    validate = stages[-1]
    assert isinstance(validate, ValidateStage)
    if validate.state_schema != STATE_SCHEMA:
        return None
    try:
        import seam_native
    except ImportError:
        log.info("native module seam_native not installed: every record takes the Python stages")
        return None
    _decode, clean, enrich, _map, _validate = stages
    assert isinstance(clean, CleanStage)
    assert isinstance(enrich, EnrichStage)
    schemas = {
        name: (version, json.dumps(doc))
        for name, (version, doc) in validate.schemas.documents.items()
    }
    engine = seam_native.Engine(
        schemas,
        STATE_SCHEMA,
        sorted(validate.embeds_state),
        clean.unit,
        EVENT_NAMESPACE.bytes,
        ENTITY,
        CURRENCY,
        TABLE,
    )
    return NativeFastPath(engine, enrich)

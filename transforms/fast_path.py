"""The compiled fast path: the built-in catalog chain in one native call per record.

When a pipeline's stages are exactly the built-in decode, clean, enrich, map and validate
(as in pipelines/catalog.yaml), the worker hands each raw record to `seam_native.Engine`
(transforms/native, Rust): it decodes, cleans, enriches, maps, validates and encodes the
record in one call and returns the `Publication` the Python stages would have produced,
byte for byte. For every record it is not sure about (a value a rule would repair in an
unusual way or reject, a tombstone, another table, an embedded schema, an invalid event)
it returns None and the worker runs the Python stages, which stay the reference and write
the dead letters. tests/unit/test_fast_path.py holds both paths to the same output.

Without the native module (not built), or for any other chain of stages, there is no fast
path and every record takes the Python stages: slower, same results.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from seam.streams.decode import RawRecord
from seam.transforms.outputs import Publication
from seam.transforms.pipeline import Pipeline
from seam.transforms.rules import CURRENCY
from seam.transforms.schemas import STATE_SCHEMA
from seam.transforms.stages.clean import CleanStage
from seam.transforms.stages.decode import DecodeStage
from seam.transforms.stages.enrich import EnrichStage
from seam.transforms.stages.map import ENTITY, EVENT_NAMESPACE, MapStage
from seam.transforms.stages.validate import ValidateStage

log = logging.getLogger("seam.transform")

CHAIN = (DecodeStage, CleanStage, EnrichStage, MapStage, ValidateStage)
TABLE = "products"


class FastPath:
    """`process(raw)`: the record's Publication, or None to take the Python stages."""

    def __init__(self, engine: Any, enrich: EnrichStage) -> None:
        self._process = engine.process
        self._categories = enrich.reference.categories
        self._suppliers = enrich.reference.suppliers

    def process(self, raw: RawRecord) -> Publication | None:
        if raw.value is None:
            return None
        out: Publication | None = self._process(
            raw.value, raw.topic, raw.partition, raw.offset, self._categories, self._suppliers
        )
        return out

    def process_message(self, msg: Any) -> Publication | None:
        """The same for a confluent-kafka message, without building a RawRecord."""
        value = msg.value()
        if value is None:
            return None
        out: Publication | None = self._process(
            value, msg.topic(), msg.partition(), msg.offset(), self._categories, self._suppliers
        )
        return out


def fast_path_for(pipeline: Pipeline) -> FastPath | None:
    """The fast path for `pipeline`, or None (other stages, or the module is not built)."""
    stages = pipeline.stages
    if tuple(type(s) for s in stages) != CHAIN:
        return None
    try:
        import seam_native
    except ImportError:
        log.info("native module seam_native not installed: every record takes the Python stages")
        return None
    _decode, clean, enrich, _map, validate = stages
    assert isinstance(clean, CleanStage)
    assert isinstance(enrich, EnrichStage)
    assert isinstance(validate, ValidateStage)
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
    return FastPath(engine, enrich)

"""Where each input record of a batch goes: through the pipeline (or the compiled fast path)
to its outputs, in input order.

A record's outcome is produced, never dropped: its domain events to the history topic, the
entity's new state to the latest topic, a rejected or undecodable record (and one a stage
raised on) to the dead-letter topic with headers that name the pipeline, stage, reason and
source coordinates. A change the source delivered twice is dropped by its position
(`seam.transforms.redelivery`) and counted. A change seam's own writer made
(`seam.transforms.own_writes`) publishes its latest state but no event (reason `own_write`). Every record lands in exactly one count of the
balance (`seam.transforms.progress.Counts`).

The worker owns the transaction around a batch; this module only decides what to produce.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from seam.changes import ChangeEvent, RawRecord, Undecodable
from seam.streams.decode import decode
from seam.transforms.delivery import Delivery
from seam.transforms.fast_path import FastPath
from seam.transforms.outputs import Headers, Publication, publication, source_headers
from seam.transforms.own_writes import OWN_WRITE, OwnOrigin
from seam.transforms.pipeline import Outcome, Pipeline, Produced, Rejected
from seam.transforms.pipeline_file import PipelineSpec
from seam.transforms.progress import Counts
from seam.transforms.redelivery import Marks

if TYPE_CHECKING:
    from seam.transforms.declared.compiled import SplitPath

DLQ_PREFIX: Final = "seam."  # dead-letter headers: seam.pipeline, seam.stage, seam.reason, ...

Produce = Callable[..., None]
Decoder = Callable[[RawRecord], ChangeEvent | Undecodable]


class RecordHandler:
    """Turns a batch's records into produce calls, for one pipeline."""

    def __init__(
        self,
        spec: PipelineSpec,
        pipeline: Pipeline,
        fast: FastPath | None,
        decoder: Decoder = decode,
        split: SplitPath | None = None,
        own: OwnOrigin | None = None,
    ) -> None:
        """`fast`: the compiled path of the whole chain of stages; `split`: the compiled
        engine around the Python stages of a declared pipeline (one or the other); `own`:
        how the pipeline's own writes are recognised (the compiled engine got the same)."""
        self.spec = spec
        self.own = own
        self.pipeline = pipeline
        self.fast = fast
        self.split = split
        # `decode`, or with the inputs' column types (column_types: source) and their reload
        self.decoder = decoder

    def transform(self, messages: list[Any], batch: Counts, marks: Marks, out: Delivery) -> None:
        """Produce the outcomes of `messages` (confluent_kafka messages), in order."""
        fast = self.fast
        index = 0
        while index < len(messages):
            if fast is not None:
                # The compiled fast path publishes records in order until one needs the
                # Python stages (per-key order holds across the two paths).
                index = fast.publish(messages, index, out.producer, self.spec, batch, marks)
                if index == len(messages):
                    break
            self.handle(messages[index], batch, marks, out.produce)
            index += 1

    def handle(self, msg: Any, batch: Counts, marks: Marks, produce: Produce) -> None:
        """One record through the Python stages."""
        batch.records_in += 1
        if not self.pipeline.stages:  # pass-through (benchmarks): copy the record as it is
            produce(self.spec.history.topic, msg.key(), msg.value())
            batch.records_with_events += 1
            batch.events_out += 1
            return
        raw = RawRecord.from_message(msg)
        # Decoded once here (typed when the pipeline asks for column types), for the
        # re-delivery check, and handed to the decode stage.
        change = self.decoder(raw)
        if isinstance(change, ChangeEvent) and marks.redelivered(raw.topic, raw.partition, change):
            batch.redelivered += 1
            return
        outcome: Outcome | Publication
        if self.split is not None:
            outcome, native = self.split.run(raw, change)
            batch.native += native
        else:
            outcome = self.pipeline.run(raw, change if isinstance(change, ChangeEvent) else None)
        source: Headers = []
        own = False
        if isinstance(change, ChangeEvent):
            source = source_headers(change.source)
            own = self.own is not None and self.own.is_own(change.source)
        if isinstance(outcome, Produced):
            out = publication(outcome, self.spec.history.key)
            self.publish(out, batch, produce, source, own)
            return
        if not isinstance(outcome, Rejected):  # the compiled engine's publication
            self.publish(outcome, batch, produce, source, own)
            return
        headers = [
            *raw.headers,
            (DLQ_PREFIX + "pipeline", self.spec.name.encode()),
            (DLQ_PREFIX + "stage", outcome.stage.encode()),
            (DLQ_PREFIX + "reason", outcome.reason.encode("utf-8", "replace")[:4000]),
            (DLQ_PREFIX + "source.topic", raw.topic.encode()),
            (DLQ_PREFIX + "source.partition", str(raw.partition).encode()),
            (DLQ_PREFIX + "source.offset", str(raw.offset).encode()),
        ]
        produce(self.spec.dead_letter.topic, raw.key, raw.value, headers)
        batch.dead_lettered += 1
        batch.dead_letter_reasons[outcome.stage] = (
            batch.dead_letter_reasons.get(outcome.stage, 0) + 1
        )
        if outcome.error is not None:  # the stage raised: a bug, counted apart (and limited)
            batch.stage_errors[outcome.stage] = batch.stage_errors.get(outcome.stage, 0) + 1

    def publish(
        self,
        out: Publication,
        batch: Counts,
        produce: Produce,
        source: Headers | None = None,
        own: bool = False,
    ) -> None:
        """A record's events to the history topic and its state to the latest topic, each
        with the change's `source` headers (`seam.transforms.outputs.source_headers`). A
        change of seam's own writer (`own`) publishes its state only: the new side
        published its event."""
        history, latest, note = out
        if own:
            history, note = [], OWN_WRITE
        if history:
            topic = self.spec.history.topic
            for key, value, headers in history:
                produce(topic, key, value, headers + source if source else headers)
            batch.records_with_events += 1
            batch.events_out += len(history)
        else:
            reason = note or "no event"
            batch.no_event[reason] = batch.no_event.get(reason, 0) + 1
        if latest is not None:
            produce(self.spec.latest.topic, latest[0], latest[1], source or None)
            batch.latest_out += 1

"""events: a clean change of the entity's table -> its declared domain events and state.

Contract: one cleaned item in; out come one item per declared event the change yields (each
with `event`, in the envelope of `seam.transforms.declared.envelope`, and with
`latest_key`/`state` for the latest topic), or one item with no event and a `note` saying
why (tombstone, another table, no-op update, ...), which still carries the latest-topic
write when the entity's state changed. See `seam.transforms.declared.entity`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from seam.keys import check_known_keys
from seam.transforms.declared.entity import EntityPlan
from seam.transforms.model import Item
from seam.transforms.stage_loader import declared_pipeline


class EventsStage:
    name = "events"

    def __init__(self, plan: EntityPlan) -> None:
        self.plan = plan

    def process(self, item: Item) -> Iterable[Item]:
        return self.plan.process(item)


def create(options: Mapping[str, Any]) -> EventsStage:
    check_known_keys(options, (), "stage 'events' options")
    declared = declared_pipeline()
    return EventsStage(EntityPlan(declared.declaration, declared.references))

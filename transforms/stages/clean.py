"""clean: the declared rule chains of the entity's table (seam.transforms.declared).

Contract: one decoded item in, the same item out; for a change of the entity's table,
`before`/`after` are replaced by their clean rows (field names as declared). A value no
rule can fix in the NEW row follows its policy (reject: dead letter naming the column, the
value and the rule; absent/default: noted in `item.extra["absent"]`); in the OLD row it is
never refused (None or the default, noted in `item.extra["before_unknown"]`). Changes of
other tables pass on untouched. `lookup` rules read the tables they name, which this stage
keeps current from their change topics (read in full before the first record).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from seam.changes import UNAVAILABLE, RawRecord, Undecodable
from seam.keys import check_known_keys
from seam.streams.decode import decode
from seam.transforms.declared.clean import flavour_of
from seam.transforms.declared.runtime import DeclaredPipeline
from seam.transforms.model import Item
from seam.transforms.stage_loader import declared_pipeline


class CleanStage:
    name = "clean"

    def __init__(self, declared: DeclaredPipeline) -> None:
        self.references = declared.references
        self.table = declared.declaration.entity.table
        self.reference_topics = declared.reference_topics()

    def observe(self, record: RawRecord) -> None:
        change = decode(record)
        if isinstance(change, Undecodable):
            self.references.ignored += 1
            return
        self.references.apply(change)

    def process(self, item: Item) -> Iterable[Item]:
        change = item.change
        if change is None or item.table != self.table:
            return (item,)
        plan = self.references.plan(self.table, flavour_of(change.connector))
        raw_before, raw_after = change.before, change.after
        # An unchanged TOASTed value (PostgreSQL) keeps its old value. (`in` tests identity
        # first, and no JSON value equals the sentinel: a quick scan in C.)
        if raw_after is not None and raw_before is not None and UNAVAILABLE in raw_after.values():
            missing = [k for k, v in raw_after.items() if v is UNAVAILABLE]
            raw_after = {**raw_after, **{k: raw_before.get(k) for k in missing}}
        if raw_after is not None:
            item.after, absent = plan.clean(raw_after, strict=True)
            if absent:
                item.extra["absent"] = absent
        if raw_before is not None:
            changed = change.changed
            like = (
                (changed, item.after)
                if changed is not None and item.after is not None and "absent" not in item.extra
                else None
            )
            item.before, unknown = plan.clean(raw_before, strict=False, like=like)
            if unknown:
                item.extra["before_unknown"] = unknown
        return (item,)


def create(options: Mapping[str, Any]) -> CleanStage:
    check_known_keys(options, (), "stage 'clean' options")
    return CleanStage(declared_pipeline())

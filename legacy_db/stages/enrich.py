"""enrich: reference data (category and supplier names) and provenance.

Contract: one cleaned item in, the same item out with
* `provenance` set: source database, connector, table, log position (PostgreSQL lsn/txId,
  MySQL/MariaDB binlog file/pos/row/GTID), source time, snapshot flag, and the raw record's
  topic/partition/offset;
* for products, `category_name` / `supplier_name` added to the clean `before`/`after` rows:
  the referenced row's name, or None when the id is unknown here. An unknown reference is
  kept, never dead-lettered: about 0.5% of legacy products name a category that does not
  exist (W10), and a referenced row may only arrive later on its own topic. The map stage
  marks it (`{"id": 42, "resolved": false}`), so a consumer can tell it from a known one;
  nothing is invented. A category or supplier row that its own rules reject (a name too
  long or with control characters) is not used, so the references to it are unresolved.

The names come from the categories and suppliers change topics (options `categories`,
`suppliers`): every worker reads them in full before its first record and keeps them
current while it runs (`observe`), so all workers of a group see the same reference data
whatever partitions they own. On a replay the names are today's names, not the ones of the
day the change happened; event ids do not depend on them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from seam.changes import ChangeEvent, Op, RawRecord, Undecodable
from seam.keys import check_known_keys
from seam.legacy_db.stages.clean import clean_row, timestamp_unit
from seam.streams.decode import decode
from seam.transforms.model import Item, Reject
from seam.transforms.provenance import provenance


class ReferenceData:
    """id -> name for categories and suppliers, kept from their change events."""

    def __init__(self) -> None:
        self.categories: dict[int, str] = {}
        self.suppliers: dict[int, str] = {}
        self.ignored = 0  # reference records that were not usable (counted, not fatal)

    def apply(self, change: ChangeEvent) -> None:
        table = change.table.name if change.table is not None else None
        if table == "categories":
            target, id_col, id_field = self.categories, "cat_id", "category_id"
        elif table == "suppliers":
            target, id_col, id_field = self.suppliers, "supp_id", "supplier_id"
        else:
            self.ignored += 1
            return
        if change.op in (Op.DELETE, Op.TOMBSTONE):
            key = change.key.get(id_col)
            if type(key) is int:
                target.pop(key, None)
            return
        if change.after is None:
            self.ignored += 1
            return
        try:
            row, _ = clean_row(
                table, change.after, timestamp_unit(change.connector, "auto"), strict=True
            )
        except Reject:
            self.ignored += 1
            return
        target[row[id_field]] = row["name"]


class EnrichStage:
    name = "enrich"

    def __init__(self, reference_topics: tuple[str, ...]) -> None:
        self.reference_topics = reference_topics
        self.reference = ReferenceData()

    def observe(self, record: RawRecord) -> None:
        change = decode(record)
        if isinstance(change, Undecodable):
            self.reference.ignored += 1
            return
        self.reference.apply(change)

    def _names(self, row: dict[str, Any] | None) -> None:
        if row is None:
            return
        cat, supp = row.get("category_id"), row.get("supplier_id")
        row["category_name"] = self.reference.categories.get(cat) if cat is not None else None
        row["supplier_name"] = self.reference.suppliers.get(supp) if supp is not None else None

    def process(self, item: Item) -> Iterable[Item]:
        change = item.change
        if change is None:
            return (item,)
        if change.op is not Op.TOMBSTONE:
            item.provenance = provenance(change)
        if item.table == "products":
            self._names(item.before)
            self._names(item.after)
        return (item,)


def create(options: Mapping[str, Any]) -> EnrichStage:
    check_known_keys(options, ("categories", "suppliers"), "stage 'enrich' options")
    topics = tuple(str(options[k]) for k in ("categories", "suppliers") if options.get(k))
    return EnrichStage(topics)

"""map: a clean, enriched product change -> past-tense domain events and the new state.

Contract: one item in; out come one item per domain event (each with `event`, and with
`latest_key`/`state` for the latest topic), or one item with no event and a `note` saying
why (tombstone, reference table, no-op update, ...), which still carries the latest-topic
write when the product's state changed. An update without its old row (PostgreSQL with
REPLICA IDENTITY DEFAULT) is rejected: events are differences, and guessing them would
invent facts.

A product is *listed* while its row exists, is not soft-deleted (W8) and its status is not
delisted (W4 'X'). The latest topic holds exactly the listed products (a tombstone for any
other), and:

  create / snapshot, listed             -> ProductListed {product}
  create / snapshot, not listed         -> no event (note), latest tombstone
  update, listed -> not listed          -> ProductDelisted {reason: soft_deleted | status_delisted}
  update, not listed -> listed          -> ProductRelisted {product}
  update, listed -> listed, per change  -> ProductRenamed, ProductPriceChanged,
                                           ProductRecategorized, ProductSupplierChanged,
                                           ProductDescriptionChanged,
                                           ProductIdentifiersChanged (sku/ean),
                                           ProductDiscontinued, ProductReactivated
  update, nothing of the above changed  -> no event (note "no-op update"), latest updated
  update, not listed -> not listed      -> no event (note)
  delete of a listed (or unknown) row   -> ProductDelisted {reason: deleted}
  tombstone                             -> no event (note)

Event ids are UUIDv5 of (source database, table, log position, key, event type): a replay
or a Debezium re-delivery of the same change yields the same ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Final

from seam.changes import Op
from seam.keys import check_known_keys
from seam.legacy_db.rules import CURRENCY
from seam.transforms.declared.envelope import event_id
from seam.transforms.model import Item, Reject

ENTITY: Final = "product"


def is_listed(row: Mapping[str, Any] | None) -> bool:
    return row is not None and not row.get("deleted") and row.get("status") != "delisted"


def _price(amount: Decimal | None) -> dict[str, str] | None:
    return None if amount is None else {"amount": str(amount), "currency": CURRENCY}


def _ref(ident: int | None, name: str | None) -> dict[str, Any] | None:
    """A category or supplier reference: its id and name, or, when the enrich stage did not
    know the id (a W10 orphan, or a row not seen yet), its id marked `"resolved": false`."""
    if ident is None:
        return None
    return {"id": ident, "name": name} if name is not None else {"id": ident, "resolved": False}


def product_state(row: Mapping[str, Any]) -> dict[str, Any]:
    """The latest-topic value of a product: its clean row, unknown fields left out."""
    state: dict[str, Any] = {
        "product_id": row["product_id"],
        "sku": row["sku"],
        "name": row["name"],
        "status": row["status"],
    }
    price = _price(row.get("price"))
    if price is not None:
        state["price"] = price
    category = _ref(row.get("category_id"), row.get("category_name"))
    if category is not None:
        state["category"] = category
    supplier = _ref(row.get("supplier_id"), row.get("supplier_name"))
    if supplier is not None:
        state["supplier"] = supplier
    for name in ("ean", "description", "created_at", "updated_at"):
        value = row.get(name)
        if value is not None:
            state[name] = value
    return state


def _diff_events(
    old: Mapping[str, Any], new: Mapping[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if old.get("name") != new["name"]:
        out.append(("ProductRenamed", {"old_name": old.get("name"), "new_name": new["name"]}))
    if old.get("price") != new.get("price"):
        out.append(
            (
                "ProductPriceChanged",
                {"old_price": _price(old.get("price")), "new_price": _price(new.get("price"))},
            )
        )
    if old.get("category_id") != new.get("category_id"):
        out.append(
            (
                "ProductRecategorized",
                {
                    "old_category": _ref(old.get("category_id"), old.get("category_name")),
                    "new_category": _ref(new.get("category_id"), new.get("category_name")),
                },
            )
        )
    if old.get("supplier_id") != new.get("supplier_id"):
        out.append(
            (
                "ProductSupplierChanged",
                {
                    "old_supplier": _ref(old.get("supplier_id"), old.get("supplier_name")),
                    "new_supplier": _ref(new.get("supplier_id"), new.get("supplier_name")),
                },
            )
        )
    if old.get("description") != new.get("description"):
        out.append(
            (
                "ProductDescriptionChanged",
                {
                    "old_description": old.get("description"),
                    "new_description": new.get("description"),
                },
            )
        )
    if old.get("sku") != new["sku"] or old.get("ean") != new.get("ean"):
        out.append(
            (
                "ProductIdentifiersChanged",
                {
                    "old_sku": old.get("sku"),
                    "new_sku": new["sku"],
                    "old_ean": old.get("ean"),
                    "new_ean": new.get("ean"),
                },
            )
        )
    old_status, new_status = old.get("status"), new["status"]
    if old_status != new_status:
        if new_status == "discontinued":
            out.append(("ProductDiscontinued", {"previous_status": old_status}))
        elif new_status == "active":
            out.append(("ProductReactivated", {"previous_status": old_status}))
    return out


class MapStage:
    name = "map"

    def _product_id(self, item: Item) -> int:
        for row in (item.after, item.before):
            if row is not None and type(row.get("product_id")) is int:
                return int(row["product_id"])
        key = item.change.key.get("prod_id") if item.change is not None else None
        if type(key) is int:
            return key
        raise Reject("products: no prod_id in the row or the record key")

    def process(self, item: Item) -> Iterable[Item]:
        change = item.change
        if change is None:  # decode's note (a heartbeat record, ...) stays
            item.note = item.note or "not decoded"
            return (item,)
        op = change.op
        if op is Op.TOMBSTONE:
            item.note = "tombstone"
            return (item,)
        if item.table != "products":
            item.note = f"table {item.table} has no domain events"
            return (item,)
        if op in (Op.TRUNCATE, Op.MESSAGE):
            item.note = f"{op.name.lower()} event"
            return (item,)
        product_id = self._product_id(item)
        key = str(product_id)
        before, after = item.before, item.after
        events: list[tuple[str, dict[str, Any]]] = []
        state: dict[str, Any] | None = None
        if op in (Op.CREATE, Op.READ):
            if after is None:
                raise Reject("products: create without a row")
            if is_listed(after):
                state = product_state(after)
                events.append(("ProductListed", {"product": state}))
            else:
                item.note = "unlisted product (soft-deleted or status delisted)"
        elif op is Op.DELETE:
            if before is None or before.get("status") is None or is_listed(before):
                events.append(("ProductDelisted", {"reason": "deleted"}))
            else:
                item.note = "delete of an unlisted product"
        else:  # update
            if before is None:
                raise Reject(
                    "products: update without the old row: cannot tell what changed "
                    "(set REPLICA IDENTITY FULL on the table: list it under "
                    "'replica_identity_full:' in the connector spec, run `seam connectors prepare`)"
                )
            if after is None:
                raise Reject("products: update without a new row")
            was, now = is_listed(before), is_listed(after)
            if now:
                state = product_state(after)
            if was and not now:
                reason = "soft_deleted" if after.get("deleted") else "status_delisted"
                events.append(("ProductDelisted", {"reason": reason}))
            elif now and not was:
                events.append(("ProductRelisted", {"product": state}))
            elif now and was:
                events.extend(_diff_events(before, after))
                if not events:
                    item.note = "no-op update"
            else:
                item.note = "update of an unlisted product"
        item.latest_key = key
        item.state = state
        if not events:
            return (item,)
        prov = item.provenance or {}
        occurred = prov.get("source_ts")
        out = []
        for event_type, data in events:
            event = {
                "event_id": event_id(prov, key, event_type),
                "event_type": event_type,
                "entity": ENTITY,
                "product_id": product_id,
                "occurred_at": occurred,
                "data": data,
                "provenance": prov,
            }
            out.append(
                Item(
                    item.raw,
                    item.change,
                    item.table,
                    item.before,
                    item.after,
                    prov,
                    event,
                    key,
                    state,
                    None,
                    item.extra,
                )
            )
        return out


def create(options: Mapping[str, Any]) -> MapStage:
    check_known_keys(options, (), "stage 'map' options")
    return MapStage()

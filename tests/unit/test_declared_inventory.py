"""The catalog's stock levels and price history, migrated by declaration alone
(legacy_db/pipelines/stock.yaml, prices.yaml, tables/inventory.yaml): Debezium-shaped changes
through the built stages (decode, clean, events, validate against legacy_db/schemas), and
the events, record keys and states they give, written out by hand.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import orjson
import pytest

from seam.changes import RawRecord
from seam.legacy_db.files import folder
from seam.legacy_db.synthetic import envelope, micros, price_rows, stock_rows
from seam.transforms.outputs import publication
from seam.transforms.pipeline import Pipeline, Produced, Rejected
from seam.transforms.pipeline_file import load_pipeline

pytestmark = pytest.mark.unit

STOCK_TOPIC = "catalog.public.stock_levels"
PRICES_TOPIC = "catalog.public.product_prices"


def stock(prod_id: int, warehouse: str, qty: int, counted: str | None) -> dict[str, Any]:
    return {
        "prod_id": prod_id,
        "warehouse_cd": warehouse,
        "qty_on_hand": qty,
        "last_counted": None if counted is None else micros(counted),
    }


def price(
    price_id: int, amount: str, currency: str, since: str, until: str | None = None
) -> dict[str, Any]:
    return {
        "price_id": price_id,
        "prod_id": 17,
        "amount": amount,
        "currency": currency,
        "valid_from": micros(since),
        "valid_to": None if until is None else micros(until),
    }


class Run:
    """One pipeline and the records run through it, offsets counting up."""

    def __init__(self, name: str, table: str, topic: str) -> None:
        self.spec = load_pipeline(folder("pipelines") / f"{name}.yaml")
        self.pipeline: Pipeline = self.spec.build()
        self.table, self.topic = table, topic
        self.offset, self.lsn = 0, 5_000

    def change(
        self,
        op: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
        *,
        snapshot: str = "false",
    ) -> Produced | Rejected:
        self.lsn += 8
        key, value = envelope(self.table, op, before, after, self.lsn, snapshot=snapshot)
        return self.record(key, value)

    def record(self, key: bytes | None, value: bytes | None) -> Produced | Rejected:
        self.offset += 1
        return self.pipeline.run(RawRecord(key, value, self.topic, 0, self.offset))

    def published(self, outcome: Produced | Rejected) -> tuple[list[Any], Any]:
        """(history: [(key, event type, data)], latest: (key, state or None) or None)."""
        assert isinstance(outcome, Produced), outcome
        out = publication(outcome, self.spec.history.key)
        history = []
        for key, value, _headers in out.history:
            event = orjson.loads(value)
            history.append((key.decode(), event["event_type"], event["data"]))
        latest = None
        if out.latest is not None:
            key, state = out.latest
            latest = (key.decode(), None if state is None else orjson.loads(state))
        return history, latest


def test_stock_levels_by_declaration_composite_keys_events_and_states() -> None:
    run = Run("stock", "stock_levels", STOCK_TOPIC)
    # A snapshot read: 02:30 on 2026-03-29 does not exist in Berlin (clocks went 02:00 ->
    # 03:00): read with the offset before the change, +01:00.
    read = stock(17, "BER", 5, "2026-03-29 02:30:00")
    outcome = run.change("r", None, read, snapshot="true")
    state = {"product_id": 17, "warehouse": "BER", "quantity": 5}
    state["last_counted"] = "2026-03-29T01:30:00Z"
    assert run.published(outcome) == (
        [('[17,"BER"]', "StockLevelRecorded", {"stock_level": state})],
        ('[17,"BER"]', state),
    )
    event = outcome.events[0].event  # type: ignore[union-attr]
    assert event is not None
    assert (event["entity"], event["product_id"], event["warehouse"]) == ("stock_level", 17, "BER")
    assert event["schema_version"] == 1

    # Oversold (W14): a negative quantity is a fact, not a wart to refuse.
    oversold = {**read, "qty_on_hand": -2}
    outcome = run.change("u", read, oversold)
    assert run.published(outcome) == (
        [('[17,"BER"]', "StockLevelChanged", {"old_quantity": 5, "new_quantity": -2})],
        ('[17,"BER"]', {**state, "quantity": -2}),
    )

    # A stock take that finds 40, at 02:30 on 2026-10-25, which happens twice in Berlin:
    # the earlier one (+02:00). Two facts, two events, in declared order.
    counted = {**oversold, "qty_on_hand": 40, "last_counted": micros("2026-10-25 02:30:00")}
    outcome = run.change("u", oversold, counted)
    after_count = {**state, "quantity": 40, "last_counted": "2026-10-25T00:30:00Z"}
    assert run.published(outcome) == (
        [
            ('[17,"BER"]', "StockLevelChanged", {"old_quantity": -2, "new_quantity": 40}),
            (
                '[17,"BER"]',
                "StockCounted",
                {"counted_at": "2026-10-25T00:30:00Z", "quantity": 40},
            ),
        ],
        ('[17,"BER"]', after_count),
    )

    # The same product in a second warehouse is another entity; never counted: no field.
    hamburg = stock(17, "HAM", 0, None)
    outcome = run.change("c", None, hamburg)
    ham_state = {"product_id": 17, "warehouse": "HAM", "quantity": 0}
    assert run.published(outcome) == (
        [('[17,"HAM"]', "StockLevelRecorded", {"stock_level": ham_state})],
        ('[17,"HAM"]', ham_state),
    )

    # A hard delete (the product's): the stock level is gone, its latest key tombstoned;
    # Debezium's tombstone after it yields nothing, counted.
    outcome = run.change("d", counted, None)
    assert run.published(outcome) == (
        [('[17,"BER"]', "StockLevelRemoved", {"reason": "deleted"})],
        ('[17,"BER"]', None),
    )
    tombstone = run.record(b'{"prod_id":17,"warehouse_cd":"BER"}', None)
    assert isinstance(tombstone, Produced)
    assert tombstone.zero_reason == "tombstone"

    # A warehouse code that is not three letters: dead letter naming column, value, rule.
    outcome = run.change("c", None, stock(18, "B3R", 1, None))
    assert isinstance(outcome, Rejected)
    assert outcome.stage == "clean"
    assert outcome.reason.startswith("stock_levels: warehouse_cd: pattern: ")
    assert "'B3R'" in outcome.reason

    # An update without its old row (REPLICA IDENTITY DEFAULT) cannot say what changed:
    # refused with the fix (the connector spec lists stock_levels as FULL).
    outcome = run.change("u", None, hamburg)
    assert isinstance(outcome, Rejected)
    assert "REPLICA IDENTITY FULL" in outcome.reason


def test_prices_by_declaration_events_and_states() -> None:
    run = Run("prices", "product_prices", PRICES_TOPIC)
    # W13: 'eur' is EUR. Midnight in Berlin in January is 23:00 UTC the day before.
    first = price(7, "12.50", "eur", "2025-01-01 00:00:00")
    outcome = run.change("r", None, first, snapshot="true")
    state = {
        "price_id": 7,
        "product_id": 17,
        "amount": "12.50",
        "currency": "EUR",
        "valid_from": "2024-12-31T23:00:00Z",
    }
    # History and latest records are keyed by the price.
    assert run.published(outcome) == (
        [("7", "PriceScheduled", {"price": state})],
        ("7", state),
    )

    # A reprice: the open period closes (valid_to), a new one opens.
    closed = {**first, "valid_to": micros("2026-02-01 09:00:00")}
    outcome = run.change("u", first, closed)
    assert run.published(outcome) == (
        [
            (
                "7",
                "PriceValidityChanged",
                {
                    "old_valid_from": "2024-12-31T23:00:00Z",
                    "new_valid_from": "2024-12-31T23:00:00Z",
                    "old_valid_to": None,
                    "new_valid_to": "2026-02-01T08:00:00Z",
                },
            )
        ],
        ("7", {**state, "valid_to": "2026-02-01T08:00:00Z"}),
    )
    second = price(8, "13.90", "EUR", "2026-02-01 09:00:00")
    outcome = run.change("c", None, second)
    second_state = {
        "price_id": 8,
        "product_id": 17,
        "amount": "13.90",
        "currency": "EUR",
        "valid_from": "2026-02-01T08:00:00Z",
    }
    assert run.published(outcome) == (
        [("8", "PriceScheduled", {"price": second_state})],
        ("8", second_state),
    )

    # An amount edited in place is a correction.
    corrected = {**second, "amount": "14.10"}
    outcome = run.change("u", second, corrected)
    data = {
        "old_amount": "13.90",
        "new_amount": "14.10",
        "old_currency": "EUR",
        "new_currency": "EUR",
    }
    assert run.published(outcome) == (
        [("8", "PriceCorrected", data)],
        ("8", {**second_state, "amount": "14.10"}),
    )
    # 'EUR' -> 'eur' changes nothing clean: no event, counted as a no-op update.
    outcome = run.change("u", corrected, {**corrected, "currency": "eur"})
    assert isinstance(outcome, Produced)
    assert outcome.zero_reason == "no-op update"

    # A negative amount is a mistake: dead letter naming column, value and rule.
    outcome = run.change("c", None, price(9, "-1.00", "EUR", "2026-03-01 00:00:00"))
    assert isinstance(outcome, Rejected)
    assert outcome.stage == "clean"
    assert outcome.reason == "product_prices: amount: range: '-1.00' is outside 0..99999999.99"

    outcome = run.change("d", closed, None)
    assert run.published(outcome) == (
        [("7", "PriceWithdrawn", {"reason": "deleted"})],
        ("7", None),
    )


def test_the_generated_catalog_snapshots_cleanly_one_event_per_row() -> None:
    """Every stock level and price the legacy generator seeds (its warts: 'eur', negative
    stock, unknown count times) is an event valid against its schema, none dead-lettered."""
    for name, table, topic, rows in (
        ("stock", "stock_levels", STOCK_TOPIC, list(stock_rows(500))),
        ("prices", "product_prices", PRICES_TOPIC, list(price_rows(500))),
    ):
        run = Run(name, table, topic)
        seen: Counter[str] = Counter()
        keys = set()
        for row in rows:
            outcome = run.change("r", None, row, snapshot="true")
            assert isinstance(outcome, Produced), (row, outcome)
            (event,) = outcome.events
            assert event.event is not None
            seen[event.event["event_type"]] += 1
            keys.add(event.latest_key)
        assert len(keys) == len(rows)  # one entity per legacy row
        assert sum(seen.values()) == len(rows)
        if name == "stock":
            assert seen == {"StockLevelRecorded": len(rows)}
            assert min(r["qty_on_hand"] for r in rows) < 0  # oversold rows are among them
            assert any(r["last_counted"] is None for r in rows)
            assert '[1,"VIE"]' in keys
        else:
            assert seen == {"PriceScheduled": len(rows)}
            assert {r["currency"] for r in rows} == {"EUR", "eur"}

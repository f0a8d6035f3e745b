"""Changes seam itself wrote into the legacy database: the reverse flow's loop prevention.

When a capability's writes move to a new service, the new side publishes the domain event
and a seam writer keeps the legacy database in step. Debezium then captures that write like
any other; published again, it would be a second event for one change (a loop). Debezium
carries no replication origin, so the writer marks its transactions in a way the source
log does carry, and the transform recognises them:

- MariaDB: the writer's session sets `gtid_domain_id` to the declared domain; Debezium's
  `source.gtid` (`domain-server-sequence`) names it.
- PostgreSQL: the writer reads its transaction id (`pg_current_xact_id()`) and records it in
  a ledger topic, flushed before it commits. Debezium's `source.txId` is that id's low 32
  bits. A change the transform reads was committed before it was read, so reading the ledger
  to the end offsets taken after reading the change is sure to include the writer's entry.

Declared in the pipeline file:

    own_writes:
      ledger: orders.own-writes         # PostgreSQL sources
      gtid_domain: 77                   # MariaDB sources

A change of seam's own origin still updates the latest state (the legacy row is the state)
but publishes no domain event: it is counted as a record with no event, reason `own_write`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

OWN_WRITE: Final = "own_write"  # the no-event reason of a change seam wrote itself
_TX_ID_MASK: Final = 0xFFFFFFFF
# The ledger's transaction ids a worker keeps, newest first kept. An id is needed only until
# the transform reads the writer's change, so the bound is the number of writer transactions
# the transform may lag behind: 500,000 (hours of a busy writer) in about 40 MB. An id
# evicted before its change is read lets that change publish its event (`OwnOrigin.evicted`
# counts the evictions).
LEDGER_BOUND: Final = 500_000


@dataclass(frozen=True)
class OwnWrites:
    """How a pipeline recognises changes that seam's writer made (see the module docstring)."""

    ledger: str | None = None  # PostgreSQL: the topic of the writer's transaction ids
    gtid_domain: int | None = None  # MariaDB: the GTID domain of the writer's sessions


def pg_tx_id(xact_id: int) -> int:
    """The id Debezium reports as `source.txId` for a `pg_current_xact_id()` (its epoch dropped)."""
    return xact_id & _TX_ID_MASK


def ledger_entry(tx_id: int, writer: str, ts_ms: int) -> tuple[bytes, bytes]:
    """The key and value of the ledger record for one transaction of `writer`."""
    key = str(tx_id).encode()
    value = json.dumps({"tx_id": tx_id, "writer": writer, "ts_ms": ts_ms}).encode()
    return key, value


def ledger_tx_id(value: bytes | None) -> int | None:
    """The transaction id of a ledger record's value, or None when it is not one."""
    if not value:
        return None
    try:
        tx_id = json.loads(value).get("tx_id")
    except (ValueError, AttributeError):
        return None
    return tx_id if isinstance(tx_id, int) and not isinstance(tx_id, bool) else None


def gtid_domain(gtid: str | None) -> int | None:
    """The domain of a MariaDB GTID (`0-1-1234` -> 0), or None for another form."""
    if not gtid:
        return None
    parts = gtid.split("-")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0])


class OwnOrigin:
    """Decides whether a change is one seam's writer made: its GTID domain is the declared
    one (MariaDB), or its transaction id is in the ledger (PostgreSQL). The ledger's ids are
    `tx_ids`, a dict used as an insertion-ordered set (the compiled engine reads the same
    object), at most `bound` of them, the oldest evicted first."""

    def __init__(self, declared: OwnWrites, bound: int = LEDGER_BOUND) -> None:
        self.declared = declared
        self.domain = declared.gtid_domain
        self.bound = bound
        self.tx_ids: dict[int, None] = {}
        self.evicted = 0  # ids dropped for the bound (a lag beyond it may leak events)

    def add(self, value: bytes | None) -> None:
        """Remember the transaction of one ledger record's value (others are ignored)."""
        tx_id = ledger_tx_id(value)
        if tx_id is None:
            return
        ids = self.tx_ids
        ids[pg_tx_id(tx_id)] = None
        if len(ids) > self.bound:
            del ids[next(iter(ids))]
            self.evicted += 1

    def is_own(self, source: Mapping[str, Any]) -> bool:
        """Whether the change with this Debezium `source` block is seam's own write (the
        compiled engine's `Engine.own` decides alike)."""
        if self.tx_ids:
            tx_id = source.get("txId")
            if type(tx_id) is int and tx_id in self.tx_ids:
                return True
        if self.domain is not None:
            gtid = source.get("gtid")
            return type(gtid) is str and gtid_domain(gtid) == self.domain
        return False

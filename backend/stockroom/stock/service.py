"""Stock use cases, one module per use case group, re-exported here for the routers and CLIs.

Each use case is one transaction, and every change to a level goes with its immutable movement
and its outbox event through the posting primitive (`stock.ledger`, SQL function `stock_post`):

- `movements`: post (one statement on the hot path), read, list and reverse movements;
- `transfers`: create, complete and cancel transfers;
- `counts`: record and review physical counts;
- `levels`: level and low-stock reads, dashboard counts, the ledger integrity check.

Locking, so that nothing deadlocks and nothing runs twice: `stock_post` locks every level it
changes in one global order (product id, warehouse id); transfers and counts change state with a
conditional UPDATE (`WHERE status = ...`) first, which locks their row, so of N concurrent
transitions exactly one finds the old status.
"""

from __future__ import annotations

from stockroom.stock.counts import get_count, list_counts, record_count, review_count
from stockroom.stock.levels import (
    count_low_stock_products,
    count_open_transfers,
    ledger_drift,
    list_levels,
    list_low_stock,
)
from stockroom.stock.movements import (
    get_movement,
    list_movements,
    post_movement,
    post_movement_idempotent,
    reverse_movement,
    stock_history,
)
from stockroom.stock.transfers import (
    cancel_transfer,
    complete_transfer,
    create_transfer,
    get_transfer,
    list_transfers,
)

__all__ = [
    "cancel_transfer",
    "complete_transfer",
    "count_low_stock_products",
    "count_open_transfers",
    "create_transfer",
    "get_count",
    "get_movement",
    "get_transfer",
    "ledger_drift",
    "list_counts",
    "list_levels",
    "list_low_stock",
    "list_movements",
    "list_transfers",
    "post_movement",
    "post_movement_idempotent",
    "record_count",
    "reverse_movement",
    "review_count",
    "stock_history",
]

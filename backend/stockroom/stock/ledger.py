"""The ledger's posting primitive: every change to stock goes through `post_movements`.

One call is one round trip: the SQL function `stock_post(lines, ctx)` (migration 0008) checks the
products and warehouses, locks the levels in one global order, applies the guarded changes,
inserts the movements and their outbox events (`stock.movement_posted`, and `stock.level_low`
when a line crosses the reorder point), and returns the movements. A refused posting writes
nothing and comes back as one reason, which this module raises as the contract's error.

- `post_movements(session, lines, ctx)`: inside the session's transaction, for use cases that
  write more than the ledger (transfers, counts, reversals, order receipts and shipments). The
  caller's transaction commits or rolls back everything together.
- `post_movements_now(connection, lines, ctx)`: the statement is its own transaction (the driver
  connection must have none open); the hot path of `POST /stock-movements`.
- `post_movement_keyed_now(connection, line, ctx, claim)`: the same for one line made idempotent
  by an `Idempotency-Key`, claim, lookup, posting and stored response in one statement
  (`stock_post_keyed`, migration 0014).

Lines are set-based: N lines are one statement. Several lines on one level are applied in line
order (each movement's `on_hand_after` is its running total) and every intermediate on hand must
stay at or above zero. docs/stock.md describes the function's contract.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.context import Context
from stockroom.db.base import uuid7
from stockroom.events.recorder import next_event_stamp, payload_origin
from stockroom.events.wakeup import mark_outbox_pending, wake_relays
from stockroom.http.errors import AppError
from stockroom.idempotency import (
    IdempotencyKey,
    IdempotencyKeyReused,
    IdempotentRequestInProgress,
    StoredResponse,
    claim_argument,
)
from stockroom.stock.errors import (
    InactiveProduct,
    InactiveWarehouse,
    InsufficientAvailable,
    InsufficientStock,
    ProductNotFound,
    StockLimitExceeded,
    WarehouseNotFound,
)
from stockroom.stock.models import MovementType
from stockroom.stock.schemas import MovementRead
from stockroom.types import utcnow

_NUMERIC_OUT_OF_RANGE = "22003"


@dataclass(frozen=True, slots=True)
class Line:
    """One change to one level, and (unless `signed_quantity` is 0) its movement.

    `quantity` is the movement's quantity as posted and `signed_quantity` its change to on hand;
    `in_transit_delta`, `reserved_delta` and `on_order_delta` change the level's other
    quantities in the same statement. A line with `signed_quantity == 0` writes no movement (a
    transfer's completion releasing the source's in-transit units, a confirmation reserving).
    `default_cost` / `default_price`: a missing unit cost / price is the product's own.
    `keep_reserved`: on hand must stay at or above reserved, i.e. the line takes only available
    stock (sales and new transfers; a shipment that consumes its own reservation with
    `reserved_delta=-quantity` too).
    """

    product_id: uuid.UUID
    warehouse_id: uuid.UUID
    type: MovementType
    quantity: int
    signed_quantity: int
    in_transit_delta: int = 0
    reserved_delta: int = 0
    on_order_delta: int = 0
    unit_cost: Decimal | None = None
    unit_price: Decimal | None = None
    default_cost: bool = False
    default_price: bool = False
    reference: str | None = None
    note: str | None = None
    reverses_id: uuid.UUID | None = None
    transfer_id: uuid.UUID | None = None
    purchase_order_id: uuid.UUID | None = None
    sales_order_id: uuid.UUID | None = None
    require_active_product: bool = True
    require_active_warehouse: bool = True
    keep_reserved: bool = False
    id: uuid.UUID | None = None  # the movement's id; a fresh UUIDv7 when None


def sqlstate(exc: DBAPIError) -> str | None:
    """The SQLSTATE of a database error raised through SQLAlchemy (asyncpg's, under its
    adapter)."""
    origin = exc.orig
    for candidate in (origin, getattr(origin, "__cause__", None)):
        state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(state, str):
            return state
    return None


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _arguments(lines: Sequence[Line], ctx: Context) -> tuple[str, str]:
    """The function's two jsonb arguments, as JSON text."""
    encoded = []
    for index, line in enumerate(lines):
        event_id, occurred_at = next_event_stamp()
        low_event_id, low_occurred_at = next_event_stamp()
        encoded.append(
            {
                "line": index,
                "id": str(line.id or uuid7()),
                "product_id": str(line.product_id),
                "warehouse_id": str(line.warehouse_id),
                "type": line.type.value,
                "quantity": line.quantity,
                "signed_quantity": line.signed_quantity,
                "in_transit_delta": line.in_transit_delta,
                "reserved_delta": line.reserved_delta,
                "on_order_delta": line.on_order_delta,
                "unit_cost": _text(line.unit_cost),
                "unit_price": _text(line.unit_price),
                "default_cost": line.default_cost,
                "default_price": line.default_price,
                "reference": line.reference,
                "note": line.note,
                "reverses_id": _text(line.reverses_id),
                "transfer_id": _text(line.transfer_id),
                "purchase_order_id": _text(line.purchase_order_id),
                "sales_order_id": _text(line.sales_order_id),
                "require_active_product": line.require_active_product,
                "require_active_warehouse": line.require_active_warehouse,
                "keep_reserved": line.keep_reserved,
                "event_id": str(event_id),
                "occurred_at": occurred_at.isoformat(),
                "low_event_id": str(low_event_id),
                "low_occurred_at": low_occurred_at.isoformat(),
            }
        )
    context = {
        "created_by": _text(ctx.actor.id) if ctx.actor else None,
        "request_id": ctx.request_id,
        "created_at": utcnow().isoformat(),
        **payload_origin(ctx),
    }
    return json.dumps(encoded), json.dumps(context)


def _refusal(row: Any, lines: Sequence[Line]) -> AppError:
    reason = row["reason"]
    line = lines[row["line"]]
    product_id, warehouse_id = str(row["product_id"]), str(row["warehouse_id"])
    at: dict[str, Any] = {"line": row["line"]} if len(lines) > 1 else {}
    if reason == "product_not_found":
        return ProductNotFound(product_id=product_id, **at)
    if reason == "warehouse_not_found":
        return WarehouseNotFound(warehouse_id=warehouse_id, **at)
    if reason == "inactive_product":
        return InactiveProduct(product_id=product_id, **at)
    if reason == "inactive_warehouse":
        return InactiveWarehouse(warehouse_id=warehouse_id, **at)
    if reason == "insufficient_stock":
        return InsufficientStock(
            f"not enough stock: this {line.type.value} needs {-line.signed_quantity} on hand",
            product_id=product_id,
            warehouse_id=warehouse_id,
            **at,
        )
    if reason == "insufficient_available":
        return InsufficientAvailable(
            f"not enough available stock: this {line.type.value} needs "
            f"{-line.signed_quantity} on hand beyond the reserved units",
            product_id=product_id,
            warehouse_id=warehouse_id,
            **at,
        )
    if reason == "stock_limit_exceeded":
        return StockLimitExceeded(**at)
    # insufficient_reserved / insufficient_on_order: the caller released more than it holds,
    # which its own state transitions must prevent; a bug, not a client error.
    raise RuntimeError(f"stock_post refused with an unknown reason {reason!r}")


def refusal(row: Any, lines: Sequence[Line]) -> AppError:
    """The contract's error for a refusal of `stock_post` (a row with its `reason`, `line`,
    `product_id` and `warehouse_id`) given `lines`: for SQL functions that call `stock_post`
    themselves and pass its refusal on (the sales order actions, migration 0013)."""
    return _refusal(row, lines)


def _movements(rows: Sequence[Any], lines: Sequence[Line]) -> list[MovementRead]:
    # `rows`: SQLAlchemy RowMappings or asyncpg Records, both read by column name.
    if rows and rows[0]["reason"] is not None:
        raise _refusal(rows[0], lines)
    return [MovementRead.model_validate(dict(row)) for row in rows]


_CALL = text("SELECT * FROM stock_post(CAST(:lines AS jsonb), CAST(:ctx AS jsonb))")
_CALL_NOW = "SELECT * FROM stock_post($1::jsonb, $2::jsonb)"


async def post_movements(
    session: AsyncSession, lines: Sequence[Line], ctx: Context
) -> list[MovementRead]:
    """Post `lines` in the session's open transaction, all or nothing; returns the movements
    written (in line order; lines with `signed_quantity == 0` write none).

    Raises the contract's error (404 ProductNotFound / WarehouseNotFound, 409 InactiveProduct /
    InactiveWarehouse / InsufficientStock / InsufficientAvailable / StockLimitExceeded) for the
    first line refused; the
    function has then written nothing, and the caller's transaction is still usable.
    """
    if not lines:
        return []
    encoded, context = _arguments(lines, ctx)
    try:
        result = await session.execute(_CALL, {"lines": encoded, "ctx": context})
    except DBAPIError as exc:
        if sqlstate(exc) == _NUMERIC_OUT_OF_RANGE:
            raise StockLimitExceeded() from None
        raise
    movements = _movements(result.mappings().all(), lines)
    if movements:
        mark_outbox_pending(session.sync_session)  # wakes the relays once the caller commits
    return movements


async def post_movements_now(
    connection: asyncpg.Connection, lines: Sequence[Line], ctx: Context
) -> list[MovementRead]:
    """`post_movements` as a statement of its own: committed when it returns (the driver
    connection must not be inside a transaction, or it joins that one)."""
    if not lines:
        return []
    encoded, context = _arguments(lines, ctx)
    try:
        rows = await connection.fetch(_CALL_NOW, encoded, context)
    except asyncpg.NumericValueOutOfRangeError:
        raise StockLimitExceeded() from None
    movements = _movements(rows, lines)
    if movements:
        wake_relays()
    return movements


_CALL_KEYED = "SELECT * FROM stock_post_keyed($1::jsonb, $2::jsonb, $3::jsonb)"


async def post_movement_keyed_now(
    connection: asyncpg.Connection,
    line: Line,
    ctx: Context,
    claim: IdempotencyKey,
    *,
    status: int = 201,
) -> MovementRead | StoredResponse:
    """`post_movements_now` of one line, made idempotent by `claim` in the same statement.

    Returns the fresh movement (read from the response body the function stored with the key,
    so the first response and its replays carry the same JSON), or the stored response of an
    earlier request with the same key. Raises `IdempotentRequestInProgress` (409) while another
    request holds the key, `IdempotencyKeyReused` (422) for another request under the key, and
    the posting's own refusals (the caller stores those: `idempotency.remember_refusal`).
    """
    encoded, context = _arguments([line], ctx)
    try:
        row = await connection.fetchrow(
            _CALL_KEYED, encoded, context, claim_argument(claim, status)
        )
    except asyncpg.NumericValueOutOfRangeError:
        raise StockLimitExceeded() from None
    assert row is not None
    reason = row["reason"]
    if reason is None:
        wake_relays()
        return MovementRead.model_validate_json(row["body"])
    if reason == "replay":
        return StoredResponse(status=row["status"], body=json.loads(row["body"]))
    if reason == "idempotency_request_in_progress":
        raise IdempotentRequestInProgress()
    if reason == "idempotency_key_reused":
        raise IdempotencyKeyReused()
    raise _refusal(row, [line])

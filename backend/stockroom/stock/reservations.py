"""Stock use cases of purchase and sales orders: receipts, shipments, reservations, on order.

These run inside the order's transaction (the purchasing or sales service opens it, after
locking the order row); each is one statement against the levels (see `order_repository`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stockroom import events
from stockroom.db.base import utcnow
from stockroom.http.context import Context
from stockroom.stock import order_repository
from stockroom.stock.errors import (
    InactiveProduct,
    InactiveWarehouse,
    InsufficientStock,
    ProductNotFound,
    WarehouseNotFound,
)
from stockroom.stock.order_repository import LevelChange, MovementRow, OrderProduct, Shortage

__all__ = [
    "LevelChange",
    "MovementRow",
    "OrderProduct",
    "Shortage",
    "add_on_order",
    "change_levels",
    "checked_order_targets",
    "order_drift",
    "post_order_movements",
    "reserve_lines",
]


async def post_order_movements(
    session: AsyncSession,
    ctx: Context,
    warehouse_id: uuid.UUID,
    changes: Sequence[LevelChange],
    *,
    movement_type: str,
    reference: str | None = None,
    note: str | None = None,
    purchase_order_id: uuid.UUID | None = None,
    sales_order_id: uuid.UUID | None = None,
) -> list[MovementRow]:
    """Post one movement per change (receipts or sales of an order) with its level change, all
    in one statement, and record a `stock.movement_posted` event for each. All or nothing: if
    any level cannot take its change, this raises 409 insufficient_stock and the caller's
    transaction rolls back."""
    now = utcnow()
    actor_id = ctx.actor.id if ctx.actor else None
    rows = await order_repository.post_order_lines(
        session,
        warehouse_id,
        changes,
        movement_type=movement_type,
        reference=reference,
        note=note,
        purchase_order_id=purchase_order_id,
        sales_order_id=sales_order_id,
        created_by=actor_id,
        request_id=ctx.request_id,
        created_at=now,
    )
    if rows is None:
        raise InsufficientStock(
            "a line's stock level cannot take this change; nothing was written",
            warehouse_id=str(warehouse_id),
        )
    by_product = {c.product_id: c for c in changes}
    for row in rows:
        change = by_product[row.product_id]
        if row.movement_id is None:
            continue
        data: dict[str, Any] = {
            "movement_id": row.movement_id,
            "product_id": row.product_id,
            "warehouse_id": warehouse_id,
            "type": movement_type,
            "quantity": abs(change.on_hand),
            "signed_quantity": change.on_hand,
            "on_hand_after": row.on_hand,
            "unit_price": change.unit_price,
            "reference": reference,
            "purchase_order_id": purchase_order_id,
            "sales_order_id": sales_order_id,
        }
        events.record(
            session, "stock.movement_posted", ctx, entity=("product", row.product_id), data=data
        )
    return rows


async def change_levels(
    session: AsyncSession, warehouse_id: uuid.UUID, changes: Sequence[LevelChange]
) -> list[MovementRow]:
    """Change reserved and on order (no movement), all lines in one statement. A change that
    finds no level or would go below zero means the levels drifted from the orders: it raises
    (the transaction rolls back) rather than write a wrong number."""
    rows = await order_repository.post_order_lines(
        session,
        warehouse_id,
        changes,
        movement_type=None,
        reference=None,
        note=None,
        purchase_order_id=None,
        sales_order_id=None,
        created_by=None,
        request_id=None,
        created_at=utcnow(),
    )
    if rows is None:
        raise RuntimeError(
            "reserved or on order of a level disagrees with its orders; run `stockroom stock check`"
        )
    return rows


async def add_on_order(
    session: AsyncSession, warehouse_id: uuid.UUID, quantities: Sequence[tuple[uuid.UUID, int]]
) -> None:
    """Count a submitted purchase order's quantities as on order (creating the levels)."""
    await order_repository.add_on_order(session, warehouse_id, quantities)


async def reserve_lines(
    session: AsyncSession,
    warehouse_id: uuid.UUID,
    lines: Sequence[tuple[uuid.UUID, uuid.UUID, int]],
) -> list[Shortage]:
    """Reserve every `(line_id, product_id, quantity)` or none; returns the shortages ([] when
    everything was reserved)."""
    shortages = await order_repository.reserve_lines(session, warehouse_id, lines)
    if shortages is None:
        raise RuntimeError("a reservation changed under its lock")
    return shortages


async def order_drift(session: AsyncSession) -> list[Any]:
    """Levels whose reserved or on order disagree with the open orders (in the caller's
    transaction)."""
    return await order_repository.order_drift(session)


async def checked_order_targets(
    session: AsyncSession, warehouse_id: uuid.UUID, product_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, OrderProduct]:
    """The products of an order's lines, after checking they and the warehouse exist (404) and
    are active (409)."""
    targets = await order_repository.load_order_targets(session, warehouse_id, product_ids)
    if targets.warehouse_active is None:
        raise WarehouseNotFound(warehouse_id=str(warehouse_id))
    for product_id in product_ids:
        if product_id not in targets.products:
            raise ProductNotFound(product_id=str(product_id))
    if not targets.warehouse_active:
        raise InactiveWarehouse(warehouse_id=str(warehouse_id))
    for product_id in product_ids:
        if not targets.products[product_id].is_active:
            raise InactiveProduct(product_id=str(product_id))
    return targets.products

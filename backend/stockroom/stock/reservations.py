"""Stock use cases of purchase and sales orders: receipts, shipments, reservations, on order.

They run inside the order's transaction (the purchasing or sales service opens it after locking
the order row), and each is ONE call of the posting primitive (`stock.ledger.post_movements`,
SQL function `stock_post`) for all the order's lines: never a round trip per line. The primitive
locks the levels in one global order, checks every line's guard and writes all lines or none;
the movements it writes carry the order's id.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.context import Context
from stockroom.stock import order_repository
from stockroom.stock.errors import (
    InactiveProduct,
    InactiveWarehouse,
    InsufficientAvailable,
    ProductNotFound,
    WarehouseNotFound,
)
from stockroom.stock.ledger import Line, post_movements
from stockroom.stock.models import MovementType
from stockroom.stock.order_repository import OrderProduct
from stockroom.stock.schemas import MovementRead

__all__ = [
    "OrderProduct",
    "change_on_order",
    "checked_order_targets",
    "order_drift",
    "receive",
    "release",
    "reserve",
    "ship",
]


async def receive(
    session: AsyncSession,
    ctx: Context,
    warehouse_id: uuid.UUID,
    purchase_order_id: uuid.UUID,
    lines: Sequence[tuple[uuid.UUID, int, Decimal]],
    *,
    reference: str | None,
) -> list[MovementRead]:
    """One `receipt` per `(product_id, quantity, unit_cost)`, each taking its quantity off on
    order. Goods already bought are received even if the product was deactivated since."""
    return await post_movements(
        session,
        [
            Line(
                product_id=product_id,
                warehouse_id=warehouse_id,
                type=MovementType.RECEIPT,
                quantity=quantity,
                signed_quantity=quantity,
                on_order_delta=-quantity,
                unit_cost=unit_cost,
                reference=reference,
                purchase_order_id=purchase_order_id,
                require_active_product=False,
            )
            for product_id, quantity, unit_cost in lines
        ],
        ctx,
    )


async def ship(
    session: AsyncSession,
    ctx: Context,
    warehouse_id: uuid.UUID,
    sales_order_id: uuid.UUID,
    lines: Sequence[tuple[uuid.UUID, int, Decimal]],
    *,
    reference: str | None,
) -> list[MovementRead]:
    """One `sale` per `(product_id, quantity, unit_price)`, each consuming as much of the order's
    reservation. It needs the units on hand, not available: they are the order's own."""
    return await post_movements(
        session,
        [
            Line(
                product_id=product_id,
                warehouse_id=warehouse_id,
                type=MovementType.SALE,
                quantity=quantity,
                signed_quantity=-quantity,
                reserved_delta=-quantity,
                unit_price=unit_price,
                reference=reference,
                sales_order_id=sales_order_id,
                require_active_product=False,
            )
            for product_id, quantity, unit_price in lines
        ],
        ctx,
    )


async def reserve(
    session: AsyncSession,
    ctx: Context,
    warehouse_id: uuid.UUID,
    sales_order_id: uuid.UUID,
    lines: Sequence[tuple[uuid.UUID, uuid.UUID, int]],
) -> None:
    """Reserve every `(line_id, product_id, quantity)` or none of them.

    The primitive checks `available` and reserves in one statement under the levels' locks, so
    no interleaving of confirmations reserves more than is on hand. A refusal is 409
    insufficient_available listing every short line with what is available now.
    """
    try:
        await post_movements(
            session,
            [
                Line(
                    product_id=product_id,
                    warehouse_id=warehouse_id,
                    type=MovementType.SALE,
                    quantity=0,
                    signed_quantity=0,
                    reserved_delta=quantity,
                    keep_reserved=True,
                    sales_order_id=sales_order_id,
                )
                for _, product_id, quantity in lines
            ],
            ctx,
        )
    except InsufficientAvailable as refusal:
        now = await order_repository.available(session, warehouse_id, [p for _, p, _ in lines])
        refused = refusal.extra.get("product_id")
        shortages: list[dict[str, Any]] = [
            {
                "line_id": str(line_id),
                "product_id": str(product_id),
                "requested": quantity,
                "available": now[product_id],
            }
            for line_id, product_id, quantity in lines
            if now[product_id] < quantity or str(product_id) == refused
        ]
        raise InsufficientAvailable(
            "some lines need more than is available; nothing was reserved", shortages=shortages
        ) from None


async def release(
    session: AsyncSession,
    ctx: Context,
    warehouse_id: uuid.UUID,
    sales_order_id: uuid.UUID,
    lines: Sequence[tuple[uuid.UUID, int]],
) -> None:
    """Release `(product_id, quantity)` of an order's reservations (cancellation)."""
    await post_movements(
        session,
        [
            Line(
                product_id=product_id,
                warehouse_id=warehouse_id,
                type=MovementType.SALE,
                quantity=0,
                signed_quantity=0,
                reserved_delta=-quantity,
                sales_order_id=sales_order_id,
                require_active_product=False,
                require_active_warehouse=False,
            )
            for product_id, quantity in lines
        ],
        ctx,
    )


async def change_on_order(
    session: AsyncSession,
    ctx: Context,
    warehouse_id: uuid.UUID,
    purchase_order_id: uuid.UUID,
    lines: Sequence[tuple[uuid.UUID, int]],
) -> None:
    """Add each `(product_id, delta)` to on order (a submitted order adds, a cancelled one takes
    off what is outstanding); the levels a submission names are created."""
    await post_movements(
        session,
        [
            Line(
                product_id=product_id,
                warehouse_id=warehouse_id,
                type=MovementType.RECEIPT,
                quantity=0,
                signed_quantity=0,
                on_order_delta=delta,
                purchase_order_id=purchase_order_id,
                require_active_product=False,
                require_active_warehouse=False,
            )
            for product_id, delta in lines
        ],
        ctx,
    )


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


async def order_drift(session: AsyncSession) -> list[Any]:
    """Levels whose reserved or on order disagree with the open orders (in the caller's
    transaction)."""
    return await order_repository.order_drift(session)

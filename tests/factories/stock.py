"""Stock rows for tests: stock put on hand through the ledger, so levels always match it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.catalog.models import Product, Warehouse
from stockroom.db.base import uuid7
from stockroom.stock import repository
from stockroom.stock.models import MovementType, StockMovement


async def make_stock(
    session: AsyncSession,
    product: Product,
    warehouse: Warehouse,
    quantity: int,
    *,
    unit_cost: Decimal | None = None,
    created_at: datetime | None = None,
) -> StockMovement:
    """Receive `quantity` units (a real `receipt` movement and its level change), flushed."""
    on_hand = await repository.apply_delta(session, product.id, warehouse.id, quantity)
    assert on_hand is not None
    movement = repository.add_movement(
        session,
        id=uuid7(),
        product_id=product.id,
        warehouse_id=warehouse.id,
        type=MovementType.RECEIPT.value,
        quantity=quantity,
        signed_quantity=quantity,
        on_hand_after=on_hand,
        unit_cost=product.cost_price if unit_cost is None else unit_cost,
        **({"created_at": created_at} if created_at else {}),
    )
    await session.flush()
    return movement


async def make_sale(
    session: AsyncSession,
    product: Product,
    warehouse: Warehouse,
    quantity: int,
    *,
    unit_price: Decimal | None = None,
    created_at: datetime | None = None,
) -> StockMovement:
    """Sell `quantity` units (a real `sale` movement and its level change), flushed."""
    on_hand = await repository.apply_delta(session, product.id, warehouse.id, -quantity)
    assert on_hand is not None, "not enough stock for this sale"
    movement = repository.add_movement(
        session,
        id=uuid7(),
        product_id=product.id,
        warehouse_id=warehouse.id,
        type=MovementType.SALE.value,
        quantity=quantity,
        signed_quantity=-quantity,
        on_hand_after=on_hand,
        unit_price=product.sale_price if unit_price is None else unit_price,
        **({"created_at": created_at} if created_at else {}),
    )
    await session.flush()
    return movement

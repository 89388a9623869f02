"""The reads of stock that purchase and sales orders need besides the posting primitive: the
products and warehouse an order names, what is available (for a refusal's shortages), and the
check of reserved and on order against the open orders. Every change goes through
`stock.ledger.post_movements`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True, slots=True)
class Availability:
    product_id: uuid.UUID
    available: int


_AVAILABLE = text(
    """
    SELECT t.product_id, coalesce(l.on_hand - l.reserved, 0) AS available
      FROM unnest(CAST(:product_ids AS uuid[])) AS t(product_id)
      LEFT JOIN stock_levels l ON l.product_id = t.product_id AND l.warehouse_id = :warehouse_id
    """
)


async def available(
    session: AsyncSession, warehouse_id: uuid.UUID, product_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """`on_hand - reserved` of each product at the warehouse (0 without a level)."""
    rows = await session.execute(
        _AVAILABLE, {"warehouse_id": warehouse_id, "product_ids": list(product_ids)}
    )
    return {r.product_id: int(r.available) for r in rows}


_ORDER_DRIFT = text(
    """
    WITH reservations AS (
        SELECT l.product_id, o.warehouse_id, sum(l.reserved_quantity)::bigint AS total
          FROM sales_order_lines l JOIN sales_orders o ON o.id = l.sales_order_id
         WHERE o.status IN ('confirmed', 'partially_shipped')
         GROUP BY l.product_id, o.warehouse_id
    ), unshipped AS (
        SELECT l.product_id, o.warehouse_id,
               sum(l.quantity - l.shipped_quantity)::bigint AS total
          FROM sales_order_lines l JOIN sales_orders o ON o.id = l.sales_order_id
         WHERE o.status IN ('confirmed', 'partially_shipped')
         GROUP BY l.product_id, o.warehouse_id
    ), outstanding AS (
        SELECT l.product_id, o.warehouse_id,
               sum(l.quantity - l.received_quantity)::bigint AS total
          FROM purchase_order_lines l JOIN purchase_orders o ON o.id = l.purchase_order_id
         WHERE o.status IN ('ordered', 'partially_received')
         GROUP BY l.product_id, o.warehouse_id
    ), keys AS (
        SELECT product_id, warehouse_id FROM stock_levels
        UNION SELECT product_id, warehouse_id FROM unshipped
        UNION SELECT product_id, warehouse_id FROM outstanding
    )
    SELECT k.product_id, k.warehouse_id,
           coalesce(l.reserved, 0) AS reserved, coalesce(u.total, 0) AS unshipped,
           coalesce(r.total, 0) AS reservations,
           coalesce(l.on_order, 0) AS on_order, coalesce(o.total, 0) AS outstanding
      FROM keys k
      LEFT JOIN stock_levels l USING (product_id, warehouse_id)
      LEFT JOIN unshipped u USING (product_id, warehouse_id)
      LEFT JOIN reservations r USING (product_id, warehouse_id)
      LEFT JOIN outstanding o USING (product_id, warehouse_id)
     WHERE coalesce(l.reserved, 0) <> coalesce(u.total, 0)
        OR coalesce(l.reserved, 0) <> coalesce(r.total, 0)
        OR coalesce(l.on_order, 0) <> coalesce(o.total, 0)
     ORDER BY k.product_id, k.warehouse_id
    """
)


async def order_drift(session: AsyncSession) -> list[Any]:
    """Levels whose reserved or on order disagree with the open orders."""
    return list((await session.execute(_ORDER_DRIFT)).all())


@dataclass(frozen=True, slots=True)
class OrderProduct:
    id: uuid.UUID
    is_active: bool
    cost_price: Decimal
    sale_price: Decimal
    supplier_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class OrderTargets:
    warehouse_active: bool | None  # None: no such warehouse
    products: dict[uuid.UUID, OrderProduct]


_ORDER_TARGETS = text(
    """
    SELECT (SELECT w.is_active FROM warehouses w WHERE w.id = :warehouse_id) AS warehouse_active,
           p.id, p.is_active, p.cost_price, p.sale_price, p.supplier_id
      FROM (SELECT 1) AS one
      LEFT JOIN products p ON p.id = ANY(CAST(:product_ids AS uuid[]))
    """
)


async def load_order_targets(
    session: AsyncSession, warehouse_id: uuid.UUID, product_ids: Sequence[uuid.UUID]
) -> OrderTargets:
    """The warehouse's activity and every named product's facts, in one round trip."""
    rows = (
        await session.execute(
            _ORDER_TARGETS, {"warehouse_id": warehouse_id, "product_ids": list(product_ids)}
        )
    ).all()
    products = {
        r.id: OrderProduct(
            id=r.id,
            is_active=r.is_active,
            cost_price=r.cost_price,
            sale_price=r.sale_price,
            supplier_id=r.supplier_id,
        )
        for r in rows
        if r.id is not None
    }
    return OrderTargets(warehouse_active=rows[0].warehouse_active, products=products)

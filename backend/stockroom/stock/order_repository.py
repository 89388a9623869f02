"""The stock statements of purchase and sales orders: each call changes every level it names in
ONE set-based statement (never a round trip per line), locking the level rows in the one global
order (by product id; an order has one warehouse).

- `post_order_lines`: on hand, reserved and on order change together, with the movements of the
  lines (receipts of a purchase order, sales of a shipment) inserted by the same statement.
- `reserve_lines`: the check of `available` and the reservation are one statement, all lines or
  none, so no interleaving of confirmations reserves more than is on hand.
- `add_on_order`: submitted purchase orders create the levels they will fill.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True, slots=True)
class LevelChange:
    """One product's change at the order's warehouse, with the movement it posts (if any)."""

    product_id: uuid.UUID
    on_hand: int = 0
    reserved: int = 0
    on_order: int = 0
    movement_id: uuid.UUID | None = None
    unit_cost: Decimal | None = None
    unit_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class MovementRow:
    """What the statement wrote for one line: the movement (if any) and the level after it."""

    product_id: uuid.UUID
    on_hand: int
    reserved: int
    on_order: int
    movement_id: uuid.UUID | None


_POST_ORDER_LINES = text(
    """
    WITH input AS (
        SELECT * FROM unnest(
            CAST(:product_ids AS uuid[]), CAST(:d_on_hand AS int[]), CAST(:d_reserved AS int[]),
            CAST(:d_on_order AS int[]), CAST(:movement_ids AS uuid[]),
            CAST(:unit_costs AS numeric[]), CAST(:unit_prices AS numeric[])
        ) AS t(product_id, d_on_hand, d_reserved, d_on_order, movement_id, unit_cost, unit_price)
    ), locked AS (
        SELECT l.product_id FROM stock_levels l
         WHERE l.warehouse_id = :warehouse_id AND l.product_id IN (SELECT product_id FROM input)
         ORDER BY l.product_id
           FOR UPDATE
    ), levels AS (
        UPDATE stock_levels l
           SET on_hand = l.on_hand + i.d_on_hand,
               reserved = l.reserved + i.d_reserved,
               on_order = l.on_order + i.d_on_order,
               updated_at = now()
          FROM input i JOIN locked k USING (product_id)
         WHERE l.warehouse_id = :warehouse_id AND l.product_id = i.product_id
           AND l.on_hand + i.d_on_hand >= 0
           AND l.reserved + i.d_reserved >= 0
           AND l.on_order + i.d_on_order >= 0
        RETURNING l.product_id, l.on_hand, l.reserved, l.on_order
    ), moved AS (
        INSERT INTO stock_movements (
            id, product_id, warehouse_id, type, quantity, signed_quantity, on_hand_after,
            unit_cost, unit_price, reference, note, purchase_order_id, sales_order_id,
            created_by, request_id, created_at)
        SELECT i.movement_id, i.product_id, :warehouse_id, :type, abs(i.d_on_hand), i.d_on_hand,
               v.on_hand, i.unit_cost, i.unit_price, :reference, :note, :purchase_order_id,
               :sales_order_id, :created_by, :request_id, :created_at
          FROM input i JOIN levels v USING (product_id)
         WHERE i.movement_id IS NOT NULL
        RETURNING id
    )
    SELECT v.product_id, v.on_hand, v.reserved, v.on_order, i.movement_id,
           (SELECT count(*) FROM moved) AS moved
      FROM levels v JOIN input i USING (product_id)
    """
)


async def post_order_lines(
    session: AsyncSession,
    warehouse_id: uuid.UUID,
    changes: Sequence[LevelChange],
    *,
    movement_type: str | None,
    reference: str | None,
    note: str | None,
    purchase_order_id: uuid.UUID | None,
    sales_order_id: uuid.UUID | None,
    created_by: uuid.UUID | None,
    request_id: str | None,
    created_at: datetime,
) -> list[MovementRow] | None:
    """Apply every change and insert its movement, in one statement.

    None when any level is missing or a change would take a quantity below zero: then some rows
    may have changed, and the caller must roll the transaction back (it raises, so it does).
    """
    ordered = sorted(changes, key=lambda c: c.product_id.bytes)
    rows = (
        await session.execute(
            _POST_ORDER_LINES,
            {
                "product_ids": [c.product_id for c in ordered],
                "d_on_hand": [c.on_hand for c in ordered],
                "d_reserved": [c.reserved for c in ordered],
                "d_on_order": [c.on_order for c in ordered],
                "movement_ids": [c.movement_id for c in ordered],
                "unit_costs": [c.unit_cost for c in ordered],
                "unit_prices": [c.unit_price for c in ordered],
                "warehouse_id": warehouse_id,
                "type": movement_type,
                "reference": reference,
                "note": note,
                "purchase_order_id": purchase_order_id,
                "sales_order_id": sales_order_id,
                "created_by": created_by,
                "request_id": request_id,
                "created_at": created_at,
            },
        )
    ).all()
    if len(rows) != len(ordered):
        return None
    return [
        MovementRow(
            product_id=r.product_id,
            on_hand=r.on_hand,
            reserved=r.reserved,
            on_order=r.on_order,
            movement_id=r.movement_id,
        )
        for r in rows
    ]


_ADD_ON_ORDER = text(
    """
    INSERT INTO stock_levels AS l (product_id, warehouse_id, on_hand, in_transit_out, reserved,
                                   on_order, updated_at)
    SELECT t.product_id, :warehouse_id, 0, 0, 0, t.quantity, now()
      FROM unnest(CAST(:product_ids AS uuid[]), CAST(:quantities AS int[]))
           AS t(product_id, quantity)
     ORDER BY t.product_id
    ON CONFLICT (product_id, warehouse_id) DO UPDATE
       SET on_order = l.on_order + EXCLUDED.on_order, updated_at = now()
    """
)


async def add_on_order(
    session: AsyncSession, warehouse_id: uuid.UUID, quantities: Sequence[tuple[uuid.UUID, int]]
) -> None:
    """Add positive quantities to on order, creating the levels that do not exist yet."""
    ordered = sorted(quantities, key=lambda q: q[0].bytes)
    await session.execute(
        _ADD_ON_ORDER,
        {
            "warehouse_id": warehouse_id,
            "product_ids": [p for p, _ in ordered],
            "quantities": [q for _, q in ordered],
        },
    )


@dataclass(frozen=True, slots=True)
class Shortage:
    line_id: uuid.UUID
    product_id: uuid.UUID
    requested: int
    available: int


# `locked` takes the level rows in product order and reads `available` from their newest
# versions; the UPDATE reserves only if no line is short, re-checking each row under its lock.
_RESERVE = text(
    """
    WITH req AS (
        SELECT * FROM unnest(CAST(:line_ids AS uuid[]), CAST(:product_ids AS uuid[]),
                             CAST(:quantities AS int[])) AS t(line_id, product_id, quantity)
    ), locked AS (
        SELECT l.product_id, l.on_hand - l.reserved AS available FROM stock_levels l
         WHERE l.warehouse_id = :warehouse_id AND l.product_id IN (SELECT product_id FROM req)
         ORDER BY l.product_id
           FOR UPDATE
    ), short AS (
        SELECT r.line_id, r.product_id, r.quantity AS requested,
               coalesce(k.available, 0) AS available
          FROM req r LEFT JOIN locked k USING (product_id)
         WHERE coalesce(k.available, 0) < r.quantity
    ), reserved AS (
        UPDATE stock_levels l
           SET reserved = l.reserved + r.quantity, updated_at = now()
          FROM req r
         WHERE l.warehouse_id = :warehouse_id AND l.product_id = r.product_id
           AND NOT EXISTS (SELECT 1 FROM short)
           AND l.on_hand - l.reserved >= r.quantity
        RETURNING l.product_id
    )
    SELECT line_id, product_id, requested, available, false AS reserved FROM short
    UNION ALL
    SELECT NULL, product_id, NULL, NULL, true FROM reserved
    """
)


async def reserve_lines(
    session: AsyncSession,
    warehouse_id: uuid.UUID,
    lines: Sequence[tuple[uuid.UUID, uuid.UUID, int]],
) -> list[Shortage] | None:
    """Reserve `(line_id, product_id, quantity)` for every line, or none of them.

    Returns [] when all are reserved, the shortages when none is, and None in the one case the
    caller must roll back (a row changed between the check and the update, which the locks
    exclude; kept as a guard, not a path).
    """
    ordered = sorted(lines, key=lambda line: line[1].bytes)
    rows = (
        await session.execute(
            _RESERVE,
            {
                "warehouse_id": warehouse_id,
                "line_ids": [line_id for line_id, _, _ in ordered],
                "product_ids": [product_id for _, product_id, _ in ordered],
                "quantities": [quantity for _, _, quantity in ordered],
            },
        )
    ).all()
    shortages = [
        Shortage(
            line_id=r.line_id,
            product_id=r.product_id,
            requested=r.requested,
            available=r.available,
        )
        for r in rows
        if not r.reserved
    ]
    if shortages:
        return shortages
    return [] if sum(1 for r in rows if r.reserved) == len(ordered) else None


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

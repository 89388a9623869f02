"""The stock domain's SQL statements, except postings. Nothing here commits.

Levels change only through the posting primitive (`stockroom.stock.ledger`, SQL function
`stock_post`), which locks them in one global order; `apply_delta` remains for test fixtures that
put stock in place.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.catalog.models import Product, Warehouse
from stockroom.http.pagination import PageParams
from stockroom.stock.models import (
    StockLevel,
    StockMovement,
)
from stockroom.stock.schemas import MovementFilter
from stockroom.types import utcnow


@dataclass(frozen=True, slots=True)
class ProductFacts:
    id: uuid.UUID
    is_active: bool
    sale_price: Decimal
    cost_price: Decimal
    reorder_point: int


@dataclass(frozen=True, slots=True)
class Targets:
    """The product and warehouses a stock operation names (None: no such row)."""

    product: ProductFacts | None
    warehouses_active: dict[uuid.UUID, bool]


_LOAD_TARGETS = text(
    """
    SELECT p.id, p.is_active, p.sale_price, p.cost_price, p.reorder_point,
           (SELECT coalesce(jsonb_object_agg(w.id::text, w.is_active), '{}'::jsonb)
              FROM warehouses w WHERE w.id = ANY(:warehouse_ids)) AS warehouses
      FROM (SELECT 1) AS one
      LEFT JOIN products p ON p.id = :product_id
    """
)


async def load_targets(
    session: AsyncSession, product_id: uuid.UUID, warehouse_ids: Sequence[uuid.UUID]
) -> Targets:
    """The product's facts and each named warehouse's activity, in one round trip."""
    row = (
        await session.execute(
            _LOAD_TARGETS, {"product_id": product_id, "warehouse_ids": list(warehouse_ids)}
        )
    ).one()
    product = (
        ProductFacts(
            id=row.id,
            is_active=row.is_active,
            sale_price=row.sale_price,
            cost_price=row.cost_price,
            reorder_point=row.reorder_point,
        )
        if row.id is not None
        else None
    )
    active = {uuid.UUID(k): bool(v) for k, v in (row.warehouses or {}).items()}
    return Targets(product=product, warehouses_active=active)


_UPSERT_LEVEL = text(
    """
    INSERT INTO stock_levels AS l (product_id, warehouse_id, on_hand, in_transit_out, updated_at)
    VALUES (:product_id, :warehouse_id, :delta, 0, now())
    ON CONFLICT (product_id, warehouse_id) DO UPDATE
        SET on_hand = l.on_hand + EXCLUDED.on_hand, updated_at = now()
        WHERE l.on_hand + EXCLUDED.on_hand >= 0
    RETURNING l.on_hand
    """
)

_UPDATE_LEVEL = text(
    """
    UPDATE stock_levels
       SET on_hand = on_hand + :delta,
           in_transit_out = in_transit_out + :in_transit_delta,
           updated_at = now()
     WHERE product_id = :product_id AND warehouse_id = :warehouse_id
       AND on_hand + :delta >= 0 AND in_transit_out + :in_transit_delta >= 0
    RETURNING on_hand
    """
)


async def apply_delta(
    session: AsyncSession,
    product_id: uuid.UUID,
    warehouse_id: uuid.UUID,
    delta: int,
    *,
    in_transit_delta: int = 0,
) -> int | None:
    """Add `delta` to on hand (and `in_transit_delta` to in transit) atomically.

    Returns the new on hand, or None when the change would take either below zero (nothing is
    changed then). A positive change to a level that does not exist yet creates it.
    """
    params = {"product_id": product_id, "warehouse_id": warehouse_id, "delta": delta}
    if delta > 0 and in_transit_delta == 0:
        result = await session.execute(_UPSERT_LEVEL, params)
    else:
        params["in_transit_delta"] = in_transit_delta
        result = await session.execute(_UPDATE_LEVEL, params)
    value = result.scalar_one_or_none()
    return int(value) if value is not None else None


async def lock_level(session: AsyncSession, product_id: uuid.UUID, warehouse_id: uuid.UUID) -> int:
    """Lock one level row (creating it at zero if absent) and return its on hand."""
    await session.execute(
        insert(StockLevel)
        .values(product_id=product_id, warehouse_id=warehouse_id, on_hand=0, in_transit_out=0)
        .on_conflict_do_nothing(index_elements=["product_id", "warehouse_id"])
    )
    on_hand = await session.scalar(
        select(StockLevel.on_hand)
        .where(StockLevel.product_id == product_id, StockLevel.warehouse_id == warehouse_id)
        .with_for_update()
    )
    assert on_hand is not None
    return int(on_hand)


# --- movements -------------------------------------------------------------------------------


def add_movement(session: AsyncSession, **values: Any) -> StockMovement:
    movement = StockMovement(**{"created_at": utcnow(), **values})
    session.add(movement)
    return movement


async def get_movement(session: AsyncSession, movement_id: uuid.UUID) -> StockMovement | None:
    return await session.get(StockMovement, movement_id)


async def reversal_of(session: AsyncSession, movement_id: uuid.UUID) -> uuid.UUID | None:
    value = await session.scalar(
        select(StockMovement.id).where(StockMovement.reverses_id == movement_id)
    )
    return value


def _movement_conditions(f: MovementFilter) -> list[Any]:
    conditions: list[Any] = []
    if f.product_id is not None:
        conditions.append(StockMovement.product_id == f.product_id)
    if f.warehouse_id is not None:
        conditions.append(StockMovement.warehouse_id == f.warehouse_id)
    if f.type is not None:
        conditions.append(StockMovement.type == f.type)
    if f.reference is not None:
        conditions.append(StockMovement.reference == f.reference)
    if f.created_from is not None:
        conditions.append(StockMovement.created_at >= f.created_from)
    if f.created_to is not None:
        conditions.append(StockMovement.created_at < f.created_to)
    return conditions


async def paged(
    session: AsyncSession, statement: Select[Any], page: PageParams, order: Sequence[Any]
) -> tuple[list[Any], int]:
    total = await session.scalar(select(func.count()).select_from(statement.subquery()))
    rows = (
        (await session.execute(statement.order_by(*order).offset(page.offset).limit(page.limit)))
        .scalars()
        .all()
    )
    return list(rows), int(total or 0)


async def list_movements(
    session: AsyncSession, f: MovementFilter, page: PageParams
) -> tuple[list[StockMovement], int]:
    """Movements matching the filter, newest first."""
    statement = select(StockMovement).where(*_movement_conditions(f))
    return await paged(
        session, statement, page, [StockMovement.created_at.desc(), StockMovement.id.desc()]
    )


async def product_exists(session: AsyncSession, product_id: uuid.UUID) -> bool:
    return bool(await session.scalar(select(func.count()).where(Product.id == product_id)))


# --- levels ----------------------------------------------------------------------------------


async def list_levels(
    session: AsyncSession,
    *,
    product_id: uuid.UUID | None,
    warehouse_id: uuid.UUID | None,
    below_reorder: bool | None,
    page: PageParams,
) -> tuple[list[Any], int]:
    statement = (
        select(
            StockLevel.product_id,
            Product.sku,
            Product.name.label("product_name"),
            StockLevel.warehouse_id,
            Warehouse.code.label("warehouse_code"),
            StockLevel.on_hand,
            StockLevel.reserved,
            (StockLevel.on_hand - StockLevel.reserved).label("available"),
            StockLevel.on_order,
            (StockLevel.on_hand < StockLevel.reserved).label("over_reserved"),
            StockLevel.in_transit_out,
            Product.reorder_point,
        )
        .join(Product, Product.id == StockLevel.product_id)
        .join(Warehouse, Warehouse.id == StockLevel.warehouse_id)
    )
    if product_id is not None:
        statement = statement.where(StockLevel.product_id == product_id)
    if warehouse_id is not None:
        statement = statement.where(StockLevel.warehouse_id == warehouse_id)
    if below_reorder is True:
        statement = statement.where(StockLevel.on_hand <= Product.reorder_point)
    elif below_reorder is False:
        statement = statement.where(StockLevel.on_hand > Product.reorder_point)
    total = await session.scalar(select(func.count()).select_from(statement.subquery()))
    rows = (
        await session.execute(
            statement.order_by(Product.sku, Warehouse.code).offset(page.offset).limit(page.limit)
        )
    ).all()
    return list(rows), int(total or 0)


def _low_stock_query() -> Select[*tuple[Any, ...]]:
    totals = (
        select(
            StockLevel.product_id,
            func.sum(StockLevel.on_hand).label("on_hand"),
            func.sum(StockLevel.in_transit_out).label("in_transit"),
        )
        .group_by(StockLevel.product_id)
        .subquery()
    )
    on_hand = func.coalesce(totals.c.on_hand, 0)
    statement: Select[*tuple[Any, ...]] = (
        select(
            Product.id,
            Product.sku,
            Product.name,
            Product.category_id,
            on_hand.label("on_hand"),
            func.coalesce(totals.c.in_transit, 0).label("in_transit"),
            Product.reorder_point,
            Product.reorder_quantity,
        )
        .outerjoin(totals, totals.c.product_id == Product.id)
        .where(Product.is_active.is_(True), on_hand <= Product.reorder_point)
    )
    return statement


async def list_low_stock(session: AsyncSession, page: PageParams) -> tuple[list[Any], int]:
    """Active products whose total on hand is at or below their reorder point, most short first."""
    statement = _low_stock_query()
    total = await session.scalar(select(func.count()).select_from(statement.subquery()))
    sub = statement.subquery()
    rows = (
        await session.execute(
            select(sub)
            .order_by((sub.c.on_hand - sub.c.reorder_point), sub.c.sku)
            .offset(page.offset)
            .limit(page.limit)
        )
    ).all()
    return list(rows), int(total or 0)


async def count_low_stock(session: AsyncSession) -> int:
    statement = _low_stock_query()
    return int(await session.scalar(select(func.count()).select_from(statement.subquery())) or 0)


# --- integrity check -------------------------------------------------------------------------

_LEDGER_DRIFT = text(
    """
    WITH ledger AS (
        SELECT product_id, warehouse_id, sum(signed_quantity)::bigint AS total
          FROM stock_movements GROUP BY product_id, warehouse_id
    ), open_transfers AS (
        SELECT product_id, from_warehouse_id AS warehouse_id, sum(quantity)::bigint AS total
          FROM stock_transfers WHERE status = 'in_transit'
         GROUP BY product_id, from_warehouse_id
    ), keys AS (
        SELECT product_id, warehouse_id FROM stock_levels
        UNION SELECT product_id, warehouse_id FROM ledger
        UNION SELECT product_id, warehouse_id FROM open_transfers
    )
    SELECT k.product_id, k.warehouse_id,
           coalesce(l.on_hand, 0) AS on_hand, coalesce(g.total, 0) AS ledger,
           coalesce(l.in_transit_out, 0) AS in_transit_out, coalesce(t.total, 0) AS open_transfers
      FROM keys k
      LEFT JOIN stock_levels l USING (product_id, warehouse_id)
      LEFT JOIN ledger g USING (product_id, warehouse_id)
      LEFT JOIN open_transfers t USING (product_id, warehouse_id)
     WHERE coalesce(l.on_hand, 0) <> coalesce(g.total, 0)
        OR coalesce(l.in_transit_out, 0) <> coalesce(t.total, 0)
        OR coalesce(l.on_hand, 0) < 0
     ORDER BY k.product_id, k.warehouse_id
    """
)


async def ledger_drift(session: AsyncSession) -> list[Any]:
    """Every level whose on hand differs from its ledger sum, or in transit from open transfers."""
    return list((await session.execute(_LEDGER_DRIFT)).all())

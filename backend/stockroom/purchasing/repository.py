"""Every SQL statement of the purchasing domain. Nothing here commits.

An order's state changes only under its row lock (`lock_order`, SELECT ... FOR UPDATE): of two
concurrent actions on one order the second sees what the first did, so every transition
happens exactly once and a line is never received beyond its quantity.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, exists, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.catalog.models import Supplier
from stockroom.http.pagination import PageParams, Sort
from stockroom.purchasing.models import (
    OPEN_PURCHASE_STATUSES,
    PurchaseOrder,
    PurchaseOrderLine,
)

SORTS = ("created_at", "expected_at", "number")


@dataclass(frozen=True, slots=True)
class OrderFilter:
    status: str | None = None
    supplier_id: uuid.UUID | None = None
    warehouse_id: uuid.UUID | None = None
    product_id: uuid.UUID | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


async def supplier_active(session: AsyncSession, supplier_id: uuid.UUID) -> bool | None:
    """Whether the supplier is active; None when there is no such supplier."""
    value: bool | None = await session.scalar(
        select(Supplier.is_active).where(Supplier.id == supplier_id)
    )
    return value


def add_order(session: AsyncSession, **values: Any) -> PurchaseOrder:
    order = PurchaseOrder(**values)
    session.add(order)
    return order


async def insert_lines(
    session: AsyncSession, order_id: uuid.UUID, lines: Sequence[dict[str, Any]]
) -> None:
    """Insert an order's lines with one statement (`position` keeps their order)."""
    await session.execute(
        insert(PurchaseOrderLine),
        [{"purchase_order_id": order_id, "position": i, **line} for i, line in enumerate(lines)],
    )


async def delete_lines(session: AsyncSession, order_id: uuid.UUID) -> None:
    await session.execute(
        delete(PurchaseOrderLine).where(PurchaseOrderLine.purchase_order_id == order_id)
    )


async def get_order(session: AsyncSession, order_id: uuid.UUID) -> PurchaseOrder | None:
    return await session.get(PurchaseOrder, order_id, populate_existing=True)


async def lock_order(session: AsyncSession, order_id: uuid.UUID) -> PurchaseOrder | None:
    """The order, its row locked until the transaction ends."""
    return await session.get(PurchaseOrder, order_id, with_for_update=True, populate_existing=True)


async def lines_of(
    session: AsyncSession, order_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[PurchaseOrderLine]]:
    """The lines of each order, in their order, in one query."""
    rows = (
        await session.execute(
            select(PurchaseOrderLine)
            .where(PurchaseOrderLine.purchase_order_id.in_(order_ids))
            .order_by(PurchaseOrderLine.purchase_order_id, PurchaseOrderLine.position)
            .execution_options(populate_existing=True)
        )
    ).scalars()
    out: dict[uuid.UUID, list[PurchaseOrderLine]] = {order_id: [] for order_id in order_ids}
    for line in rows:
        out[line.purchase_order_id].append(line)
    return out


_RECEIVE_LINES = text(
    """
    UPDATE purchase_order_lines l
       SET received_quantity = l.received_quantity + t.quantity
      FROM unnest(CAST(:line_ids AS uuid[]), CAST(:quantities AS int[])) AS t(line_id, quantity)
     WHERE l.id = t.line_id AND l.purchase_order_id = :order_id
    """
)


async def add_received(
    session: AsyncSession, order_id: uuid.UUID, quantities: Sequence[tuple[uuid.UUID, int]]
) -> None:
    """Add received quantities to lines, one statement for all of them."""
    await session.execute(
        _RECEIVE_LINES,
        {
            "order_id": order_id,
            "line_ids": [line_id for line_id, _ in quantities],
            "quantities": [quantity for _, quantity in quantities],
        },
    )


def _conditions(f: OrderFilter) -> list[Any]:
    conditions: list[Any] = []
    if f.status is not None:
        conditions.append(PurchaseOrder.status == f.status)
    if f.supplier_id is not None:
        conditions.append(PurchaseOrder.supplier_id == f.supplier_id)
    if f.warehouse_id is not None:
        conditions.append(PurchaseOrder.warehouse_id == f.warehouse_id)
    if f.product_id is not None:
        conditions.append(
            exists().where(
                PurchaseOrderLine.purchase_order_id == PurchaseOrder.id,
                PurchaseOrderLine.product_id == f.product_id,
            )
        )
    if f.created_from is not None:
        conditions.append(PurchaseOrder.created_at >= f.created_from)
    if f.created_to is not None:
        conditions.append(PurchaseOrder.created_at < f.created_to)
    return conditions


async def list_orders(
    session: AsyncSession, f: OrderFilter, sort: Sort, page: PageParams
) -> tuple[list[PurchaseOrder], int]:
    statement: Select[Any] = select(PurchaseOrder).where(*_conditions(f))
    total = await session.scalar(select(func.count()).select_from(statement.subquery()))
    column = getattr(PurchaseOrder, sort.field)
    order = column.desc().nulls_last() if sort.descending else column.asc().nulls_last()
    tiebreak = PurchaseOrder.id.desc() if sort.descending else PurchaseOrder.id.asc()
    rows = (
        await session.execute(
            statement.order_by(order, tiebreak).offset(page.offset).limit(page.limit)
        )
    ).scalars()
    return list(rows), int(total or 0)


async def count_open(session: AsyncSession) -> int:
    value = await session.scalar(
        select(func.count()).where(
            PurchaseOrder.status.in_([s.value for s in OPEN_PURCHASE_STATUSES])
        )
    )
    return int(value or 0)


# --- reorder suggestions ---------------------------------------------------------------------

# A level is short when what it will have (on hand, less what is promised to customers, plus what
# is on its way) is at or below the product's reorder point. Only levels that exist count: a
# warehouse that never kept, reserved or ordered a product does not stock it. A suggestion of
# nothing (reorder_quantity 0, exactly at the point) is no suggestion.
_SUGGESTIONS = """
SELECT l.product_id, p.sku, p.name AS product_name, l.warehouse_id, w.code AS warehouse_code,
       p.supplier_id, coalesce(s.is_active, false) AS supplier_active,
       l.on_hand, l.reserved, l.on_order, p.reorder_point, p.reorder_quantity,
       p.reorder_point + p.reorder_quantity - (l.on_hand - l.reserved + l.on_order)
           AS suggested_quantity
  FROM stock_levels l
  JOIN products p ON p.id = l.product_id
  JOIN warehouses w ON w.id = l.warehouse_id
  LEFT JOIN suppliers s ON s.id = p.supplier_id
 WHERE p.is_active AND w.is_active
   AND l.on_hand - l.reserved + l.on_order <= p.reorder_point
   AND l.on_hand - l.reserved + l.on_order < p.reorder_point + p.reorder_quantity
   AND (CAST(:warehouse_id AS uuid) IS NULL OR l.warehouse_id = :warehouse_id)
   AND (CAST(:supplier_id AS uuid) IS NULL OR p.supplier_id = :supplier_id)
"""
_SUGGESTION_PAGE = text(_SUGGESTIONS + " ORDER BY p.sku, w.code LIMIT :limit OFFSET :offset")
_SUGGESTION_COUNT = text(f"SELECT count(*) FROM ({_SUGGESTIONS}) s")
# Grouped as the purchase orders they become, each order's lines by sku.
_SUGGESTIONS_BY_SUPPLIER = text(
    _SUGGESTIONS + " ORDER BY p.supplier_id NULLS LAST, w.code, l.warehouse_id, p.sku"
)


@dataclass(frozen=True, slots=True)
class SuggestionFilter:
    warehouse_id: uuid.UUID | None = None
    supplier_id: uuid.UUID | None = None


def _suggestion_params(f: SuggestionFilter) -> dict[str, Any]:
    return {"warehouse_id": f.warehouse_id, "supplier_id": f.supplier_id}


async def reorder_suggestions(
    session: AsyncSession, f: SuggestionFilter, page: PageParams
) -> tuple[list[Any], int]:
    params = _suggestion_params(f)
    total = await session.scalar(_SUGGESTION_COUNT, params)
    rows = await session.execute(
        _SUGGESTION_PAGE, {**params, "limit": page.limit, "offset": page.offset}
    )
    return list(rows.all()), int(total or 0)


async def all_reorder_suggestions(session: AsyncSession, f: SuggestionFilter) -> list[Any]:
    """Every current suggestion, grouped by supplier and warehouse (products without a supplier
    last)."""
    return list((await session.execute(_SUGGESTIONS_BY_SUPPLIER, _suggestion_params(f))).all())

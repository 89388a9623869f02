"""Every SQL statement of the sales domain. Nothing here commits.

As for purchase orders, an order's state changes only under its row lock (`lock_order`), so
each transition happens once and a line never ships beyond its quantity.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, exists, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.http.pagination import PageParams, Sort
from stockroom.sales.models import OPEN_SALES_STATUSES, SalesOrder, SalesOrderLine

SORTS = ("created_at", "number")


@dataclass(frozen=True, slots=True)
class OrderFilter:
    status: str | None = None
    warehouse_id: uuid.UUID | None = None
    product_id: uuid.UUID | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


def add_order(session: AsyncSession, **values: Any) -> SalesOrder:
    order = SalesOrder(**values)
    session.add(order)
    return order


async def insert_lines(
    session: AsyncSession, order_id: uuid.UUID, lines: Sequence[dict[str, Any]]
) -> None:
    await session.execute(
        insert(SalesOrderLine),
        [{"sales_order_id": order_id, "position": i, **line} for i, line in enumerate(lines)],
    )


async def delete_lines(session: AsyncSession, order_id: uuid.UUID) -> None:
    await session.execute(delete(SalesOrderLine).where(SalesOrderLine.sales_order_id == order_id))


async def get_order(session: AsyncSession, order_id: uuid.UUID) -> SalesOrder | None:
    return await session.get(SalesOrder, order_id, populate_existing=True)


async def lock_order(session: AsyncSession, order_id: uuid.UUID) -> SalesOrder | None:
    """The order, its row locked until the transaction ends."""
    return await session.get(SalesOrder, order_id, with_for_update=True, populate_existing=True)


async def lines_of(
    session: AsyncSession, order_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[SalesOrderLine]]:
    rows = (
        await session.execute(
            select(SalesOrderLine)
            .where(SalesOrderLine.sales_order_id.in_(order_ids))
            .order_by(SalesOrderLine.sales_order_id, SalesOrderLine.position)
            .execution_options(populate_existing=True)
        )
    ).scalars()
    out: dict[uuid.UUID, list[SalesOrderLine]] = {order_id: [] for order_id in order_ids}
    for line in rows:
        out[line.sales_order_id].append(line)
    return out


async def reserve_all(session: AsyncSession, order_id: uuid.UUID) -> None:
    """Every line reserves its whole quantity (confirmation)."""
    await session.execute(
        update(SalesOrderLine)
        .where(SalesOrderLine.sales_order_id == order_id)
        .values(reserved_quantity=SalesOrderLine.quantity)
        .execution_options(synchronize_session=False)
    )


async def release_all(session: AsyncSession, order_id: uuid.UUID) -> None:
    """No line reserves anything any more (cancellation)."""
    await session.execute(
        update(SalesOrderLine)
        .where(SalesOrderLine.sales_order_id == order_id)
        .values(reserved_quantity=0)
        .execution_options(synchronize_session=False)
    )


_SHIP_LINES = text(
    """
    UPDATE sales_order_lines l
       SET shipped_quantity = l.shipped_quantity + t.quantity,
           reserved_quantity = l.reserved_quantity - t.quantity
      FROM unnest(CAST(:line_ids AS uuid[]), CAST(:quantities AS int[])) AS t(line_id, quantity)
     WHERE l.id = t.line_id AND l.sales_order_id = :order_id
    """
)


async def add_shipped(
    session: AsyncSession, order_id: uuid.UUID, quantities: Sequence[tuple[uuid.UUID, int]]
) -> None:
    """Move shipped quantities from reserved to shipped, one statement for all lines."""
    await session.execute(
        _SHIP_LINES,
        {
            "order_id": order_id,
            "line_ids": [line_id for line_id, _ in quantities],
            "quantities": [quantity for _, quantity in quantities],
        },
    )


def _conditions(f: OrderFilter) -> list[Any]:
    conditions: list[Any] = []
    if f.status is not None:
        conditions.append(SalesOrder.status == f.status)
    if f.warehouse_id is not None:
        conditions.append(SalesOrder.warehouse_id == f.warehouse_id)
    if f.product_id is not None:
        conditions.append(
            exists().where(
                SalesOrderLine.sales_order_id == SalesOrder.id,
                SalesOrderLine.product_id == f.product_id,
            )
        )
    if f.created_from is not None:
        conditions.append(SalesOrder.created_at >= f.created_from)
    if f.created_to is not None:
        conditions.append(SalesOrder.created_at < f.created_to)
    return conditions


async def list_orders(
    session: AsyncSession, f: OrderFilter, sort: Sort, page: PageParams
) -> tuple[list[SalesOrder], int]:
    statement: Select[Any] = select(SalesOrder).where(*_conditions(f))
    total = await session.scalar(select(func.count()).select_from(statement.subquery()))
    column = getattr(SalesOrder, sort.field)
    order = column.desc() if sort.descending else column.asc()
    tiebreak = SalesOrder.id.desc() if sort.descending else SalesOrder.id.asc()
    rows = (
        await session.execute(
            statement.order_by(order, tiebreak).offset(page.offset).limit(page.limit)
        )
    ).scalars()
    return list(rows), int(total or 0)


async def count_open(session: AsyncSession) -> int:
    value = await session.scalar(
        select(func.count()).where(SalesOrder.status.in_([s.value for s in OPEN_SALES_STATUSES]))
    )
    return int(value or 0)

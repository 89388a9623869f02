"""Report use cases: read-only transactions over the relational source of truth."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.db.session import transaction
from stockroom.http.errors import NotFound, ValidationFailed
from stockroom.reports import repository
from stockroom.reports.schemas import (
    PurchasesGroupBy,
    PurchasesSummaryRow,
    SalesGroupBy,
    SalesSummaryRow,
    StockValuation,
    ValuationRow,
)


def _check_window(date_from: datetime | None, date_to: datetime | None) -> None:
    if date_from is not None and date_to is not None and date_from >= date_to:
        raise ValidationFailed.at(["query", "to"], "`to` must be after `from`")


async def sales_summary(
    session: AsyncSession,
    *,
    group_by: SalesGroupBy,
    date_from: datetime | None,
    date_to: datetime | None,
    with_costs: bool,
) -> list[SalesSummaryRow]:
    """Units and revenue (and, with costs, cost and margin) per group over [from, to)."""
    _check_window(date_from, date_to)
    async with transaction(session):
        rows = await repository.sales_summary(session, group_by, date_from, date_to)
    return [
        SalesSummaryRow(
            key=r.key,
            label=r.label,
            units=r.units,
            revenue=r.revenue,
            cost=r.cost if with_costs else None,
            margin=r.margin if with_costs else None,
        )
        for r in rows
    ]


async def purchases_summary(
    session: AsyncSession,
    *,
    group_by: PurchasesGroupBy,
    date_from: datetime | None,
    date_to: datetime | None,
    with_costs: bool,
) -> list[PurchasesSummaryRow]:
    """Units received (and, with costs, their cost) per group over [from, to)."""
    _check_window(date_from, date_to)
    async with transaction(session):
        rows = await repository.purchases_summary(session, group_by, date_from, date_to)
    return [
        PurchasesSummaryRow(
            key=r.key,
            label=r.label,
            units=r.units,
            purchase_orders=r.purchase_orders,
            cost=r.cost if with_costs else None,
        )
        for r in rows
    ]


async def stock_valuation(session: AsyncSession, warehouse_id: uuid.UUID | None) -> StockValuation:
    """Stock owned (on hand plus in transit out) at cost price, per category."""
    async with transaction(session):
        if warehouse_id is not None and not await repository.warehouse_exists(
            session, warehouse_id
        ):
            raise NotFound("warehouse not found")
        rows = await repository.stock_valuation(session, warehouse_id)
    items = [
        ValuationRow(category_id=r.category_id, category=r.category, units=r.units, value=r.value)
        for r in rows
    ]
    total = sum((i.value for i in items), Decimal("0.00"))
    return StockValuation(total_value=total, rows=items)

"""HTTP routes of the reports domain."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel

from stockroom.auth.deps import require
from stockroom.auth.permissions import Perm
from stockroom.context import Principal
from stockroom.db.session import Session
from stockroom.http.errors import problem_responses
from stockroom.http.params import UtcDateTime
from stockroom.redaction import without_costs
from stockroom.reports import service
from stockroom.reports.schemas import (
    PurchasesGroupBy,
    PurchasesSummaryRow,
    SalesGroupBy,
    SalesSummaryRow,
    StockValuation,
)

router = APIRouter(prefix="/reports", tags=["reports"])

ReportFrom = Annotated[
    UtcDateTime | None, Query(alias="from", description="inclusive; ISO 8601, UTC if no offset")
]
ReportTo = Annotated[
    UtcDateTime | None,
    Query(
        alias="to",
        description="exclusive; ISO 8601, UTC if no offset; after `from` (else 422 "
        "`validation_error`)",
    ),
]


def _rows_response(rows: Sequence[BaseModel], with_costs: bool) -> JSONResponse:
    body = [row.model_dump(mode="json") for row in rows]
    return JSONResponse(body if with_costs else without_costs(body))


@router.get(
    "/sales-summary",
    response_model=list[SalesSummaryRow],
    status_code=200,
    responses=problem_responses(401, 403, 422),
    description=(
        "Sales over `[from, to)` (ISO 8601; UTC when no offset; either may be omitted), grouped "
        "by category, product, warehouse or UTC day. Net figures: returns count as negative "
        "units and revenue, and a reversed sale or return is taken back on the day of its "
        "reversal. Revenue is units x the unit_price recorded on each movement. `cost` and "
        "`margin` appear only for callers with costs:read: cost is units x the product's "
        "weighted average receipt unit_cost (receipts up to `to`, reversed receipts excluded), "
        "or its current cost_price when it has no costed receipt; margin = revenue - cost. "
        "Rows are ordered by revenue (highest first), or by day."
    ),
)
async def sales_summary(
    session: Session,
    principal: Annotated[Principal, Depends(require(Perm.REPORTS_READ))],
    date_from: ReportFrom = None,
    date_to: ReportTo = None,
    group_by: Annotated[SalesGroupBy, Query()] = SalesGroupBy.DAY,
) -> JSONResponse:
    """Sales summary: units and revenue (cost and margin with costs:read) per group."""
    with_costs = principal.can(Perm.COSTS_READ)
    rows = await service.sales_summary(
        session,
        group_by=group_by,
        date_from=date_from,
        date_to=date_to,
        with_costs=with_costs,
    )
    return _rows_response(rows, with_costs)


@router.get(
    "/purchases-summary",
    response_model=list[PurchasesSummaryRow],
    status_code=200,
    responses=problem_responses(401, 403, 422),
    description=(
        "Goods received over `[from, to)` (ISO 8601; UTC when no offset; either may be "
        "omitted), grouped by supplier, product, warehouse or UTC day. Purchases are `receipt` "
        "movements, those of purchase orders and those posted directly; a reversed receipt is "
        "taken back on the day of its reversal. A receipt's supplier is its purchase order's, "
        "else the product's supplier (`none` when it has none). `cost` (units x the unit_cost "
        "recorded on each receipt) appears only for callers with costs:read. Rows are ordered "
        "by units (most first), or by day."
    ),
)
async def purchases_summary(
    session: Session,
    principal: Annotated[Principal, Depends(require(Perm.REPORTS_READ))],
    date_from: ReportFrom = None,
    date_to: ReportTo = None,
    group_by: Annotated[PurchasesGroupBy, Query()] = PurchasesGroupBy.DAY,
) -> JSONResponse:
    """Purchases summary: units received (cost with costs:read) per group."""
    with_costs = principal.can(Perm.COSTS_READ)
    rows = await service.purchases_summary(
        session,
        group_by=group_by,
        date_from=date_from,
        date_to=date_to,
        with_costs=with_costs,
    )
    return _rows_response(rows, with_costs)


@router.get(
    "/stock-valuation",
    response_model=StockValuation,
    status_code=200,
    responses=problem_responses(401, 403, 404, 422),
    description=(
        "Stock at cost price per category: units are on hand plus in transit out of the "
        "warehouse (goods on the road still belong to the sender until received, so transfers "
        "never change the total), valued at each product's current cost_price. Inactive "
        "products holding stock are included. `warehouse_id` restricts it to one warehouse "
        "(404 if unknown)."
    ),
)
async def stock_valuation(
    session: Session,
    _: Annotated[Principal, Depends(require(Perm.REPORTS_READ, Perm.COSTS_READ))],
    warehouse_id: Annotated[uuid.UUID | None, Query()] = None,
) -> StockValuation:
    """Stock valuation at cost."""
    return await service.stock_valuation(session, warehouse_id)


# Each route's docstring line is its OpenAPI summary; `description=` holds the rules.
for _route in router.routes:
    if isinstance(_route, APIRoute) and _route.summary is None and _route.endpoint.__doc__:
        _route.summary = _route.endpoint.__doc__.strip().splitlines()[0].rstrip(".")

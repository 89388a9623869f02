"""Reorder suggestions: the levels that will fall short, and the draft orders that refill them."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.context import Context
from stockroom.db.session import transaction
from stockroom.http.pagination import Page, PageParams
from stockroom.idempotency import IdempotencyKey, StoredResponse, run_idempotent
from stockroom.purchasing import repository
from stockroom.purchasing.repository import SuggestionFilter
from stockroom.purchasing.schemas import (
    PurchaseOrderCreate,
    PurchaseOrderLineIn,
    PurchaseOrderRead,
    ReorderRequest,
    ReorderResult,
    ReorderSuggestion,
)
from stockroom.purchasing.service import create_draft
from stockroom.stock.order_schemas import MAX_LINES
from stockroom.stock.schemas import MAX_QUANTITY


async def list_suggestions(
    session: AsyncSession, filters: SuggestionFilter, page: PageParams
) -> Page[ReorderSuggestion]:
    """Active products at active warehouses whose on_hand - reserved + on_order is at or below
    the reorder point, by sku and warehouse code."""
    async with transaction(session):
        rows, total = await repository.reorder_suggestions(session, filters, page)
    return Page[ReorderSuggestion](
        items=[ReorderSuggestion.model_validate(row) for row in rows],
        total=total,
        page=page.page,
        page_size=page.page_size,
    )


def _order_of(
    supplier_id: uuid.UUID, warehouse_id: uuid.UUID, rows: list[Any]
) -> PurchaseOrderCreate:
    return PurchaseOrderCreate(
        supplier_id=supplier_id,
        warehouse_id=warehouse_id,
        reference="reorder",
        lines=[
            # One order line holds at most MAX_QUANTITY; a larger gap is refilled in steps.
            PurchaseOrderLineIn(
                product_id=row.product_id, quantity=min(row.suggested_quantity, MAX_QUANTITY)
            )
            for row in rows
        ],
    )


async def _order_suggestions(
    session: AsyncSession, data: ReorderRequest, ctx: Context
) -> ReorderResult:
    rows = await repository.all_reorder_suggestions(
        session, SuggestionFilter(warehouse_id=data.warehouse_id, supplier_id=data.supplier_id)
    )
    orders: list[PurchaseOrderRead] = []
    # No order for a product without a supplier, or whose supplier is inactive: a client tells
    # the two apart by supplier_id (null or not).
    skipped = [
        ReorderSuggestion.model_validate(row)
        for row in sorted(rows, key=lambda row: (row.sku, row.warehouse_code))
        if not row.supplier_active
    ]
    supplied = [row for row in rows if row.supplier_active]
    for (supplier_id, warehouse_id), group in itertools.groupby(
        supplied, key=lambda row: (row.supplier_id, row.warehouse_id)
    ):
        lines = list(group)
        # An order holds at most MAX_LINES lines; a longer list becomes several orders.
        for start in range(0, len(lines), MAX_LINES):
            chunk = lines[start : start + MAX_LINES]
            orders.append(
                await create_draft(session, _order_of(supplier_id, warehouse_id, chunk), ctx)
            )
    return ReorderResult(purchase_orders=orders, skipped=skipped)


async def order_suggestions(
    session: AsyncSession,
    data: ReorderRequest,
    ctx: Context,
    key: IdempotencyKey | None = None,
) -> ReorderResult | StoredResponse:
    """One draft purchase order per supplier and warehouse from the current suggestions, in one
    transaction; suggestions for products without an active supplier come back as `skipped`."""
    return await run_idempotent(
        session, key, lambda: _order_suggestions(session, data, ctx), status=201
    )

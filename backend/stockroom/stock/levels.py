"""Stock level reads: levels, low stock, dashboard counts, and the ledger's integrity check."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.db.session import transaction
from stockroom.http.pagination import Page, PageParams
from stockroom.stock import repository, transfer_repository
from stockroom.stock.schemas import LowStockProduct, StockLevelRead


async def list_levels(
    session: AsyncSession,
    *,
    product_id: uuid.UUID | None,
    warehouse_id: uuid.UUID | None,
    below_reorder: bool | None,
    page: PageParams,
) -> Page[StockLevelRead]:
    async with transaction(session):
        rows, total = await repository.list_levels(
            session,
            product_id=product_id,
            warehouse_id=warehouse_id,
            below_reorder=below_reorder,
            page=page,
        )
    return Page[StockLevelRead].of([StockLevelRead.model_validate(r) for r in rows], total, page)


async def list_low_stock(session: AsyncSession, page: PageParams) -> Page[LowStockProduct]:
    """Active products whose total on hand is at or below their reorder point."""
    async with transaction(session):
        rows, total = await repository.list_low_stock(session, page)
    return Page[LowStockProduct].of([LowStockProduct.model_validate(r) for r in rows], total, page)


async def count_low_stock_products(session: AsyncSession) -> int:
    """How many active products are at or below their reorder point (dashboard)."""
    async with transaction(session):
        return await repository.count_low_stock(session)


async def count_open_transfers(session: AsyncSession) -> int:
    """How many transfers are in transit (dashboard)."""
    async with transaction(session):
        return await transfer_repository.count_open_transfers(session)


async def ledger_drift(session: AsyncSession) -> list[Any]:
    """Levels that disagree with the ledger or with open transfers (empty when all is well)."""
    async with transaction(session):
        return await repository.ledger_drift(session)

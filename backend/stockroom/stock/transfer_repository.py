"""The stock domain's SQL of transfers and counts. Nothing here commits; a transition (closing
a transfer, reviewing a count) is one conditional UPDATE, so of concurrent calls exactly one wins.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.http.pagination import PageParams
from stockroom.stock.models import CountStatus, StockCount, StockTransfer, TransferStatus
from stockroom.stock.repository import paged
from stockroom.types import utcnow

# --- transfers -------------------------------------------------------------------------------


def add_transfer(session: AsyncSession, **values: Any) -> StockTransfer:
    transfer = StockTransfer(created_at=utcnow(), status=TransferStatus.IN_TRANSIT.value, **values)
    session.add(transfer)
    return transfer


async def get_transfer(session: AsyncSession, transfer_id: uuid.UUID) -> StockTransfer | None:
    return await session.get(StockTransfer, transfer_id)


async def close_transfer(
    session: AsyncSession,
    transfer_id: uuid.UUID,
    status: TransferStatus,
    actor_id: uuid.UUID | None,
) -> StockTransfer | None:
    """Move an in-transit transfer to `status`; None if it is not in transit (anymore).

    The WHERE re-check happens under the row lock, so of N concurrent calls exactly one wins.
    """
    result = await session.execute(
        update(StockTransfer)
        .where(
            StockTransfer.id == transfer_id,
            StockTransfer.status == TransferStatus.IN_TRANSIT.value,
        )
        .values(status=status.value, closed_by=actor_id, closed_at=utcnow())
        .returning(StockTransfer)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return result.scalar_one_or_none()


async def list_transfers(
    session: AsyncSession,
    *,
    status: str | None,
    product_id: uuid.UUID | None,
    warehouse_id: uuid.UUID | None,
    page: PageParams,
) -> tuple[list[StockTransfer], int]:
    statement = select(StockTransfer)
    if status is not None:
        statement = statement.where(StockTransfer.status == status)
    if product_id is not None:
        statement = statement.where(StockTransfer.product_id == product_id)
    if warehouse_id is not None:
        statement = statement.where(
            or_(
                StockTransfer.from_warehouse_id == warehouse_id,
                StockTransfer.to_warehouse_id == warehouse_id,
            )
        )
    return await paged(
        session, statement, page, [StockTransfer.created_at.desc(), StockTransfer.id.desc()]
    )


async def count_open_transfers(session: AsyncSession) -> int:
    value = await session.scalar(
        select(func.count()).where(StockTransfer.status == TransferStatus.IN_TRANSIT.value)
    )
    return int(value or 0)


# --- counts ----------------------------------------------------------------------------------


def add_count(session: AsyncSession, **values: Any) -> StockCount:
    count = StockCount(created_at=utcnow(), **values)
    session.add(count)
    return count


async def variance_applied_since(
    session: AsyncSession, product_id: uuid.UUID, warehouse_id: uuid.UUID, since: datetime
) -> int:
    """The total size (sum of |variance|) of the counts applied without review since `since`."""
    total = await session.scalar(
        select(func.coalesce(func.sum(func.abs(StockCount.variance)), 0)).where(
            StockCount.product_id == product_id,
            StockCount.warehouse_id == warehouse_id,
            StockCount.status == CountStatus.APPLIED.value,
            StockCount.created_at >= since,
        )
    )
    return int(total or 0)


async def get_count(session: AsyncSession, count_id: uuid.UUID) -> StockCount | None:
    return await session.get(StockCount, count_id)


async def claim_pending_count(
    session: AsyncSession, count_id: uuid.UUID, status: CountStatus, actor_id: uuid.UUID | None
) -> StockCount | None:
    """Move a pending count to `status`; None if it is not pending (anymore). Exactly once."""
    result = await session.execute(
        update(StockCount)
        .where(
            StockCount.id == count_id,
            StockCount.status == CountStatus.PENDING_REVIEW.value,
        )
        .values(status=status.value, reviewed_by=actor_id, reviewed_at=utcnow())
        .returning(StockCount)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return result.scalar_one_or_none()


async def list_counts(
    session: AsyncSession,
    *,
    status: str | None,
    product_id: uuid.UUID | None,
    warehouse_id: uuid.UUID | None,
    page: PageParams,
) -> tuple[list[StockCount], int]:
    statement = select(StockCount)
    if status is not None:
        statement = statement.where(StockCount.status == status)
    if product_id is not None:
        statement = statement.where(StockCount.product_id == product_id)
    if warehouse_id is not None:
        statement = statement.where(StockCount.warehouse_id == warehouse_id)
    return await paged(
        session, statement, page, [StockCount.created_at.desc(), StockCount.id.desc()]
    )

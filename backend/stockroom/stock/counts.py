"""Count use cases: a physical count is applied at once when its variance is within the
threshold, else held for review; approval applies the variance to on hand *at approval time*."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stockroom import events
from stockroom.context import Context
from stockroom.db.session import transaction
from stockroom.http.pagination import Page, PageParams
from stockroom.idempotency import IdempotencyKey, StoredResponse, run_idempotent
from stockroom.stock import ledger, repository, transfer_repository
from stockroom.stock.checks import actor_id, checked_product
from stockroom.stock.errors import CountNotFound, InvalidTransition
from stockroom.stock.ledger import Line
from stockroom.stock.models import CountStatus, MovementType, StockCount
from stockroom.stock.schemas import CountCreate, CountRead
from stockroom.types import utcnow

# Counts applied without review within this window share one COUNT_VARIANCE_THRESHOLD.
COUNT_REVIEW_WINDOW = timedelta(hours=24)


def _count_event_data(count: StockCount) -> dict[str, Any]:
    return {
        "count_id": count.id,
        "product_id": count.product_id,
        "warehouse_id": count.warehouse_id,
        "expected": count.expected,
        "counted": count.counted,
        "variance": count.variance,
        "status": count.status,
        "movement_id": count.movement_id,
    }


def _count_line(
    product_id: uuid.UUID, warehouse_id: uuid.UUID, variance: int, note: str | None
) -> Line:
    return Line(
        product_id=product_id,
        warehouse_id=warehouse_id,
        type=MovementType.COUNT,
        quantity=variance,
        signed_quantity=variance,
        note=note,
    )


async def _record_count(
    session: AsyncSession, data: CountCreate, ctx: Context, variance_threshold: int
) -> CountRead:
    # Checked first: locking the level creates it, which needs a real product and warehouse.
    await checked_product(session, data.product_id, [data.warehouse_id])
    # The level row stays locked until commit: the expected quantity cannot move under us.
    expected = await repository.lock_level(session, data.product_id, data.warehouse_id)
    variance = data.counted_quantity - expected
    # The threshold bounds the total applied without review per product and warehouse over a
    # day, so that small counts cannot add up to an unreviewed write-off. The level lock above
    # serialises counts of one product and warehouse, so the sum cannot race.
    applied = await transfer_repository.variance_applied_since(
        session, data.product_id, data.warehouse_id, utcnow() - COUNT_REVIEW_WINDOW
    )
    within = abs(variance) + applied <= variance_threshold
    movement_id: uuid.UUID | None = None
    if within and variance != 0:
        [movement] = await ledger.post_movements(
            session, [_count_line(data.product_id, data.warehouse_id, variance, data.note)], ctx
        )
        movement_id = movement.id
    count = transfer_repository.add_count(
        session,
        product_id=data.product_id,
        warehouse_id=data.warehouse_id,
        expected=expected,
        counted=data.counted_quantity,
        variance=variance,
        status=(CountStatus.APPLIED if within else CountStatus.PENDING_REVIEW).value,
        note=data.note,
        movement_id=movement_id,
        created_by=actor_id(ctx),
    )
    await session.flush()
    entity = ("stock_count", count.id)
    events.record(session, "count.recorded", ctx, entity=entity, data=_count_event_data(count))
    if within:
        events.record(session, "count.applied", ctx, entity=entity, data=_count_event_data(count))
    return CountRead.model_validate(count)


async def record_count(
    session: AsyncSession,
    data: CountCreate,
    ctx: Context,
    *,
    variance_threshold: int,
    key: IdempotencyKey | None = None,
) -> CountRead | StoredResponse:
    """Record a count: applied at once when abs(variance) <= threshold, else held for review."""
    return await run_idempotent(
        session, key, lambda: _record_count(session, data, ctx, variance_threshold), status=201
    )


async def _review_count(
    session: AsyncSession, count_id: uuid.UUID, approve: bool, ctx: Context
) -> CountRead:
    status = CountStatus.APPROVED if approve else CountStatus.REJECTED
    count = await transfer_repository.claim_pending_count(session, count_id, status, actor_id(ctx))
    if count is None:
        current = await transfer_repository.get_count(session, count_id)
        if current is None:
            raise CountNotFound()
        raise InvalidTransition(
            f"the count is {current.status}; only pending_review counts can be reviewed",
            status=current.status,
        )
    if approve:
        # The variance found by the count is applied as a delta to on hand *now*: movements
        # posted between the count and its approval stay in effect.
        [movement] = await ledger.post_movements(
            session,
            [_count_line(count.product_id, count.warehouse_id, count.variance, count.note)],
            ctx,
        )
        count.movement_id = movement.id
    events.record(
        session,
        "count.approved" if approve else "count.rejected",
        ctx,
        entity=("stock_count", count.id),
        changes={"status": {"old": CountStatus.PENDING_REVIEW.value, "new": status.value}},
        data=_count_event_data(count),
    )
    return CountRead.model_validate(count)


async def review_count(
    session: AsyncSession,
    count_id: uuid.UUID,
    *,
    approve: bool,
    ctx: Context,
    key: IdempotencyKey | None = None,
) -> CountRead | StoredResponse:
    """Approve (apply the variance to the current on hand) or reject a pending count."""
    return await run_idempotent(
        session, key, lambda: _review_count(session, count_id, approve, ctx), status=200
    )


async def get_count(session: AsyncSession, count_id: uuid.UUID) -> CountRead:
    async with transaction(session):
        count = await transfer_repository.get_count(session, count_id)
        if count is None:
            raise CountNotFound()
        return CountRead.model_validate(count)


async def list_counts(
    session: AsyncSession,
    *,
    status: str | None,
    product_id: uuid.UUID | None,
    warehouse_id: uuid.UUID | None,
    page: PageParams,
) -> Page[CountRead]:
    async with transaction(session):
        rows, total = await transfer_repository.list_counts(
            session, status=status, product_id=product_id, warehouse_id=warehouse_id, page=page
        )
    return Page[CountRead].of([CountRead.model_validate(r) for r in rows], total, page)

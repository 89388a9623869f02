"""HTTP routes of stock transfers and stock counts, included by `stockroom.stock.router`
after the movement and level routes (the order of the OpenAPI document)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from stockroom.auth.deps import AppSettings, WriteContext
from stockroom.db.session import Session
from stockroom.http.errors import problem_responses
from stockroom.http.idempotency import IdempotencyKeyHeader
from stockroom.http.pagination import Page, Pagination
from stockroom.stock import service
from stockroom.stock.models import CountStatus, TransferStatus
from stockroom.stock.route_helpers import (
    _IDEMPOTENT,
    StockAdjuster,
    StockReader,
    StockWriter,
    _collection_of,
    _respond,
)
from stockroom.stock.schemas import CountCreate, CountRead, TransferCreate, TransferRead

router = APIRouter()


# --- transfers -------------------------------------------------------------------------------


@router.post(
    "/stock-transfers",
    status_code=201,
    response_model=TransferRead,
    responses=problem_responses(401, 403, 404, 409, 422),
    tags=["stock"],
    description="Debits the source at once (`transfer_out`, counted in its in_transit_out); "
    "status in_transit. Same warehouse twice is 422; insufficient stock 409." + _IDEMPOTENT,
)
async def create_stock_transfer(
    request: Request,
    data: TransferCreate,
    session: Session,
    principal: StockWriter,
    ctx: WriteContext,
    key: IdempotencyKeyHeader,
) -> Response:
    """Start a transfer between warehouses."""
    result = await service.create_transfer(session, data, ctx, key)
    return _respond(
        result, status=201, principal=principal, collection_path=_collection_of(request)
    )


@router.get(
    "/stock-transfers",
    response_model=Page[TransferRead],
    responses=problem_responses(401, 403, 422),
    tags=["stock"],
    description="Newest first. `warehouse_id` matches either end of the transfer.",
)
async def list_stock_transfers(
    session: Session,
    _: StockReader,
    page: Pagination,
    status: Annotated[TransferStatus | None, Query()] = None,
    product_id: Annotated[uuid.UUID | None, Query()] = None,
    warehouse_id: Annotated[uuid.UUID | None, Query()] = None,
) -> Page[TransferRead]:
    """List transfers."""
    return await service.list_transfers(
        session,
        status=status.value if status else None,
        product_id=product_id,
        warehouse_id=warehouse_id,
        page=page,
    )


@router.get(
    "/stock-transfers/{transfer_id}",
    response_model=TransferRead,
    responses=problem_responses(401, 403, 404, 422),
    tags=["stock"],
)
async def get_stock_transfer(
    transfer_id: uuid.UUID, session: Session, _: StockReader
) -> TransferRead:
    """Get one transfer."""
    return await service.get_transfer(session, transfer_id)


@router.post(
    "/stock-transfers/{transfer_id}/complete",
    response_model=TransferRead,
    responses=problem_responses(401, 403, 404, 409, 422),
    tags=["stock"],
    description="Credits the destination (`transfer_in`). Only in_transit transfers (409 "
    "invalid_transition), exactly once under any concurrency; an inactive destination "
    "warehouse is 409." + _IDEMPOTENT,
)
async def complete_stock_transfer(
    request: Request,
    transfer_id: uuid.UUID,
    session: Session,
    principal: StockWriter,
    ctx: WriteContext,
    key: IdempotencyKeyHeader,
) -> Response:
    """Complete a transfer."""
    result = await service.complete_transfer(session, transfer_id, ctx, key)
    return _respond(result, status=200, principal=principal)


@router.post(
    "/stock-transfers/{transfer_id}/cancel",
    response_model=TransferRead,
    responses=problem_responses(401, 403, 404, 409, 422),
    tags=["stock"],
    description="Credits the source back (a `transfer_in` at the source). Only in_transit "
    "transfers (409 invalid_transition), exactly once under any concurrency." + _IDEMPOTENT,
)
async def cancel_stock_transfer(
    request: Request,
    transfer_id: uuid.UUID,
    session: Session,
    principal: StockWriter,
    ctx: WriteContext,
    key: IdempotencyKeyHeader,
) -> Response:
    """Cancel a transfer."""
    result = await service.cancel_transfer(session, transfer_id, ctx, key)
    return _respond(result, status=200, principal=principal)


# --- counts ----------------------------------------------------------------------------------


@router.post(
    "/stock-counts",
    status_code=201,
    response_model=CountRead,
    responses=problem_responses(401, 403, 404, 409, 422),
    tags=["stock"],
    description="Records a physical count. `expected` is on hand now; `variance` = counted - "
    "expected. If |variance| <= COUNT_VARIANCE_THRESHOLD it is applied at once as a `count` "
    "movement (status applied), else the count waits for review (pending_review) and nothing "
    "moves. The threshold bounds the total |variance| applied without review per product and "
    "warehouse over 24 hours, so small counts cannot add up to an unreviewed write-off."
    + _IDEMPOTENT,
)
async def record_stock_count(
    request: Request,
    data: CountCreate,
    session: Session,
    principal: StockWriter,
    ctx: WriteContext,
    settings: AppSettings,
    key: IdempotencyKeyHeader,
) -> Response:
    """Record a stock count."""
    result = await service.record_count(
        session,
        data,
        ctx,
        variance_threshold=settings.count_variance_threshold,
        key=key,
    )
    return _respond(
        result, status=201, principal=principal, collection_path=_collection_of(request)
    )


@router.get(
    "/stock-counts",
    response_model=Page[CountRead],
    responses=problem_responses(401, 403, 422),
    tags=["stock"],
    description="Newest first.",
)
async def list_stock_counts(
    session: Session,
    _: StockReader,
    page: Pagination,
    status: Annotated[CountStatus | None, Query()] = None,
    product_id: Annotated[uuid.UUID | None, Query()] = None,
    warehouse_id: Annotated[uuid.UUID | None, Query()] = None,
) -> Page[CountRead]:
    """List stock counts."""
    return await service.list_counts(
        session,
        status=status.value if status else None,
        product_id=product_id,
        warehouse_id=warehouse_id,
        page=page,
    )


@router.get(
    "/stock-counts/{count_id}",
    response_model=CountRead,
    responses=problem_responses(401, 403, 404, 422),
    tags=["stock"],
)
async def get_stock_count(count_id: uuid.UUID, session: Session, _: StockReader) -> CountRead:
    """Get one stock count."""
    return await service.get_count(session, count_id)


@router.post(
    "/stock-counts/{count_id}/approve",
    response_model=CountRead,
    responses=problem_responses(401, 403, 404, 409, 422),
    tags=["stock"],
    description="Applies the count's recorded variance (counted - expected at count time) as a "
    "`count` movement against the on hand **at approval time**: movements posted between the "
    "count and its approval stay in effect, so the result is on hand now + variance (not "
    "simply the counted number). If that would go below zero: 409 insufficient_stock and the "
    "count stays pending. Only pending_review counts (409 invalid_transition)." + _IDEMPOTENT,
)
async def approve_stock_count(
    request: Request,
    count_id: uuid.UUID,
    session: Session,
    principal: StockAdjuster,
    ctx: WriteContext,
    key: IdempotencyKeyHeader,
) -> Response:
    """Approve a pending stock count."""
    result = await service.review_count(session, count_id, approve=True, ctx=ctx, key=key)
    return _respond(result, status=200, principal=principal)


@router.post(
    "/stock-counts/{count_id}/reject",
    response_model=CountRead,
    responses=problem_responses(401, 403, 404, 409, 422),
    tags=["stock"],
    description="Nothing moves. Only pending_review counts (409 invalid_transition)." + _IDEMPOTENT,
)
async def reject_stock_count(
    request: Request,
    count_id: uuid.UUID,
    session: Session,
    principal: StockAdjuster,
    ctx: WriteContext,
    key: IdempotencyKeyHeader,
) -> Response:
    """Reject a pending stock count."""
    result = await service.review_count(session, count_id, approve=False, ctx=ctx, key=key)
    return _respond(result, status=200, principal=principal)

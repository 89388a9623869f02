"""HTTP routes of the stock domain.

Included before the catalog router, so `/products/low-stock` and `/products/{id}/stock-history`
are matched here before the catalog's `/products/{id}`.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel

from stockroom.auth.deps import (
    AppSettings,
    Caller,
    WriteContext,
    caller,
    ensure_permissions,
    require,
)
from stockroom.auth.permissions import Perm
from stockroom.context import Principal
from stockroom.db.session import Session
from stockroom.http.errors import problem_responses
from stockroom.http.idempotency import IdempotencyKeyHeader, replay_response
from stockroom.http.pagination import Page, Pagination
from stockroom.http.params import UtcDateTime
from stockroom.idempotency import StoredResponse
from stockroom.stock import service
from stockroom.stock.models import CountStatus, MovementType, TransferStatus
from stockroom.stock.schemas import (
    ADJUST_MOVEMENT_TYPES,
    CountCreate,
    CountRead,
    LowStockProduct,
    MovementCreate,
    MovementFilter,
    MovementRead,
    ReverseRequest,
    StockLevelRead,
    TransferCreate,
    TransferRead,
)
from stockroom.types import SafeText

router = APIRouter()
JSON = "application/json"

StockReader = Annotated[Principal, Depends(require(Perm.STOCK_READ))]
StockWriter = Annotated[Principal, Depends(require(Perm.STOCK_WRITE))]
StockAdjuster = Annotated[Principal, Depends(require(Perm.STOCK_ADJUST))]
# The hot route's one dependency: session, authentication, stock:write and the context.
StockWriterCaller = Annotated[Caller, caller(Perm.STOCK_WRITE)]

_IDEMPOTENT = (
    " Send an `Idempotency-Key` header to make retries safe: the same key and body replay the "
    "first response (header `Idempotent-Replayed: true`), a different body is 422 "
    "`idempotency_key_reused`, a retry while the first is still running is 409."
)
_COST_NOTE = " `unit_cost` appears only for callers with costs:read."


def _hide_costs(principal: Principal) -> bool:
    return not principal.can(Perm.COSTS_READ)


def _strip_cost(body: Any) -> Any:
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k != "unit_cost"}
    return body


def _respond(
    result: BaseModel | StoredResponse,
    *,
    status: int,
    principal: Principal,
    collection_path: str | None = None,
    has_costs: bool = False,
) -> Response:
    """The JSON response of a write: fresh or replayed, costs hidden unless costs:read.

    A 201 gets `Location: {collection_path}/{id}`. A fresh result is serialized once, by
    pydantic's compiled serializer straight to bytes (no dict, then json.dumps).
    """
    hide = has_costs and _hide_costs(principal)
    if not isinstance(result, StoredResponse):
        headers: dict[str, str] = {}
        result_id = getattr(result, "id", None)
        if status == 201 and collection_path and result_id is not None:
            headers["Location"] = f"{collection_path}/{result_id}"
        content = result.model_dump_json(exclude={"unit_cost"} if hide else None)
        return Response(content, status_code=status, headers=headers, media_type=JSON)
    body, status = result.body, result.status
    if hide:
        body = _strip_cost(body)
    headers = {}
    if status == 201 and collection_path and isinstance(body, dict) and "id" in body:
        headers["Location"] = f"{collection_path}/{body['id']}"
    return replay_response(StoredResponse(status, body), headers)


def _collection_of(request: Request, depth: int = 0) -> str:
    """The request's collection path: its path without its last `depth` segments."""
    path = request.url.path.rstrip("/")
    return path.rsplit("/", depth)[0] if depth else path


def _movement_list_response(page: Page[MovementRead], principal: Principal) -> JSONResponse:
    exclude: Any = {"items": {"__all__": {"unit_cost"}}} if _hide_costs(principal) else None
    return JSONResponse(page.model_dump(mode="json", exclude=exclude))


def _movement_filter(
    product_id: Annotated[uuid.UUID | None, Query()] = None,
    warehouse_id: Annotated[uuid.UUID | None, Query()] = None,
    type: Annotated[MovementType | None, Query(description="movement type")] = None,
    reference: Annotated[SafeText | None, Query(max_length=100)] = None,
    created_from: Annotated[
        UtcDateTime | None, Query(description="inclusive; ISO 8601 (UTC if no offset)")
    ] = None,
    created_to: Annotated[
        UtcDateTime | None, Query(description="exclusive; ISO 8601 (UTC if no offset)")
    ] = None,
) -> MovementFilter:
    return MovementFilter(
        product_id=product_id,
        warehouse_id=warehouse_id,
        type=type.value if type else None,
        reference=reference,
        created_from=created_from,
        created_to=created_to,
    )


Filters = Annotated[MovementFilter, Depends(_movement_filter)]


# --- movements -------------------------------------------------------------------------------


@router.post(
    "/stock-movements",
    status_code=201,
    response_model=MovementRead,
    responses=problem_responses(401, 403, 404, 409, 422),
    tags=["stock"],
    description="Types and signs: receipt (+), return (+), sale (-), damage (-), adjustment "
    "(signed, never 0). transfer_out, transfer_in and count are system-only (422). adjustment "
    "and damage need stock:adjust. A sale records unit_price (default: the product's sale "
    "price), a receipt unit_cost (default: its cost price; sending unit_cost needs costs:read, "
    "403 otherwise). A movement that would take on hand "
    "below zero is 409 insufficient_stock and writes nothing; an unknown product or warehouse "
    "is 404; an inactive one is 409 (inactive_product, inactive_warehouse)."
    + _IDEMPOTENT
    + _COST_NOTE,
)
async def post_stock_movement(
    request: Request, data: MovementCreate, who: StockWriterCaller, key: IdempotencyKeyHeader
) -> Response:
    """Post a stock movement to the ledger."""
    session, principal, ctx = who.session, who.principal, who.ctx
    if data.type in ADJUST_MOVEMENT_TYPES:
        await ensure_permissions(request, session, principal, Perm.STOCK_ADJUST)
    if data.unit_cost is not None:
        # A caller never sets a cost it may not see (it would poison margins and valuations).
        await ensure_permissions(request, session, principal, Perm.COSTS_READ)
    result = await service.post_movement_idempotent(session, data, ctx, key)
    return _respond(
        result,
        status=201,
        principal=principal,
        collection_path=_collection_of(request),
        has_costs=True,
    )


@router.get(
    "/stock-movements",
    response_model=Page[MovementRead],
    responses=problem_responses(401, 403, 422),
    tags=["stock"],
    description="Newest first." + _COST_NOTE,
)
async def list_stock_movements(
    session: Session, principal: StockReader, filters: Filters, page: Pagination
) -> Response:
    """List ledger movements."""
    result = await service.list_movements(session, filters, page)
    return _movement_list_response(result, principal)


@router.get(
    "/stock-movements/{movement_id}",
    response_model=MovementRead,
    responses=problem_responses(401, 403, 404, 405, 422),
    tags=["stock"],
    description="Movements are immutable: PUT, PATCH and DELETE answer 405." + _COST_NOTE,
)
async def get_stock_movement(
    movement_id: uuid.UUID, session: Session, principal: StockReader
) -> Response:
    """Get one ledger movement."""
    movement = await service.get_movement(session, movement_id)
    body = movement.model_dump(mode="json")
    return JSONResponse(_strip_cost(body) if _hide_costs(principal) else body)


@router.post(
    "/stock-movements/{movement_id}/reverse",
    status_code=201,
    response_model=MovementRead,
    responses=problem_responses(401, 403, 404, 409, 422),
    tags=["stock"],
    description="Posts one compensating `adjustment` of the opposite sign, linked by "
    "`reverses_id`. Reversing twice is 409 already_reversed; transfer movements (cancel the "
    "transfer instead) and reversals themselves are 409 not_reversible; a reversal that would "
    "take on hand below zero is 409 insufficient_stock." + _IDEMPOTENT + _COST_NOTE,
)
async def reverse_stock_movement(
    request: Request,
    movement_id: uuid.UUID,
    session: Session,
    principal: StockAdjuster,
    ctx: WriteContext,
    key: IdempotencyKeyHeader,
    data: Annotated[ReverseRequest | None, Body()] = None,
) -> Response:
    """Reverse a movement with a compensating movement."""
    result = await service.reverse_movement(
        session, movement_id, data.note if data else None, ctx, key
    )
    return _respond(
        result,
        status=201,
        principal=principal,
        collection_path=_collection_of(request, depth=2),
        has_costs=True,
    )


# --- levels ----------------------------------------------------------------------------------


@router.get(
    "/stock",
    response_model=Page[StockLevelRead],
    responses=problem_responses(401, 403, 422),
    tags=["stock"],
    description="One row per product and warehouse that has a level (its first movement, "
    "reservation or submitted purchase order creates it), ordered by sku and warehouse code. "
    "`available = on_hand - reserved`; `over_reserved` is true when a damage, adjustment or "
    "count took on hand below reserved. `on_order`: outstanding quantities of ordered and "
    "partially received purchase orders. `below_reorder=true`: on hand at or below the "
    "product's reorder point.",
)
async def list_stock_levels(
    session: Session,
    _: StockReader,
    page: Pagination,
    product_id: Annotated[uuid.UUID | None, Query()] = None,
    warehouse_id: Annotated[uuid.UUID | None, Query()] = None,
    below_reorder: Annotated[bool | None, Query()] = None,
) -> Page[StockLevelRead]:
    """List stock levels."""
    return await service.list_levels(
        session,
        product_id=product_id,
        warehouse_id=warehouse_id,
        below_reorder=below_reorder,
        page=page,
    )


@router.get(
    "/products/low-stock",
    response_model=Page[LowStockProduct],
    responses=problem_responses(401, 403, 422),
    tags=["stock"],
    description="Active products whose total on hand (all warehouses, excluding stock in "
    "transit) is at or below their reorder point; the furthest below first.",
)
async def list_low_stock_products(
    session: Session, _: StockReader, page: Pagination
) -> Page[LowStockProduct]:
    """List products at or below their reorder point."""
    return await service.list_low_stock(session, page)


@router.get(
    "/products/{product_id}/stock-history",
    response_model=Page[MovementRead],
    responses=problem_responses(401, 403, 404, 422),
    tags=["stock"],
    description="The product's movements, newest first; filters as `GET /stock-movements`."
    + _COST_NOTE,
)
async def product_stock_history(
    product_id: uuid.UUID,
    session: Session,
    principal: StockReader,
    page: Pagination,
    warehouse_id: Annotated[uuid.UUID | None, Query()] = None,
    type: Annotated[MovementType | None, Query()] = None,
    created_from: Annotated[UtcDateTime | None, Query()] = None,
    created_to: Annotated[UtcDateTime | None, Query()] = None,
) -> Response:
    """A product's stock movements."""
    filters = MovementFilter(
        product_id=product_id,
        warehouse_id=warehouse_id,
        type=type.value if type else None,
        created_from=created_from,
        created_to=created_to,
    )
    result = await service.stock_history(session, product_id, filters, page)
    return _movement_list_response(result, principal)


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


# Each route's docstring line is its OpenAPI summary; `description=` holds the rules.
for _route in router.routes:
    if isinstance(_route, APIRoute) and _route.summary is None and _route.endpoint.__doc__:
        _route.summary = _route.endpoint.__doc__.strip().splitlines()[0].rstrip(".")

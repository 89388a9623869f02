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

from stockroom.auth.deps import (
    WriteContext,
    ensure_permissions,
)
from stockroom.auth.permissions import Perm
from stockroom.context import Principal
from stockroom.db.session import Session
from stockroom.http.errors import problem_responses
from stockroom.http.idempotency import IdempotencyKeyHeader
from stockroom.http.pagination import Page, Pagination
from stockroom.http.params import UtcDateTime
from stockroom.redaction import without_costs
from stockroom.stock import service, transfer_routes
from stockroom.stock.models import MovementType

# Shared with the transfer and count routes (`transfer_routes`).
from stockroom.stock.route_helpers import (
    _COST_NOTE,
    _IDEMPOTENT,
    StockAdjuster,
    StockReader,
    StockWriterCaller,
    _collection_of,
    _hide_costs,
    _respond,
)
from stockroom.stock.schemas import (
    ADJUST_MOVEMENT_TYPES,
    LowStockProduct,
    MovementCreate,
    MovementFilter,
    MovementRead,
    ReverseRequest,
    StockLevelRead,
)
from stockroom.types import SafeText

router = APIRouter()


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
    return JSONResponse(without_costs(body) if _hide_costs(principal) else body)


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


# Each route's docstring line is its OpenAPI summary; `description=` holds the rules. The
# transfer and count routes get theirs before they are included (an included router's routes
# are not in `router.routes`).
for _route in [*router.routes, *transfer_routes.router.routes]:
    if isinstance(_route, APIRoute) and _route.summary is None and _route.endpoint.__doc__:
        _route.summary = _route.endpoint.__doc__.strip().splitlines()[0].rstrip(".")

router.include_router(transfer_routes.router)

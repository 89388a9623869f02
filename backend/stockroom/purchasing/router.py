"""HTTP routes of the purchasing domain."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from stockroom.auth.deps import WriteContext, ensure_permissions, require
from stockroom.auth.permissions import Perm
from stockroom.context import Principal
from stockroom.db.session import Session
from stockroom.http.errors import problem_responses
from stockroom.http.etag import IfMatch, etag_for
from stockroom.http.idempotency import IdempotencyKeyHeader, replay_response
from stockroom.http.pagination import Page, Pagination, Sort, sort_param
from stockroom.http.params import UtcDateTime
from stockroom.idempotency import StoredResponse
from stockroom.purchasing import reorder, service
from stockroom.purchasing.models import PurchaseOrderStatus
from stockroom.purchasing.repository import SORTS, OrderFilter, SuggestionFilter
from stockroom.purchasing.schemas import (
    PurchaseOrderCreate,
    PurchaseOrderLineIn,
    PurchaseOrderRead,
    PurchaseOrderUpdate,
    ReceiveRequest,
    ReorderRequest,
    ReorderResult,
    ReorderSuggestion,
)
from stockroom.redaction import without_costs

router = APIRouter(prefix="/purchase-orders", tags=["purchasing"])
reorder_router = APIRouter(prefix="/reorder-suggestions", tags=["purchasing"])

Reader = Annotated[Principal, Depends(require(Perm.PURCHASING_READ))]
Writer = Annotated[Principal, Depends(require(Perm.PURCHASING_WRITE))]

_COSTS = " `unit_cost` and `total_cost` appear only for callers with costs:read."
_IDEMPOTENT = (
    " Send an `Idempotency-Key` header to make retries safe: the same key and body replay the "
    "first response, a different body is 422 `idempotency_key_reused`."
)
_ACTION_ERRORS = problem_responses(401, 403, 404, 409, 422)


def respond(
    result: PurchaseOrderRead | StoredResponse | Page[PurchaseOrderRead] | ReorderResult,
    principal: Principal,
    *,
    status: int = 200,
    location: bool = False,
) -> JSONResponse:
    """An order (or page) as JSON: costs removed unless costs:read; an order gets its ETag."""
    if isinstance(result, StoredResponse):
        body: Any = result.body
        status = result.status
    else:
        body = result.model_dump(mode="json")
    if not principal.can(Perm.COSTS_READ):
        body = without_costs(body)
    headers: dict[str, str] = {}
    if status < 300 and isinstance(body, dict) and "version" in body:
        headers["ETag"] = etag_for(body["version"])
        if location:
            headers["Location"] = f"/api/v1/purchase-orders/{body['id']}"
    if isinstance(result, StoredResponse):
        return replay_response(StoredResponse(status, body), headers)
    return JSONResponse(body, status_code=status, headers=headers)


async def _ensure_may_set_costs(
    request: Request,
    session: Session,
    principal: Principal,
    lines: list[PurchaseOrderLineIn] | None,
) -> None:
    # A caller never sets what it may not see.
    if lines and any(line.unit_cost is not None for line in lines):
        await ensure_permissions(request, session, principal, Perm.COSTS_READ)


def _filters(
    status: Annotated[PurchaseOrderStatus | None, Query()] = None,
    supplier_id: Annotated[uuid.UUID | None, Query()] = None,
    warehouse_id: Annotated[uuid.UUID | None, Query()] = None,
    product_id: Annotated[uuid.UUID | None, Query(description="orders with a line of it")] = None,
    created_from: Annotated[UtcDateTime | None, Query(description="inclusive")] = None,
    created_to: Annotated[UtcDateTime | None, Query(description="exclusive")] = None,
) -> OrderFilter:
    return OrderFilter(
        status=status.value if status else None,
        supplier_id=supplier_id,
        warehouse_id=warehouse_id,
        product_id=product_id,
        created_from=created_from,
        created_to=created_to,
    )


@router.post(
    "",
    status_code=201,
    response_model=PurchaseOrderRead,
    responses=problem_responses(401, 403, 404, 409, 422),
    description="Creates a draft order. 1..500 lines, a product at most once (422); `unit_cost` "
    "defaults to the product's cost price and setting it needs costs:read (403). Unknown "
    "supplier, warehouse or product 404; inactive warehouse or product 409." + _COSTS,
)
async def create_purchase_order(
    request: Request,
    data: PurchaseOrderCreate,
    session: Session,
    principal: Writer,
    ctx: WriteContext,
) -> JSONResponse:
    """Create a purchase order."""
    await _ensure_may_set_costs(request, session, principal, data.lines)
    order = await service.create_order(session, data, ctx)
    return respond(order, principal, status=201, location=True)


@router.get(
    "",
    response_model=Page[PurchaseOrderRead],
    responses=problem_responses(401, 403, 422),
    description="Newest first unless `sort` says otherwise." + _COSTS,
)
async def list_purchase_orders(
    session: Session,
    principal: Reader,
    page: Pagination,
    filters: Annotated[OrderFilter, Depends(_filters)],
    sort: Annotated[Sort, Depends(sort_param(SORTS, "-created_at"))],
) -> JSONResponse:
    """List purchase orders."""
    return respond(await service.list_orders(session, filters, sort, page), principal)


@router.get(
    "/{order_id}",
    response_model=PurchaseOrderRead,
    responses=problem_responses(401, 403, 404, 422),
    description="With its `ETag`." + _COSTS,
)
async def get_purchase_order(
    order_id: uuid.UUID, session: Session, principal: Reader
) -> JSONResponse:
    """Get a purchase order."""
    return respond(await service.get_order(session, order_id), principal)


@router.patch(
    "/{order_id}",
    response_model=PurchaseOrderRead,
    responses=problem_responses(401, 403, 404, 409, 412, 422),
    description="Draft orders only (else 409 invalid_transition). `lines`, when given, replaces "
    "every line. `If-Match` with a stale ETag is 412." + _COSTS,
)
async def update_purchase_order(
    request: Request,
    order_id: uuid.UUID,
    data: PurchaseOrderUpdate,
    session: Session,
    principal: Writer,
    ctx: WriteContext,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Change a draft purchase order."""
    await _ensure_may_set_costs(request, session, principal, data.lines)
    order = await service.update_order(session, order_id, data, if_match, ctx)
    return respond(order, principal)


@router.post(
    "/{order_id}/submit",
    response_model=PurchaseOrderRead,
    responses=_ACTION_ERRORS,
    description="draft -> ordered; its quantities count as `on_order` at its warehouse. Any "
    "other status is 409 invalid_transition." + _IDEMPOTENT + _COSTS,
)
async def submit_purchase_order(
    order_id: uuid.UUID,
    session: Session,
    principal: Writer,
    ctx: WriteContext,
    key: IdempotencyKeyHeader,
) -> JSONResponse:
    """Submit a purchase order to its supplier."""
    return respond(await service.submit_order(session, order_id, ctx, key), principal)


@router.post(
    "/{order_id}/receive",
    response_model=PurchaseOrderRead,
    responses=_ACTION_ERRORS,
    description="One `receipt` movement per line at the line's `unit_cost`, each carrying "
    "`purchase_order_id`; status partially_received or, when every line is complete, "
    "received. More than a line's outstanding quantity is 409 over_receipt (with `lines: "
    "[{line_id, outstanding, requested}]`) and nothing is written: all lines or none. Only "
    "ordered and partially_received orders (409 invalid_transition)." + _IDEMPOTENT + _COSTS,
)
async def receive_purchase_order(
    order_id: uuid.UUID,
    data: ReceiveRequest,
    session: Session,
    principal: Writer,
    ctx: WriteContext,
    key: IdempotencyKeyHeader,
) -> JSONResponse:
    """Receive goods of a purchase order."""
    return respond(await service.receive_order(session, order_id, data, ctx, key), principal)


@router.post(
    "/{order_id}/cancel",
    response_model=PurchaseOrderRead,
    responses=_ACTION_ERRORS,
    description="draft, or ordered with nothing received -> cancelled; partially_received -> "
    "closed (the rest will not come). The outstanding quantities leave `on_order`. Any other "
    "status is 409 invalid_transition." + _IDEMPOTENT + _COSTS,
)
async def cancel_purchase_order(
    order_id: uuid.UUID,
    session: Session,
    principal: Writer,
    ctx: WriteContext,
    key: IdempotencyKeyHeader,
) -> JSONResponse:
    """Cancel (or close) a purchase order."""
    return respond(await service.cancel_order(session, order_id, ctx, key), principal)


@reorder_router.get(
    "",
    response_model=Page[ReorderSuggestion],
    responses=problem_responses(401, 403, 422),
    description="One row per active product and active warehouse where it has a stock level "
    "and `on_hand - reserved + on_order` is at or below the product's `reorder_point`; "
    "`suggested_quantity` brings it to `reorder_point + reorder_quantity` (rows that would "
    "suggest nothing are left out). Ordered by sku and warehouse code. Draft purchase orders "
    "are not on order: submit them and the suggestion shrinks.",
)
async def list_reorder_suggestions(
    session: Session,
    _: Reader,
    page: Pagination,
    warehouse_id: Annotated[uuid.UUID | None, Query()] = None,
    supplier_id: Annotated[uuid.UUID | None, Query(description="the product's supplier")] = None,
) -> Page[ReorderSuggestion]:
    """List reorder suggestions."""
    filters = SuggestionFilter(warehouse_id=warehouse_id, supplier_id=supplier_id)
    return await reorder.list_suggestions(session, filters, page)


@reorder_router.post(
    "/purchase-orders",
    status_code=201,
    response_model=ReorderResult,
    responses=problem_responses(401, 403, 409, 422),
    description="Turns the current suggestions (optionally of one warehouse and/or supplier) "
    "into draft purchase orders, in one transaction: one per supplier and warehouse, each line "
    "the suggested quantity at the product's cost price (an order holds at most 500 lines; "
    "more make several orders). Suggestions for products without a supplier are listed in "
    "`skipped`. The drafts do not count as on order until submitted, so calling this twice "
    "makes two sets." + _IDEMPOTENT + _COSTS,
)
async def order_reorder_suggestions(
    session: Session,
    principal: Writer,
    ctx: WriteContext,
    key: IdempotencyKeyHeader,
    data: ReorderRequest | None = None,
) -> JSONResponse:
    """Create draft purchase orders from reorder suggestions."""
    result = await reorder.order_suggestions(session, data or ReorderRequest(), ctx, key)
    return respond(result, principal, status=201)


for _route in (*router.routes, *reorder_router.routes):
    if isinstance(_route, APIRoute) and _route.summary is None and _route.endpoint.__doc__:
        _route.summary = _route.endpoint.__doc__.strip().splitlines()[0].rstrip(".")

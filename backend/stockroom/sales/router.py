"""HTTP routes of the sales domain."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute

from stockroom.auth.deps import WriteContext, require
from stockroom.auth.permissions import Perm
from stockroom.context import Principal
from stockroom.db.session import Session
from stockroom.http.errors import problem_responses
from stockroom.http.etag import IfMatch, etag_for
from stockroom.http.idempotency import IdempotencyKeyHeader, replay_response
from stockroom.http.pagination import Page, Pagination, Sort, sort_param
from stockroom.http.params import UtcDateTime
from stockroom.idempotency import StoredResponse
from stockroom.sales import service
from stockroom.sales.actions import ActionResult
from stockroom.sales.models import SalesOrderStatus
from stockroom.sales.repository import SORTS, OrderFilter
from stockroom.sales.schemas import SalesOrderCreate, SalesOrderRead, SalesOrderUpdate, ShipRequest

router = APIRouter(prefix="/sales-orders", tags=["sales"])

Reader = Annotated[Principal, Depends(require(Perm.SALES_READ))]
Writer = Annotated[Principal, Depends(require(Perm.SALES_WRITE))]

_IDEMPOTENT = (
    " Send an `Idempotency-Key` header to make retries safe: the same key and body replay the "
    "first response, a different body is 422 `idempotency_key_reused`."
)
_ACTION_ERRORS = problem_responses(401, 403, 404, 409, 422)


def respond(
    result: SalesOrderRead | StoredResponse | Page[SalesOrderRead],
    *,
    status: int = 200,
    location: bool = False,
) -> JSONResponse:
    """An order (or page) as JSON; an order gets its ETag (and a new one its Location)."""
    if isinstance(result, StoredResponse):
        body: Any = result.body
        status = result.status
    else:
        body = result.model_dump(mode="json")
    headers: dict[str, str] = {}
    if status < 300 and isinstance(body, dict) and "version" in body:
        headers["ETag"] = etag_for(body["version"])
        if location:
            headers["Location"] = f"/api/v1/sales-orders/{body['id']}"
    if isinstance(result, StoredResponse):
        return replay_response(StoredResponse(status, body), headers)
    return JSONResponse(body, status_code=status, headers=headers)


def respond_action(result: ActionResult) -> Response:
    """A confirm or ship: the body as its SQL function built it (`SalesOrderRead`'s JSON, as
    `respond` would write it) with its ETag, or the stored response of a replay."""
    if isinstance(result, StoredResponse):
        return respond(result)
    headers = {"ETag": etag_for(result.version)}
    return Response(result.body, status_code=200, headers=headers, media_type="application/json")


def _filters(
    status: Annotated[SalesOrderStatus | None, Query()] = None,
    warehouse_id: Annotated[uuid.UUID | None, Query()] = None,
    product_id: Annotated[uuid.UUID | None, Query(description="orders with a line of it")] = None,
    created_from: Annotated[UtcDateTime | None, Query(description="inclusive")] = None,
    created_to: Annotated[UtcDateTime | None, Query(description="exclusive")] = None,
) -> OrderFilter:
    return OrderFilter(
        status=status.value if status else None,
        warehouse_id=warehouse_id,
        product_id=product_id,
        created_from=created_from,
        created_to=created_to,
    )


@router.post(
    "",
    status_code=201,
    response_model=SalesOrderRead,
    responses=problem_responses(401, 403, 404, 409, 422),
    description="Creates a draft order (nothing reserved yet). 1..500 lines, a product at most "
    "once (422); `unit_price` defaults to the product's sale price. Unknown warehouse or "
    "product 404; inactive ones 409.",
)
async def create_sales_order(
    data: SalesOrderCreate, session: Session, _: Writer, ctx: WriteContext
) -> JSONResponse:
    """Create a sales order."""
    return respond(await service.create_order(session, data, ctx), status=201, location=True)


@router.get(
    "",
    response_model=Page[SalesOrderRead],
    responses=problem_responses(401, 403, 422),
    description="Newest first unless `sort` says otherwise.",
)
async def list_sales_orders(
    session: Session,
    _: Reader,
    page: Pagination,
    filters: Annotated[OrderFilter, Depends(_filters)],
    sort: Annotated[Sort, Depends(sort_param(SORTS, "-created_at"))],
) -> JSONResponse:
    """List sales orders."""
    return respond(await service.list_orders(session, filters, sort, page))


@router.get(
    "/{order_id}",
    response_model=SalesOrderRead,
    responses=problem_responses(401, 403, 404, 422),
    description="With its `ETag`.",
)
async def get_sales_order(order_id: uuid.UUID, session: Session, _: Reader) -> JSONResponse:
    """Get a sales order."""
    return respond(await service.get_order(session, order_id))


@router.patch(
    "/{order_id}",
    response_model=SalesOrderRead,
    responses=problem_responses(401, 403, 404, 409, 412, 422),
    description="Draft orders only (else 409 invalid_transition). `lines`, when given, replaces "
    "every line. `If-Match` with a stale ETag is 412.",
)
async def update_sales_order(
    order_id: uuid.UUID,
    data: SalesOrderUpdate,
    session: Session,
    _: Writer,
    ctx: WriteContext,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Change a draft sales order."""
    return respond(await service.update_order(session, order_id, data, if_match, ctx))


@router.post(
    "/{order_id}/confirm",
    response_model=SalesOrderRead,
    responses=_ACTION_ERRORS,
    description="draft -> confirmed: reserves every line in full, all or nothing, in the "
    "statement that checks `available`. If any line is short: 409 insufficient_available with "
    "`shortages: [{line_id, product_id, requested, available}]`, and nothing is reserved. Any "
    "other status is 409 invalid_transition." + _IDEMPOTENT,
)
async def confirm_sales_order(
    order_id: uuid.UUID, session: Session, _: Writer, ctx: WriteContext, key: IdempotencyKeyHeader
) -> Response:
    """Confirm a sales order (reserve its stock)."""
    return respond_action(await service.confirm_order(session, order_id, ctx, key))


@router.post(
    "/{order_id}/ship",
    response_model=SalesOrderRead,
    responses=_ACTION_ERRORS,
    description="One `sale` movement per line at the line's `unit_price`, each carrying "
    "`sales_order_id`; the reservation shrinks by the same amount; status partially_shipped "
    "or shipped. More than a line's unshipped quantity is 409 over_shipment (with `lines: "
    "[{line_id, unshipped, requested}]`); all lines or none. Only confirmed and "
    "partially_shipped orders (409 invalid_transition)." + _IDEMPOTENT,
)
async def ship_sales_order(
    order_id: uuid.UUID,
    data: ShipRequest,
    session: Session,
    _: Writer,
    ctx: WriteContext,
    key: IdempotencyKeyHeader,
) -> Response:
    """Ship goods of a sales order."""
    return respond_action(await service.ship_order(session, order_id, data, ctx, key))


@router.post(
    "/{order_id}/cancel",
    response_model=SalesOrderRead,
    responses=_ACTION_ERRORS,
    description="draft, confirmed or partially_shipped -> cancelled; every unshipped "
    "reservation is released. Any other status is 409 invalid_transition." + _IDEMPOTENT,
)
async def cancel_sales_order(
    order_id: uuid.UUID, session: Session, _: Writer, ctx: WriteContext, key: IdempotencyKeyHeader
) -> JSONResponse:
    """Cancel a sales order."""
    return respond(await service.cancel_order(session, order_id, ctx, key))


for _route in router.routes:
    if isinstance(_route, APIRoute) and _route.summary is None and _route.endpoint.__doc__:
        _route.summary = _route.endpoint.__doc__.strip().splitlines()[0].rstrip(".")

"""HTTP routes of the webhooks domain (all need `webhooks:manage`)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from stockroom.auth.deps import WriteContext, ensure_permissions, require
from stockroom.auth.permissions import Perm
from stockroom.context import Principal
from stockroom.db.session import Session
from stockroom.http.errors import problem_responses
from stockroom.http.etag import IfMatch, set_etag
from stockroom.http.location import location
from stockroom.http.pagination import Page, Pagination
from stockroom.webhooks import service
from stockroom.webhooks.guard import TargetGuard
from stockroom.webhooks.models import WebhookEndpoint
from stockroom.webhooks.schemas import (
    AttemptRead,
    DeliveryQueued,
    DeliveryRead,
    DeliveryStatus,
    WebhookCreate,
    WebhookCreated,
    WebhookRead,
    WebhookSecret,
    WebhookUpdate,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

Manager = Annotated[Principal, Depends(require(Perm.WEBHOOKS_MANAGE))]


async def _guard(request: Request) -> TargetGuard:
    guard: TargetGuard = request.app.state.webhook_guard
    return guard


Guard = Annotated[TargetGuard, Depends(_guard)]


def _no_store(response: Response) -> None:
    """A response carrying a secret must not stay in any cache (browser, proxy)."""
    response.headers["Cache-Control"] = "no-store"


async def _ensure_may_send_costs(
    request: Request,
    session: Session,
    principal: Principal,
    data: WebhookCreate | WebhookUpdate,
    endpoint_id: uuid.UUID | None = None,
) -> None:
    """Costs go only where a caller who may see them sends them: turning `include_costs` on, or
    pointing an endpoint that includes costs at another URL, needs costs:read (403)."""
    if principal.can(Perm.COSTS_READ):
        return
    if data.include_costs:
        await ensure_permissions(request, session, principal, Perm.COSTS_READ)
    elif endpoint_id is not None and data.url is not None and data.include_costs is None:
        if (await service.get_endpoint(session, endpoint_id)).include_costs:
            await ensure_permissions(request, session, principal, Perm.COSTS_READ)


def _read(endpoint: WebhookEndpoint, response: Response) -> WebhookRead:
    set_etag(response, endpoint.version)
    return WebhookRead.model_validate(endpoint)


@router.post(
    "",
    response_model=WebhookCreated,
    status_code=201,
    responses=problem_responses(401, 403, 422),
)
async def create_webhook(
    data: WebhookCreate,
    request: Request,
    session: Session,
    ctx: WriteContext,
    guard: Guard,
    principal: Manager,
    response: Response,
) -> WebhookCreated:
    """Subscribe a URL to activity events; the response holds the signing secret, shown only
    this once (`Cache-Control: no-store`). A URL that resolves to a non-public address is 422;
    `include_costs: true` needs costs:read as well."""
    await _ensure_may_send_costs(request, session, principal, data)
    _no_store(response)
    endpoint, secret = await service.create_endpoint(session, data, guard, ctx)
    response.headers["Location"] = location(request, "get_webhook", endpoint_id=endpoint.id)
    set_etag(response, endpoint.version)
    return WebhookCreated.model_validate(
        {**_read(endpoint, response).model_dump(), "secret": secret}
    )


@router.get("", response_model=Page[WebhookRead], responses=problem_responses(401, 403, 422))
async def list_webhooks(session: Session, _: Manager, page: Pagination) -> Page[WebhookRead]:
    """List webhook endpoints, newest first (never with their secrets)."""
    items, total = await service.list_endpoints(session, page)
    return Page.of([WebhookRead.model_validate(e) for e in items], total, page)


@router.get(
    "/{endpoint_id}", response_model=WebhookRead, responses=problem_responses(401, 403, 404, 422)
)
async def get_webhook(
    endpoint_id: uuid.UUID, session: Session, _: Manager, response: Response
) -> WebhookRead:
    """Get a webhook endpoint (with its ETag)."""
    return _read(await service.get_endpoint(session, endpoint_id), response)


@router.patch(
    "/{endpoint_id}",
    response_model=WebhookRead,
    responses=problem_responses(401, 403, 404, 412, 422),
)
async def update_webhook(
    endpoint_id: uuid.UUID,
    data: WebhookUpdate,
    request: Request,
    session: Session,
    ctx: WriteContext,
    guard: Guard,
    principal: Manager,
    response: Response,
    if_match: IfMatch = None,
) -> WebhookRead:
    """Change an endpoint. `is_active: false` fails its pending deliveries; `true` re-enables
    an endpoint that was disabled automatically. Turning `include_costs` on, or changing the
    URL of an endpoint that includes costs, needs costs:read as well."""
    await _ensure_may_send_costs(request, session, principal, data, endpoint_id)
    endpoint = await service.update_endpoint(session, endpoint_id, data, if_match, guard, ctx)
    return _read(endpoint, response)


@router.delete(
    "/{endpoint_id}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(401, 403, 404, 412, 422),
)
async def delete_webhook(
    endpoint_id: uuid.UUID,
    session: Session,
    ctx: WriteContext,
    _: Manager,
    if_match: IfMatch = None,
) -> Response:
    """Delete an endpoint with its deliveries."""
    await service.delete_endpoint(session, endpoint_id, if_match, ctx)
    return Response(status_code=204)


@router.post(
    "/{endpoint_id}/rotate-secret",
    response_model=WebhookSecret,
    responses=problem_responses(401, 403, 404, 422),
)
async def rotate_webhook_secret(
    endpoint_id: uuid.UUID, session: Session, ctx: WriteContext, _: Manager, response: Response
) -> WebhookSecret:
    """Replace the signing secret (shown only in this response, `Cache-Control: no-store`); for
    24 h deliveries carry a signature with the old secret too."""
    _no_store(response)
    secret, expires = await service.rotate_secret(session, endpoint_id, ctx)
    return WebhookSecret(secret=secret, previous_secret_expires_at=expires)


@router.post(
    "/{endpoint_id}/test",
    response_model=DeliveryQueued,
    status_code=202,
    responses=problem_responses(401, 403, 404, 422),
)
async def ping_webhook(
    endpoint_id: uuid.UUID, session: Session, ctx: WriteContext, _: Manager
) -> DeliveryQueued:
    """Queue a `webhook.test` event to this endpoint only."""
    return DeliveryQueued(delivery_id=await service.send_test(session, endpoint_id, ctx))


@router.get(
    "/{endpoint_id}/deliveries",
    response_model=Page[DeliveryRead],
    responses=problem_responses(401, 403, 404, 422),
)
async def list_webhook_deliveries(
    endpoint_id: uuid.UUID,
    session: Session,
    _: Manager,
    page: Pagination,
    status: Annotated[DeliveryStatus | None, Query(description="only this status")] = None,
) -> Page[DeliveryRead]:
    """An endpoint's deliveries, newest first."""
    items, total = await service.list_deliveries(session, endpoint_id, status, page)
    return Page.of([DeliveryRead.model_validate(d) for d in items], total, page)


@router.get(
    "/{endpoint_id}/deliveries/{delivery_id}/attempts",
    response_model=list[AttemptRead],
    responses=problem_responses(401, 403, 404, 422),
)
async def list_webhook_attempts(
    endpoint_id: uuid.UUID, delivery_id: uuid.UUID, session: Session, _: Manager
) -> list[AttemptRead]:
    """A delivery's attempts, newest first: status code, error, duration, response excerpt."""
    attempts = await service.list_attempts(session, endpoint_id, delivery_id)
    return [AttemptRead.model_validate(a) for a in attempts]


@router.post(
    "/{endpoint_id}/deliveries/{delivery_id}/retry",
    response_model=DeliveryRead,
    status_code=202,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def retry_webhook_delivery(
    endpoint_id: uuid.UUID, delivery_id: uuid.UUID, session: Session, ctx: WriteContext, _: Manager
) -> DeliveryRead:
    """Queue a failed delivery again (due now; the retry schedule starts over)."""
    delivery = await service.retry_delivery(session, endpoint_id, delivery_id, ctx)
    return DeliveryRead.model_validate(delivery)

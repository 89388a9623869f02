"""Use cases of the webhooks domain: one function each, one transaction each, events recorded in
the same transaction as the change (never with the secret)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from stockroom import events
from stockroom.context import Context
from stockroom.db.session import transaction
from stockroom.http.errors import PreconditionFailed
from stockroom.http.etag import check_if_match
from stockroom.http.pagination import PageParams
from stockroom.types import utcnow
from stockroom.webhooks import repository
from stockroom.webhooks.errors import (
    DeliveryNotFailed,
    DeliveryNotFound,
    EndpointInactive,
    EndpointNotFound,
    TargetForbidden,
)
from stockroom.webhooks.guard import TargetGuard, TargetRefused
from stockroom.webhooks.metrics import ENDPOINTS_DISABLED
from stockroom.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from stockroom.webhooks.repository import TEST_EVENT
from stockroom.webhooks.schemas import WebhookCreate, WebhookUpdate
from stockroom.webhooks.signing import generate_secret

log = structlog.get_logger("stockroom.webhooks")

ROTATION_OVERLAP = timedelta(hours=24)
EVENT_FIELDS = ("url", "event_types", "description", "is_active", "include_costs")


def shown_url(url: str) -> str:
    """The URL as events show it: without its query string, where receivers often put a token
    (the activity log is read by people who may not manage webhooks)."""
    try:
        return str(httpx.URL(url).copy_with(query=None, fragment=None))
    except (httpx.InvalidURL, ValueError):
        return "(invalid URL)"


def _event_view(endpoint: WebhookEndpoint) -> dict[str, Any]:
    view = {field: getattr(endpoint, field) for field in EVENT_FIELDS}
    view["url"] = shown_url(endpoint.url)
    return view


async def _check_target(guard: TargetGuard, url: str) -> None:
    try:
        await guard.check_url(url)
    except TargetRefused as exc:
        raise TargetForbidden.at(["body", "url"], exc.reason, "webhook_target") from None


async def _endpoint_or_404(
    session: AsyncSession, endpoint_id: uuid.UUID, *, for_update: bool = False
) -> WebhookEndpoint:
    endpoint = await repository.get_endpoint(session, endpoint_id, for_update=for_update)
    if endpoint is None:
        raise EndpointNotFound()
    return endpoint


async def create_endpoint(
    session: AsyncSession, data: WebhookCreate, guard: TargetGuard, ctx: Context
) -> tuple[WebhookEndpoint, str]:
    """Subscribe a URL; returns the endpoint and its secret (the only time it is shown)."""
    await _check_target(guard, data.url)  # before the transaction: DNS can be slow
    secret = generate_secret()
    async with transaction(session):
        endpoint = WebhookEndpoint(
            url=data.url,
            event_types=data.event_types,
            description=data.description,
            is_active=data.is_active,
            include_costs=data.include_costs,
            secret=secret,
            created_by=ctx.actor.id if ctx.actor else None,
        )
        session.add(endpoint)
        await session.flush()
        events.record(
            session, "webhook.created", ctx, entity=("webhook", endpoint.id),
            data=_event_view(endpoint),
        )  # fmt: skip
    return endpoint, secret


async def list_endpoints(
    session: AsyncSession, page: PageParams
) -> tuple[list[WebhookEndpoint], int]:
    """Endpoints, newest first."""
    async with transaction(session):
        return await repository.list_endpoints(session, offset=page.offset, limit=page.limit)


async def get_endpoint(session: AsyncSession, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    async with transaction(session):
        return await _endpoint_or_404(session, endpoint_id)


async def update_endpoint(
    session: AsyncSession,
    endpoint_id: uuid.UUID,
    data: WebhookUpdate,
    if_match: str | None,
    guard: TargetGuard,
    ctx: Context,
) -> WebhookEndpoint:
    """Change an endpoint. Deactivating it fails its pending deliveries (they can be retried
    once it is active again); activating it clears the automatic disabling."""
    values = data.model_dump(exclude_unset=True)
    for field in ("url", "event_types", "is_active", "include_costs"):
        if field in values and values[field] is None:
            del values[field]  # null for a required field means "unchanged"
    if "url" in values:
        await _check_target(guard, values["url"])
    try:
        async with transaction(session):
            endpoint = await _endpoint_or_404(session, endpoint_id, for_update=True)
            check_if_match(if_match, endpoint.version)
            before = _event_view(endpoint)
            for field, value in values.items():
                setattr(endpoint, field, value)
            endpoint.updated_at = utcnow()
            after = _event_view(endpoint)
            if before["is_active"] and not after["is_active"]:
                await repository.fail_pending_deliveries(
                    session, endpoint.id, "the endpoint was deactivated"
                )
            elif after["is_active"] and not before["is_active"]:
                endpoint.failing_since = None
                endpoint.disabled_reason = None
            changes = events.compute_changes(before, after, EVENT_FIELDS)
            await session.flush()
            if changes:
                events.record(
                    session, "webhook.updated", ctx, entity=("webhook", endpoint.id),
                    changes=changes,
                )  # fmt: skip
    except StaleDataError:
        raise PreconditionFailed() from None
    return endpoint


async def delete_endpoint(
    session: AsyncSession, endpoint_id: uuid.UUID, if_match: str | None, ctx: Context
) -> None:
    """Delete an endpoint with its deliveries and their attempts."""
    async with transaction(session):
        endpoint = await _endpoint_or_404(session, endpoint_id, for_update=True)
        check_if_match(if_match, endpoint.version)
        view = _event_view(endpoint)
        await session.delete(endpoint)
        await session.flush()
        events.record(session, "webhook.deleted", ctx, entity=("webhook", endpoint_id), data=view)


async def rotate_secret(
    session: AsyncSession, endpoint_id: uuid.UUID, ctx: Context, *, now: datetime | None = None
) -> tuple[str, datetime]:
    """A new secret; the current one keeps signing beside it for 24 h (an older one stops)."""
    now = now or utcnow()
    secret = generate_secret()
    async with transaction(session):
        endpoint = await _endpoint_or_404(session, endpoint_id, for_update=True)
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = now + ROTATION_OVERLAP
        endpoint.secret = secret
        endpoint.updated_at = now
        await session.flush()
        events.record(
            session, "webhook.secret_rotated", ctx, entity=("webhook", endpoint.id),
            data={"previous_valid_until": endpoint.previous_secret_expires_at},
        )  # fmt: skip
    return secret, now + ROTATION_OVERLAP


async def send_test(session: AsyncSession, endpoint_id: uuid.UUID, ctx: Context) -> uuid.UUID:
    """Queue a `webhook.test` event to this endpoint only; returns its delivery's id."""
    async with transaction(session):
        endpoint = await _endpoint_or_404(session, endpoint_id)
        event_id = events.record(
            session, TEST_EVENT, ctx, entity=("webhook", endpoint.id),
            data={"message": "a test delivery from Stockroom"},
        )  # fmt: skip
    # The delivery was created by the outbox trigger when the event committed.
    async with session.begin():
        delivery_id = await repository.delivery_of_event(session, endpoint_id, event_id)
    if delivery_id is None:  # the endpoint was deleted in between
        raise EndpointNotFound()
    return delivery_id


async def list_deliveries(
    session: AsyncSession, endpoint_id: uuid.UUID, status: str | None, page: PageParams
) -> tuple[list[WebhookDelivery], int]:
    """An endpoint's deliveries, newest first."""
    async with transaction(session):
        await _endpoint_or_404(session, endpoint_id)
        return await repository.list_deliveries(
            session, endpoint_id, status=status, offset=page.offset, limit=page.limit
        )


async def list_attempts(
    session: AsyncSession, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
) -> list[WebhookAttempt]:
    """A delivery's attempts, newest first."""
    async with transaction(session):
        if await repository.get_delivery(session, endpoint_id, delivery_id) is None:
            raise DeliveryNotFound()
        return await repository.list_attempts(session, delivery_id)


async def retry_delivery(
    session: AsyncSession,
    endpoint_id: uuid.UUID,
    delivery_id: uuid.UUID,
    ctx: Context,
    *,
    now: datetime | None = None,
) -> WebhookDelivery:
    """Queue a failed delivery again, due now, with the retry schedule started over."""
    async with transaction(session):
        endpoint = await _endpoint_or_404(session, endpoint_id)
        delivery = await repository.get_delivery(session, endpoint_id, delivery_id, for_update=True)
        if delivery is None:
            raise DeliveryNotFound()
        if delivery.status != "failed":
            raise DeliveryNotFailed()
        if not endpoint.is_active and delivery.event_type != TEST_EVENT:
            raise EndpointInactive()
        delivery.status = "pending"
        delivery.attempts = 0
        delivery.next_attempt_at = now or utcnow()
        delivery.lease_id = None
        await session.flush()
    return delivery


async def disable_endpoint(session: AsyncSession, endpoint_id: uuid.UUID, reason: str) -> bool:
    """In the caller's transaction: deactivate an endpoint the dispatcher gave up on, fail its
    pending deliveries and record `webhook.disabled`. False if it was already inactive."""
    endpoint = await repository.get_endpoint(session, endpoint_id, for_update=True)
    if endpoint is None or not endpoint.is_active:
        return False
    endpoint.is_active = False
    endpoint.disabled_reason = reason
    endpoint.updated_at = utcnow()
    await repository.fail_pending_deliveries(session, endpoint_id, f"endpoint disabled: {reason}")
    await session.flush()
    events.record(
        session, "webhook.disabled", Context.system(), entity=("webhook", endpoint_id),
        data={"reason": reason, "url": shown_url(endpoint.url)},
    )  # fmt: skip
    ENDPOINTS_DISABLED.inc()
    log.warning("webhook endpoint disabled", endpoint_id=str(endpoint_id), reason=reason)
    return True

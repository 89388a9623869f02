"""Every SQL statement of the webhooks domain. Nothing here commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.db.base import uuid7
from stockroom.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

TEST_EVENT = "webhook.test"

# --- endpoints ------------------------------------------------------------------------------


async def get_endpoint(
    session: AsyncSession, endpoint_id: uuid.UUID, *, for_update: bool = False
) -> WebhookEndpoint | None:
    statement = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def list_endpoints(
    session: AsyncSession, *, offset: int, limit: int
) -> tuple[list[WebhookEndpoint], int]:
    total = await session.scalar(select(func.count()).select_from(WebhookEndpoint))
    rows = await session.scalars(
        select(WebhookEndpoint)
        .order_by(WebhookEndpoint.created_at.desc(), WebhookEndpoint.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return list(rows), int(total or 0)


# --- deliveries -----------------------------------------------------------------------------


async def list_deliveries(
    session: AsyncSession,
    endpoint_id: uuid.UUID,
    *,
    status: str | None,
    offset: int,
    limit: int,
) -> tuple[list[WebhookDelivery], int]:
    condition = [WebhookDelivery.endpoint_id == endpoint_id]
    if status is not None:
        condition.append(WebhookDelivery.status == status)
    total = await session.scalar(
        select(func.count()).select_from(WebhookDelivery).where(*condition)
    )
    rows = await session.scalars(
        select(WebhookDelivery)
        .where(*condition)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return list(rows), int(total or 0)


async def get_delivery(
    session: AsyncSession,
    endpoint_id: uuid.UUID,
    delivery_id: uuid.UUID,
    *,
    for_update: bool = False,
) -> WebhookDelivery | None:
    statement = select(WebhookDelivery).where(
        WebhookDelivery.id == delivery_id, WebhookDelivery.endpoint_id == endpoint_id
    )
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def delivery_of_event(
    session: AsyncSession, endpoint_id: uuid.UUID, event_id: uuid.UUID
) -> uuid.UUID | None:
    return await session.scalar(
        select(WebhookDelivery.id).where(
            WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.event_id == event_id
        )
    )


async def list_attempts(session: AsyncSession, delivery_id: uuid.UUID) -> list[WebhookAttempt]:
    rows = await session.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id == delivery_id)
        .order_by(WebhookAttempt.attempted_at.desc(), WebhookAttempt.id.desc())
    )
    return list(rows)


async def fail_pending_deliveries(
    session: AsyncSession, endpoint_id: uuid.UUID, reason: str
) -> int:
    """An endpoint going inactive ends its pending deliveries (they can be retried later)."""
    result = await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == "pending")
        .values(status="failed", next_attempt_at=None, lease_id=None, last_error=reason)
    )
    return int(getattr(result, "rowcount", 0) or 0)


# --- the dispatcher's statements --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    payload: dict[str, Any]
    attempts: int  # before this attempt
    url: str
    include_costs: bool
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None


_CLAIM = text(
    """
    WITH due AS (
        SELECT d.id
        FROM webhook_deliveries AS d
        JOIN webhook_endpoints AS e ON e.id = d.endpoint_id
        WHERE d.status = 'pending'
          AND d.next_attempt_at <= :now
          AND (e.is_active OR d.event_type = 'webhook.test')
        ORDER BY d.next_attempt_at
        LIMIT :limit
        FOR UPDATE OF d SKIP LOCKED
    )
    UPDATE webhook_deliveries AS d
    SET next_attempt_at = :lease_until, lease_id = :lease_id
    FROM due, webhook_endpoints AS e
    WHERE d.id = due.id AND e.id = d.endpoint_id
    RETURNING d.id, d.endpoint_id, d.event_id, d.event_type, d.payload, d.attempts,
              e.url, e.include_costs, e.secret, e.previous_secret, e.previous_secret_expires_at
    """
)


async def claim_due_deliveries(
    session: AsyncSession, *, now: datetime, lease_until: datetime, lease_id: uuid.UUID, limit: int
) -> list[ClaimedDelivery]:
    """Take up to `limit` due deliveries for one attempt each. `SKIP LOCKED`: dispatchers never
    wait for one another, and a row claimed by one is not due for the others until its lease
    ends (`next_attempt_at` moves to `lease_until`)."""
    rows = await session.execute(
        _CLAIM, {"now": now, "lease_until": lease_until, "lease_id": lease_id, "limit": limit}
    )
    return [ClaimedDelivery(**row._asdict()) for row in rows]


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    delivery_id: uuid.UUID
    lease_id: uuid.UUID
    attempted_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None
    excerpt: str | None
    status: str  # the delivery's status after the attempt
    next_attempt_at: datetime | None


# One statement per batch: the outcomes (only on rows still carrying the claim's lease) and an
# attempt row for each of those. Returns the recorded deliveries' endpoints, and whether each
# endpoint's failure clock is running (so a success need not touch endpoints that are healthy).
_RECORD_OUTCOMES = text(
    """
    WITH v AS (
        SELECT * FROM unnest(
            CAST(:ids AS uuid[]), CAST(:leases AS uuid[]), CAST(:statuses AS text[]),
            CAST(:next_attempts AS timestamptz[]), CAST(:status_codes AS int[]),
            CAST(:errors AS text[]), CAST(:attempted AS timestamptz[]),
            CAST(:durations AS int[]), CAST(:excerpts AS text[]), CAST(:attempt_ids AS uuid[])
        ) AS v(id, lease_id, status, next_attempt_at, status_code, error, attempted_at,
               duration_ms, excerpt, attempt_id)
    ), recorded AS (
        UPDATE webhook_deliveries AS d
        SET attempts = d.attempts + 1,
            status = v.status,
            next_attempt_at = v.next_attempt_at,
            last_status_code = v.status_code,
            last_error = v.error,
            delivered_at = CASE WHEN v.status = 'succeeded' THEN v.attempted_at END,
            lease_id = NULL
        FROM v
        WHERE d.id = v.id AND d.lease_id = v.lease_id
        RETURNING d.id, d.endpoint_id, v.lease_id
    ), attempts AS (
        INSERT INTO webhook_attempts
            (id, delivery_id, attempted_at, duration_ms, status_code, error, response_excerpt)
        SELECT v.attempt_id, v.id, v.attempted_at, v.duration_ms, v.status_code, v.error,
               v.excerpt
        FROM v JOIN recorded AS r ON r.id = v.id AND r.lease_id = v.lease_id
    )
    SELECT r.id, r.endpoint_id, e.failing_since IS NOT NULL AS failing
    FROM recorded AS r JOIN webhook_endpoints AS e ON e.id = r.endpoint_id
    """
)


@dataclass(frozen=True, slots=True)
class Recorded:
    endpoint_id: uuid.UUID
    endpoint_failing: bool  # its failure clock was running before this batch


async def record_attempts(
    session: AsyncSession, records: Sequence[AttemptRecord]
) -> dict[uuid.UUID, Recorded]:
    """Write the outcomes of attempts whose claim is still ours, with their attempt rows;
    returns `{delivery: Recorded}` for those (an attempt that outlived its lease is another
    dispatcher's to record)."""
    rows = await session.execute(
        _RECORD_OUTCOMES,
        {
            "ids": [r.delivery_id for r in records],
            "leases": [r.lease_id for r in records],
            "statuses": [r.status for r in records],
            "next_attempts": [r.next_attempt_at for r in records],
            "status_codes": [r.status_code for r in records],
            "errors": [r.error for r in records],
            "attempted": [r.attempted_at for r in records],
            "durations": [r.duration_ms for r in records],
            "excerpts": [r.excerpt for r in records],
            "attempt_ids": [uuid7() for _ in records],
        },
    )
    return {row.id: Recorded(row.endpoint_id, row.failing) for row in rows}


async def mark_endpoints_healthy(session: AsyncSession, endpoint_ids: Sequence[uuid.UUID]) -> None:
    await session.execute(
        text(
            "UPDATE webhook_endpoints SET failing_since = NULL "
            "WHERE id = ANY(CAST(:ids AS uuid[])) AND failing_since IS NOT NULL"
        ),
        {"ids": list(endpoint_ids)},
    )


async def mark_endpoints_failing(
    session: AsyncSession, endpoint_ids: Sequence[uuid.UUID], now: datetime
) -> dict[uuid.UUID, datetime]:
    """Start the failure clock of each endpoint (kept if already running); returns when each
    active endpoint's failures began."""
    rows = await session.execute(
        text(
            "UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, :now) "
            "WHERE id = ANY(CAST(:ids AS uuid[])) RETURNING id, failing_since, is_active"
        ),
        {"ids": list(endpoint_ids), "now": now},
    )
    return {row.id: row.failing_since for row in rows if row.is_active}


@dataclass(frozen=True, slots=True)
class DeliveryBacklog:
    pending: int
    oldest_age_s: float


async def delivery_backlog(session: AsyncSession, now: datetime | None = None) -> DeliveryBacklog:
    pending, age = (
        await session.execute(
            text(
                "SELECT count(*), coalesce(extract(epoch FROM "
                "coalesce(CAST(:now AS timestamptz), clock_timestamp()) - min(created_at)), 0) "
                "FROM webhook_deliveries WHERE status = 'pending'"
            ),
            {"now": now},
        )
    ).one()
    return DeliveryBacklog(int(pending), round(max(0.0, float(age)), 3))

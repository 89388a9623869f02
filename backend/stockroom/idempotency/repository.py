"""The statements of the idempotency table. Nothing here commits."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.idempotency.keys import IdempotencyKey, IdempotencyKeyReused, StoredResponse
from stockroom.idempotency.models import IdempotencyKeyRecord
from stockroom.types import utcnow

# One claim in this many also prunes a bounded batch of expired keys.
_PRUNE_ONE_IN = 200
_PRUNE_BATCH = 1000


def prune_now() -> bool:
    """Whether this claim also prunes a batch of expired keys (one in `_PRUNE_ONE_IN`)."""
    return random.randrange(_PRUNE_ONE_IN) == 0


def claim_argument(claim: IdempotencyKey, status: int) -> str:
    """The claim as the JSON argument of a SQL function that claims, looks up and stores the key
    in one statement (`stock_post_keyed`, migration 0014): what `try_lock`, `stored` and `save`
    below are given, and the status to store a fresh response with."""
    return json.dumps(
        {
            "user_id": str(claim.user_id),
            "route": claim.route,
            "key": claim.key,
            "request_hash": claim.request_hash,
            "lock_id": claim.lock_id,
            "ttl_seconds": claim.ttl.total_seconds(),
            "status": status,
            "prune": prune_now(),
            "prune_limit": _PRUNE_BATCH,
        }
    )


async def try_lock(session: AsyncSession, claim: IdempotencyKey) -> bool:
    """Take the key's transaction-scoped advisory lock, if no one holds it."""
    return bool(await session.scalar(select(func.pg_try_advisory_xact_lock(claim.lock_id))))


async def stored(session: AsyncSession, claim: IdempotencyKey) -> StoredResponse | None:
    """The live stored response of the key; 422 if it was stored for another request."""
    row = (
        await session.execute(
            select(
                IdempotencyKeyRecord.request_hash,
                IdempotencyKeyRecord.response_status,
                IdempotencyKeyRecord.response_body,
            ).where(
                IdempotencyKeyRecord.user_id == claim.user_id,
                IdempotencyKeyRecord.route == claim.route,
                IdempotencyKeyRecord.key == claim.key,
                IdempotencyKeyRecord.created_at > utcnow() - claim.ttl,
            )
        )
    ).one_or_none()
    if row is None:
        return None
    if row.request_hash != claim.request_hash:
        raise IdempotencyKeyReused()
    return StoredResponse(status=row.response_status, body=row.response_body)


async def save(session: AsyncSession, claim: IdempotencyKey, status: int, body: Any) -> None:
    values = {
        "user_id": claim.user_id,
        "route": claim.route,
        "key": claim.key,
        "request_hash": claim.request_hash,
        "response_status": status,
        "response_body": body,
        "created_at": utcnow(),
    }
    statement = insert(IdempotencyKeyRecord).values(**values)
    # An expired row with the same key is replaced; a live one cannot exist here, since the
    # advisory lock is held and `stored` found none.
    statement = statement.on_conflict_do_update(
        index_elements=["user_id", "route", "key"],
        set_={k: statement.excluded[k] for k in values if k not in {"user_id", "route", "key"}},
    )
    await session.execute(statement)
    if prune_now():
        await prune_expired(session, claim.ttl, limit=_PRUNE_BATCH)


async def prune_expired(session: AsyncSession, ttl: timedelta, *, limit: int | None = None) -> int:
    """Delete keys older than `ttl` (at most `limit` of them); returns how many went."""
    cutoff = utcnow() - ttl
    if limit is None:
        statement = text("DELETE FROM idempotency_keys WHERE created_at < :cutoff")
        params: dict[str, Any] = {"cutoff": cutoff}
    else:
        statement = text(
            "DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY("
            "SELECT ctid FROM idempotency_keys WHERE created_at < :cutoff LIMIT :limit))"
        )
        params = {"cutoff": cutoff, "limit": limit}
    result = await session.execute(statement, params)
    return int(getattr(result, "rowcount", 0) or 0)

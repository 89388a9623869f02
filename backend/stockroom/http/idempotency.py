"""Idempotency keys for unsafe requests (`Idempotency-Key` header).

A key is scoped to (user, route template, key). The first request that carries it claims it *in
the same transaction as its write*: a transaction-scoped advisory lock on the key's hash, then the
write, then one row holding the request's body hash and the response (status and JSON body). So:

- a retry after the first committed finds the row and gets the original status and body back,
  and nothing runs again;
- the same key with a different body (or a different target path) is 422
  `idempotency_key_reused`;
- a retry while the first is still running cannot take the advisory lock: 409
  `idempotency_request_in_progress` (retry it later: it will then replay);
- if the write fails with a client error other than 422, the error response is stored in a
  follow-up transaction so retries get the same answer; 422 and 5xx are not stored (fix and retry).

Rows live at least `settings.idempotency_key_ttl_hours`; older rows are ignored when a key is
claimed again and deleted by `prune_expired` (run opportunistically and by
`stockroom stock prune-idempotency-keys`).
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import DateTime, Index, Integer, String, func, select, text
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from stockroom.db.base import Base
from stockroom.db.session import transaction
from stockroom.events.recorder import to_json_value
from stockroom.http.errors import PROBLEM_CONTENT_TYPE, AppError, Conflict, ValidationFailed
from stockroom.http.middleware import route_template
from stockroom.http.request_id import current_request_id
from stockroom.types import utcnow

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
# One claim in this many also prunes a bounded batch of expired keys.
_PRUNE_ONE_IN = 200
_PRUNE_BATCH = 1000

M = TypeVar("M", bound=BaseModel)


class IdempotencyKeyRecord(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_created_at", "created_at"),)

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    route: Mapped[str] = mapped_column(String(200), primary_key=True)
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[Any] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )


class IdempotencyKeyReused(ValidationFailed):
    code = "idempotency_key_reused"
    default_detail = "this Idempotency-Key was already used with a different request"


class IdempotentRequestInProgress(Conflict):
    code = "idempotency_request_in_progress"
    default_detail = "a request with this Idempotency-Key is still being processed; retry later"


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """One request's claim: whose key, on which route, and what the request was."""

    user_id: uuid.UUID
    route: str
    key: str
    request_hash: str
    ttl: timedelta

    @property
    def lock_id(self) -> int:
        digest = hashlib.sha256(f"{self.user_id}\x00{self.route}\x00{self.key}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A response replayed from an earlier request with the same key."""

    status: int
    body: Any

    def to_response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        media_type = PROBLEM_CONTENT_TYPE if self.status >= 400 else "application/json"
        all_headers = {"Idempotent-Replayed": "true", **(headers or {})}
        return JSONResponse(
            self.body, status_code=self.status, headers=all_headers, media_type=media_type
        )


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """A hash of what the request asks for: method, concrete path and the JSON body's content.

    JSON is canonicalized, so key order and whitespace do not make two equal bodies different.
    """
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
    except ValueError:
        canonical = body.decode("utf-8", "replace")
    material = f"{method}\x00{path}\x00{canonical}"
    return hashlib.sha256(material.encode()).hexdigest()


async def _idempotency_key(
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=IDEMPOTENCY_HEADER,
            min_length=1,
            max_length=MAX_KEY_LENGTH,
            description="a client-chosen key (1..255 chars) that makes retries of this request "
            "safe: the same key and body replay the first response; a different body is 422; "
            "a retry while the first is still running is 409. Kept at least 24 h, per user.",
        ),
    ] = None,
) -> IdempotencyKey | None:
    if idempotency_key is None:
        return None
    user_id = getattr(request.state, "user_id", None)
    if not isinstance(user_id, uuid.UUID):  # routes put the auth dependency first
        raise RuntimeError("idempotency keys need an authenticated user")
    body = await request.body()
    ttl_hours: int = request.app.state.settings.idempotency_key_ttl_hours
    return IdempotencyKey(
        user_id=user_id,
        route=f"{request.method} {route_template(request.scope)}",
        key=idempotency_key,
        request_hash=request_fingerprint(request.method, request.url.path, body),
        ttl=timedelta(hours=ttl_hours),
    )


IdempotencyKeyHeader = Annotated[IdempotencyKey | None, Depends(_idempotency_key)]


async def _lock(session: AsyncSession, claim: IdempotencyKey) -> None:
    locked = await session.scalar(select(func.pg_try_advisory_xact_lock(claim.lock_id)))
    if not locked:
        raise IdempotentRequestInProgress()


async def _stored(session: AsyncSession, claim: IdempotencyKey) -> StoredResponse | None:
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


async def _save(session: AsyncSession, claim: IdempotencyKey, status: int, body: Any) -> None:
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
    # advisory lock is held and `_stored` found none.
    statement = statement.on_conflict_do_update(
        index_elements=["user_id", "route", "key"],
        set_={k: statement.excluded[k] for k in values if k not in {"user_id", "route", "key"}},
    )
    await session.execute(statement)
    if random.randrange(_PRUNE_ONE_IN) == 0:
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


async def run_idempotent(
    session: AsyncSession,
    claim: IdempotencyKey | None,
    work: Callable[[], Awaitable[M]],
    *,
    status: int,
) -> M | StoredResponse:
    """Run `work` in one transaction on `session` (see `db.session.transaction`), made
    idempotent by `claim`.

    Returns the fresh result, or the stored response of an earlier request with the same key.
    `work` runs inside the transaction this function opens; it must not open its own.
    """
    if claim is None:
        async with transaction(session):
            return await work()
    try:
        async with transaction(session):
            await _lock(session, claim)
            stored = await _stored(session, claim)
            if stored is not None:
                return stored
            result = await work()
            await _save(session, claim, status, result.model_dump(mode="json"))
            return result
    except AppError as exc:
        if exc.status >= 500 or exc.status == 422 or exc.status in {401, 403}:
            raise
        if isinstance(exc, IdempotentRequestInProgress):
            raise
        await _save_error(session, claim, exc)
        raise


def _problem_body(exc: AppError) -> dict[str, Any]:
    # The same shape as the problem handler renders (stockroom.http.errors.problem_response).
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": exc.title,
        "status": exc.status,
        "detail": exc.detail,
        "code": exc.code,
        "request_id": current_request_id(),
    }
    if exc.errors is not None:
        body["errors"] = exc.errors
    body.update({k: to_json_value(v) for k, v in exc.extra.items() if k not in body})
    return body


async def _save_error(session: AsyncSession, claim: IdempotencyKey, exc: AppError) -> None:
    async with transaction(session):
        if not await session.scalar(select(func.pg_try_advisory_xact_lock(claim.lock_id))):
            return  # a retry is already running; its outcome will be the stored one
        if await _stored(session, claim) is not None:
            return
        await _save(session, claim, exc.status, _problem_body(exc))

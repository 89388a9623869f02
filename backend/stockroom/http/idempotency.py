"""The HTTP side of idempotency keys: the `Idempotency-Key` header dependency and the replayed
response. The keys themselves (table, statements, `run_idempotent`) are `stockroom.idempotency`."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse

from stockroom.http.errors import PROBLEM_CONTENT_TYPE
from stockroom.http.fastpath import FastRequest
from stockroom.http.middleware import route_template
from stockroom.idempotency.keys import IdempotencyKey, StoredResponse, request_fingerprint
from stockroom.idempotency.models import MAX_KEY_LENGTH

IDEMPOTENCY_HEADER = "Idempotency-Key"


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


def fast_path_key(request: FastRequest, value: str, user_id: uuid.UUID) -> IdempotencyKey:
    """`_idempotency_key` for a fast path's request (same route, fingerprint and lifetime)."""
    scope = request.scope
    ttl_hours: int = request.app.state.settings.idempotency_key_ttl_hours
    return IdempotencyKey(
        user_id=user_id,
        route=f"{scope['method']} {request.template}",
        key=value,
        request_hash=request_fingerprint(scope["method"], scope["path"], request.body),
        ttl=timedelta(hours=ttl_hours),
    )


IdempotencyKeyHeader = Annotated[IdempotencyKey | None, Depends(_idempotency_key)]


def replay_response(stored: StoredResponse, headers: dict[str, str] | None = None) -> JSONResponse:
    """The stored response, marked `Idempotent-Replayed: true`."""
    media_type = PROBLEM_CONTENT_TYPE if stored.status >= 400 else "application/json"
    all_headers = {"Idempotent-Replayed": "true", **(headers or {})}
    return JSONResponse(
        stored.body, status_code=stored.status, headers=all_headers, media_type=media_type
    )

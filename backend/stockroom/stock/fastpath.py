"""`POST /stock-movements` as a fast path (`stockroom.http.fastpath`): the ledger's hot write for
what it costs, on a pooled driver connection with no SQLAlchemy session, FastAPI dependency or
response model: one round trip without an `Idempotency-Key` (the principal and `stock_post` in
one statement, `stock.ledger_one.post_line_as_now`), two with one (the principal, then
`stock_post_keyed`).

It answers what the route (`stock.router.post_stock_movement`) answers for a request it can
serve, byte for byte: the same movement or stored response, status, `Location` and cost hiding
(tested side by side). It declines, before writing anything, whatever the route would refuse or
needs its own machinery for: a content type other than `application/json`, a bad token, an
unknown or inactive user, a missing permission (the route records the 403), a body that does
not validate, an `Idempotency-Key` outside 1..255 characters. A posting refused by the ledger
(404, 409) is raised as the route raises it, after the refusal is stored for the key.
"""

from __future__ import annotations

import json

import asyncpg
from pydantic import TypeAdapter
from starlette.responses import Response

from stockroom.auth.deps import Claims, fast_claims, fast_context, fast_origin, fast_principal
from stockroom.auth.permissions import Perm
from stockroom.db.session import driver_lease
from stockroom.http.errors import AppError
from stockroom.http.fastpath import FastRequest, JsonResponse
from stockroom.http.idempotency import fast_path_key, replay_response
from stockroom.idempotency import (
    IdempotencyKey,
    StoredResponse,
    remember_refusal,
)
from stockroom.idempotency.models import MAX_KEY_LENGTH
from stockroom.stock import ledger, ledger_one
from stockroom.stock.ledger import Line
from stockroom.stock.movements import line_of
from stockroom.stock.schemas import ADJUST_MOVEMENT_TYPES, MovementCreate, MovementRead

_BODY = TypeAdapter(MovementCreate)
_JSON = "application/json"
_NO_COST = {"unit_cost"}


def _permissions(data: MovementCreate) -> tuple[str, ...]:
    """What the route checks: stock:write, stock:adjust for adjustments and damage, costs:read
    to send a unit cost."""
    needed: tuple[str, ...] = (Perm.STOCK_WRITE,)
    if data.type in ADJUST_MOVEMENT_TYPES:
        needed += (Perm.STOCK_ADJUST,)
    if data.unit_cost is not None:
        needed += (Perm.COSTS_READ,)
    return needed


def _response(result: MovementRead | StoredResponse, path: str, hide_cost: bool) -> Response:
    """`stock.router._respond` for a movement (status 201, costs hidden unless costs:read)."""
    if isinstance(result, MovementRead):
        content = result.model_dump_json(exclude=_NO_COST if hide_cost else None)
        headers = {"Location": f"{path}/{result.id}"}
        return Response(content, status_code=201, headers=headers, media_type=_JSON)
    body = result.body
    if hide_cost and isinstance(body, dict):
        body = {k: v for k, v in body.items() if k != "unit_cost"}
    location = {}
    if result.status == 201 and isinstance(body, dict) and "id" in body:
        location["Location"] = f"{path}/{body['id']}"
    return replay_response(StoredResponse(result.status, body), location)


async def _post_unkeyed(
    request: FastRequest,
    connection: asyncpg.Connection,
    line: Line,
    claims: Claims,
    permissions: tuple[str, ...],
) -> JsonResponse | None:
    """The posting without a key: the principal and the posting in one statement."""
    user_id, token = claims
    try:
        posted = await ledger_one.post_line_as_now(
            connection, line, fast_origin(request), user_id, token, permissions
        )
    except AppError:  # refused by the ledger: the principal held
        request.state["user_id"] = user_id  # the access log's user, as `fast_principal`
        raise
    if posted is None:
        return None
    request.state["user_id"] = user_id
    location = f"{request.path}/{posted.id}".encode()
    return JsonResponse(posted.body.encode(), 201, (b"location", location))


async def post_movement(request: FastRequest) -> Response | JsonResponse | None:
    """The fast path of `POST /stock-movements`; None declines (see the module)."""
    if request.header(b"content-type") != _JSON:
        return None
    claims = fast_claims(request)
    if claims is None:
        return None
    key_value = request.header(b"idempotency-key")
    if key_value is not None and not 1 <= len(key_value) <= MAX_KEY_LENGTH:
        return None
    try:
        data = _BODY.validate_python(json.loads(request.body))
    except ValueError:  # not JSON, not UTF-8, or not a valid movement (ValidationError)
        return None
    key: IdempotencyKey | None = None
    refusal: AppError | None = None
    result: MovementRead | StoredResponse
    line = line_of(data)
    async with driver_lease(request.app.state.sessionmaker) as connection:
        if key_value is None:
            return await _post_unkeyed(request, connection, line, claims, _permissions(data))
        principal = await fast_principal(request, connection, claims, *_permissions(data))
        if principal is None:
            return None
        ctx = fast_context(request, principal)
        hide_cost = not principal.can(Perm.COSTS_READ)
        key = fast_path_key(request, key_value, principal.id)
        try:
            result = await ledger.post_movement_keyed_now(connection, line, ctx, key)
        except AppError as exc:
            refusal = exc
    if refusal is not None:
        assert key is not None
        # As `movements.post_movement_idempotent`: the key's retries get the same refusal.
        async with request.app.state.sessionmaker() as session:
            await remember_refusal(session, key, refusal)
        raise refusal
    return _response(result, request.path, hide_cost)

"""`POST /sales-orders/{id}/confirm` and `/ship` as fast paths (`stockroom.http.fastpath`), for
what they cost: the principal, then the action's SQL function (`actions`, migration 0013), two
round trips on a pooled driver connection with no SQLAlchemy session, FastAPI dependency or
response model. The body is the one the function built, sent as it is.

They answer what the routes answer (the same functions, the same `respond_action`; tested side
by side). They decline, before writing anything, whatever the routes would refuse or read
differently: a bad token, an unknown or inactive user, a missing sales:write (the route records
the 403), an order id not in canonical form, an `Idempotency-Key` outside 1..255 characters,
and for ship a content type other than `application/json` or a body that does not validate.
A refusal of the function (404, 409, 422) is raised as the route raises it, after it is stored
for the key. Sales order bodies carry no cost fields: nothing to hide without costs:read.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
from pydantic import TypeAdapter
from starlette.responses import Response

from stockroom.auth.deps import fast_claims, fast_context, fast_principal
from stockroom.auth.permissions import Perm
from stockroom.context import Context
from stockroom.db.session import driver_lease
from stockroom.events.wakeup import wake_relays
from stockroom.http.errors import AppError
from stockroom.http.fastpath import FastRequest
from stockroom.http.idempotency import fast_path_key
from stockroom.idempotency import IdempotencyKey, remember_refusal
from stockroom.idempotency.models import MAX_KEY_LENGTH
from stockroom.sales import actions
from stockroom.sales.actions import ActionResult
from stockroom.sales.router import respond_action
from stockroom.sales.schemas import ShipRequest

_SHIP = TypeAdapter(ShipRequest)
_JSON = "application/json"

Action = Callable[[asyncpg.Connection, Context, IdempotencyKey | None], Awaitable[ActionResult]]


def _order_id(param: str | None) -> uuid.UUID | None:
    """The path's order id in its canonical spelling only (others go to the route's
    convertor)."""
    try:
        value = uuid.UUID(param or "")
    except ValueError:
        return None
    return value if str(value) == param else None


async def _serve(request: FastRequest, action: Action) -> Response | None:
    claims = fast_claims(request)
    if claims is None:
        return None
    key_value = request.header(b"idempotency-key")
    if key_value is not None and not 1 <= len(key_value) <= MAX_KEY_LENGTH:
        return None
    key: IdempotencyKey | None = None
    refusal: AppError | None = None
    async with driver_lease(request.app.state.sessionmaker) as connection:
        principal = await fast_principal(request, connection, claims, Perm.SALES_WRITE)
        if principal is None:
            return None
        if key_value is not None:
            key = fast_path_key(request, key_value, principal.id)
        try:
            result = await action(connection, fast_context(request, principal), key)
        except AppError as exc:
            refusal = exc
    if refusal is not None:
        if key is not None:  # as `service._act`: the key's retries get the same refusal
            async with request.app.state.sessionmaker() as session:
                await remember_refusal(session, key, refusal)
        raise refusal
    if isinstance(result, actions.OrderBody):
        wake_relays()
    return respond_action(result)


async def confirm(request: FastRequest) -> Response | None:
    """The fast path of `POST /sales-orders/{order_id}/confirm`; None declines."""
    order_id = _order_id(request.param)
    if order_id is None:
        return None
    return await _serve(request, lambda c, ctx, key: actions.confirm(c, order_id, ctx, key))


async def ship(request: FastRequest) -> Response | None:
    """The fast path of `POST /sales-orders/{order_id}/ship`; None declines."""
    order_id = _order_id(request.param)
    if order_id is None or request.header(b"content-type") != _JSON:
        return None
    try:
        data = _SHIP.validate_python(json.loads(request.body))
    except ValueError:  # not JSON, not UTF-8, or not a valid shipment (ValidationError)
        return None
    return await _serve(request, lambda c, ctx, key: actions.ship(c, order_id, data, ctx, key))

"""One line posted in one statement with typed parameters and answered as its response JSON:
the hot path of `POST /stock-movements` (`stock.fastpath`). Both functions run `stock_post`
(`stock.ledger`, migration 0008) as a statement of its own on a driver connection with no
transaction open, and refuse as `ledger.post_movements_now` refuses.

- `post_line_json_now(connection, line, ctx, hide_cost=)`: the line's arguments are sent as
  typed parameters and built into `stock_post`'s jsonb by the server (`json.dumps` of a 27-key
  line costs the API ~50 us per posting; typed parameters ~5), and the movement comes back as
  the response body itself: exactly `MovementRead`'s JSON as pydantic writes it (keys in field
  order, money with two places, `stock_json_time`), without `unit_cost` when the caller may not
  see costs.
- `post_line_as_now(connection, line, origin, user_id, token, permissions)`: the same, with the
  caller's principal read in the same statement (`auth.repository.PRINCIPAL_QUERY`, its session
  checks included), so an authenticated posting is one round trip. The line is posted only when
  the user is active, in a live session, and holds every permission; otherwise the function
  gets no lines, writes nothing, and the caller is told to decline (the route then answers 401
  or 403 as it always does). Deactivation and role changes apply on the next request, as on
  every route.

`tests/stock/test_ledger_one.py` holds both to the general path and to pydantic, byte for byte.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from stockroom.auth.permissions import Perm
from stockroom.auth.repository import PRINCIPAL_QUERY, TokenSession
from stockroom.context import Context
from stockroom.db.base import uuid7
from stockroom.db.session import DriverQuery
from stockroom.events.recorder import next_event_stamp
from stockroom.events.wakeup import wake_relays
from stockroom.stock.errors import StockLimitExceeded
from stockroom.stock.ledger import Line, refusal
from stockroom.types import utcnow

# $1..$26 the line, $28 request id, $29 created at, $31..$34 the request's origin; the actor
# ($27 and $30 in the plain statement, the principal's row in the other) and whether costs are
# hidden ($35, or the principal's permissions) are filled in per statement.
_LINE_ARGUMENTS = """
@GATE@jsonb_build_array(jsonb_build_object(
    'line', 0, 'id', $1::uuid, 'product_id', $2::uuid, 'warehouse_id', $3::uuid,
    'type', $4::text, 'quantity', $5::integer, 'signed_quantity', $6::integer,
    'in_transit_delta', $7::integer, 'reserved_delta', $8::integer,
    'on_order_delta', $9::integer, 'unit_cost', $10::numeric, 'unit_price', $11::numeric,
    'default_cost', $12::boolean, 'default_price', $13::boolean, 'reference', $14::text,
    'note', $15::text, 'reverses_id', $16::uuid, 'transfer_id', $17::uuid,
    'purchase_order_id', $18::uuid, 'sales_order_id', $19::uuid,
    'require_active_product', $20::boolean, 'require_active_warehouse', $21::boolean,
    'keep_reserved', $22::boolean, 'event_id', $23::uuid, 'occurred_at', $24::text,
    'low_event_id', $25::uuid, 'low_occurred_at', $26::text))@END@,
jsonb_build_object(
    'created_by', @ACTOR_ID@, 'request_id', $28::text, 'created_at', $29::text,
    'actor', CASE WHEN @ACTOR_ID@ IS NULL THEN NULL
                  ELSE jsonb_build_object('id', @ACTOR_ID@, 'email', @ACTOR_EMAIL@) END,
    'request', jsonb_build_object('id', $28::text, 'ip', $31::text, 'user_agent', $32::text,
                                  'method', $33::text, 'path', $34::text))
"""

_MOVEMENT_JSON = """
concat('{"id":"', p.id, '","product_id":"', p.product_id, '","warehouse_id":"',
       p.warehouse_id, '","type":"', p.type, '","quantity":', p.quantity,
       ',"signed_quantity":', p.signed_quantity, ',"on_hand_after":', p.on_hand_after,
       CASE WHEN @HIDE_COST@ THEN ''
            ELSE ',"unit_cost":' || coalesce(to_json(round(p.unit_cost, 2)::text)::text, 'null')
       END,
       ',"unit_price":', coalesce(to_json(round(p.unit_price, 2)::text)::text, 'null'),
       ',"reference":', coalesce(to_json(p.reference)::text, 'null'),
       ',"note":', coalesce(to_json(p.note)::text, 'null'),
       ',"reverses_id":', coalesce('"' || p.reverses_id || '"', 'null'),
       ',"transfer_id":', coalesce('"' || p.transfer_id || '"', 'null'),
       ',"created_by":', coalesce('"' || p.created_by || '"', 'null'),
       ',"request_id":', coalesce(to_json(p.request_id)::text, 'null'),
       ',"created_at":"', stock_json_time(p.created_at), '"}')
"""

_SELECT = (
    "SELECT p.reason, p.line, p.id, p.product_id, p.warehouse_id, "
    f"CASE WHEN p.reason IS NULL AND p.id IS NOT NULL THEN {_MOVEMENT_JSON} END AS body"
)


def _statement(select: str, tail: str, gate: str, actor_id: str, email: str, hide: str) -> str:
    """`select` and `tail` with `_LINE_ARGUMENTS` filled in: its lines inside `gate` (a CASE
    opening, or nothing), its actor, and whether costs are hidden."""
    arguments = _LINE_ARGUMENTS.replace("@GATE@", gate).replace("@END@", " END" if gate else "")
    arguments = arguments.replace("@ACTOR_ID@", actor_id).replace("@ACTOR_EMAIL@", email)
    return f"{select.replace('@HIDE_COST@', hide)} {tail.replace('@ARGUMENTS@', arguments)}"


_CALL_ONE = _statement(
    _SELECT,
    "FROM stock_post(@ARGUMENTS@) AS p",
    "",
    "$27::uuid",
    "$30::text",
    "$35::boolean",
)

# The principal query, its parameters renumbered into this statement's: the user id is the
# actor's $27, the token's session $30 and issue time $35 (both unused by the line here).
_COSTS_READ = str(Perm.COSTS_READ)
_PRINCIPAL = DriverQuery.of(PRINCIPAL_QUERY)
_PRINCIPAL_NUMBERS = {"user_id": 27, "session_id": 30, "issued_at": 35}
_PRINCIPAL_SQL = re.sub(
    r"\$(\d+)",
    lambda m: f"${_PRINCIPAL_NUMBERS[_PRINCIPAL.names[int(m[1]) - 1]]}",
    _PRINCIPAL.sql,
)
if set(_PRINCIPAL.names) != set(_PRINCIPAL_NUMBERS) or _PRINCIPAL.constants:
    raise RuntimeError("auth.repository.PRINCIPAL_QUERY's parameters changed: renumber them")
_CALL_AS = _statement(
    f"{_SELECT}, pr.ok",
    # $36 the permissions the posting needs, $37 the one that shows costs. A principal that
    # is refused gives stock_post no lines: it writes nothing and returns no row.
    "FROM (SELECT q.id, q.email, "
    "q.is_active AND q.session_live AND q.token_current "
    "AND q.permissions::text[] @> $36::text[] AS ok, "
    "NOT ($37::text = ANY(q.permissions::text[])) AS hide_cost "
    f"FROM ({_PRINCIPAL_SQL}) AS q(id, email, full_name, is_active, roles, permissions, "
    "session_live, token_current)) AS pr "
    "LEFT JOIN LATERAL stock_post(@ARGUMENTS@) AS p ON true",
    "CASE WHEN NOT pr.ok THEN '[]'::jsonb ELSE ",
    "pr.id",
    "pr.email",
    "pr.hide_cost",
)


def _line_values(line: Line) -> tuple[Any, ...]:
    """$1..$26: the line, as `ledger._arguments` encodes it, in typed values."""
    event_id, occurred_at = next_event_stamp()
    low_event_id, low_occurred_at = next_event_stamp()
    return (
        line.id or uuid7(),
        line.product_id,
        line.warehouse_id,
        line.type.value,
        line.quantity,
        line.signed_quantity,
        line.in_transit_delta,
        line.reserved_delta,
        line.on_order_delta,
        line.unit_cost,
        line.unit_price,
        line.default_cost,
        line.default_price,
        line.reference,
        line.note,
        line.reverses_id,
        line.transfer_id,
        line.purchase_order_id,
        line.sales_order_id,
        line.require_active_product,
        line.require_active_warehouse,
        line.keep_reserved,
        event_id,
        occurred_at.isoformat(),
        low_event_id,
        low_occurred_at.isoformat(),
    )


@dataclass(frozen=True, slots=True)
class PostedJson:
    """A movement posted by this module: its id and its response body."""

    id: uuid.UUID
    body: str


async def _post(connection: asyncpg.Connection, sql: str, line: Line, args: Sequence[Any]) -> Any:
    try:
        row = await connection.fetchrow(sql, *args)
    except asyncpg.NumericValueOutOfRangeError:
        raise StockLimitExceeded() from None
    if row is not None and row["reason"] is not None:
        raise refusal(row, [line])
    return row


async def post_line_json_now(
    connection: asyncpg.Connection, line: Line, ctx: Context, *, hide_cost: bool
) -> PostedJson:
    """`post_movements_now` of one line (which must move on hand), answering the movement as
    its response JSON (`MovementRead`'s, without `unit_cost` when `hide_cost`)."""
    actor = ctx.actor
    args = (
        *_line_values(line),
        actor.id if actor else None,
        ctx.request_id,
        utcnow().isoformat(),
        actor.email if actor else None,
        ctx.ip,
        ctx.user_agent,
        ctx.method,
        ctx.path,
        hide_cost,
    )
    row = await _post(connection, _CALL_ONE, line, args)
    wake_relays()
    return PostedJson(row["id"], row["body"])


async def post_line_as_now(
    connection: asyncpg.Connection,
    line: Line,
    origin: Context,
    user_id: uuid.UUID,
    token: TokenSession,
    permissions: Sequence[str],
) -> PostedJson | None:
    """`post_line_json_now` by the token's user (the actor; costs hidden unless they hold
    costs:read), read in the same statement: None, having written nothing, when that user is
    unknown, inactive, out of session or lacks one of `permissions`. `origin` gives the
    request's id and origin (its actor is ignored). A refusal raises as `post_line_json_now`."""
    args = (
        *_line_values(line),
        user_id,
        origin.request_id,
        utcnow().isoformat(),
        token.session_id,
        origin.ip,
        origin.user_agent,
        origin.method,
        origin.path,
        token.issued_at,
        [str(permission) for permission in permissions],
        _COSTS_READ,
    )
    row = await _post(connection, _CALL_AS, line, args)
    if row is None or not row["ok"]:
        return None
    wake_relays()
    return PostedJson(row["id"], row["body"])

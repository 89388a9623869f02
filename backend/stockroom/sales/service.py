"""Sales order use cases. Each is one transaction; every state change happens under the order's
row lock and goes with its activity event and the stock it reserves, ships or releases
(`stock.reservations`), in that same transaction. Confirm and ship are each one call of their
SQL function (`sales.actions`, migration 0013), shared with their fast paths.

    draft --confirm--> confirmed --ship--> partially_shipped --ship--> shipped
      |                    |                     |
      +------cancel--------+------cancel---------+--> cancelled (unshipped reservations released)
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from stockroom import events
from stockroom.context import Context
from stockroom.db.base import uuid7
from stockroom.db.numbers import next_number
from stockroom.db.session import single_statement, transaction
from stockroom.events.recorder import compute_changes
from stockroom.events.wakeup import wake_relays
from stockroom.http.errors import AppError, PreconditionFailed
from stockroom.http.etag import check_if_match
from stockroom.http.pagination import Page, PageParams, Sort
from stockroom.idempotency import (
    IdempotencyKey,
    StoredResponse,
    remember_refusal,
    run_idempotent,
)
from stockroom.sales import actions, repository
from stockroom.sales.actions import ActionResult
from stockroom.sales.errors import SalesOrderNotFound
from stockroom.sales.models import (
    SALES_ORDER_NUMBERS,
    SalesOrder,
    SalesOrderLine,
    SalesOrderStatus,
)
from stockroom.sales.repository import OrderFilter
from stockroom.sales.schemas import (
    CustomerRead,
    SalesOrderCreate,
    SalesOrderLineIn,
    SalesOrderLineRead,
    SalesOrderRead,
    SalesOrderUpdate,
    ShipRequest,
    total_price,
)
from stockroom.stock import reservations
from stockroom.stock.errors import InvalidTransition
from stockroom.types import utcnow

Status = SalesOrderStatus
_ORDER_COLUMNS = tuple(
    c for c in SalesOrderRead.model_fields if c not in {"lines", "total_price", "customer"}
)
_FIELDS = ("warehouse_id", "customer_name", "customer_email", "reference", "note")


def _actor_id(ctx: Context) -> uuid.UUID | None:
    return ctx.actor.id if ctx.actor else None


def _read(order: SalesOrder, lines: list[SalesOrderLine]) -> SalesOrderRead:
    line_reads = [SalesOrderLineRead.model_validate(line) for line in lines]
    return SalesOrderRead.model_validate(
        {
            **{c: getattr(order, c) for c in _ORDER_COLUMNS},
            "customer": CustomerRead(name=order.customer_name, email=order.customer_email),
            "lines": line_reads,
            "total_price": total_price(line_reads),
        }
    )


def _line_data(line: SalesOrderLine) -> dict[str, Any]:
    return {
        "line_id": line.id,
        "product_id": line.product_id,
        "quantity": line.quantity,
        "reserved_quantity": line.reserved_quantity,
        "shipped_quantity": line.shipped_quantity,
        "unit_price": line.unit_price,
    }


def _event_data(order: SalesOrder, lines: list[SalesOrderLine]) -> dict[str, Any]:
    return {
        "sales_order_id": order.id,
        "number": order.number,
        "status": order.status,
        "warehouse_id": order.warehouse_id,
        "lines": [_line_data(line) for line in lines],
    }


def _not_allowed(order: SalesOrder, action: str, allowed: tuple[Status, ...]) -> InvalidTransition:
    names = ", ".join(s.value for s in allowed)
    return InvalidTransition(
        f"the sales order is {order.status}; only {names} orders can be {action}",
        status=order.status,
    )


async def _checked_lines(
    session: AsyncSession, warehouse_id: uuid.UUID, lines: list[SalesOrderLineIn]
) -> list[dict[str, Any]]:
    products = await reservations.checked_order_targets(
        session, warehouse_id, [line.product_id for line in lines]
    )
    return [
        {
            "id": uuid7(),
            "product_id": line.product_id,
            "quantity": line.quantity,
            "reserved_quantity": 0,
            "shipped_quantity": 0,
            "unit_price": (
                products[line.product_id].sale_price if line.unit_price is None else line.unit_price
            ),
        }
        for line in lines
    ]


async def _load(session: AsyncSession, order_id: uuid.UUID, *, lock: bool) -> SalesOrder:
    order = await (repository.lock_order if lock else repository.get_order)(session, order_id)
    if order is None:
        raise SalesOrderNotFound()
    return order


async def _lines(session: AsyncSession, order: SalesOrder) -> list[SalesOrderLine]:
    return (await repository.lines_of(session, [order.id]))[order.id]


def _transition(
    session: AsyncSession,
    ctx: Context,
    order: SalesOrder,
    lines: list[SalesOrderLine],
    status: Status,
    event_type: str,
    data: dict[str, Any] | None = None,
) -> None:
    old = order.status
    order.status = status.value
    order.updated_at = utcnow()
    events.record(
        session,
        event_type,
        ctx,
        entity=("sales_order", order.id),
        changes={"status": {"old": old, "new": status.value}},
        data={**_event_data(order, lines), **(data or {})},
    )


# --- create, read, update --------------------------------------------------------------------


async def create_order(
    session: AsyncSession, data: SalesOrderCreate, ctx: Context
) -> SalesOrderRead:
    """Create a draft sales order with its lines."""
    async with transaction(session):
        lines = await _checked_lines(session, data.warehouse_id, data.lines)
        now = utcnow()
        order = repository.add_order(
            session,
            id=uuid7(),
            number=await next_number(session, "SO", SALES_ORDER_NUMBERS),
            status=Status.DRAFT.value,
            warehouse_id=data.warehouse_id,
            customer_name=data.customer.name,
            customer_email=data.customer.email,
            reference=data.reference,
            note=data.note,
            created_by=_actor_id(ctx),
            created_at=now,
            updated_at=now,
        )
        await session.flush()
        await repository.insert_lines(session, order.id, lines)
        stored = await _lines(session, order)
        events.record(
            session,
            "sales_order.created",
            ctx,
            entity=("sales_order", order.id),
            data=_event_data(order, stored),
        )
        return _read(order, stored)


async def get_order(session: AsyncSession, order_id: uuid.UUID) -> SalesOrderRead:
    async with transaction(session):
        order = await _load(session, order_id, lock=False)
        return _read(order, await _lines(session, order))


async def list_orders(
    session: AsyncSession, filters: OrderFilter, sort: Sort, page: PageParams
) -> Page[SalesOrderRead]:
    """Orders matching the filters, with their lines (two queries for the whole page)."""
    async with transaction(session):
        orders, total = await repository.list_orders(session, filters, sort, page)
        lines = await repository.lines_of(session, [o.id for o in orders])
    return Page[SalesOrderRead](
        items=[_read(o, lines[o.id]) for o in orders],
        total=total,
        page=page.page,
        page_size=page.page_size,
    )


async def update_order(
    session: AsyncSession,
    order_id: uuid.UUID,
    data: SalesOrderUpdate,
    if_match: str | None,
    ctx: Context,
) -> SalesOrderRead:
    """Change a draft order; `lines` replaces them all."""
    async with transaction(session):
        order = await _load(session, order_id, lock=True)
        check_if_match(if_match, order.version)
        if order.status != Status.DRAFT.value:
            raise _not_allowed(order, "changed", (Status.DRAFT,))
        old_lines = await _lines(session, order)
        before = {f: getattr(order, f) for f in _FIELDS}
        values = data.model_dump(exclude_unset=True, exclude={"lines", "customer"})
        if data.customer is not None:
            values["customer_name"] = data.customer.name
            values["customer_email"] = data.customer.email
        for field, value in values.items():
            setattr(order, field, value)
        changes = compute_changes(before, {f: getattr(order, f) for f in _FIELDS}, _FIELDS)
        if data.lines is not None or "warehouse_id" in changes:
            source = data.lines or [
                SalesOrderLineIn(
                    product_id=line.product_id, quantity=line.quantity, unit_price=line.unit_price
                )
                for line in old_lines
            ]
            new_lines = await _checked_lines(session, order.warehouse_id, source)
            if data.lines is not None:
                await repository.delete_lines(session, order.id)
                await repository.insert_lines(session, order.id, new_lines)
                changes["lines"] = {
                    "old": [_line_data(line) for line in old_lines],
                    "new": [dict(line) for line in new_lines],
                }
        order.updated_at = utcnow()  # bumps the version, also when only the lines changed
        try:
            await session.flush()
        except StaleDataError:
            raise PreconditionFailed() from None
        lines = await _lines(session, order) if data.lines is not None else old_lines
        events.record(
            session,
            "sales_order.updated",
            ctx,
            entity=("sales_order", order.id),
            changes=changes,
            data=_event_data(order, lines),
        )
        return _read(order, lines)


# --- actions ---------------------------------------------------------------------------------


async def _act(
    session: AsyncSession,
    key: IdempotencyKey | None,
    action: Callable[[asyncpg.Connection], Awaitable[ActionResult]],
) -> ActionResult:
    """One action's SQL function (`actions`), the request's transaction taken over as one
    statement; a refusal is stored for the key's retries, as `run_idempotent` stores it."""
    try:
        async with single_statement(session) as connection:
            result = await action(connection)
    except AppError as exc:
        if key is not None:
            await remember_refusal(session, key, exc)
        raise
    if isinstance(result, actions.OrderBody):
        wake_relays()  # committed: the order's event (and a shipment's movements) are out
    return result


async def confirm_order(
    session: AsyncSession, order_id: uuid.UUID, ctx: Context, key: IdempotencyKey | None = None
) -> ActionResult:
    """draft -> confirmed: every line reserved in full, or none (409 insufficient_available)."""
    return await _act(session, key, lambda c: actions.confirm(c, order_id, ctx, key))


async def ship_order(
    session: AsyncSession,
    order_id: uuid.UUID,
    data: ShipRequest,
    ctx: Context,
    key: IdempotencyKey | None = None,
) -> ActionResult:
    """Ship some or all unshipped quantities: one `sale` per line, consuming the reservation."""
    return await _act(session, key, lambda c: actions.ship(c, order_id, data, ctx, key))


_CANCELLABLE = (Status.DRAFT, Status.CONFIRMED, Status.PARTIALLY_SHIPPED)


async def _cancel(session: AsyncSession, order_id: uuid.UUID, ctx: Context) -> SalesOrderRead:
    order = await _load(session, order_id, lock=True)
    if order.status not in _CANCELLABLE:
        raise _not_allowed(order, "cancelled", _CANCELLABLE)
    lines = await _lines(session, order)
    released = [
        (line.product_id, line.reserved_quantity) for line in lines if line.reserved_quantity > 0
    ]
    if released:
        await reservations.release(session, ctx, order.warehouse_id, order.id, released)
        await repository.release_all(session, order.id)
    release_data = [
        {"line_id": line.id, "product_id": line.product_id, "quantity": line.reserved_quantity}
        for line in lines
        if line.reserved_quantity > 0
    ]
    for line in lines:
        set_committed_value(line, "reserved_quantity", 0)
    order.closed_at = utcnow()
    _transition(
        session,
        ctx,
        order,
        lines,
        Status.CANCELLED,
        "sales_order.cancelled",
        {"released": release_data},
    )
    await session.flush()
    return _read(order, lines)


async def cancel_order(
    session: AsyncSession, order_id: uuid.UUID, ctx: Context, key: IdempotencyKey | None = None
) -> SalesOrderRead | StoredResponse:
    """draft, confirmed or partially_shipped -> cancelled; unshipped reservations released."""
    return await run_idempotent(session, key, lambda: _cancel(session, order_id, ctx), status=200)


async def count_open_orders(session: AsyncSession) -> int:
    """How many sales orders are confirmed or partially shipped (dashboard)."""
    async with transaction(session):
        return await repository.count_open(session)

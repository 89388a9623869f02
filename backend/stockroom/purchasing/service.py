"""Purchase order use cases. Each one is one transaction; every state change happens under the
order's row lock and goes with its activity event and, for receipts and cancellations, with the
stock it moves (`stock.reservations`), in that same transaction.

    draft --submit--> ordered --receive--> partially_received --receive--> received
      |                  |                        |
      +--cancel--> cancelled <--cancel--+         +--cancel--> closed (the rest will not come)
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from stockroom import events
from stockroom.context import Context
from stockroom.db.base import uuid7
from stockroom.db.numbers import next_number
from stockroom.db.session import transaction
from stockroom.events.recorder import compute_changes
from stockroom.http.errors import PreconditionFailed, ValidationFailed
from stockroom.http.etag import check_if_match
from stockroom.http.pagination import Page, PageParams, Sort
from stockroom.idempotency import IdempotencyKey, StoredResponse, run_idempotent
from stockroom.purchasing import repository
from stockroom.purchasing.errors import (
    InactiveSupplier,
    OverReceipt,
    PurchaseOrderNotFound,
    SupplierNotFound,
)
from stockroom.purchasing.models import (
    OPEN_PURCHASE_STATUSES,
    PURCHASE_ORDER_NUMBERS,
    PurchaseOrder,
    PurchaseOrderLine,
    PurchaseOrderStatus,
)
from stockroom.purchasing.repository import OrderFilter
from stockroom.purchasing.schemas import (
    PurchaseOrderCreate,
    PurchaseOrderLineIn,
    PurchaseOrderLineRead,
    PurchaseOrderRead,
    PurchaseOrderUpdate,
    ReceiveRequest,
    total_cost,
)
from stockroom.stock import reservations
from stockroom.stock.errors import InvalidTransition
from stockroom.types import utcnow

Status = PurchaseOrderStatus
_ORDER_COLUMNS = tuple(
    c for c in PurchaseOrderRead.model_fields if c not in {"lines", "total_cost"}
)
_FIELDS = ("supplier_id", "warehouse_id", "expected_at", "reference", "note")


def _actor_id(ctx: Context) -> uuid.UUID | None:
    return ctx.actor.id if ctx.actor else None


def _read(order: PurchaseOrder, lines: list[PurchaseOrderLine]) -> PurchaseOrderRead:
    line_reads = [PurchaseOrderLineRead.model_validate(line) for line in lines]
    return PurchaseOrderRead.model_validate(
        {
            **{c: getattr(order, c) for c in _ORDER_COLUMNS},
            "lines": line_reads,
            "total_cost": total_cost(line_reads),
        }
    )


def _event_data(order: PurchaseOrder, lines: list[PurchaseOrderLine]) -> dict[str, Any]:
    """What an order event carries. No costs: those need costs:read."""
    return {
        "purchase_order_id": order.id,
        "number": order.number,
        "status": order.status,
        "supplier_id": order.supplier_id,
        "warehouse_id": order.warehouse_id,
        "lines": [_line_data(line) for line in lines],
    }


def _line_data(line: PurchaseOrderLine) -> dict[str, Any]:
    return {
        "line_id": line.id,
        "product_id": line.product_id,
        "quantity": line.quantity,
        "received_quantity": line.received_quantity,
    }


def _not_allowed(
    order: PurchaseOrder, action: str, allowed: tuple[Status, ...]
) -> InvalidTransition:
    names = ", ".join(s.value for s in allowed)
    return InvalidTransition(
        f"the purchase order is {order.status}; only {names} orders can be {action}",
        status=order.status,
    )


async def _check_supplier(session: AsyncSession, supplier_id: uuid.UUID) -> None:
    """404 for an unknown supplier, 409 for an inactive one."""
    active = await repository.supplier_active(session, supplier_id)
    if active is None:
        raise SupplierNotFound(supplier_id=str(supplier_id))
    if not active:
        raise InactiveSupplier(supplier_id=str(supplier_id))


async def _checked_lines(
    session: AsyncSession,
    supplier_id: uuid.UUID,
    warehouse_id: uuid.UUID,
    lines: list[PurchaseOrderLineIn],
) -> list[dict[str, Any]]:
    """The lines to insert, after checking the supplier, warehouse and products; a line without
    `unit_cost` takes its product's cost price."""
    await _check_supplier(session, supplier_id)
    products = await reservations.checked_order_targets(
        session, warehouse_id, [line.product_id for line in lines]
    )
    return [
        {
            "id": uuid7(),
            "product_id": line.product_id,
            "quantity": line.quantity,
            "received_quantity": 0,
            "unit_cost": (
                products[line.product_id].cost_price if line.unit_cost is None else line.unit_cost
            ),
        }
        for line in lines
    ]


async def _load(session: AsyncSession, order_id: uuid.UUID, *, lock: bool) -> PurchaseOrder:
    order = await (repository.lock_order if lock else repository.get_order)(session, order_id)
    if order is None:
        raise PurchaseOrderNotFound()
    return order


async def _lines(session: AsyncSession, order: PurchaseOrder) -> list[PurchaseOrderLine]:
    return (await repository.lines_of(session, [order.id]))[order.id]


# --- create, read, update --------------------------------------------------------------------


async def create_order(
    session: AsyncSession, data: PurchaseOrderCreate, ctx: Context
) -> PurchaseOrderRead:
    """Create a draft purchase order with its lines."""
    async with transaction(session):
        return await create_draft(session, data, ctx)


async def create_draft(
    session: AsyncSession, data: PurchaseOrderCreate, ctx: Context
) -> PurchaseOrderRead:
    """Create a draft purchase order inside the caller's transaction."""
    lines = await _checked_lines(session, data.supplier_id, data.warehouse_id, data.lines)
    now = utcnow()
    order = repository.add_order(
        session,
        id=uuid7(),
        number=await next_number(session, "PO", PURCHASE_ORDER_NUMBERS),
        status=Status.DRAFT.value,
        supplier_id=data.supplier_id,
        warehouse_id=data.warehouse_id,
        expected_at=data.expected_at,
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
        "purchase_order.created",
        ctx,
        entity=("purchase_order", order.id),
        data=_event_data(order, stored),
    )
    return _read(order, stored)


async def get_order(session: AsyncSession, order_id: uuid.UUID) -> PurchaseOrderRead:
    async with transaction(session):
        order = await _load(session, order_id, lock=False)
        return _read(order, await _lines(session, order))


async def list_orders(
    session: AsyncSession, filters: OrderFilter, sort: Sort, page: PageParams
) -> Page[PurchaseOrderRead]:
    """Orders matching the filters, with their lines (two queries for the whole page)."""
    async with transaction(session):
        orders, total = await repository.list_orders(session, filters, sort, page)
        lines = await repository.lines_of(session, [o.id for o in orders])
    return Page[PurchaseOrderRead](
        items=[_read(o, lines[o.id]) for o in orders],
        total=total,
        page=page.page,
        page_size=page.page_size,
    )


async def update_order(
    session: AsyncSession,
    order_id: uuid.UUID,
    data: PurchaseOrderUpdate,
    if_match: str | None,
    ctx: Context,
) -> PurchaseOrderRead:
    """Change a draft order; `lines` replaces them all."""
    async with transaction(session):
        order = await _load(session, order_id, lock=True)
        check_if_match(if_match, order.version)
        if order.status != Status.DRAFT.value:
            raise _not_allowed(order, "changed", (Status.DRAFT,))
        old_lines = await _lines(session, order)
        before = {f: getattr(order, f) for f in _FIELDS}
        values = data.model_dump(exclude_unset=True, exclude={"lines"})
        for field, value in values.items():
            setattr(order, field, value)
        supplier_id, warehouse_id = order.supplier_id, order.warehouse_id
        changes = compute_changes(before, {f: getattr(order, f) for f in _FIELDS}, _FIELDS)
        if data.lines is not None or "supplier_id" in changes or "warehouse_id" in changes:
            source = data.lines or [
                PurchaseOrderLineIn(
                    product_id=line.product_id, quantity=line.quantity, unit_cost=line.unit_cost
                )
                for line in old_lines
            ]
            new_lines = await _checked_lines(session, supplier_id, warehouse_id, source)
            if data.lines is not None:
                await repository.delete_lines(session, order.id)
                await repository.insert_lines(session, order.id, new_lines)
                changes["lines"] = {
                    "old": [_line_data(line) for line in old_lines],
                    "new": [
                        {k: v for k, v in line.items() if k != "unit_cost"} for line in new_lines
                    ],
                }
        else:
            # A draft of a supplier deactivated since is not changed either (only cancelled, or
            # moved to another supplier, which the branch above checks).
            await _check_supplier(session, supplier_id)
        order.updated_at = utcnow()  # bumps the version, also when only the lines changed
        try:
            await session.flush()
        except StaleDataError:
            raise PreconditionFailed() from None
        lines = await _lines(session, order) if data.lines is not None else old_lines
        events.record(
            session,
            "purchase_order.updated",
            ctx,
            entity=("purchase_order", order.id),
            changes=changes,
            data=_event_data(order, lines),
        )
        return _read(order, lines)


# --- actions ---------------------------------------------------------------------------------


def _transition(
    session: AsyncSession,
    ctx: Context,
    order: PurchaseOrder,
    lines: list[PurchaseOrderLine],
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
        entity=("purchase_order", order.id),
        changes={"status": {"old": old, "new": status.value}},
        data={**_event_data(order, lines), **(data or {})},
    )


async def _submit(session: AsyncSession, order_id: uuid.UUID, ctx: Context) -> PurchaseOrderRead:
    order = await _load(session, order_id, lock=True)
    if order.status != Status.DRAFT.value:
        raise _not_allowed(order, "submitted", (Status.DRAFT,))
    lines = await _lines(session, order)
    await reservations.change_on_order(
        session,
        ctx,
        order.warehouse_id,
        order.id,
        [(line.product_id, line.quantity) for line in lines],
    )
    order.submitted_at = utcnow()
    _transition(session, ctx, order, lines, Status.ORDERED, "purchase_order.submitted")
    await session.flush()
    return _read(order, lines)


async def submit_order(
    session: AsyncSession, order_id: uuid.UUID, ctx: Context, key: IdempotencyKey | None = None
) -> PurchaseOrderRead | StoredResponse:
    """draft -> ordered: its quantities count as on order from now on."""
    return await run_idempotent(session, key, lambda: _submit(session, order_id, ctx), status=200)


async def _receive(
    session: AsyncSession, order_id: uuid.UUID, data: ReceiveRequest, ctx: Context
) -> PurchaseOrderRead:
    order = await _load(session, order_id, lock=True)
    if order.status not in OPEN_PURCHASE_STATUSES:
        raise _not_allowed(order, "received", OPEN_PURCHASE_STATUSES)
    lines = await _lines(session, order)
    by_id = {line.id: line for line in lines}
    over: list[dict[str, Any]] = []
    for i, receipt in enumerate(data.lines):
        line = by_id.get(receipt.line_id)
        if line is None:
            raise ValidationFailed.at(
                ["body", "lines", i, "line_id"], "not a line of this purchase order"
            )
        outstanding = line.quantity - line.received_quantity
        if receipt.quantity > outstanding:
            over.append(
                {"line_id": str(line.id), "outstanding": outstanding, "requested": receipt.quantity}
            )
    if over:
        raise OverReceipt(lines=over)
    received = [(r.line_id, r.quantity) for r in data.lines]
    await repository.add_received(session, order.id, received)
    movements = await reservations.receive(
        session,
        ctx,
        order.warehouse_id,
        order.id,
        [
            (by_id[line_id].product_id, quantity, by_id[line_id].unit_cost)
            for line_id, quantity in received
        ],
        reference=data.reference or order.number,
    )
    for line_id, quantity in received:
        line = by_id[line_id]
        set_committed_value(line, "received_quantity", line.received_quantity + quantity)
    complete = all(line.received_quantity == line.quantity for line in lines)
    movement_of = {m.product_id: m.id for m in movements}
    _transition(
        session,
        ctx,
        order,
        lines,
        Status.RECEIVED if complete else Status.PARTIALLY_RECEIVED,
        "purchase_order.received",
        {
            "received": [
                {
                    "line_id": line_id,
                    "product_id": by_id[line_id].product_id,
                    "quantity": quantity,
                    "movement_id": movement_of[by_id[line_id].product_id],
                }
                for line_id, quantity in received
            ],
            "reference": data.reference,
        },
    )
    await session.flush()
    return _read(order, lines)


async def receive_order(
    session: AsyncSession,
    order_id: uuid.UUID,
    data: ReceiveRequest,
    ctx: Context,
    key: IdempotencyKey | None = None,
) -> PurchaseOrderRead | StoredResponse:
    """Receive some or all outstanding quantities: one `receipt` per line, all or none."""
    return await run_idempotent(
        session, key, lambda: _receive(session, order_id, data, ctx), status=200
    )


async def _cancel(session: AsyncSession, order_id: uuid.UUID, ctx: Context) -> PurchaseOrderRead:
    order = await _load(session, order_id, lock=True)
    lines = await _lines(session, order)
    if order.status == Status.PARTIALLY_RECEIVED.value:
        target, event_type = Status.CLOSED, "purchase_order.closed"
    elif order.status in (Status.DRAFT.value, Status.ORDERED.value):
        target, event_type = Status.CANCELLED, "purchase_order.cancelled"
    else:
        raise _not_allowed(
            order, "cancelled", (Status.DRAFT, Status.ORDERED, Status.PARTIALLY_RECEIVED)
        )
    if order.status != Status.DRAFT.value:
        outstanding = [
            (line.product_id, -(line.quantity - line.received_quantity))
            for line in lines
            if line.quantity > line.received_quantity
        ]
        if outstanding:
            await reservations.change_on_order(
                session, ctx, order.warehouse_id, order.id, outstanding
            )
    order.closed_at = utcnow()
    _transition(session, ctx, order, lines, target, event_type)
    await session.flush()
    return _read(order, lines)


async def cancel_order(
    session: AsyncSession, order_id: uuid.UUID, ctx: Context, key: IdempotencyKey | None = None
) -> PurchaseOrderRead | StoredResponse:
    """draft or ordered -> cancelled; partially_received -> closed. What is outstanding stops
    counting as on order."""
    return await run_idempotent(session, key, lambda: _cancel(session, order_id, ctx), status=200)


async def count_open_orders(session: AsyncSession) -> int:
    """How many purchase orders are ordered or partially received (dashboard)."""
    async with transaction(session):
        return await repository.count_open(session)

"""Transfer use cases. A transfer debits its source when created (`transfer_out`, counted in
the source's in_transit_out) and credits its destination when completed (`transfer_in`), or its
source when cancelled. The status changes by a conditional UPDATE first, which locks the row: of
N concurrent completions or cancellations exactly one finds it in transit."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stockroom import events
from stockroom.context import Context
from stockroom.db.base import uuid7
from stockroom.db.session import transaction
from stockroom.http.errors import ValidationFailed
from stockroom.http.pagination import Page, PageParams
from stockroom.idempotency import IdempotencyKey, StoredResponse, run_idempotent
from stockroom.stock import ledger, transfer_repository
from stockroom.stock.checks import actor_id, checked_product
from stockroom.stock.errors import InvalidTransition, TransferNotFound
from stockroom.stock.ledger import Line
from stockroom.stock.models import MovementType, StockTransfer, TransferStatus
from stockroom.stock.schemas import TransferCreate, TransferRead


def _transfer_event_data(transfer: StockTransfer) -> dict[str, Any]:
    return {
        "transfer_id": transfer.id,
        "product_id": transfer.product_id,
        "from_warehouse_id": transfer.from_warehouse_id,
        "to_warehouse_id": transfer.to_warehouse_id,
        "quantity": transfer.quantity,
        "status": transfer.status,
        "reference": transfer.reference,
    }


async def _create_transfer(
    session: AsyncSession, data: TransferCreate, ctx: Context
) -> TransferRead:
    if data.from_warehouse_id == data.to_warehouse_id:  # the schema refuses it too
        raise ValidationFailed.at(["body", "to_warehouse_id"], "must differ from the source")
    # Both ends are checked before the transfer row exists; the debit checks its own line.
    await checked_product(session, data.product_id, [data.from_warehouse_id, data.to_warehouse_id])
    transfer = transfer_repository.add_transfer(
        session,
        id=uuid7(),
        product_id=data.product_id,
        from_warehouse_id=data.from_warehouse_id,
        to_warehouse_id=data.to_warehouse_id,
        quantity=data.quantity,
        reference=data.reference,
        note=data.note,
        created_by=actor_id(ctx),
    )
    await session.flush()  # the movement below references it; a refused debit rolls it back
    debit = Line(
        product_id=data.product_id,
        warehouse_id=data.from_warehouse_id,
        type=MovementType.TRANSFER_OUT,
        quantity=data.quantity,
        signed_quantity=-data.quantity,
        in_transit_delta=data.quantity,
        reference=data.reference,
        note=data.note,
        transfer_id=transfer.id,
        keep_reserved=True,  # a new transfer takes only available stock (CONTRACT)
    )
    await ledger.post_movements(session, [debit], ctx)
    events.record(
        session,
        "transfer.created",
        ctx,
        entity=("stock_transfer", transfer.id),
        data=_transfer_event_data(transfer),
    )
    return TransferRead.model_validate(transfer)


async def create_transfer(
    session: AsyncSession, data: TransferCreate, ctx: Context, key: IdempotencyKey | None = None
) -> TransferRead | StoredResponse:
    """Create an in-transit transfer: the source is debited now (`transfer_out`)."""
    return await run_idempotent(
        session, key, lambda: _create_transfer(session, data, ctx), status=201
    )


def _closing_lines(transfer: StockTransfer, completing: bool) -> list[Line]:
    """The ledger lines that close a transfer. Goods already on the road must land somewhere:
    only a receiving warehouse must be active, and the product may have been deactivated."""
    common: dict[str, Any] = {
        "product_id": transfer.product_id,
        "type": MovementType.TRANSFER_IN,
        "reference": transfer.reference,
        "transfer_id": transfer.id,
        "require_active_product": False,
    }
    if not completing:
        return [
            Line(
                warehouse_id=transfer.from_warehouse_id,
                quantity=transfer.quantity,
                signed_quantity=transfer.quantity,
                in_transit_delta=-transfer.quantity,
                note="transfer cancelled: returned to source",
                require_active_warehouse=False,
                **common,
            )
        ]
    return [
        # The source releases its in-transit units (no movement: they left when created).
        Line(
            warehouse_id=transfer.from_warehouse_id,
            quantity=0,
            signed_quantity=0,
            in_transit_delta=-transfer.quantity,
            require_active_warehouse=False,
            **common,
        ),
        Line(
            warehouse_id=transfer.to_warehouse_id,
            quantity=transfer.quantity,
            signed_quantity=transfer.quantity,
            note=transfer.note,
            **common,
        ),
    ]


async def _close_transfer(
    session: AsyncSession, transfer_id: uuid.UUID, status: TransferStatus, ctx: Context
) -> TransferRead:
    transfer = await transfer_repository.close_transfer(session, transfer_id, status, actor_id(ctx))
    if transfer is None:
        current = await transfer_repository.get_transfer(session, transfer_id)
        if current is None:
            raise TransferNotFound()
        raise InvalidTransition(
            f"the transfer is {current.status}; only in_transit transfers can be "
            f"{'completed' if status is TransferStatus.COMPLETED else 'cancelled'}",
            status=current.status,
        )
    completing = status is TransferStatus.COMPLETED
    await ledger.post_movements(session, _closing_lines(transfer, completing), ctx)
    events.record(
        session,
        "transfer.completed" if completing else "transfer.cancelled",
        ctx,
        entity=("stock_transfer", transfer.id),
        changes={"status": {"old": TransferStatus.IN_TRANSIT.value, "new": status.value}},
        data=_transfer_event_data(transfer),
    )
    return TransferRead.model_validate(transfer)


async def complete_transfer(
    session: AsyncSession, transfer_id: uuid.UUID, ctx: Context, key: IdempotencyKey | None = None
) -> TransferRead | StoredResponse:
    """Credit the destination (`transfer_in`); exactly once, whatever the concurrency."""
    return await run_idempotent(
        session,
        key,
        lambda: _close_transfer(session, transfer_id, TransferStatus.COMPLETED, ctx),
        status=200,
    )


async def cancel_transfer(
    session: AsyncSession, transfer_id: uuid.UUID, ctx: Context, key: IdempotencyKey | None = None
) -> TransferRead | StoredResponse:
    """Credit the source back (`transfer_in` at the source); exactly once."""
    return await run_idempotent(
        session,
        key,
        lambda: _close_transfer(session, transfer_id, TransferStatus.CANCELLED, ctx),
        status=200,
    )


async def get_transfer(session: AsyncSession, transfer_id: uuid.UUID) -> TransferRead:
    async with transaction(session):
        transfer = await transfer_repository.get_transfer(session, transfer_id)
        if transfer is None:
            raise TransferNotFound()
        return TransferRead.model_validate(transfer)


async def list_transfers(
    session: AsyncSession,
    *,
    status: str | None,
    product_id: uuid.UUID | None,
    warehouse_id: uuid.UUID | None,
    page: PageParams,
) -> Page[TransferRead]:
    async with transaction(session):
        rows, total = await transfer_repository.list_transfers(
            session, status=status, product_id=product_id, warehouse_id=warehouse_id, page=page
        )
    return Page[TransferRead].of([TransferRead.model_validate(r) for r in rows], total, page)

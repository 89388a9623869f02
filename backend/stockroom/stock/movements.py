"""Movement use cases: post, read, list and reverse ledger movements."""

from __future__ import annotations

import uuid

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom import events
from stockroom.context import Context
from stockroom.db.session import single_statement, transaction
from stockroom.http.errors import AppError
from stockroom.http.pagination import Page, PageParams
from stockroom.idempotency import IdempotencyKey, StoredResponse, remember_refusal, run_idempotent
from stockroom.stock import ledger, repository
from stockroom.stock.errors import (
    AlreadyReversed,
    MovementNotFound,
    NotReversible,
    ProductNotFound,
)
from stockroom.stock.ledger import Line
from stockroom.stock.models import MovementType
from stockroom.stock.schemas import MovementCreate, MovementFilter, MovementRead


def line_of(data: MovementCreate) -> Line:
    """The ledger line of a user's movement: a receipt defaults to the product's cost price, a
    sale or return to its sale price; a sale takes only available stock."""
    return Line(
        product_id=data.product_id,
        warehouse_id=data.warehouse_id,
        type=data.type,
        quantity=data.quantity,
        signed_quantity=data.signed_quantity,
        unit_cost=data.unit_cost,
        unit_price=data.unit_price,
        default_cost=data.type is MovementType.RECEIPT,
        default_price=data.type in (MovementType.SALE, MovementType.RETURN),
        reference=data.reference,
        note=data.note,
        # Stock reserved for sales orders cannot be sold twice; damage, adjustments and counts
        # may still take on hand below reserved (CONTRACT, sales orders).
        keep_reserved=data.type is MovementType.SALE,
    )


async def post_movement(session: AsyncSession, data: MovementCreate, ctx: Context) -> MovementRead:
    """Post one movement to the ledger: one statement, its own transaction (see
    `db.session.single_statement`). Used by the API and the seeder."""
    async with single_statement(session) as connection:
        [movement] = await ledger.post_movements_now(connection, [line_of(data)], ctx)
    return movement


async def post_movement_idempotent(
    session: AsyncSession, data: MovementCreate, ctx: Context, key: IdempotencyKey | None
) -> MovementRead | StoredResponse:
    """`post_movement`, replaying the stored response when `key` was already used: with a key,
    still one statement (`ledger.post_movement_keyed_now`), plus a follow-up transaction that
    stores a refusal for the key's retries."""
    if key is None:
        return await post_movement(session, data, ctx)
    try:
        async with single_statement(session) as connection:
            return await ledger.post_movement_keyed_now(connection, line_of(data), ctx, key)
    except AppError as exc:
        await remember_refusal(session, key, exc)
        raise


async def get_movement(session: AsyncSession, movement_id: uuid.UUID) -> MovementRead:
    async with transaction(session):
        movement = await repository.get_movement(session, movement_id)
        if movement is None:
            raise MovementNotFound()
        return MovementRead.model_validate(movement)


async def list_movements(
    session: AsyncSession, filters: MovementFilter, page: PageParams
) -> Page[MovementRead]:
    """Movements matching the filters, newest first."""
    async with transaction(session):
        rows, total = await repository.list_movements(session, filters, page)
    return Page[MovementRead](
        items=[MovementRead.model_validate(r) for r in rows],
        total=total,
        page=page.page,
        page_size=page.page_size,
    )


async def stock_history(
    session: AsyncSession, product_id: uuid.UUID, filters: MovementFilter, page: PageParams
) -> Page[MovementRead]:
    """One product's movements, newest first; 404 if the product does not exist."""
    async with transaction(session):
        if not await repository.product_exists(session, product_id):
            raise ProductNotFound()
        rows, total = await repository.list_movements(session, filters, page)
    return Page[MovementRead](
        items=[MovementRead.model_validate(r) for r in rows],
        total=total,
        page=page.page,
        page_size=page.page_size,
    )


async def _reverse_movement(
    session: AsyncSession, movement_id: uuid.UUID, note: str | None, ctx: Context
) -> MovementRead:
    original = await repository.get_movement(session, movement_id)
    if original is None:
        raise MovementNotFound()
    if original.type in (MovementType.TRANSFER_OUT.value, MovementType.TRANSFER_IN.value):
        raise NotReversible("transfer movements are undone by cancelling the transfer")
    if original.reverses_id is not None:
        raise NotReversible("a reversal cannot be reversed; post a new movement instead")
    if await repository.reversal_of(session, original.id) is not None:
        raise AlreadyReversed()
    delta = -original.signed_quantity
    line = Line(
        product_id=original.product_id,
        warehouse_id=original.warehouse_id,
        type=MovementType.ADJUSTMENT,
        quantity=delta,
        signed_quantity=delta,
        unit_cost=original.unit_cost,
        unit_price=original.unit_price,
        reference=original.reference,
        note=note or f"reversal of movement {original.id}",
        reverses_id=original.id,
    )
    try:
        [reversal] = await ledger.post_movements(session, [line], ctx)
    except IntegrityError as exc:
        # The unique index on reverses_id decides between concurrent reversals.
        if "uq_stock_movements_reverses_id" in str(exc.orig):
            raise AlreadyReversed() from None
        raise
    events.record(
        session,
        "stock.movement_reversed",
        ctx,
        entity=("product", original.product_id),
        data={
            "movement_id": original.id,
            "reversal_id": reversal.id,
            "warehouse_id": original.warehouse_id,
            "type": original.type,
            "signed_quantity": reversal.signed_quantity,
            "on_hand_after": reversal.on_hand_after,
        },
    )
    return reversal


async def reverse_movement(
    session: AsyncSession,
    movement_id: uuid.UUID,
    note: str | None,
    ctx: Context,
    key: IdempotencyKey | None = None,
) -> MovementRead | StoredResponse:
    """Post the one compensating movement of `movement_id` (an `adjustment` with reverses_id)."""
    return await run_idempotent(
        session, key, lambda: _reverse_movement(session, movement_id, note, ctx), status=201
    )

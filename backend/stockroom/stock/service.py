"""Stock use cases. Each one is one transaction; every change to a level goes with its immutable
movement and its outbox event in that same transaction.

Locking, so that nothing deadlocks and nothing runs twice:
- a level row is changed only by one atomic conditional statement (`repository.apply_delta`);
- transfers and counts change state with a conditional UPDATE (`WHERE status = ...`) first, which
  locks their row: of N concurrent transitions exactly one finds the old status;
- a transaction that changes several levels does so in `repository.level_lock_order`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom import events
from stockroom.context import Context
from stockroom.db.base import uuid7
from stockroom.db.session import transaction
from stockroom.http.errors import ValidationFailed
from stockroom.http.idempotency import IdempotencyKey, StoredResponse, run_idempotent
from stockroom.http.pagination import Page, PageParams
from stockroom.stock import repository
from stockroom.stock.errors import (
    AlreadyReversed,
    CountNotFound,
    InactiveProduct,
    InactiveWarehouse,
    InsufficientStock,
    InvalidTransition,
    MovementNotFound,
    NotReversible,
    ProductNotFound,
    StockLimitExceeded,
    TransferNotFound,
    WarehouseNotFound,
)
from stockroom.stock.models import (
    CountStatus,
    MovementType,
    StockCount,
    StockMovement,
    StockTransfer,
    TransferStatus,
)
from stockroom.stock.repository import ProductFacts
from stockroom.stock.schemas import (
    CountCreate,
    CountRead,
    LowStockProduct,
    MovementCreate,
    MovementFilter,
    MovementRead,
    StockLevelRead,
    TransferCreate,
    TransferRead,
)

_NUMERIC_OUT_OF_RANGE = "22003"


def _actor_id(ctx: Context) -> uuid.UUID | None:
    return ctx.actor.id if ctx.actor else None


def _sqlstate(exc: DBAPIError) -> str | None:
    origin = exc.orig
    for candidate in (origin, getattr(origin, "__cause__", None)):
        state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(state, str):
            return state
    return None


async def _checked_product(
    session: AsyncSession,
    product_id: uuid.UUID,
    warehouse_ids: Sequence[uuid.UUID],
    *,
    require_active: Sequence[uuid.UUID] | None = None,
    require_active_product: bool = True,
) -> ProductFacts:
    """The product, after checking it and the warehouses exist (404) and are active (409)."""
    targets = await repository.load_targets(session, product_id, warehouse_ids)
    product = targets.product
    if product is None:
        raise ProductNotFound(product_id=str(product_id))
    for warehouse_id in warehouse_ids:
        if warehouse_id not in targets.warehouses_active:
            raise WarehouseNotFound(warehouse_id=str(warehouse_id))
    if require_active_product and not product.is_active:
        raise InactiveProduct(product_id=str(product_id))
    for warehouse_id in warehouse_ids if require_active is None else require_active:
        if not targets.warehouses_active[warehouse_id]:
            raise InactiveWarehouse(warehouse_id=str(warehouse_id))
    return product


def movement_event_data(movement: StockMovement) -> dict[str, Any]:
    """What a `stock.movement_posted` event carries. No costs: those need costs:read."""
    return {
        "movement_id": movement.id,
        "product_id": movement.product_id,
        "warehouse_id": movement.warehouse_id,
        "type": movement.type,
        "quantity": movement.quantity,
        "signed_quantity": movement.signed_quantity,
        "on_hand_after": movement.on_hand_after,
        "unit_price": movement.unit_price,
        "reference": movement.reference,
        "reverses_id": movement.reverses_id,
        "transfer_id": movement.transfer_id,
    }


async def _post(
    session: AsyncSession,
    ctx: Context,
    product: ProductFacts,
    warehouse_id: uuid.UUID,
    type_: MovementType,
    *,
    quantity: int,
    signed_quantity: int,
    in_transit_delta: int = 0,
    unit_cost: Any = None,
    unit_price: Any = None,
    reference: str | None = None,
    note: str | None = None,
    reverses_id: uuid.UUID | None = None,
    transfer_id: uuid.UUID | None = None,
) -> StockMovement:
    """Apply one signed change to a level and write its movement and events."""
    try:
        on_hand = await repository.apply_delta(
            session, product.id, warehouse_id, signed_quantity, in_transit_delta=in_transit_delta
        )
    except DBAPIError as exc:
        if _sqlstate(exc) == _NUMERIC_OUT_OF_RANGE:
            raise StockLimitExceeded() from None
        raise
    if on_hand is None:
        raise InsufficientStock(
            f"not enough stock: this {type_.value} needs {-signed_quantity} on hand",
            product_id=str(product.id),
            warehouse_id=str(warehouse_id),
        )
    movement = await repository.insert_movement(
        session,
        id=uuid7(),
        product_id=product.id,
        warehouse_id=warehouse_id,
        type=type_.value,
        quantity=quantity,
        signed_quantity=signed_quantity,
        on_hand_after=on_hand,
        unit_cost=unit_cost,
        unit_price=unit_price,
        reference=reference,
        note=note,
        reverses_id=reverses_id,
        transfer_id=transfer_id,
        created_by=_actor_id(ctx),
        request_id=ctx.request_id,
    )
    events.record(
        session,
        "stock.movement_posted",
        ctx,
        entity=("product", product.id),
        data=movement_event_data(movement),
    )
    before = on_hand - signed_quantity
    if before > product.reorder_point >= on_hand:
        events.record(
            session,
            "stock.level_low",
            ctx,
            entity=("product", product.id),
            data={
                "product_id": product.id,
                "warehouse_id": warehouse_id,
                "on_hand": on_hand,
                "reorder_point": product.reorder_point,
                "movement_id": movement.id,
            },
        )
    return movement


# --- movements -------------------------------------------------------------------------------


async def _post_movement(session: AsyncSession, data: MovementCreate, ctx: Context) -> MovementRead:
    product = await _checked_product(session, data.product_id, [data.warehouse_id])
    unit_cost = data.unit_cost
    unit_price = data.unit_price
    if data.type is MovementType.RECEIPT and unit_cost is None:
        unit_cost = product.cost_price
    if data.type in (MovementType.SALE, MovementType.RETURN) and unit_price is None:
        unit_price = product.sale_price
    movement = await _post(
        session,
        ctx,
        product,
        data.warehouse_id,
        data.type,
        quantity=data.quantity,
        signed_quantity=data.signed_quantity,
        unit_cost=unit_cost,
        unit_price=unit_price,
        reference=data.reference,
        note=data.note,
    )
    return MovementRead.model_validate(movement)


async def post_movement(session: AsyncSession, data: MovementCreate, ctx: Context) -> MovementRead:
    """Post one movement to the ledger (its own transaction). Used by the API and the seeder."""
    async with transaction(session):
        return await _post_movement(session, data, ctx)


async def post_movement_idempotent(
    session: AsyncSession, data: MovementCreate, ctx: Context, key: IdempotencyKey | None
) -> MovementRead | StoredResponse:
    """`post_movement`, replaying the stored response when `key` was already used."""
    return await run_idempotent(
        session, key, lambda: _post_movement(session, data, ctx), status=201
    )


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
    product = await _checked_product(session, original.product_id, [original.warehouse_id])
    delta = -original.signed_quantity
    try:
        reversal = await _post(
            session,
            ctx,
            product,
            original.warehouse_id,
            MovementType.ADJUSTMENT,
            quantity=delta,
            signed_quantity=delta,
            unit_cost=original.unit_cost,
            unit_price=original.unit_price,
            reference=original.reference,
            note=note or f"reversal of movement {original.id}",
            reverses_id=original.id,
        )
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
    return MovementRead.model_validate(reversal)


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


# --- levels ----------------------------------------------------------------------------------


async def list_levels(
    session: AsyncSession,
    *,
    product_id: uuid.UUID | None,
    warehouse_id: uuid.UUID | None,
    below_reorder: bool | None,
    page: PageParams,
) -> Page[StockLevelRead]:
    async with transaction(session):
        rows, total = await repository.list_levels(
            session,
            product_id=product_id,
            warehouse_id=warehouse_id,
            below_reorder=below_reorder,
            page=page,
        )
    return Page[StockLevelRead](
        items=[StockLevelRead.model_validate(r) for r in rows],
        total=total,
        page=page.page,
        page_size=page.page_size,
    )


async def list_low_stock(session: AsyncSession, page: PageParams) -> Page[LowStockProduct]:
    """Active products whose total on hand is at or below their reorder point."""
    async with transaction(session):
        rows, total = await repository.list_low_stock(session, page)
    return Page[LowStockProduct](
        items=[LowStockProduct.model_validate(r) for r in rows],
        total=total,
        page=page.page,
        page_size=page.page_size,
    )


async def count_low_stock_products(session: AsyncSession) -> int:
    """How many active products are at or below their reorder point (dashboard)."""
    async with transaction(session):
        return await repository.count_low_stock(session)


async def count_open_transfers(session: AsyncSession) -> int:
    """How many transfers are in transit (dashboard)."""
    async with transaction(session):
        return await repository.count_open_transfers(session)


# --- transfers -------------------------------------------------------------------------------


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
    product = await _checked_product(
        session, data.product_id, [data.from_warehouse_id, data.to_warehouse_id]
    )
    transfer = repository.add_transfer(
        session,
        id=uuid7(),
        product_id=data.product_id,
        from_warehouse_id=data.from_warehouse_id,
        to_warehouse_id=data.to_warehouse_id,
        quantity=data.quantity,
        reference=data.reference,
        note=data.note,
        created_by=_actor_id(ctx),
    )
    await session.flush()  # the movements below reference it; a refused debit rolls it back
    await _post(
        session,
        ctx,
        product,
        data.from_warehouse_id,
        MovementType.TRANSFER_OUT,
        quantity=data.quantity,
        signed_quantity=-data.quantity,
        in_transit_delta=data.quantity,
        reference=data.reference,
        note=data.note,
        transfer_id=transfer.id,
    )
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


async def _close_transfer(
    session: AsyncSession, transfer_id: uuid.UUID, status: TransferStatus, ctx: Context
) -> TransferRead:
    transfer = await repository.close_transfer(session, transfer_id, status, _actor_id(ctx))
    if transfer is None:
        current = await repository.get_transfer(session, transfer_id)
        if current is None:
            raise TransferNotFound()
        raise InvalidTransition(
            f"the transfer is {current.status}; only in_transit transfers can be "
            f"{'completed' if status is TransferStatus.COMPLETED else 'cancelled'}",
            status=current.status,
        )
    source = (transfer.product_id, transfer.from_warehouse_id)
    destination = (transfer.product_id, transfer.to_warehouse_id)
    completing = status is TransferStatus.COMPLETED
    product = await _checked_product(
        session,
        transfer.product_id,
        [transfer.from_warehouse_id, transfer.to_warehouse_id],
        # Goods already on the road must land somewhere: only a receiving warehouse must be
        # active, and the product may have been deactivated meanwhile.
        require_active=[transfer.to_warehouse_id] if completing else [],
        require_active_product=False,
    )
    for key in repository.level_lock_order([source, destination] if completing else [source]):
        if key == source and completing:
            released = await repository.apply_delta(
                session, *source, 0, in_transit_delta=-transfer.quantity
            )
            if released is None:
                raise RuntimeError(f"in-transit stock of transfer {transfer.id} is missing")
        elif key == source:
            await _post(
                session,
                ctx,
                product,
                transfer.from_warehouse_id,
                MovementType.TRANSFER_IN,
                quantity=transfer.quantity,
                signed_quantity=transfer.quantity,
                in_transit_delta=-transfer.quantity,
                reference=transfer.reference,
                note="transfer cancelled: returned to source",
                transfer_id=transfer.id,
            )
        else:
            await _post(
                session,
                ctx,
                product,
                transfer.to_warehouse_id,
                MovementType.TRANSFER_IN,
                quantity=transfer.quantity,
                signed_quantity=transfer.quantity,
                reference=transfer.reference,
                note=transfer.note,
                transfer_id=transfer.id,
            )
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
        transfer = await repository.get_transfer(session, transfer_id)
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
        rows, total = await repository.list_transfers(
            session, status=status, product_id=product_id, warehouse_id=warehouse_id, page=page
        )
    return Page[TransferRead](
        items=[TransferRead.model_validate(r) for r in rows],
        total=total,
        page=page.page,
        page_size=page.page_size,
    )


# --- counts ----------------------------------------------------------------------------------


def _count_event_data(count: StockCount) -> dict[str, Any]:
    return {
        "count_id": count.id,
        "product_id": count.product_id,
        "warehouse_id": count.warehouse_id,
        "expected": count.expected,
        "counted": count.counted,
        "variance": count.variance,
        "status": count.status,
        "movement_id": count.movement_id,
    }


async def _record_count(
    session: AsyncSession, data: CountCreate, ctx: Context, variance_threshold: int
) -> CountRead:
    product = await _checked_product(session, data.product_id, [data.warehouse_id])
    # The level row stays locked until commit: the expected quantity cannot move under us.
    expected = await repository.lock_level(session, data.product_id, data.warehouse_id)
    variance = data.counted_quantity - expected
    within = abs(variance) <= variance_threshold
    movement_id: uuid.UUID | None = None
    if within and variance != 0:
        movement = await _post(
            session,
            ctx,
            product,
            data.warehouse_id,
            MovementType.COUNT,
            quantity=variance,
            signed_quantity=variance,
            note=data.note,
        )
        movement_id = movement.id
    count = repository.add_count(
        session,
        product_id=data.product_id,
        warehouse_id=data.warehouse_id,
        expected=expected,
        counted=data.counted_quantity,
        variance=variance,
        status=(CountStatus.APPLIED if within else CountStatus.PENDING_REVIEW).value,
        note=data.note,
        movement_id=movement_id,
        created_by=_actor_id(ctx),
    )
    await session.flush()
    entity = ("stock_count", count.id)
    events.record(session, "count.recorded", ctx, entity=entity, data=_count_event_data(count))
    if within:
        events.record(session, "count.applied", ctx, entity=entity, data=_count_event_data(count))
    return CountRead.model_validate(count)


async def record_count(
    session: AsyncSession,
    data: CountCreate,
    ctx: Context,
    *,
    variance_threshold: int,
    key: IdempotencyKey | None = None,
) -> CountRead | StoredResponse:
    """Record a count: applied at once when abs(variance) <= threshold, else held for review."""
    return await run_idempotent(
        session, key, lambda: _record_count(session, data, ctx, variance_threshold), status=201
    )


async def _review_count(
    session: AsyncSession, count_id: uuid.UUID, approve: bool, ctx: Context
) -> CountRead:
    status = CountStatus.APPROVED if approve else CountStatus.REJECTED
    count = await repository.claim_pending_count(session, count_id, status, _actor_id(ctx))
    if count is None:
        current = await repository.get_count(session, count_id)
        if current is None:
            raise CountNotFound()
        raise InvalidTransition(
            f"the count is {current.status}; only pending_review counts can be reviewed",
            status=current.status,
        )
    if approve:
        product = await _checked_product(session, count.product_id, [count.warehouse_id])
        # The variance found by the count is applied as a delta to on hand *now*: movements
        # posted between the count and its approval stay in effect.
        movement = await _post(
            session,
            ctx,
            product,
            count.warehouse_id,
            MovementType.COUNT,
            quantity=count.variance,
            signed_quantity=count.variance,
            note=count.note,
        )
        count.movement_id = movement.id
    events.record(
        session,
        "count.approved" if approve else "count.rejected",
        ctx,
        entity=("stock_count", count.id),
        changes={"status": {"old": CountStatus.PENDING_REVIEW.value, "new": status.value}},
        data=_count_event_data(count),
    )
    return CountRead.model_validate(count)


async def review_count(
    session: AsyncSession,
    count_id: uuid.UUID,
    *,
    approve: bool,
    ctx: Context,
    key: IdempotencyKey | None = None,
) -> CountRead | StoredResponse:
    """Approve (apply the variance to the current on hand) or reject a pending count."""
    return await run_idempotent(
        session, key, lambda: _review_count(session, count_id, approve, ctx), status=200
    )


async def get_count(session: AsyncSession, count_id: uuid.UUID) -> CountRead:
    async with transaction(session):
        count = await repository.get_count(session, count_id)
        if count is None:
            raise CountNotFound()
        return CountRead.model_validate(count)


async def list_counts(
    session: AsyncSession,
    *,
    status: str | None,
    product_id: uuid.UUID | None,
    warehouse_id: uuid.UUID | None,
    page: PageParams,
) -> Page[CountRead]:
    async with transaction(session):
        rows, total = await repository.list_counts(
            session, status=status, product_id=product_id, warehouse_id=warehouse_id, page=page
        )
    return Page[CountRead](
        items=[CountRead.model_validate(r) for r in rows],
        total=total,
        page=page.page,
        page_size=page.page_size,
    )


async def ledger_drift(session: AsyncSession) -> list[Any]:
    """Levels that disagree with the ledger or with open transfers (empty when all is well)."""
    async with transaction(session):
        return await repository.ledger_drift(session)

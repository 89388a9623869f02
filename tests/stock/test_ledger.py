"""The posting primitive itself (`stock_post`, through stockroom.stock.ledger): each refusal
reason, all-or-nothing multi-line postings, running totals, events, and lock order."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.context import Actor, Context
from stockroom.events.models import OutboxEvent
from stockroom.http.errors import AppError
from stockroom.stock.ledger import Line, post_movements
from stockroom.stock.models import MovementType, StockLevel, StockMovement
from tests.factories.auth import make_user
from tests.factories.catalog import make_product, make_warehouse
from tests.factories.stock import make_stock
from tests.stock.live import live_app

CTX = Context.system("req-1")


def sale(product: Any, warehouse: Any, quantity: int, **extra: Any) -> Line:
    return Line(
        product_id=product.id,
        warehouse_id=warehouse.id,
        type=MovementType.SALE,
        quantity=quantity,
        signed_quantity=-quantity,
        default_price=True,
        **extra,
    )


def receipt(product: Any, warehouse: Any, quantity: int, **extra: Any) -> Line:
    return Line(
        product_id=product.id,
        warehouse_id=warehouse.id,
        type=MovementType.RECEIPT,
        quantity=quantity,
        signed_quantity=quantity,
        default_cost=True,
        **extra,
    )


async def counts(session: AsyncSession) -> tuple[int, int, int]:
    """Movements, outbox events and level rows in the database."""
    movements = await session.scalar(select(func.count()).select_from(StockMovement))
    events = await session.scalar(select(func.count()).select_from(OutboxEvent))
    levels = await session.scalar(select(func.count()).select_from(StockLevel))
    return int(movements or 0), int(events or 0), int(levels or 0)


async def on_hand(session: AsyncSession, product: Any, warehouse: Any) -> int | None:
    value = await session.scalar(
        select(StockLevel.on_hand).where(
            StockLevel.product_id == product.id, StockLevel.warehouse_id == warehouse.id
        )
    )
    return None if value is None else int(value)


async def refused(session: AsyncSession, lines: list[Line]) -> AppError:
    before = await counts(session)
    with pytest.raises(AppError) as caught:
        await post_movements(session, lines, CTX)
    assert await counts(session) == before, "a refused posting wrote something"
    return caught.value


async def test_a_sale_writes_its_movement_level_and_event(session: AsyncSession) -> None:
    user = await make_user(session)
    ctx = Context(actor=Actor(id=user.id, email=user.email), request_id="req-1")
    product = await make_product(session, reorder_point=5)
    warehouse = await make_warehouse(session)
    await make_stock(session, product, warehouse, 10)

    [movement] = await post_movements(session, [sale(product, warehouse, 3)], ctx)

    assert (movement.type, movement.signed_quantity, movement.on_hand_after) == ("sale", -3, 7)
    assert movement.unit_price == Decimal("10.00")  # the product's sale price
    assert movement.created_by == user.id
    assert movement.request_id == "req-1"
    assert await on_hand(session, product, warehouse) == 7
    stored = await session.get(StockMovement, movement.id)
    assert stored is not None
    assert stored.on_hand_after == 7
    events = (
        await session.scalars(select(OutboxEvent).where(OutboxEvent.type.like("stock.%")))
    ).all()
    assert [e.type for e in events] == ["stock.movement_posted"]
    payload = events[0].payload
    assert payload["actor"] == {"id": str(user.id), "email": user.email}
    assert payload["entity"] == {"type": "product", "id": str(product.id)}
    assert payload["request"]["id"] == "req-1"
    assert payload["data"]["movement_id"] == str(movement.id)
    assert payload["data"]["on_hand_after"] == 7
    assert payload["data"]["unit_price"] == "10.00"


async def test_crossing_the_reorder_point_adds_a_level_low_event(session: AsyncSession) -> None:
    product = await make_product(session, reorder_point=5)
    warehouse = await make_warehouse(session)
    await make_stock(session, product, warehouse, 8)

    # 8 -> 6 stays above the point; 6 -> 5 crosses it; 5 -> 4 is already below.
    for quantity in (2, 1, 1):
        await post_movements(session, [sale(product, warehouse, quantity)], CTX)

    low = (
        await session.scalars(select(OutboxEvent).where(OutboxEvent.type == "stock.level_low"))
    ).all()
    assert len(low) == 1
    assert low[0].payload["data"]["on_hand"] == 5
    assert low[0].payload["data"]["reorder_point"] == 5


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("unknown product", 404, "not_found"),
        ("unknown warehouse", 404, "not_found"),
        ("inactive product", 409, "inactive_product"),
        ("inactive warehouse", 409, "inactive_warehouse"),
        ("insufficient stock", 409, "insufficient_stock"),
        ("beyond the integer range", 409, "stock_limit_exceeded"),
    ],
)
async def test_each_refusal_reason_writes_nothing(
    session: AsyncSession, case: str, status: int, code: str
) -> None:
    product = await make_product(session, is_active=case != "inactive product")
    warehouse = await make_warehouse(session, is_active=case != "inactive warehouse")
    await make_stock(session, product, warehouse, 2_000_000_000)
    line = sale(product, warehouse, 1)
    if case == "unknown product":
        line = sale(type("P", (), {"id": uuid.uuid4()}), warehouse, 1)
    elif case == "unknown warehouse":
        line = sale(product, type("W", (), {"id": uuid.uuid4()}), 1)
    elif case == "insufficient stock":
        line = sale(product, warehouse, 2_000_000_001)
    elif case == "beyond the integer range":
        line = receipt(product, warehouse, 200_000_000)

    error = await refused(session, [line])

    assert (error.status, error.code) == (status, code)


async def test_a_missing_level_is_insufficient_for_a_sale_and_stays_missing(
    session: AsyncSession,
) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)

    error = await refused(session, [sale(product, warehouse, 1)])

    assert error.code == "insufficient_stock"
    assert await on_hand(session, product, warehouse) is None


async def test_a_receipt_creates_a_missing_level(session: AsyncSession) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)

    [movement] = await post_movements(session, [receipt(product, warehouse, 4)], CTX)

    assert movement.on_hand_after == 4
    assert movement.unit_cost == Decimal("4.00")  # the product's cost price
    assert await on_hand(session, product, warehouse) == 4


async def test_a_multi_line_posting_that_fails_on_its_last_line_writes_nothing(
    session: AsyncSession,
) -> None:
    product = await make_product(session)
    warehouses = [await make_warehouse(session) for _ in range(3)]
    for warehouse in warehouses:
        await make_stock(session, product, warehouse, 5)
    lines = [
        sale(product, warehouses[0], 5),
        receipt(product, warehouses[1], 7),
        sale(product, warehouses[2], 6),  # one more than on hand
    ]

    error = await refused(session, lines)

    assert error.code == "insufficient_stock"
    assert error.extra["line"] == 2
    assert error.extra["warehouse_id"] == str(warehouses[2].id)
    assert [await on_hand(session, product, w) for w in warehouses] == [5, 5, 5]


async def test_a_multi_line_posting_checks_every_target_before_writing(
    session: AsyncSession,
) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    inactive = await make_warehouse(session, is_active=False)
    await make_stock(session, product, warehouse, 5)
    lines = [
        sale(product, warehouse, 1),
        sale(product, inactive, 1),
        sale(product, type("W", (), {"id": uuid.uuid4()}), 1),
    ]

    error = await refused(session, lines)

    # Every 404 comes before any 409, whatever the line order.
    assert (error.status, error.extra["line"]) == (404, 2)


async def test_lines_on_one_level_run_in_order_and_every_step_must_hold(
    session: AsyncSession,
) -> None:
    product = await make_product(session, reorder_point=0)
    warehouse = await make_warehouse(session)
    await make_stock(session, product, warehouse, 3)

    movements = await post_movements(
        session,
        [sale(product, warehouse, 3), receipt(product, warehouse, 5), sale(product, warehouse, 2)],
        CTX,
    )
    assert [m.on_hand_after for m in movements] == [0, 5, 3]
    assert await on_hand(session, product, warehouse) == 3

    # The net change (-5 + 5) would be fine; the first step would not.
    error = await refused(session, [sale(product, warehouse, 5), receipt(product, warehouse, 5)])
    assert (error.code, error.extra["line"]) == ("insufficient_stock", 0)


async def test_in_transit_changes_and_level_only_lines(session: AsyncSession) -> None:
    product = await make_product(session)
    source = await make_warehouse(session)
    await make_stock(session, product, source, 10)
    out = Line(
        product_id=product.id,
        warehouse_id=source.id,
        type=MovementType.TRANSFER_OUT,
        quantity=4,
        signed_quantity=-4,
        in_transit_delta=4,
    )
    release = Line(
        product_id=product.id,
        warehouse_id=source.id,
        type=MovementType.TRANSFER_OUT,
        quantity=0,
        signed_quantity=0,
        in_transit_delta=-4,
    )

    assert len(await post_movements(session, [out], CTX)) == 1
    assert await post_movements(session, [release], CTX) == []  # no movement for a release

    level = await session.scalar(
        text("SELECT on_hand, in_transit_out FROM stock_levels WHERE product_id = :p"),
        {"p": product.id},
    )
    assert level == 6
    assert (await refused(session, [release])).code == "insufficient_stock"  # nothing in transit


async def test_opposing_multi_level_postings_never_deadlock(fresh_database: str) -> None:
    """Many concurrent postings each touching the same two levels in opposite line orders: with
    the rows locked in one global order they all commit (a cycle would fail one with 40P01)."""
    async with live_app(fresh_database) as live:
        product, (first, second) = await live.product_in(1000, 1000)

        async def move(forward: bool) -> None:
            lines = [sale(product, first, 1), receipt(product, second, 1)]
            async with live.sessionmaker() as session, session.begin():
                await post_movements(session, lines if forward else lines[::-1], CTX)
                # Hold both locks a moment, so that opposite orders would meet.
                await session.execute(text("SELECT pg_sleep(0.01)"))

        await asyncio.gather(*(move(i % 2 == 0) for i in range(40)))

        async with live.sessionmaker() as session:
            assert await on_hand(session, product, first) == 960
            assert await on_hand(session, product, second) == 1040


async def set_reserved(session: AsyncSession, product: Any, warehouse: Any, reserved: int) -> None:
    await session.execute(
        text("UPDATE stock_levels SET reserved = :r WHERE product_id = :p AND warehouse_id = :w"),
        {"r": reserved, "p": product.id, "w": warehouse.id},
    )


async def test_a_keep_reserved_line_takes_only_available_stock(session: AsyncSession) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    await make_stock(session, product, warehouse, 10)
    await set_reserved(session, product, warehouse, 7)

    error = await refused(session, [sale(product, warehouse, 4, keep_reserved=True)])
    assert (error.status, error.code) == (409, "insufficient_available")

    [movement] = await post_movements(
        session, [sale(product, warehouse, 3, keep_reserved=True)], CTX
    )
    assert movement.on_hand_after == 7
    # Without keep_reserved (damage, adjustments, counts) on hand may go below reserved.
    [damage] = await post_movements(
        session,
        [
            Line(
                product_id=product.id,
                warehouse_id=warehouse.id,
                type=MovementType.DAMAGE,
                quantity=2,
                signed_quantity=-2,
            )
        ],
        CTX,
    )
    assert damage.on_hand_after == 5


async def test_reserved_and_on_order_move_with_the_posting(session: AsyncSession) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    await make_stock(session, product, warehouse, 10)

    def level_only(**deltas: int) -> Line:
        return Line(
            product_id=product.id,
            warehouse_id=warehouse.id,
            type=MovementType.SALE,
            quantity=0,
            signed_quantity=0,
            keep_reserved=True,
            **deltas,
        )

    async def level() -> tuple[int, int, int]:
        row = (
            await session.execute(
                text(
                    "SELECT on_hand, reserved, on_order FROM stock_levels "
                    "WHERE product_id = :p AND warehouse_id = :w"
                ),
                {"p": product.id, "w": warehouse.id},
            )
        ).one()
        return int(row[0]), int(row[1]), int(row[2])

    # A confirmation reserves (available only), a shipment consumes its own reservation.
    assert await post_movements(session, [level_only(reserved_delta=8)], CTX) == []
    error = await refused(session, [level_only(reserved_delta=3)])
    assert error.code == "insufficient_available"
    [shipped] = await post_movements(
        session, [sale(product, warehouse, 8, reserved_delta=-8, keep_reserved=True)], CTX
    )
    assert shipped.on_hand_after == 2
    # A purchase order puts units on order; its receipt takes them off.
    await post_movements(session, [level_only(on_order_delta=5)], CTX)
    await post_movements(session, [receipt(product, warehouse, 5, on_order_delta=-5)], CTX)
    assert await level() == (7, 0, 0)

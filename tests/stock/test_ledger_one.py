"""`stock.ledger_one`, the hot path's posting: one line sent as typed parameters and the
movement answered as its response JSON, built by the server. It must write exactly what the
general path (`post_movements_now`, jsonb arguments built in Python) writes, refuse as it
refuses, and answer byte for byte what pydantic writes for the movement (`MovementRead`).
`post_line_as_now` also reads the principal in the same statement: it posts only for an active
user in a live session holding the permissions, and otherwise writes nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.auth.models import RefreshToken, User
from stockroom.auth.repository import TokenSession
from stockroom.context import Actor, Context
from stockroom.db.session import driver_connection
from stockroom.events.models import OutboxEvent
from stockroom.http.errors import AppError
from stockroom.stock import repository
from stockroom.stock.ledger import Line, post_movements_now
from stockroom.stock.ledger_one import post_line_as_now, post_line_json_now
from stockroom.stock.models import MovementType, StockMovement
from stockroom.stock.schemas import MovementRead
from tests.factories.auth import make_role, make_user, start_session
from tests.factories.catalog import make_product, make_warehouse
from tests.factories.stock import make_stock
from tests.stock.test_ledger import counts, receipt, sale

ODD_TEXT = 'a "quoted" \\ back\tslash\nnew line, é ✓ 😀 </script>'


def line(product: Any, warehouse: Any, type_: MovementType, signed: int, **extra: Any) -> Line:
    return Line(
        product_id=product.id,
        warehouse_id=warehouse.id,
        type=type_,
        quantity=abs(signed) if type_ is not MovementType.ADJUSTMENT else signed,
        signed_quantity=signed,
        **extra,
    )


@pytest.mark.parametrize("hide_cost", [False, True])
async def test_the_body_is_the_movements_json_byte_for_byte(
    session: AsyncSession, hide_cost: bool
) -> None:
    user = await make_user(session)
    contexts = [
        Context(
            actor=Actor(id=user.id, email=user.email),
            request_id='req-"1"',
            ip="10.0.0.1",
            user_agent="ua",
            method="POST",
            path="/api/v1/stock-movements",
        ),
        Context.system(),  # no actor, no request id: nulls
    ]
    product = await make_product(session, cost_price=Decimal("4.50"), sale_price=Decimal("9.99"))
    warehouse = await make_warehouse(session)
    await make_stock(session, product, warehouse, 100)
    connection = await driver_connection(session)
    lines = [
        receipt(product, warehouse, 3),  # the product's cost price
        receipt(product, warehouse, 2, unit_cost=Decimal("1.5"), reference="PO-1", note=ODD_TEXT),
        receipt(product, warehouse, 1, unit_cost=Decimal("1234567890.05")),
        sale(product, warehouse, 4, keep_reserved=True),  # the product's sale price
        line(product, warehouse, MovementType.RETURN, 1, unit_price=Decimal("0"), note=""),
        line(product, warehouse, MovementType.ADJUSTMENT, -7, reference=ODD_TEXT),
        line(product, warehouse, MovementType.DAMAGE, -1),
    ]

    for ctx in contexts:
        for posting in lines:
            posted = await post_line_json_now(connection, posting, ctx, hide_cost=hide_cost)

            orm = await repository.get_movement(session, posted.id)
            assert orm is not None
            expected = MovementRead.model_validate(orm).model_dump_json(
                exclude={"unit_cost"} if hide_cost else None
            )
            assert posted.body == expected


def _normalized(value: Any, names: dict[str, str]) -> Any:
    """`value` with the ids in `names` replaced by their names (two postings on two levels
    compare equal when they did the same thing)."""
    if isinstance(value, dict):
        return {k: _normalized(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalized(v, names) for v in value]
    return names.get(str(value), value)


async def _written(session: AsyncSession, movement_id: uuid.UUID) -> tuple[Any, ...]:
    movement = await session.get(StockMovement, movement_id)
    assert movement is not None
    events = (
        await session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.payload["data"]["movement_id"].astext == str(movement_id))
            .order_by(OutboxEvent.id)
        )
    ).all()
    names = {
        str(movement.id): "movement",
        str(movement.product_id): "product",
        str(movement.warehouse_id): "warehouse",
    }
    row = {
        c.key: getattr(movement, c.key)
        for c in StockMovement.__table__.columns
        if c.key not in {"id", "product_id", "warehouse_id", "created_at"}
    }
    payloads = []
    for event in events:
        payload = dict(event.payload)
        for unique in ("id", "occurred_at"):
            payload.pop(unique)
        payloads.append((event.type, _normalized(payload, names)))
    return row, payloads


async def test_it_writes_what_the_general_path_writes(session: AsyncSession) -> None:
    user = await make_user(session)
    ctx = Context(
        actor=Actor(id=user.id, email=user.email),
        request_id="req-same",
        ip="10.0.0.2",
        user_agent='agent "x"',
        method="POST",
        path="/api/v1/stock-movements",
    )
    product = await make_product(session, reorder_point=5, sale_price=Decimal("12.25"))
    general, one = await make_warehouse(session), await make_warehouse(session)
    for warehouse in (general, one):
        await make_stock(session, product, warehouse, 6)
    connection = await driver_connection(session)

    # 6 -> 5 crosses the reorder point: a movement_posted and a level_low event each.
    types = []
    for make_line in (
        lambda w: sale(product, w, 1, reference="SO-1", keep_reserved=True),
        lambda w: receipt(product, w, 4, unit_cost=Decimal("3.10"), note=ODD_TEXT),
        lambda w: line(product, w, MovementType.ADJUSTMENT, -2),
    ):
        [by_general] = await post_movements_now(connection, [make_line(general)], ctx)
        by_one = await post_line_json_now(connection, make_line(one), ctx, hide_cost=False)

        general_written = await _written(session, by_general.id)
        one_written = await _written(session, by_one.id)
        assert one_written == general_written
        types.append([t for t, _ in one_written[1]])
    assert types[0] == ["stock.movement_posted", "stock.level_low"]
    assert types[1:] == [["stock.movement_posted"]] * 2


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("unknown product", 404, "not_found"),
        ("unknown warehouse", 404, "not_found"),
        ("inactive product", 409, "inactive_product"),
        ("inactive warehouse", 409, "inactive_warehouse"),
        ("insufficient stock", 409, "insufficient_stock"),
        ("reserved stock", 409, "insufficient_available"),
        ("beyond the integer range", 409, "stock_limit_exceeded"),
    ],
)
async def test_each_refusal_is_the_general_paths_and_writes_nothing(
    session: AsyncSession, case: str, status: int, code: str
) -> None:
    product = await make_product(session, is_active=case != "inactive product")
    warehouse = await make_warehouse(session, is_active=case != "inactive warehouse")
    await make_stock(session, product, warehouse, 2_000_000_000)
    posting = sale(product, warehouse, 1, keep_reserved=True)
    if case == "unknown product":
        posting = sale(type("P", (), {"id": uuid.uuid4()}), warehouse, 1)
    elif case == "unknown warehouse":
        posting = sale(product, type("W", (), {"id": uuid.uuid4()}), 1)
    elif case == "insufficient stock":
        posting = sale(product, warehouse, 2_000_000_001)
    elif case == "reserved stock":
        posting = sale(product, warehouse, 1_500_000_000, keep_reserved=True)
        await post_movements_now(
            await driver_connection(session),
            [line(product, warehouse, MovementType.SALE, 0, reserved_delta=600_000_000)],
            Context.system(),
        )
    elif case == "beyond the integer range":
        posting = receipt(product, warehouse, 200_000_000)
    connection = await driver_connection(session)
    before = await counts(session)

    errors = []
    for post in (
        lambda: post_movements_now(connection, [posting], Context.system()),
        lambda: post_line_json_now(connection, posting, Context.system(), hide_cost=True),
    ):
        with pytest.raises(AppError) as caught:
            async with connection.transaction():  # a savepoint: 22003 aborts the statement
                await post()
        errors.append(caught.value)

    assert await counts(session) == before
    general, one = ((e.status, e.code, e.detail, e.extra) for e in errors)
    assert one == general
    assert general[:2] == (status, code)


ORIGIN = Context(
    request_id="req-as",
    ip="10.0.0.3",
    user_agent="ua",
    method="POST",
    path="/api/v1/stock-movements",
)


async def _token(session: AsyncSession, user: User) -> TokenSession:
    return TokenSession(await start_session(session, user.id), datetime.now(UTC))


@pytest.mark.parametrize(("roles", "hidden"), [(["admin"], False), (["staff"], True)])
async def test_as_a_principal_it_posts_with_the_users_actor_and_cost_visibility(
    session: AsyncSession, roles: list[str], hidden: bool
) -> None:
    user = await make_user(session, roles=roles)
    token = await _token(session, user)
    product = await make_product(session, cost_price=Decimal("4.50"))
    warehouse = await make_warehouse(session)
    connection = await driver_connection(session)

    posted = await post_line_as_now(
        connection, receipt(product, warehouse, 3), ORIGIN, user.id, token, ["stock:write"]
    )

    assert posted is not None
    orm = await repository.get_movement(session, posted.id)
    assert orm is not None
    assert orm.created_by == user.id
    assert orm.request_id == "req-as"
    exclude = {"unit_cost"} if hidden else None
    assert posted.body == MovementRead.model_validate(orm).model_dump_json(exclude=exclude)
    [event] = (
        await session.scalars(
            select(OutboxEvent).where(
                OutboxEvent.payload["data"]["movement_id"].astext == str(posted.id)
            )
        )
    ).all()
    assert event.payload["actor"] == {"id": str(user.id), "email": user.email}
    assert event.payload["request"]["ip"] == "10.0.0.3"


@pytest.mark.parametrize(
    "case",
    [
        "unknown user",
        "inactive user",
        "session revoked",
        "token before the password change",
        "missing permission",
        "missing one of two permissions",
    ],
)
async def test_a_refused_principal_posts_nothing(session: AsyncSession, case: str) -> None:
    user = await make_user(session, roles=["staff"], is_active=case != "inactive user")
    token = await _token(session, user)
    user_id = uuid.uuid4() if case == "unknown user" else user.id
    permissions = ["stock:write"]
    if case == "session revoked":
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == token.session_id)
            .values(revoked_at=datetime.now(UTC))
        )
    elif case == "token before the password change":
        user.sessions_valid_after = token.issued_at + timedelta(seconds=1)
        await session.flush()
    elif case == "missing permission":
        permissions = ["stock:adjust"]
    elif case == "missing one of two permissions":
        permissions = ["stock:write", "costs:read"]
    product, warehouse = await make_product(session), await make_warehouse(session)
    await make_stock(session, product, warehouse, 5)
    connection = await driver_connection(session)
    before = await counts(session)

    posted = await post_line_as_now(
        connection, sale(product, warehouse, 1), ORIGIN, user_id, token, permissions
    )

    assert posted is None
    assert await counts(session) == before


async def test_as_a_principal_a_ledger_refusal_is_raised_and_writes_nothing(
    session: AsyncSession,
) -> None:
    user = await make_user(session, roles=[await make_role(session, ["stock:write"])])
    token = await _token(session, user)
    product, warehouse = await make_product(session), await make_warehouse(session)
    await make_stock(session, product, warehouse, 1)
    connection = await driver_connection(session)
    before = await counts(session)

    with pytest.raises(AppError) as caught:
        await post_line_as_now(
            connection, sale(product, warehouse, 2), ORIGIN, user.id, token, ["stock:write"]
        )

    assert (caught.value.status, caught.value.code) == (409, "insufficient_stock")
    assert await counts(session) == before

"""`stock_post_keyed` (migration 0014, through `ledger.post_movement_keyed_now`): the key's claim,
lookup, the posting and the stored response in one statement. Its HTTP behaviour (replay,
reuse, in-flight duplicates, concurrency) is tests/http/test_idempotency.py; here: the stored
body is exactly the movement's `MovementRead` JSON, and each outcome writes what it should."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.context import Actor, Context
from stockroom.db.session import driver_connection
from stockroom.idempotency import (
    IdempotencyKey,
    IdempotencyKeyRecord,
    IdempotencyKeyReused,
    StoredResponse,
)
from stockroom.idempotency import repository as idempotency_repository
from stockroom.stock import repository
from stockroom.stock.errors import InsufficientStock
from stockroom.stock.ledger import post_movement_keyed_now
from stockroom.stock.models import StockMovement
from stockroom.stock.schemas import MovementRead
from stockroom.types import utcnow
from tests.factories.auth import make_user
from tests.factories.catalog import make_product, make_warehouse
from tests.factories.stock import make_stock
from tests.stock.test_ledger import receipt, sale


def claim_of(user_id: uuid.UUID, key: str, request_hash: str = "h1") -> IdempotencyKey:
    return IdempotencyKey(
        user_id=user_id,
        route="POST /api/v1/stock-movements",
        key=key,
        request_hash=request_hash,
        ttl=timedelta(hours=24),
    )


async def movement_count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(StockMovement)) or 0)


async def stored_keys(session: AsyncSession, key: str) -> list[Any]:
    rows = await session.execute(
        select(IdempotencyKeyRecord.response_status, IdempotencyKeyRecord.response_body).where(
            IdempotencyKeyRecord.key == key
        )
    )
    return list(rows.all())


async def test_the_stored_body_is_the_movements_own_json(session: AsyncSession) -> None:
    user = await make_user(session)
    ctx = Context(actor=Actor(id=user.id, email=user.email), request_id="req-keyed")
    product = await make_product(session, cost_price=Decimal("4.50"), sale_price=Decimal("9.99"))
    warehouse = await make_warehouse(session)
    await make_stock(session, product, warehouse, 10)
    connection = await driver_connection(session)
    lines = [
        receipt(product, warehouse, 3),  # the product's cost price
        receipt(product, warehouse, 2, unit_cost=Decimal("1.05"), reference="PO-1", note="n"),
        sale(product, warehouse, 4),  # the product's sale price
    ]

    for index, line in enumerate(lines):
        fresh = await post_movement_keyed_now(connection, line, ctx, claim_of(user.id, f"k{index}"))

        assert isinstance(fresh, MovementRead)
        orm = await repository.get_movement(session, fresh.id)
        assert orm is not None
        expected = MovementRead.model_validate(orm).model_dump(mode="json")
        [(status, body)] = await stored_keys(session, f"k{index}")
        assert status == 201
        assert body == expected
        assert fresh.model_dump(mode="json") == expected
    assert expected["unit_price"] == "9.99"


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 12, 2, 21, 4, 5, tzinfo=UTC),
        datetime(2026, 12, 2, 21, 4, 5, 5, tzinfo=UTC),
        datetime(2026, 12, 2, 21, 4, 5, 120000, tzinfo=UTC),
        datetime(1999, 1, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
async def test_times_are_written_as_pydantic_writes_them(
    session: AsyncSession, moment: datetime
) -> None:
    class At(BaseModel):
        at: datetime

    written = await session.scalar(text("SELECT stock_json_time(:t)"), {"t": moment})

    assert written == At(at=moment).model_dump(mode="json")["at"]


async def test_the_same_key_replays_and_another_request_is_refused(
    session: AsyncSession,
) -> None:
    user = await make_user(session)
    ctx = Context(actor=Actor(id=user.id, email=user.email))
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    await make_stock(session, product, warehouse, 10)
    connection = await driver_connection(session)
    claim = claim_of(user.id, "replay-me")

    fresh = await post_movement_keyed_now(connection, sale(product, warehouse, 2), ctx, claim)
    before = await movement_count(session)
    replay = await post_movement_keyed_now(connection, sale(product, warehouse, 2), ctx, claim)
    with pytest.raises(IdempotencyKeyReused):
        await post_movement_keyed_now(
            connection, sale(product, warehouse, 3), ctx, claim_of(user.id, "replay-me", "h2")
        )

    assert isinstance(replay, StoredResponse)
    assert replay.status == 201
    assert isinstance(fresh, MovementRead)
    assert replay.body == fresh.model_dump(mode="json")
    assert await movement_count(session) == before


async def test_a_refused_posting_writes_neither_movement_nor_key(session: AsyncSession) -> None:
    user = await make_user(session)
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    await make_stock(session, product, warehouse, 1)
    connection = await driver_connection(session)
    before = await movement_count(session)

    with pytest.raises(InsufficientStock):
        await post_movement_keyed_now(
            connection, sale(product, warehouse, 5), Context(), claim_of(user.id, "no-stock")
        )

    assert await movement_count(session) == before
    assert await stored_keys(session, "no-stock") == []


async def test_an_expired_key_is_posted_again_and_expired_keys_are_pruned(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await make_user(session)
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    await make_stock(session, product, warehouse, 10)
    connection = await driver_connection(session)
    ctx = Context(actor=Actor(id=user.id, email=user.email))
    old = claim_of(user.id, "old")
    first = await post_movement_keyed_now(connection, sale(product, warehouse, 1), ctx, old)
    other = await post_movement_keyed_now(
        connection, sale(product, warehouse, 1), ctx, claim_of(user.id, "other-old")
    )
    await session.execute(
        update(IdempotencyKeyRecord)
        .where(IdempotencyKeyRecord.key.in_(["old", "other-old"]))
        .values(created_at=utcnow() - timedelta(hours=25))
    )
    monkeypatch.setattr(idempotency_repository, "prune_now", lambda: True)

    again = await post_movement_keyed_now(connection, sale(product, warehouse, 1), ctx, old)

    assert isinstance(first, MovementRead)
    assert isinstance(other, MovementRead)
    assert isinstance(again, MovementRead)
    assert again.id != first.id
    assert again.on_hand_after == first.on_hand_after - 2
    [(status, body)] = await stored_keys(session, "old")
    assert (status, body["id"]) == (201, str(again.id))
    assert await stored_keys(session, "other-old") == []  # pruned with the claim

"""Idempotency keys: replay, reuse with another body, in-flight duplicates, scope and expiry."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from stockroom.idempotency import IdempotencyKey, IdempotencyKeyRecord, prune_expired
from stockroom.types import utcnow
from tests.conftest import ClientAs
from tests.factories.catalog import make_product, make_warehouse
from tests.factories.stock import make_stock
from tests.stock.live import live_app
from tests.stock.test_movements import assert_problem, on_hand

URL = "/api/v1/stock-movements"


def sale(product: Any, warehouse: Any, quantity: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "product_id": str(product.id),
        "warehouse_id": str(warehouse.id),
        "type": "sale",
        "quantity": quantity,
        **extra,
    }


async def movements_of(session: AsyncSession, product_id: uuid.UUID) -> int:
    value = await session.scalar(
        text("SELECT count(*) FROM stock_movements WHERE product_id = :p"), {"p": product_id}
    )
    return int(value or 0)


async def test_same_key_and_body_replays_the_first_response(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    await make_stock(session, product, warehouse, 10)
    staff = await client_as("staff")
    headers = {"Idempotency-Key": "sale-0001"}

    first = await staff.post(URL, json=sale(product, warehouse, 2), headers=headers)
    # Same content, other key order: still the same request.
    body = sale(product, warehouse, 2)
    retry = await staff.post(URL, json=dict(reversed(body.items())), headers=headers)

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.headers["location"] == first.headers["location"]
    assert await on_hand(session, product.id, warehouse.id) == 8
    assert await movements_of(session, product.id) == 2  # the receipt and one sale


async def test_same_key_with_another_body_is_422(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    await make_stock(session, product, warehouse, 10)
    staff = await client_as("staff")
    headers = {"Idempotency-Key": "sale-0002"}

    await staff.post(URL, json=sale(product, warehouse, 2), headers=headers)
    reused = await staff.post(URL, json=sale(product, warehouse, 3), headers=headers)

    assert_problem(reused, 422, "idempotency_key_reused")
    assert await on_hand(session, product.id, warehouse.id) == 8


async def test_keys_are_scoped_to_the_user(client_as: ClientAs, session: AsyncSession) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    await make_stock(session, product, warehouse, 10)
    alice = await client_as("staff")
    bob = await client_as("staff")
    headers = {"Idempotency-Key": "shared-key"}

    first = await alice.post(URL, json=sale(product, warehouse), headers=headers)
    second = await bob.post(URL, json=sale(product, warehouse), headers=headers)

    assert first.json()["id"] != second.json()["id"]
    assert await on_hand(session, product.id, warehouse.id) == 8


async def test_validation_failures_are_not_stored(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    await make_stock(session, product, warehouse, 10)
    staff = await client_as("staff")
    headers = {"Idempotency-Key": "fix-and-retry"}

    invalid = await staff.post(URL, json=sale(product, warehouse, 0), headers=headers)
    fixed = await staff.post(URL, json=sale(product, warehouse, 1), headers=headers)

    assert_problem(invalid, 422, "validation_error")
    assert fixed.status_code == 201
    assert await on_hand(session, product.id, warehouse.id) == 9


async def test_a_refused_request_replays_its_refusal(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    await make_stock(session, product, warehouse, 1)
    staff = await client_as("staff")
    headers = {"Idempotency-Key": "too-big"}

    refused = await staff.post(URL, json=sale(product, warehouse, 5), headers=headers)
    await make_stock(session, product, warehouse, 10)
    retry = await staff.post(URL, json=sale(product, warehouse, 5), headers=headers)

    assert_problem(refused, 409, "insufficient_stock")
    assert_problem(retry, 409, "insufficient_stock")
    assert retry.json()["request_id"] == refused.json()["request_id"]
    assert await on_hand(session, product.id, warehouse.id) == 11


async def test_key_length_is_validated(client_as: ClientAs, session: AsyncSession) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    await make_stock(session, product, warehouse, 1)
    staff = await client_as("staff")

    too_long = await staff.post(
        URL, json=sale(product, warehouse), headers={"Idempotency-Key": "k" * 256}
    )
    empty = await staff.post(URL, json=sale(product, warehouse), headers={"Idempotency-Key": ""})

    assert_problem(too_long, 422, "validation_error")
    assert_problem(empty, 422, "validation_error")
    assert await on_hand(session, product.id, warehouse.id) == 1


async def test_transfer_actions_replay_and_refuse_another_target(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product = await make_product(session)
    source = await make_warehouse(session)
    destination = await make_warehouse(session)
    await make_stock(session, product, source, 10)
    staff = await client_as("staff")
    body = {
        "product_id": str(product.id),
        "from_warehouse_id": str(source.id),
        "to_warehouse_id": str(destination.id),
        "quantity": 3,
    }
    create_key = {"Idempotency-Key": "transfer-1"}
    created = await staff.post("/api/v1/stock-transfers", json=body, headers=create_key)
    replayed = await staff.post("/api/v1/stock-transfers", json=body, headers=create_key)
    other = (await staff.post("/api/v1/stock-transfers", json=body)).json()
    tid = created.json()["id"]
    key = {"Idempotency-Key": "complete-1"}

    completed = await staff.post(f"/api/v1/stock-transfers/{tid}/complete", headers=key)
    again = await staff.post(f"/api/v1/stock-transfers/{tid}/complete", headers=key)
    elsewhere = await staff.post(f"/api/v1/stock-transfers/{other['id']}/complete", headers=key)

    assert replayed.json()["id"] == tid
    assert completed.status_code == again.status_code == 200
    assert again.json() == completed.json()
    assert_problem(elsewhere, 422, "idempotency_key_reused")
    assert await on_hand(session, product.id, source.id) == 4
    assert await on_hand(session, product.id, destination.id) == 3


async def test_expired_keys_are_pruned_and_can_be_used_again(
    client_as: ClientAs, session: AsyncSession
) -> None:
    product = await make_product(session)
    warehouse = await make_warehouse(session)
    await make_stock(session, product, warehouse, 10)
    staff = await client_as("staff")
    headers = {"Idempotency-Key": "old-key"}
    first = await staff.post(URL, json=sale(product, warehouse), headers=headers)
    await session.execute(
        update(IdempotencyKeyRecord)
        .where(IdempotencyKeyRecord.key == "old-key")
        .values(created_at=utcnow() - timedelta(hours=25))
    )

    fresh = await staff.post(URL, json=sale(product, warehouse), headers=headers)
    await session.execute(
        update(IdempotencyKeyRecord)
        .where(IdempotencyKeyRecord.key == "old-key")
        .values(created_at=utcnow() - timedelta(hours=25))
    )
    pruned = await prune_expired(session, timedelta(hours=24))

    assert fresh.json()["id"] != first.json()["id"]
    assert pruned >= 1
    left = await session.scalar(
        select(IdempotencyKeyRecord.key).where(IdempotencyKeyRecord.key == "old-key")
    )
    assert left is None


async def test_a_retry_while_the_first_is_running_is_409(fresh_database: str) -> None:
    async with live_app(fresh_database) as live:
        product, (warehouse,) = await live.product_in(10)
        staff = await live.client("staff")
        user_id = await live.scalar("SELECT id FROM users ORDER BY created_at DESC LIMIT 1")
        claim = IdempotencyKey(
            user_id=user_id,
            route="POST /api/v1/stock-movements",
            key="busy",
            request_hash="",
            ttl=timedelta(hours=24),
        )
        # Another transaction holds the key's claim, as a first request still running would.
        async with live.sessionmaker() as holder, holder.begin():
            await holder.execute(select(text(f"pg_advisory_xact_lock({claim.lock_id})")))
            busy = await staff.post(
                URL, json=sale(product, warehouse), headers={"Idempotency-Key": "busy"}
            )
        after = await staff.post(
            URL, json=sale(product, warehouse), headers={"Idempotency-Key": "busy"}
        )

        assert_problem(busy, 409, "idempotency_request_in_progress")
        assert after.status_code == 201
        await staff.aclose()


async def test_concurrent_duplicates_never_create_two_movements(fresh_database: str) -> None:
    async with live_app(fresh_database) as live:
        product, (warehouse,) = await live.product_in(100)
        clients = await live.clients(8, "staff")
        headers = {"Idempotency-Key": "storm"}

        responses = await asyncio.gather(
            *(
                clients[i % len(clients)].post(URL, json=sale(product, warehouse), headers=headers)
                for i in range(30)
            )
        )

        statuses = [r.status_code for r in responses]
        created = {r.json()["id"] for r in responses if r.status_code == 201}
        assert set(statuses) <= {201, 409}, statuses
        assert len(created) == 1
        assert all(
            r.json()["code"] == "idempotency_request_in_progress"
            for r in responses
            if r.status_code == 409
        )
        sales = await live.scalar(
            "SELECT count(*) FROM stock_movements WHERE product_id = :p AND type = 'sale'",
            p=product.id,
        )
        assert sales == 1
        assert (
            await live.scalar(
                "SELECT on_hand FROM stock_levels WHERE product_id = :p", p=product.id
            )
            == 99
        )
        for c in clients:
            await c.aclose()

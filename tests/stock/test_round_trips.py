"""Database round trips per request, counted on the wire (a proxy between the app and
PostgreSQL): a posting is one round trip for the ledger work plus one for the caller's
principal, with or without an `Idempotency-Key`; reads of the caller are one, a product by id
two."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from tests.stock.live import live_app
from tests.support.wire import RoundTripCounter, round_trip_counter

MOVEMENTS = "/api/v1/stock-movements"
REPEAT = 5


async def per_request(
    counter: RoundTripCounter, send: Callable[[int], Awaitable[httpx.Response]], status: int
) -> float:
    """Round trips of one request, over REPEAT requests after a warm-up (the first uses of a
    pooled connection prepare their statements: extra round trips that a busy server pays
    once per connection, not per request)."""
    for i in range(3):
        assert (await send(i)).status_code == status
    counter.reset()
    for i in range(REPEAT):
        response = await send(100 + i)
        assert response.status_code == status, response.text
    return counter.round_trips / REPEAT


async def test_round_trips_of_a_movement_a_keyed_movement_users_me_and_a_product(
    fresh_database: str,
) -> None:
    async with round_trip_counter(fresh_database) as counter:
        # One pooled connection: every request reuses its prepared statements.
        async with live_app(
            counter.url_for(fresh_database), database_pool_size=1, database_max_overflow=0
        ) as live:
            product, (warehouse,) = await live.product_in(100)
            client = await live.client("staff")
            body: dict[str, Any] = {
                "product_id": str(product.id),
                "warehouse_id": str(warehouse.id),
                "type": "receipt",
                "quantity": 1,
            }

            async def post(_: int) -> httpx.Response:
                return await client.post(MOVEMENTS, json=body)

            async def post_keyed(_: int) -> httpx.Response:
                return await client.post(
                    MOVEMENTS, json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
                )

            async def me(_: int) -> httpx.Response:
                return await client.get("/api/v1/users/me")

            async def get_product(_: int) -> httpx.Response:
                return await client.get(f"/api/v1/products/{product.id}")

            # The principal (with its session checks) and the stock_post call in one statement
            # (stock.ledger_one.post_line_as_now), its own transaction: no BEGIN, no COMMIT.
            assert await per_request(counter, post, 201) == 1
            # The key's claim, lookup, the posting and the stored response are one call of
            # stock_post_keyed (migration 0014), its own transaction, after the principal: the key
            # costs one more round trip (issue 14 allows one).
            assert await per_request(counter, post_keyed, 201) == 2
            # The profile and the same session checks in one query, on the driver connection.
            assert await per_request(counter, me, 200) == 1
            # The principal, then the product, its on hand and its stock per warehouse in one
            # precompiled statement of its own (was BEGIN, two statements, COMMIT).
            assert await per_request(counter, get_product, 200) == 2
            await client.aclose()
            on_hand = await live.scalar(
                "SELECT on_hand FROM stock_levels WHERE product_id = :p AND warehouse_id = :w",
                p=product.id,
                w=warehouse.id,
            )
            assert on_hand == 100 + 2 * (3 + REPEAT)

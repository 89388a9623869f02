"""Real concurrent requests with real commits: nothing oversells, nothing happens twice, nothing
deadlocks."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from typing import Any

import httpx

from tests.stock.live import LiveApp, live_app

MOVEMENTS = "/api/v1/stock-movements"
TRANSFERS = "/api/v1/stock-transfers"


async def close_all(clients: list[httpx.AsyncClient]) -> None:
    for c in clients:
        await c.aclose()


async def level(live: LiveApp, product_id: Any, warehouse_id: Any) -> tuple[int, int, int]:
    """on hand, in transit out, and the ledger sum of one level."""
    on_hand = await live.scalar(
        "SELECT coalesce(max(on_hand), 0) FROM stock_levels WHERE product_id = :p "
        "AND warehouse_id = :w",
        p=product_id,
        w=warehouse_id,
    )
    in_transit = await live.scalar(
        "SELECT coalesce(max(in_transit_out), 0) FROM stock_levels WHERE product_id = :p "
        "AND warehouse_id = :w",
        p=product_id,
        w=warehouse_id,
    )
    ledger = await live.scalar(
        "SELECT coalesce(sum(signed_quantity), 0) FROM stock_movements WHERE product_id = :p "
        "AND warehouse_id = :w",
        p=product_id,
        w=warehouse_id,
    )
    return int(on_hand), int(in_transit), int(ledger)


async def test_200_concurrent_sales_against_50_on_hand_sell_exactly_50(
    fresh_database: str,
) -> None:
    async with live_app(fresh_database) as live:
        product, (warehouse,) = await live.product_in(50)
        clients = await live.clients(10, "staff")
        body = {
            "product_id": str(product.id),
            "warehouse_id": str(warehouse.id),
            "type": "sale",
            "quantity": 1,
        }

        responses = await asyncio.gather(
            *(clients[i % len(clients)].post(MOVEMENTS, json=body) for i in range(200))
        )

        statuses = Counter(r.status_code for r in responses)
        assert statuses == {201: 50, 409: 150}, statuses
        assert {r.json()["code"] for r in responses if r.status_code == 409} == {
            "insufficient_stock"
        }
        assert sorted(r.json()["on_hand_after"] for r in responses if r.status_code == 201) == (
            list(range(50))
        )
        assert await level(live, product.id, warehouse.id) == (0, 0, 0)
        await close_all(clients)


async def test_concurrent_complete_and_cancel_of_one_transfer_has_one_winner(
    fresh_database: str,
) -> None:
    async with live_app(fresh_database) as live:
        product, (source, destination) = await live.product_in(10, 0)
        clients = await live.clients(10, "staff")
        transfer = (
            await clients[0].post(
                TRANSFERS,
                json={
                    "product_id": str(product.id),
                    "from_warehouse_id": str(source.id),
                    "to_warehouse_id": str(destination.id),
                    "quantity": 6,
                },
            )
        ).json()
        actions = itertools.cycle(["complete", "cancel"])

        responses = await asyncio.gather(
            *(
                clients[i % len(clients)].post(f"{TRANSFERS}/{transfer['id']}/{next(actions)}")
                for i in range(20)
            )
        )

        statuses = Counter(r.status_code for r in responses)
        assert statuses == {200: 1, 409: 19}, statuses
        winner = next(r.json() for r in responses if r.status_code == 200)
        if winner["status"] == "completed":
            assert await level(live, product.id, source.id) == (4, 0, 4)
            assert await level(live, product.id, destination.id) == (6, 0, 6)
        else:
            assert winner["status"] == "cancelled"
            assert await level(live, product.id, source.id) == (10, 0, 10)
            assert await level(live, product.id, destination.id) == (0, 0, 0)
        movements = await live.scalar(
            "SELECT count(*) FROM stock_movements WHERE transfer_id = :t", t=transfer["id"]
        )
        assert movements == 2  # the debit and exactly one credit
        await close_all(clients)


async def test_opposite_transfers_never_deadlock_and_conserve_stock(fresh_database: str) -> None:
    async with live_app(fresh_database) as live:
        product, (east, west) = await live.product_in(200, 200)
        clients = await live.clients(10, "staff")

        def body(source: Any, destination: Any) -> dict[str, Any]:
            return {
                "product_id": str(product.id),
                "from_warehouse_id": str(source.id),
                "to_warehouse_id": str(destination.id),
                "quantity": 3,
            }

        created = await asyncio.gather(
            *(
                clients[i % len(clients)].post(
                    TRANSFERS, json=body(east, west) if i % 2 else body(west, east)
                )
                for i in range(40)
            )
        )
        assert {r.status_code for r in created} == {201}
        ids = [r.json()["id"] for r in created]

        closed = await asyncio.gather(
            *(
                clients[i % len(clients)].post(
                    f"{TRANSFERS}/{tid}/{'complete' if i % 3 else 'cancel'}"
                )
                for i, tid in enumerate(ids)
            )
        )

        assert {r.status_code for r in closed} == {200}, [r.text for r in closed]
        east_level = await level(live, product.id, east.id)
        west_level = await level(live, product.id, west.id)
        assert east_level[0] == east_level[2]
        assert west_level[0] == west_level[2]
        assert east_level[1] == west_level[1] == 0
        assert east_level[0] + west_level[0] == 400
        await close_all(clients)


async def test_transfers_racing_sales_on_both_ends_conserve_stock(fresh_database: str) -> None:
    async with live_app(fresh_database) as live:
        product, (east, west) = await live.product_in(60, 60)
        clients = await live.clients(10, "staff")
        transfers = [
            (
                await clients[0].post(
                    TRANSFERS,
                    json={
                        "product_id": str(product.id),
                        "from_warehouse_id": str(a.id),
                        "to_warehouse_id": str(b.id),
                        "quantity": 5,
                    },
                )
            ).json()["id"]
            for a, b in [(east, west), (west, east)] * 4
        ]
        sales = [
            {
                "product_id": str(product.id),
                "warehouse_id": str(w.id),
                "type": "sale",
                "quantity": 1,
            }
            for w in (east, west)
        ] * 20

        results = await asyncio.gather(
            *(clients[i % 10].post(f"{TRANSFERS}/{t}/complete") for i, t in enumerate(transfers)),
            *(clients[i % 10].post(MOVEMENTS, json=s) for i, s in enumerate(sales)),
        )

        assert {r.status_code for r in results} <= {200, 201, 409}
        sold = sum(1 for r in results if r.status_code == 201)
        east_level = await level(live, product.id, east.id)
        west_level = await level(live, product.id, west.id)
        assert east_level[0] == east_level[2]
        assert west_level[0] == west_level[2]
        assert east_level[0] + west_level[0] == 120 - sold
        await close_all(clients)


async def test_concurrent_reversals_of_one_movement_post_one_compensation(
    fresh_database: str,
) -> None:
    async with live_app(fresh_database) as live:
        product, (warehouse,) = await live.product_in(10)
        clients = await live.clients(5, "manager")
        sale = (
            await clients[0].post(
                MOVEMENTS,
                json={
                    "product_id": str(product.id),
                    "warehouse_id": str(warehouse.id),
                    "type": "sale",
                    "quantity": 4,
                },
            )
        ).json()

        responses = await asyncio.gather(
            *(clients[i % 5].post(f"{MOVEMENTS}/{sale['id']}/reverse") for i in range(10))
        )

        assert Counter(r.status_code for r in responses) == {201: 1, 409: 9}
        assert await level(live, product.id, warehouse.id) == (10, 0, 10)
        await close_all(clients)

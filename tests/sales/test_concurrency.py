"""Real concurrent requests with real commits: confirmations never reserve more than is on hand,
plain sales never take reserved stock, and an order's transitions happen once."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx

from stockroom.catalog.models import Product, Warehouse
from tests.stock.live import LiveApp, live_app

URL = "/api/v1/sales-orders"


async def close_all(clients: list[httpx.AsyncClient]) -> None:
    for c in clients:
        await c.aclose()


async def drafts(
    client: httpx.AsyncClient, product: Product, warehouse: Warehouse, count: int, quantity: int
) -> list[dict[str, Any]]:
    orders = []
    for _ in range(count):
        response = await client.post(
            URL,
            json={
                "warehouse_id": str(warehouse.id),
                "customer": {"name": "Walk-in"},
                "lines": [{"product_id": str(product.id), "quantity": quantity}],
            },
        )
        assert response.status_code == 201, response.text
        orders.append(response.json())
    return orders


async def level(live: LiveApp, product: Product, warehouse: Warehouse) -> tuple[int, int, int]:
    """on hand, reserved, and the ledger sum."""
    params = {"p": product.id, "w": warehouse.id}
    on_hand = await live.scalar(
        "SELECT on_hand FROM stock_levels WHERE product_id = :p AND warehouse_id = :w", **params
    )
    reserved = await live.scalar(
        "SELECT reserved FROM stock_levels WHERE product_id = :p AND warehouse_id = :w", **params
    )
    ledger = await live.scalar(
        "SELECT coalesce(sum(signed_quantity), 0) FROM stock_movements "
        "WHERE product_id = :p AND warehouse_id = :w",
        **params,
    )
    return int(on_hand), int(reserved), int(ledger)


async def test_100_concurrent_confirmations_against_30_available_confirm_exactly_30(
    fresh_database: str,
) -> None:
    async with live_app(fresh_database) as live:
        product, (warehouse,) = await live.product_in(30, reorder_point=0)
        clients = await live.clients(10, "staff")
        orders = await drafts(clients[0], product, warehouse, 100, 1)

        responses = await asyncio.gather(
            *(
                clients[i % len(clients)].post(f"{URL}/{order['id']}/confirm")
                for i, order in enumerate(orders)
            )
        )

        statuses = Counter(r.status_code for r in responses)
        assert statuses == {200: 30, 409: 70}, statuses
        refusals = [r.json() for r in responses if r.status_code == 409]
        assert {p["code"] for p in refusals} == {"insufficient_available"}
        assert all(p["shortages"][0]["requested"] == 1 for p in refusals)
        assert await level(live, product, warehouse) == (30, 30, 30)
        confirmed = await live.scalar(
            "SELECT count(*) FROM sales_orders WHERE status = 'confirmed'"
        )
        assert confirmed == 30
        await close_all(clients)


async def test_confirmations_racing_plain_sales_never_sell_reserved_stock(
    fresh_database: str,
) -> None:
    async with live_app(fresh_database) as live:
        product, (warehouse,) = await live.product_in(20, reorder_point=0)
        clients = await live.clients(10, "staff")
        orders = await drafts(clients[0], product, warehouse, 30, 1)
        sale = {
            "product_id": str(product.id),
            "warehouse_id": str(warehouse.id),
            "type": "sale",
            "quantity": 1,
        }

        calls = []
        for i, order in enumerate(orders):
            c = clients[i % len(clients)]
            calls.append(c.post(f"{URL}/{order['id']}/confirm"))
            calls.append(c.post("/api/v1/stock-movements", json=sale))
        responses = await asyncio.gather(*calls)

        confirmations, sales = responses[0::2], responses[1::2]
        confirmed = sum(r.status_code == 200 for r in confirmations)
        sold = sum(r.status_code == 201 for r in sales)
        assert confirmed + sold == 20
        assert {r.json()["code"] for r in responses if r.status_code == 409} <= {
            "insufficient_available",
            "insufficient_stock",
        }
        on_hand, reserved, ledger = await level(live, product, warehouse)
        assert (on_hand, reserved, ledger) == (20 - sold, confirmed, 20 - sold)
        assert on_hand >= reserved
        await close_all(clients)


async def test_ship_and_cancel_racing_on_one_order_have_one_winner(fresh_database: str) -> None:
    async with live_app(fresh_database) as live:
        product, (warehouse,) = await live.product_in(40, reorder_point=0)
        clients = await live.clients(6, "staff")
        shipped = 0
        for order in await drafts(clients[0], product, warehouse, 5, 4):
            confirmed = await clients[0].post(f"{URL}/{order['id']}/confirm")
            assert confirmed.status_code == 200, confirmed.text
            ship = {"lines": [{"line_id": order["lines"][0]["id"], "quantity": 4}]}

            responses = await asyncio.gather(
                *(
                    c.post(f"{URL}/{order['id']}/ship", json=ship)
                    if i % 2
                    else c.post(f"{URL}/{order['id']}/cancel")
                    for i, c in enumerate(clients)
                )
            )

            assert Counter(r.status_code for r in responses)[200] == 1
            final = (await clients[0].get(f"{URL}/{order['id']}")).json()
            assert final["status"] in {"shipped", "cancelled"}
            shipped += 4 if final["status"] == "shipped" else 0
            assert await level(live, product, warehouse) == (40 - shipped, 0, 40 - shipped)
        await close_all(clients)

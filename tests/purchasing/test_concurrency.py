"""Real concurrent requests with real commits: a line is never received beyond its quantity and
a purchase order changes state exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx

from tests.factories.catalog import make_product, make_supplier, make_warehouse
from tests.stock.live import LiveApp, live_app

URL = "/api/v1/purchase-orders"


async def open_order(live: LiveApp, client: httpx.AsyncClient, quantity: int) -> dict[str, Any]:
    async with live.sessionmaker() as session, session.begin():
        supplier = await make_supplier(session)
        warehouse = await make_warehouse(session)
        product = await make_product(session)
    created = await client.post(
        URL,
        json={
            "supplier_id": str(supplier.id),
            "warehouse_id": str(warehouse.id),
            "lines": [{"product_id": str(product.id), "quantity": quantity}],
        },
    )
    assert created.status_code == 201, created.text
    submitted = await client.post(f"{URL}/{created.json()['id']}/submit")
    assert submitted.status_code == 200, submitted.text
    body: dict[str, Any] = submitted.json()
    return body


async def level(live: LiveApp, order: dict[str, Any]) -> tuple[int, int, int]:
    """on hand, on order and the ledger sum at the order's product and warehouse."""
    params = {"p": order["lines"][0]["product_id"], "w": order["warehouse_id"]}
    on_hand = await live.scalar(
        "SELECT on_hand FROM stock_levels WHERE product_id = :p AND warehouse_id = :w", **params
    )
    on_order = await live.scalar(
        "SELECT on_order FROM stock_levels WHERE product_id = :p AND warehouse_id = :w", **params
    )
    ledger = await live.scalar(
        "SELECT coalesce(sum(signed_quantity), 0) FROM stock_movements "
        "WHERE product_id = :p AND warehouse_id = :w",
        **params,
    )
    return int(on_hand), int(on_order), int(ledger)


async def test_20_concurrent_receipts_of_the_last_5_units_receive_exactly_5(
    fresh_database: str,
) -> None:
    async with live_app(fresh_database) as live:
        clients = await live.clients(10, "manager")
        order = await open_order(live, clients[0], 12)
        line_id = order["lines"][0]["id"]
        first = await clients[0].post(
            f"{URL}/{order['id']}/receive", json={"lines": [{"line_id": line_id, "quantity": 7}]}
        )
        assert first.status_code == 200, first.text

        responses = await asyncio.gather(
            *(
                clients[i % len(clients)].post(
                    f"{URL}/{order['id']}/receive",
                    json={"lines": [{"line_id": line_id, "quantity": 1}]},
                )
                for i in range(20)
            )
        )

        statuses = Counter(r.status_code for r in responses)
        assert statuses == {200: 5, 409: 15}, statuses
        assert {r.json()["code"] for r in responses if r.status_code == 409} <= {
            "over_receipt",
            "invalid_transition",
        }
        final = (await clients[0].get(f"{URL}/{order['id']}")).json()
        assert final["status"] == "received"
        assert final["lines"][0]["received_quantity"] == 12
        assert await level(live, order) == (12, 0, 12)
        for c in clients:
            await c.aclose()


async def test_concurrent_receive_and_cancel_of_one_order_have_one_outcome(
    fresh_database: str,
) -> None:
    async with live_app(fresh_database) as live:
        clients = await live.clients(6, "manager")
        for _ in range(5):
            order = await open_order(live, clients[0], 4)
            line_id = order["lines"][0]["id"]
            receive = {"lines": [{"line_id": line_id, "quantity": 4}]}

            responses = await asyncio.gather(
                *(
                    c.post(f"{URL}/{order['id']}/receive", json=receive)
                    if i % 2
                    else c.post(f"{URL}/{order['id']}/cancel")
                    for i, c in enumerate(clients)
                )
            )

            assert Counter(r.status_code for r in responses)[200] == 1
            final = (await clients[0].get(f"{URL}/{order['id']}")).json()
            on_hand, on_order, ledger = await level(live, order)
            assert on_order == 0
            if final["status"] == "received":
                assert (on_hand, ledger) == (4, 4)
            else:
                assert final["status"] == "cancelled"
                assert (on_hand, ledger) == (0, 0)
        for c in clients:
            await c.aclose()
